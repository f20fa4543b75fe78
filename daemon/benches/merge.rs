//! Benchmark (not a timed test): `users.merge` of a user owning 100k objects and 100k links, next
//! to a raw sled batch write of the same number of records of the same average size, in the same
//! run and the same store. Prints both times and their ratio (goal: ≤ 3).
//!
//! Each run seeds a fresh store, writes the baseline (one sled batch of that many records, flushed),
//! then merges (with redirect, into a project of the new user) and checks that everything moved.
//! Both timed phases start from the same settled store (see `settle`), and the baseline's scratch
//! tree is dropped only after the merge, so that neither phase pays for the other's garbage. Several runs, because this machine's disk and neighbours make single figures
//! noisy; the median ratio is the result.
//!
//! `cargo bench -p hearth --bench merge`; `HEARTH_BENCH_OBJECTS` changes the size (default 100000
//! objects and as many links), `HEARTH_BENCH_RUNS` the number of runs (default 3).

use anyhow::Context;
use federation_proto::ObjectKind;
use hearth::accounts::Accounts;
use hearth::accounts::merge::MergeParams;
use hearth::clock::Clock;
use hearth::fixtures::{lone_cluster_settings, seed_big_user};
use hearth::store::Store;
use hearth::store::records::{Collection, Group, Link};
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

fn one_run(n: usize) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("store"))?;
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
    let tidied = accounts.tidy_aliased_indexes()?;
    let tidy = t.elapsed();
    settle(store)?;
    let t = Instant::now();
    let after_tidy = store.owned_by(&big.new_owner)?.len() + store.owned_by(&big.new.uuid)?.len();
    let read_tidied = t.elapsed();
    anyhow::ensure!(after_tidy == aliased, "the tidy changed an answer");
    store.drop_baseline_scratch()?;
    println!("  raw sled batch write of {records} records × {size} B: {baseline:.3?}");
    println!("  merge of {} objects + {} links (redirect):   {merge:.3?}", big.objects, big.links);
    println!("  ratio {:.2}", merge.as_secs_f64() / baseline.as_secs_f64().max(1e-9));
    println!(
        "  reading owned rows: {direct} under the old user before {read_direct:.3?}; {aliased} under the new owner and user after (the owner index moved with the rows), {read_aliased:.3?}"
    );
    println!(
        "  background tidy: {tidied} link-end index entries moved in {tidy:.3?}; the same rows read afterwards {read_tidied:.3?}"
    );
    drop(accounts);
    dir.close().context("removing the temporary store")?;
    Ok(Run { baseline, merge })
}

fn main() -> anyhow::Result<()> {
    let n = env_usize("HEARTH_BENCH_OBJECTS", 100_000);
    let runs = env_usize("HEARTH_BENCH_RUNS", 3).max(1);
    let mut results = Vec::with_capacity(runs);
    for i in 1..=runs {
        println!("run {i}/{runs}");
        results.push(one_run(n)?);
    }
    let mut ratios: Vec<f64> =
        results.iter().map(|r| r.merge.as_secs_f64() / r.baseline.as_secs_f64().max(1e-9)).collect();
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    let mut merges: Vec<Duration> = results.iter().map(|r| r.merge).collect();
    merges.sort();
    let mut baselines: Vec<Duration> = results.iter().map(|r| r.baseline).collect();
    baselines.sort();
    println!(
        "merge {:.3?} (median of {runs}), baseline {:.3?}; ratio median {median:.2}, range {:.2}–{:.2} (goal ≤ 3){}",
        merges[runs / 2],
        baselines[runs / 2],
        ratios[0],
        ratios[ratios.len() - 1],
        if median <= 3.0 { "" } else { "  ABOVE GOAL" }
    );
    Ok(())
}
