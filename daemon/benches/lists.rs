//! Benchmark (not a timed test): does the worst list request an ordinary user can make hold up
//! the daemon? One real `hearth serve` (the release binary) on loopback over HTTPS. One non-admin
//! user fills it with the heaviest collections the bounds allow (name, description, properties and
//! manifest at their bounds, names and descriptions ending in `y`), then a few clients send, back
//! to back and concurrently, the heaviest list request the bounds allow: 64 `like` filters whose
//! operands are the longest patterns there are (`%`, 1021 or 253 `_`, `y%`: the longest segment
//! the matcher has, and one that every item matches only at the very end of its longest text, so
//! that every filter of every item scans the whole attribute). Meanwhile one more client asks
//! `GET /healthz` every 10 ms. Prints the `/healthz` latency (p50, p99, max) under that load beside
//! the goal "p99 < 10 ms" and beside a baseline measured the same way, with no load, in the same
//! run; and what the list requests took.
//!
//! `cargo bench -p hearth --bench lists`. Environment: `HEARTH_BENCH_COLLECTIONS` (100),
//! `HEARTH_BENCH_MANIFEST_BYTES` (the bound, 2 MiB), `HEARTH_BENCH_CLIENTS` (4, the list
//! clients), `HEARTH_BENCH_SECS` (20, the loaded phase), `HEARTH_BENCH_BASELINE_SECS` (5).

// A benchmark is neither a test nor daemon code: a failed set-up step should stop it loudly with
// the reason, which is what unwrap/expect/panic do here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use hearth::accounts::bounds::{
    MAX_DESCRIPTION_BYTES, MAX_FILTER_OPERAND_CHARS, MAX_FILTERS, MAX_MANIFEST_TEXT_BYTES, MAX_NAME_CHARS,
    MAX_PROPERTIES_BYTES, MAX_PROPERTY_VALUE_BYTES,
};
use hearth::client::Client;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::{Daemon, env_num, load, pct_ms, plan_one};

/// `n` characters ending in `y`: the only place the bench's patterns find their `y`.
fn ends_in_y(n: usize) -> String {
    format!("{}y", "x".repeat(n - 1))
}

/// Properties as large as allowed: values at their bound until the whole is.
fn biggest_properties() -> Value {
    let mut m = Map::new();
    let mut i = 0;
    while serde_json::to_vec(&m).unwrap().len() + MAX_PROPERTY_VALUE_BYTES + 16 <= MAX_PROPERTIES_BYTES {
        m.insert(format!("k{i}"), json!("x".repeat(MAX_PROPERTY_VALUE_BYTES - 2)));
        i += 1;
    }
    Value::Object(m)
}

/// The heaviest filters: one on the name, the rest on any attribute (descriptions), each the
/// longest segment of `_` that ends in the text's last `y`.
fn heaviest_filters() -> Value {
    let on_name = format!("%{}y%", "_".repeat(MAX_NAME_CHARS - 2));
    let on_any = format!("%{}y%", "_".repeat(MAX_FILTER_OPERAND_CHARS - 3));
    assert_eq!(on_any.chars().count(), MAX_FILTER_OPERAND_CHARS);
    let mut f = vec![json!(["name", "like", on_name])];
    f.extend((1..MAX_FILTERS).map(|_| json!(["any", "ilike", on_any])));
    json!(f)
}

/// `GET /healthz` every `every` until `stop`; microsecond latencies, sorted, and failures.
async fn probe_healthz(
    http: reqwest::Client,
    url: String,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> (Vec<u64>, usize) {
    let (mut lat, mut failed) = (Vec::new(), 0usize);
    // Bounded whatever happens: at most 100k probes.
    for _ in 0..100_000 {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let t = Instant::now();
        let ok = match http.get(&url).timeout(Duration::from_secs(30)).send().await {
            Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
            Err(_) => false,
        };
        if ok {
            lat.push(t.elapsed().as_micros() as u64);
        } else {
            failed += 1;
        }
        tokio::time::sleep(every.saturating_sub(t.elapsed())).await;
    }
    lat.sort_unstable();
    (lat, failed)
}

fn report(what: &str, lat: &[u64], failed: usize) {
    println!(
        "  /healthz {what:<28} p50 {:>8.2} ms   p99 {:>8.2} ms   max {:>8.2} ms   ({} probes, {failed} failed)   goal: p99 < 10 ms",
        pct_ms(lat, 0.50),
        pct_ms(lat, 0.99),
        pct_ms(lat, 1.0),
        lat.len()
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hearth::install_crypto_provider();
    let collections = env_num("HEARTH_BENCH_COLLECTIONS", 100) as usize;
    let manifest_bytes =
        (env_num("HEARTH_BENCH_MANIFEST_BYTES", MAX_MANIFEST_TEXT_BYTES as u64) as usize).min(MAX_MANIFEST_TEXT_BYTES);
    let clients = env_num("HEARTH_BENCH_CLIENTS", 4) as usize;
    let secs = Duration::from_secs(env_num("HEARTH_BENCH_SECS", 20));
    let baseline_secs = Duration::from_secs(env_num("HEARTH_BENCH_BASELINE_SECS", 5));
    println!(
        "lists bench: {collections} collections (name {MAX_NAME_CHARS} chars, description {MAX_DESCRIPTION_BYTES} B, properties {MAX_PROPERTIES_BYTES} B, manifest {manifest_bytes} B), {clients} list clients, {} s loaded, {} s baseline; {} cores; load {}",
        secs.as_secs(),
        baseline_secs.as_secs(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        load()
    );

    let dir = tempfile::tempdir()?;
    let (c, ca_pem) = plan_one(dir.path())?;
    let c = &c;
    let daemon = Daemon::spawn(c, &[]);
    let anon = Client::new(&c.url(), Some(&ca_pem))?;
    let root = anon.with_token(&c.root_token);
    root.wait_healthy(60).await?;
    let password = "bench-password-1";
    root.create_user(json!({"username": "mallory", "email": "mallory@example.org"}), Some(password)).await?;
    let (token, _) = anon.login("mallory", password, None).await?;
    let mallory = anon.with_token(&token);

    let t = Instant::now();
    for i in 0..collections {
        // Names are unique per owner: each at its bound, ending in y, told apart by a number.
        let name = format!("{}{i:05}y", "x".repeat(MAX_NAME_CHARS - 6));
        let attrs = json!({
            "name": name,
            "description": ends_in_y(MAX_DESCRIPTION_BYTES),
            "properties": biggest_properties(),
            "manifest_text": "m".repeat(manifest_bytes),
        });
        mallory.post("/arvados/v1/collections", &json!({"collection": attrs})).await?.ok()?;
    }
    println!("filled in {:.1?} (load {})", t.elapsed(), load());

    let http = || {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca_pem).unwrap()])
            .http1_only()
            .build()
            .unwrap()
    };
    let healthz = format!("{}/healthz", c.url());
    let every = Duration::from_millis(10);

    // Baseline: the same probe, nothing else running.
    let stop = Arc::new(AtomicBool::new(false));
    let probe = tokio::spawn(probe_healthz(http(), healthz.clone(), every, stop.clone()));
    tokio::time::sleep(baseline_secs).await;
    stop.store(true, Ordering::SeqCst);
    let (base_lat, base_failed) = probe.await?;

    // Loaded: `clients` tasks send the heaviest list back to back; the probe runs meanwhile.
    let list_body = Arc::new(json!({"filters": heaviest_filters(), "limit": 1000}));
    let list_url = format!("{}/arvados/v1/collections", c.url());
    let load_before = load();
    let stop_lists = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, url, body, token, stop) =
            (http(), list_url.clone(), list_body.clone(), token.clone(), stop_lists.clone());
        tasks.push(tokio::spawn(async move {
            let mut took = Vec::new();
            let mut first: Option<Value> = None;
            // Bounded: at most 10k requests per client.
            for _ in 0..10_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let t = Instant::now();
                let r = http
                    .get(&url)
                    .bearer_auth(&token)
                    .json(&*body)
                    .timeout(Duration::from_secs(600))
                    .send()
                    .await
                    .expect("list request");
                assert!(r.status().is_success(), "list answered {}", r.status());
                let v: Value = r.json().await.expect("list body");
                took.push(t.elapsed().as_micros() as u64);
                if first.is_none() {
                    first = Some(json!({"items_available": v["items_available"], "limit": v["limit"], "items": v["items"].as_array().map_or(0, Vec::len)}));
                }
            }
            (took, first)
        }));
    }
    // Let every client's first request reach the daemon before probing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let probe = tokio::spawn(probe_healthz(http(), healthz.clone(), every, stop.clone()));
    tokio::time::sleep(secs).await;
    stop.store(true, Ordering::SeqCst);
    let (loaded_lat, loaded_failed) = probe.await?;
    let load_during = load();
    stop_lists.store(true, Ordering::SeqCst);
    let mut took = Vec::new();
    let mut shape = None;
    for t in tasks {
        let (l, first) = t.await?;
        took.extend(l);
        shape = shape.or(first);
    }
    took.sort_unstable();

    println!("results (load {load_before} -> {load_during}):");
    report("baseline (no load)", &base_lat, base_failed);
    report(&format!("under {clients} heavy list clients"), &loaded_lat, loaded_failed);
    println!(
        "  heavy list: {} answered (the last ones after the probe stopped), p50 {:.0} ms, max {:.0} ms; first answer {}",
        took.len(),
        pct_ms(&took, 0.5),
        pct_ms(&took, 1.0),
        shape.unwrap_or(Value::Null)
    );
    let log = std::fs::read_to_string(c.dir.join("hearth.log")).unwrap_or_default();
    let noisy = log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).count();
    println!("daemon log: {} lines, {noisy} WARN/ERROR", log.lines().count());
    drop(daemon);
    Ok(())
}
