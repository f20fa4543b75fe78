//! `hearth admin store copy --from <sled data dir> --to <postgres url>`: moves a stopped cluster's
//! store from sled into PostgreSQL (the typed store's `copy` module does the work), then prints
//! each tree's rows and checksum on both sides. Exits non-zero when they differ.

use crate::store::{PostgresOptions, Store, StoreOptions};
use anyhow::Context;
use std::path::{Path, PathBuf};

/// Where the sled store of `dir` is: `dir/store` (a data dir) or `dir` itself (a store dir).
fn sled_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    for d in [dir.join("store"), dir.to_path_buf()] {
        if d.join("conf").is_file() && d.join("db").is_file() {
            return Ok(d);
        }
    }
    anyhow::bail!("no sled store in {} (expected a cluster's data dir or its store dir)", dir.display())
}

/// Runs the copy; the error when the source cannot be opened, the target refuses, or the
/// verification finds a difference.
pub fn copy(from: &Path, to: &str, pool_size: usize) -> anyhow::Result<()> {
    let dir = sled_dir(from)?;
    let source_name = std::fs::canonicalize(&dir).unwrap_or(dir.clone()).display().to_string();
    let source = Store::open(&dir).map_err(|e| {
        if e.to_string().contains("could not acquire lock") {
            anyhow::anyhow!("the sled store in {} is in use (a daemon holds its lock): stop it first", dir.display())
        } else {
            anyhow::anyhow!("opening the sled store in {}: {e}", dir.display())
        }
    })?;
    crate::store::parse_postgres_url(to).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    let target = Store::open_with(
        &dir,
        StoreOptions { postgres: Some(PostgresOptions { url: to.to_string(), pool_size }), ..Default::default() },
    )
    .context("opening the PostgreSQL store")?;
    let report = source.copy_into(&target, &source_name).context("copying")?;
    outln!(
        "{} {source_name}: {} rows written, {} deleted",
        if report.recopy { "copied again from" } else { "copied from" },
        report.written,
        report.deleted
    );
    outln!("{:<28} {:>9} {:>9} {:<16} {:<16} ok", "tree", "source", "target", "source sha256", "target sha256");
    for (s, t) in &report.trees {
        outln!(
            "{:<28} {:>9} {:>9} {:<16} {:<16} {}",
            s.tree,
            s.rows,
            t.rows,
            &s.sha256[..16],
            &t.sha256[..16],
            if s == t { "yes" } else { "NO" }
        );
    }
    if !report.verified() {
        let bad: Vec<&str> = report.trees.iter().filter(|(s, t)| s != t).map(|(s, _)| s.tree).collect();
        anyhow::bail!("verification failed: {} differ", bad.join(", "));
    }
    outln!("verified: every tree has the same rows and checksum on both sides");
    Ok(())
}
