//! The typed store on every backend (see [`super::testing`]): the same operations give the same
//! answers, and what each backend promises holds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::scan::{Candidates, TimeField};
use super::testing::{TestDb, pg_store_with_pages, reopen, stores};
use super::*;
use std::ops::Bound;
use time::OffsetDateTime;

fn uuid(kind: ObjectKind, id: &str) -> ObjectUuid {
    ObjectUuid::new("zzzzz".parse().unwrap(), kind, &format!("{id:0>15}")).unwrap()
}

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(secs)
}

fn group(id: &str, owner: &ObjectUuid, secs: i64) -> Group {
    Group {
        uuid: uuid(ObjectKind::Group, id),
        owner_uuid: owner.clone(),
        created_at: at(secs),
        modified_at: at(secs),
        modified_by_user_uuid: None,
        name: id.into(),
        description: None,
        group_class: "project".into(),
        properties: serde_json::json!({}),
        trash_at: (secs % 3 == 0).then(|| at(10_000)),
    }
}

fn link(id: &str, owner: &ObjectUuid, tail: &ObjectUuid, head: &ObjectUuid, secs: i64) -> Link {
    Link {
        uuid: uuid(ObjectKind::Link, id),
        owner_uuid: owner.clone(),
        created_at: at(secs),
        modified_at: at(secs),
        modified_by_user_uuid: None,
        link_class: "tag".into(),
        name: id.into(),
        head_uuid: head.clone(),
        tail_uuid: tail.clone(),
        properties: serde_json::json!({}),
    }
}

fn names<T: OwnedRecord>(rows: impl IntoIterator<Item = StoreResult<T>>) -> Vec<String> {
    rows.into_iter().map(|r| r.unwrap().uuid().id().trim_start_matches('0').to_owned()).collect()
}

/// Writes a fixed history (puts, rewrites, deletes, a moved row with an alias, outbox entries)
/// and returns what the typed reads answer after each part.
fn script(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    let (a, b) = (uuid(ObjectKind::User, "a"), uuid(ObjectKind::User, "b"));
    let mut w = WriteBatch::new();
    for i in 0..40 {
        let owner = if i % 2 == 0 { &a } else { &b };
        w.put_object(None, &group(&format!("g{i}"), owner, 100 + (i % 7))).unwrap();
        w.put_object(None, &link(&format!("l{i}"), owner, owner, &uuid(ObjectKind::Group, "g0"), 50 + i)).unwrap();
    }
    for i in 0..300 {
        let u = User {
            email: Some(format!("u{}@example.org", i % 2)),
            username: Some(format!("user{i}")),
            ..User::new(uuid(ObjectKind::User, &format!("u{i}")), a.clone(), at(i))
        };
        w.put_user(None, &u).unwrap();
    }
    store.commit(w).unwrap();
    let answers = |out: &mut Vec<String>| {
        let users = |c: Candidates| {
            let rows = store.candidate_rows::<User>(&c).unwrap();
            rows.map(|u| u.unwrap().uuid.id().trim_start_matches('0').to_owned()).collect::<Vec<_>>()
        };
        let by_email = users(Candidates::Email("u1@example.org".into()));
        assert_eq!(by_email.len(), 150, "read across a part boundary");
        out.push(format!("{by_email:?}"));
        out.push(format!("{:?}", users(Candidates::Username("user7".into()))));
        out.push(format!("{:?}", users(Candidates::Time { field: TimeField::Created, from: None, descending: true })));
        out.push(format!("{:?}", store.owned_by(&a).unwrap()));
        out.push(format!("{:?}", names(store.links_by_tail(&b).unwrap().into_iter().map(Ok))));
        out.push(format!(
            "counts {} {} {} {}",
            store.rows_in(TreeId::Groups),
            store.trashed_groups(),
            store.rows_in(TreeId::Links),
            store.listed_users()
        ));
        for descending in [false, true] {
            let by_time = Candidates::Time { field: TimeField::Modified, from: None, descending };
            out.push(format!("{:?}", names(store.candidate_rows::<Group>(&by_time).unwrap())));
            let from = Candidates::Time { field: TimeField::Created, from: Some(format_time_at(103)), descending };
            out.push(format!("{:?}", names(store.candidate_rows::<Group>(&from).unwrap())));
            let owner_time = Candidates::OwnerTime { owner: b.clone(), from: None, descending };
            out.push(format!("{:?}", names(store.candidate_rows::<Link>(&owner_time).unwrap())));
            let range = Candidates::UuidRange {
                lower: Bound::Included(uuid(ObjectKind::Group, "g1").to_string()),
                upper: Bound::Excluded(uuid(ObjectKind::Group, "g3").to_string()),
                descending,
            };
            out.push(format!("{:?}", names(store.candidate_rows::<Group>(&range).unwrap())));
        }
        out.push(format!("{} {}", store.owned_count(ObjectKind::Link, &a).unwrap(), store.count(TreeId::Links)));
        let owned = Candidates::Owned(a.clone());
        out.push(format!("{:?}", names(store.candidate_rows::<Group>(&owned).unwrap())));
        let some: Vec<ObjectUuid> = (0..300).rev().map(|i| uuid(ObjectKind::Group, &format!("g{i}"))).collect();
        out.push(format!("{:?}", names(store.candidate_rows::<Group>(&Candidates::Uuids(some)).unwrap())));
        let tails = Candidates::LinkEnd(LinkEnd::Tail, a.clone());
        out.push(format!("{:?}", names(store.candidate_rows::<Link>(&tails).unwrap())));
    };
    answers(&mut out);

    // Rewrites, deletes, one batch writing a key twice.
    let mut w = WriteBatch::new();
    let g2 = group("g2", &a, 102);
    let g2b = Group { trash_at: Some(at(5)), modified_at: at(900), ..g2.clone() };
    w.put_object(Some(&g2), &g2b).unwrap();
    w.delete_object(&group("g5", &b, 105));
    w.put_object(None, &group("g7", &b, 107)).unwrap();
    w.delete_object(&group("g7", &b, 107));
    w.put_object(None, &group("g7", &b, 107)).unwrap();
    store.commit(w).unwrap();
    // A merge's moved row, found through an alias.
    let l3 = link("l3", &b, &b, &uuid(ObjectKind::Group, "g0"), 53);
    let moved = Link { owner_uuid: a.clone(), tail_uuid: a.clone(), modified_at: at(950), ..l3.clone() };
    let mut w = WriteBatch::new();
    let ends = Some((l3.head_uuid.clone(), l3.tail_uuid.clone()));
    w.put_moved_row(&MovedFrom { owner: b.clone(), modified_at: l3.modified_at, link_ends: ends }, &moved).unwrap();
    store.commit(w).unwrap();
    answers(&mut out);
    out.push(format!("{:?}", names(store.links_by_tail(&a).unwrap().into_iter().map(Ok))));
    out.push(format!("{:?}", names(store.links_by_tail(&b).unwrap().into_iter().map(Ok))));
    out.push(format!("{:?}", store.owner_time_mismatches().unwrap()));
    out
}

fn format_time_at(secs: i64) -> String {
    crate::clock::format_time(at(secs))
}

/// The same history gives the same answers on sled and on PostgreSQL, and the counts are the
/// same once the store is opened again.
#[test]
fn typed_operations_answer_alike_on_every_backend() {
    let mut answers = Vec::new();
    for (store, holder) in stores() {
        let got = script(&store);
        let counts = (store.rows_in(TreeId::Groups), store.trashed_groups(), store.rows_in(TreeId::Links));
        drop(store);
        let again = reopen(&holder);
        assert_eq!(
            (again.rows_in(TreeId::Groups), again.trashed_groups(), again.rows_in(TreeId::Links)),
            counts,
            "{} counts after reopening",
            again.backend_name()
        );
        answers.push((again.backend_name(), got));
    }
    for (name, got) in &answers[1..] {
        for (i, (want, had)) in answers[0].1.iter().zip(got).enumerate() {
            assert_eq!(had, want, "answer {i} on {name} differs from sled's");
        }
    }
}

/// A nonce is recorded once: the second insert is refused, also after reopening.
#[test]
fn the_nonce_guard_refuses_a_second_insert() {
    for (store, holder) in stores() {
        let origin = "bbbbb".parse::<ClusterId>().unwrap();
        assert!(store.nonce_first_seen(&origin, "n1", 10).unwrap());
        assert!(!store.nonce_first_seen(&origin, "n1", 11).unwrap(), "{}", store.backend_name());
        assert!(store.nonce_first_seen_unflushed(&origin, "n2", 12).unwrap());
        drop(store);
        let store = reopen(&holder);
        assert!(!store.nonce_first_seen(&origin, "n1", 13).unwrap());
        assert_eq!(store.prune_nonces(12).unwrap(), 1);
        assert!(store.nonce_first_seen(&origin, "n1", 14).unwrap());
        let a = store.next_id().unwrap();
        assert!(store.next_id().unwrap() > a);
    }
}

/// The login throttle's sweep deletes the rows it is told are spent, each only as it was read.
#[test]
fn the_throttle_sweep_deletes_spent_rows_and_only_as_read() {
    for (store, _holder) in stores() {
        for (k, v) in [("spent", "0"), ("live", "1"), ("changed", "0")] {
            assert!(store.update_login_attempts(k, |_| Some(v.as_bytes().to_vec())).unwrap());
        }
        // A row rewritten after it was read is not deleted by a delete of what was read.
        assert!(!store.kv.delete_if(TreeId::LoginAttempts, b"changed", b"stale").unwrap());
        assert_eq!(store.sweep_login_attempts(|v| v == b"0").unwrap(), 2, "{}", store.backend_name());
        let left: Vec<Vec<u8>> = store.kv.iter(TreeId::LoginAttempts).map(|e| e.unwrap().0.to_vec()).collect();
        assert_eq!(left, [b"live".to_vec()]);
    }
}

/// Scans read in pages return every entry once, in order, across page boundaries: prefixes,
/// ranges, forwards and reversed.
#[test]
fn paged_scans_cross_page_boundaries() {
    let Some((store, _db)) = pg_store_with_pages(2, 3) else { return };
    let mut w = WriteBatch::new();
    let keys: Vec<Vec<u8>> = (0..23u8).map(|i| vec![b'p', 0, i]).collect();
    for k in &keys {
        w.put_raw(TreeId::LinkHeads, k.clone(), Vec::new());
    }
    for k in [&b"o"[..], b"p", b"q", &[b'p', 0xff][..]] {
        w.put_raw(TreeId::LinkHeads, k.to_vec(), Vec::new());
    }
    store.commit(w).unwrap();
    let got = |scan: kv::Scan<'_>| scan.map(|e| e.unwrap().0.to_vec()).collect::<Vec<_>>();
    assert_eq!(got(store.kv.scan_prefix(TreeId::LinkHeads, b"p\0", false)), keys);
    let mut rev = keys.clone();
    rev.reverse();
    assert_eq!(got(store.kv.scan_prefix(TreeId::LinkHeads, b"p\0", true)), rev);
    let (lo, hi) = (Bound::Excluded(keys[3].clone()), Bound::Included(keys[17].clone()));
    assert_eq!(got(store.kv.range(TreeId::LinkHeads, lo.clone(), hi.clone(), false)), keys[4..=17].to_vec());
    let mut part = keys[4..=17].to_vec();
    part.reverse();
    assert_eq!(got(store.kv.range(TreeId::LinkHeads, lo, hi, true)), part);
    assert_eq!(store.kv.iter(TreeId::LinkHeads).count(), 27);
    assert_eq!(got(store.kv.scan_prefix(TreeId::LinkHeads, &[b'p', 0xff], false)), [vec![b'p', 0xff]]);
}

/// A merge's write on PostgreSQL is one transaction: cut short (its connection lost between two
/// row batches, or dropped unfinished) nothing of it is there; finished, all of it is, counted.
#[test]
fn a_merge_write_on_postgres_is_all_or_nothing() {
    let Some(db) = TestDb::create() else { return };
    let store = Store::open_with(Path::new("unused"), db.options()).unwrap();
    let (a, b) = (uuid(ObjectKind::User, "a"), uuid(ObjectKind::User, "b"));
    let m = OwnerMove {
        old_user_uuid: a.clone(),
        new_user_uuid: b.clone(),
        new_owner_uuid: b.clone(),
        move_heads: false,
        at: at(1),
    };
    let groups: Vec<Group> = (0..30).map(|i| group(&format!("g{i}"), &a, i)).collect();
    let write = |fail: bool, finish: bool| -> StoreResult<()> {
        let mut first = WriteBatch::new();
        first.put_object(None, &groups[0])?;
        let mut w = super::merge::MergeWrite::begin(&store, first, &m)?;
        assert!(!w.rolls_forward());
        for part in groups[1..].chunks(10) {
            let mut b = WriteBatch::new();
            for g in part {
                b.put_object(None, g)?;
            }
            w.rows(b)?;
            if fail {
                db.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
                );
            }
        }
        if finish { w.finish() } else { Ok(()) }
    };
    assert!(write(true, true).is_err());
    assert_eq!((store.count(TreeId::Groups), store.rows_in(TreeId::Groups)), (0, 0), "a failed write left rows");
    write(false, false).unwrap();
    assert_eq!(store.count(TreeId::Groups), 0, "an unfinished write left rows");
    assert!(store.object::<Group>(&groups[0].uuid).unwrap().is_none());
    write(false, true).unwrap();
    assert_eq!((store.count(TreeId::Groups), store.rows_in(TreeId::Groups)), (30, 30));
    assert!(store.unfinished_merges().unwrap().is_empty(), "no record of the move on PostgreSQL");
    drop(store);
    let store = Store::open_with(Path::new("unused"), db.options()).unwrap();
    assert_eq!(store.rows_in(TreeId::Groups), 30, "the counts table moved with the commit");
}

/// A database whose schema is newer than this binary knows is refused at open, with a message
/// that says so; one at the known version opens again and changes nothing.
#[test]
fn a_schema_newer_than_known_is_refused() {
    let Some(db) = TestDb::create() else { return };
    drop(Store::open_with(Path::new("unused"), db.options()).unwrap());
    drop(Store::open_with(Path::new("unused"), db.options()).unwrap());
    db.execute("INSERT INTO schema_migrations (version) VALUES (9999)");
    match Store::open_with(Path::new("unused"), db.options()) {
        Err(StoreError::Refused(m)) => assert!(m.contains("newer than this hearth knows"), "{m}"),
        Err(e) => panic!("refused for the wrong reason: {e}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

/// A bad URL is refused before anything connects.
#[test]
fn a_bad_postgres_url_is_refused() {
    let opts = StoreOptions {
        postgres: Some(PostgresOptions { url: "postgresql://host:notaport/db".into(), pool_size: 1 }),
        ..Default::default()
    };
    assert!(matches!(Store::open_with(Path::new("unused"), opts), Err(StoreError::Refused(_))));
}

/// Single-use state is taken once; caches written unflushed are read back.
#[test]
fn pending_state_is_taken_once_on_every_backend() {
    for (store, _holder) in stores() {
        let p = OidcPending {
            provider: "p".into(),
            state: "s".into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            purpose: records::OidcPurpose::Login { return_to: "/".into(), remote: None },
            expires_at: at(100),
        };
        store.put_oidc_pending("k", &p).unwrap();
        assert!(store.take_oidc_pending("k").unwrap().is_some());
        assert!(store.take_oidc_pending("k").unwrap().is_none(), "{}", store.backend_name());
        store.put_oidc_pending("k2", &p).unwrap();
        assert_eq!(store.prune_oidc_pending(at(200)).unwrap(), 1);
    }
}

/// Two daemons starting together on a new database migrate it once, and both open.
#[test]
fn two_stores_opening_together_migrate_once() {
    let Some(db) = TestDb::create() else { return };
    let opened: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> =
            (0..2).map(|_| s.spawn(|| Store::open_with(Path::new("unused"), db.options()).is_ok())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(opened, [true, true]);
    let store = Store::open_with(Path::new("unused"), db.options()).unwrap();
    assert_eq!(store.meta("list_indexes").unwrap().as_deref(), Some(&b"2"[..]));
    db.execute(
        "DO $$ BEGIN IF (SELECT count(*) FROM schema_migrations) <> 1 THEN RAISE 'migrated twice'; END IF; END $$",
    );
}

/// The synchronous store answers wherever it is called from: outside any runtime, on a worker
/// of a multi-thread runtime, on its blocking pool, and inside a current-thread runtime.
#[test]
fn the_store_answers_from_every_kind_of_thread() {
    for (store, _holder) in stores() {
        let write_and_read = |store: &Store, n: u64| {
            let origin = "bbbbb".parse::<ClusterId>().unwrap();
            assert!(store.nonce_first_seen(&origin, &format!("n{n}"), 1).unwrap());
            assert!(store.next_id().is_ok());
            store.owned_by(&uuid(ObjectKind::User, "nobody")).unwrap().len()
        };
        assert_eq!(write_and_read(&store, 0), 0);
        let multi = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let on_worker = store.clone();
        assert_eq!(multi.block_on(multi.spawn(async move { write_and_read(&on_worker, 1) })).unwrap(), 0);
        let on_pool = store.clone();
        let blocking = multi.spawn_blocking(move || write_and_read(&on_pool, 2));
        assert_eq!(multi.block_on(blocking).unwrap(), 0);
        let current = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        assert_eq!(current.block_on(async { write_and_read(&store, 3) }), 0, "{}", store.backend_name());
    }
}

/// Two replicas on one database count alike: what one writes, the other's list counts show at
/// once (they read the table `counts`, which each commit moves), not what it counted at open.
#[test]
fn replicas_on_one_database_count_each_others_writes() {
    let Some(db) = TestDb::create() else { return };
    let one = Store::open_with(Path::new("unused"), db.options()).unwrap();
    let other = Store::open_with(Path::new("unused"), db.options()).unwrap();
    let owner = uuid(ObjectKind::User, "owner");
    assert_eq!((one.rows_in(TreeId::Groups), other.rows_in(TreeId::Groups)), (0, 0));
    let mut w = WriteBatch::new();
    for i in 0..3 {
        w.put_object(None, &group(&format!("c{i}"), &owner, 10 + i)).unwrap();
    }
    one.commit(w).unwrap();
    // (`group` puts every third in the trash: c2 is.)
    assert_eq!((other.rows_in(TreeId::Groups), other.trashed_groups()), (3, 1), "the other sees what one wrote");
    let g = group("c0", &owner, 10);
    let mut w = WriteBatch::new();
    w.put_object(Some(&g), &Group { trash_at: Some(at(20)), ..g.clone() }).unwrap();
    other.commit(w).unwrap();
    assert_eq!((one.rows_in(TreeId::Groups), one.trashed_groups()), (3, 2), "and the first sees the other's trash");
}

/// A count snapshot (what a list request takes) reads the counts once: inside it a replica's
/// answers are the counts as they were when it began, whatever another replica writes meanwhile,
/// nested snapshots keep the outer one, and another thread is not held to it; once it is dropped
/// the counts are read afresh.
#[test]
fn a_count_snapshot_holds_the_counts_of_its_start_until_dropped() {
    let Some(db) = TestDb::create() else { return };
    let one = Store::open_with(Path::new("unused"), db.options()).unwrap();
    let other = Store::open_with(Path::new("unused"), db.options()).unwrap();
    let owner = uuid(ObjectKind::User, "owner");
    let put = |store: &Store, names: std::ops::Range<i64>| {
        let mut w = WriteBatch::new();
        for i in names {
            w.put_object(None, &group(&format!("s{i}"), &owner, 10 + i)).unwrap();
        }
        store.commit(w).unwrap();
    };
    put(&other, 0..3);
    let snapshot = one.count_snapshot();
    assert_eq!((one.rows_in(TreeId::Groups), one.trashed_groups()), (3, 1));
    put(&other, 3..6);
    assert_eq!((one.rows_in(TreeId::Groups), one.trashed_groups()), (3, 1), "the snapshot moved");
    {
        let _inner = one.count_snapshot();
        assert_eq!(one.rows_in(TreeId::Groups), 3, "a nested snapshot read again");
    }
    assert_eq!(one.rows_in(TreeId::Groups), 3, "dropping the nested snapshot ended the outer one");
    let elsewhere = std::thread::scope(|s| s.spawn(|| one.rows_in(TreeId::Groups)).join().unwrap());
    assert_eq!(elsewhere, 6, "another thread was held to this thread's snapshot");
    assert_eq!(other.rows_in(TreeId::Groups), 6, "another store was held to this store's snapshot");
    drop(snapshot);
    assert_eq!((one.rows_in(TreeId::Groups), one.trashed_groups()), (6, 2));
}

/// Two replicas that write the same new rows at the same moment (say, each caching the same
/// remote user on its first token use) count each row once: the second writer waits for the first
/// and counts what it finds, not the nothing it read before. Users are the rows written first in a
/// batch, so no other row's write serializes the writers first.
#[test]
fn replicas_writing_the_same_new_rows_at_once_count_them_once() {
    let Some(db) = TestDb::create() else { return };
    let stores: Vec<Store> = (0..3).map(|_| Store::open_with(Path::new("unused"), db.options()).unwrap()).collect();
    let system = uuid(ObjectKind::User, "system");
    let (rounds, per_batch) = (60, 20);
    let barrier = std::sync::Barrier::new(stores.len());
    std::thread::scope(|s| {
        for store in &stores {
            let (barrier, system) = (&barrier, &system);
            s.spawn(move || {
                for i in 0..rounds {
                    let mut w = WriteBatch::new();
                    for j in 0..per_batch {
                        let u = User::new(uuid(ObjectKind::User, &format!("race{i}x{j}")), system.clone(), at(10));
                        // Every other one merged away: lists leave those out, and count them apart.
                        let redirect = (j % 2 == 1).then(|| system.clone());
                        w.put_user(None, &User { redirect_to_user_uuid: redirect, ..u }).unwrap();
                    }
                    barrier.wait();
                    store.commit(w).unwrap();
                }
            });
        }
    });
    let rows = stores[0].users().count() as u64;
    assert_eq!(rows, (rounds * per_batch) as u64);
    for store in &stores {
        assert_eq!(store.listed_users(), rows / 2, "counted as stored");
    }
}

/// The writer lock is the cluster's: while one replica holds it another cannot take it, and it
/// is free again once given up. On sled there is one process, and the lock is always had.
#[test]
fn the_writer_lock_is_shared_by_replicas_on_one_database() {
    let Some(db) = TestDb::create() else { return };
    let one = Store::open_with(Path::new("unused"), db.options()).unwrap();
    let other = Store::open_with(Path::new("unused"), db.options()).unwrap();
    let held = one.cluster_writer_lock(true).unwrap().expect("a free lock is taken");
    assert!(other.cluster_writer_lock(false).unwrap().is_none(), "another replica cannot take a held lock");
    let waiter = std::thread::spawn(move || {
        let t = std::time::Instant::now();
        let got = other.cluster_writer_lock(true).unwrap();
        (got.is_some(), t.elapsed())
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(held);
    let (got, waited) = waiter.join().unwrap();
    assert!(got && waited >= std::time::Duration::from_millis(250), "the waiter got it once given up ({waited:?})");
    assert!(one.cluster_writer_lock(false).unwrap().is_some(), "and gave it up in turn");
    for (store, _holder) in stores().into_iter().filter(|(s, _)| s.backend_name() == "sled") {
        assert!(store.cluster_writer_lock(false).unwrap().is_some());
    }
}

/// A lease has one holder until it expires; then another takes it. On sled every lease is the
/// one process's own.
#[test]
fn a_lease_has_one_holder_until_it_expires() {
    for (store, _holder) in stores() {
        assert!(store.hold_lease("job", "a", 60_000).unwrap());
        let pg = store.backend_name() == "postgres";
        assert_eq!(store.hold_lease("job", "b", 60_000).unwrap(), !pg, "{}", store.backend_name());
        assert!(store.hold_lease("job", "a", 1).unwrap(), "the holder renews");
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(store.hold_lease("job", "b", 60_000).unwrap(), "an expired lease is taken over");
        assert_eq!(store.hold_lease("job", "a", 60_000).unwrap(), !pg);
        store.release_lease("job", "b").unwrap();
        assert!(store.hold_lease("job", "a", 60_000).unwrap(), "a released lease is free");
    }
}

/// A clean shutdown gives up this process's leases (and only those): another replica takes them
/// at once rather than after they expire.
#[test]
fn a_process_gives_up_its_own_leases_and_no_others() {
    use crate::store::lease::this_process;
    for (store, _holder) in stores() {
        let pg = store.backend_name() == "postgres";
        assert!(store.hold_lease("mine-1", this_process(), 60_000).unwrap());
        assert!(store.hold_lease("mine-2", this_process(), 60_000).unwrap());
        assert!(store.hold_lease("theirs", "another-replica", 60_000).unwrap());
        assert_eq!(store.hold_lease("mine-1", "another-replica", 60_000).unwrap(), !pg, "held before");
        store.release_own_leases().unwrap();
        assert!(store.hold_lease("mine-1", "another-replica", 60_000).unwrap(), "{}", store.backend_name());
        assert!(store.hold_lease("mine-2", "another-replica", 60_000).unwrap());
        assert_eq!(store.hold_lease("theirs", this_process(), 60_000).unwrap(), !pg, "another's lease stays");
    }
}

/// A batch recorded in flight comes back as it was, and goes with its notices.
#[test]
fn a_batch_in_flight_is_found_again_until_acknowledged() {
    for (store, _holder) in stores() {
        let peer = "bbbbb".parse::<ClusterId>().unwrap();
        let user = uuid(ObjectKind::User, "a");
        let mut w = WriteBatch::new();
        for seq in 1..=5 {
            let user = federation_proto::notice::UserRecord {
                uuid: user.clone(),
                email: "a@example.org".into(),
                email_verified: true,
                username: Some("a".into()),
                first_name: "A".into(),
                last_name: "B".into(),
                is_active: true,
                redirect_to_user_uuid: None,
                last_login_at: None,
                home_seq: seq,
                orcid: None,
                profiles: Vec::new(),
            };
            w.put_outbox(&peer, seq, &Notice::Login { user }).unwrap();
        }
        store.commit(w).unwrap();
        let (first, _) = store.outbox_peek(&peer, None, 3, 1 << 20).unwrap();
        let keys: Vec<Vec<u8>> = first.iter().map(|(k, _)| k.clone()).collect();
        let record = store.put_in_flight(&peer, &keys).unwrap();
        let (again, queued) = store.next_in_flight(&peer, None).unwrap().unwrap();
        assert_eq!((again.clone(), queued), (record.clone(), first.clone()));
        assert!(store.next_in_flight(&peer, keys.last().map(Vec::as_slice)).unwrap().is_none());
        store.outbox_acknowledged(&record, &keys).unwrap();
        assert!(store.next_in_flight(&peer, None).unwrap().is_none());
        assert_eq!(store.outbox_depth(&peer), 2);
    }
}

/// Concurrent rewrites of one login-attempt row all land (none is lost to another's).
#[test]
fn login_attempt_rows_are_rewritten_atomically() {
    for (store, _holder) in stores() {
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..25 {
                        store
                            .update_login_attempts("k", |cur| {
                                let n: u64 = cur.and_then(|b| std::str::from_utf8(b).ok()?.parse().ok()).unwrap_or(0);
                                Some((n + 1).to_string().into_bytes())
                            })
                            .unwrap();
                    }
                });
            }
        });
        let mut got = 0;
        store
            .update_login_attempts("k", |cur| {
                got = cur.and_then(|b| std::str::from_utf8(b).ok()?.parse().ok()).unwrap_or(0);
                None
            })
            .unwrap();
        assert_eq!(got, 100, "{}", store.backend_name());
    }
}

/// A database holding a merge cut short (a store copied from sled mid-merge) opened by two
/// replicas at once: one rolls it forward under the cluster's writer lock, the other finds nothing
/// left, and the moved rows end once, counted once.
#[test]
fn replicas_opening_a_cut_merge_together_finish_it_once() {
    let Some(db) = TestDb::create() else { return };
    let (old, new) = (uuid(ObjectKind::User, "old"), uuid(ObjectKind::User, "new"));
    let groups: Vec<Group> = (0..40).map(|i| group(&format!("m{i}"), &old, i)).collect();
    {
        let store = Store::open_with(Path::new("unused"), db.options()).unwrap();
        let m = OwnerMove {
            old_user_uuid: old.clone(),
            new_user_uuid: new.clone(),
            new_owner_uuid: new.clone(),
            move_heads: false,
            at: at(100),
        };
        let mut b = WriteBatch::new();
        for g in &groups {
            b.put_object(None, g).unwrap();
        }
        b.put_raw(TreeId::MergeIntents, old.to_string().into_bytes(), serde_json::to_vec(&m).unwrap());
        store.commit(b).unwrap();
    }
    let opened: Vec<Store> = std::thread::scope(|s| {
        let hs: Vec<_> =
            (0..2).map(|_| s.spawn(|| Store::open_with(Path::new("unused"), db.options()).unwrap())).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(opened.iter().map(Store::merges_finished_at_open).sum::<usize>(), 1, "rolled forward once");
    for store in &opened {
        assert!(store.unfinished_merges().unwrap().is_empty());
        assert_eq!(store.owned_records::<Group>(&old).unwrap().len(), 0);
        assert_eq!(store.owned_records::<Group>(&new).unwrap().len(), groups.len());
        assert_eq!(store.rows_in(TreeId::Groups), groups.len() as u64);
        assert_eq!(store.owner_time_mismatches().unwrap(), Vec::<String>::new());
    }
}
