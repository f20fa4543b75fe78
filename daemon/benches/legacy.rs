//! Benchmark (not a timed test): `hearth admin import-legacy` of 100,000 legacy accounts with 3
//! collections each, through the import service in the CLI's requests of up to 5,000 lines, next to a raw
//! sled batch write of the same number of records of the same average size, in the same run and
//! store. Prints accounts/s for both and the ratio of the times (goal: ≤ 3).
//!
//! `cargo bench -p hearth --bench legacy`; `HEARTH_BENCH_ACCOUNTS` changes the size (default
//! 100000), `HEARTH_BENCH_RUNS` the number of runs (default 3; the median ratio is the result).

use hearth::accounts::Accounts;
use hearth::clock::Clock;
use hearth::fixtures::lone_cluster_settings;
use hearth::store::Store;
use hearth::store::records::{Collection, LegacyAccount};
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

struct Run {
    baseline: Duration,
    import: Duration,
}

fn one_run(n: usize) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("store"))?;
    let accounts = Accounts::new(store, lone_cluster_settings(), Clock::System)?;
    let root = accounts.system_root_caller()?;
    let input = lines(n);
    accounts.store().flush()?;
    let t = Instant::now();
    let mut imported = 0u64;
    for chunk in input.chunks(5000) {
        imported += accounts.import_legacy(&root, chunk, false)?.counts.imported;
    }
    let import = t.elapsed();
    anyhow::ensure!(imported as usize == n, "imported {imported} of {n}");
    // Records written per account: the legacy row and its 3 collections, at their average size.
    let store = accounts.store();
    let sample = store.legacy_by_id("legacy-0000000")?.ok_or_else(|| anyhow::anyhow!("no sample"))?;
    let mut bytes = serde_json::to_vec::<LegacyAccount>(&sample)?.len();
    for c in &sample.collections {
        let row: Collection = store.object(c)?.ok_or_else(|| anyhow::anyhow!("no sample collection"))?;
        bytes += serde_json::to_vec(&row)?.len();
    }
    let records = n * 4;
    let size = bytes / 4;
    store.flush()?;
    let t = Instant::now();
    store.raw_batch_write_baseline(records, size)?;
    let baseline = t.elapsed();
    store.drop_baseline_scratch()?;
    let per_sec = |d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    println!("  raw sled batch of {records} records × {size} B: {baseline:.3?} ({:.0} accounts/s)", per_sec(baseline));
    println!("  import of {n} accounts × 3 collections:        {import:.3?} ({:.0} accounts/s)", per_sec(import));
    println!("  ratio {:.2}", import.as_secs_f64() / baseline.as_secs_f64().max(1e-9));
    drop(accounts);
    dir.close()?;
    Ok(Run { baseline, import })
}

fn main() -> anyhow::Result<()> {
    let n = env_usize("HEARTH_BENCH_ACCOUNTS", 100_000);
    let runs = env_usize("HEARTH_BENCH_RUNS", 3).max(1);
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
