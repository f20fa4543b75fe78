//! `hearth admin store copy`: a store's rows into another store (sled into PostgreSQL), through the
//! key-value seam, in pages, rerunnable, verified at the end.
//!
//! The copy walks each tree of the source and of the target side by side in key order (both
//! scans are paged: sled's iterators, PostgreSQL's keyset pages) and writes to the target only
//! what differs: a source row the target lacks or holds with other bytes is put, a target row the
//! source lacks is deleted. Every write is of a key before the target scan's current row (or of
//! one it passed), so the keyset walk never meets its own writes. Writes are committed in pages of
//! [`PAGE_ROWS`] rows (or [`PAGE_BYTES`]), so memory stays bounded whatever the store's size.
//!
//! Which targets it accepts: one with no rows outside `name_value` (a fresh database: opening it
//! wrote only settings), or one that is exactly what an earlier copy from the same source left —
//! the copy records, in `name_value` under [`MARKER`], the source's path first (a copy under way: a
//! rerun resumes it, and a daemon refuses to start on it) and at the end a digest of the whole
//! target as it left it; a target whose digest no longer matches (a daemon ran on it) or that names
//! another source is refused, so a copy never overwrites a cluster's live data. Running it twice
//! therefore gives the same database, and the second run writes nothing.

use super::kv::Entry;
use super::{StoreError, StoreResult, TreeId, WriteBatch};
use sha2::{Digest, Sha256};

/// The `name_value` key where a copy records what it left (not copied, not in any digest).
pub const MARKER: &str = "store_copy";

/// Rows a page of the copy commits at most.
const PAGE_ROWS: usize = 1000;

/// Bytes (keys and values) a page of the copy commits at most.
const PAGE_BYTES: usize = 4 << 20;

/// One tree's rows and a SHA-256 of them (every key and value, in key order, each preceded by
/// its length as four big-endian bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeDigest {
    /// The tree's name.
    pub tree: &'static str,
    /// How many rows it holds.
    pub rows: u64,
    /// The SHA-256, hex.
    pub sha256: String,
}

/// What a copy did and what it found at the end.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// Each tree's digest in the source and in the target after the copy.
    pub trees: Vec<(TreeDigest, TreeDigest)>,
    /// Rows written to the target (new or changed).
    pub written: u64,
    /// Rows deleted from the target (the source no longer has them).
    pub deleted: u64,
    /// Whether the target was an earlier copy (rather than empty).
    pub recopy: bool,
}

impl CopyReport {
    /// Whether every tree has the same rows on both sides.
    pub fn verified(&self) -> bool {
        self.trees.iter().all(|(s, t)| s == t)
    }
}

/// What an earlier copy recorded in the target.
#[derive(serde::Serialize, serde::Deserialize)]
struct Marker {
    source: String,
    /// None while the copy is under way (a rerun from the same source resumes it).
    digest: Option<String>,
    copied_at: String,
}

/// Why a daemon may not start on this store: a copy into it is under way or was cut short.
pub fn unfinished_copy(store: &super::Store) -> StoreResult<Option<String>> {
    let Some(b) = store.meta(MARKER)? else { return Ok(None) };
    match serde_json::from_slice::<Marker>(&b) {
        Ok(m) if m.digest.is_some() => Ok(None),
        Ok(m) => Ok(Some(format!(
            "a copy from {} into this store is under way or was cut short: run `hearth admin store copy` to its end first",
            m.source
        ))),
        Err(e) => Ok(Some(format!("unreadable {MARKER} record: {e}"))),
    }
}

fn skipped(tree: TreeId, key: &[u8]) -> bool {
    tree == TreeId::Meta && key == MARKER.as_bytes()
}

impl super::Store {
    /// The digest of one tree (the copy's marker left out).
    pub fn tree_digest(&self, tree: TreeId) -> StoreResult<TreeDigest> {
        let mut h = Sha256::new();
        let mut rows = 0;
        for e in self.kv.iter(tree) {
            let (k, v) = e?;
            if skipped(tree, &k) {
                continue;
            }
            rows += 1;
            for part in [&*k, &*v] {
                h.update((part.len() as u32).to_be_bytes());
                h.update(part);
            }
        }
        Ok(TreeDigest { tree: tree.name(), rows, sha256: hex::encode(h.finalize()) })
    }

    /// Every tree's digest, and one digest of them all.
    fn store_digest(&self) -> StoreResult<(Vec<TreeDigest>, String)> {
        let mut all = Sha256::new();
        let mut trees = Vec::new();
        for &t in TreeId::ALL {
            let d = self.tree_digest(t)?;
            all.update(format!("{} {} {}\n", d.tree, d.rows, d.sha256));
            trees.push(d);
        }
        Ok((trees, hex::encode(all.finalize())))
    }

    /// Makes `target` hold exactly this store's rows (see the module's doc for which targets it
    /// accepts), then verifies both sides tree by tree. `source` names this store in the marker
    /// (the copy command passes the sled directory's canonical path).
    pub fn copy_into(&self, target: &super::Store, source: &str) -> StoreResult<CopyReport> {
        let marker: Option<Marker> = match target.meta(MARKER)? {
            Some(b) => Some(serde_json::from_slice(&b).map_err(|e| {
                StoreError::Refused(format!(
                    "the target's {MARKER} record is unreadable ({e}); not a copy this version made"
                ))
            })?),
            None => None,
        };
        match &marker {
            None => {
                for &t in TreeId::ALL {
                    if t != TreeId::Meta && target.kv.iter(t).next().is_some() {
                        return Err(StoreError::Refused(format!(
                            "the target holds data (tree {}) and is not a copy: refusing to overwrite it",
                            t.name()
                        )));
                    }
                }
            }
            Some(m) => {
                if m.source != source {
                    return Err(StoreError::Refused(format!(
                        "the target is a copy of {}, not of {source}: refusing to overwrite it",
                        m.source
                    )));
                }
                let (_, now) = target.store_digest()?;
                if m.digest.as_ref().is_some_and(|d| *d != now) {
                    return Err(StoreError::Refused(format!(
                        "the target changed since it was copied from {source} at {} (a daemon ran on it?): \
                         refusing to overwrite it",
                        m.copied_at
                    )));
                }
            }
        }
        target.put_marker(source, None)?;
        let (mut written, mut deleted) = (0, 0);
        for &t in TreeId::ALL {
            let (w, d) = self.copy_tree(target, t)?;
            written += w;
            deleted += d;
        }
        // Outbox sequence numbers continue after the source's.
        target.kv.ids_at_least(self.kv.next_id()?)?;
        let mut trees = Vec::new();
        for &t in TreeId::ALL {
            trees.push((self.tree_digest(t)?, target.tree_digest(t)?));
        }
        let report = CopyReport { trees, written, deleted, recopy: marker.is_some() };
        if report.verified() {
            let (_, digest) = target.store_digest()?;
            target.put_marker(source, Some(digest))?;
        }
        Ok(report)
    }

    fn put_marker(&self, source: &str, digest: Option<String>) -> StoreResult<()> {
        let copied_at =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let m = Marker { source: source.to_string(), digest, copied_at };
        let mut b = WriteBatch::new();
        b.put_meta(MARKER, &serde_json::to_vec(&m).map_err(|e| StoreError::Backend(e.to_string()))?);
        self.commit(b)
    }

    /// One tree of [`Store::copy_into`]: (rows written, rows deleted).
    fn copy_tree(&self, target: &super::Store, tree: TreeId) -> StoreResult<(u64, u64)> {
        let mut src = self.kv.iter(tree).filter(|e| !matches!(e, Ok((k, _)) if skipped(tree, k))).peekable();
        let mut dst = target.kv.iter(tree).filter(|e| !matches!(e, Ok((k, _)) if skipped(tree, k))).peekable();
        let (mut written, mut deleted) = (0, 0);
        let mut page = WriteBatch::new();
        let mut bytes = 0;
        loop {
            let s = peek(&mut src)?;
            let d = peek(&mut dst)?;
            match (s, d) {
                (None, None) => break,
                (Some((sk, sv)), Some((dk, dv))) if sk == dk => {
                    if sv != dv {
                        bytes += sk.len() + sv.len();
                        page.put_raw(tree, sk.to_vec(), sv.to_vec());
                        written += 1;
                    }
                    src.next();
                    dst.next();
                }
                (Some((sk, sv)), d) if d.as_ref().is_none_or(|(dk, _)| sk[..] < dk[..]) => {
                    bytes += sk.len() + sv.len();
                    page.put_raw(tree, sk.to_vec(), sv.to_vec());
                    written += 1;
                    src.next();
                }
                (_, Some((dk, _))) => {
                    bytes += dk.len();
                    page.del_raw(tree, dk.to_vec());
                    deleted += 1;
                    dst.next();
                }
                (Some(_), None) => unreachable!("handled by the arm before"),
            }
            if page.len() >= PAGE_ROWS || bytes >= PAGE_BYTES {
                target.commit(std::mem::take(&mut page))?;
                bytes = 0;
            }
        }
        target.commit(page)?;
        Ok((written, deleted))
    }
}

/// The next entry of a scan without taking it (an error is taken and returned).
fn peek<I: Iterator<Item = StoreResult<Entry>>>(it: &mut std::iter::Peekable<I>) -> StoreResult<Option<Entry>> {
    match it.peek() {
        None => Ok(None),
        Some(Ok(e)) => Ok(Some(e.clone())),
        Some(Err(_)) => match it.next() {
            Some(Err(e)) => Err(e),
            _ => unreachable!("peeked an error"),
        },
    }
}
