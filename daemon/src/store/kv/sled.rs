//! The sled backend: one sled tree per [`TreeId`], named by [`TreeId::name`].
//!
//! A batch that touches one tree is one sled batch; one that touches several is one sled
//! transaction across them; one that writes counted rows is a transaction that writes them one by
//! one, learning what each replaces. Big writes that are completed by running them again (a merge's
//! row rewrites under its intent, the legacy import, the index build at open) may instead be
//! applied tree by tree ([`SledKv::apply_per_tree`]): each tree's writes atomically, the whole not.

use super::{Entry, Op, Ops, Repr, Scan, Value};
use crate::store::scan::{CountDelta, counted};
use crate::store::{StoreError, StoreResult, TreeId};
use ::sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use std::ops::Bound;
use std::path::Path;

/// sled's bytes, as [`Value`] holds them.
pub(in crate::store) type Bytes = ::sled::IVec;

impl From<::sled::Error> for StoreError {
    fn from(e: ::sled::Error) -> StoreError {
        StoreError::Backend(format!("sled: {e}"))
    }
}

fn value(v: ::sled::IVec) -> Value {
    Value(Repr::Sled(v))
}

fn entry(kv: ::sled::Result<(::sled::IVec, ::sled::IVec)>) -> StoreResult<Entry> {
    let (k, v) = kv?;
    Ok((value(k), value(v)))
}

/// Trees earlier versions kept and this one does not; dropped at open. `legacyid_legacyuuid`
/// mapped a legacy id to its account's uuid, which is derived from the legacy id itself;
/// `owneruuid_objectuuid` was the owner index, now [`TreeId::OwnerTimes`] (built at open).
const RETIRED_TREES: &[&str] = &["legacyid_legacyuuid", "owneruuid_objectuuid"];

/// The scratch tree of the benchmarks' baseline.
const BASELINE_SCRATCH: &str = "bench_scratch";

/// An open sled database and its trees.
pub(in crate::store) struct SledKv {
    db: ::sled::Db,
    trees: Vec<::sled::Tree>,
}

impl SledKv {
    /// Opens (or creates) the database in `dir` with a page cache of `cache_bytes`.
    pub(in crate::store) fn open(dir: &Path, cache_bytes: u64) -> StoreResult<SledKv> {
        let db =
            ::sled::Config::new().path(dir).mode(::sled::Mode::HighThroughput).cache_capacity(cache_bytes).open()?;
        let mut trees = Vec::with_capacity(TreeId::ALL.len());
        for &t in TreeId::ALL {
            trees.push(db.open_tree(t.name())?);
        }
        for gone in RETIRED_TREES {
            db.drop_tree(gone)?;
        }
        Ok(SledKv { db, trees })
    }

    fn tree(&self, t: TreeId) -> &::sled::Tree {
        // `open` opens every TreeId in declaration order, so the index always exists.
        &self.trees[t as usize]
    }

    pub(super) fn get(&self, tree: TreeId, key: &[u8]) -> StoreResult<Option<Value>> {
        Ok(self.tree(tree).get(key)?.map(value))
    }

    pub(super) fn scan_prefix(&self, tree: TreeId, p: &[u8], rev: bool) -> Scan<'_> {
        let it = self.tree(tree).scan_prefix(p);
        if rev { Box::new(it.rev().map(entry)) } else { Box::new(it.map(entry)) }
    }

    pub(super) fn range(&self, tree: TreeId, lo: Bound<Vec<u8>>, hi: Bound<Vec<u8>>, rev: bool) -> Scan<'_> {
        let it = self.tree(tree).range::<Vec<u8>, _>((lo, hi));
        if rev { Box::new(it.rev().map(entry)) } else { Box::new(it.map(entry)) }
    }

    pub(super) fn len(&self, tree: TreeId) -> usize {
        self.tree(tree).len()
    }

    pub(super) fn flush(&self) -> StoreResult<()> {
        self.db.flush()?;
        Ok(())
    }

    pub(super) fn next_id(&self) -> StoreResult<u64> {
        Ok(self.db.generate_id()?)
    }

    pub(super) fn insert_if_absent(&self, tree: TreeId, key: &[u8], v: &[u8]) -> StoreResult<bool> {
        Ok(self.tree(tree).compare_and_swap(key, None as Option<&[u8]>, Some(v))?.is_ok())
    }

    pub(super) fn replace_if(&self, tree: TreeId, key: &[u8], old: &[u8], new: &[u8]) -> StoreResult<bool> {
        Ok(self.tree(tree).compare_and_swap(key, Some(old), Some(new))?.is_ok())
    }

    pub(super) fn delete_if(&self, tree: TreeId, key: &[u8], old: &[u8]) -> StoreResult<bool> {
        Ok(self.tree(tree).compare_and_swap(key, Some(old), None as Option<&[u8]>)?.is_ok())
    }

    pub(super) fn take(&self, tree: TreeId, key: &[u8]) -> StoreResult<Option<Value>> {
        let got = self.tree(tree).remove(key)?;
        if got.is_some() {
            self.db.flush()?;
        }
        Ok(got.map(value))
    }

    /// Applies a batch atomically; flushed to the log before it returns when `flush`. Unflushed,
    /// the next flush (any commit's, or sled's own within 500 ms) makes it durable, and a flush
    /// makes durable every write before it, so a crash keeps a prefix of what was applied.
    pub(super) fn commit(&self, ops: Ops, flush: bool) -> StoreResult<CountDelta> {
        if ops.is_empty() {
            return Ok(CountDelta::default());
        }
        let d = if ops.keys().any(|t| counted(*t)) { self.commit_counted(&ops)? } else { self.commit_plain(ops)? };
        if flush {
            self.db.flush()?;
        }
        Ok(d)
    }

    fn commit_plain(&self, ops: Ops) -> StoreResult<CountDelta> {
        let ids: Vec<TreeId> = ops.keys().copied().collect();
        let sled_batches: Vec<::sled::Batch> = ops.into_values().map(batch).collect();
        if ids.len() == 1 {
            self.tree(ids[0]).apply_batch(sled_batches.into_iter().next().unwrap_or_default())?;
        } else {
            let trees: Vec<&::sled::Tree> = ids.iter().map(|t| self.tree(*t)).collect();
            trees
                .as_slice()
                .transaction(|tx| {
                    for (view, b) in tx.iter().zip(&sled_batches) {
                        view.apply_batch(b)?;
                    }
                    Ok::<(), ConflictableTransactionError<()>>(())
                })
                .map_err(tx_error)?;
        }
        Ok(CountDelta::default())
    }

    /// A batch that writes counted rows: one transaction that writes those rows one by one,
    /// learning what each replaces, so that the counts move by exactly what changed.
    fn commit_counted(&self, ops: &Ops) -> StoreResult<CountDelta> {
        let ids: Vec<TreeId> = ops.keys().copied().collect();
        let trees: Vec<&::sled::Tree> = ids.iter().map(|t| self.tree(*t)).collect();
        let delta = std::cell::Cell::new(CountDelta::default());
        trees
            .as_slice()
            .transaction(|tx| {
                let mut d = CountDelta::default();
                for ((view, ops), id) in tx.iter().zip(ops.values()).zip(&ids) {
                    for op in ops {
                        let old = match &op.value {
                            Some(v) => view.insert(op.key.as_slice(), v.as_slice())?,
                            None => view.remove(op.key.as_slice())?,
                        };
                        if counted(*id) {
                            d.add(*id, old.as_deref(), op.value.as_deref());
                        }
                    }
                }
                delta.set(d);
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(tx_error)?;
        Ok(delta.get())
    }

    /// Applies a batch tree by tree: each tree's writes atomically, the whole batch not. Without a
    /// transaction sled neither reads every key before writing it nor holds its global write lock
    /// across all trees, which makes this several times cheaper for big batches. A counted tree's
    /// writes that move counts first read what they replace (or what an earlier write of the same
    /// batch left: a key may be written twice). Writing them one by one to learn that instead was
    /// no cheaper (the legacy bench's import: 68 s, against 44–67 s this way), so they stay one sled
    /// batch. Not flushed. `moved` is told each tree's count delta once it is applied.
    pub(in crate::store) fn apply_per_tree(&self, ops: Ops, moved: &dyn Fn(&CountDelta)) -> StoreResult<()> {
        for (tree, ops) in ops {
            let t = self.tree(tree);
            let mut d = CountDelta::default();
            if counted(tree) && ops.iter().any(|op| !op.neutral) {
                let mut earlier: std::collections::HashMap<&[u8], Option<&[u8]>> = Default::default();
                for op in ops.iter().filter(|op| !op.neutral) {
                    let stored = match earlier.get(op.key.as_slice()) {
                        Some(_) => None,
                        None => t.get(&op.key)?,
                    };
                    let old = earlier.get(op.key.as_slice()).copied().unwrap_or(stored.as_deref());
                    d.add(tree, old, op.value.as_deref());
                    earlier.insert(op.key.as_slice(), op.value.as_deref());
                }
            }
            t.apply_batch(batch(ops))?;
            moved(&d);
        }
        Ok(())
    }

    /// Empties a tree (tests of the index build at open).
    pub(in crate::store) fn clear(&self, tree: TreeId) -> StoreResult<()> {
        self.tree(tree).clear()?;
        Ok(())
    }

    /// Writes `n` raw records of `size` bytes into a scratch tree in one batch and flushes.
    pub(in crate::store) fn raw_batch_write_baseline(&self, n: usize, size: usize) -> StoreResult<()> {
        let t = self.db.open_tree(BASELINE_SCRATCH)?;
        let mut b = ::sled::Batch::default();
        let v = vec![b'x'; size];
        for i in 0..n {
            b.insert(format!("k{i:012}").as_bytes(), v.as_slice());
        }
        t.apply_batch(b)?;
        self.db.flush()?;
        Ok(())
    }

    /// Removes the baseline's scratch tree.
    pub(in crate::store) fn drop_baseline_scratch(&self) -> StoreResult<()> {
        self.db.drop_tree(BASELINE_SCRATCH)?;
        Ok(())
    }
}

fn batch(ops: Vec<Op>) -> ::sled::Batch {
    let mut b = ::sled::Batch::default();
    for op in ops {
        match op.value {
            Some(v) => b.insert(op.key, v),
            None => b.remove(op.key),
        }
    }
    b
}

fn tx_error(e: TransactionError<()>) -> StoreError {
    match e {
        TransactionError::Storage(e) => e.into(),
        TransactionError::Abort(()) => StoreError::Backend("sled: transaction aborted".into()),
    }
}

/// Whether opening failed because another handle still holds the data dir's lock.
pub(in crate::store) fn is_lock_error(e: &StoreError) -> bool {
    matches!(e, StoreError::Backend(m) if m.contains("could not acquire lock"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// A store written by an earlier version loses the trees this one retired when it is opened,
    /// and keeps everything else.
    #[test]
    fn retired_trees_are_dropped_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = ::sled::open(dir.path()).unwrap();
            db.open_tree(RETIRED_TREES[0]).unwrap().insert(b"legacy-1", b"x").unwrap();
            db.open_tree(TreeId::UserEmail.name()).unwrap().insert(b"k", b"v").unwrap();
            db.flush().unwrap();
        }
        let kv = (0..100)
            .find_map(|_| match SledKv::open(dir.path(), 1 << 20) {
                Err(e) if is_lock_error(&e) => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    None
                }
                other => Some(other.unwrap()),
            })
            .unwrap();
        let names: Vec<Vec<u8>> = kv.db.tree_names().into_iter().map(|n| n.to_vec()).collect();
        assert!(!names.contains(&RETIRED_TREES[0].as_bytes().to_vec()), "{names:?}");
        assert_eq!(kv.get(TreeId::UserEmail, b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }
}
