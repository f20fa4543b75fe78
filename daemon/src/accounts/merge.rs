//! `users.merge`: move everything an old account owns to a new account, optionally redirecting
//! the old account to the new one (DESIGN §4.5, Arvados semantics).
//!
//! All checks run first, in the order the design lists them, and change nothing. The effects are
//! then collected into one [`WriteBatch`] and committed as one sled transaction, under the writer
//! lock: after a crash at any moment either none of the merge is on disk or all of it is, and two
//! merges of one user are serialized (the second finds the first's result and is refused).

use super::error::{Error, Result};
use super::permissions::Level;
use super::{Accounts, Caller, views};
use crate::store::WriteBatch;
use crate::store::records::{AuthorizedKey, Collection, Group, Link, User};
use federation_proto::{ObjectKind, ObjectUuid};
use serde_json::{Value, json};

/// The merge request's parameters, as received (strings, so that each check can name its problem).
#[derive(Debug, Clone, Default)]
pub struct MergeParams {
    /// Where the old user's objects go (the new user or a group it can write).
    pub new_owner_uuid: Option<String>,
    /// Token variant: a token of the new user.
    pub new_user_token: Option<String>,
    /// `true`/`false` (also `1`/`0`, `t`/`f`, `yes`/`no`).
    pub redirect_to_new_user: Option<String>,
    /// Admin variant: the old user.
    pub old_user_uuid: Option<String>,
    /// Admin variant: the new user.
    pub new_user_uuid: Option<String>,
}

/// How the new user of a token-variant merge was authenticated.
pub enum NewUserAuth {
    /// The new user's token was valid; the caller for it.
    Valid(Box<Caller>),
    /// The token was invalid or expired.
    Invalid,
}

/// What a merge moved, for the audit log and the benchmark.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MergeCounts {
    /// Groups and collections re-owned to `new_owner_uuid`.
    pub objects: usize,
    /// Links changed (owner, tail or head).
    pub links: usize,
    /// Tokens moved (redirect) or deleted.
    pub tokens: usize,
    /// SSH keys moved (redirect) or deleted.
    pub keys: usize,
}

/// The checked plan of a merge.
#[derive(Debug, Clone)]
pub struct MergePlan {
    /// The account that goes away.
    pub old: User,
    /// The account that stays.
    pub new: User,
    /// Where owned objects go.
    pub new_owner: ObjectUuid,
    /// Whether the old account redirects to the new one.
    pub redirect: bool,
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "t" | "yes" | "y" => Some(true),
        "false" | "0" | "f" | "no" | "n" | "" => Some(false),
        _ => None,
    }
}

fn blank(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(|v| v.trim().is_empty())
}

impl Accounts {
    fn lookup_for_merge(&self, raw: &str, which: &str) -> Result<User> {
        let not_found = || Error::unprocessable("user_not_found", format!("User in {which} not found"));
        let uuid: ObjectUuid = raw.parse().map_err(|_| not_found())?;
        if uuid.kind() != ObjectKind::User {
            return Err(not_found());
        }
        self.store().user(&uuid)?.ok_or_else(not_found)
    }

    /// Runs every check of DESIGN §4.5 in order; changes nothing. `new_user` is how the token
    /// variant's `new_user_token` authenticated (the HTTP layer resolves local and remote tokens).
    pub fn plan_merge(&self, caller: &Caller, p: &MergeParams, new_user: Option<NewUserAuth>) -> Result<MergePlan> {
        let admin_variant = !blank(&p.old_user_uuid) || !blank(&p.new_user_uuid);
        let (old, new) = if admin_variant {
            if !caller.is_admin() {
                return Err(Error::forbidden(
                    "merge_admin_required",
                    "Must be admin to use old_user_uuid/new_user_uuid",
                ));
            }
            let (Some(o), Some(n)) = (
                p.old_user_uuid.as_deref().filter(|s| !s.is_empty()),
                p.new_user_uuid.as_deref().filter(|s| !s.is_empty()),
            ) else {
                return Err(Error::unprocessable(
                    "merge_need_both_uuids",
                    "Must supply both old_user_uuid and new_user_uuid",
                ));
            };
            let new = self.lookup_for_merge(n, "new_user_uuid")?;
            let old = self.lookup_for_merge(o, "old_user_uuid")?;
            (old, new)
        } else {
            if !caller.scopes.is_all() {
                return Err(Error::forbidden("merge_scoped_token", "cannot merge with a scoped token"));
            }
            let new_caller = match new_user {
                Some(NewUserAuth::Valid(c)) if !blank(&p.new_user_token) => *c,
                _ => {
                    return Err(Error::unauthorized("merge_invalid_new_user_token", "invalid new_user_token"));
                }
            };
            if new_caller.user.uuid.cluster() == self.cluster() && !new_caller.scopes.is_all() {
                return Err(Error::forbidden("merge_new_token_scoped", "supplied new_user_token has restricted scope"));
            }
            // Both records as stored now, under the writer lock: the callers were authenticated
            // before the lock was taken, and a concurrent merge may since have redirected either
            // user or deleted the tokens (the caller may also be acting through a redirect).
            if !self.token_still_valid(caller)? {
                return Err(super::auth::invalid_token());
            }
            if !self.token_still_valid(&new_caller)? {
                return Err(Error::unauthorized("merge_invalid_new_user_token", "invalid new_user_token"));
            }
            let old = self.store().user(caller.uuid())?.ok_or_else(super::auth::invalid_token)?;
            let new = self
                .store()
                .user(new_caller.uuid())?
                .ok_or_else(|| Error::unauthorized("merge_invalid_new_user_token", "invalid new_user_token"))?;
            (old, new)
        };
        if old.uuid == new.uuid {
            return Err(Error::unprocessable("merge_to_self", "cannot merge user to self"));
        }
        let Some(owner_raw) = p.new_owner_uuid.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
            return Err(Error::unprocessable("merge_missing_new_owner", "missing new_owner_uuid"));
        };
        let owner_missing =
            || Error::unprocessable("merge_new_owner_not_found", format!("new_owner_uuid {owner_raw} not found"));
        let new_owner: ObjectUuid = owner_raw.parse().map_err(|_| owner_missing())?;
        if !matches!(new_owner.kind(), ObjectKind::User | ObjectKind::Group) || !self.exists(&new_owner)? {
            return Err(owner_missing());
        }
        let level = self.access_level(&new.uuid, new.is_admin && new.uuid.cluster() == self.cluster(), &new_owner)?;
        if new_owner != new.uuid && level < Level::Write {
            return Err(Error::forbidden(
                "merge_new_owner_not_writable",
                "cannot move objects into supplied new_owner_uuid: new user does not have write permission",
            ));
        }
        if old.redirect_to_user_uuid.is_some() {
            return Err(Error::unprocessable("merge_old_already_merged", "cannot merge an already merged user"));
        }
        if new.redirect_to_user_uuid.is_some() {
            return Err(Error::unprocessable("merge_new_already_merged", "cannot merge to an already merged user"));
        }
        let redirect = match p.redirect_to_new_user.as_deref() {
            None => false,
            Some(s) => parse_bool(s).ok_or_else(|| {
                Error::unprocessable(
                    "merge_redirect_not_boolean",
                    format!("redirect_to_new_user must be a boolean, not {s:?}"),
                )
            })?,
        };
        // Moving objects into something the old user owns would leave them owning themselves.
        if self.owner_chain_contains(&new_owner, &old.uuid)? {
            return Err(Error::unprocessable(
                "merge_new_owner_owned_by_old",
                "new_owner_uuid is owned by the old user",
            ));
        }
        Ok(MergePlan { old, new, new_owner, redirect })
    }

    /// Whether the local token a caller authenticated with is still stored (a concurrent merge
    /// without redirect deletes the old user's tokens). Callers without a local token row pass.
    fn token_still_valid(&self, caller: &Caller) -> Result<bool> {
        match &caller.token {
            Some(row) if row.uuid.cluster() == self.cluster() => Ok(self.store().token(&row.uuid)?.is_some()),
            _ => Ok(true),
        }
    }

    fn owner_chain_contains(&self, start: &ObjectUuid, needle: &ObjectUuid) -> Result<bool> {
        let mut cur = start.clone();
        for _ in 0..super::permissions::MAX_CHAIN {
            if &cur == needle {
                return Ok(true);
            }
            match self.owner_of(&cur)? {
                Some(o) if o != cur => cur = o,
                _ => return Ok(false),
            }
        }
        Ok(false)
    }

    /// `POST users/merge`: checks, then the merge. Returns the old user as it is afterwards.
    pub fn merge(&self, caller: &Caller, p: &MergeParams, new_user: Option<NewUserAuth>) -> Result<Value> {
        let _w = self.write_lock();
        let plan = self.plan_merge(caller, p, new_user)?;
        let (old_after, _) = self.execute_merge(Some(caller.uuid()), &plan, WriteBatch::new())?;
        Ok(views::user(&old_after))
    }

    /// Carries out a checked plan in one atomic batch (which may already hold other writes, e.g. a
    /// federation notice). The writer lock must be held. Returns the old user afterwards and the counts.
    pub(crate) fn execute_merge(
        &self,
        actor: Option<&ObjectUuid>,
        plan: &MergePlan,
        mut b: WriteBatch,
    ) -> Result<(User, MergeCounts)> {
        let store = self.store();
        let (old, new) = (&plan.old, &plan.new);
        let keep_credentials = plan.redirect && old.uuid.cluster() == self.cluster();
        let now = self.clock().now();
        let mut counts = MergeCounts::default();
        let mut touched_links = std::collections::BTreeMap::<ObjectUuid, (Link, Link)>::new();

        let mut owned_keys = Vec::new();
        for uuid in store.owned_by(&old.uuid)? {
            match uuid.kind() {
                ObjectKind::Group => {
                    if let Some(g) = store.object::<Group>(&uuid)? {
                        let mut n = g.clone();
                        n.owner_uuid = plan.new_owner.clone();
                        n.modified_at = now;
                        b.put_object(Some(&g), &n)?;
                        counts.objects += 1;
                    }
                }
                ObjectKind::Collection => {
                    if let Some(c) = store.object::<Collection>(&uuid)? {
                        let mut n = c.clone();
                        n.owner_uuid = plan.new_owner.clone();
                        n.modified_at = now;
                        b.put_object(Some(&c), &n)?;
                        counts.objects += 1;
                    }
                }
                ObjectKind::Link => {
                    if let Some(l) = store.object::<Link>(&uuid)? {
                        let mut n = l.clone();
                        n.owner_uuid = new.uuid.clone();
                        touched_links.insert(uuid, (l, n));
                    }
                }
                // Keys are handled below with the keys that authorize the old user.
                ObjectKind::AuthorizedKey => owned_keys.push(uuid),
                _ => {}
            }
        }
        for l in store.links_by_tail(&old.uuid)? {
            let entry = touched_links.entry(l.uuid.clone()).or_insert_with(|| (l.clone(), l.clone()));
            entry.1.tail_uuid = new.uuid.clone();
        }
        if keep_credentials {
            for l in store.links_by_head(&old.uuid)? {
                let entry = touched_links.entry(l.uuid.clone()).or_insert_with(|| (l.clone(), l.clone()));
                entry.1.head_uuid = new.uuid.clone();
            }
        }
        for (old_link, mut new_link) in touched_links.into_values() {
            new_link.modified_at = now;
            b.put_object(Some(&old_link), &new_link)?;
            counts.links += 1;
        }

        let mut keys: std::collections::BTreeMap<ObjectUuid, AuthorizedKey> = std::collections::BTreeMap::new();
        for k in store.keys_of(&old.uuid)? {
            keys.insert(k.uuid.clone(), k);
        }
        for uuid in owned_keys {
            if let Some(k) = store.object::<AuthorizedKey>(&uuid)? {
                keys.insert(uuid, k);
            }
        }
        for k in keys.into_values() {
            if keep_credentials {
                let mut n = k.clone();
                if n.owner_uuid == old.uuid {
                    n.owner_uuid = new.uuid.clone();
                }
                if n.authorized_user_uuid == old.uuid {
                    n.authorized_user_uuid = new.uuid.clone();
                }
                n.modified_at = now;
                b.put_object(Some(&k), &n)?;
            } else {
                b.delete_object(&k);
            }
            counts.keys += 1;
        }

        for t in store.tokens_of(&old.uuid)? {
            if keep_credentials {
                let mut n = t.clone();
                n.user_uuid = new.uuid.clone();
                n.modified_at = now;
                b.put_token(Some(&t), &n)?;
            } else {
                b.delete_token(&t);
            }
            counts.tokens += 1;
        }
        if old.uuid.cluster() != self.cluster() {
            // A remote old user's validated tokens are dropped too, never moved.
            for t in store.remote_tokens_of(&old.uuid)? {
                b.delete_remote_token(&t.uuid);
                counts.tokens += 1;
            }
        }

        let mut old_after = old.clone();
        if plan.redirect {
            old_after.redirect_to_user_uuid = Some(new.uuid.clone());
            old_after.username = None;
        }
        old_after.modified_at = now;
        old_after.modified_by_user_uuid = actor.cloned();
        old_after.home_seq += 1;
        b.put_user(Some(old), &old_after)?;
        let record = super::user_record(&old_after);
        let notice = if plan.redirect {
            federation_proto::notice::Notice::UserRedirected { user: record }
        } else {
            federation_proto::notice::Notice::UserUpdated { user: record }
        };
        self.queue_notice(&mut b, &notice)?;
        b.put_log(&self.audit(
            actor,
            "merge",
            Some((&old.uuid, &old.owner_uuid)),
            format!("merged {} into {}", old.uuid, new.uuid),
            json!({
                "old_user_uuid": old.uuid,
                "new_user_uuid": new.uuid,
                "new_owner_uuid": plan.new_owner,
                "redirect_to_new_user": plan.redirect,
                "moved": counts,
            }),
        ))?;
        self.commit_and_signal(b)?;
        Ok((old_after, counts))
    }
}
