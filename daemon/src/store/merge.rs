//! A merge's row moves, below the seam: the services say what moves ([`OwnerMove`]), ask what that
//! is ([`Store::plan_merge`], read only, under the writer lock) and commit it with the rest of the
//! merge ([`Store::commit_merge`]), all or nothing. How each backend gets there stays here:
//!
//! * **sled** reads the rows, rewrites them in the daemon and writes them back in batches applied
//!   tree by tree (several times cheaper than one sled transaction, and requests are answered
//!   between batches). The first batch, everything of the merge but the moved rows, is committed
//!   with the move itself recorded in [`TreeId::MergeIntents`]; the row batches are not flushed
//!   until the end, when the record goes. A crash in between leaves the record, and opening the
//!   store rolls the merge forward before anything is served: the rows still owned by the old
//!   user (or still pointing at it) are exactly the ones left to move, so rolling forward twice
//!   does no harm. Moved link ends stay where they were in their indexes and an alias makes them
//!   findable until the tidy moves them ([`super::LinkEnd`]).
//! * **PostgreSQL** counts what moves from the indexes and moves the rows in the database server,
//!   in the merge's one transaction ([`super::pg_merge`]); an error leaves nothing.

use super::kv::{self, postgres::PgTxn};
use super::pg_merge::{self, ServerMoves};
use super::records::{Collection, Group, Link};
use super::{LinkEnd, MovedFrom, MovedName, OwnedRecord, OwnedRow, Store, StoreError, StoreResult, TreeId, WriteBatch};
use crate::clock::arv_time;
use federation_proto::{ObjectKind, ObjectUuid};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{SyncSender, sync_channel};
use time::OffsetDateTime;

/// Rows per batch of the row rewrites on sled (each batch holds sled's write lock only briefly).
const MOVE_BATCH: usize = 10_000;

/// What a merge does to the rows: the old user's groups and collections go to `new_owner_uuid`,
/// its links to `new_user_uuid`, links whose tail (and, with `move_heads`, head) is the old user
/// point at the new user, and each rewritten row gets `modified_at` = `at`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OwnerMove {
    /// The account that goes away.
    pub old_user_uuid: ObjectUuid,
    /// The account that stays: new owner of the old user's links, new end of links to the old user.
    pub new_user_uuid: ObjectUuid,
    /// New owner of the old user's groups and collections.
    pub new_owner_uuid: ObjectUuid,
    /// Whether links whose head is the old user move to the new user too (a merge with redirect).
    pub move_heads: bool,
    /// The merge's time, written as `modified_at` of every rewritten row.
    #[serde(with = "arv_time")]
    pub at: OffsetDateTime,
}

/// The rows a merge rewrites, as they will be afterwards.
#[derive(Debug, Default, Clone)]
pub(super) struct RowMoves {
    pub(super) groups: Vec<Group>,
    pub(super) collections: Vec<Collection>,
    pub(super) links: Vec<Link>,
    /// Where each moved row was, by uuid (its index entry that moves with it).
    pub(super) was: HashMap<ObjectUuid, MovedFrom>,
}

/// How a planned merge moves its rows.
#[derive(Debug)]
enum How {
    /// Read by the daemon, written back in batches.
    Rows(RowMoves),
    /// Moved by the database server.
    InServer(ServerMoves),
}

/// What [`Store::plan_merge`] found to move; [`Store::commit_merge`] moves exactly that. True
/// while the writer lock that was held for the plan is held.
#[derive(Debug)]
pub struct PlannedMerge {
    of: OwnerMove,
    how: How,
}

impl PlannedMerge {
    /// Groups moved.
    pub fn groups(&self) -> usize {
        match &self.how {
            How::Rows(r) => r.groups.len(),
            How::InServer(s) => s.groups,
        }
    }

    /// Collections moved.
    pub fn collections(&self) -> usize {
        match &self.how {
            How::Rows(r) => r.collections.len(),
            How::InServer(s) => s.collections,
        }
    }

    /// Links changed (owner, tail or head).
    pub fn links(&self) -> usize {
        match &self.how {
            How::Rows(r) => r.links.len(),
            How::InServer(s) => s.links,
        }
    }

    /// The move planned.
    pub fn owner_move(&self) -> &OwnerMove {
        &self.of
    }
}

/// Where a link was before a merge moved it: its owner, time and ends.
fn link_origin(l: &Link) -> MovedFrom {
    MovedFrom {
        owner: l.owner_uuid.clone(),
        modified_at: l.modified_at,
        link_ends: Some((l.head_uuid.clone(), l.tail_uuid.clone())),
    }
}

/// Points the link's tail (or head) at the new user if it pointed at the old one; says whether it did.
fn move_end(l: &mut Link, index: LinkEnd, m: &OwnerMove) -> bool {
    let end = if index == LinkEnd::Head { &mut l.head_uuid } else { &mut l.tail_uuid };
    if *end != m.old_user_uuid {
        return false;
    }
    *end = m.new_user_uuid.clone();
    true
}

impl RowMoves {
    fn note_origin(&mut self, row: &OwnedRow) {
        let from = match row {
            OwnedRow::Group(r) => {
                MovedFrom { owner: r.owner_uuid.clone(), modified_at: r.modified_at, link_ends: None }
            }
            OwnedRow::Collection(r) => {
                MovedFrom { owner: r.owner_uuid.clone(), modified_at: r.modified_at, link_ends: None }
            }
            OwnedRow::Link(r) => link_origin(r),
            OwnedRow::Key(_) => return,
        };
        self.was.insert(row.uuid().clone(), from);
    }

    /// Reads the rows `m` moves from `store`, changed as the merge changes them. Rows moved
    /// already (by an attempt a crash cut short) no longer match and are not read; SSH keys are
    /// the merge's first batch's business.
    pub(super) fn read(store: &Store, m: &OwnerMove) -> StoreResult<RowMoves> {
        let mut moves = RowMoves::default();
        let mut links = HashMap::<ObjectUuid, Link>::new();
        // The old user's rows; and rows a crash cut short between their owner entry, which moved
        // to the new owner at the merge's time, and the row, still the old user's (see
        // `WriteBatch::put_moved_row`).
        let mut rows = store.owned_rows(&m.old_user_uuid)?;
        for (kind, owner) in [
            (ObjectKind::Group, &m.new_owner_uuid),
            (ObjectKind::Collection, &m.new_owner_uuid),
            (ObjectKind::Link, &m.new_user_uuid),
        ] {
            rows.extend(
                store.owned_rows_at(kind, owner, m.at)?.into_iter().filter(|r| r.owner_uuid() == &m.old_user_uuid),
            );
        }
        for row in rows {
            if moves.was.contains_key(row.uuid()) {
                continue;
            }
            moves.note_origin(&row);
            match row {
                OwnedRow::Group(mut g) => {
                    g.owner_uuid = m.new_owner_uuid.clone();
                    g.modified_at = m.at;
                    moves.groups.push(g);
                }
                OwnedRow::Collection(mut c) => {
                    c.owner_uuid = m.new_owner_uuid.clone();
                    c.modified_at = m.at;
                    moves.collections.push(c);
                }
                OwnedRow::Link(mut l) => {
                    l.owner_uuid = m.new_user_uuid.clone();
                    links.insert(l.uuid.clone(), l);
                }
                OwnedRow::Key(_) => {}
            }
        }
        // Links read above are not read again: their ends are still as stored.
        for (index, wanted) in [(LinkEnd::Tail, true), (LinkEnd::Head, m.move_heads)] {
            if !wanted {
                continue;
            }
            for uuid in store.link_end_candidates(index, &m.old_user_uuid)? {
                if let Some(l) = links.get_mut(&uuid) {
                    move_end(l, index, m);
                } else if let Some(mut l) = store.object::<Link>(&uuid)? {
                    let from = link_origin(&l);
                    if !move_end(&mut l, index, m) {
                        continue;
                    }
                    moves.was.insert(uuid.clone(), from);
                    links.insert(uuid, l);
                }
            }
        }
        moves.links = links
            .into_values()
            .map(|mut l| {
                l.modified_at = m.at;
                l
            })
            .collect();
        // In key order: the store writes batches fastest so.
        moves.links.sort_unstable_by(|a, b| a.uuid.cmp(&b.uuid));
        Ok(moves)
    }

    /// The moved groups or collections whose name is one of `names`.
    fn named(&self, kind: ObjectKind, names: &HashSet<String>) -> Vec<MovedName> {
        let hit = |name: &str| names.contains(name);
        match kind {
            ObjectKind::Group => self
                .groups
                .iter()
                .filter(|g| hit(&g.name))
                .map(|g| MovedName { kind, uuid: g.uuid.clone(), name: g.name.clone(), trashed: g.trash_at.is_some() })
                .collect(),
            ObjectKind::Collection => self
                .collections
                .iter()
                .filter(|c| hit(&c.name))
                .map(|c| MovedName { kind, uuid: c.uuid.clone(), name: c.name.clone(), trashed: false })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Encodes the moved rows into batches of [`MOVE_BATCH`] and hands them to `tx`, in order. Stops
/// when the receiver is gone (it failed to apply one).
fn encode_moves(moves: &RowMoves, tx: &SyncSender<StoreResult<WriteBatch>>) {
    let mut b = WriteBatch::new();
    let encoded = encode_rows(&mut b, &moves.groups, &moves.was, tx)
        .and_then(|go| if go { encode_rows(&mut b, &moves.collections, &moves.was, tx) } else { Ok(false) })
        .and_then(|go| if go { encode_rows(&mut b, &moves.links, &moves.was, tx) } else { Ok(false) });
    match encoded {
        Ok(true) => {
            hand_over(&mut b, tx, 1);
        }
        Ok(false) => {}
        Err(e) => {
            let _ = tx.send(Err(e));
        }
    }
}

/// Adds `rows` to `b`, handing each full batch over; false when the receiver is gone.
fn encode_rows<T: OwnedRecord>(
    b: &mut WriteBatch,
    rows: &[T],
    was: &HashMap<ObjectUuid, MovedFrom>,
    tx: &SyncSender<StoreResult<WriteBatch>>,
) -> StoreResult<bool> {
    for r in rows {
        let Some(from) = was.get(r.uuid()) else {
            return Err(StoreError::Codec {
                tree: "merge",
                message: format!("moved row {} has no recorded origin", r.uuid()),
            });
        };
        b.put_moved_row(from, r)?;
        if !hand_over(b, tx, MOVE_BATCH) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Sends `b` once it holds `at_least` writes; false when the receiver is gone.
fn hand_over(b: &mut WriteBatch, tx: &SyncSender<StoreResult<WriteBatch>>, at_least: usize) -> bool {
    b.len() < at_least || tx.send(Ok(std::mem::take(b))).is_ok()
}

/// A merge's write: its first batch (everything but the moved rows), then the moved rows, then
/// [`MergeWrite::finish`]. On sled the first batch is committed (flushed) with the move recorded,
/// the row batches are applied tree by tree, unflushed ([`WriteBatch::put_moved_row`] says why that
/// is safe), and `finish` flushes them and then deletes the record. On PostgreSQL it is one SQL
/// transaction: nothing is visible before `finish` commits, and one dropped unfinished is rolled
/// back.
pub(super) struct MergeWrite<'a> {
    store: &'a Store,
    old_user: ObjectUuid,
    pg: Option<PgTxn>,
    /// The aliases this write committed already (sled).
    aliased: HashSet<(LinkEnd, ObjectUuid, ObjectUuid)>,
}

impl<'a> MergeWrite<'a> {
    /// Begins the write of move `m` with `first`.
    pub(super) fn begin(store: &'a Store, mut first: WriteBatch, m: &OwnerMove) -> StoreResult<MergeWrite<'a>> {
        let pg = match &*store.kv {
            kv::Backend::Postgres(p) => {
                let mut txn = p.begin()?;
                p.apply_in(&mut txn, first.ops)?;
                Some(txn)
            }
            kv::Backend::Sled(_) => {
                let bytes = super::encode(TreeId::MergeIntents, m)?;
                first.put_raw(TreeId::MergeIntents, m.old_user_uuid.to_string().into_bytes(), bytes);
                store.commit(first)?;
                None
            }
        };
        Ok(MergeWrite { store, old_user: m.old_user_uuid.clone(), pg, aliased: HashSet::new() })
    }

    /// Takes up the move `m` a crash cut short (its first batch committed).
    fn resume(store: &'a Store, m: &OwnerMove) -> StoreResult<MergeWrite<'a>> {
        let pg = match &*store.kv {
            kv::Backend::Postgres(p) => Some(p.begin()?),
            kv::Backend::Sled(_) => None,
        };
        Ok(MergeWrite { store, old_user: m.old_user_uuid.clone(), pg, aliased: HashSet::new() })
    }

    /// Rewrites a batch of moved rows.
    pub(super) fn rows(&mut self, mut b: WriteBatch) -> StoreResult<()> {
        let ends = std::mem::take(&mut b.ends);
        match (&mut self.pg, &*self.store.kv) {
            (Some(txn), kv::Backend::Postgres(p)) => {
                b.extend(self.store.end_ops(ends));
                p.apply_in(txn, b.ops)
            }
            _ => {
                // The aliases first, so that a rewritten row is findable as soon as it is written.
                let mut aliases = WriteBatch::new();
                for e in ends {
                    if self.aliased.insert((e.index, e.to.clone(), e.from.clone())) {
                        aliases.put_alias(e.index, &e.to, &e.from, ObjectKind::Link);
                    }
                }
                // Not flushed: sled keeps a prefix of its writes after a crash, so no row written
                // after its alias survives the alias, and `finish` flushes before the record goes.
                self.store.commit_unflushed(aliases)?;
                self.store.apply_per_tree(b)
            }
        }
    }

    /// Rewrites the moved rows in batches, each encoded on a second thread while the one before
    /// is being applied.
    fn rows_of(&mut self, moves: &RowMoves) -> StoreResult<()> {
        std::thread::scope(|s| -> StoreResult<()> {
            let (tx, rx) = sync_channel(2);
            s.spawn(move || encode_moves(moves, &tx));
            for b in rx {
                self.rows(b?)?;
            }
            Ok(())
        })
    }

    /// Moves what `how` says.
    fn apply(&mut self, m: &OwnerMove, how: &How) -> StoreResult<()> {
        match (how, &mut self.pg, &*self.store.kv) {
            (How::Rows(rows), _, _) => self.rows_of(rows),
            (How::InServer(s), Some(txn), kv::Backend::Postgres(p)) => pg_merge::apply(p, txn, m, s),
            (How::InServer(_), _, _) => {
                Err(StoreError::Backend("this store moves no rows in a database server".into()))
            }
        }
    }

    /// Whether what was written so far stays after an error (and is finished when the store is
    /// opened again), rather than going with the error.
    pub(super) fn rolls_forward(&self) -> bool {
        self.pg.is_none()
    }

    /// Completes the merge: nothing of it is left to roll forward.
    pub(super) fn finish(mut self) -> StoreResult<()> {
        let mut done = WriteBatch::new();
        done.del_raw(TreeId::MergeIntents, self.old_user.to_string().into_bytes());
        match (self.pg.take(), &*self.store.kv) {
            (Some(mut txn), kv::Backend::Postgres(p)) => {
                // Only a store copied from sled with a merge cut short holds a record here.
                p.apply_in(&mut txn, done.ops)?;
                let d = p.finish(txn)?;
                self.store.counts.apply(&d);
                Ok(())
            }
            _ => {
                // The rows are on disk before the record goes.
                self.store.flush()?;
                self.store.commit(done)
            }
        }
    }
}

impl Store {
    /// What move `m` changes, read (nothing is written): the rows, or on a backend that moves them
    /// in the database itself, their counts. Call it under the writer lock and commit the plan
    /// under the same lock: the lock keeps it true.
    pub fn plan_merge(&self, m: &OwnerMove) -> StoreResult<PlannedMerge> {
        let how = match &*self.kv {
            kv::Backend::Postgres(p) => How::InServer(pg_merge::plan(p, m)?),
            kv::Backend::Sled(_) => How::Rows(RowMoves::read(self, m)?),
        };
        Ok(PlannedMerge { of: m.clone(), how })
    }

    /// The groups or collections (`kind`) of a plan whose name is one of `names`: the ones a
    /// merge's name check must compare with what the new owner holds.
    pub fn merge_moved_named(
        &self,
        plan: &PlannedMerge,
        kind: ObjectKind,
        names: Vec<String>,
    ) -> StoreResult<Vec<MovedName>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        match (&plan.how, &*self.kv) {
            (How::Rows(r), _) => Ok(r.named(kind, &names.into_iter().collect())),
            (How::InServer(_), kv::Backend::Postgres(p)) => pg_merge::moved_named(p, &plan.of, kind, names),
            // A plan is made by the store it is committed to; answering "none" would skip the
            // name check.
            (How::InServer(_), kv::Backend::Sled(_)) => Err(StoreError::Backend(
                "a plan of another store: this store moves no rows in a database server".into(),
            )),
        }
    }

    /// Commits a merge: `first` (everything it writes but the moved rows) and the moves `plan`
    /// found, all or nothing. An error after which the merge is already durable in part (sled,
    /// which finishes it when the store is opened again) is [`StoreError::Unfinished`]: nothing
    /// else may be written to the store before it is reopened.
    pub fn commit_merge(&self, first: WriteBatch, plan: PlannedMerge) -> StoreResult<()> {
        let mut w = MergeWrite::begin(self, first, &plan.of)?;
        let rolls_forward = w.rolls_forward();
        match w.apply(&plan.of, &plan.how).and_then(|()| w.finish()) {
            Err(e) if rolls_forward => Err(StoreError::Unfinished(e.to_string())),
            other => other,
        }
    }

    /// Rolls forward the merges a crash cut short (see the module documentation). Runs when the
    /// store is opened, before anything else reads it. Returns how many there were.
    pub(super) fn finish_cut_merges(&self) -> StoreResult<usize> {
        if self.kv.iter(TreeId::MergeIntents).next().is_none() {
            return Ok(0);
        }
        // Replicas of one database may open it together (one holding a store copied from sled
        // with a merge cut short): the cluster's writer lock lets one roll forward, and the others
        // find nothing left once they have it.
        let _lock = self.cluster_writer_lock(true)?;
        let cut: Vec<OwnerMove> = self.iter_json(TreeId::MergeIntents).collect::<StoreResult<_>>()?;
        for m in &cut {
            let moves = RowMoves::read(self, m)?;
            tracing::warn!(
                old = %m.old_user_uuid,
                new = %m.new_user_uuid,
                rows = moves.groups.len() + moves.collections.len() + moves.links.len(),
                "finishing a merge interrupted by a crash"
            );
            let mut w = MergeWrite::resume(self, m)?;
            w.rows_of(&moves)?;
            w.finish()?;
        }
        Ok(cut.len())
    }

    /// How many merges a crash had cut short when this store was opened (all finished since).
    pub fn merges_finished_at_open(&self) -> usize {
        self.finished_at_open
    }

    /// Merges whose move is still recorded as unfinished (none, once a store is open: for tests).
    #[cfg(test)]
    pub(crate) fn unfinished_merges(&self) -> StoreResult<Vec<OwnerMove>> {
        self.iter_json(TreeId::MergeIntents).collect()
    }

    /// The rows move `m` rewrites as the daemon rewrites them, on any backend: what a backend that
    /// moves them itself must match (for tests).
    #[cfg(test)]
    pub(crate) fn merge_rows_as_daemon(&self, m: &OwnerMove) -> StoreResult<(Vec<Group>, Vec<Collection>, Vec<Link>)> {
        let r = RowMoves::read(self, m)?;
        Ok((r.groups, r.collections, r.links))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::accounts::Accounts;
    use crate::clock::Clock;
    use crate::fixtures::{lone_cluster_settings, seed_big_user};
    use std::path::Path;

    fn open(path: &Path) -> Accounts {
        // Also used to reopen a store these tests just dropped.
        Accounts::new(crate::store::open_after_drop(path).unwrap(), lone_cluster_settings(), Clock::System).unwrap()
    }

    /// A crash after a merge's first batch — before any row was rewritten, in the middle of the
    /// rewrites (the next batch cut between its trees), or after them but before the record of
    /// the move was deleted — leaves a store whose merge is whole once it is opened again.
    #[test]
    fn a_merge_cut_short_is_rolled_forward_when_the_store_is_opened() {
        for halves_rewritten in 0..=2usize {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("store");
            let accounts = open(&path);
            let big = seed_big_user(&accounts, "cut", 600, 600).unwrap();
            let store = accounts.store();
            let m = OwnerMove {
                old_user_uuid: big.old.uuid.clone(),
                new_user_uuid: big.new.uuid.clone(),
                new_owner_uuid: big.new_owner.clone(),
                move_heads: true,
                at: accounts.clock().now(),
            };
            let plan = store.plan_merge(&m).unwrap();
            assert_eq!((plan.groups() + plan.collections(), plan.links()), (600, 600));
            let How::Rows(moves) = &plan.how else { panic!("sled moves rows through the daemon") };
            {
                let mut w = MergeWrite::begin(store, WriteBatch::new(), &m).unwrap();
                let part = RowMoves {
                    groups: moves.groups[..moves.groups.len() * halves_rewritten / 2].to_vec(),
                    collections: moves.collections[..moves.collections.len() * halves_rewritten / 2].to_vec(),
                    links: moves.links[..moves.links.len() * halves_rewritten / 2].to_vec(),
                    was: moves.was.clone(),
                };
                w.rows_of(&part).unwrap();
                // The crash also cuts the next batch between its trees: the index entries of
                // the next collections have moved, their rows not.
                let next = moves.collections.len() * halves_rewritten / 2;
                let mut b = WriteBatch::new();
                for c in moves.collections.iter().skip(next).take(50) {
                    b.put_moved_row(&moves.was[&c.uuid], c).unwrap();
                }
                store.apply_per_tree(b.take_tree(TreeId::OwnerTimes)).unwrap();
                store.flush().unwrap();
            }
            let left = |s: &Store| {
                (
                    s.owned_records::<Group>(&big.old.uuid).unwrap().len()
                        + s.owned_records::<Collection>(&big.old.uuid).unwrap().len()
                        + s.owned_records::<Link>(&big.old.uuid).unwrap().len(),
                    s.links_by_tail(&big.old.uuid).unwrap().len(),
                    s.links_by_head(&big.old.uuid).unwrap().len(),
                    s.owned_by(&big.new_owner).unwrap().len(),
                )
            };
            if halves_rewritten < 2 {
                assert_ne!(left(store).0, 0, "the cut should leave rows to move");
            }
            assert_eq!(store.unfinished_merges().unwrap().len(), 1);
            drop(plan);
            drop(accounts);

            let accounts = open(&path);
            let store = accounts.store();
            assert_eq!(store.merges_finished_at_open(), 1);
            assert!(store.unfinished_merges().unwrap().is_empty());
            assert_eq!(left(store), (0, 0, 0, 600), "{halves_rewritten} halves rewritten before the cut");
            assert_eq!(store.owner_time_mismatches().unwrap(), Vec::<String>::new());
        }
    }
}
