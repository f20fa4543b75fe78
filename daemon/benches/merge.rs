//! Benchmark (not a timed test): `users.merge` of a user owning 100k objects and 100k links, next
//! to a raw write of the same number of records of the same average size, in the same run and the
//! same store. Prints both times and their ratio (goal: ≤ 3), for each store backend of
//! `HEARTH_BENCH_BACKENDS` (`sled,postgres`) side by side. The baseline is the fastest raw write
//! each backend has: on sled one batch, flushed; on PostgreSQL one `COPY … FROM STDIN (FORMAT
//! binary)` in one transaction (a database on the test suite's server, `tests/it/harness/pg.rs`).
//!
//! Each run seeds a fresh store, writes the baseline,
//! then merges (with redirect, into a project of the new user) and checks that everything moved.
//! Both timed phases start from the same settled store (see `settle`), and the baseline's scratch
//! tree is dropped only after the merge, so that neither phase pays for the other's garbage. Several runs, because this machine's disk and neighbours make single figures
//! noisy; the median ratio is the result.
//!
//! `cargo bench -p hearth --bench merge`; `HEARTH_BENCH_OBJECTS` changes the size (default 100000
//! objects and as many links), `HEARTH_BENCH_RUNS` the number of runs (default 3).

// A benchmark is neither a test nor daemon code: a failed set-up step should stop it loudly with
// the reason, which is what unwrap/expect/panic do here (and in the shared support module).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use anyhow::Context;
use federation_proto::ObjectKind;
use hearth::accounts::Accounts;
use hearth::accounts::merge::MergeParams;
use hearth::clock::Clock;
use hearth::fixtures::{lone_cluster_settings, seed_big_user};
use hearth::store::records::{Collection, Group, Link};
use hearth::store::{PostgresOptions, Store, StoreOptions};
use std::time::{Duration, Instant};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Brings the store to the same settled state before each timed phase: flushed, and every row
/// read once. Reading also lets sled (through crossbeam-epoch) free the pages the previous phase
/// left as garbage, which would otherwise be freed on the next phase's time.
fn settle(store: &Store) -> anyhow::Result<()> {
    store.flush()?;
    let mut rows = 0usize;
    rows += store.objects::<Group>().count();
    rows += store.objects::<Collection>().count();
    rows += store.objects::<Link>().count();
    anyhow::ensure!(rows > 0, "nothing seeded");
    Ok(())
}

struct Run {
    baseline: Duration,
    merge: Duration,
}

/// A fresh store on `backend` in `dir` (sled), or in a new database of the suite's PostgreSQL
/// server (its name returned, for dropping).
fn fresh_store(backend: &str, dir: &std::path::Path) -> anyhow::Result<(Store, Option<String>)> {
    if backend != "postgres" {
        return Ok((Store::open(&dir.join("store"))?, None));
    }
    let server = support::pg::server();
    let db = server.create_database("merge");
    let opts = StoreOptions {
        postgres: Some(PostgresOptions { url: server.url_of(&db), pool_size: 4 }),
        ..Default::default()
    };
    Ok((Store::open_with(dir, opts)?, Some(db)))
}

fn one_run(backend: &str, n: usize) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let (store, database) = fresh_store(backend, dir.path())?;
    let accounts = Accounts::new(store, lone_cluster_settings(), Clock::System)?;

    let t = Instant::now();
    let big = seed_big_user(&accounts, "bench", n, n)?;
    println!("seeded {n} objects + {n} links in {:.2?}", t.elapsed());

    // The average size of the records the merge rewrites, for the baseline (a sample of them).
    let store = accounts.store();
    let mut bytes = 0usize;
    let mut count = 0usize;
    for uuid in store.owned_uuids(&big.old.uuid)?.iter().step_by(97) {
        let len = match uuid.kind() {
            ObjectKind::Group => store.object::<Group>(uuid)?.map(|r| serde_json::to_vec(&r)),
            ObjectKind::Collection => store.object::<Collection>(uuid)?.map(|r| serde_json::to_vec(&r)),
            ObjectKind::Link => store.object::<Link>(uuid)?.map(|r| serde_json::to_vec(&r)),
            _ => None,
        };
        if let Some(v) = len {
            bytes += v?.len();
            count += 1;
        }
    }
    let size = bytes.checked_div(count).unwrap_or(300);
    let records = big.objects + big.links;

    settle(store)?;
    let t = Instant::now();
    store.raw_batch_write_baseline(records, size)?;
    let baseline = t.elapsed();

    let caller = accounts.system_root_caller()?;
    let params = MergeParams {
        new_owner_uuid: Some(big.new_owner.to_string()),
        new_user_token: None,
        redirect_to_new_user: Some("true".into()),
        old_user_uuid: Some(big.old.uuid.to_string()),
        new_user_uuid: Some(big.new.uuid.to_string()),
    };
    settle(store)?;
    let t = Instant::now();
    let direct = store.owned_by(&big.old.uuid)?.len();
    let read_direct = t.elapsed();

    settle(store)?;
    let t = Instant::now();
    let out = accounts.merge(&caller, &params, None)?;
    let merge = t.elapsed();
    anyhow::ensure!(out["redirect_to_user_uuid"] == serde_json::json!(big.new.uuid), "merge did not redirect: {out}");
    settle(store)?;
    let t = Instant::now();
    let aliased = store.owned_by(&big.new_owner)?.len() + store.owned_by(&big.new.uuid)?.len();
    let read_aliased = t.elapsed();
    anyhow::ensure!(store.owned_by(&big.new_owner)?.len() == big.objects, "merge did not move every object");
    anyhow::ensure!(store.owned_by(&big.old.uuid)?.is_empty(), "the old user still owns something");
    anyhow::ensure!(store.links_by_tail(&big.old.uuid)?.is_empty(), "links still point at the old user");
    // What the daemon's background tidy then does, and reading afterwards.
    let t = Instant::now();
    let tidied = accounts.tidy_indexes()?;
    let tidy = t.elapsed();
    settle(store)?;
    let t = Instant::now();
    let after_tidy = store.owned_by(&big.new_owner)?.len() + store.owned_by(&big.new.uuid)?.len();
    let read_tidied = t.elapsed();
    anyhow::ensure!(after_tidy == aliased, "the tidy changed an answer");
    store.drop_baseline_scratch()?;
    let raw = if database.is_some() { "raw COPY (binary, one transaction)" } else { "raw sled batch write" };
    println!("  {raw} of {records} records × {size} B: {baseline:.3?}");
    println!("  merge of {} objects + {} links (redirect):   {merge:.3?}", big.objects, big.links);
    println!("  ratio {:.2}", merge.as_secs_f64() / baseline.as_secs_f64().max(1e-9));
    println!(
        "  reading owned rows: {direct} under the old user before {read_direct:.3?}; {aliased} under the new owner and user after (the owner index moved with the rows), {read_aliased:.3?}"
    );
    println!(
        "  background tidy: {tidied} link-end index entries moved in {tidy:.3?}; the same rows read afterwards {read_tidied:.3?}"
    );
    drop(accounts);
    if let Some(db) = database {
        support::pg::server().drop_database(&db);
    }
    dir.close().context("removing the temporary store")?;
    Ok(Run { baseline, merge })
}

fn main() -> anyhow::Result<()> {
    let n = env_usize("HEARTH_BENCH_OBJECTS", 100_000);
    let runs = env_usize("HEARTH_BENCH_RUNS", 3).max(1);
    let mut summary = Vec::new();
    for backend in support::bench_backends() {
        let mut results = Vec::with_capacity(runs);
        for i in 1..=runs {
            println!("{backend}: run {i}/{runs}");
            results.push(one_run(backend, n)?);
        }
        let mut ratios: Vec<f64> =
            results.iter().map(|r| r.merge.as_secs_f64() / r.baseline.as_secs_f64().max(1e-9)).collect();
        ratios.sort_by(f64::total_cmp);
        let median = ratios[ratios.len() / 2];
        let mut merges: Vec<Duration> = results.iter().map(|r| r.merge).collect();
        merges.sort();
        let mut baselines: Vec<Duration> = results.iter().map(|r| r.baseline).collect();
        baselines.sort();
        summary.push(format!(
            "{backend:>8}: merge {:.3?} (median of {runs}), baseline {:.3?}; ratio median {median:.2}, range {:.2}–{:.2} (goal ≤ 3){}",
            merges[runs / 2],
            baselines[runs / 2],
            ratios[0],
            ratios[ratios.len() - 1],
            if median <= 3.0 { "" } else { "  ABOVE GOAL" }
        ));
    }
    println!("merge of {n} objects + {n} links, load {}:", support::load());
    for line in summary {
        println!("{line}");
    }
    Ok(())
}
