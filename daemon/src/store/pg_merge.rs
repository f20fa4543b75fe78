//! A merge's row moves on PostgreSQL, done by the database server: the rows never come to the
//! daemon and back. One statement per kind finds the rows through the indexes, rewrites their
//! owner, link ends and `modified_at` in the stored JSON (`jsonb` concatenation, which replaces
//! top-level fields only: a link's `properties` may hold an `owner_uuid` of its own), and moves
//! their index entries ([`TreeId::OwnerTimes`], the modified-time entry of [`TreeId::ListTimes`],
//! and the link ends), all in the merge's one transaction.
//!
//! The key layouts are the ones [`super::scan`] and [`super::pair`] build; the statements put
//! them together from pieces the daemon computes (prefixes, the kind's infix), so that the layout
//! is written down once. Every row is checked against its JSON, as the daemon's own reads check
//! index entries against rows: an entry that no longer matches its row moves nothing.
//!
//! The stored JSON must be one `jsonb` takes: it refuses the escape `\u0000`, which the API
//! refuses in every string it stores (`accounts::bounds`). A row stored with one by an older
//! version makes the merge fail, changing nothing, with PostgreSQL's message.

use super::kv::postgres::{Params, PgKv, PgTxn};
use super::merge::OwnerMove;
use super::scan::{TimeField, owner_kind_prefix, owner_time_prefix, time_prefix};
use super::{StoreError, StoreResult, TreeId, kv, prefix};
use crate::clock::format_time;
use federation_proto::{ObjectKind, ObjectUuid};

/// A group or collection a merge will move, as the server read it: what the name check needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedName {
    /// [`ObjectKind::Group`] or [`ObjectKind::Collection`].
    pub kind: ObjectKind,
    /// The row.
    pub uuid: ObjectUuid,
    /// Its `name`.
    pub name: String,
    /// Whether its `trash_at` is set.
    pub trashed: bool,
}

/// What a merge moves, as the server counted it ([`super::Store::plan_merge`]) before the
/// merge's transaction begins, under the writer lock, so that the checks can refuse the merge
/// before anything is written. The counts are the indexes' (exact on PostgreSQL); the move checks
/// each row and logs any difference.
#[derive(Debug, Clone)]
pub(super) struct ServerMoves {
    /// How many groups the merge moves.
    pub(super) groups: usize,
    /// How many collections.
    pub(super) collections: usize,
    /// How many links it changes (owner, tail or head).
    pub(super) links: usize,
}

/// The rows of one kind's tree an owner's [`TreeId::OwnerTimes`] entries point at. `$1` the
/// index's tree, `$2` and `$3` the owner's entries of the kind (`owner \0 infix \0`, and its end),
/// `$4` the rows' tree. Each entry is `prefix time \0 uuid`.
macro_rules! owned_rows_sql {
    () => {
        "SELECT r.k, convert_from(r.v, 'UTF8')::jsonb AS j
         FROM (SELECT substring(k FROM length($2::bytea) + 1) AS rest
               FROM kv WHERE tree = $1::int2 AND k >= $2::bytea AND k < $3::bytea) e
         JOIN kv r ON r.tree = $4::int2 AND r.k = substring(e.rest FROM position('\\x00'::bytea IN e.rest) + 1)"
    };
}

/// Two CTEs that move the modified-time entries of the rows in CTE `moved` (columns `k` and `was`,
/// the old `modified_at`) to the time `$7`: `$tree` is the list index's tree, `$prefix` the kind's
/// modified-time prefix there. An entry already at `$7` stays (deleting and inserting one key in
/// one statement would lose it).
macro_rules! list_time_moves {
    ($tree:literal, $prefix:literal) => {
        concat!(
            "time_old AS (DELETE FROM kv WHERE tree = $", $tree, "::int2 AND k IN (SELECT $", $prefix,
            "::bytea || convert_to(was, 'UTF8') || '\\x00'::bytea || k FROM moved WHERE was <> $7::text)), ",
            "time_new AS (INSERT INTO kv (tree, k, v) SELECT $", $tree, "::int2, $", $prefix,
            "::bytea || convert_to($7::text, 'UTF8') || '\\x00'::bytea || k, ''::bytea FROM moved WHERE was <> $7::text ",
            "ON CONFLICT DO NOTHING)"
        )
    };
}

/// The groups or collections `$5` owns whose name is one of `$6`: uuid, name, whether trashed.
const NAMES: &str = concat!(
    "WITH o AS MATERIALIZED (",
    owned_rows_sql!(),
    ") SELECT o.k, o.j->>'name', coalesce(jsonb_typeof(o.j->'trash_at') <> 'null', false) FROM o
       WHERE o.j->>'owner_uuid' = $5::text AND o.j->>'name' = ANY($6::text[])"
);

/// How many entries of one kind an owner has in [`TreeId::OwnerTimes`] (`$1` that tree, `$2` and
/// `$3` the owner's entries of the kind).
const COUNT_OWNED: &str = "SELECT count(*) FROM kv WHERE tree = $1::int2 AND k >= $2::bytea AND k < $3::bytea";

/// Moves the groups or collections `$5` owns to `$6` at `$7` (the time as the API writes it).
/// `$8`: the new owner's entries' prefix at that time; `$9`: the kind's modified-time prefix in
/// `$10`, the list index. Returns how many rows moved.
const MOVE_OWNED: &str = concat!(
    "WITH src AS MATERIALIZED (",
    owned_rows_sql!(),
    "), moved AS (
        UPDATE kv SET v = convert_to((src.j || jsonb_build_object('owner_uuid', $6::text, 'modified_at', $7::text))::text, 'UTF8')
        FROM src WHERE kv.tree = $4::int2 AND kv.k = src.k AND src.j->>'owner_uuid' = $5::text
        RETURNING kv.k, src.j->>'modified_at' AS was
    ), owner_old AS (
        DELETE FROM kv WHERE tree = $1::int2 AND k >= $2::bytea AND k < $3::bytea
    ), owner_new AS (
        INSERT INTO kv (tree, k, v) SELECT $1::int2, $8::bytea || k, ''::bytea FROM moved ON CONFLICT DO NOTHING
    ), ",
    list_time_moves!(10, 9),
    " SELECT count(*) FROM moved"
);

/// The uuids (`u`) of the links a merge may change, as the indexes say: those `$5` (the old
/// user) owns, and those with `$5` as tail, or as head when `$9`. `$1` [`TreeId::OwnerTimes`],
/// `$2`/`$3` the old user's link entries there, `$11`/`$12` the old user's entries in an end
/// index (`old \0`, and its end), `$13` the tails' tree, `$14` the heads'.
macro_rules! link_candidates {
    () => {
        "SELECT substring(rest FROM position('\\x00'::bytea IN rest) + 1) AS u
        FROM (SELECT substring(k FROM length($2::bytea) + 1) AS rest
              FROM kv WHERE tree = $1::int2 AND k >= $2::bytea AND k < $3::bytea) o
        UNION SELECT substring(k FROM length($11::bytea) + 1)
              FROM kv WHERE tree = $13::int2 AND k >= $11::bytea AND k < $12::bytea
        UNION SELECT substring(k FROM length($11::bytea) + 1)
              FROM kv WHERE $9::bool AND tree = $14::int2 AND k >= $11::bytea AND k < $12::bytea"
    };
}

/// The links a merge changes, each checked against its JSON (`$4` the links' tree): the
/// [`link_candidates`] whose owner, tail or (when `$9`) head is `$5`.
macro_rules! links_hit {
    () => {
        concat!(
            "cand AS (",
            link_candidates!(),
            "), src AS MATERIALIZED (
                SELECT r.k, convert_from(r.v, 'UTF8')::jsonb AS j FROM cand JOIN kv r ON r.tree = $4::int2 AND r.k = cand.u
            ), hit AS (
                SELECT k, j, j->>'owner_uuid' AS owner, j->>'modified_at' AS was,
                       coalesce(j->>'tail_uuid' = $5::text, false) AS tail,
                       coalesce($9::bool AND j->>'head_uuid' = $5::text, false) AS head
                FROM src
                WHERE j->>'owner_uuid' = $5::text OR j->>'tail_uuid' = $5::text OR ($9::bool AND j->>'head_uuid' = $5::text)
            )"
        )
    };
}

/// How many links the merge changes, as the indexes say (exact on PostgreSQL), with
/// [`MOVE_LINKS`]' parameters (the ones the count does not need are typed by the last subquery).
const COUNT_LINKS: &str = concat!(
    "SELECT count(*) FROM (",
    link_candidates!(),
    ") c, (SELECT $4::int2, $5::text, $6::text, $7::text, $8::bytea, $10::bytea, $15::bytea, $16::int2) unused"
);

/// Changes the links [`links_hit`] finds: owner and ends that were `$5` become `$6` (the new
/// user), `modified_at` becomes `$7`. `$8`: `\0 infix \0` of links (between an owner and a time
/// in [`TreeId::OwnerTimes`]); `$10`: the new user's prefix in an end index (`new \0`); `$15`: the
/// links' modified-time prefix in `$16`, the list index. An owner entry moves when the owner or the
/// time changes. Returns how many links changed.
const MOVE_LINKS: &str = concat!(
    "WITH ",
    links_hit!(),
    ", moved AS (
        UPDATE kv SET v = convert_to((hit.j || jsonb_build_object('modified_at', $7::text)
            || CASE WHEN hit.owner = $5::text THEN jsonb_build_object('owner_uuid', $6::text) ELSE '{}'::jsonb END
            || CASE WHEN hit.tail THEN jsonb_build_object('tail_uuid', $6::text) ELSE '{}'::jsonb END
            || CASE WHEN hit.head THEN jsonb_build_object('head_uuid', $6::text) ELSE '{}'::jsonb END)::text, 'UTF8')
        FROM hit WHERE kv.tree = $4::int2 AND kv.k = hit.k
        RETURNING kv.k, hit.owner, hit.was, hit.tail, hit.head,
                  coalesce(hit.owner = $5::text OR hit.was <> $7::text, true) AS retimed
    ), owner_old AS (
        DELETE FROM kv WHERE tree = $1::int2 AND k IN
            (SELECT convert_to(owner, 'UTF8') || $8::bytea || convert_to(was, 'UTF8') || '\\x00'::bytea || k
             FROM moved WHERE retimed)
    ), owner_new AS (
        INSERT INTO kv (tree, k, v)
        SELECT $1::int2, convert_to(CASE WHEN owner = $5::text THEN $6::text ELSE owner END, 'UTF8') || $8::bytea
                         || convert_to($7::text, 'UTF8') || '\\x00'::bytea || k, ''::bytea
        FROM moved WHERE retimed ON CONFLICT DO NOTHING
    ), ",
    list_time_moves!(16, 15),
    ", tail_old AS (
        DELETE FROM kv WHERE tree = $13::int2 AND k IN (SELECT $11::bytea || k FROM moved WHERE tail)
    ), tail_new AS (
        INSERT INTO kv (tree, k, v) SELECT $13::int2, $10::bytea || k, ''::bytea FROM moved WHERE tail
        ON CONFLICT DO NOTHING
    ), head_old AS (
        DELETE FROM kv WHERE tree = $14::int2 AND k IN (SELECT $11::bytea || k FROM moved WHERE head)
    ), head_new AS (
        INSERT INTO kv (tree, k, v) SELECT $14::int2, $10::bytea || k, ''::bytea FROM moved WHERE head
        ON CONFLICT DO NOTHING
    )
    SELECT count(*) FROM moved"
);

/// `p` and the first key after every key that starts with it ([`kv::prefix_end`]; `p` ends with
/// `\0`, so there is one).
fn span(p: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
    let end = kv::prefix_end(&p).unwrap_or_default();
    (p, end)
}

fn count(rows: &[tokio_postgres::Row]) -> StoreResult<usize> {
    let n: i64 = rows.first().map(|r| r.get(0)).unwrap_or_default();
    usize::try_from(n).map_err(|_| StoreError::Backend(format!("postgres: a count of {n}")))
}

/// [`NAMES`] and [`MOVE_OWNED`]'s first five parameters, for one kind.
fn owned_params(p: &PgKv, kind: ObjectKind, tree: TreeId, owner: &ObjectUuid) -> Params {
    let (lo, hi) = span(owner_kind_prefix(kind, &owner.to_string()));
    vec![
        Box::new(p.tree_id(TreeId::OwnerTimes)),
        Box::new(lo),
        Box::new(hi),
        Box::new(p.tree_id(tree)),
        Box::new(owner.to_string()),
    ]
}

/// [`COUNT_LINKS`]' and [`MOVE_LINKS`]' parameters.
fn link_params(p: &PgKv, m: &OwnerMove) -> Params {
    let old = m.old_user_uuid.to_string();
    let (lo, hi) = span(owner_kind_prefix(ObjectKind::Link, &old));
    let (end_lo, end_hi) = span(prefix(&old));
    let mut between = vec![0u8];
    between.extend_from_slice(&prefix(ObjectKind::Link.infix()));
    vec![
        Box::new(p.tree_id(TreeId::OwnerTimes)),
        Box::new(lo),
        Box::new(hi),
        Box::new(p.tree_id(TreeId::Links)),
        Box::new(old),
        Box::new(m.new_user_uuid.to_string()),
        Box::new(format_time(m.at)),
        Box::new(between),
        Box::new(m.move_heads),
        Box::new(prefix(&m.new_user_uuid.to_string())),
        Box::new(end_lo),
        Box::new(end_hi),
        Box::new(p.tree_id(TreeId::LinkTails)),
        Box::new(p.tree_id(TreeId::LinkHeads)),
        Box::new(time_prefix(ObjectKind::Link, TimeField::Modified)),
        Box::new(p.tree_id(TreeId::ListTimes)),
    ]
}

const MOVED_KINDS: [(ObjectKind, TreeId); 2] =
    [(ObjectKind::Group, TreeId::Groups), (ObjectKind::Collection, TreeId::Collections)];

/// What merge `m` will move, counted (read, nothing written).
pub(super) fn plan(p: &PgKv, m: &OwnerMove) -> StoreResult<ServerMoves> {
    let mut owned = [0; 2];
    for (n, (kind, tree)) in owned.iter_mut().zip(MOVED_KINDS) {
        let mut params = owned_params(p, kind, tree, &m.old_user_uuid);
        params.truncate(3);
        *n = count(&p.query(COUNT_OWNED, params)?)?;
    }
    let links = count(&p.query(COUNT_LINKS, link_params(p, m))?)?;
    Ok(ServerMoves { groups: owned[0], collections: owned[1], links })
}

/// The groups or collections (`kind`) that merge `m` moves whose name is one of `names`.
pub(super) fn moved_named(
    p: &PgKv,
    m: &OwnerMove,
    kind: ObjectKind,
    names: Vec<String>,
) -> StoreResult<Vec<MovedName>> {
    let Some((_, tree)) = MOVED_KINDS.into_iter().find(|(k, _)| *k == kind) else { return Ok(Vec::new()) };
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut params = owned_params(p, kind, tree, &m.old_user_uuid);
    params.push(Box::new(names));
    let mut out = Vec::new();
    for r in p.query(NAMES, params)? {
        let key: Vec<u8> = r.get(0);
        let uuid = std::str::from_utf8(&key).ok().and_then(|s| s.parse::<ObjectUuid>().ok()).ok_or_else(|| {
            StoreError::Codec { tree: tree.name(), message: format!("a key that is no uuid: {key:?}") }
        })?;
        out.push(MovedName { kind, uuid, name: r.get::<_, Option<String>>(1).unwrap_or_default(), trashed: r.get(2) });
    }
    Ok(out)
}

/// Moves what [`plan`] found for `m`, in `txn`.
pub(super) fn apply(p: &PgKv, txn: &mut PgTxn, m: &OwnerMove, moves: &ServerMoves) -> StoreResult<()> {
    let at = format_time(m.at);
    let mut objects = 0;
    // The statements hash every moved row's keys: at the default 4 MB a big merge's hashes spill
    // to disk (a merge of 100k links took a third longer).
    p.query_in(txn, "SET LOCAL work_mem = '128MB'", Vec::new())?;
    for (kind, tree) in MOVED_KINDS {
        let mut params = owned_params(p, kind, tree, &m.old_user_uuid);
        params.push(Box::new(m.new_owner_uuid.to_string()));
        params.push(Box::new(at.clone()));
        params.push(Box::new(owner_time_prefix(kind, &m.new_owner_uuid, m.at)));
        params.push(Box::new(time_prefix(kind, TimeField::Modified)));
        params.push(Box::new(p.tree_id(TreeId::ListTimes)));
        objects += count(&p.query_in(txn, MOVE_OWNED, params)?)?;
    }
    let links = count(&p.query_in(txn, MOVE_LINKS, link_params(p, m))?)?;
    if (objects, links) != (moves.groups + moves.collections, moves.links) {
        // An index entry that does not match its row: the rows say what moves.
        tracing::warn!(
            old = %m.old_user_uuid,
            planned_objects = moves.groups + moves.collections,
            planned_links = moves.links,
            objects,
            links,
            "a merge moved other rows than its index entries named"
        );
    }
    Ok(())
}
