//! The key-value backends under the typed store: the one place a backend's types appear.
//!
//! The typed layer ([`super::Store`], [`super::WriteBatch`], `scan`, `decoded`) speaks only to
//! [`Backend`]: point reads, ordered scans (prefix or range, forward or reverse) returned as
//! iterators, an atomic commit of a multi-tree batch (flushed, or not for caches), insert-if-absent
//! (the nonce guard), take (read and delete, for single-use state), a durable id sequence, flush,
//! and [`Backend::large_write`] for an all-or-nothing change too big for one sled transaction.
//!
//! * [`sled`](self::sled): one sled tree per [`TreeId`]; the mechanisms that make big writes cheap
//!   there (per-tree batches, a merge's move recorded and rolled forward at open) live here and in
//!   the typed layer's `merge` module, never above the store.
//! * [`postgres`]: one table `kv(tree, k, v)` keyed by `(tree, k)`; `bytea` compares bytewise, as
//!   sled orders keys, so every scan is a walk of the primary key, read in pages (keyset).

pub(super) mod postgres;
pub(super) mod sled;

use super::scan::CountDelta;
use super::{StoreResult, TreeId};
use std::collections::BTreeMap;
use std::ops::Bound;

/// Bytes a backend returned: a key or a value. Cheap to clone on sled (reference counted).
#[derive(Clone)]
pub struct Value(Repr);

#[derive(Clone)]
enum Repr {
    Sled(self::sled::Bytes),
    Owned(std::sync::Arc<[u8]>),
}

impl Value {
    pub(super) fn owned(v: Vec<u8>) -> Value {
        Value(Repr::Owned(v.into()))
    }
}

impl std::ops::Deref for Value {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Sled(b) => b,
            Repr::Owned(b) => b,
        }
    }
}

impl AsRef<[u8]> for Value {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

/// A key and its value, as a scan yields them.
pub type Entry = (Value, Value);

/// What a scan yields, in key order (or reversed).
pub type Scan<'a> = Box<dyn Iterator<Item = StoreResult<Entry>> + 'a>;

/// One write of a batch.
#[derive(Debug, Clone)]
pub(super) struct Op {
    pub(super) key: Vec<u8>,
    pub(super) value: Option<Vec<u8>>,
    /// A rewrite that moves no count (a merge's moved rows): the per-tree path need not read what it replaces.
    pub(super) neutral: bool,
}

/// A batch's writes, by tree, each tree's in the order they were made.
pub(super) type Ops = BTreeMap<TreeId, Vec<Op>>;

/// The first key after every key that starts with `p` (none: no such bound, `p` is all `0xff`).
pub(super) fn prefix_end(p: &[u8]) -> Option<Vec<u8>> {
    let mut end = p.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The store's backend.
pub(super) enum Backend {
    /// An embedded sled database in the data dir.
    Sled(self::sled::SledKv),
    /// A PostgreSQL database.
    Postgres(postgres::PgKv),
}

impl Backend {
    /// The value under `key`.
    pub(super) fn get(&self, tree: TreeId, key: &[u8]) -> StoreResult<Option<Value>> {
        match self {
            Backend::Sled(s) => s.get(tree, key),
            Backend::Postgres(p) => p.get(tree, key),
        }
    }

    /// The entries whose keys start with `p`, in key order (`rev`: reversed).
    pub(super) fn scan_prefix(&self, tree: TreeId, p: &[u8], rev: bool) -> Scan<'_> {
        match self {
            Backend::Sled(s) => s.scan_prefix(tree, p, rev),
            Backend::Postgres(pg) => {
                let hi = prefix_end(p).map_or(Bound::Unbounded, Bound::Excluded);
                pg.range(tree, Bound::Included(p.to_vec()), hi, rev)
            }
        }
    }

    /// How many entries have keys that start with `p` (PostgreSQL counts them in the server,
    /// without sending the values).
    pub(super) fn count_prefix(&self, tree: TreeId, p: &[u8]) -> StoreResult<usize> {
        match self {
            Backend::Sled(s) => s.scan_prefix(tree, p, false).try_fold(0, |n, e| e.map(|_| n + 1)),
            Backend::Postgres(pg) => pg.count_range(tree, p.to_vec(), prefix_end(p)),
        }
    }

    /// The entries within the bounds, in key order (`rev`: reversed).
    pub(super) fn range(&self, tree: TreeId, lo: Bound<Vec<u8>>, hi: Bound<Vec<u8>>, rev: bool) -> Scan<'_> {
        match self {
            Backend::Sled(s) => s.range(tree, lo, hi, rev),
            Backend::Postgres(p) => p.range(tree, lo, hi, rev),
        }
    }

    /// Every entry of a tree, in key order.
    pub(super) fn iter(&self, tree: TreeId) -> Scan<'_> {
        self.range(tree, Bound::Unbounded, Bound::Unbounded, false)
    }

    /// Applies `ops` atomically (flushed when `flush`) and returns how they moved the counts.
    pub(super) fn commit(&self, ops: Ops, flush: bool) -> StoreResult<CountDelta> {
        match self {
            Backend::Sled(s) => s.commit(ops, flush),
            Backend::Postgres(p) => p.commit(ops, flush),
        }
    }

    /// Writes `value` under `key` unless the key is there; whether it wrote. Not flushed.
    pub(super) fn insert_if_absent(&self, tree: TreeId, key: &[u8], value: &[u8]) -> StoreResult<bool> {
        match self {
            Backend::Sled(s) => s.insert_if_absent(tree, key, value),
            Backend::Postgres(p) => p.insert_if_absent(tree, key, value),
        }
    }

    /// Replaces the value under `key` with `new` if it is `old`, atomically; whether it did. Not
    /// flushed (leases: a lost renewal only lets the lease expire).
    pub(super) fn replace_if(&self, tree: TreeId, key: &[u8], old: &[u8], new: &[u8]) -> StoreResult<bool> {
        match self {
            Backend::Sled(s) => s.replace_if(tree, key, old, new),
            Backend::Postgres(p) => p.replace_if(tree, key, old, new),
        }
    }

    /// Deletes the value under `key` if it is `old`, atomically; whether it did. Not flushed.
    pub(super) fn delete_if(&self, tree: TreeId, key: &[u8], old: &[u8]) -> StoreResult<bool> {
        match self {
            Backend::Sled(s) => s.delete_if(tree, key, old),
            Backend::Postgres(p) => p.delete_if(tree, key, old),
        }
    }

    /// Reads and deletes, atomically, the value under `key` (flushed): one caller gets it.
    pub(super) fn take(&self, tree: TreeId, key: &[u8]) -> StoreResult<Option<Value>> {
        match self {
            Backend::Sled(s) => s.take(tree, key),
            Backend::Postgres(p) => p.take(tree, key),
        }
    }

    /// A unique, increasing number that survives restarts.
    pub(super) fn next_id(&self) -> StoreResult<u64> {
        match self {
            Backend::Sled(s) => s.next_id(),
            Backend::Postgres(p) => p.next_id(),
        }
    }

    /// Makes every later [`Backend::next_id`] greater than `n` (a store copied into this one).
    pub(super) fn ids_at_least(&self, n: u64) -> StoreResult<()> {
        match self {
            Backend::Sled(s) => {
                while s.next_id()? < n {}
                Ok(())
            }
            Backend::Postgres(p) => p.ids_at_least(n),
        }
    }

    /// Makes every write before it durable.
    pub(super) fn flush(&self) -> StoreResult<()> {
        match self {
            Backend::Sled(s) => s.flush(),
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// Number of entries in a tree.
    pub(super) fn len(&self, tree: TreeId) -> StoreResult<usize> {
        match self {
            Backend::Sled(s) => Ok(s.len(tree)),
            Backend::Postgres(p) => p.len(tree),
        }
    }

    /// The counts as the backend keeps them (PostgreSQL's table `counts`); none when they are
    /// to be counted from the rows (sled).
    pub(super) fn stored_counts(&self) -> StoreResult<Option<CountDelta>> {
        match self {
            Backend::Sled(_) => Ok(None),
            Backend::Postgres(p) => p.stored_counts().map(Some),
        }
    }

    /// Empties a tree.
    pub(super) fn clear(&self, tree: TreeId) -> StoreResult<()> {
        match self {
            Backend::Sled(s) => s.clear(tree),
            Backend::Postgres(p) => p.clear(tree),
        }
    }

    /// Which backend this is (for messages and tests).
    pub(super) fn name(&self) -> &'static str {
        match self {
            Backend::Sled(_) => "sled",
            Backend::Postgres(_) => "postgres",
        }
    }
}
