//! Benchmark (not a timed test): `hearth admin import-legacy` of 100,000 legacy accounts with 3
//! collections each, through the import service in the CLI's requests of up to 5,000 lines, next to a raw
//! sled batch write of the same number of records of the same average size, in the same run and
//! store, measured just before and just after the import and averaged. Prints accounts/s for both
//! and the ratio of the times (goal: ≤ 3).
//!
//! `cargo bench -p hearth --bench legacy`; `HEARTH_BENCH_ACCOUNTS` changes the size (default
//! 100000), `HEARTH_BENCH_RUNS` the number of runs (default 5; the median ratio is the result),
//! `HEARTH_BENCH_CACHE_MIB` the store's page cache (the daemon's default, `store.cache_mib`).

use hearth::accounts::Accounts;
use hearth::clock::Clock;
use hearth::fixtures::lone_cluster_settings;
use hearth::store::records::{Collection, LegacyAccount};
use hearth::store::{Store, StoreOptions};
use std::time::{Duration, Instant};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn lines(n: usize) -> Vec<(u64, String)> {
    (0..n)
        .map(|i| {
            let cs: Vec<serde_json::Value> = (0..3)
                .map(|c| {
                    serde_json::json!({"name": format!("collection {c} of legacy user {i}"),
                    "description": "imported from the older system", "properties": {"trait": c}})
                })
                .collect();
            let line = serde_json::json!({"legacy_id": format!("legacy-{i:07}"), "email": format!("user{i}@example.org"),
                "name": format!("Legacy User {i}"), "collections": cs});
            (i as u64 + 1, line.to_string())
        })
        .collect()
}

/// One raw batch write of `records` records of `size` bytes into a scratch tree, flushed.
fn raw_batch(store: &Store, records: usize, size: usize) -> anyhow::Result<Duration> {
    let t = Instant::now();
    store.raw_batch_write_baseline(records, size)?;
    let took = t.elapsed();
    store.drop_baseline_scratch()?;
    Ok(took)
}

/// The store's options: `HEARTH_BENCH_CACHE_MIB` sets its page cache (the daemon's default
/// otherwise, as `store.cache_mib` does).
fn store_options() -> StoreOptions {
    match std::env::var("HEARTH_BENCH_CACHE_MIB").ok().and_then(|v| v.parse::<u64>().ok()) {
        Some(mib) => StoreOptions { cache_bytes: mib << 20, ..StoreOptions::default() },
        None => StoreOptions::default(),
    }
}

struct Run {
    baseline: Duration,
    import: Duration,
}

/// The average size of the records one account of `lines` makes (its legacy row and its 3
/// collections), found by importing the first line into a scratch store.
fn record_size(line: &(u64, String)) -> anyhow::Result<usize> {
    let dir = tempfile::tempdir()?;
    let accounts = Accounts::new(Store::open(&dir.path().join("store"))?, lone_cluster_settings(), Clock::System)?;
    accounts.import_legacy(&accounts.system_root_caller()?, std::slice::from_ref(line), false)?;
    let sample = accounts.legacy_by_id("legacy-0000000")?.ok_or_else(|| anyhow::anyhow!("no sample"))?;
    let mut bytes = serde_json::to_vec::<LegacyAccount>(&sample)?.len();
    for c in &sample.collections {
        let row: Collection = accounts.store().object(c)?.ok_or_else(|| anyhow::anyhow!("no sample collection"))?;
        bytes += serde_json::to_vec(&row)?.len();
    }
    Ok(bytes / (1 + sample.collections.len()))
}

fn one_run(n: usize) -> anyhow::Result<Run> {
    let input = lines(n);
    let (records, size) = (n * 4, record_size(&input[0])?);
    let dir = tempfile::tempdir()?;
    let store = Store::open_with(&dir.path().join("store"), store_options())?;
    let accounts = Accounts::new(store, lone_cluster_settings(), Clock::System)?;
    let root = accounts.system_root_caller()?;
    accounts.store().flush()?;
    // The baseline is measured before and after the import and averaged, so that a change in
    // what else the machine runs during one run moves both sides alike.
    let baseline_before = raw_batch(accounts.store(), records, size)?;
    let t = Instant::now();
    let mut imported = 0u64;
    for chunk in input.chunks(5000) {
        imported += accounts.import_legacy(&root, chunk, false)?.counts.imported;
    }
    let import = t.elapsed();
    anyhow::ensure!(imported as usize == n, "imported {imported} of {n}");
    accounts.store().flush()?;
    let baseline_after = raw_batch(accounts.store(), records, size)?;
    let baseline = (baseline_before + baseline_after) / 2;
    let per_sec = |d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    println!(
        "  raw sled batch of {records} records × {size} B: {baseline:.3?} ({:.0} accounts/s; {baseline_before:.3?} before the import, {baseline_after:.3?} after)",
        per_sec(baseline)
    );
    println!("  import of {n} accounts × 3 collections:        {import:.3?} ({:.0} accounts/s)", per_sec(import));
    println!("  ratio {:.2}", import.as_secs_f64() / baseline.as_secs_f64().max(1e-9));
    drop(accounts);
    dir.close()?;
    Ok(Run { baseline, import })
}

fn main() -> anyhow::Result<()> {
    let n = env_usize("HEARTH_BENCH_ACCOUNTS", 100_000);
    let runs = env_usize("HEARTH_BENCH_RUNS", 5).max(1);
    let mut results = Vec::with_capacity(runs);
    for i in 1..=runs {
        println!("run {i}/{runs}");
        results.push(one_run(n)?);
    }
    let mut ratios: Vec<f64> =
        results.iter().map(|r| r.import.as_secs_f64() / r.baseline.as_secs_f64().max(1e-9)).collect();
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    let mut imports: Vec<Duration> = results.iter().map(|r| r.import).collect();
    imports.sort();
    println!(
        "legacy import {:.3?} (median of {runs}, {:.0} accounts/s); ratio to a raw batch median {median:.2}, range {:.2}–{:.2} (goal ≤ 3){}",
        imports[runs / 2],
        n as f64 / imports[runs / 2].as_secs_f64().max(1e-9),
        ratios[0],
        ratios[ratios.len() - 1],
        if median <= 3.0 { "" } else { "  ABOVE GOAL" }
    );
    Ok(())
}
