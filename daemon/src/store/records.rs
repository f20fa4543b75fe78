//! The records the store keeps, as plain data.
//!
//! These types say what is stored, not what is allowed: rules about who may change what live in
//! `accounts`. Every record is serialized as JSON so that an operator can read a dump.

use crate::clock::arv_time;
use federation_proto::{ClusterId, ObjectUuid, Scopes, SecretHash};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// A user account: local (home here) or a cached remote one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    /// `<cluster>-tpzed-…`.
    pub uuid: ObjectUuid,
    /// Who owns the record (the system user for local users).
    pub owner_uuid: ObjectUuid,
    /// Creation time.
    #[serde(with = "arv_time")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "arv_time")]
    pub modified_at: OffsetDateTime,
    /// Who made the last change.
    pub modified_by_user_uuid: Option<ObjectUuid>,
    /// E-mail address, lowercased for matching.
    pub email: Option<String>,
    /// Whether the address has been verified (only verified addresses are ever matched).
    pub email_verified: bool,
    /// Unique login name (none once merged away).
    pub username: Option<String>,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// May use the cluster.
    pub is_active: bool,
    /// Full power.
    pub is_admin: bool,
    /// Free-form preferences.
    pub prefs: Value,
    /// Set when merged away: the account this one now stands for.
    pub redirect_to_user_uuid: Option<ObjectUuid>,
    /// argon2id PHC string; none for accounts that cannot log in with a password.
    pub password_hash: Option<String>,
    /// Last successful login.
    #[serde(with = "arv_time::option", default)]
    pub last_login_at: Option<OffsetDateTime>,
    /// Home sequence number: bumped on every change the federation hears about.
    pub home_seq: u64,
    /// This row is a cached copy of a user whose home is another cluster (only notices and
    /// validations from that cluster change it).
    #[serde(default)]
    pub cached_from_home: bool,
    /// The person's ORCID iD: for a local user, the subject of a linked identity whose provider's
    /// subjects are ORCID iDs; for a cached remote user, what its home's record says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcid: Option<String>,
    /// Set on a managed profile (DESIGN §4.8): the parent, who alone (besides an admin) may act as
    /// it. A profile has no email, no password and no tokens, and is never admin. On a cached
    /// remote profile this is set only from the parent's home record.
    #[serde(default)]
    pub managed_by: Option<ObjectUuid>,
    /// Set up by an admin (`users.setup`): the user may activate itself (`users.activate`).
    #[serde(default)]
    pub is_invited: bool,
    /// For a cached remote user: the username an admin gave it here (shell logins use it). Unique
    /// among this cluster's usernames; notices from the user's home never change it (`username`
    /// keeps the home's name, shown when there is no local one).
    #[serde(default)]
    pub local_username: Option<String>,
}

impl User {
    /// The name this cluster knows the user by in its username index: a local user's username, a
    /// cached remote user's local username (a remote user's home username is not this cluster's).
    pub fn indexed_username(&self) -> Option<&str> {
        if self.cached_from_home { self.local_username.as_deref() } else { self.username.as_deref() }
    }

    /// The username shown here: the local one if an admin gave a remote user one, else `username`.
    pub fn shown_username(&self) -> Option<&str> {
        self.local_username.as_deref().or(self.username.as_deref())
    }
}

impl User {
    /// A user with nothing set yet: inactive, not admin, no email, name, username or password, empty
    /// prefs, sequence 0, local. Callers fill in what they know with struct-update syntax.
    pub fn new(uuid: ObjectUuid, owner_uuid: ObjectUuid, now: OffsetDateTime) -> User {
        User {
            uuid,
            owner_uuid,
            created_at: now,
            modified_at: now,
            modified_by_user_uuid: None,
            email: None,
            email_verified: false,
            username: None,
            first_name: String::new(),
            last_name: String::new(),
            is_active: false,
            is_admin: false,
            prefs: serde_json::json!({}),
            redirect_to_user_uuid: None,
            password_hash: None,
            last_login_at: None,
            home_seq: 0,
            cached_from_home: false,
            orcid: None,
            managed_by: None,
            is_invited: false,
            local_username: None,
        }
    }
}

/// What kind of token a row is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Created through the API or by a script login.
    Api,
    /// Created by the login page for a browser session.
    Session,
}

/// An API token. Only hashes of its secret are kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenRow {
    /// `<cluster>-gj3su-…`.
    pub uuid: ObjectUuid,
    /// The user the token acts for (after a merge with redirect: the new user).
    pub user_uuid: ObjectUuid,
    /// SHA-256 of the secret.
    pub secret_hash: SecretHash,
    /// SHA-256 of the secret salted for each peer configured when the token was issued.
    pub salted_hashes: BTreeMap<ClusterId, SecretHash>,
    /// What the token may do.
    pub scopes: Scopes,
    /// After this the token is refused.
    #[serde(with = "arv_time::option", default)]
    pub expires_at: Option<OffsetDateTime>,
    /// Creation time.
    #[serde(with = "arv_time")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "arv_time")]
    pub modified_at: OffsetDateTime,
    /// API or browser session.
    pub kind: TokenKind,
}

/// A project or other group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Group {
    /// `<cluster>-j7d0g-…`.
    pub uuid: ObjectUuid,
    /// A user or a group.
    pub owner_uuid: ObjectUuid,
    /// Creation time.
    #[serde(with = "arv_time")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "arv_time")]
    pub modified_at: OffsetDateTime,
    /// Who made the last change.
    pub modified_by_user_uuid: Option<ObjectUuid>,
    /// Display name (unique per owner).
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// `project`, `role` or `filter`.
    pub group_class: String,
    /// Free-form properties.
    pub properties: Value,
    /// When it was put in the trash (`groups.trash`); it and everything it holds are then hidden.
    #[serde(with = "arv_time::option", default)]
    pub trash_at: Option<OffsetDateTime>,
}

/// A collection's metadata.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Collection {
    /// `<cluster>-4zz18-…`.
    pub uuid: ObjectUuid,
    /// A user or a group.
    pub owner_uuid: ObjectUuid,
    /// Creation time.
    #[serde(with = "arv_time")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "arv_time")]
    pub modified_at: OffsetDateTime,
    /// Who made the last change.
    pub modified_by_user_uuid: Option<ObjectUuid>,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Free-form properties.
    pub properties: Value,
    /// Keep manifest (metadata only; no blocks are stored here).
    pub manifest_text: String,
}

/// A link between two objects; `permission` links grant access.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Link {
    /// `<cluster>-o0j2j-…`.
    pub uuid: ObjectUuid,
    /// Who owns the link.
    pub owner_uuid: ObjectUuid,
    /// Creation time.
    #[serde(with = "arv_time")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "arv_time")]
    pub modified_at: OffsetDateTime,
    /// Who made the last change.
    pub modified_by_user_uuid: Option<ObjectUuid>,
    /// `permission`, `tag`, …
    pub link_class: String,
    /// For permission links: `can_read`, `can_write`, `can_manage`.
    pub name: String,
    /// The object the link points at.
    pub head_uuid: ObjectUuid,
    /// The object the link starts from (for permissions: who is granted).
    pub tail_uuid: ObjectUuid,
    /// Free-form properties.
    pub properties: Value,
}

/// An SSH public key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuthorizedKey {
    /// `<cluster>-fngyi-…`.
    pub uuid: ObjectUuid,
    /// Who owns the record.
    pub owner_uuid: ObjectUuid,
    /// Creation time.
    #[serde(with = "arv_time")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "arv_time")]
    pub modified_at: OffsetDateTime,
    /// Who made the last change.
    pub modified_by_user_uuid: Option<ObjectUuid>,
    /// A label.
    pub name: String,
    /// `SSH`.
    pub key_type: String,
    /// The key text.
    pub public_key: String,
    /// The user who may log in with it.
    pub authorized_user_uuid: ObjectUuid,
}

/// An account of an older system (DESIGN §4.7), imported by an admin. It owns the collections
/// imported with it until the person whose verified email matches claims them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LegacyAccount {
    /// `<cluster>-l3gcy-…`.
    pub uuid: ObjectUuid,
    /// The id the older system used (unique).
    pub legacy_id: String,
    /// E-mail address, trimmed and lowercased.
    pub email: String,
    /// The person's name there.
    pub name: String,
    /// The imported collections, in the order of the import line.
    pub collections: Vec<ObjectUuid>,
    /// SHA-256 (hex) of the import line's content: the same line again changes nothing.
    pub source_hash: String,
    /// First import.
    #[serde(with = "arv_time")]
    pub created_at: OffsetDateTime,
    /// Last import that changed it.
    #[serde(with = "arv_time")]
    pub modified_at: OffsetDateTime,
    /// The user who claimed it, once claimed.
    pub claimed_by: Option<ObjectUuid>,
    /// When it was claimed.
    #[serde(with = "arv_time::option", default)]
    pub claimed_at: Option<OffsetDateTime>,
    /// The project the claim moved the collections into.
    pub claimed_into: Option<ObjectUuid>,
}

/// A person that others attached to data by name, emails or ORCID iD before (or without) the
/// person having an account here (DESIGN §4.9). Every identity on it is a claim made by whoever
/// wrote it, never verified; a user proves one of them to claim the record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Person {
    /// `<cluster>-p3rsn-…`.
    pub uuid: ObjectUuid,
    /// Who made the record.
    pub owner_uuid: ObjectUuid,
    /// Creation time.
    #[serde(with = "arv_time")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "arv_time")]
    pub modified_at: OffsetDateTime,
    /// Who made the last change.
    pub modified_by_user_uuid: Option<ObjectUuid>,
    /// The person's name as written.
    pub name: String,
    /// E-mail addresses, trimmed and lowercased, without duplicates.
    pub emails: Vec<String>,
    /// ORCID iD, `NNNN-NNNN-NNNN-NNNX` with a valid check digit.
    pub orcid: Option<String>,
    /// The user who claimed it.
    pub claimed_by: Option<ObjectUuid>,
    /// When.
    #[serde(with = "arv_time::option", default)]
    pub claimed_at: Option<OffsetDateTime>,
    /// Set when an admin approved a claim: the record is retired and its attachments moved to
    /// this user.
    pub merged_into: Option<ObjectUuid>,
}

/// Where a claim on a person record stands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClaimState {
    /// Waiting for an admin.
    Pending,
    /// An admin approved it.
    Approved,
    /// An admin rejected it (with a reason).
    Rejected,
}

/// A claim on a name-only person record, for an admin to decide.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PersonClaim {
    /// `<cluster>-c1a1m-…`.
    pub uuid: ObjectUuid,
    /// The record claimed.
    pub person_uuid: ObjectUuid,
    /// Who claims it.
    pub claimant_uuid: ObjectUuid,
    /// Where it stands.
    pub state: ClaimState,
    /// The admin's reason, for a rejection.
    pub reason: Option<String>,
    /// The admin who decided.
    pub decided_by: Option<ObjectUuid>,
    /// Made.
    #[serde(with = "arv_time")]
    pub created_at: OffsetDateTime,
    /// Decided.
    #[serde(with = "arv_time::option", default)]
    pub decided_at: Option<OffsetDateTime>,
}

/// An audit log entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogEntry {
    /// `<cluster>-57u5n-…`.
    pub uuid: ObjectUuid,
    /// The system user.
    pub owner_uuid: ObjectUuid,
    /// Who did it (while acting as a managed profile: the profile).
    pub modified_by_user_uuid: Option<ObjectUuid>,
    /// While acting as a managed profile: the account whose credentials acted (the profile's
    /// parent, or an admin), so that everything a parent did as any profile can be listed.
    #[serde(default)]
    pub acting_parent_uuid: Option<ObjectUuid>,
    /// What it was about.
    pub object_uuid: Option<ObjectUuid>,
    /// Owner of that object at the time.
    pub object_owner_uuid: Option<ObjectUuid>,
    /// e.g. `merge`, `login`, `create`.
    pub event_type: String,
    /// One line for people.
    pub summary: String,
    /// Details.
    pub properties: Value,
    /// When it happened.
    #[serde(with = "arv_time")]
    pub event_at: OffsetDateTime,
    /// When the entry was written.
    #[serde(with = "arv_time")]
    pub created_at: OffsetDateTime,
}

/// A token issued by another cluster, validated there and cached here until `refreshes_at`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RemoteTokenRow {
    /// The token's uuid (its prefix is the issuer).
    pub uuid: ObjectUuid,
    /// The remote user it acts for.
    pub user_uuid: ObjectUuid,
    /// SHA-256 of the secret as presented here (salted for this cluster).
    pub secret_hash: SecretHash,
    /// What the home cluster says it may do.
    pub scopes: Scopes,
    /// Expiry the home cluster gave.
    #[serde(with = "arv_time::option", default)]
    pub expires_at: Option<OffsetDateTime>,
    /// When to ask the home cluster again.
    #[serde(with = "arv_time")]
    pub refreshes_at: OffsetDateTime,
}

/// Where a cross-cluster migration stands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    /// Waiting for the grant from the target cluster.
    Pending,
    /// Merged: the old account now redirects to the new one.
    Done,
}

/// A migration of a local account into an account at another cluster (DESIGN §4.4).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Migration {
    /// `<cluster>-m1gr8-…`.
    pub uuid: ObjectUuid,
    /// The local account that goes away.
    pub old_user_uuid: ObjectUuid,
    /// The cluster whose account stays.
    pub target_cluster: ClusterId,
    /// Single-use nonce the grant must carry.
    pub nonce: String,
    /// Creation time.
    #[serde(with = "arv_time")]
    pub created_at: OffsetDateTime,
    /// After this the migration can no longer be confirmed.
    #[serde(with = "arv_time")]
    pub expires_at: OffsetDateTime,
    /// Pending or done.
    pub state: MigrationState,
    /// The account merged into (once done).
    pub new_user_uuid: Option<ObjectUuid>,
    /// The project the objects moved into (once done).
    pub new_owner_uuid: Option<ObjectUuid>,
}

/// This cluster's own word that a remote user's redirect may be followed for authentication here
/// (DESIGN §3, "Claims stay inside their cluster"). A peer may announce any redirect of its users;
/// one that leaves the peer is followed only for the exact pair (old, new) recorded here.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RedirectConsent {
    /// The remote user that redirects.
    pub old_user_uuid: ObjectUuid,
    /// Where it may redirect to.
    pub new_user_uuid: ObjectUuid,
    /// Why this cluster vouches for it.
    pub because: ConsentReason,
    /// When it was recorded.
    #[serde(with = "arv_time")]
    pub at: OffsetDateTime,
}

/// Why this cluster vouches for a redirect.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConsentReason {
    /// We issued the migration grant: our user `new_user_uuid` logged in here with the signed
    /// migration request of `requester` naming `old_user_uuid` (the reverse-direction migration).
    GrantIssued {
        /// The cluster that holds the old account and runs the merge.
        requester: ClusterId,
        /// Its pending migration.
        migration_uuid: ObjectUuid,
    },
    /// Our own admin merged the remote user here, with redirect.
    MergedHere,
}

/// An anonymous session (a browser or script before any login). It owns the collections made with
/// its token until they are imported into an account, discarded, or expire with it. Only the
/// SHA-256 of its secret is kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AnonymousSession {
    /// `<cluster>-an0ns-…`.
    pub uuid: ObjectUuid,
    /// SHA-256 of the secret.
    pub secret_hash: SecretHash,
    /// Creation time.
    #[serde(with = "arv_time")]
    pub created_at: OffsetDateTime,
    /// Last time its token was used (refreshed at most once a minute); it expires a configured
    /// time after this.
    #[serde(with = "arv_time")]
    pub last_used_at: OffsetDateTime,
}

/// An external identity: the immutable (issuer, subject) pair of an OpenID Connect provider,
/// linked to exactly one local account. Never found by email.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Identity {
    /// The provider's issuer URL (as its discovery document says).
    pub issuer: String,
    /// The provider's subject (`sub`) for this person.
    pub subject: String,
    /// The configured provider's id when the identity was linked or last used.
    pub provider: String,
    /// The account it logs in to.
    pub user_uuid: ObjectUuid,
    /// The subject is an ORCID iD (the provider's subjects are, by preset or flag).
    #[serde(default)]
    pub orcid: bool,
    /// The claims the provider sent at the last login.
    pub claims: IdentityClaims,
    /// When it was linked.
    #[serde(with = "arv_time")]
    pub created_at: OffsetDateTime,
    /// The last login with it.
    #[serde(with = "arv_time::option", default)]
    pub last_login_at: Option<OffsetDateTime>,
}

/// What a provider said about a person in its ID token, as it said it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IdentityClaims {
    /// `email`.
    #[serde(default)]
    pub email: Option<String>,
    /// `email_verified` (the provider's word only: whether it counts is the provider's trust).
    #[serde(default)]
    pub email_verified: Option<bool>,
    /// `name`.
    #[serde(default)]
    pub name: Option<String>,
    /// `given_name`.
    #[serde(default)]
    pub given_name: Option<String>,
    /// `family_name`.
    #[serde(default)]
    pub family_name: Option<String>,
    /// `preferred_username`.
    #[serde(default)]
    pub preferred_username: Option<String>,
}

/// What an OpenID Connect login started in one browser is for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OidcPurpose {
    /// Log in (or create an account).
    Login {
        /// Where to go afterwards (checked again at the callback).
        return_to: String,
        /// The peer the login is for (`remote=`), if any.
        remote: Option<ClusterId>,
    },
    /// Link the identity to this account, whose session started it.
    Link {
        /// The account.
        user_uuid: ObjectUuid,
    },
}

/// An OpenID Connect authorization in flight, keyed by SHA-256 of the secret that only the
/// browser which started it holds (its `hearth_oidc` cookie). Taken (deleted) by the first
/// callback that presents the cookie, whatever the outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OidcPending {
    /// The configured provider's id.
    pub provider: String,
    /// The `state` sent to the provider.
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier (S256) for the code exchange.
    pub pkce_verifier: String,
    /// What the login is for.
    pub purpose: OidcPurpose,
    /// After this the callback is refused.
    #[serde(with = "arv_time")]
    pub expires_at: OffsetDateTime,
}

/// A browser session switched to a managed profile (DESIGN §4.8): the session's token stays the
/// parent's, and requests with it act as the profile until it switches back. Kept here, keyed by the
/// token's uuid, never in a cookie, and checked again on every request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProfileSwitch {
    /// The session token (ours, or a peer's token salted for us).
    pub token_uuid: ObjectUuid,
    /// The profile the session acts as.
    pub profile_uuid: ObjectUuid,
    /// Who switched (the token's user).
    pub parent_uuid: ObjectUuid,
    /// When.
    #[serde(with = "arv_time")]
    pub at: OffsetDateTime,
}
