//! Benchmark (not a timed test): lists at scale. One real `hearth serve` (the release binary) on
//! loopback over HTTPS, asked by the system root token, with 1k, 10k and 100k users and then a
//! million collections stored. Prints each figure beside its goal (issue 16, item 1):
//!
//! - `users?filters=[[email|username|uuid,=,x]]`: median and p99 of 50 requests each, ≤ 5 ms median;
//! - a default page of 100 users (`modified_at desc`, then uuid; `items_available` counted): ≤ 10 ms median;
//! - Arvados' keyset walk of all users (`order=["uuid asc"]`, `["uuid",">",last]`, `count=none`,
//!   pages of 1,000, as `arvados.util.keyset_list_all` does): ≤ 5 s in all;
//! - with the collections: a page of 100 of one owner's collections
//!   (`filters=[["owner_uuid","=",X]]`) and of `groups.contents` of that owner: ≤ 10 ms median;
//! - the daemon's resident memory after each user level's runs: < 200 MiB (after the collections'
//!   runs it is printed too, without a goal).
//!
//! The store is filled before the daemon starts (it is stopped in between), by the library's own
//! write path: users through `WriteBatch::put_user` (`User::new` with an email, a username and
//! distinct times, as `users.create` makes them), collections through `WriteBatch::put_object`,
//! committed by `Store::commit` in batches, so every row has exactly the index entries the API
//! would write. What the API writes besides (audit log entries) is left out: lists do not read it.
//! Each level adds to the store of the one before.
//!
//! `cargo bench -p hearth --bench scale`. Environment: `HEARTH_SCALE_USERS` (levels, comma
//! separated: `1000,10000,100000`), `HEARTH_SCALE_COLLECTIONS` (1000000; 0 skips them),
//! `HEARTH_SCALE_OWNERS` (1000: the collections are spread evenly over this many users),
//! `HEARTH_SCALE_REQUESTS` (50 per figure).

// A benchmark is neither a test nor daemon code: a failed set-up step should stop it loudly with
// the reason, which is what unwrap/expect/panic do here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use federation_proto::{ObjectKind, ObjectUuid};
use hearth::cli::demo::PlannedCluster;
use hearth::client::Client;
use hearth::store::records::{Collection, User};
use hearth::store::{Store, WriteBatch};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{Daemon, env_num, load, pct_ms, plan_one};
use time::OffsetDateTime;

/// Rows per committed batch of the fill.
const FILL_BATCH: usize = 2_000;

fn user_uuid(i: usize) -> ObjectUuid {
    ObjectUuid::new("zzzzz".parse().unwrap(), ObjectKind::User, &format!("b{i:014}")).unwrap()
}

fn email(i: usize) -> String {
    format!("user{i}@scale.example.org")
}

fn username(i: usize) -> String {
    format!("scale{i}")
}

/// A time for row `i`: distinct, one millisecond apart.
fn at(i: usize) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap() + Duration::from_millis(i as u64)
}

/// Adds users `from..to` to the stopped daemon's store.
fn fill_users(c: &PlannedCluster, from: usize, to: usize) {
    let store = Store::open(&c.dir.join("store")).unwrap();
    let system = ObjectUuid::new("zzzzz".parse().unwrap(), ObjectKind::User, "000000000000000").unwrap();
    let mut b = WriteBatch::new();
    for i in from..to {
        let u = User {
            email: Some(email(i)),
            email_verified: true,
            username: Some(username(i)),
            first_name: "Scale".into(),
            last_name: format!("User {i}"),
            is_active: true,
            modified_by_user_uuid: Some(system.clone()),
            ..User::new(user_uuid(i), system.clone(), at(i))
        };
        b.put_user(None, &u).unwrap();
        if (i + 1) % FILL_BATCH == 0 {
            store.commit(std::mem::take(&mut b)).unwrap();
        }
    }
    store.commit(b).unwrap();
    store.flush().unwrap();
}

/// Adds `n` collections spread over the first `owners` users.
fn fill_collections(c: &PlannedCluster, n: usize, owners: usize) {
    let store = Store::open(&c.dir.join("store")).unwrap();
    let mut b = WriteBatch::new();
    for i in 0..n {
        let owner = user_uuid(i % owners);
        let coll = Collection {
            uuid: ObjectUuid::new("zzzzz".parse().unwrap(), ObjectKind::Collection, &format!("c{i:014}")).unwrap(),
            owner_uuid: owner.clone(),
            created_at: at(i),
            modified_at: at(i),
            modified_by_user_uuid: Some(owner),
            name: format!("collection {i}"),
            description: None,
            properties: json!({}),
            manifest_text: String::new(),
        };
        b.put_object(None, &coll).unwrap();
        if (i + 1) % FILL_BATCH == 0 {
            store.commit(std::mem::take(&mut b)).unwrap();
        }
    }
    store.commit(b).unwrap();
    store.flush().unwrap();
}

/// The query string of `params`.
fn query(params: &[(&str, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

/// `GET path?params`, checked; the body and the microseconds it took.
async fn timed(root: &Client, path: &str, params: &[(&str, String)]) -> (Value, u64) {
    let t = Instant::now();
    let body = root.get(&format!("{path}?{}", query(params))).await.unwrap().ok().unwrap();
    (body, t.elapsed().as_micros() as u64)
}

fn report(what: &str, lat: &mut [u64], goal_ms: f64) {
    lat.sort_unstable();
    let p50 = pct_ms(lat, 0.5);
    let verdict = if p50 <= goal_ms { "ok" } else { "MISSED" };
    println!(
        "  {what:<44} median {p50:>8.2} ms   p99 {:>8.2} ms   ({} requests)   goal: median ≤ {goal_ms} ms   {verdict}",
        pct_ms(lat, 0.99),
        lat.len()
    );
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    kb / 1024.0
}

/// Prints the daemon's resident memory, beside the goal when `goal` (the goal is for users only).
fn report_rss(when: &str, pid: u32, goal: bool) {
    let mib = rss_mib(pid);
    let verdict = match (goal, mib < 200.0) {
        (false, _) => "(no goal)",
        (true, true) => "goal: < 200 MiB   ok",
        (true, false) => "goal: < 200 MiB   MISSED",
    };
    println!("  daemon RSS {when:<33} {mib:>8.1} MiB   {verdict}");
}

/// Starts the daemon and a root client on it.
async fn start(c: &PlannedCluster, ca_pem: &[u8]) -> (Daemon, Client) {
    let daemon = Daemon::spawn(c, &[]);
    let root = Client::new(&c.url(), Some(ca_pem)).unwrap().with_token(&c.root_token);
    if let Err(e) = root.wait_healthy(300).await {
        let log = std::fs::read_to_string(c.dir.join("hearth.log")).unwrap_or_default();
        panic!("{e}\n--- daemon log ---\n{log}");
    }
    (daemon, root)
}

/// The user figures with `users` users stored (`users` of them the bench's, by index).
async fn measure_users(root: &Client, users: usize, requests: usize) {
    let pick = |k: usize| (k * 7919 + 13) % users;
    for (attr, value) in [
        ("email", &email as &dyn Fn(usize) -> String),
        ("username", &username),
        ("uuid", &|i| user_uuid(i).to_string()),
    ] {
        let mut lat = Vec::new();
        for k in 0..requests {
            let i = pick(k);
            let (body, us) =
                timed(root, "/arvados/v1/users", &[("filters", json!([[attr, "=", value(i)]]).to_string())]).await;
            assert_eq!(body["items"][0]["uuid"], user_uuid(i).to_string(), "{attr} = {}", value(i));
            assert_eq!(body["items_available"], 1);
            lat.push(us);
        }
        report(&format!("users, filter {attr} ="), &mut lat, 5.0);
    }
    let mut lat = Vec::new();
    let mut available = Value::Null;
    for _ in 0..requests {
        let (body, us) = timed(root, "/arvados/v1/users", &[("limit", "100".into())]).await;
        assert_eq!(body["items"].as_array().unwrap().len(), 100);
        available = body["items_available"].clone();
        lat.push(us);
    }
    report(&format!("users, default page of 100 (of {available})"), &mut lat, 10.0);
    // The same page other ways, for comparison (no goal of their own).
    for (what, extra) in [
        ("count=none", ("count", "none".to_string())),
        ("order uuid asc", ("order", json!(["uuid asc"]).to_string())),
        ("order modified_at asc", ("order", json!(["modified_at asc"]).to_string())),
    ] {
        let mut lat = Vec::new();
        for _ in 0..requests {
            lat.push(timed(root, "/arvados/v1/users", &[("limit", "100".into()), extra.clone()]).await.1);
        }
        report(&format!("users, page of 100, {what}"), &mut lat, 10.0);
    }

    let t = Instant::now();
    let (mut seen, mut pages, mut last) = (0usize, 0usize, None::<String>);
    loop {
        let mut params =
            vec![("order", json!(["uuid asc"]).to_string()), ("limit", "1000".into()), ("count", "none".into())];
        if let Some(l) = &last {
            params.push(("filters", json!([["uuid", ">", l]]).to_string()));
        }
        let (body, _) = timed(root, "/arvados/v1/users", &params).await;
        assert!(body.get("items_available").is_none());
        let items = body["items"].as_array().unwrap();
        if items.is_empty() {
            break;
        }
        seen += items.len();
        pages += 1;
        last = items.last().and_then(|u| u["uuid"].as_str()).map(str::to_string);
    }
    let secs = t.elapsed().as_secs_f64();
    assert!(seen >= users, "the walk saw {seen} of {users} users");
    let verdict = if secs <= 5.0 { "ok" } else { "MISSED" };
    println!(
        "  {:<44} {secs:>8.2} s in all ({pages} pages, {seen} users)   goal: ≤ 5 s   {verdict}",
        "users, keyset walk in pages of 1,000"
    );
}

/// The collection figures: pages of one owner's collections and of its contents.
async fn measure_collections(root: &Client, owners: usize, collections: usize, requests: usize) {
    // Collection i belongs to user i % owners.
    let held = |j: usize| collections / owners + usize::from(j < collections % owners);
    let mut by_filter = Vec::new();
    let mut contents = Vec::new();
    for k in 0..requests {
        let j = (k * 7919 + 13) % owners;
        let (owner, per_owner) = (user_uuid(j).to_string(), held(j));
        let (body, us) = timed(
            root,
            "/arvados/v1/collections",
            &[("filters", json!([["owner_uuid", "=", owner]]).to_string()), ("limit", "100".into())],
        )
        .await;
        assert_eq!(body["items_available"], per_owner);
        assert_eq!(body["items"].as_array().unwrap().len(), 100.min(per_owner));
        by_filter.push(us);
        let (body, us) =
            timed(root, "/arvados/v1/groups/contents", &[("uuid", owner.clone()), ("limit", "100".into())]).await;
        assert_eq!(body["items_available"], per_owner);
        contents.push(us);
    }
    let per_owner = held(0);
    report(&format!("collections of one owner (~{per_owner}), page of 100"), &mut by_filter, 10.0);
    report(&format!("groups.contents of one owner (~{per_owner}), page of 100"), &mut contents, 10.0);
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hearth::install_crypto_provider();
    let levels: Vec<usize> = std::env::var("HEARTH_SCALE_USERS")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let collections = env_num("HEARTH_SCALE_COLLECTIONS", 1_000_000) as usize;
    let owners = (env_num("HEARTH_SCALE_OWNERS", 1000) as usize).max(1);
    let requests = (env_num("HEARTH_SCALE_REQUESTS", 50) as usize).max(1);
    println!(
        "scale bench: users {levels:?}, then {collections} collections over {owners} owners; {requests} requests per figure; {} cores; load {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        load()
    );

    let dir = tempfile::tempdir()?;
    let (c, ca_pem) = plan_one(dir.path())?;
    let c = &c;
    // A first start sets the store up (system user, root token); the fill goes in while it is stopped.
    drop(start(c, &ca_pem).await);

    let mut stored = 0;
    for &level in &levels {
        if level > stored {
            let t = Instant::now();
            fill_users(c, stored, level);
            println!("filled users {stored}..{level} in {:.1?}", t.elapsed());
            stored = level;
        }
        let (daemon, root) = start(c, &ca_pem).await;
        println!("{stored} users (load {}):", load());
        measure_users(&root, stored, requests).await;
        report_rss(&format!("after the {stored}-user runs"), daemon.pid(), true);
        // Stopped before the next fill opens the store.
        drop(daemon);
    }

    if collections > 0 && stored > 0 {
        let owners = owners.min(stored);
        let t = Instant::now();
        fill_collections(c, collections, owners);
        println!("filled {collections} collections in {:.1?}", t.elapsed());
        let (daemon, root) = start(c, &ca_pem).await;
        println!("{collections} collections, {stored} users (load {}):", load());
        measure_collections(&root, owners, collections, requests).await;
        report_rss("after the collections' runs", daemon.pid(), false);
        drop(daemon);
    }
    let log = std::fs::read_to_string(c.dir.join("hearth.log")).unwrap_or_default();
    let noisy = log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).count();
    println!("daemon log: {} lines, {noisy} WARN/ERROR", log.lines().count());
    Ok(())
}
