//! Account services: users, passwords, tokens, permissions, owned objects, the merge, redirects,
//! legacy data and anonymous sessions.
//!
//! No HTTP types here. Every mutation takes the writer lock, reads, checks, collects one
//! [`WriteBatch`](crate::store::WriteBatch) and commits it, so checks and writes are serializable and
//! each change (with its audit entry and its indexes) lands all or nothing.

pub mod anonymous;
pub mod auth;
pub mod bounds;
pub mod contents;
pub mod error;
pub mod identities;
pub mod legacy;
pub mod listing;
pub mod merge;
pub mod names;
pub mod objects;
pub mod passwords;
pub mod permissions;
pub mod persons;
pub mod profiles;
pub mod redirects;
pub mod tokens;
pub mod user_states;
pub mod users;
pub mod views;

use crate::clock::Clock;
use crate::store::records::{LogEntry, User};
use crate::store::{Store, WriteBatch};
use error::Result;
use federation_proto::notice::{Notice, ProfileRecord, UserRecord};
use federation_proto::{ClusterId, ObjectKind, ObjectUuid, SecretHash};
use rand::RngExt;
use serde_json::Value;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

pub use auth::{Actor, Caller};
pub use error::{Error, ErrorKind};

/// Settings the account services need (a slice of the daemon config).
#[derive(Debug, Clone)]
pub struct AccountSettings {
    /// This cluster.
    pub cluster: ClusterId,
    /// Peers for which salted secret hashes are kept at token issue time.
    pub peers: Vec<ClusterId>,
    /// SHA-256 of `cluster.system_root_token`, if configured.
    pub system_root_token: Option<SecretHash>,
    /// Lifetime of login tokens (seconds).
    pub login_token_lifetime_secs: u64,
    /// Max lifetime of tokens non-admins create (0 = unlimited).
    pub max_token_lifetime_secs: u64,
    /// Failures allowed per account and per source in the window.
    pub max_login_failures: u32,
    /// Throttle window (seconds).
    pub login_failure_window_secs: u64,
    /// New users created by admins are active by default.
    pub new_users_active: bool,
    /// Largest page a list may return.
    pub max_list_limit: u64,
    /// Limits and lifetime of anonymous sessions.
    pub anonymous: crate::config::AnonymousSettings,
}

/// The writer lock, held (see [`Accounts::write_lock`]): the replicas' shared lock is given up
/// first, then this daemon's.
pub(crate) struct WriteGuard<'a> {
    _cluster: Option<crate::store::ClusterWriterLock>,
    _local: MutexGuard<'a, ()>,
}

/// The account services of one cluster.
pub struct Accounts {
    store: Store,
    settings: AccountSettings,
    clock: Clock,
    writer: Mutex<()>,
    throttle: passwords::Throttle,
    system_user: ObjectUuid,
    outbox_signal: Arc<tokio::sync::Notify>,
    tidy_signal: tokio::sync::Notify,
    pub(crate) hash_gate: passwords::HashGate,
    anonymous_starts: anonymous::SessionStarts,
}

/// The federation's view of a user (what notices and assertions carry), listing `profiles` as
/// its managed profiles. Callers that change a user's profiles pass the list as it will be; others
/// use [`Accounts::user_record`], which reads it.
pub fn user_record_with(u: &User, profiles: &[User]) -> UserRecord {
    let mut profiles: Vec<ProfileRecord> = profiles
        .iter()
        .map(|p| ProfileRecord {
            uuid: p.uuid.clone(),
            first_name: p.first_name.clone(),
            last_name: p.last_name.clone(),
            username: p.username.clone(),
        })
        .collect();
    profiles.sort_by(|a, b| a.uuid.cmp(&b.uuid));
    profiles.dedup_by(|a, b| a.uuid == b.uuid);
    UserRecord {
        uuid: u.uuid.clone(),
        email: u.email.clone().unwrap_or_default(),
        email_verified: u.email_verified,
        username: u.username.clone(),
        first_name: u.first_name.clone(),
        last_name: u.last_name.clone(),
        is_active: u.is_active,
        redirect_to_user_uuid: u.redirect_to_user_uuid.clone(),
        last_login_at: u.last_login_at.map(crate::clock::format_time),
        home_seq: u.home_seq,
        orcid: u.orcid.clone(),
        profiles,
    }
}

/// 15 random characters of `[a-z0-9]`.
pub fn random_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..15).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect()
}

/// A token secret: 50 random alphanumerics.
pub fn random_secret() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut rng = rand::rng();
    (0..50).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect()
}

impl Accounts {
    /// Opens the services over `store`, creating the system user on first start.
    pub fn new(store: Store, settings: AccountSettings, clock: Clock) -> Result<Accounts> {
        let system_user = ObjectUuid::new(settings.cluster.clone(), ObjectKind::User, "000000000000000")
            .map_err(|e| Error::new(ErrorKind::Internal, "bootstrap", e.to_string()))?;
        let mut throttle = passwords::Throttle::new(settings.max_login_failures, settings.login_failure_window_secs);
        if store.backend_name() == "postgres" {
            throttle = throttle.shared_in(store.clone());
        }
        let accounts = Accounts {
            store,
            settings,
            clock,
            writer: Mutex::new(()),
            throttle,
            system_user,
            outbox_signal: Arc::new(tokio::sync::Notify::new()),
            tidy_signal: tokio::sync::Notify::new(),
            hash_gate: passwords::HashGate::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
            anonymous_starts: anonymous::SessionStarts::new(),
        };
        accounts.bootstrap()?;
        Ok(accounts)
    }

    /// The system user's email, as Arvados gives its own (admin tools sort users by email and
    /// would fail on a missing one).
    const SYSTEM_USER_EMAIL: &'static str = "root";

    fn bootstrap(&self) -> Result<()> {
        let _w = self.write_lock()?;
        let mut b = WriteBatch::new();
        match self.store.user(&self.system_user)? {
            Some(old) if old.email.is_some() => return Ok(()),
            Some(old) => {
                // Made before the system user had Arvados' email.
                let root = User { email: Some(Self::SYSTEM_USER_EMAIL.into()), ..old.clone() };
                b.put_user(Some(&old), &root)?;
            }
            None => {
                let now = self.clock.now();
                let root = User {
                    username: Some("root".into()),
                    email: Some(Self::SYSTEM_USER_EMAIL.into()),
                    first_name: "root".into(),
                    is_active: true,
                    is_admin: true,
                    ..User::new(self.system_user.clone(), self.system_user.clone(), now)
                };
                b.put_user(None, &root)?;
            }
        }
        self.store.commit(b)?;
        Ok(())
    }

    /// The federation's view of `u` as stored: its record with its managed profiles. Every
    /// record we send about a user lists them, since a peer takes a record without a profile as
    /// "that profile is no longer this user's".
    pub fn user_record(&self, u: &User) -> Result<UserRecord> {
        Ok(user_record_with(u, &self.store.profiles_of(&u.uuid)?))
    }

    /// The store (read access for other services of the daemon).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// This cluster's id.
    pub fn cluster(&self) -> &ClusterId {
        &self.settings.cluster
    }

    /// The settings in force.
    pub fn settings(&self) -> &AccountSettings {
        &self.settings
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The system (root) user's uuid.
    pub fn system_user(&self) -> &ObjectUuid {
        &self.system_user
    }

    /// Rung after a commit that queued notices; the per-peer senders wait on it.
    pub fn outbox_signal(&self) -> &Arc<tokio::sync::Notify> {
        &self.outbox_signal
    }

    /// Notified after a merge that left index entries behind (see [`Accounts::tidy_indexes`]).
    pub fn tidy_signal(&self) -> &tokio::sync::Notify {
        &self.tidy_signal
    }

    /// Adds `notice` (about one of our own users) to every peer's outbox, in the caller's batch, so
    /// that it is sent if and only if the change that caused it is committed.
    pub(crate) fn queue_notice(&self, b: &mut WriteBatch, notice: &Notice) -> Result<()> {
        if notice.user().uuid.cluster() != self.cluster() {
            return Ok(());
        }
        for peer in &self.settings.peers {
            b.put_outbox(peer, self.store.next_id()?, notice)?;
        }
        Ok(())
    }

    /// Commits a batch and wakes the notice senders.
    pub(crate) fn commit_and_signal(&self, b: WriteBatch) -> Result<()> {
        self.store.commit(b)?;
        self.outbox_signal.notify_waiters();
        Ok(())
    }

    /// Takes the writer lock: this daemon's, then the one its replicas share (PostgreSQL; see
    /// [`crate::store::Store::cluster_writer_lock`]), so that a read-modify-write under it sees
    /// no other writer's in between, on this daemon or another. A poisoned lock is taken anyway:
    /// the store, not memory, holds the state. An error when the shared lock cannot be had (the
    /// database is unreachable, or another replica held it for 120 s).
    pub(crate) fn write_lock(&self) -> Result<WriteGuard<'_>> {
        let local = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let cluster = self.store.cluster_writer_lock(true)?;
        Ok(WriteGuard { _cluster: cluster, _local: local })
    }

    /// The writer lock if it is free right now: for bookkeeping writes that may be skipped rather
    /// than wait behind a long write (a big merge).
    pub(crate) fn try_write_lock(&self) -> Option<WriteGuard<'_>> {
        let local = match self.writer.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        match self.store.cluster_writer_lock(false) {
            Ok(Some(cluster)) => Some(WriteGuard { _cluster: Some(cluster), _local: local }),
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(error = %e, "the cluster's writer lock could not be asked for; skipping");
                None
            }
        }
    }

    /// Arvados' federation parameters, which Hearth answers locally: `bypass_federation` is for
    /// admins only (403, as in Arvados), and `cluster_id` may only name this cluster (Hearth
    /// forwards no request to a peer: 422 saying where to send it).
    pub fn check_federation_params(&self, caller: &Caller, bypass: bool, cluster_id: Option<&str>) -> Result<()> {
        if bypass && !caller.is_admin() {
            return Err(Error::forbidden(
                "bypass_federation_admin_only",
                "The bypass_federation parameter is only permitted when current user is admin",
            ));
        }
        match cluster_id.map(str::trim).filter(|c| !c.is_empty()) {
            Some(id) if id != self.cluster().as_str() => Err(Error::unprocessable(
                "cluster_id_elsewhere",
                format!(
                    "cluster_id {}: this cluster ({}) forwards no request to another; send it to that cluster itself",
                    bounds::excerpt(id),
                    self.cluster()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// A fresh uuid of `kind` at this cluster.
    pub fn new_uuid(&self, kind: ObjectKind) -> ObjectUuid {
        loop {
            if let Ok(u) = ObjectUuid::new(self.settings.cluster.clone(), kind, &random_id()) {
                return u;
            }
        }
    }

    /// Builds an audit entry (not yet written). `actor` comes from the request's [`Caller`]
    /// wherever there is one, so that an entry written while acting as a managed profile names the
    /// profile and the account behind it.
    pub(crate) fn audit(
        &self,
        actor: Actor<'_>,
        event_type: &str,
        object: Option<(&ObjectUuid, &ObjectUuid)>,
        summary: String,
        properties: Value,
    ) -> LogEntry {
        let now = self.clock.now();
        LogEntry {
            uuid: self.new_uuid(ObjectKind::Log),
            owner_uuid: self.system_user.clone(),
            modified_by_user_uuid: actor.user_uuid().cloned(),
            acting_parent_uuid: actor.acting_parent_uuid().cloned(),
            object_uuid: object.map(|(o, _)| o.clone()),
            object_owner_uuid: object.map(|(_, owner)| owner.clone()),
            event_type: event_type.into(),
            summary,
            properties,
            event_at: now,
            created_at: now,
        }
    }
}
