//! The store: the one interface between the services and the database.
//!
//! Every tree is declared once in [`TreeId`] and named `key_value`. Records are JSON; index keys are
//! `a\0b` byte strings whose presence is the fact (the value is empty). A change is collected in a
//! [`WriteBatch`] and applied by [`Store::commit`] atomically across all trees it touches, durable
//! before it returns: after a crash (`kill -9`) either all of a batch is there or none of it. A rule
//! of the store: indexes are written in the same batch as the rows they index. The exception is a
//! merge's row rewrites on sled ([`merge`]): their link-end index entries stay put and a
//! [`LinkEnd`] alias, committed before the rows, makes them findable.
//!
//! This typed layer reads and writes only through [`kv`]'s backend: sled in the data dir, or
//! PostgreSQL (`store.backend`). sled's flush syncs the log's data range but not file metadata (a
//! full sync runs every 500 ms in the background), so acknowledged writes survive a process crash
//! but not necessarily a power loss; a PostgreSQL commit is as durable as the server makes it.

#[cfg(test)]
mod backend_tests;
pub mod copy;
mod decoded;
mod kv;
pub mod lease;
mod merge;
mod pg_merge;
pub mod records;
pub mod scan;
#[cfg(test)]
pub(crate) mod testing;

use federation_proto::ClusterId;
use federation_proto::notice::Notice;
use federation_proto::{ObjectKind, ObjectUuid};
use kv::Op;
use records::{
    AnonymousSession, AuthorizedKey, Collection, Group, Identity, LegacyAccount, Link, LogEntry, Migration,
    OidcPending, Person, PersonClaim, ProfileSwitch, RedirectConsent, RemoteTokenRow, TokenRow, User,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;
use time::OffsetDateTime;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend reported an error (I/O, corruption, a lost connection, a failed statement).
    #[error("storage: {0}")]
    Backend(String),
    /// The store cannot be used by this version or with these settings (a schema newer than this
    /// binary knows, a bad connection URL).
    #[error("storage: {0}")]
    Refused(String),
    /// A record could not be decoded or encoded.
    #[error("storage: bad record in {tree}: {message}")]
    Codec {
        /// The tree.
        tree: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// A write failed after part of it was made durable; the store finishes it when it is opened
    /// again, and nothing else may be written to it before that (the process must stop).
    #[error("storage: a write was cut short and is finished when the store is opened again: {0}")]
    Unfinished(String),
}

/// Result of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

macro_rules! trees {
    ($($variant:ident => $name:literal: $doc:literal,)*) => {
        /// Every tree of the store, declared once.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub enum TreeId { $(#[doc = $doc] $variant,)* }
        impl TreeId {
            /// All trees, in a fixed order.
            pub const ALL: &'static [TreeId] = &[$(TreeId::$variant,)*];
            /// The tree's name (sled's tree, PostgreSQL's row of `trees`).
            pub fn name(self) -> &'static str { match self { $(TreeId::$variant => $name,)* } }
        }
    };
}

trees! {
    Users => "useruuid_user": "user uuid → User",
    ListTimes => "kind_field_time_uuid": "uuid infix \\0 c (created_at) or m (modified_at) \\0 the time as the API formats it \\0 uuid → () for users, groups, collections, links, keys: lists in time order (checked against the row; declared before the rows' trees so that a per-tree write puts an entry before its row)",
    OwnerTimes => "owner_kind_modified_uuid": "owner uuid \\0 uuid infix \\0 modified_at as the API formats it \\0 uuid → () for groups, collections, links, keys: one owner's rows of one kind in time order, and how many there are (exact: every write of a row moves its one entry, a merge's row rewrites included; declared before the rows' trees so that a per-tree write moves the entry before its row)",
    ShownUsernames => "shownusername_useruuid": "the username a user's view shows \\0 user uuid → () (list filters on username)",
    UserEmail => "email_useruuid": "lowercased email \\0 user uuid → ()",
    Username => "username_useruuid": "username → user uuid",
    FormerUsernames => "formerusername_useruuid": "username a merge freed → the merged-away user uuid that held it (logins by it lead to the moved page)",
    Tokens => "tokenuuid_token": "token uuid → TokenRow",
    UserTokens => "useruuid_tokenuuid": "user uuid \\0 token uuid → ()",
    Groups => "groupuuid_group": "group uuid → Group",
    Collections => "collectionuuid_collection": "collection uuid → Collection",
    Links => "linkuuid_link": "link uuid → Link",
    Keys => "keyuuid_authorizedkey": "key uuid → AuthorizedKey",
    LinkHeads => "headuuid_linkuuid": "link head uuid \\0 link uuid → ()",
    LinkTails => "tailuuid_linkuuid": "link tail uuid \\0 link uuid → ()",
    KeyUsers => "authorizeduser_keyuuid": "authorized user uuid \\0 key uuid → ()",
    Logs => "loguuid_log": "log uuid → LogEntry",
    Outbox => "peer_seq_notice": "peer id \\0 big-endian sequence → Notice waiting to be sent",
    Nonces => "originnonce_ts": "origin \\0 nonce → big-endian unix seconds first seen",
    RemoteTokens => "tokenuuid_remotetoken": "token uuid → RemoteTokenRow (validated tokens of other clusters)",
    Migrations => "migrationuuid_migration": "migration uuid → Migration (pending or done)",
    Batches => "originbatch_response": "origin \\0 batch id → the answer given (idempotent receive)",
    Meta => "name_value": "store-wide settings (schema version, …)",
    IndexAliases => "index_target_source_kind": "index tag \\0 target uuid \\0 source uuid \\0 kind infix → (): entries of that kind under the source may be the target's",
    MergeIntents => "olduseruuid_mergeintent": "old user uuid → OwnerMove (a merge on sled still being rolled forward)",
    Legacy => "legacyuuid_legacyaccount": "legacy account uuid → LegacyAccount (imported from an older system)",
    LegacyEmail => "email_legacyuuid": "lowercased email \\0 legacy account uuid → ()",
    RedirectConsents => "olduuid_newuuid_consent": "old user uuid \\0 new user uuid → RedirectConsent (a redirect of a remote user this cluster vouches for)",
    Persons => "personuuid_person": "person uuid → Person",
    PersonTerms => "term_personuuid": "search term (lowercased name word, email, ORCID iD) \\0 person uuid → ()",
    PersonEmails => "email_personuuid": "lowercased email \\0 person uuid → ()",
    PersonOrcids => "orcid_personuuid": "ORCID iD \\0 person uuid → ()",
    PersonClaimedBy => "claimedby_personuuid": "user uuid \\0 person uuid → () (records a user claimed)",
    Claims => "claimuuid_claim": "claim uuid → PersonClaim",
    ClaimsByState => "state_claimuuid": "claim state \\0 claim uuid → () (the admin queue)",
    ClaimsByClaimant => "claimant_claimuuid": "claimant uuid \\0 claim uuid → ()",
    AnonSessions => "anonuuid_anonsession": "anonymous session uuid → AnonymousSession",
    AnonLastUse => "lastused_anonuuid": "big-endian unix seconds of last use \\0 anonymous session uuid → () (the expiry sweep's order)",
    Identities => "issuersubject_identity": "issuer \\0 subject → Identity (an OpenID Connect identity and the one account it logs in to)",
    UserIdentities => "useruuid_issuersubject": "user uuid \\0 issuer \\0 subject → ()",
    OidcPending => "browserhash_oidcpending": "SHA-256 (hex) of a browser's hearth_oidc cookie → OidcPending (an authorization in flight, single use)",
    ManagedProfiles => "parentuuid_profileuuid": "parent user uuid \\0 managed profile uuid → () (local profiles, and cached ones as their parent's home lists them)",
    ProfileSwitches => "tokenuuid_profileswitch": "session token uuid → ProfileSwitch (the managed profile a browser session acts as)",
    Leases => "name_lease": "lease name → Lease (which replica does a cluster-wide job, until when)",
    LoginAttempts => "throttlekey_attempts": "login throttle key → its attempts in the window (shared by replicas; PostgreSQL only)",
    OutboxInFlight => "peer_firstseq_batch": "peer id \\0 big-endian sequence of its first notice → the sequences of a batch sent and not yet acknowledged (resent as it is)",
}

/// One end of a link: its tail or its head, each indexed ([`TreeId::LinkTails`],
/// [`TreeId::LinkHeads`]) so that the links to or from a uuid can be found
/// ([`Store::link_end_candidates`], [`scan::Candidates::LinkEnd`]).
///
/// How those indexes follow a merge is the backend's business, never seen above the store. On
/// sled a merge moves links' ends to the new user but leaves their entries under the old user's
/// uuid; one alias entry says "what is indexed under the old user may belong to the new one".
/// Every read of these indexes therefore follows aliases (transitively) and checks each candidate
/// against its row, so a stale entry is never an answer: rewriting 100k rows in place is cheap in
/// sled, and moving their index entries (a delete and an insert each) cost several times more than
/// the rows. A background tidy ([`Store::tidy_indexes`]) later moves the entries. On PostgreSQL the
/// merge moves the entries with the rows, and there are no aliases.
///
/// The owner index is not aliased: [`TreeId::OwnerTimes`] is kept exact by every write, a
/// merge's row rewrites included (they move its entries: one owner's rows in time order and their
/// count are worth the cost), and is read by [`Store::owned_uuids`]. Owner aliases that earlier
/// versions wrote (tag `owner`) are no index's here, so no read follows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkEnd {
    /// `tail_uuid`.
    Tail,
    /// `head_uuid`.
    Head,
}

impl LinkEnd {
    fn tree(self) -> TreeId {
        match self {
            LinkEnd::Tail => TreeId::LinkTails,
            LinkEnd::Head => TreeId::LinkHeads,
        }
    }

    const ALL: [LinkEnd; 2] = [LinkEnd::Tail, LinkEnd::Head];

    fn tag(self) -> &'static str {
        match self {
            LinkEnd::Tail => "tail",
            LinkEnd::Head => "head",
        }
    }

    fn alias_prefix(self, target: &str) -> Vec<u8> {
        let mut k = pair(self.tag(), target);
        k.push(0);
        k
    }
}

/// Where a row a merge moves was before: its owner and `modified_at` as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MovedFrom {
    /// The owner before the move.
    pub owner: ObjectUuid,
    /// `modified_at` before the move.
    pub modified_at: OffsetDateTime,
    /// A link's head and tail before the move (none: not a link).
    pub link_ends: Option<(ObjectUuid, ObjectUuid)>,
}

/// A link end a merge's row rewrite moved: kept findable as the backend does it (see
/// [`Store::end_ops`]).
#[derive(Debug, Clone)]
struct MovedEnd {
    index: LinkEnd,
    from: ObjectUuid,
    to: ObjectUuid,
    link: ObjectUuid,
}

/// A queued notice as [`Store::outbox_peek`] reads it: its outbox key and its JSON as queued.
pub type QueuedNotice = (Vec<u8>, Vec<u8>);

/// A record found through the owner index.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedRow {
    /// A project or other group.
    Group(Group),
    /// A collection.
    Collection(Collection),
    /// A link.
    Link(Link),
    /// An SSH key.
    Key(AuthorizedKey),
}

impl OwnedRow {
    /// The record's uuid.
    pub fn uuid(&self) -> &ObjectUuid {
        match self {
            OwnedRow::Group(r) => r.uuid(),
            OwnedRow::Collection(r) => r.uuid(),
            OwnedRow::Link(r) => r.uuid(),
            OwnedRow::Key(r) => r.uuid(),
        }
    }

    /// Its owner.
    pub fn owner_uuid(&self) -> &ObjectUuid {
        match self {
            OwnedRow::Group(r) => r.owner_uuid(),
            OwnedRow::Collection(r) => r.owner_uuid(),
            OwnedRow::Link(r) => r.owner_uuid(),
            OwnedRow::Key(r) => r.owner_uuid(),
        }
    }
}

/// The kind of record a tree of owned objects holds.
pub trait OwnedRecord: Serialize + DeserializeOwned + Clone {
    /// The record's tree.
    const TREE: TreeId;
    /// The uuid kind.
    const KIND: ObjectKind;
    /// Its uuid.
    fn uuid(&self) -> &ObjectUuid;
    /// Its owner.
    fn owner_uuid(&self) -> &ObjectUuid;
    /// Its index entries (tree, key), the owner index's among them.
    fn extra_index_keys(&self) -> Vec<(TreeId, Vec<u8>)> {
        Vec::new()
    }
    /// A link's head and tail.
    fn link_ends(&self) -> Option<(&ObjectUuid, &ObjectUuid)> {
        None
    }
}

impl OwnedRecord for Group {
    const TREE: TreeId = TreeId::Groups;
    const KIND: ObjectKind = ObjectKind::Group;
    fn uuid(&self) -> &ObjectUuid {
        &self.uuid
    }
    fn owner_uuid(&self) -> &ObjectUuid {
        &self.owner_uuid
    }
    fn extra_index_keys(&self) -> Vec<(TreeId, Vec<u8>)> {
        scan::owned_list_keys(Self::KIND, &self.uuid, &self.owner_uuid, self.created_at, self.modified_at)
    }
}

impl OwnedRecord for Collection {
    const TREE: TreeId = TreeId::Collections;
    const KIND: ObjectKind = ObjectKind::Collection;
    fn uuid(&self) -> &ObjectUuid {
        &self.uuid
    }
    fn owner_uuid(&self) -> &ObjectUuid {
        &self.owner_uuid
    }
    fn extra_index_keys(&self) -> Vec<(TreeId, Vec<u8>)> {
        scan::owned_list_keys(Self::KIND, &self.uuid, &self.owner_uuid, self.created_at, self.modified_at)
    }
}

impl OwnedRecord for Link {
    const TREE: TreeId = TreeId::Links;
    const KIND: ObjectKind = ObjectKind::Link;
    fn uuid(&self) -> &ObjectUuid {
        &self.uuid
    }
    fn owner_uuid(&self) -> &ObjectUuid {
        &self.owner_uuid
    }
    fn extra_index_keys(&self) -> Vec<(TreeId, Vec<u8>)> {
        let mut keys = vec![
            (TreeId::LinkHeads, pair(&self.head_uuid.to_string(), &self.uuid.to_string())),
            (TreeId::LinkTails, pair(&self.tail_uuid.to_string(), &self.uuid.to_string())),
        ];
        keys.extend(scan::owned_list_keys(Self::KIND, &self.uuid, &self.owner_uuid, self.created_at, self.modified_at));
        keys
    }
    fn link_ends(&self) -> Option<(&ObjectUuid, &ObjectUuid)> {
        Some((&self.head_uuid, &self.tail_uuid))
    }
}

/// The words a person record is found by: each word of its name (lowercased), each email, the ORCID iD.
pub fn person_terms(p: &Person) -> Vec<String> {
    let mut terms: Vec<String> = p
        .name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase().chars().take(64).collect())
        .collect();
    terms.extend(p.emails.iter().cloned());
    terms.extend(p.orcid.iter().cloned());
    terms.sort();
    terms.dedup();
    terms
}

impl OwnedRecord for Person {
    const TREE: TreeId = TreeId::Persons;
    const KIND: ObjectKind = ObjectKind::Person;
    fn uuid(&self) -> &ObjectUuid {
        &self.uuid
    }
    fn owner_uuid(&self) -> &ObjectUuid {
        &self.owner_uuid
    }
    fn extra_index_keys(&self) -> Vec<(TreeId, Vec<u8>)> {
        let me = self.uuid.to_string();
        let mut keys: Vec<(TreeId, Vec<u8>)> =
            person_terms(self).iter().map(|t| (TreeId::PersonTerms, pair(t, &me))).collect();
        keys.extend(self.emails.iter().map(|e| (TreeId::PersonEmails, pair(e, &me))));
        keys.extend(self.orcid.iter().map(|o| (TreeId::PersonOrcids, pair(o, &me))));
        keys.extend(self.claimed_by.iter().map(|u| (TreeId::PersonClaimedBy, pair(&u.to_string(), &me))));
        keys
    }
}

impl OwnedRecord for AuthorizedKey {
    const TREE: TreeId = TreeId::Keys;
    const KIND: ObjectKind = ObjectKind::AuthorizedKey;
    fn uuid(&self) -> &ObjectUuid {
        &self.uuid
    }
    fn owner_uuid(&self) -> &ObjectUuid {
        &self.owner_uuid
    }
    fn extra_index_keys(&self) -> Vec<(TreeId, Vec<u8>)> {
        let mut keys = vec![(TreeId::KeyUsers, pair(&self.authorized_user_uuid.to_string(), &self.uuid.to_string()))];
        keys.extend(scan::owned_list_keys(Self::KIND, &self.uuid, &self.owner_uuid, self.created_at, self.modified_at));
        keys
    }
}

fn outbox_key(peer: &ClusterId, seq: u64) -> Vec<u8> {
    let mut k = prefix(peer.as_str());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The bounds of the keys starting with `p` that come after `after` (all of them when `after` is
/// none or not one of them).
fn after_in(p: &[u8], after: Option<&[u8]>) -> (std::ops::Bound<Vec<u8>>, std::ops::Bound<Vec<u8>>) {
    let lo = match after {
        Some(a) if a.starts_with(p) => std::ops::Bound::Excluded(a.to_vec()),
        _ => std::ops::Bound::Included(p.to_vec()),
    };
    (lo, kv::prefix_end(p).map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded))
}

/// Key of [`TreeId::AnonLastUse`]: the last use as big-endian unix seconds (so that keys sort by
/// time; times before 1970 count as 0), `\0`, the session uuid.
fn last_use_key(at: time::OffsetDateTime, uuid: &str) -> Vec<u8> {
    let secs = u64::try_from(at.unix_timestamp()).unwrap_or(0);
    let mut k = Vec::with_capacity(8 + 1 + uuid.len());
    k.extend_from_slice(&secs.to_be_bytes());
    k.push(0);
    k.extend_from_slice(uuid.as_bytes());
    k
}

/// `a\0b`.
fn pair(a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len() + 1);
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

fn identity_user_key(i: &Identity) -> Vec<u8> {
    let mut k = pair(&i.user_uuid.to_string(), &i.issuer);
    k.push(0);
    k.extend_from_slice(i.subject.as_bytes());
    k
}

fn prefix(a: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + 1);
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k
}

fn encode<T: Serialize>(tree: TreeId, v: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StoreError::Codec { tree: tree.name(), message: e.to_string() })
}

fn decode<T: DeserializeOwned>(tree: TreeId, bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Codec { tree: tree.name(), message: e.to_string() })
}

/// Changes to apply together, all or nothing.
#[derive(Debug, Default)]
pub struct WriteBatch {
    ops: kv::Ops,
    len: usize,
    /// Link ends moved by [`WriteBatch::put_moved_row`], turned into writes when applied.
    ends: Vec<MovedEnd>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of writes collected.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn put_raw(&mut self, tree: TreeId, key: Vec<u8>, value: Vec<u8>) {
        self.ops.entry(tree).or_default().push(Op { key, value: Some(value), neutral: false });
        self.len += 1;
    }

    fn del_raw(&mut self, tree: TreeId, key: Vec<u8>) {
        self.ops.entry(tree).or_default().push(Op { key, value: None, neutral: false });
        self.len += 1;
    }

    /// Writes a user and keeps the email and username indexes in step with `old`, the stored row.
    pub fn put_user(&mut self, old: Option<&User>, new: &User) -> StoreResult<()> {
        let uuid = new.uuid.to_string();
        if let Some(old) = old {
            if let Some(e) = &old.email
                && Some(e) != new.email.as_ref()
            {
                self.del_raw(TreeId::UserEmail, pair(e, &uuid));
            }
            if let Some(u) = old.indexed_username()
                && Some(u) != new.indexed_username()
            {
                self.del_raw(TreeId::Username, u.as_bytes().to_vec());
            }
        }
        if let Some(parent) = old.and_then(|o| o.managed_by.as_ref())
            && Some(parent) != new.managed_by.as_ref()
        {
            self.del_raw(TreeId::ManagedProfiles, pair(&parent.to_string(), &uuid));
        }
        if let Some(parent) = &new.managed_by {
            self.put_raw(TreeId::ManagedProfiles, pair(&parent.to_string(), &uuid), Vec::new());
        }
        if let Some(e) = &new.email {
            self.put_raw(TreeId::UserEmail, pair(e, &uuid), Vec::new());
        }
        // Local users' usernames and the local usernames of cached remote users (a remote user's
        // home username is kept for display only).
        if let Some(u) = new.indexed_username() {
            self.put_raw(TreeId::Username, u.as_bytes().to_vec(), uuid.as_bytes().to_vec());
        }
        self.update_index_keys(old.map(scan::user_list_keys).unwrap_or_default(), scan::user_list_keys(new));
        let bytes = encode(TreeId::Users, new)?;
        self.put_raw(TreeId::Users, uuid.into_bytes(), bytes);
        Ok(())
    }

    /// Deletes a user row (a managed profile, DESIGN §4.8) and its email, username and profile
    /// index entries. Nothing else of a user is ever deleted: merged-away accounts stay as redirects.
    pub fn delete_user(&mut self, row: &User) {
        let uuid = row.uuid.to_string();
        if let Some(e) = &row.email {
            self.del_raw(TreeId::UserEmail, pair(e, &uuid));
        }
        if let Some(u) = &row.username
            && !row.cached_from_home
        {
            self.del_raw(TreeId::Username, u.as_bytes().to_vec());
        }
        if let Some(parent) = &row.managed_by {
            self.del_raw(TreeId::ManagedProfiles, pair(&parent.to_string(), &uuid));
        }
        for (tree, key) in scan::user_list_keys(row) {
            self.del_raw(tree, key);
        }
        self.del_raw(TreeId::Users, uuid.into_bytes());
    }

    /// Switches a browser session to a managed profile (replacing any switch it had).
    pub fn put_profile_switch(&mut self, s: &ProfileSwitch) -> StoreResult<()> {
        let bytes = encode(TreeId::ProfileSwitches, s)?;
        self.put_raw(TreeId::ProfileSwitches, s.token_uuid.to_string().into_bytes(), bytes);
        Ok(())
    }

    /// Ends a session's switch, if it had one.
    pub fn delete_profile_switch(&mut self, token_uuid: &ObjectUuid) {
        self.del_raw(TreeId::ProfileSwitches, token_uuid.to_string().into_bytes());
    }

    /// Remembers that `username` was `user`'s until a merge freed it.
    pub fn put_former_username(&mut self, username: &str, user: &ObjectUuid) {
        self.put_raw(TreeId::FormerUsernames, username.as_bytes().to_vec(), user.to_string().into_bytes());
    }

    /// Writes a token row and its per-user index entry, moving it when the user changed.
    pub fn put_token(&mut self, old: Option<&TokenRow>, new: &TokenRow) -> StoreResult<()> {
        let uuid = new.uuid.to_string();
        if let Some(old) = old
            && old.user_uuid != new.user_uuid
        {
            self.del_raw(TreeId::UserTokens, pair(&old.user_uuid.to_string(), &uuid));
        }
        self.put_raw(TreeId::UserTokens, pair(&new.user_uuid.to_string(), &uuid), Vec::new());
        let bytes = encode(TreeId::Tokens, new)?;
        self.put_raw(TreeId::Tokens, uuid.into_bytes(), bytes);
        Ok(())
    }

    /// Deletes a token row, its index entry and the profile switch of its session, if any.
    pub fn delete_token(&mut self, row: &TokenRow) {
        let uuid = row.uuid.to_string();
        self.del_raw(TreeId::UserTokens, pair(&row.user_uuid.to_string(), &uuid));
        self.delete_profile_switch(&row.uuid);
        self.del_raw(TreeId::Tokens, uuid.into_bytes());
    }

    /// Writes an owned record and keeps its indexes (the owner's among them) in step with `old`.
    pub fn put_object<T: OwnedRecord>(&mut self, old: Option<&T>, new: &T) -> StoreResult<()> {
        let uuid = new.uuid().to_string();
        self.update_index_keys(old.map(|o| o.extra_index_keys()).unwrap_or_default(), new.extra_index_keys());
        let bytes = encode(T::TREE, new)?;
        self.put_raw(T::TREE, uuid.into_bytes(), bytes);
        Ok(())
    }

    /// Rewrites a row that a merge moved (new owner, new link ends, new `modified_at`). Its moved
    /// link ends stay findable as the backend keeps them (see [`Store::end_ops`]: on sled the
    /// entries stay where they are and an alias makes them findable). Its new time entries are added (the old ones stay, and reads skip them: they no
    /// longer match the row), and its [`TreeId::OwnerTimes`] entry moves from where `was` puts it,
    /// so that that index stays exact. Only for merges, whose recorded [`OwnerMove`] rolls these writes
    /// forward after a crash (the entry moves in a tree applied before the row's, so a row that
    /// was rewritten has its entry moved, and one that was not is read and moved again); they move
    /// no count.
    fn put_moved_row<T: OwnedRecord>(&mut self, was: &MovedFrom, new: &T) -> StoreResult<()> {
        let stale = scan::owner_time_key(T::KIND, &was.owner, new.uuid(), was.modified_at);
        if let (Some((old_head, old_tail)), Some((head, tail))) = (&was.link_ends, new.link_ends()) {
            for (index, from, to) in [(LinkEnd::Head, old_head, head), (LinkEnd::Tail, old_tail, tail)] {
                if from != to {
                    let link = new.uuid().clone();
                    self.ends.push(MovedEnd { index, from: from.clone(), to: to.clone(), link });
                }
            }
        }
        for (tree, key) in new.extra_index_keys() {
            if tree == TreeId::OwnerTimes && key != stale {
                self.del_raw(tree, stale.clone());
            }
            if matches!(tree, TreeId::ListTimes | TreeId::OwnerTimes) {
                self.put_raw(tree, key, Vec::new());
            }
        }
        let bytes = encode(T::TREE, new)?;
        self.ops.entry(T::TREE).or_default().push(Op {
            key: new.uuid().to_string().into_bytes(),
            value: Some(bytes),
            neutral: true,
        });
        self.len += 1;
        Ok(())
    }

    /// Deletes the entries of `old` that `new` lacks and writes those `new` adds. Entries that stay
    /// are not written again (a big merge touches many rows), except the list indexes', which are
    /// always written: a caller may pass as `old` a row not stored yet (a new account), and a list
    /// entry too many is skipped by its reader while one too few would hide the row.
    fn update_index_keys(&mut self, old: Vec<(TreeId, Vec<u8>)>, new: Vec<(TreeId, Vec<u8>)>) {
        for (tree, key) in &old {
            if !new.iter().any(|(t, k)| t == tree && k == key) {
                self.del_raw(*tree, key.clone());
            }
        }
        for (tree, key) in new {
            if scan::list_index(tree) || !old.iter().any(|(t, k)| *t == tree && *k == key) {
                self.put_raw(tree, key, Vec::new());
            }
        }
    }

    /// Says that entries of `index` under `source` for objects of `kind` may belong to `target`
    /// (see [`LinkEnd`]). One alias per kind, so that reading `target`'s index does not read
    /// the rows of other kinds the source still lists, and so that aliases only ever add up.
    fn put_alias(&mut self, index: LinkEnd, target: &ObjectUuid, source: &ObjectUuid, kind: ObjectKind) {
        let mut key = index.alias_prefix(&target.to_string());
        key.extend_from_slice(source.to_string().as_bytes());
        key.push(0);
        key.extend_from_slice(kind.infix().as_bytes());
        self.put_raw(TreeId::IndexAliases, key, Vec::new());
    }

    /// Adds another batch's writes after this one's.
    fn extend(&mut self, other: WriteBatch) {
        for (tree, ops) in other.ops {
            self.ops.entry(tree).or_default().extend(ops);
        }
        self.len += other.len;
        self.ends.extend(other.ends);
    }

    /// Takes this batch's writes to `tree` out into a batch of their own (for tests that cut a
    /// per-tree write short between its trees).
    #[cfg(test)]
    fn take_tree(&mut self, tree: TreeId) -> WriteBatch {
        let mut out = WriteBatch::new();
        if let Some(ops) = self.ops.remove(&tree) {
            self.len -= ops.len();
            out.len = ops.len();
            out.ops.insert(tree, ops);
        }
        out
    }

    /// Deletes an owned record and its index entries.
    pub fn delete_object<T: OwnedRecord>(&mut self, row: &T) {
        let uuid = row.uuid().to_string();
        for (tree, key) in row.extra_index_keys() {
            self.del_raw(tree, key);
        }
        self.del_raw(T::TREE, uuid.into_bytes());
    }

    /// Appends an audit log entry.
    pub fn put_log(&mut self, entry: &LogEntry) -> StoreResult<()> {
        let bytes = encode(TreeId::Logs, entry)?;
        self.put_raw(TreeId::Logs, entry.uuid.to_string().into_bytes(), bytes);
        Ok(())
    }

    /// Queues a notice for `peer` under sequence `seq` (from [`Store::next_id`]).
    pub fn put_outbox(&mut self, peer: &ClusterId, seq: u64, notice: &Notice) -> StoreResult<()> {
        let bytes = encode(TreeId::Outbox, notice)?;
        self.put_raw(TreeId::Outbox, outbox_key(peer, seq), bytes);
        Ok(())
    }

    /// Writes a validated remote token.
    pub fn put_remote_token(&mut self, row: &RemoteTokenRow) -> StoreResult<()> {
        let bytes = encode(TreeId::RemoteTokens, row)?;
        self.put_raw(TreeId::RemoteTokens, row.uuid.to_string().into_bytes(), bytes);
        Ok(())
    }

    /// Forgets a validated remote token, and the profile switch of its session, if any.
    pub fn delete_remote_token(&mut self, uuid: &ObjectUuid) {
        self.delete_profile_switch(uuid);
        self.del_raw(TreeId::RemoteTokens, uuid.to_string().into_bytes());
    }

    /// Remembers the answer given to a notice batch.
    pub fn put_batch_answer(
        &mut self,
        origin: &ClusterId,
        batch_id: &str,
        answer: &serde_json::Value,
    ) -> StoreResult<()> {
        let bytes = encode(TreeId::Batches, answer)?;
        self.put_raw(TreeId::Batches, pair(origin.as_str(), batch_id), bytes);
        Ok(())
    }

    /// Writes a migration.
    pub fn put_migration(&mut self, m: &Migration) -> StoreResult<()> {
        let bytes = encode(TreeId::Migrations, m)?;
        self.put_raw(TreeId::Migrations, m.uuid.to_string().into_bytes(), bytes);
        Ok(())
    }

    /// Writes a legacy account and keeps its id and email indexes in step with `old`.
    pub fn put_legacy(&mut self, old: Option<&LegacyAccount>, new: &LegacyAccount) -> StoreResult<()> {
        let uuid = new.uuid.to_string();
        if let Some(old) = old
            && old.email != new.email
        {
            self.del_raw(TreeId::LegacyEmail, pair(&old.email, &uuid));
        }
        if old.is_none_or(|o| o.email != new.email) {
            self.put_raw(TreeId::LegacyEmail, pair(&new.email, &uuid), Vec::new());
        }
        let bytes = encode(TreeId::Legacy, new)?;
        self.put_raw(TreeId::Legacy, uuid.into_bytes(), bytes);
        Ok(())
    }

    /// Writes a claim and keeps its state and claimant indexes in step with `old`.
    pub fn put_claim(&mut self, old: Option<&PersonClaim>, new: &PersonClaim) -> StoreResult<()> {
        let uuid = new.uuid.to_string();
        let state = |c: &PersonClaim| serde_json::to_string(&c.state).unwrap_or_default();
        if let Some(o) = old
            && o.state != new.state
        {
            self.del_raw(TreeId::ClaimsByState, pair(&state(o), &uuid));
        }
        if old.is_none_or(|o| o.state != new.state) {
            self.put_raw(TreeId::ClaimsByState, pair(&state(new), &uuid), Vec::new());
        }
        if old.is_none() {
            self.put_raw(TreeId::ClaimsByClaimant, pair(&new.claimant_uuid.to_string(), &uuid), Vec::new());
        }
        let bytes = encode(TreeId::Claims, new)?;
        self.put_raw(TreeId::Claims, uuid.into_bytes(), bytes);
        Ok(())
    }

    /// Records that this cluster vouches for a remote user's redirect (see [`RedirectConsent`]).
    pub fn put_redirect_consent(&mut self, c: &RedirectConsent) -> StoreResult<()> {
        let bytes = encode(TreeId::RedirectConsents, c)?;
        let key = pair(&c.old_user_uuid.to_string(), &c.new_user_uuid.to_string());
        self.put_raw(TreeId::RedirectConsents, key, bytes);
        Ok(())
    }

    /// Writes an anonymous session and keeps its last-use index entry in step with `old`.
    pub fn put_anon_session(&mut self, old: Option<&AnonymousSession>, new: &AnonymousSession) -> StoreResult<()> {
        let uuid = new.uuid.to_string();
        let (old_key, new_key) =
            (old.map(|o| last_use_key(o.last_used_at, &uuid)), last_use_key(new.last_used_at, &uuid));
        if old_key.as_ref() != Some(&new_key) {
            if let Some(k) = old_key {
                self.del_raw(TreeId::AnonLastUse, k);
            }
            self.put_raw(TreeId::AnonLastUse, new_key, Vec::new());
        }
        let bytes = encode(TreeId::AnonSessions, new)?;
        self.put_raw(TreeId::AnonSessions, uuid.into_bytes(), bytes);
        Ok(())
    }

    /// Deletes an anonymous session and its index entry (its collections are the caller's to delete
    /// or move in the same batch).
    pub fn delete_anon_session(&mut self, row: &AnonymousSession) {
        let uuid = row.uuid.to_string();
        self.del_raw(TreeId::AnonLastUse, last_use_key(row.last_used_at, &uuid));
        self.del_raw(TreeId::AnonSessions, uuid.into_bytes());
    }

    /// Writes an external identity and its per-user index entry (moving it when the user changed).
    pub fn put_identity(&mut self, old: Option<&Identity>, new: &Identity) -> StoreResult<()> {
        if let Some(o) = old
            && o.user_uuid != new.user_uuid
        {
            self.del_raw(TreeId::UserIdentities, identity_user_key(o));
        }
        if old.is_none_or(|o| o.user_uuid != new.user_uuid) {
            self.put_raw(TreeId::UserIdentities, identity_user_key(new), Vec::new());
        }
        let bytes = encode(TreeId::Identities, new)?;
        self.put_raw(TreeId::Identities, pair(&new.issuer, &new.subject), bytes);
        Ok(())
    }

    /// Deletes an external identity and its index entry.
    pub fn delete_identity(&mut self, row: &Identity) {
        self.del_raw(TreeId::UserIdentities, identity_user_key(row));
        self.del_raw(TreeId::Identities, pair(&row.issuer, &row.subject));
    }

    /// Sets a store-wide value.
    pub fn put_meta(&mut self, name: &str, value: &[u8]) {
        self.put_raw(TreeId::Meta, name.as_bytes().to_vec(), value.to_vec());
    }
}

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Bytes of sled's page cache (sled's own default is 1 GiB; see [`DEFAULT_CACHE_BYTES`]).
    pub cache_bytes: u64,
    /// A PostgreSQL database instead of sled in the data dir.
    pub postgres: Option<PostgresOptions>,
}

/// Where a PostgreSQL store is.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// A connection URL (`postgresql://user@host:port/db?sslmode=require`) or key-value string.
    pub url: String,
    /// Connections in the pool.
    pub pool_size: usize,
}

/// The page cache a store gets unless configured otherwise: 64 MiB keeps the daemon's resident
/// memory well under 200 MiB with 100,000 users or a million collections stored, and list pages
/// read through indexes touch few pages.
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { cache_bytes: DEFAULT_CACHE_BYTES, postgres: None }
    }
}

pub use kv::postgres::parse_url as parse_postgres_url;
pub use merge::{OwnerMove, PlannedMerge};
pub use pg_merge::MovedName;

/// The database of one cluster.
#[derive(Clone)]
pub struct Store {
    kv: std::sync::Arc<kv::Backend>,
    counts: std::sync::Arc<scan::Counts>,
    /// Decoded copies of the token and user rows, by their bytes (see [`decoded`]).
    decoded: std::sync::Arc<DecodedRows>,
    /// How many merges a crash had cut short when the store was opened (see [`merge`]).
    finished_at_open: usize,
}

/// The rows every authenticated request reads.
struct DecodedRows {
    users: decoded::Decoded<User>,
    tokens: decoded::Decoded<TokenRow>,
}

/// A pass of the index tidy ([`Store::tidy_indexes`]): what it has still to look at.
pub struct IndexTidy {
    left: std::collections::VecDeque<(LinkEnd, ObjectUuid)>,
    after: Option<ObjectUuid>,
}

impl IndexTidy {
    /// Whether the pass has nothing (left) to do.
    pub fn is_done(&self) -> bool {
        self.left.is_empty()
    }
}

/// The cluster's writer lock, held (see [`Store::cluster_writer_lock`]); given up when dropped.
pub struct ClusterWriterLock {
    kv: std::sync::Arc<kv::Backend>,
    conn: Option<kv::postgres::WriterLockConn>,
}

impl Drop for ClusterWriterLock {
    fn drop(&mut self) {
        if let (Some(c), kv::Backend::Postgres(p)) = (self.conn.take(), &*self.kv) {
            p.unlock_writer(c);
        }
    }
}

impl Store {
    /// Takes the writer lock that replicas of one cluster share, so that a read-modify-write one
    /// daemon does under its own writer lock is not interleaved with another replica's: on
    /// PostgreSQL an advisory lock (waited for up to 120 s; unless `wait`, taken only if free: none
    /// if not); on sled, where one process owns the store, nothing to take.
    pub fn cluster_writer_lock(&self, wait: bool) -> StoreResult<Option<ClusterWriterLock>> {
        let conn = match &*self.kv {
            kv::Backend::Sled(_) => None,
            kv::Backend::Postgres(p) => match p.lock_writer(wait)? {
                Some(c) => Some(c),
                None => return Ok(None),
            },
        };
        Ok(Some(ClusterWriterLock { kv: self.kv.clone(), conn }))
    }
}

impl Store {
    /// Opens (or creates) the store in `dir` with the default options.
    pub fn open(dir: &Path) -> StoreResult<Store> {
        Store::open_with(dir, StoreOptions::default())
    }

    /// Opens (or creates) the store: sled in `dir`, or the PostgreSQL database the options name
    /// (migrated to this version's schema first). Builds the list indexes once if the data
    /// predates them, and counts what lists count.
    pub fn open_with(dir: &Path, opts: StoreOptions) -> StoreResult<Store> {
        let kv = match &opts.postgres {
            Some(pg) => kv::Backend::Postgres(kv::postgres::PgKv::open(pg)?),
            None => kv::Backend::Sled(kv::sled::SledKv::open(dir, opts.cache_bytes)?),
        };
        Store::with_backend(kv)
    }

    fn with_backend(kv: kv::Backend) -> StoreResult<Store> {
        let decoded =
            std::sync::Arc::new(DecodedRows { users: decoded::Decoded::new(), tokens: decoded::Decoded::new() });
        let mut store = Store { kv: std::sync::Arc::new(kv), counts: Default::default(), decoded, finished_at_open: 0 };
        store.build_list_indexes()?;
        store.count_rows()?;
        store.finished_at_open = store.finish_cut_merges()?;
        Ok(store)
    }

    /// Which backend holds the data: `sled` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        self.kv.name()
    }

    /// Applies a batch atomically and makes it durable before returning (sled: flushed to its log;
    /// PostgreSQL: one committed transaction).
    pub fn commit(&self, batch: WriteBatch) -> StoreResult<()> {
        self.commit_with(batch, true)
    }

    /// Applies a batch atomically, as [`Store::commit`] does, without waiting for it to be durable:
    /// on sled the next flush (any commit's, or sled's own within 500 ms) makes it durable, and a
    /// flush makes durable every write before it, so a crash keeps a prefix of what was applied;
    /// on PostgreSQL the commit does not wait for the WAL flush. Only for what may be lost in a
    /// crash: a cache that is fetched again.
    pub fn commit_unflushed(&self, batch: WriteBatch) -> StoreResult<()> {
        self.commit_with(batch, false)
    }

    fn commit_with(&self, mut batch: WriteBatch, flush: bool) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let ends = std::mem::take(&mut batch.ends);
        batch.extend(self.end_ops(ends));
        let d = self.kv.commit(batch.ops, flush)?;
        self.counts.apply(&d);
        Ok(())
    }

    /// Applies a batch tree by tree on sled (each tree's writes atomically, the whole batch not;
    /// see `kv::sled`), as one transaction on PostgreSQL. Not flushed. For a merge's row rewrites
    /// on sled ([`merge`]), the index build at open and the legacy import.
    fn apply_per_tree(&self, mut batch: WriteBatch) -> StoreResult<()> {
        let ends = std::mem::take(&mut batch.ends);
        batch.extend(self.end_ops(ends));
        match &*self.kv {
            kv::Backend::Sled(s) => s.apply_per_tree(batch.ops, &|d| self.counts.apply(d)),
            kv::Backend::Postgres(_) => self.commit_unflushed(batch),
        }
    }

    /// Applies big batches whose keys are derived from their input, in order, and makes them
    /// durable: after a crash each stage is there (in whole or in part) only if every stage before
    /// it is whole, so that applying the same stages again completes what a crash cut short (the
    /// legacy import, whose last stage says which lines are in). How each backend does it stays
    /// here: sled applies each stage tree by tree, unflushed (several times cheaper than a
    /// transaction; sled keeps a prefix of its writes after a crash), then flushes; PostgreSQL
    /// commits them all in one transaction.
    pub fn commit_rerunnable(&self, stages: Vec<WriteBatch>) -> StoreResult<()> {
        if matches!(&*self.kv, kv::Backend::Postgres(_)) {
            let mut all = WriteBatch::new();
            for s in stages {
                all.extend(s);
            }
            return self.commit(all);
        }
        for s in stages {
            self.apply_per_tree(s)?;
        }
        self.flush()
    }

    /// The writes that keep moved link ends findable. On PostgreSQL the entries move, in the
    /// transaction of their rows. On sled one alias per index, old end and new end says that what
    /// is under the old end may be the new one's (see [`LinkEnd`]): rewriting a row in place
    /// is cheap there, and moving its entries cost several times more.
    fn end_ops(&self, ends: Vec<MovedEnd>) -> WriteBatch {
        let mut b = WriteBatch::new();
        for e in ends {
            match &*self.kv {
                kv::Backend::Postgres(_) => {
                    let link = e.link.to_string();
                    b.del_raw(e.index.tree(), pair(&e.from.to_string(), &link));
                    b.put_raw(e.index.tree(), pair(&e.to.to_string(), &link), Vec::new());
                }
                kv::Backend::Sled(_) => b.put_alias(e.index, &e.to, &e.from, ObjectKind::Link),
            }
        }
        b
    }

    /// Makes every write before it durable (used at shutdown).
    pub fn flush(&self) -> StoreResult<()> {
        self.kv.flush()
    }

    fn get_json<T: DeserializeOwned>(&self, tree: TreeId, key: &[u8]) -> StoreResult<Option<T>> {
        match self.kv.get(tree, key)? {
            Some(v) => decode(tree, &v).map(Some),
            None => Ok(None),
        }
    }

    /// [`Store::get_json`] of a row read on every request: decoded only when its bytes changed.
    fn get_decoded<T: DeserializeOwned + Clone>(
        &self,
        cache: &decoded::Decoded<T>,
        tree: TreeId,
        uuid: &ObjectUuid,
    ) -> StoreResult<Option<T>> {
        let key = uuid.to_string();
        match self.kv.get(tree, key.as_bytes())? {
            Some(v) => cache.get(key.as_bytes(), &v, |b| decode(tree, b)).map(Some),
            None => Ok(None),
        }
    }

    fn iter_json<T: DeserializeOwned>(&self, tree: TreeId) -> impl Iterator<Item = StoreResult<T>> + '_ {
        self.kv.iter(tree).map(move |kv| decode(tree, &kv?.1))
    }

    /// Second halves of the index keys `a\0*`.
    fn index_scan(&self, tree: TreeId, a: &str) -> StoreResult<Vec<String>> {
        let p = prefix(a);
        let mut out = Vec::new();
        for kv in self.kv.scan_prefix(tree, &p, false) {
            let (k, _) = kv?;
            out.push(String::from_utf8_lossy(&k[p.len()..]).into_owned());
        }
        Ok(out)
    }

    /// A user by uuid (local or cached remote).
    pub fn user(&self, uuid: &ObjectUuid) -> StoreResult<Option<User>> {
        self.get_decoded(&self.decoded.users, TreeId::Users, uuid)
    }

    /// The user holding a username.
    pub fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let Some(uuid) = self.kv.get(TreeId::Username, username.as_bytes())? else {
            return Ok(None);
        };
        self.get_json(TreeId::Users, &uuid)
    }

    /// The merged-away user that last held `username` before a merge freed it, if any.
    pub fn former_holder_of(&self, username: &str) -> StoreResult<Option<User>> {
        let Some(uuid) = self.kv.get(TreeId::FormerUsernames, username.as_bytes())? else {
            return Ok(None);
        };
        self.get_json(TreeId::Users, &uuid)
    }

    /// Users with this (lowercased) email.
    pub fn users_by_email(&self, email: &str) -> StoreResult<Vec<User>> {
        let mut out = Vec::new();
        for uuid in self.index_scan(TreeId::UserEmail, email)? {
            if let Some(u) = self.get_json(TreeId::Users, uuid.as_bytes())? {
                out.push(u);
            }
        }
        Ok(out)
    }

    /// Person records indexed under `term` in `tree` (one of the person indexes); with `prefix`,
    /// every term that starts with it. At most `max` uuids, in term order.
    pub fn persons_by(&self, tree: TreeId, term: &str, prefix_match: bool, max: usize) -> StoreResult<Vec<ObjectUuid>> {
        let mut out = Vec::new();
        let start = if prefix_match { term.as_bytes().to_vec() } else { prefix(term) };
        for kv in self.kv.scan_prefix(tree, &start, false) {
            let (k, _) = kv?;
            let Some(at) = k.iter().position(|b| *b == 0) else { continue };
            if let Some(u) = std::str::from_utf8(&k[at + 1..]).ok().and_then(|u| u.parse().ok()) {
                if !out.contains(&u) {
                    out.push(u);
                }
                if out.len() >= max {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// A claim.
    pub fn claim(&self, uuid: &ObjectUuid) -> StoreResult<Option<PersonClaim>> {
        self.get_json(TreeId::Claims, uuid.to_string().as_bytes())
    }

    /// Claims in one state (the admin queue), oldest uuid first.
    pub fn claims_in_state(&self, state: crate::store::records::ClaimState) -> StoreResult<Vec<PersonClaim>> {
        let key = serde_json::to_string(&state).unwrap_or_default();
        let mut out = Vec::new();
        for uuid in self.index_scan(TreeId::ClaimsByState, &key)? {
            if let Some(c) = self.get_json(TreeId::Claims, uuid.as_bytes())? {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// The claims a user made.
    pub fn claims_of(&self, claimant: &ObjectUuid) -> StoreResult<Vec<PersonClaim>> {
        let mut out = Vec::new();
        for uuid in self.index_scan(TreeId::ClaimsByClaimant, &claimant.to_string())? {
            if let Some(c) = self.get_json(TreeId::Claims, uuid.as_bytes())? {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// A legacy account by uuid.
    pub fn legacy(&self, uuid: &ObjectUuid) -> StoreResult<Option<LegacyAccount>> {
        self.get_json(TreeId::Legacy, uuid.to_string().as_bytes())
    }

    /// Legacy accounts with this (lowercased) email.
    pub fn legacy_by_email(&self, email: &str) -> StoreResult<Vec<LegacyAccount>> {
        let mut out = Vec::new();
        for uuid in self.index_scan(TreeId::LegacyEmail, email)? {
            if let Some(l) = self.get_json(TreeId::Legacy, uuid.as_bytes())? {
                out.push(l);
            }
        }
        Ok(out)
    }

    /// All users.
    pub fn users(&self) -> impl Iterator<Item = StoreResult<User>> + '_ {
        self.iter_json(TreeId::Users)
    }

    /// The managed profiles of `parent` (local ones, or cached ones its home listed), by uuid.
    pub fn profiles_of(&self, parent: &ObjectUuid) -> StoreResult<Vec<User>> {
        let mut out = Vec::new();
        for uuid in self.index_scan(TreeId::ManagedProfiles, &parent.to_string())? {
            if let Some(u) = self.get_json::<User>(TreeId::Users, uuid.as_bytes())?
                && u.managed_by.as_ref() == Some(parent)
            {
                out.push(u);
            }
        }
        Ok(out)
    }

    /// The managed profile a session token's session acts as, if it switched to one.
    pub fn profile_switch(&self, token_uuid: &ObjectUuid) -> StoreResult<Option<ProfileSwitch>> {
        self.get_json(TreeId::ProfileSwitches, token_uuid.to_string().as_bytes())
    }

    /// The sessions switched to `profile` (a scan: only sessions switched right now are listed).
    pub fn switches_to(&self, profile: &ObjectUuid) -> StoreResult<Vec<ProfileSwitch>> {
        let mut out = Vec::new();
        for s in self.iter_json::<ProfileSwitch>(TreeId::ProfileSwitches) {
            let s = s?;
            if &s.profile_uuid == profile {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// A token row.
    pub fn token(&self, uuid: &ObjectUuid) -> StoreResult<Option<TokenRow>> {
        self.get_decoded(&self.decoded.tokens, TreeId::Tokens, uuid)
    }

    /// The tokens that act for a user.
    pub fn tokens_of(&self, user: &ObjectUuid) -> StoreResult<Vec<TokenRow>> {
        let mut out = Vec::new();
        for uuid in self.index_scan(TreeId::UserTokens, &user.to_string())? {
            if let Some(t) = self.get_json(TreeId::Tokens, uuid.as_bytes())? {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// An owned record by uuid.
    pub fn object<T: OwnedRecord>(&self, uuid: &ObjectUuid) -> StoreResult<Option<T>> {
        self.get_json(T::TREE, uuid.to_string().as_bytes())
    }

    /// All records of one kind.
    pub fn objects<T: OwnedRecord>(&self) -> impl Iterator<Item = StoreResult<T>> + '_ {
        self.iter_json(T::TREE)
    }

    /// The uuids indexed by `index` under `a` and under every key aliased into `a` (transitively),
    /// sorted, without duplicates. Candidates only: the caller checks each row.
    pub fn link_end_candidates(&self, index: LinkEnd, a: &ObjectUuid) -> StoreResult<Vec<ObjectUuid>> {
        self.candidates(index, &a.to_string())
    }

    fn candidates(&self, index: LinkEnd, a: &str) -> StoreResult<Vec<ObjectUuid>> {
        // States: an index key and the one kind its entries may be of (none: any kind). An alias
        // covers one kind, so a chain of aliases covers a kind only if every link in it does.
        let mut seen: Vec<(String, Option<ObjectKind>)> = vec![(a.to_owned(), None)];
        let mut queue = seen.clone();
        let mut out = Vec::new();
        while let Some((key, kind)) = queue.pop() {
            out.extend(
                self.index_scan(index.tree(), &key)?
                    .iter()
                    .filter_map(|s| s.parse::<ObjectUuid>().ok())
                    .filter(|u| kind.is_none_or(|k| u.kind() == k)),
            );
            let p = index.alias_prefix(&key);
            for kv in self.kv.scan_prefix(TreeId::IndexAliases, &p, false) {
                let (k, _) = kv?;
                let rest = String::from_utf8_lossy(&k[p.len()..]).into_owned();
                let Some((source, infix)) = rest.split_once('\0') else { continue };
                let Some(alias_kind) = ObjectKind::from_infix(infix) else { continue };
                if kind.is_some_and(|k| k != alias_kind) {
                    continue;
                }
                let state = (source.to_owned(), Some(alias_kind));
                if !seen.contains(&state) {
                    seen.push(state.clone());
                    queue.push(state);
                }
            }
        }
        if seen.len() > 1 {
            out.sort();
            out.dedup();
        }
        Ok(out)
    }

    /// The uuids of the groups, collections, links and keys `owner` holds, sorted: from
    /// [`TreeId::OwnerTimes`] (keys `owner \0 kind \0 time \0 uuid`), which holds each row once.
    pub fn owned_uuids(&self, owner: &ObjectUuid) -> StoreResult<Vec<ObjectUuid>> {
        self.owner_index_uuids(&prefix(&owner.to_string()))
    }

    /// The uuids of the [`TreeId::OwnerTimes`] entries under `p` (an owner's, of one kind, at one
    /// time), sorted. Each entry's key ends with its row's uuid.
    fn owner_index_uuids(&self, p: &[u8]) -> StoreResult<Vec<ObjectUuid>> {
        let mut out = Vec::new();
        for kv in self.kv.scan_prefix(TreeId::OwnerTimes, p, false) {
            let k = kv?.0;
            let uuid = k.rsplit(|b| *b == 0).next().unwrap_or_default();
            if let Some(u) = std::str::from_utf8(uuid).ok().and_then(|s| s.parse::<ObjectUuid>().ok()) {
                out.push(u);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Where `uuid`'s row says its entry in `index` belongs (its tail or head); none when the row
    /// is gone.
    fn indexed_under(&self, index: LinkEnd, uuid: &ObjectUuid) -> StoreResult<Option<ObjectUuid>> {
        Ok(match index {
            LinkEnd::Tail => self.object::<Link>(uuid)?.map(|l| l.tail_uuid),
            LinkEnd::Head => self.object::<Link>(uuid)?.map(|l| l.head_uuid),
        })
    }

    /// Begins a pass of the index tidy: it moves the index entries that merges left where their
    /// rows no longer say they belong (sled's aliased link ends, see [`LinkEnd`]; on PostgreSQL a
    /// merge leaves none, and the pass is empty). Take it [`Store::tidy_step`] by step.
    pub fn tidy_indexes(&self) -> StoreResult<IndexTidy> {
        Ok(IndexTidy { left: self.alias_sources()?.into(), after: None })
    }

    /// One step of a tidy pass: moves up to `max` entries; how many moved or went, or none when
    /// the pass is over. The index is right at every point of a pass, so each step may hold the
    /// writer lock on its own (the caller holds it).
    pub fn tidy_step(&self, pass: &mut IndexTidy, max: usize) -> StoreResult<Option<usize>> {
        let Some((index, source)) = pass.left.front().cloned() else { return Ok(None) };
        let (last, n) = self.tidy_index_entries(index, &source, pass.after.as_ref(), max)?;
        match last {
            Some(l) => pass.after = Some(l),
            None => {
                pass.left.pop_front();
                pass.after = None;
            }
        }
        Ok(Some(n))
    }

    /// The uuids that aliases point from, per index (the keys whose entries may be elsewhere's).
    fn alias_sources(&self) -> StoreResult<Vec<(LinkEnd, ObjectUuid)>> {
        let mut out = Vec::new();
        for kv in self.kv.iter(TreeId::IndexAliases) {
            let (k, _) = kv?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let mut parts = key.split('\0');
            let (Some(tag), Some(_target), Some(source)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let (Some(index), Ok(source)) = (LinkEnd::ALL.into_iter().find(|i| i.tag() == tag), source.parse()) else {
                continue;
            };
            let found = (index, source);
            if !out.contains(&found) {
                out.push(found);
            }
        }
        Ok(out)
    }

    /// Moves up to `max` entries of `index` under `source` (those after `after`) to where their
    /// rows say they belong, drops those whose row is gone, and keeps those that are `source`'s.
    /// The result is the index as ordinary writes keep it, so it is right at any point, and every
    /// alias stays valid. Returns the last entry looked at (none when there were no more) and how
    /// many entries moved or went. The caller holds the writer lock.
    fn tidy_index_entries(
        &self,
        index: LinkEnd,
        source: &ObjectUuid,
        after: Option<&ObjectUuid>,
        max: usize,
    ) -> StoreResult<(Option<ObjectUuid>, usize)> {
        let source_s = source.to_string();
        let p = prefix(&source_s);
        let start = match after {
            Some(a) => std::ops::Bound::Excluded(pair(&source_s, &a.to_string())),
            None => std::ops::Bound::Included(p.clone()),
        };
        let mut entries = Vec::new();
        let end = kv::prefix_end(&p).map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        for kv in self.kv.range(index.tree(), start, end, false) {
            let (k, _) = kv?;
            if !k.starts_with(&p) || entries.len() >= max {
                break;
            }
            entries.push(String::from_utf8_lossy(&k[p.len()..]).into_owned());
        }
        let mut b = WriteBatch::new();
        let mut last = None;
        let mut changed = 0;
        for e in entries {
            let Ok(uuid) = e.parse::<ObjectUuid>() else { continue };
            match self.indexed_under(index, &uuid)? {
                Some(at) if &at == source => {}
                Some(at) => {
                    b.del_raw(index.tree(), pair(&source_s, &e));
                    b.put_raw(index.tree(), pair(&at.to_string(), &e), Vec::new());
                    changed += 1;
                }
                None => {
                    b.del_raw(index.tree(), pair(&source_s, &e));
                    changed += 1;
                }
            }
            last = Some(uuid);
        }
        self.commit(b)?;
        Ok((last, changed))
    }

    fn owned_row(&self, uuid: &ObjectUuid) -> StoreResult<Option<OwnedRow>> {
        Ok(match uuid.kind() {
            ObjectKind::Group => self.object::<Group>(uuid)?.map(OwnedRow::Group),
            ObjectKind::Collection => self.object::<Collection>(uuid)?.map(OwnedRow::Collection),
            ObjectKind::Link => self.object::<Link>(uuid)?.map(OwnedRow::Link),
            ObjectKind::AuthorizedKey => self.object::<AuthorizedKey>(uuid)?.map(OwnedRow::Key),
            _ => None,
        })
    }

    /// The groups, collections, links and keys directly owned by `owner`, read and checked. Many
    /// rows are read and decoded on several threads (a merge of a big account reads them all).
    pub fn owned_rows(&self, owner: &ObjectUuid) -> StoreResult<Vec<OwnedRow>> {
        let candidates = self.owned_uuids(owner)?;
        if let kv::Backend::Postgres(p) = &*self.kv {
            return owned_rows_batched(p, owner, &candidates);
        }
        let read = |uuids: &[ObjectUuid]| -> StoreResult<Vec<OwnedRow>> {
            let mut out = Vec::with_capacity(uuids.len());
            for uuid in uuids {
                if let Some(row) = self.owned_row(uuid)?
                    && row.owner_uuid() == owner
                {
                    out.push(row);
                }
            }
            Ok(out)
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
        if threads == 1 || candidates.len() < PARALLEL_READ_MIN {
            return read(&candidates);
        }
        let parts: Vec<StoreResult<Vec<OwnedRow>>> = std::thread::scope(|s| {
            let handles: Vec<_> =
                candidates.chunks(candidates.len().div_ceil(threads)).map(|part| s.spawn(move || read(part))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
        });
        let mut out = Vec::with_capacity(candidates.len());
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }

    /// The rows of `kind` whose [`TreeId::OwnerTimes`] entry is under `owner` at time `at`, read
    /// but not checked against the entry (a merge's roll-forward looks for rows whose entry moved
    /// before the row did).
    fn owned_rows_at(&self, kind: ObjectKind, owner: &ObjectUuid, at: OffsetDateTime) -> StoreResult<Vec<OwnedRow>> {
        let mut out = Vec::new();
        for u in self.owner_index_uuids(&scan::owner_time_prefix(kind, owner, at))? {
            out.extend(self.owned_row(&u)?);
        }
        Ok(out)
    }

    /// The records of kind `T` directly owned by `owner`, read and checked (only that kind's
    /// entries of the owner index are read).
    pub fn owned_records<T: OwnedRecord>(&self, owner: &ObjectUuid) -> StoreResult<Vec<T>> {
        let mut out = Vec::new();
        for uuid in self.owner_index_uuids(&scan::owner_kind_prefix(T::KIND, &owner.to_string()))? {
            if let Some(r) = self.object::<T>(&uuid)?
                && r.owner_uuid() == owner
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Uuids of the groups, collections, links and keys directly owned by `owner`.
    pub fn owned_by(&self, owner: &ObjectUuid) -> StoreResult<Vec<ObjectUuid>> {
        Ok(self.owned_rows(owner)?.into_iter().map(|r| r.uuid().clone()).collect())
    }

    /// Whether `owner` directly owns anything.
    pub fn owns_anything(&self, owner: &ObjectUuid) -> StoreResult<bool> {
        for uuid in self.owned_uuids(owner)? {
            if self.owned_row(&uuid)?.is_some_and(|r| r.owner_uuid() == owner) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Links whose head is `head`.
    pub fn links_by_head(&self, head: &ObjectUuid) -> StoreResult<Vec<Link>> {
        self.links_by(LinkEnd::Head, head)
    }

    /// Links whose tail is `tail`.
    pub fn links_by_tail(&self, tail: &ObjectUuid) -> StoreResult<Vec<Link>> {
        self.links_by(LinkEnd::Tail, tail)
    }

    fn links_by(&self, index: LinkEnd, end: &ObjectUuid) -> StoreResult<Vec<Link>> {
        let mut out = Vec::new();
        for uuid in self.candidates(index, &end.to_string())? {
            if let Some(l) = self.object::<Link>(&uuid)? {
                let at = if index == LinkEnd::Head { &l.head_uuid } else { &l.tail_uuid };
                if at == end {
                    out.push(l);
                }
            }
        }
        Ok(out)
    }

    /// SSH keys that let `user` log in.
    pub fn keys_of(&self, user: &ObjectUuid) -> StoreResult<Vec<AuthorizedKey>> {
        let mut out = Vec::new();
        for uuid in self.index_scan(TreeId::KeyUsers, &user.to_string())? {
            if let Some(k) = self.get_json(TreeId::Keys, uuid.as_bytes())? {
                out.push(k);
            }
        }
        Ok(out)
    }

    /// An audit log entry.
    pub fn log(&self, uuid: &ObjectUuid) -> StoreResult<Option<LogEntry>> {
        self.get_json(TreeId::Logs, uuid.to_string().as_bytes())
    }

    /// All audit log entries.
    pub fn logs(&self) -> impl Iterator<Item = StoreResult<LogEntry>> + '_ {
        self.iter_json(TreeId::Logs)
    }

    /// A store-wide value.
    pub fn meta(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.kv.get(TreeId::Meta, name.as_bytes())?.map(|v| v.to_vec()))
    }

    /// A unique, increasing number (survives restarts): sequence numbers of outbox entries.
    pub fn next_id(&self) -> StoreResult<u64> {
        self.kv.next_id()
    }

    /// The oldest queued notices for `peer` with their keys (those after the key `after`, one this
    /// returned before, when given): up to `max` of them and, but for the first, as many as fit
    /// in `max_bytes` of their JSON. Also whether that is all the queue holds from there.
    /// Each notice is its JSON as queued (what `serde_json` wrote for a [`Notice`]), not decoded:
    /// the sender sends it as it is.
    pub fn outbox_peek(
        &self,
        peer: &ClusterId,
        after: Option<&[u8]>,
        max: usize,
        max_bytes: usize,
    ) -> StoreResult<(Vec<QueuedNotice>, bool)> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let p = prefix(peer.as_str());
        let (start, end) = after_in(&p, after);
        for kv in self.kv.range(TreeId::Outbox, start, end, false) {
            let (k, v) = kv?;
            if !k.starts_with(&p) {
                break;
            }
            bytes += v.len();
            if out.len() == max || (bytes > max_bytes && !out.is_empty()) {
                return Ok((out, false));
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok((out, true))
    }

    /// How many notices wait for `peer` (0 when the store cannot say: it is a gauge's figure).
    pub fn outbox_depth(&self, peer: &ClusterId) -> usize {
        self.kv.count_prefix(TreeId::Outbox, &prefix(peer.as_str())).unwrap_or(0)
    }

    /// Records a request nonce; false when it was seen before (a replay). Flushed before it
    /// returns, so that a replay after a crash is still caught.
    pub fn nonce_first_seen(&self, origin: &ClusterId, nonce: &str, now: i64) -> StoreResult<bool> {
        let first = self.nonce_first_seen_unflushed(origin, nonce, now)?;
        if first {
            self.flush()?;
        }
        Ok(first)
    }

    /// Records a request nonce, as [`Store::nonce_first_seen`] does, without the flush: it is in
    /// the log before anything the request then writes, so the commit that makes the request's
    /// effects durable makes its nonce durable too (a flush persists every write before it).
    pub fn nonce_first_seen_unflushed(&self, origin: &ClusterId, nonce: &str, now: i64) -> StoreResult<bool> {
        let key = pair(origin.as_str(), nonce);
        self.kv.insert_if_absent(TreeId::Nonces, &key, &now.to_be_bytes())
    }

    /// Forgets nonces first seen before `cutoff` (they are outside the accepted time window).
    pub fn prune_nonces(&self, cutoff: i64) -> StoreResult<usize> {
        let mut b = WriteBatch::new();
        for kv in self.kv.iter(TreeId::Nonces) {
            let (k, v) = kv?;
            let ts = (*v).try_into().map(i64::from_be_bytes).unwrap_or(0);
            if ts < cutoff {
                b.del_raw(TreeId::Nonces, k.to_vec());
            }
        }
        let n = b.len();
        self.commit_unflushed(b)?;
        Ok(n)
    }

    /// A migration.
    pub fn migration(&self, uuid: &ObjectUuid) -> StoreResult<Option<Migration>> {
        self.get_json(TreeId::Migrations, uuid.to_string().as_bytes())
    }

    /// This cluster's consent to the redirect of remote user `old` to `new`, if it gave one.
    pub fn redirect_consent(&self, old: &ObjectUuid, new: &ObjectUuid) -> StoreResult<Option<RedirectConsent>> {
        self.get_json(TreeId::RedirectConsents, &pair(&old.to_string(), &new.to_string()))
    }

    /// An anonymous session.
    pub fn anon_session(&self, uuid: &ObjectUuid) -> StoreResult<Option<AnonymousSession>> {
        self.get_json(TreeId::AnonSessions, uuid.to_string().as_bytes())
    }

    /// Up to `max` anonymous sessions last used before `cutoff` (unix seconds), least recently used
    /// first: the candidates of the expiry sweep.
    pub fn anon_sessions_used_before(&self, cutoff: i64, max: usize) -> StoreResult<Vec<ObjectUuid>> {
        let end = u64::try_from(cutoff).unwrap_or(0).to_be_bytes();
        let mut out = Vec::new();
        let range = self.kv.range(
            TreeId::AnonLastUse,
            std::ops::Bound::Unbounded,
            std::ops::Bound::Excluded(end.to_vec()),
            false,
        );
        for kv in range.take(max) {
            let (k, _) = kv?;
            if let Some(uuid) = k.get(9..).and_then(|u| std::str::from_utf8(u).ok()).and_then(|u| u.parse().ok()) {
                out.push(uuid);
            }
        }
        Ok(out)
    }

    /// The identity (issuer, subject), if any account holds it.
    pub fn identity(&self, issuer: &str, subject: &str) -> StoreResult<Option<Identity>> {
        self.get_json(TreeId::Identities, &pair(issuer, subject))
    }

    /// The identities linked to `user`.
    pub fn identities_of(&self, user: &ObjectUuid) -> StoreResult<Vec<Identity>> {
        let mut out = Vec::new();
        for rest in self.index_scan(TreeId::UserIdentities, &user.to_string())? {
            let Some((issuer, subject)) = rest.split_once('\0') else { continue };
            if let Some(i) = self.identity(issuer, subject)? {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// Records an authorization in flight under `key` (the hash of its browser's secret). Protocol
    /// state like the request nonces, not an account change: no audit entry.
    pub fn put_oidc_pending(&self, key: &str, p: &OidcPending) -> StoreResult<()> {
        let bytes = encode(TreeId::OidcPending, p)?;
        let mut b = WriteBatch::new();
        b.put_raw(TreeId::OidcPending, key.as_bytes().to_vec(), bytes);
        self.commit(b)
    }

    /// Takes (reads and deletes, atomically) the authorization in flight under `key`: only the
    /// first of several concurrent callbacks gets it.
    pub fn take_oidc_pending(&self, key: &str) -> StoreResult<Option<OidcPending>> {
        match self.kv.take(TreeId::OidcPending, key.as_bytes())? {
            Some(v) => decode(TreeId::OidcPending, &v).map(Some),
            None => Ok(None),
        }
    }

    /// Forgets authorizations in flight that expired before `now`.
    pub fn prune_oidc_pending(&self, now: OffsetDateTime) -> StoreResult<usize> {
        let mut b = WriteBatch::new();
        for kv in self.kv.iter(TreeId::OidcPending) {
            let (k, v) = kv?;
            let expired = decode::<OidcPending>(TreeId::OidcPending, &v).map_or(true, |p| p.expires_at < now);
            if expired {
                b.del_raw(TreeId::OidcPending, k.to_vec());
            }
        }
        let n = b.len();
        self.commit_unflushed(b)?;
        Ok(n)
    }

    /// A validated remote token.
    pub fn remote_token(&self, uuid: &ObjectUuid) -> StoreResult<Option<RemoteTokenRow>> {
        self.get_json(TreeId::RemoteTokens, uuid.to_string().as_bytes())
    }

    /// Validated remote tokens acting for `user`.
    pub fn remote_tokens_of(&self, user: &ObjectUuid) -> StoreResult<Vec<RemoteTokenRow>> {
        let mut out = Vec::new();
        for r in self.iter_json::<RemoteTokenRow>(TreeId::RemoteTokens) {
            let r = r?;
            if &r.user_uuid == user {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The answer given earlier to a notice batch.
    pub fn batch_answer(&self, origin: &ClusterId, batch_id: &str) -> StoreResult<Option<serde_json::Value>> {
        self.get_json(TreeId::Batches, &pair(origin.as_str(), batch_id))
    }

    /// Number of records in a tree (for metrics and tests).
    pub fn count(&self, tree: TreeId) -> usize {
        self.kv.len(tree).unwrap_or(0)
    }

    /// Writes `n` raw records of `size` bytes into a scratch tree in one batch and flushes: the
    /// benchmark's baseline for "what a batch write of this many records costs here". The tree is
    /// left for [`Store::drop_baseline_scratch`], so that freeing it is not charged to what runs next.
    pub fn raw_batch_write_baseline(&self, n: usize, size: usize) -> StoreResult<()> {
        match &*self.kv {
            kv::Backend::Sled(s) => s.raw_batch_write_baseline(n, size),
            kv::Backend::Postgres(p) => p.raw_batch_write_baseline(n, size),
        }
    }

    /// Removes the baseline's scratch tree.
    pub fn drop_baseline_scratch(&self) -> StoreResult<()> {
        match &*self.kv {
            kv::Backend::Sled(s) => s.drop_baseline_scratch(),
            kv::Backend::Postgres(p) => p.drop_baseline_scratch(),
        }
    }
}

/// Opens the store at `path` in a test that has just dropped another handle of it. sled lets go
/// of its file lock when its last reference goes, which can be a moment after the drop (its
/// epoch-based reclamation may run later, on another thread). So this retries while the lock is
/// held, and only then, for up to 5 s. The daemon itself never retries: a second process on one
/// data dir must fail at once.
#[doc(hidden)]
pub fn open_after_drop(path: &Path) -> StoreResult<Store> {
    for _ in 0..100 {
        match Store::open(path) {
            Err(e) if kv::sled::is_lock_error(&e) => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
    Store::open(path)
}

/// Rows one PostgreSQL query reads by key.
const GET_MANY: usize = 1000;

/// [`Store::owned_rows`] on PostgreSQL: a query per kind and [`GET_MANY`] rows rather than a round
/// trip per row (a merge of a big account reads them all), in the candidates' order.
fn owned_rows_batched(
    p: &kv::postgres::PgKv,
    owner: &ObjectUuid,
    candidates: &[ObjectUuid],
) -> StoreResult<Vec<OwnedRow>> {
    fn read<T: OwnedRecord>(
        p: &kv::postgres::PgKv,
        uuids: &[&ObjectUuid],
        wrap: fn(T) -> OwnedRow,
        found: &mut std::collections::HashMap<ObjectUuid, OwnedRow>,
    ) -> StoreResult<()> {
        if uuids.is_empty() {
            return Ok(());
        }
        let keys = uuids.iter().map(|u| u.to_string().into_bytes()).collect();
        for (_, v) in p.get_many(T::TREE, keys)? {
            let row: T = decode(T::TREE, &v)?;
            found.insert(row.uuid().clone(), wrap(row));
        }
        Ok(())
    }
    let mut found = std::collections::HashMap::with_capacity(candidates.len());
    for chunk in candidates.chunks(GET_MANY) {
        let of = |k: ObjectKind| chunk.iter().filter(|u| u.kind() == k).collect::<Vec<_>>();
        read::<Group>(p, &of(ObjectKind::Group), OwnedRow::Group, &mut found)?;
        read::<Collection>(p, &of(ObjectKind::Collection), OwnedRow::Collection, &mut found)?;
        read::<Link>(p, &of(ObjectKind::Link), OwnedRow::Link, &mut found)?;
        read::<AuthorizedKey>(p, &of(ObjectKind::AuthorizedKey), OwnedRow::Key, &mut found)?;
    }
    Ok(candidates.iter().filter_map(|u| found.remove(u)).filter(|r| r.owner_uuid() == owner).collect())
}

/// Below this many rows, reading them on one thread is quicker than starting others.
const PARALLEL_READ_MIN: usize = 4096;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use time::OffsetDateTime;

    fn uuid(kind: ObjectKind, id: &str) -> ObjectUuid {
        ObjectUuid::new("zzzzz".parse().unwrap(), kind, &format!("{id:0>15}")).unwrap()
    }

    fn group(id: &str, owner: &ObjectUuid) -> Group {
        Group {
            uuid: uuid(ObjectKind::Group, id),
            owner_uuid: owner.clone(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            modified_at: OffsetDateTime::UNIX_EPOCH,
            modified_by_user_uuid: None,
            name: id.into(),
            description: None,
            group_class: "project".into(),
            properties: serde_json::json!({}),
            trash_at: None,
        }
    }

    fn commit(store: &Store, f: impl FnOnce(&mut WriteBatch)) {
        let mut b = WriteBatch::new();
        f(&mut b);
        store.commit(b).unwrap();
    }

    fn owned(store: &Store, owner: &ObjectUuid) -> Vec<String> {
        let mut v: Vec<String> =
            store.owned_by(owner).unwrap().iter().map(|u| u.id().trim_start_matches('0').to_owned()).collect();
        v.sort();
        v
    }

    /// The per-tree path moves the counts by what each write replaces, also when one batch writes a
    /// key twice (the second write replaces the first, not what is stored) and when a row it
    /// writes is already stored.
    #[test]
    fn per_tree_writes_keep_the_counts_when_a_batch_writes_a_key_twice() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let owner = uuid(ObjectKind::User, "a");
        let (g1, g2) = (group("g1", &owner), group("g2", &owner));
        let base = store.rows_in(TreeId::Groups);
        let mut b = WriteBatch::new();
        b.put_object(None, &g1).unwrap();
        b.put_object(None, &g1).unwrap();
        b.put_object(None, &g2).unwrap();
        b.delete_object(&g2);
        store.apply_per_tree(b).unwrap();
        assert_eq!(store.rows_in(TreeId::Groups), base + 1);
        let mut b = WriteBatch::new();
        b.put_object(None, &g1).unwrap();
        b.delete_object(&g1);
        b.put_object(None, &g1).unwrap();
        store.apply_per_tree(b).unwrap();
        assert_eq!(store.rows_in(TreeId::Groups), base + 1, "g1 was stored already");
        drop(store);
        assert_eq!(open_after_drop(dir.path()).unwrap().rows_in(TreeId::Groups), base + 1, "as counted at open");
    }

    /// A sender's peek stops at the number and at the bytes it is given, never returns nothing
    /// while something waits, and says when it returned the whole queue.
    #[test]
    fn an_outbox_peek_keeps_to_its_count_and_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let peer = "bbbbb".parse::<ClusterId>().unwrap();
        let notice = |i: u64| Notice::Login {
            user: federation_proto::notice::UserRecord {
                uuid: uuid(ObjectKind::User, &format!("u{i}")),
                email: format!("u{i}@example.org"),
                email_verified: true,
                username: Some(format!("u{i}")),
                first_name: "U".into(),
                last_name: "V".into(),
                is_active: true,
                redirect_to_user_uuid: None,
                last_login_at: None,
                home_seq: 1,
                orcid: None,
                profiles: Vec::new(),
            },
        };
        commit(&store, |w| {
            for i in 0..5 {
                w.put_outbox(&peer, i, &notice(i)).unwrap();
            }
        });
        let one = serde_json::to_vec(&notice(0)).unwrap().len();
        let peek = |max, bytes| {
            let (got, whole) = store.outbox_peek(&peer, None, max, bytes).unwrap();
            for (i, (_, json)) in got.iter().enumerate() {
                assert_eq!(serde_json::from_slice::<Notice>(json).unwrap(), notice(i as u64));
            }
            (got.len(), whole)
        };
        assert_eq!(peek(10, 1 << 20), (5, true));
        assert_eq!(peek(5, 1 << 20), (5, true));
        assert_eq!(peek(3, 1 << 20), (3, false));
        assert_eq!(peek(10, one * 2), (2, false));
        assert_eq!(peek(10, 1), (1, false), "a notice bigger than the bytes still goes, alone");
        let other = "ccccc".parse::<ClusterId>().unwrap();
        assert!(store.outbox_peek(&other, None, 10, 1 << 20).unwrap().1);
        // After a key: what follows it, of that peer only.
        let (first, _) = store.outbox_peek(&peer, None, 2, 1 << 20).unwrap();
        let (rest, whole) = store.outbox_peek(&peer, Some(&first[1].0), 10, 1 << 20).unwrap();
        assert_eq!((rest.len(), whole), (3, true));
        assert_eq!(serde_json::from_slice::<Notice>(&rest[0].1).unwrap(), notice(2));
        let (none, whole) = store.outbox_peek(&peer, Some(&rest[2].0), 10, 1 << 20).unwrap();
        assert_eq!((none.len(), whole), (0, true));
        commit(&store, |w| w.put_outbox(&other, 9, &notice(9)).unwrap());
        assert_eq!(store.outbox_peek(&other, Some(&first[0].0), 10, 1 << 20).unwrap().0.len(), 1);
    }

    /// A merge's row rewrites move their owner entries with them (no alias needed), while the
    /// link ends they leave under the old user's uuid are found through an alias, and never answer
    /// for anyone whose row says otherwise: not after the object moves on, not after it is deleted,
    /// not around a cycle of aliases.
    #[test]
    fn moved_rows_keep_the_owner_index_exact_and_link_end_aliases_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (a, b, c) = (uuid(ObjectKind::User, "a"), uuid(ObjectKind::User, "b"), uuid(ObjectKind::User, "c"));
        let (g1, g2) = (group("g1", &a), group("g2", &a));
        commit(&store, |w| {
            w.put_object(None, &g1).unwrap();
            w.put_object(None, &g2).unwrap();
        });
        assert_eq!(owned(&store, &a), ["g1", "g2"]);

        // A merge of a into b: rows rewritten in place, their owner entries moved with them.
        let moved: Vec<Group> = [&g1, &g2].iter().map(|g| Group { owner_uuid: b.clone(), ..(*g).clone() }).collect();
        commit(&store, |w| {
            for g in &moved {
                w.put_moved_row(&MovedFrom { owner: a.clone(), modified_at: g.modified_at, link_ends: None }, g)
                    .unwrap();
            }
        });
        assert_eq!(owned(&store, &b), ["g1", "g2"]);
        assert!(owned(&store, &a).is_empty());

        // A link's tail left under a is b's only once a link-tail alias says so.
        let link = Link {
            uuid: uuid(ObjectKind::Link, "l1"),
            owner_uuid: a.clone(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            modified_at: OffsetDateTime::UNIX_EPOCH,
            modified_by_user_uuid: None,
            link_class: "tag".into(),
            name: "l1".into(),
            head_uuid: g1.uuid.clone(),
            tail_uuid: a.clone(),
            properties: serde_json::json!({}),
        };
        commit(&store, |w| w.put_object(None, &link).unwrap());
        let link_at_b = Link {
            owner_uuid: b.clone(),
            tail_uuid: b.clone(),
            modified_at: OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(5),
            ..link.clone()
        };
        let ends = Some((link.head_uuid.clone(), link.tail_uuid.clone()));
        let from_a = MovedFrom { owner: a.clone(), modified_at: link.modified_at, link_ends: ends };
        // The commit writes the alias that makes the tail left under a found under b.
        commit(&store, |w| w.put_moved_row(&from_a, &link_at_b).unwrap());
        assert_eq!(owned(&store, &b), ["g1", "g2", "l1"]);
        assert_eq!(store.link_end_candidates(LinkEnd::Tail, &a).unwrap(), std::slice::from_ref(&link.uuid));
        assert_eq!(store.links_by_tail(&b).unwrap(), std::slice::from_ref(&link_at_b));
        assert!(store.links_by_tail(&a).unwrap().is_empty());
        assert_eq!(store.owner_time_mismatches().unwrap(), Vec::<String>::new());
        commit(&store, |w| w.delete_object(&link_at_b));
        assert!(!store.owns_anything(&a).unwrap());
        assert!(store.owns_anything(&b).unwrap());
        assert!(store.links_by_tail(&b).unwrap().is_empty());

        // g1 moves on to c by an ordinary update, g2 is deleted.
        let g1_at_c = Group { owner_uuid: c.clone(), ..moved[0].clone() };
        commit(&store, |w| {
            w.put_object(Some(&moved[0]), &g1_at_c).unwrap();
            w.delete_object(&moved[1]);
        });
        assert_eq!(owned(&store, &c), ["g1"]);
        assert!(owned(&store, &b).is_empty());
        assert!(!store.owns_anything(&b).unwrap());

        // A cycle of aliases ends; an owner alias (as earlier versions wrote) changes nothing.
        let l2 = Link { uuid: uuid(ObjectKind::Link, "l2"), tail_uuid: c.clone(), ..link.clone() };
        commit(&store, |w| {
            w.put_object(None, &l2).unwrap();
            w.put_alias(LinkEnd::Tail, &a, &b, ObjectKind::Link);
            w.put_alias(LinkEnd::Tail, &c, &a, ObjectKind::Link);
            // As earlier versions wrote an owner alias.
            w.put_raw(
                TreeId::IndexAliases,
                format!("owner\0{c}\0{a}\0{}", ObjectKind::Link.infix()).into_bytes(),
                Vec::new(),
            );
        });
        assert_eq!(store.links_by_tail(&c).unwrap(), std::slice::from_ref(&l2));
        assert!(store.links_by_tail(&a).unwrap().is_empty());
        assert_eq!(owned(&store, &a), ["l2"]);
        assert_eq!(owned(&store, &c), ["g1"]);
        assert_eq!(store.owner_time_mismatches().unwrap(), Vec::<String>::new());
        assert_eq!(
            (store.owned_count(ObjectKind::Link, &a).unwrap(), store.owned_count(ObjectKind::Group, &c).unwrap()),
            (1, 1)
        );
        assert_eq!(store.owned_count(ObjectKind::Group, &b).unwrap(), 0);
    }
}
