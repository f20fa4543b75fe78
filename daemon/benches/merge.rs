//! Benchmark (not a timed test): `users.merge` of a user owning 100k objects and 100k links, next
//! to a raw sled batch write of the same number of records of the same average size, in the same
//! run and the same store. Prints both times and their ratio (goal: ≤ 3).
//!
//! `cargo bench -p hearth --bench merge`; `HEARTH_BENCH_OBJECTS` changes the size (default 100000
//! objects and as many links).

use anyhow::Context;
use federation_proto::ObjectKind;
use hearth::accounts::merge::MergeParams;
use hearth::accounts::{AccountSettings, Accounts};
use hearth::clock::Clock;
use hearth::fixtures::seed_big_user;
use hearth::store::Store;
use hearth::store::records::{Collection, Group, Link};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("HEARTH_BENCH_OBJECTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("store"))?;
    let settings = AccountSettings {
        cluster: "zzzzz".parse()?,
        peers: Vec::new(),
        system_root_token: None,
        login_token_lifetime_secs: 3600,
        max_token_lifetime_secs: 0,
        max_login_failures: 10,
        login_failure_window_secs: 60,
        new_users_active: true,
        max_list_limit: 1000,
    };
    let accounts = Accounts::new(store, settings, Clock::System)?;

    let t = Instant::now();
    let big = seed_big_user(&accounts, "bench", n, n)?;
    println!("seeded {n} objects + {n} links in {:.2?}", t.elapsed());

    // The average size of the records the merge rewrites, for the baseline.
    let store = accounts.store();
    let mut bytes = 0usize;
    let mut count = 0usize;
    for uuid in store.owned_by(&big.old.uuid)?.iter().step_by(97) {
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
    let t = Instant::now();
    let out = accounts.merge(&caller, &params, None)?;
    let merge = t.elapsed();
    anyhow::ensure!(out["redirect_to_user_uuid"] == serde_json::json!(big.new.uuid), "merge did not redirect: {out}");
    anyhow::ensure!(store.owned_by(&big.new_owner)?.len() == big.objects, "merge did not move every object");
    let ratio = merge.as_secs_f64() / baseline.as_secs_f64().max(1e-9);
    println!("raw sled batch write of {records} records × {size} B: {baseline:.3?}");
    println!("merge of {} objects + {} links (redirect):            {merge:.3?}", big.objects, big.links);
    println!("ratio merge / baseline: {ratio:.2} (goal ≤ 3){}", if ratio <= 3.0 { "" } else { "  ABOVE GOAL" });
    drop(accounts);
    dir.close().context("removing the temporary store")?;
    Ok(())
}
