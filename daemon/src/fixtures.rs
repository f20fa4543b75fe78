//! Bulk fixtures for the merge benchmark and the crash trials (test and bench support, not used by
//! the daemon itself).
//!
//! [`seed_big_user`] writes, straight through the store, an "old" user owning many groups,
//! collections and links, with tokens and an SSH key, plus a "new" user with a project to merge
//! into. [`merge_state`] then reads back where those records are, so that a caller can tell "no
//! change" from "the whole merge" (and catch any mix of the two) after a crash.

use crate::accounts::error::Result;
use crate::accounts::{AccountSettings, Accounts};
use crate::store::WriteBatch;
use crate::store::records::{AuthorizedKey, Collection, Group, Link, TokenKind, User};
use federation_proto::{ObjectKind, ObjectUuid, Scopes};
use serde_json::json;
use std::str::FromStr;

/// Settings of a lone cluster `zzzzz` (no peers, no root token) for a store opened straight
/// through the library.
pub fn lone_cluster_settings() -> AccountSettings {
    AccountSettings {
        cluster: federation_proto::ClusterId::from_str("zzzzz").unwrap_or_else(|_| unreachable!("a valid id")),
        peers: Vec::new(),
        system_root_token: None,
        login_token_lifetime_secs: 3600,
        max_token_lifetime_secs: 0,
        max_login_failures: 10,
        login_failure_window_secs: 60,
        new_users_active: true,
        max_list_limit: 1000,
        anonymous: crate::config::AnonymousSettings::default(),
    }
}

/// Records written per commit while seeding.
const CHUNK: usize = 5_000;

/// What [`seed_big_user`] made.
#[derive(Debug, Clone)]
pub struct BigUser {
    /// The user whose objects a merge moves.
    pub old: User,
    /// The user it is merged into.
    pub new: User,
    /// A project owned by `new`: the merge's `new_owner_uuid`.
    pub new_owner: ObjectUuid,
    /// A plain token of `old` (scopes `all`).
    pub old_token: String,
    /// A plain token of `new` (scopes `all`).
    pub new_token: String,
    /// The SSH key authorizing `old`.
    pub old_key: ObjectUuid,
    /// The first group `old` owns (the project when there are no objects): a sample to look at.
    pub sample: ObjectUuid,
    /// Groups and collections owned by `old`.
    pub objects: usize,
    /// Links owned by `old` (every other one has `old` as tail, the rest as head).
    pub links: usize,
    /// Tokens of `old`.
    pub tokens: usize,
}

fn user(accounts: &Accounts, username: &str) -> User {
    let now = accounts.clock().now();
    User {
        email: Some(format!("{username}@example.org")),
        email_verified: true,
        username: Some(username.to_string()),
        first_name: username.to_string(),
        last_name: "Fixture".into(),
        is_active: true,
        home_seq: 1,
        ..User::new(accounts.new_uuid(ObjectKind::User), accounts.system_user().clone(), now)
    }
}

fn token(accounts: &Accounts, user: &ObjectUuid, b: &mut WriteBatch) -> Result<String> {
    let (t, row) = accounts.new_token_row(user, Scopes::all(), None, TokenKind::Api)?;
    b.put_token(None, &row)?;
    Ok(t.to_string())
}

/// Seeds `<prefix>old` owning `objects` groups and collections (half each) and `links` links, and
/// `<prefix>new` with a project. Writes in chunks of a few thousand records; not atomic as a whole
/// (it is set-up, not a merge). Returns what it made.
pub fn seed_big_user(accounts: &Accounts, prefix: &str, objects: usize, links: usize) -> Result<BigUser> {
    let store = accounts.store();
    let now = accounts.clock().now();
    let old = user(accounts, &format!("{prefix}old"));
    let new = user(accounts, &format!("{prefix}new"));
    let project = Group {
        uuid: accounts.new_uuid(ObjectKind::Group),
        owner_uuid: new.uuid.clone(),
        created_at: now,
        modified_at: now,
        modified_by_user_uuid: Some(new.uuid.clone()),
        name: "merged-in".into(),
        description: None,
        group_class: "project".into(),
        properties: json!({}),
        trash_at: None,
    };
    let key = AuthorizedKey {
        uuid: accounts.new_uuid(ObjectKind::AuthorizedKey),
        owner_uuid: old.uuid.clone(),
        created_at: now,
        modified_at: now,
        modified_by_user_uuid: Some(old.uuid.clone()),
        name: "laptop".into(),
        key_type: "SSH".into(),
        public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFixtureKeyFixtureKeyFixtureKeyFixture old@laptop".into(),
        authorized_user_uuid: old.uuid.clone(),
    };
    let mut b = WriteBatch::new();
    b.put_user(None, &old)?;
    b.put_user(None, &new)?;
    b.put_object(None, &project)?;
    b.put_object(None, &key)?;
    let old_token = token(accounts, &old.uuid, &mut b)?;
    let _second = token(accounts, &old.uuid, &mut b)?;
    let new_token = token(accounts, &new.uuid, &mut b)?;
    store.commit(b)?;

    let mut heads = Vec::with_capacity(objects.min(1024));
    let mut b = WriteBatch::new();
    for i in 0..objects {
        if i % 2 == 0 {
            let g = Group {
                uuid: accounts.new_uuid(ObjectKind::Group),
                owner_uuid: old.uuid.clone(),
                created_at: now,
                modified_at: now,
                modified_by_user_uuid: Some(old.uuid.clone()),
                name: format!("project {i}"),
                description: Some(format!("fixture project number {i}")),
                group_class: "project".into(),
                properties: json!({"fixture": i}),
                trash_at: None,
            };
            if heads.len() < 1024 {
                heads.push(g.uuid.clone());
            }
            b.put_object(None, &g)?;
        } else {
            let c = Collection {
                uuid: accounts.new_uuid(ObjectKind::Collection),
                owner_uuid: old.uuid.clone(),
                created_at: now,
                modified_at: now,
                modified_by_user_uuid: Some(old.uuid.clone()),
                name: format!("collection {i}"),
                description: None,
                properties: json!({"fixture": i}),
                manifest_text: format!(". 37b51d194a7513e45b56f6524f2d51f2+3 0:3:file{i}.txt\n"),
            };
            if heads.len() < 1024 {
                heads.push(c.uuid.clone());
            }
            b.put_object(None, &c)?;
        }
        if b.len() >= CHUNK * 2 {
            store.commit(std::mem::take(&mut b))?;
        }
    }
    store.commit(std::mem::take(&mut b))?;
    let sample = heads.first().cloned();
    if heads.is_empty() {
        heads.push(project.uuid.clone());
    }
    for i in 0..links {
        let other = heads[i % heads.len()].clone();
        let (tail, head) = if i % 2 == 0 { (old.uuid.clone(), other) } else { (other, old.uuid.clone()) };
        let l = Link {
            uuid: accounts.new_uuid(ObjectKind::Link),
            owner_uuid: old.uuid.clone(),
            created_at: now,
            modified_at: now,
            modified_by_user_uuid: Some(old.uuid.clone()),
            link_class: "tag".into(),
            name: format!("fixture-{i}"),
            head_uuid: head,
            tail_uuid: tail,
            properties: json!({}),
        };
        b.put_object(None, &l)?;
        if b.len() >= CHUNK * 4 {
            store.commit(std::mem::take(&mut b))?;
        }
    }
    store.commit(b)?;
    Ok(BigUser {
        old,
        new,
        new_owner: project.uuid.clone(),
        old_token,
        new_token,
        old_key: key.uuid,
        sample: sample.unwrap_or_else(|| project.uuid.clone()),
        objects,
        links,
        tokens: 2,
    })
}

/// Where the records of a [`BigUser`] are, read straight from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeState {
    /// Records (groups, collections, links, keys) whose owner is `old`.
    pub owned_by_old: usize,
    /// Groups and collections inside `new_owner`.
    pub in_new_owner: usize,
    /// Records whose owner is `new` (its project, the moved links and key).
    pub owned_by_new: usize,
    /// Links with `old` as tail.
    pub tails_old: usize,
    /// Links with `old` as head.
    pub heads_old: usize,
    /// Tokens of `old`.
    pub tokens_old: usize,
    /// Tokens of `new`.
    pub tokens_new: usize,
    /// SSH keys authorizing `old`.
    pub keys_old: usize,
    /// Where `old` redirects.
    pub redirect: Option<ObjectUuid>,
    /// `old`'s username as stored.
    pub username: Option<String>,
    /// Who holds `old`'s original username in the username index.
    pub username_holder: Option<ObjectUuid>,
    /// Audit entries of event type `merge` about `old`.
    pub merge_logs: usize,
}

/// Reads a [`MergeState`] for `big` from `accounts`' store.
pub fn merge_state(accounts: &Accounts, big: &BigUser) -> Result<MergeState> {
    let store = accounts.store();
    let old = store.user(&big.old.uuid)?;
    let mut merge_logs = 0;
    for e in store.logs() {
        let e = e?;
        if e.event_type == "merge" && e.object_uuid.as_ref() == Some(&big.old.uuid) {
            merge_logs += 1;
        }
    }
    let username_holder = match &big.old.username {
        Some(u) => store.user_by_username(u)?.map(|u| u.uuid),
        None => None,
    };
    Ok(MergeState {
        owned_by_old: store.owned_by(&big.old.uuid)?.len(),
        in_new_owner: store.owned_by(&big.new_owner)?.len(),
        owned_by_new: store.owned_by(&big.new.uuid)?.len(),
        tails_old: store.links_by_tail(&big.old.uuid)?.len(),
        heads_old: store.links_by_head(&big.old.uuid)?.len(),
        tokens_old: store.tokens_of(&big.old.uuid)?.len(),
        tokens_new: store.tokens_of(&big.new.uuid)?.len(),
        keys_old: store.keys_of(&big.old.uuid)?.len(),
        redirect: old.as_ref().and_then(|u| u.redirect_to_user_uuid.clone()),
        username: old.and_then(|u| u.username),
        username_holder,
        merge_logs,
    })
}

impl BigUser {
    /// The state right after seeding: nothing merged.
    pub fn state_before(&self) -> MergeState {
        MergeState {
            owned_by_old: self.objects + self.links + 1,
            in_new_owner: 0,
            owned_by_new: 1,
            tails_old: self.links.div_ceil(2),
            heads_old: self.links / 2,
            tokens_old: self.tokens,
            tokens_new: 1,
            keys_old: 1,
            redirect: None,
            username: self.old.username.clone(),
            username_holder: Some(self.old.uuid.clone()),
            merge_logs: 0,
        }
    }

    /// The state after the whole merge with redirect into `new_owner`.
    pub fn state_after_redirect(&self) -> MergeState {
        MergeState {
            owned_by_old: 0,
            in_new_owner: self.objects,
            // The project, the links and the key.
            owned_by_new: 1 + self.links + 1,
            tails_old: 0,
            heads_old: 0,
            tokens_old: 0,
            tokens_new: 1 + self.tokens,
            keys_old: 0,
            redirect: Some(self.new.uuid.clone()),
            username: None,
            username_holder: None,
            merge_logs: 1,
        }
    }
}
