//! Benchmark (not a timed test): one real `hearth serve` (the release binary) on loopback over
//! HTTPS, driven by N concurrent reqwest tasks over keep-alive connections for a fixed time after a
//! warm-up. Prints requests/s and p50/p99 latency for `GET /arvados/v1/users/current` with a valid
//! token, with an invalid token (the 401 path) and for `POST /hearth/v1/login` (argon2), plus the
//! binary's size (and stripped size) and the daemon's resident memory idle and after the load.
//!
//! `cargo bench -p hearth --bench api`. Environment: `HEARTH_BENCH_CONCURRENCY` (32),
//! `HEARTH_BENCH_SECS` (10), `HEARTH_BENCH_WARMUP_SECS` (1), `HEARTH_BENCH_HTTP` (`1` for HTTP/1.1
//! keep-alive, one connection per task — the default; `2` for one multiplexed HTTP/2 connection).

// A benchmark is neither a test nor daemon code: a failed set-up step should stop it loudly with
// the reason, which is what unwrap/expect/panic do here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{BENCH_PASSWORD, HEARTH, Lone, env_num, load, pct_ms};

/// `VmRSS` of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One request kind to hammer.
#[derive(Clone)]
struct Req {
    method: Method,
    url: String,
    token: Option<String>,
    body: Option<Value>,
    expect: u16,
}

struct Outcome {
    count: usize,
    wrong_status: usize,
    errors: usize,
    secs: f64,
    lat_us: Vec<u64>,
    version: String,
}

/// Runs `concurrency` tasks sending `req` for `warmup` (not recorded) then `secs` (recorded).
async fn hammer(http: &reqwest::Client, req: &Req, concurrency: usize, warmup: Duration, secs: Duration) -> Outcome {
    let start = Instant::now();
    let record_from = start + warmup;
    let stop = record_from + secs;
    // A bound on the count too, whatever the speed: 2 million requests per task.
    const MAX_PER_TASK: usize = 2_000_000;
    let version = Arc::new(std::sync::Mutex::new(String::new()));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let http = http.clone();
        let req = req.clone();
        let version = version.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let (mut wrong, mut errors) = (0usize, 0usize);
            for _ in 0..MAX_PER_TASK {
                let t = Instant::now();
                if t >= stop {
                    break;
                }
                let mut rb = http.request(req.method.clone(), &req.url).timeout(Duration::from_secs(30));
                if let Some(tok) = &req.token {
                    rb = rb.bearer_auth(tok);
                }
                if let Some(b) = &req.body {
                    rb = rb.json(b);
                }
                let res = match rb.send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let v = format!("{:?}", r.version());
                        let ok = r.bytes().await.is_ok();
                        if let Ok(mut g) = version.lock()
                            && g.is_empty()
                        {
                            *g = v;
                        }
                        if ok { Some(status) } else { None }
                    }
                    Err(_) => None,
                };
                let done = Instant::now();
                if t >= record_from && done <= stop {
                    lat.push(done.duration_since(t).as_micros() as u64);
                    match res {
                        Some(s) if s == req.expect => {}
                        Some(_) => wrong += 1,
                        None => errors += 1,
                    }
                }
            }
            (lat, wrong, errors)
        }));
    }
    let mut lat_us = Vec::new();
    let (mut wrong_status, mut errors) = (0, 0);
    for t in tasks {
        let (l, w, e) = t.await.unwrap();
        lat_us.extend(l);
        wrong_status += w;
        errors += e;
    }
    lat_us.sort_unstable();
    let version = version.lock().map(|g| g.clone()).unwrap_or_default();
    Outcome { count: lat_us.len(), wrong_status, errors, secs: secs.as_secs_f64(), lat_us, version }
}

fn report(name: &str, how: &str, o: &Outcome, load_before: &str) {
    println!(
        "{name:<34} {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({} requests, {} wrong status, {} errors, {})   load {load_before} -> {}",
        o.count as f64 / o.secs,
        pct_ms(&o.lat_us, 0.50),
        pct_ms(&o.lat_us, 0.99),
        o.count,
        o.wrong_status,
        o.errors,
        o.version,
        load()
    );
    println!("    ({how})");
}

fn binary_sizes() {
    let size = std::fs::metadata(HEARTH).map(|m| m.len()).unwrap_or(0);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("hearth");
    std::fs::copy(HEARTH, &copy).unwrap();
    let stripped = match Command::new("strip").arg(&copy).status() {
        Ok(s) if s.success() => std::fs::metadata(&copy).map(|m| m.len().to_string()).unwrap_or_default(),
        _ => "n/a (strip failed or missing)".into(),
    };
    println!("release binary {HEARTH}: {size} bytes; stripped copy (strip): {stripped} bytes");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hearth::install_crypto_provider();
    let concurrency = env_num("HEARTH_BENCH_CONCURRENCY", 32) as usize;
    let secs = Duration::from_secs(env_num("HEARTH_BENCH_SECS", 10));
    let warmup = Duration::from_secs(env_num("HEARTH_BENCH_WARMUP_SECS", 1));
    let http2 = env_num("HEARTH_BENCH_HTTP", 1) == 2;
    println!(
        "api bench: {concurrency} concurrent tasks, {} s warm-up, {} s measured each; {} cores; load {}",
        warmup.as_secs(),
        secs.as_secs(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        load()
    );
    binary_sizes();

    let lone = Lone::start().await?;
    let (c, ca_pem, daemon) = (&lone.cluster, &lone.ca_pem, &lone.daemon);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_rss = rss_kib(daemon.pid());
    println!("hearth serve VmRSS after start + 5 s idle: {idle_rss} KiB (load {})", load());

    let password = BENCH_PASSWORD;
    let token = lone.bench_user().await?;
    // Same token uuid, wrong secret: the daemon finds the row and refuses the hash (401).
    let mut bad = token.clone();
    let last = bad.pop().unwrap();
    bad.push(if last == 'a' { 'b' } else { 'a' });

    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem)?])
        .pool_max_idle_per_host(concurrency.max(1));
    if !http2 {
        b = b.http1_only();
    }
    let http = b.build()?;
    let current = format!("{}/arvados/v1/users/current", c.url());
    let how = |what: &str| {
        format!(
            "{concurrency} tokio tasks share one reqwest client ({}), each sends {what} back to back; {} s warm-up then {} s counted; latency = send to body read; client and daemon share the machine",
            if http2 { "one HTTP/2 connection" } else { "HTTP/1.1 keep-alive, one connection per task" },
            warmup.as_secs(),
            secs.as_secs()
        )
    };

    let l = load();
    let o = hammer(
        &http,
        &Req { method: Method::GET, url: current.clone(), token: Some(token.clone()), body: None, expect: 200 },
        concurrency,
        warmup,
        secs,
    )
    .await;
    report("GET users/current (valid token)", &how("GET /arvados/v1/users/current with a valid token"), &o, &l);
    println!("    hearth serve VmRSS now: {} KiB", rss_kib(daemon.pid()));

    let l = load();
    let o = hammer(
        &http,
        &Req { method: Method::GET, url: current.clone(), token: Some(bad), body: None, expect: 401 },
        concurrency,
        warmup,
        secs,
    )
    .await;
    report("GET users/current (invalid, 401)", &how("the same GET with a wrong secret"), &o, &l);
    println!("    hearth serve VmRSS now: {} KiB", rss_kib(daemon.pid()));

    let l = load();
    let o = hammer(
        &http,
        &Req {
            method: Method::POST,
            url: format!("{}/hearth/v1/login", c.url()),
            token: None,
            body: Some(json!({"login": "bench", "password": password})),
            expect: 200,
        },
        concurrency,
        warmup,
        secs,
    )
    .await;
    report("POST /hearth/v1/login (argon2)", &how("POST /hearth/v1/login with the right password"), &o, &l);

    let after = rss_kib(daemon.pid());
    println!("hearth serve VmRSS after the load runs: {after} KiB (load {})", load());
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!("hearth serve VmRSS 5 s later, idle: {} KiB", rss_kib(daemon.pid()));
    let log = std::fs::read_to_string(c.dir.join("hearth.log")).unwrap_or_default();
    let noisy: Vec<&str> = log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).take(5).collect();
    println!(
        "daemon log: {} lines, {} WARN/ERROR; first: {:?}",
        log.lines().count(),
        log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).count(),
        noisy
    );
    drop(lone);
    Ok(())
}
