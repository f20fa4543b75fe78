//! Anonymous sessions: work done before logging in (DESIGN §4.7, seed 000).
//!
//! A client that is not logged in starts a session and gets its token, `v2/<an0ns uuid>/<secret>`
//! (only the SHA-256 of the secret is stored). With that token it may use the collections API, and
//! only on the collections the session owns: its caller is a principal whose uuid is the session's
//! ([`Caller::is_anonymous`]), which owns nothing but those collections and is never reached by a
//! permission link. At login the person is offered to import the session's collections into their
//! account (one transaction, one audit entry naming the session and the user) or to discard them;
//! either ends the session. The proof is always the anonymous secret itself, checked against its
//! hash, never an id a caller names.
//!
//! Limits: new sessions per source address and hour (in memory, like the login throttle), and
//! collections per session. A session expires `anonymous.lifetime_secs` after its last use; use
//! refreshes `last_used_at`, written at most once a minute and never waiting for the writer lock. A
//! background sweep deletes expired sessions with their collections, one audit entry each. The
//! last-use stamp is the one write here without an audit entry: it is bookkeeping of the session's
//! own liveness (like the throttle's counters), and an entry per session per minute would drown
//! the log.

use super::error::{Error, ErrorKind, Result};
use super::{Accounts, Caller, auth::invalid_token, random_secret};
use crate::store::records::{AnonymousSession, Collection, User};
use crate::store::{OwnedRecord, OwnedRow, WriteBatch};
use federation_proto::{AnonymousToken, ObjectKind, ObjectUuid, Scopes, Token};
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use time::OffsetDateTime;

/// `last_used_at` is written at most this often per session (seconds).
pub const TOUCH_EVERY_SECS: i64 = 60;

/// The collections API: all an anonymous token may use.
pub const COLLECTIONS_PATH: &str = "/arvados/v1/collections";

/// Sessions one pass of the sweep looks at before it asks the store again.
const SWEEP_PAGE: usize = 500;

/// Bound on the source addresses remembered, so that a flood of addresses cannot grow memory
/// without limit.
const MAX_SOURCES: usize = 100_000;

/// The window of the per-source limit.
const HOUR: i64 = 3600;

/// Whether an anonymous token may make the request `method path`: the collections API, nothing
/// else (`/arvados/v1/collections` and `/arvados/v1/collections/<uuid>`).
pub fn anonymous_may(method: &str, path: &str) -> bool {
    let path = path.split(['?', '#']).next().unwrap_or("");
    if path == COLLECTIONS_PATH {
        return matches!(method, "GET" | "HEAD" | "POST");
    }
    match path.strip_prefix(COLLECTIONS_PATH).and_then(|rest| rest.strip_prefix('/')) {
        Some(id) if !id.is_empty() && !id.contains('/') => {
            matches!(method, "GET" | "HEAD" | "PUT" | "PATCH" | "DELETE")
        }
        _ => false,
    }
}

/// The refusal of everything but the collections API to an anonymous token.
pub fn collections_only() -> Error {
    Error::unauthorized(
        "anonymous_collections_only",
        "an anonymous session can only use collections (/arvados/v1/collections); log in for anything else",
    )
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Internal, "anonymous", e.to_string())
}

/// The scopes an anonymous caller carries: the collections API. The HTTP layer refuses other paths
/// before this matters; the scopes make every "scoped tokens may not" rule of the services apply too.
fn anonymous_scopes() -> Result<Scopes> {
    let base = COLLECTIONS_PATH;
    Scopes::parse(vec![
        format!("GET {base}"),
        format!("POST {base}"),
        format!("GET {base}/"),
        format!("PUT {base}/"),
        format!("PATCH {base}/"),
        format!("DELETE {base}/"),
    ])
    .map_err(internal)
}

/// A session just started.
#[derive(Debug, Clone)]
pub struct NewAnonymousSession {
    /// Its token, shown this once.
    pub token: AnonymousToken,
    /// When it expires unless used before.
    pub expires_at: OffsetDateTime,
}

/// A collection an anonymous session holds, as offered at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedCollection {
    /// The collection.
    pub uuid: ObjectUuid,
    /// Its name.
    pub name: String,
}

/// What an anonymous session holds: what a login offers to import.
#[derive(Debug, Clone)]
pub struct AnonymousOffer {
    /// The session.
    pub session_uuid: ObjectUuid,
    /// Its collections, oldest first.
    pub collections: Vec<OfferedCollection>,
}

/// What an import moved.
#[derive(Debug, Clone)]
pub struct AnonymousImport {
    /// The session, now ended.
    pub session_uuid: ObjectUuid,
    /// The collections moved, oldest first.
    pub moved: Vec<ObjectUuid>,
    /// Their new owner (the caller).
    pub owner_uuid: ObjectUuid,
}

/// What a discard deleted.
#[derive(Debug, Clone)]
pub struct AnonymousDiscard {
    /// The session, now ended.
    pub session_uuid: ObjectUuid,
    /// The collections deleted.
    pub deleted: Vec<ObjectUuid>,
}

/// Sessions started per source address inside the last hour.
pub(crate) struct SessionStarts {
    starts: Mutex<HashMap<String, VecDeque<i64>>>,
}

impl SessionStarts {
    pub(crate) fn new() -> Self {
        SessionStarts { starts: Mutex::new(HashMap::new()) }
    }

    /// Counts a start from `source` at `now`, or refuses it when `max` were counted in the hour
    /// before.
    fn admit(&self, source: &str, now: i64, max: u32) -> Result<()> {
        let mut map = self.starts.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_SOURCES && !map.contains_key(source) {
            map.retain(|_, q| q.back().is_some_and(|&t| t > now - HOUR));
            if map.len() >= MAX_SOURCES {
                map.clear();
            }
        }
        let q = map.entry(source.to_string()).or_default();
        while q.front().is_some_and(|&t| t <= now - HOUR) {
            q.pop_front();
        }
        if q.len() >= max as usize {
            let wait = q.front().map_or(1, |&oldest| oldest + HOUR - now).max(1);
            let mut e = Error::new(
                ErrorKind::Throttled,
                "anonymous_session_limit",
                format!(
                    "too many new anonymous sessions from this address: at most {max} an hour \
                     (anonymous.max_sessions_per_source_per_hour); try again later"
                ),
            );
            e.retry_after = Some(u64::try_from(wait).unwrap_or(1));
            return Err(e);
        }
        q.push_back(now);
        Ok(())
    }
}

/// Parses the `anonymous_token` a login or an import names, saying what is wrong with it.
pub fn parse_anonymous_param(raw: &str) -> Result<AnonymousToken> {
    if raw.parse::<Token>().is_ok() {
        return Err(Error::unauthorized(
            "invalid_anonymous_token",
            "anonymous_token must be the token of an anonymous session (v2/<cluster>-an0ns-…/…), not an API token",
        ));
    }
    raw.parse().map_err(|_| {
        Error::unauthorized(
            "invalid_anonymous_token",
            "anonymous_token is not an anonymous session token (v2/<cluster>-an0ns-…/<secret>)",
        )
    })
}

impl Accounts {
    fn anonymous_lifetime(&self) -> time::Duration {
        time::Duration::seconds(i64::try_from(self.settings().anonymous.lifetime_secs).unwrap_or(i64::MAX / 4))
    }

    /// When `row` expires unless used before.
    pub fn anonymous_expires_at(&self, row: &AnonymousSession) -> OffsetDateTime {
        row.last_used_at + self.anonymous_lifetime()
    }

    fn anonymous_expired(&self) -> Error {
        Error::unauthorized(
            "anonymous_session_expired",
            format!(
                "this anonymous session has expired: it was not used for {} seconds (anonymous.lifetime_secs); \
                 start a new one",
                self.settings().anonymous.lifetime_secs
            ),
        )
    }

    /// `POST /hearth/v1/anonymous`: starts a session for a client at `source` (its address).
    pub fn start_anonymous_session(&self, source: &str) -> Result<NewAnonymousSession> {
        let now = self.clock().now();
        self.anonymous_starts.admit(
            source,
            now.unix_timestamp(),
            self.settings().anonymous.max_sessions_per_source_per_hour,
        )?;
        let token =
            AnonymousToken::new(self.new_uuid(ObjectKind::AnonymousSession), random_secret()).map_err(internal)?;
        let row = AnonymousSession {
            uuid: token.uuid().clone(),
            secret_hash: token.secret_hash(),
            created_at: now,
            last_used_at: now,
        };
        let _w = self.write_lock()?;
        let mut b = WriteBatch::new();
        b.put_anon_session(None, &row)?;
        b.put_log(&self.audit(
            super::auth::Actor::user(&row.uuid),
            "anonymous_session_start",
            Some((&row.uuid, self.system_user())),
            format!("anonymous session {} started", row.uuid),
            json!({}),
        ))?;
        self.store().commit(b)?;
        Ok(NewAnonymousSession { expires_at: self.anonymous_expires_at(&row), token })
    }

    /// The stored session of `token` when it is live: it exists, the secret matches, it has not
    /// expired. Unknown and mismatched tokens get the one invalid-token answer.
    fn live_anonymous_session(&self, token: &AnonymousToken) -> Result<AnonymousSession> {
        let row = self
            .store()
            .anon_session(token.uuid())?
            .filter(|r| r.secret_hash.ct_eq(&token.secret_hash()))
            .ok_or_else(invalid_token)?;
        if self.anonymous_expires_at(&row) <= self.clock().now() {
            return Err(self.anonymous_expired());
        }
        Ok(row)
    }

    /// The same for an `anonymous_token` named in a request body (a login, an import): a dead
    /// token is refused with a message about that parameter, not about the caller's own token.
    fn live_anonymous_param(&self, token: &AnonymousToken) -> Result<AnonymousSession> {
        self.live_anonymous_session(token).map_err(|e| {
            if e.code == "invalid_token" {
                Error::unauthorized(
                    "invalid_anonymous_token",
                    "anonymous_token names no live anonymous session here: it was never issued, or its session \
                     ended (imported, discarded or expired)",
                )
            } else {
                e
            }
        })
    }

    /// Authenticates an anonymous token: the caller is the session, which owns only its own
    /// collections. Refreshes the session's last use (at most once a minute).
    pub fn authenticate_anonymous(&self, token: &AnonymousToken) -> Result<Caller> {
        let row = self.live_anonymous_session(token)?;
        let row = self.touch_anonymous_session(row)?;
        let user = User {
            first_name: "Anonymous".into(),
            is_active: true,
            ..User::new(row.uuid.clone(), self.system_user().clone(), row.created_at)
        };
        Ok(Caller { user, token: None, scopes: anonymous_scopes()?, is_system_root: false, acting_parent: None })
    }

    /// Writes `now` as the session's last use when the stored one is a minute old or more. Skipped
    /// (the next use tries again) when the writer lock is busy: liveness bookkeeping never waits.
    fn touch_anonymous_session(&self, row: AnonymousSession) -> Result<AnonymousSession> {
        let now = self.clock().now();
        if (now - row.last_used_at).whole_seconds() < TOUCH_EVERY_SECS {
            return Ok(row);
        }
        let Some(_w) = self.try_write_lock() else {
            return Ok(row);
        };
        // Read again under the lock: an import, a discard or the sweep may have ended it since.
        let current = self.store().anon_session(&row.uuid)?.ok_or_else(invalid_token)?;
        let touched = AnonymousSession { last_used_at: now, ..current.clone() };
        let mut b = WriteBatch::new();
        b.put_anon_session(Some(&current), &touched)?;
        self.store().commit(b)?;
        Ok(touched)
    }

    /// The collections `owner` owns directly, oldest first.
    pub fn collections_owned_by(&self, owner: &ObjectUuid) -> Result<Vec<Collection>> {
        let mut out: Vec<Collection> = self
            .store()
            .owned_rows(owner)?
            .into_iter()
            .filter_map(|r| match r {
                OwnedRow::Collection(c) => Some(c),
                _ => None,
            })
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.uuid).cmp(&(b.created_at, &b.uuid)));
        Ok(out)
    }

    /// The records of kind `T` an anonymous caller owns (what its lists show), read through the
    /// owner index rather than every record of the kind.
    pub(crate) fn anonymous_owned<T: OwnedRecord>(&self, caller: &Caller) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for uuid in self.store().owned_uuids(caller.uuid())? {
            if uuid.kind() != T::KIND {
                continue;
            }
            if let Some(r) = self.store().object::<T>(&uuid)?
                && r.owner_uuid() == caller.uuid()
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Whether an anonymous caller has any access to `uuid`: it manages the collections its session
    /// owns directly, and nothing else (no owner chains beyond that, no permission links).
    pub(crate) fn anonymous_manages(&self, caller: &Caller, uuid: &ObjectUuid) -> Result<bool> {
        if uuid.kind() != ObjectKind::Collection {
            return Ok(false);
        }
        Ok(self.store().object::<Collection>(uuid)?.is_some_and(|c| &c.owner_uuid == caller.uuid()))
    }

    /// The owner an anonymous caller may give an object: its own session, nothing else.
    pub(crate) fn anonymous_owner(&self, caller: &Caller, named: Option<ObjectUuid>) -> Result<ObjectUuid> {
        match named {
            Some(o) if &o != caller.uuid() => Err(Error::forbidden(
                "anonymous_owner",
                format!("an anonymous session can only own its own collections: owner_uuid must be {}", caller.uuid()),
            )),
            _ => Ok(caller.uuid().clone()),
        }
    }

    /// Checks, under the writer lock, that an anonymous caller may add one more record of `kind`:
    /// a collection, while its session is still live and below `anonymous.max_collections`.
    pub(crate) fn check_anonymous_create(&self, caller: &Caller, kind: ObjectKind) -> Result<()> {
        if kind != ObjectKind::Collection {
            return Err(collections_only());
        }
        // The session may have ended since its token was checked; a collection made now would be
        // owned by nothing and never swept.
        if self.store().anon_session(caller.uuid())?.is_none() {
            return Err(invalid_token());
        }
        let max = self.settings().anonymous.max_collections;
        if self.collections_owned_by(caller.uuid())?.len() >= max as usize {
            return Err(Error::unprocessable(
                "anonymous_collection_limit",
                format!(
                    "an anonymous session may hold at most {max} collections (anonymous.max_collections); log in to \
                     keep more"
                ),
            ));
        }
        Ok(())
    }

    /// What `token`'s session holds, for the offer at login. A dead token is refused as a bad
    /// `anonymous_token` (401 `invalid_anonymous_token`, or `anonymous_session_expired`).
    pub fn anonymous_offer(&self, token: &AnonymousToken) -> Result<AnonymousOffer> {
        let session = self.live_anonymous_param(token)?;
        let collections = self
            .collections_owned_by(&session.uuid)?
            .into_iter()
            .map(|c| OfferedCollection { uuid: c.uuid, name: c.name })
            .collect();
        Ok(AnonymousOffer { session_uuid: session.uuid, collections })
    }

    fn check_import_caller(&self, caller: &Caller) -> Result<()> {
        if caller.is_anonymous() {
            return Err(collections_only());
        }
        if caller.is_system_root {
            return Err(Error::forbidden(
                "anonymous_import_needs_user",
                "the system root token has no account to take anonymous work; use the person's own token",
            ));
        }
        caller.require_active()
    }

    /// `POST /hearth/v1/anonymous_imports`: moves every collection of `token`'s session to the
    /// caller and ends the session, in one transaction with one audit entry naming both. A
    /// collection whose name the caller's home already holds is renamed as Arvados' ensure_unique_name
    /// would (` (<last 15 characters of its uuid>)` added).
    pub fn import_anonymous(&self, caller: &Caller, token: &AnonymousToken) -> Result<AnonymousImport> {
        self.check_import_caller(caller)?;
        let _w = self.write_lock()?;
        let session = self.live_anonymous_param(token)?;
        let rows = self.collections_owned_by(&session.uuid)?;
        let (owner, now) = (caller.uuid().clone(), self.clock().now());
        // Names are unique per owner: a collection whose name the user's home already holds (or
        // that another imported one took) gets Arvados' free name, as ensure_unique_name gives.
        let mut taken: std::collections::HashSet<String> =
            self.store().owned_records::<Collection>(&owner)?.into_iter().map(|c| c.name).collect();
        let mut b = WriteBatch::new();
        for old in &rows {
            let name = if taken.contains(&old.name) {
                super::names::unique_variant(&old.name, &old.uuid)
            } else {
                old.name.clone()
            };
            taken.insert(name.clone());
            let moved = Collection {
                owner_uuid: owner.clone(),
                modified_at: now,
                modified_by_user_uuid: Some(owner.clone()),
                name,
                ..old.clone()
            };
            b.put_object(Some(old), &moved)?;
        }
        b.delete_anon_session(&session);
        let moved: Vec<ObjectUuid> = rows.into_iter().map(|c| c.uuid).collect();
        b.put_log(&self.audit(
            super::auth::Actor::user(&owner),
            "anonymous_import",
            Some((&session.uuid, &owner)),
            format!("{owner} imported {} collections of anonymous session {}", moved.len(), session.uuid),
            json!({"anonymous_session_uuid": session.uuid, "owner_uuid": owner, "collections": moved}),
        ))?;
        self.store().commit(b)?;
        Ok(AnonymousImport { session_uuid: session.uuid, moved, owner_uuid: owner })
    }

    /// `POST /hearth/v1/anonymous_imports/discard`: deletes every collection of `token`'s session
    /// and ends it, in one transaction with one audit entry.
    pub fn discard_anonymous(&self, caller: &Caller, token: &AnonymousToken) -> Result<AnonymousDiscard> {
        self.check_import_caller(caller)?;
        let _w = self.write_lock()?;
        let session = self.live_anonymous_param(token)?;
        let deleted = self.end_anonymous_session(Some(caller.uuid()), &session, "anonymous_discard", "discarded")?;
        Ok(AnonymousDiscard { session_uuid: session.uuid, deleted })
    }

    /// Deletes `session` and its collections with an audit entry (the caller holds the writer lock).
    fn end_anonymous_session(
        &self,
        actor: Option<&ObjectUuid>,
        session: &AnonymousSession,
        event: &str,
        verb: &str,
    ) -> Result<Vec<ObjectUuid>> {
        let rows = self.collections_owned_by(&session.uuid)?;
        let mut b = WriteBatch::new();
        for c in &rows {
            b.delete_object(c);
        }
        b.delete_anon_session(session);
        let deleted: Vec<ObjectUuid> = rows.into_iter().map(|c| c.uuid).collect();
        b.put_log(&self.audit(
            actor.map_or_else(super::auth::Actor::nobody, super::auth::Actor::user),
            event,
            Some((&session.uuid, self.system_user())),
            format!("anonymous session {} {verb} with its {} collections", session.uuid, deleted.len()),
            json!({"anonymous_session_uuid": session.uuid, "collections": deleted}),
        ))?;
        self.store().commit(b)?;
        Ok(deleted)
    }

    /// Deletes every expired anonymous session with its collections, one transaction and one audit
    /// entry per session. Returns how many sessions went.
    pub fn sweep_expired_anonymous(&self) -> Result<usize> {
        let now = self.clock().now();
        // Whole seconds strictly before the cutoff: every candidate has certainly expired (one that
        // expired less than a second ago waits for the next sweep).
        let cutoff = (now - self.anonymous_lifetime()).unix_timestamp();
        let mut swept = 0;
        loop {
            let candidates = self.store().anon_sessions_used_before(cutoff, SWEEP_PAGE)?;
            let full = candidates.len() == SWEEP_PAGE;
            let mut progressed = false;
            for uuid in candidates {
                let _w = self.write_lock()?;
                // Used (or ended) since it was listed: not this sweep's.
                let Some(row) = self.store().anon_session(&uuid)? else { continue };
                if self.anonymous_expires_at(&row) > now {
                    continue;
                }
                self.end_anonymous_session(None, &row, "anonymous_expire", "expired")?;
                swept += 1;
                progressed = true;
            }
            if !full || !progressed {
                return Ok(swept);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::clock::Clock;
    use crate::fixtures::lone_cluster_settings;
    use crate::store::records::TokenKind;
    use crate::store::{Store, TreeId};
    use serde_json::{Map, Value};

    const T0: i64 = 1_700_000_000;
    const LIFETIME: i64 = 7 * 24 * 3600;

    fn open(dir: &std::path::Path, clock: &Clock) -> Accounts {
        Accounts::new(Store::open(&dir.join("store")).unwrap(), lone_cluster_settings(), clock.clone()).unwrap()
    }

    fn start(accounts: &Accounts) -> (AnonymousToken, Caller) {
        let s = accounts.start_anonymous_session("192.0.2.1").unwrap();
        let c = accounts.authenticate_anonymous(&s.token).unwrap();
        (s.token, c)
    }

    fn make_collection(accounts: &Accounts, caller: &Caller, name: &str) -> ObjectUuid {
        let mut attrs = Map::new();
        attrs.insert("name".into(), Value::String(name.into()));
        let v = accounts.create_object::<Collection>(caller, &attrs).unwrap();
        v["uuid"].as_str().unwrap().parse().unwrap()
    }

    fn user(accounts: &Accounts, username: &str) -> Caller {
        let root = accounts.system_root_caller().unwrap();
        let mut attrs = Map::new();
        attrs.insert("username".into(), Value::String(username.into()));
        let v = accounts.create_user(&root, &attrs).unwrap();
        let u = accounts.store().user(&v["uuid"].as_str().unwrap().parse().unwrap()).unwrap().unwrap();
        let (token, _) = accounts.record_login(&u, TokenKind::Api).unwrap();
        accounts.authenticate_local(&token).unwrap()
    }

    fn last_used(accounts: &Accounts, token: &AnonymousToken) -> i64 {
        accounts.store().anon_session(token.uuid()).unwrap().unwrap().last_used_at.unix_timestamp()
    }

    fn audit_of(accounts: &Accounts, event: &str) -> Vec<crate::store::records::LogEntry> {
        accounts.store().logs().map(|e| e.unwrap()).filter(|e| e.event_type == event).collect()
    }

    /// Unused for `anonymous.lifetime_secs`, a session's token is refused (401) with a message that
    /// says it expired, for the API, for an offer and for an import alike; nothing moves.
    #[test]
    fn an_expired_session_is_refused_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(T0);
        let accounts = open(dir.path(), &clock);
        let (token, anon) = start(&accounts);
        let coll = make_collection(&accounts, &anon, "draft");
        let alice = user(&accounts, "alice");

        clock.advance(LIFETIME - 1);
        accounts.authenticate_anonymous(&token).unwrap();
        clock.advance(LIFETIME);
        for e in [
            accounts.authenticate_anonymous(&token).unwrap_err(),
            accounts.anonymous_offer(&token).unwrap_err(),
            accounts.import_anonymous(&alice, &token).unwrap_err(),
        ] {
            assert_eq!((e.kind, e.code), (ErrorKind::Unauthorized, "anonymous_session_expired"));
            assert!(e.message.contains("expired"), "{}", e.message);
        }
        let c: Collection = accounts.store().object(&coll).unwrap().unwrap();
        assert_eq!(&c.owner_uuid, token.uuid(), "nothing moved");
    }

    /// Each use refreshes the session's last use, but writes it at most once a minute; a session in
    /// use outlives its first lifetime, and the sweep leaves it alone.
    #[test]
    fn use_refreshes_last_use_at_most_once_a_minute() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(T0);
        let accounts = open(dir.path(), &clock);
        let (token, _) = start(&accounts);
        assert_eq!(last_used(&accounts, &token), T0);

        clock.advance(30);
        accounts.authenticate_anonymous(&token).unwrap();
        assert_eq!(last_used(&accounts, &token), T0, "not written again within a minute");
        clock.advance(30);
        accounts.authenticate_anonymous(&token).unwrap();
        assert_eq!(last_used(&accounts, &token), T0 + 60);

        // Past the lifetime counted from the start, still alive: it was used at T0 + 60.
        clock.advance(LIFETIME - 1);
        assert_eq!(accounts.sweep_expired_anonymous().unwrap(), 0);
        accounts.authenticate_anonymous(&token).unwrap();
        assert_eq!(last_used(&accounts, &token), T0 + 60 + LIFETIME - 1);
    }

    /// The sweep deletes each expired session with its collections in its own transaction with one
    /// audit entry, keeps the live ones, and finds nothing the second time.
    #[test]
    fn the_sweep_deletes_expired_sessions_with_their_collections_and_audits_each() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(T0);
        let accounts = open(dir.path(), &clock);
        let (a, anon_a) = start(&accounts);
        let a_colls = [make_collection(&accounts, &anon_a, "a1"), make_collection(&accounts, &anon_a, "a2")];
        let (b, anon_b) = start(&accounts);
        let b_coll = make_collection(&accounts, &anon_b, "b1");
        clock.advance(3600);
        let (c, anon_c) = start(&accounts);
        let c_coll = make_collection(&accounts, &anon_c, "c1");
        let before = accounts.store().count(TreeId::Collections);
        assert_eq!(before, 4);

        clock.advance(LIFETIME - 3600 + 1);
        assert_eq!(accounts.sweep_expired_anonymous().unwrap(), 2);
        for t in [&a, &b] {
            assert!(accounts.store().anon_session(t.uuid()).unwrap().is_none());
        }
        for u in a_colls.iter().chain([&b_coll]) {
            assert!(accounts.store().object::<Collection>(u).unwrap().is_none(), "{u} should be gone");
        }
        assert!(accounts.store().anon_session(c.uuid()).unwrap().is_some());
        assert!(accounts.store().object::<Collection>(&c_coll).unwrap().is_some());
        assert_eq!(accounts.store().count(TreeId::Collections), 1);
        assert_eq!(accounts.store().count(TreeId::AnonLastUse), 1, "index entries go with their sessions");

        let entries = audit_of(&accounts, "anonymous_expire");
        assert_eq!(entries.len(), 2);
        let a_entry = entries.iter().find(|e| e.object_uuid.as_ref() == Some(a.uuid())).expect("an entry for a");
        let mut listed: Vec<String> =
            a_entry.properties["collections"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().into()).collect();
        let mut expected: Vec<String> = a_colls.iter().map(ToString::to_string).collect();
        listed.sort();
        expected.sort();
        assert_eq!(listed, expected);
        assert!(entries.iter().any(|e| e.object_uuid.as_ref() == Some(b.uuid())));

        assert_eq!(accounts.sweep_expired_anonymous().unwrap(), 0);
        clock.advance(3600);
        assert_eq!(accounts.sweep_expired_anonymous().unwrap(), 1, "c's turn");
    }

    /// A caller whose session ended after its token was checked (here: imported) cannot make a
    /// collection that nothing would own or sweep.
    #[test]
    fn a_session_that_ended_takes_no_new_collections() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(T0);
        let accounts = open(dir.path(), &clock);
        let (token, anon) = start(&accounts);
        let coll = make_collection(&accounts, &anon, "kept");
        let alice = user(&accounts, "alice");
        let out = accounts.import_anonymous(&alice, &token).unwrap();
        assert_eq!(out.moved, vec![coll]);

        let mut attrs = Map::new();
        attrs.insert("name".into(), Value::String("late".into()));
        let e = accounts.create_object::<Collection>(&anon, &attrs).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unauthorized);
        assert_eq!(accounts.store().count(TreeId::Collections), 1);
        let e = accounts.authenticate_anonymous(&token).unwrap_err();
        assert_eq!(e.code, "invalid_token");
    }
}
