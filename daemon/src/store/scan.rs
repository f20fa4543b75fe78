//! What list requests read: typed candidate rows from an index or a key range, in a known order,
//! and the counts an unfiltered list answers `items_available` from.
//!
//! The listing planner (`accounts::listing`) picks a [`Candidates`] source; [`Store::candidate_rows`]
//! yields the decoded rows it names, each checked against the row itself (an index entry is only a
//! hint: a stale one, e.g. a time entry a merge's row rewrite left behind, is never an answer).
//!
//! [`TreeId::ListTimes`] orders users, groups, collections, links and SSH keys by `created_at` and by
//! `modified_at`, keyed by the time as the API formats it (fixed width, so byte order is time order
//! and the same order a list sorts its views in). [`TreeId::ShownUsernames`] finds users by the
//! username their view shows. Both are written with the rows (see [`WriteBatch::put_user`] and
//! [`OwnedRecord::extra_index_keys`]); data written before they existed gets them at open
//! ([`Store::build_list_indexes`], recorded in the meta tree).

use super::records::{AuthorizedKey, Collection, Group, Link, User};
use super::{LinkEnd, OwnedRecord, Store, StoreResult, TreeId, WriteBatch, decode, kv, pair, prefix};
use crate::clock::format_time;
use federation_proto::{ObjectKind, ObjectUuid};
use serde::de::{DeserializeOwned, IgnoredAny};
use std::ops::Bound;
use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;

/// An index entry: its tree and key.
type IndexKey = (TreeId, Vec<u8>);

/// A time attribute with an ordered index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeField {
    /// `created_at`.
    Created,
    /// `modified_at`.
    Modified,
}

impl TimeField {
    /// The attribute's name in the API views.
    pub fn attr(self) -> &'static str {
        match self {
            TimeField::Created => "created_at",
            TimeField::Modified => "modified_at",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            TimeField::Created => "c",
            TimeField::Modified => "m",
        }
    }
}

/// Where a list's candidate rows come from, and so the order they come in.
#[derive(Debug, Clone, PartialEq)]
pub enum Candidates {
    /// These rows (of the listed kind; others are skipped), in uuid order.
    Uuids(Vec<ObjectUuid>),
    /// The rows whose uuid is within the bounds, in uuid order (descending: reversed).
    UuidRange {
        /// Lower bound on the uuid.
        lower: Bound<String>,
        /// Upper bound on the uuid.
        upper: Bound<String>,
        /// Largest first.
        descending: bool,
    },
    /// The rows by a time attribute, then uuid (ascending, also when the time is descending).
    Time {
        /// Which time.
        field: TimeField,
        /// Where to start, as formatted: ascending, no row before this time; descending, none after.
        from: Option<String>,
        /// Latest first.
        descending: bool,
    },
    /// The rows of one owner by `modified_at`, then uuid (as [`Candidates::Time`]), from
    /// [`TreeId::OwnerTimes`].
    OwnerTime {
        /// The owner.
        owner: ObjectUuid,
        /// Where to start, as formatted (as in [`Candidates::Time`]).
        from: Option<String>,
        /// Latest first.
        descending: bool,
    },
    /// The rows one owner holds (the owner index), in uuid order.
    Owned(ObjectUuid),
    /// The links with this uuid at one end, in uuid order.
    LinkEnd(LinkEnd, ObjectUuid),
    /// Users with this email, in uuid order.
    Email(String),
    /// Users whose view shows this username, in uuid order.
    Username(String),
}

/// A record a list can read from [`Store::candidate_rows`].
pub trait Listed: DeserializeOwned {
    /// Its tree.
    const ROWS_TREE: TreeId;
    /// Its uuid kind.
    const ROWS_KIND: ObjectKind;
    /// Its uuid.
    fn list_uuid(&self) -> &ObjectUuid;
    /// Its `created_at` and `modified_at`.
    fn times(&self) -> (OffsetDateTime, OffsetDateTime);
    /// One of its times.
    fn time(&self, field: TimeField) -> OffsetDateTime {
        match field {
            TimeField::Created => self.times().0,
            TimeField::Modified => self.times().1,
        }
    }
    /// Its owner (none: the kind has no owner index).
    fn owner(&self) -> Option<&ObjectUuid> {
        None
    }
    /// Where its row says it belongs in `index` (none: the kind is not in that index).
    fn indexed_at(&self, _index: LinkEnd) -> Option<&ObjectUuid> {
        None
    }
    /// Its email (users).
    fn email(&self) -> Option<&str> {
        None
    }
    /// The username its view shows (users).
    fn shown_username(&self) -> Option<&str> {
        None
    }
}

macro_rules! listed_owned {
    ($($t:ty),*) => {$(
        impl Listed for $t {
            const ROWS_TREE: TreeId = <$t as OwnedRecord>::TREE;
            const ROWS_KIND: ObjectKind = <$t as OwnedRecord>::KIND;
            fn list_uuid(&self) -> &ObjectUuid {
                &self.uuid
            }
            fn times(&self) -> (OffsetDateTime, OffsetDateTime) {
                (self.created_at, self.modified_at)
            }
            fn owner(&self) -> Option<&ObjectUuid> {
                Some(&self.owner_uuid)
            }
            fn indexed_at(&self, index: LinkEnd) -> Option<&ObjectUuid> {
                match (index, self.link_ends()) {
                    (LinkEnd::Head, Some((head, _))) => Some(head),
                    (LinkEnd::Tail, Some((_, tail))) => Some(tail),
                    _ => None,
                }
            }
        }
    )*};
}

listed_owned!(Group, Collection, Link, AuthorizedKey);

impl Listed for User {
    const ROWS_TREE: TreeId = TreeId::Users;
    const ROWS_KIND: ObjectKind = ObjectKind::User;
    fn list_uuid(&self) -> &ObjectUuid {
        &self.uuid
    }
    fn times(&self) -> (OffsetDateTime, OffsetDateTime) {
        (self.created_at, self.modified_at)
    }
    fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }
    fn shown_username(&self) -> Option<&str> {
        User::shown_username(self)
    }
}

/// `kind infix \0 field tag \0`: where one kind's entries for one time start in [`TreeId::ListTimes`].
pub(super) fn time_prefix(kind: ObjectKind, field: TimeField) -> Vec<u8> {
    let mut k = pair(kind.infix(), field.tag());
    k.push(0);
    k
}

/// The [`TreeId::ListTimes`] entries of a row: `kind \0 field \0 formatted time \0 uuid`.
pub(super) fn time_keys(
    kind: ObjectKind,
    uuid: &ObjectUuid,
    created: OffsetDateTime,
    modified: OffsetDateTime,
) -> Vec<(TreeId, Vec<u8>)> {
    let me = uuid.to_string();
    [(TimeField::Created, created), (TimeField::Modified, modified)]
        .into_iter()
        .map(|(f, t)| {
            let mut k = time_prefix(kind, f);
            k.extend_from_slice(&pair(&format_time(t), &me));
            (TreeId::ListTimes, k)
        })
        .collect()
}

/// The [`TreeId::OwnerTimes`] entry of an owned row: `owner \0 kind \0 formatted modified_at \0 uuid`.
pub(super) fn owner_time_key(
    kind: ObjectKind,
    owner: &ObjectUuid,
    uuid: &ObjectUuid,
    modified: OffsetDateTime,
) -> Vec<u8> {
    let mut k = owner_time_prefix(kind, owner, modified);
    k.extend_from_slice(uuid.to_string().as_bytes());
    k
}

/// `owner \0 kind \0 formatted time \0`: where one owner's entries of one kind at one time start.
pub(super) fn owner_time_prefix(kind: ObjectKind, owner: &ObjectUuid, at: OffsetDateTime) -> Vec<u8> {
    let mut k = owner_kind_prefix(kind, &owner.to_string());
    k.extend_from_slice(&prefix(&format_time(at)));
    k
}

/// `owner \0 kind \0`: where one owner's entries of one kind start in [`TreeId::OwnerTimes`].
pub(super) fn owner_kind_prefix(kind: ObjectKind, owner: &str) -> Vec<u8> {
    let mut k = pair(owner, kind.infix());
    k.push(0);
    k
}

/// The list index entries of an owned row: its times, and its place among its owner's rows.
pub(super) fn owned_list_keys(
    kind: ObjectKind,
    uuid: &ObjectUuid,
    owner: &ObjectUuid,
    created: OffsetDateTime,
    modified: OffsetDateTime,
) -> Vec<(TreeId, Vec<u8>)> {
    let mut keys = time_keys(kind, uuid, created, modified);
    keys.push((TreeId::OwnerTimes, owner_time_key(kind, owner, uuid, modified)));
    keys
}

/// Whether entries of `tree` are list index entries: written with every write of their row, even
/// when unchanged (see [`WriteBatch::put_object`]).
pub(super) fn list_index(tree: TreeId) -> bool {
    matches!(tree, TreeId::ListTimes | TreeId::ShownUsernames | TreeId::OwnerTimes)
}

/// The list index entries of a user: its times and the username its view shows.
pub(super) fn user_list_keys(u: &User) -> Vec<(TreeId, Vec<u8>)> {
    let mut keys = time_keys(ObjectKind::User, &u.uuid, u.created_at, u.modified_at);
    if let Some(name) = u.shown_username() {
        keys.push((TreeId::ShownUsernames, pair(name, &u.uuid.to_string())));
    }
    keys
}

/// Counts kept in memory: computed at open, moved by every committed write (see [`Store::commit`]).
#[derive(Debug, Default)]
pub(super) struct Counts {
    listed_users: AtomicI64,
    groups: AtomicI64,
    trashed_groups: AtomicI64,
    collections: AtomicI64,
    links: AtomicI64,
    keys: AtomicI64,
}

/// What one write changes of [`Counts`].
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct CountDelta {
    listed_users: i64,
    groups: i64,
    trashed_groups: i64,
    collections: i64,
    links: i64,
    keys: i64,
}

#[derive(serde::Deserialize)]
struct RedirectOnly {
    redirect_to_user_uuid: Option<IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct TrashOnly {
    #[serde(default)]
    trash_at: Option<IgnoredAny>,
}

/// Whether writes to `tree` move a count.
pub(super) fn counted(tree: TreeId) -> bool {
    matches!(tree, TreeId::Users | TreeId::Groups | TreeId::Collections | TreeId::Links | TreeId::Keys)
}

fn listed_user(bytes: &[u8]) -> bool {
    serde_json::from_slice::<RedirectOnly>(bytes).is_ok_and(|u| u.redirect_to_user_uuid.is_none())
}

fn trashed_group(bytes: &[u8]) -> bool {
    serde_json::from_slice::<TrashOnly>(bytes).is_ok_and(|g| g.trash_at.is_some())
}

impl CountDelta {
    /// The deltas by name (as the PostgreSQL backend's table `counts` names them).
    pub(super) fn named(&self) -> [(&'static str, i64); 6] {
        [
            ("listed_users", self.listed_users),
            ("groups", self.groups),
            ("trashed_groups", self.trashed_groups),
            ("collections", self.collections),
            ("links", self.links),
            ("keys", self.keys),
        ]
    }

    /// Sets the delta named `name` (one of [`CountDelta::named`]'s; others are ignored).
    pub(super) fn set(&mut self, name: &str, n: i64) {
        match name {
            "listed_users" => self.listed_users = n,
            "groups" => self.groups = n,
            "trashed_groups" => self.trashed_groups = n,
            "collections" => self.collections = n,
            "links" => self.links = n,
            "keys" => self.keys = n,
            _ => {}
        }
    }

    /// Adds another delta.
    pub(super) fn merge(&mut self, o: &CountDelta) {
        for (name, n) in o.named() {
            let mine = self.named().iter().find(|m| m.0 == name).map_or(0, |m| m.1);
            self.set(name, mine + n);
        }
    }

    /// Adds what replacing `old` by `new` (either absent) in `tree` changes.
    pub(super) fn add(&mut self, tree: TreeId, old: Option<&[u8]>, new: Option<&[u8]>) {
        let d = i64::from(new.is_some()) - i64::from(old.is_some());
        let by = |f: fn(&[u8]) -> bool| i64::from(new.is_some_and(f)) - i64::from(old.is_some_and(f));
        match tree {
            TreeId::Users => self.listed_users += by(listed_user),
            TreeId::Groups => {
                self.groups += d;
                self.trashed_groups += by(trashed_group);
            }
            TreeId::Collections => self.collections += d,
            TreeId::Links => self.links += d,
            TreeId::Keys => self.keys += d,
            _ => {}
        }
    }
}

impl Counts {
    pub(super) fn apply(&self, d: &CountDelta) {
        for (c, n) in [
            (&self.listed_users, d.listed_users),
            (&self.groups, d.groups),
            (&self.trashed_groups, d.trashed_groups),
            (&self.collections, d.collections),
            (&self.links, d.links),
            (&self.keys, d.keys),
        ] {
            if n != 0 {
                c.fetch_add(n, Ordering::SeqCst);
            }
        }
    }
}

fn read(c: &AtomicI64) -> u64 {
    u64::try_from(c.load(Ordering::SeqCst)).unwrap_or(0)
}

/// The meta entry that says the list indexes are built (its value: the version built).
const LIST_INDEX_META: &str = "list_indexes";
/// Version of the list indexes: bump it to rebuild them at the next open (2 added
/// [`TreeId::OwnerTimes`]).
const LIST_INDEX_VERSION: &[u8] = b"2";
/// Rows a list reads by uuid in one PostgreSQL query.
const ROWS_PER_QUERY: usize = 128;
/// Rows per batch of the build at open.
const BUILD_BATCH: usize = 10_000;

thread_local! {
    /// The counts a request on this thread reads (see [`Store::count_snapshot`]), with the
    /// store they are of.
    static COUNT_SNAPSHOT: std::cell::Cell<Option<(usize, CountDelta)>> = const { std::cell::Cell::new(None) };
}

/// The counts of a store read once, for the rest of a request on this thread (see
/// [`Store::count_snapshot`]); the counts are read afresh again once it is dropped.
///
/// It borrows the store (so the store's address, which keys the snapshot, cannot be reused while
/// it is held) and is not `Send` (a future holding it across an `.await` could resume on another
/// thread).
#[must_use = "the snapshot holds only while it is kept"]
pub struct CountSnapshot<'a> {
    /// What to put back when dropped (none: this guard set nothing).
    restore: Option<Option<(usize, CountDelta)>>,
    _store: std::marker::PhantomData<(&'a Store, *const ())>,
}

impl Drop for CountSnapshot<'_> {
    fn drop(&mut self) {
        if let Some(before) = self.restore {
            COUNT_SNAPSHOT.with(|c| c.set(before));
        }
    }
}

impl Store {
    fn snapshot_id(&self) -> usize {
        std::sync::Arc::as_ptr(&self.kv) as usize
    }

    /// Reads the counts once for what this thread does until the snapshot is dropped: a list
    /// asks whether anything is in the trash for every row it shows, and on PostgreSQL each ask
    /// would otherwise be a query (the counts are the table `counts`, which every replica moves).
    /// The request then sees the counts as they were when it began, as a transaction would. On
    /// sled the counts are this process's own and in memory, and nothing is read; nor when the
    /// read fails (each count is then asked for, and logged, as without a snapshot), or when a
    /// snapshot of this store is held already.
    pub fn count_snapshot(&self) -> CountSnapshot<'_> {
        let id = self.snapshot_id();
        let held = COUNT_SNAPSHOT.with(|c| c.get().is_some_and(|(of, _)| of == id));
        let read = if held { Ok(None) } else { self.kv.stored_counts() };
        let restore = match read {
            Ok(Some(d)) => Some(COUNT_SNAPSHOT.with(|c| c.replace(Some((id, d))))),
            Ok(None) | Err(_) => None,
        };
        CountSnapshot { restore, _store: std::marker::PhantomData }
    }

    /// Users that are not merged away (what an admin's unfiltered user list counts).
    pub fn listed_users(&self) -> u64 {
        self.current_count(|c| &c.listed_users, |d| d.listed_users)
    }

    /// Rows of `tree` (groups, collections, links or keys; 0 for other trees).
    pub fn rows_in(&self, tree: TreeId) -> u64 {
        match tree {
            TreeId::Groups => self.current_count(|c| &c.groups, |d| d.groups),
            TreeId::Collections => self.current_count(|c| &c.collections, |d| d.collections),
            TreeId::Links => self.current_count(|c| &c.links, |d| d.links),
            TreeId::Keys => self.current_count(|c| &c.keys, |d| d.keys),
            _ => 0,
        }
    }

    /// Groups in the trash themselves (not counting what trashed groups hold).
    pub fn trashed_groups(&self) -> u64 {
        self.current_count(|c| &c.trashed_groups, |d| d.trashed_groups)
    }

    /// One count as it is now. sled's are this process's own (every write goes through it). On
    /// PostgreSQL other replicas write too, so the count is read from the table `counts`, which
    /// every commit moves in its own transaction (one read of its six rows); if that read fails, the
    /// count this process last knew is answered, and the failure logged.
    fn current_count(&self, mine: impl Fn(&Counts) -> &AtomicI64, stored: impl Fn(&CountDelta) -> i64) -> u64 {
        let id = self.snapshot_id();
        if let Some(d) = COUNT_SNAPSHOT.with(|c| c.get().filter(|(of, _)| *of == id).map(|(_, d)| d)) {
            return u64::try_from(stored(&d)).unwrap_or(0);
        }
        match self.kv.stored_counts() {
            Ok(None) => read(mine(&self.counts)),
            Ok(Some(d)) => u64::try_from(stored(&d)).unwrap_or(0),
            Err(e) => {
                tracing::warn!(error = %e, "reading the stored counts failed; answering this process's own");
                read(mine(&self.counts))
            }
        }
    }

    /// Computes [`Counts`] from what is stored (at open).
    pub(super) fn count_rows(&self) -> StoreResult<()> {
        if let Some(d) = self.kv.stored_counts()? {
            self.counts.apply(&d);
            return Ok(());
        }
        let mut d = CountDelta::default();
        for tree in [TreeId::Users, TreeId::Groups] {
            for kv in self.kv.iter(tree) {
                d.add(tree, None, Some(&kv?.1));
            }
        }
        d.collections = i64::try_from(self.kv.len(TreeId::Collections)?).unwrap_or(i64::MAX);
        d.links = i64::try_from(self.kv.len(TreeId::Links)?).unwrap_or(i64::MAX);
        d.keys = i64::try_from(self.kv.len(TreeId::Keys)?).unwrap_or(i64::MAX);
        self.counts.apply(&d);
        Ok(())
    }

    /// Writes the list indexes of every stored row, once: data written before they existed.
    pub(super) fn build_list_indexes(&self) -> StoreResult<()> {
        if self.meta(LIST_INDEX_META)?.as_deref() == Some(LIST_INDEX_VERSION) {
            return Ok(());
        }
        self.build_from::<User>(user_list_keys)?;
        self.build_from::<Group>(OwnedRecord::extra_index_keys)?;
        self.build_from::<Collection>(OwnedRecord::extra_index_keys)?;
        self.build_from::<Link>(OwnedRecord::extra_index_keys)?;
        self.build_from::<AuthorizedKey>(OwnedRecord::extra_index_keys)?;
        self.flush()?;
        let mut b = WriteBatch::new();
        b.put_meta(LIST_INDEX_META, LIST_INDEX_VERSION);
        self.commit(b)
    }

    /// Forgets the list indexes and that they were built, so that the store looks like one written
    /// before they existed (for tests of the build at open).
    #[doc(hidden)]
    pub fn forget_list_indexes(&self) -> StoreResult<()> {
        for tree in [TreeId::ListTimes, TreeId::ShownUsernames, TreeId::OwnerTimes] {
            self.kv.clear(tree)?;
        }
        let mut b = WriteBatch::new();
        b.del_raw(TreeId::Meta, LIST_INDEX_META.as_bytes().to_vec());
        self.commit(b)
    }

    fn build_from<T: Listed>(&self, keys: fn(&T) -> Vec<IndexKey>) -> StoreResult<()> {
        let mut b = WriteBatch::new();
        for kv in self.kv.iter(T::ROWS_TREE) {
            let row: T = decode(T::ROWS_TREE, &kv?.1)?;
            for (tree, key) in keys(&row) {
                if list_index(tree) {
                    b.put_raw(tree, key, Vec::new());
                }
            }
            if b.len() >= BUILD_BATCH {
                self.apply_per_tree(std::mem::take(&mut b))?;
            }
        }
        self.apply_per_tree(b)
    }

    /// How many rows of `kind` `owner` owns, counted from [`TreeId::OwnerTimes`] without reading
    /// a row (that index holds each row once, under its owner).
    pub fn owned_count(&self, kind: ObjectKind, owner: &ObjectUuid) -> StoreResult<usize> {
        let mut n = 0;
        for kv in self.kv.scan_prefix(TreeId::OwnerTimes, &owner_kind_prefix(kind, &owner.to_string()), false) {
            kv?;
            n += 1;
        }
        Ok(n)
    }

    /// What differs between [`TreeId::OwnerTimes`] and the rows it indexes: entries no row
    /// matches and rows without their entry (for tests: empty when the index is exact).
    #[doc(hidden)]
    pub fn owner_time_mismatches(&self) -> StoreResult<Vec<String>> {
        self.index_mismatches(vec![(TreeId::OwnerTimes, Vec::new())])
    }

    /// What differs between the rows of groups, collections and links and their other index
    /// entries (list times, link ends): entries no row matches, rows without theirs. For tests of
    /// PostgreSQL's merge, which moves those entries; sled's merge leaves stale ones there (reads
    /// skip them) and aliases its link ends.
    #[doc(hidden)]
    pub fn row_index_mismatches(&self) -> StoreResult<Vec<String>> {
        let mut scans = vec![(TreeId::LinkTails, Vec::new()), (TreeId::LinkHeads, Vec::new())];
        for kind in [ObjectKind::Group, ObjectKind::Collection, ObjectKind::Link] {
            for f in [TimeField::Created, TimeField::Modified] {
                scans.push((TreeId::ListTimes, time_prefix(kind, f)));
            }
        }
        self.index_mismatches(scans)
    }

    /// The entries of each (tree, key prefix) of `scans` that no group, collection, link or key
    /// row wants ([`OwnedRecord::extra_index_keys`]), and the entries such rows want there that
    /// are missing.
    fn index_mismatches(&self, scans: Vec<(TreeId, Vec<u8>)>) -> StoreResult<Vec<String>> {
        type Wanted = std::collections::BTreeSet<(TreeId, Vec<u8>)>;
        fn add<T: OwnedRecord>(store: &Store, scans: &[(TreeId, Vec<u8>)], wanted: &mut Wanted) -> StoreResult<()> {
            for kv in store.kv.iter(T::TREE) {
                let r: T = decode(T::TREE, &kv?.1)?;
                wanted.extend(
                    r.extra_index_keys()
                        .into_iter()
                        .filter(|(t, k)| scans.iter().any(|(st, p)| st == t && k.starts_with(p))),
                );
            }
            Ok(())
        }
        let mut wanted = Wanted::new();
        add::<Group>(self, &scans, &mut wanted)?;
        add::<Collection>(self, &scans, &mut wanted)?;
        add::<Link>(self, &scans, &mut wanted)?;
        add::<AuthorizedKey>(self, &scans, &mut wanted)?;
        let shown = |k: &[u8]| String::from_utf8_lossy(k).replace('\0', " ");
        let mut out = Vec::new();
        for (tree, p) in scans {
            for kv in self.kv.scan_prefix(tree, &p, false) {
                let k = kv?.0.to_vec();
                if !wanted.remove(&(tree, k.clone())) {
                    out.push(format!("stale {} entry {}", tree.name(), shown(&k)));
                }
            }
        }
        out.extend(wanted.iter().map(|(t, k)| format!("missing {} entry {}", t.name(), shown(k))));
        Ok(out)
    }

    /// The rows `source` names, decoded and checked against it, in its order.
    pub fn candidate_rows<'a, T: Listed + 'a>(
        &'a self,
        source: &Candidates,
    ) -> StoreResult<Box<dyn Iterator<Item = StoreResult<T>> + 'a>> {
        Ok(match source {
            Candidates::Uuids(uuids) => {
                let mut uuids: Vec<ObjectUuid> = uuids.iter().filter(|u| u.kind() == T::ROWS_KIND).cloned().collect();
                uuids.sort();
                uuids.dedup();
                self.rows_of::<T>(uuids)
            }
            Candidates::UuidRange { lower, upper, descending } => {
                let bytes = |b: &Bound<String>| b.as_ref().map(|s| s.as_bytes().to_vec());
                let range = self.kv.range(T::ROWS_TREE, bytes(lower), bytes(upper), *descending);
                Box::new(range.map(|kv| decode::<T>(T::ROWS_TREE, &kv?.1)))
            }
            Candidates::Time { field, from, descending } => {
                let field = *field;
                let check = move |r: &T, time: &str| format_time(r.time(field)) == time;
                self.by_time(TreeId::ListTimes, time_prefix(T::ROWS_KIND, field), from.as_deref(), *descending, check)
            }
            Candidates::OwnerTime { owner, from, descending } => {
                let p = owner_kind_prefix(T::ROWS_KIND, &owner.to_string());
                let owner = owner.clone();
                let check = move |r: &T, time: &str| {
                    r.owner() == Some(&owner) && format_time(r.time(TimeField::Modified)) == time
                };
                self.by_time(TreeId::OwnerTimes, p, from.as_deref(), *descending, check)
            }
            Candidates::Owned(owner) => {
                let owner = owner.clone();
                self.checked_rows(self.owned_uuids(&owner)?, move |r: &T| r.owner() == Some(&owner))
            }
            Candidates::LinkEnd(index, at) => {
                let (index, at) = (*index, at.clone());
                self.checked_rows(self.candidates(index, &at.to_string())?, move |r: &T| {
                    r.indexed_at(index) == Some(&at)
                })
            }
            Candidates::Email(email) => self.checked_scan::<T>(TreeId::UserEmail, email, |r, e| r.email() == Some(e)),
            Candidates::Username(name) => {
                self.checked_scan::<T>(TreeId::ShownUsernames, name, |r, n| r.shown_username() == Some(n))
            }
        })
    }

    /// The rows of these uuids (of the listed kind; others are skipped) for which `check` holds.
    fn checked_rows<'a, T: Listed + 'a>(
        &'a self,
        uuids: Vec<ObjectUuid>,
        check: impl Fn(&T) -> bool + 'a,
    ) -> Box<dyn Iterator<Item = StoreResult<T>> + 'a> {
        let uuids = uuids.into_iter().filter(|u| u.kind() == T::ROWS_KIND).collect();
        Box::new(self.rows_of::<T>(uuids).filter(move |r| r.as_ref().map_or(true, &check)))
    }

    /// The stored rows of these uuids, in their order (those not stored are skipped). On sled one
    /// read each, as the caller takes them; on PostgreSQL [`ROWS_PER_QUERY`] at a time by key, one
    /// round trip for each such part.
    fn rows_of<'a, T: Listed + 'a>(&'a self, uuids: Vec<ObjectUuid>) -> Box<dyn Iterator<Item = StoreResult<T>> + 'a> {
        let kv::Backend::Postgres(p) = &*self.kv else {
            return Box::new(
                uuids
                    .into_iter()
                    .filter_map(move |u| self.get_json::<T>(T::ROWS_TREE, u.to_string().as_bytes()).transpose()),
            );
        };
        let parts: Vec<Vec<ObjectUuid>> = uuids.chunks(ROWS_PER_QUERY).map(<[ObjectUuid]>::to_vec).collect();
        Box::new(parts.into_iter().flat_map(move |part| {
            let keys: Vec<Vec<u8>> = part.iter().map(|u| u.to_string().into_bytes()).collect();
            match p.get_many(T::ROWS_TREE, keys.clone()) {
                Ok(mut found) => keys
                    .iter()
                    .filter_map(|k| found.remove(k).map(|v| decode::<T>(T::ROWS_TREE, &v)))
                    .collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            }
        }))
    }

    /// The rows an index `tree` lists under `a` (keys `a\0uuid`) for which `check` holds.
    fn checked_scan<'a, T: Listed + 'a>(
        &'a self,
        tree: TreeId,
        a: &str,
        check: fn(&T, &str) -> bool,
    ) -> Box<dyn Iterator<Item = StoreResult<T>> + 'a> {
        let p = prefix(a);
        let a = a.to_owned();
        let plen = p.len();
        let entries = self.kv.scan_prefix(tree, &p, false).map(move |kv| kv.map(|(k, _)| ((), k[plen..].to_vec())));
        Box::new(self.rows_for::<T, ()>(Box::new(entries)).filter_map(move |row| match row {
            Ok(((), r)) if check(&r, &a) => Some(Ok(r)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        }))
    }

    /// The rows `entries` name (each with what the caller checks it against), in their order;
    /// those not stored are skipped. On sled one read per entry as the caller takes them; on
    /// PostgreSQL [`ROWS_PER_QUERY`] entries at a time, one query each.
    fn rows_for<'a, T: Listed + 'a, X: 'a>(
        &'a self,
        entries: Box<dyn Iterator<Item = StoreResult<(X, Vec<u8>)>> + 'a>,
    ) -> Box<dyn Iterator<Item = StoreResult<(X, T)>> + 'a> {
        match &*self.kv {
            kv::Backend::Postgres(p) => Box::new(PagedRows { kv: p, entries, ready: Default::default() }),
            kv::Backend::Sled(_) => Box::new(entries.filter_map(move |e| {
                e.and_then(|(x, key)| Ok(self.get_json::<T>(T::ROWS_TREE, &key)?.map(|r| (x, r)))).transpose()
            })),
        }
    }

    /// The rows a time index `tree` lists under `p` (keys `p time \0 uuid`) in time order, each
    /// kept only if `check` says its row is where the entry says (its time, its owner).
    fn by_time<'a, T: Listed + 'a>(
        &'a self,
        tree: TreeId,
        p: Vec<u8>,
        from: Option<&str>,
        descending: bool,
        check: impl Fn(&T, &str) -> bool + 'a,
    ) -> Box<dyn Iterator<Item = StoreResult<T>> + 'a> {
        // Formatted times never hold \0; an operand that does bounds nothing.
        let from = from.filter(|f| !f.contains('\0'));
        let keys: super::kv::Scan<'a> = match (from, descending) {
            (None, _) => self.kv.scan_prefix(tree, &p, descending),
            (Some(f), false) => {
                let mut start = p.clone();
                start.extend_from_slice(f.as_bytes());
                let end = super::kv::prefix_end(&p).map_or(Bound::Unbounded, Bound::Excluded);
                self.kv.range(tree, Bound::Included(start), end, false)
            }
            (Some(f), true) => {
                // Every key whose time is at most `f` sorts before `prefix f \x01`.
                let mut end = p.clone();
                end.extend_from_slice(f.as_bytes());
                end.push(1);
                self.kv.range(tree, Bound::Included(p.clone()), Bound::Excluded(end), true)
            }
        };
        let plen = p.len();
        let entries = keys.map(move |kv| -> StoreResult<(String, String)> {
            let (k, _) = kv?;
            let rest = String::from_utf8_lossy(&k[plen..]).into_owned();
            let (time, uuid) = rest.split_once('\0').unwrap_or((rest.as_str(), ""));
            Ok((time.to_owned(), uuid.to_owned()))
        });
        let entries: Box<dyn Iterator<Item = StoreResult<(String, String)>>> = if descending {
            Box::new(RunsReversed { inner: entries, run: Vec::new(), next: None })
        } else {
            Box::new(entries)
        };
        let entries = entries.map(|e| e.map(|(time, uuid)| (time, uuid.into_bytes())));
        Box::new(self.rows_for::<T, String>(Box::new(entries)).filter_map(move |row| match row {
            Ok((time, r)) if check(&r, &time) => Some(Ok(r)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        }))
    }
}

/// [`Store::rows_for`] on PostgreSQL: takes up to [`ROWS_PER_QUERY`] entries, reads their rows in
/// one query, and hands them out in the entries' order.
struct PagedRows<'a, T, X> {
    kv: &'a kv::postgres::PgKv,
    entries: Box<dyn Iterator<Item = StoreResult<(X, Vec<u8>)>> + 'a>,
    ready: std::collections::VecDeque<StoreResult<(X, T)>>,
}

impl<T: Listed, X> Iterator for PagedRows<'_, T, X> {
    type Item = StoreResult<(X, T)>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.ready.is_empty() {
            let mut part = Vec::new();
            let mut failed = None;
            for e in self.entries.by_ref() {
                match e {
                    Ok(e) => part.push(e),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
                if part.len() == ROWS_PER_QUERY {
                    break;
                }
            }
            if part.is_empty() && failed.is_none() {
                return None;
            }
            let keys: Vec<Vec<u8>> = part.iter().map(|(_, k)| k.clone()).collect();
            match self.kv.get_many(T::ROWS_TREE, keys) {
                Ok(found) => {
                    // `get`, not `remove`: a scan may name a row twice (a stale entry and its own).
                    for (x, k) in part {
                        if let Some(v) = found.get(&k) {
                            self.ready.push_back(decode::<T>(T::ROWS_TREE, v).map(|r| (x, r)));
                        }
                    }
                }
                Err(e) => self.ready.push_back(Err(e)),
            }
            if let Some(e) = failed {
                self.ready.push_back(Err(e));
            }
        }
        self.ready.pop_front()
    }
}

/// Entries of a descending time scan with each run of equal times put back in ascending uuid
/// order (lists break ties by uuid ascending, whatever the direction of their first key).
struct RunsReversed<I> {
    inner: I,
    /// The current run, last-to-come first (so popping gives ascending uuids).
    run: Vec<(String, String)>,
    /// The first entry of the next run, read while finding where this one ends.
    next: Option<StoreResult<(String, String)>>,
}

impl<I: Iterator<Item = StoreResult<(String, String)>>> Iterator for RunsReversed<I> {
    type Item = StoreResult<(String, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.run.pop() {
            return Some(Ok(e));
        }
        let first = match self.next.take().or_else(|| self.inner.next())? {
            Ok(e) => e,
            Err(e) => return Some(Err(e)),
        };
        self.run.push(first);
        loop {
            match self.inner.next() {
                Some(Ok(e)) if e.0 == self.run[0].0 => self.run.push(e),
                other => {
                    self.next = other;
                    break;
                }
            }
        }
        self.run.pop().map(Ok)
    }
}
