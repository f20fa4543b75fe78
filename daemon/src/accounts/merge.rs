//! `users.merge`: move everything an old account owns to a new account, optionally redirecting
//! the old account to the new one (DESIGN §4.5, Arvados semantics).
//!
//! All checks run first, in the order the design lists them, and change nothing. The merge then
//! runs under the writer lock (two merges of one user are serialized: the second finds the first's
//! result and is refused): the store plans the row moves ([`Store::plan_merge`]: what an
//! [`OwnerMove`] changes, read only), the name check compares them with what the new owner holds,
//! and one [`Store::commit_merge`] writes everything else — the old user's redirect and freed
//! username, tokens, SSH keys, the audit entry, the notices to peers — with the moved rows, all or
//! nothing. How each backend keeps it all or nothing is the store's business (`store::merge`); an
//! error after which a merge is durable in part ([`StoreError::Unfinished`]) stops the daemon, so
//! that no other write mixes with the merge, and opening the store finishes it.
//!
//! [`Store::plan_merge`]: crate::store::Store::plan_merge
//! [`Store::commit_merge`]: crate::store::Store::commit_merge

use super::error::{Error, Result};
use super::objects::ApiObject;
use super::permissions::Level;
use super::{Accounts, Actor, Caller, views};
use crate::store::records::{AuthorizedKey, Collection, ConsentReason, Group, RedirectConsent, User};
use crate::store::{OwnerMove, PlannedMerge, StoreError, WriteBatch};
use federation_proto::{ObjectKind, ObjectUuid};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

/// Exit status when a merge cannot finish (EX_IOERR): the service manager restarts the daemon.
const FAIL_STOP_STATUS: i32 = 74;

/// Index entries per batch of the tidy (each batch holds the writer lock for a few milliseconds).
const TIDY_BATCH: usize = 2_000;

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
    /// Managed profiles whose parent became the new user (shown when there were some).
    #[serde(skip_serializing_if = "is_zero")]
    pub profiles: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
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

/// A managed profile is neither merged away nor merged into (DESIGN §4.8): it has no credentials
/// of its own to redirect, and its parent's relation must not be carried anywhere by a merge. The
/// one rule, for the local merge, a migration and the batch.
pub(crate) fn refuse_profile_merge(old: &User, new: &User) -> Result<()> {
    if let Some(parent) = &old.managed_by {
        return Err(Error::unprocessable(
            "merge_profile",
            format!(
                "cannot merge a managed profile: {} is managed by {parent}; its parent may hand it over \
                 (POST /hearth/v1/profiles/<uuid>/hand_over) and the account it becomes be merged",
                old.uuid
            ),
        ));
    }
    if new.managed_by.is_some() {
        return Err(Error::unprocessable(
            "merge_into_profile",
            format!("cannot merge into a managed profile: {} has no credentials of its own", new.uuid),
        ));
    }
    Ok(())
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
        refuse_profile_merge(&old, &new)?;
        let Some(owner_raw) = p.new_owner_uuid.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
            return Err(Error::unprocessable("merge_missing_new_owner", "missing new_owner_uuid"));
        };
        let owner_missing =
            || Error::unprocessable("merge_new_owner_not_found", format!("new_owner_uuid {owner_raw} not found"));
        let new_owner: ObjectUuid = owner_raw.parse().map_err(|_| owner_missing())?;
        if !matches!(new_owner.kind(), ObjectKind::User | ObjectKind::Group) || !self.exists(&new_owner)? {
            return Err(owner_missing());
        }
        // An account already merged away is refused (422, as in Arvados, where it is not even
        // found) before anything is asked of it: a merged-away new user can write nothing but itself,
        // and a 403 would wrongly say that the owner was the problem.
        if old.redirect_to_user_uuid.is_some() {
            return Err(Error::old_already_merged());
        }
        if new.redirect_to_user_uuid.is_some() {
            return Err(Error::new_already_merged());
        }
        let level = self.access_level(&new.uuid, new.is_admin && new.uuid.cluster() == self.cluster(), &new_owner)?;
        if new_owner != new.uuid && level < Level::Write {
            return Err(Error::forbidden(
                "merge_new_owner_not_writable",
                "cannot move objects into supplied new_owner_uuid: new user does not have write permission",
            ));
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
        let _w = self.write_lock()?;
        let plan = self.plan_merge(caller, p, new_user)?;
        let (old_after, _) = self.execute_merge(caller.actor(), &plan, WriteBatch::new())?;
        Ok(views::user(&old_after))
    }

    /// Gives `old`'s managed profiles of this cluster to `new` (their `managed_by` follows the
    /// merge, in its first transaction) and tells peers `new`'s profile list when `new` is ours.
    /// Profiles cached from a peer stay as their parent's home lists them. Returns the profiles
    /// `old` still has afterwards.
    fn move_profiles(
        &self,
        b: &mut WriteBatch,
        old: &User,
        new: &User,
        now: time::OffsetDateTime,
        counts: &mut MergeCounts,
    ) -> Result<Vec<User>> {
        let (ours, left): (Vec<User>, Vec<User>) =
            self.store().profiles_of(&old.uuid)?.into_iter().partition(|p| !p.cached_from_home);
        if ours.is_empty() {
            return Ok(left);
        }
        let mut moved = Vec::with_capacity(ours.len());
        for p in &ours {
            let n =
                User { managed_by: Some(new.uuid.clone()), modified_at: now, home_seq: p.home_seq + 1, ..p.clone() };
            b.put_user(Some(p), &n)?;
            moved.push(n);
        }
        counts.profiles = moved.len();
        if new.uuid.cluster() == self.cluster()
            && let Some(stored) = self.store().user(&new.uuid)?
            && !stored.cached_from_home
        {
            let after = User { home_seq: stored.home_seq + 1, ..stored.clone() };
            b.put_user(Some(&stored), &after)?;
            let mut profiles = self.store().profiles_of(&new.uuid)?;
            profiles.extend(moved);
            let notice =
                federation_proto::notice::Notice::UserUpdated { user: super::user_record_with(&after, &profiles) };
            self.queue_notice(b, &notice)?;
        }
        Ok(left)
    }

    /// Refuses (422, naming both objects) a merge that would move a project or collection into
    /// an owner that already holds one of the same name: names are unique per owner, and Arvados'
    /// merge fails the same way, changing nothing. Moved rows are compared with what the new owner
    /// holds now; repeated names among the moved rows themselves (stored before names were
    /// unique) are left as they are.
    fn check_no_name_collisions(&self, plan: &PlannedMerge) -> Result<()> {
        /// The first moved row of kind `T` whose unique name the new owner holds already: name,
        /// moved, holder. The new owner's rows are read only when some of that kind move.
        fn first_clash<T: ApiObject>(
            accounts: &Accounts,
            plan: &PlannedMerge,
        ) -> Result<Option<(String, ObjectUuid, ObjectUuid)>> {
            let moved = if T::KIND == ObjectKind::Group { plan.groups() } else { plan.collections() };
            if moved == 0 {
                return Ok(None);
            }
            let m = plan.owner_move();
            let held: HashMap<String, ObjectUuid> = accounts
                .store()
                .owned_records::<T>(&m.new_owner_uuid)?
                .into_iter()
                .filter_map(|r| r.unique_name().map(|n| (n.to_owned(), r.uuid().clone())))
                .collect();
            if held.is_empty() {
                return Ok(None);
            }
            // The store names only the moved rows whose names are held; a group's name is unique
            // unless it is trashed, as [`ApiObject::unique_name`] says of the rows.
            let named = accounts.store().merge_moved_named(plan, T::KIND, held.keys().cloned().collect())?;
            Ok(named
                .into_iter()
                .filter(|n| !(T::KIND == ObjectKind::Group && n.trashed))
                .min_by(|a, b| a.uuid.cmp(&b.uuid))
                .and_then(|n| held.get(&n.name).map(|h| (n.name, n.uuid, h.clone()))))
        }
        let clash = match first_clash::<Group>(self, plan)? {
            Some(c) => Some((ObjectKind::Group, c)),
            None => first_clash::<Collection>(self, plan)?.map(|c| (ObjectKind::Collection, c)),
        };
        match clash {
            Some((kind, (name, moving, holder))) => {
                let m = plan.owner_move();
                Err(super::names::merge_collision(kind, &m.old_user_uuid, &m.new_owner_uuid, &name, &moving, &holder))
            }
            None => Ok(()),
        }
    }

    /// Moves the index entries that merges left where their rows no longer say they belong (the
    /// store's business: see [`Store::tidy_indexes`](crate::store::Store::tidy_indexes)), so that
    /// reading a merge target's links no longer scans them. The index is right at every point of
    /// this, so it runs in the background, in small batches, each under the writer lock. Returns how
    /// many entries moved or went.
    pub fn tidy_indexes(&self) -> Result<usize> {
        let store = self.store();
        let mut pass = store.tidy_indexes()?;
        let mut total = 0;
        // An empty pass (always, on PostgreSQL) takes no writer lock.
        while !pass.is_done() {
            let _w = self.write_lock()?;
            total += store.tidy_step(&mut pass, TIDY_BATCH)?.unwrap_or(0);
        }
        Ok(total)
    }

    /// Carries out a checked plan (see the module documentation). `b` may already hold other
    /// writes (e.g. a federation notice), which are committed with the merge. The writer lock must
    /// be held. Returns the old user afterwards and the counts.
    pub(crate) fn execute_merge(
        &self,
        actor: Actor<'_>,
        plan: &MergePlan,
        mut b: WriteBatch,
    ) -> Result<(User, MergeCounts)> {
        let store = self.store();
        let (old, new) = (&plan.old, &plan.new);
        refuse_profile_merge(old, new)?;
        let keep_credentials = plan.redirect && old.uuid.cluster() == self.cluster();
        let now = self.clock().now();
        let moves = store.plan_merge(&OwnerMove {
            old_user_uuid: old.uuid.clone(),
            new_user_uuid: new.uuid.clone(),
            new_owner_uuid: plan.new_owner.clone(),
            move_heads: keep_credentials,
            at: now,
        })?;
        self.check_no_name_collisions(&moves)?;
        let owned_keys = store.owned_records::<AuthorizedKey>(&old.uuid)?;
        let mut counts = MergeCounts {
            objects: moves.groups() + moves.collections(),
            links: moves.links(),
            ..MergeCounts::default()
        };

        let mut keys = BTreeMap::<ObjectUuid, AuthorizedKey>::new();
        for k in store.keys_of(&old.uuid)?.into_iter().chain(owned_keys) {
            keys.insert(k.uuid.clone(), k);
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
            if let Some(name) = old.indexed_username().filter(|_| !old.cached_from_home) {
                // Logins by the freed name lead to the moved page until someone takes it.
                b.put_former_username(name, &old.uuid);
            }
            old_after.username = None;
            old_after.local_username = None;
            if old.uuid.cluster() != self.cluster() {
                // The redirect of a remote user that our admin made: ours to vouch for (the cached
                // record alone cannot say who set it; see `redirects`).
                b.put_redirect_consent(&RedirectConsent {
                    old_user_uuid: old.uuid.clone(),
                    new_user_uuid: new.uuid.clone(),
                    because: ConsentReason::MergedHere,
                    at: now,
                })?;
            }
        }
        old_after.modified_at = now;
        old_after.modified_by_user_uuid = actor.user_uuid().cloned();
        old_after.home_seq += 1;
        b.put_user(Some(old), &old_after)?;
        let left = self.move_profiles(&mut b, old, new, now, &mut counts)?;
        let record = super::user_record_with(&old_after, &left);
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
        if counts.objects + counts.links == 0 {
            self.commit_and_signal(b)?;
            return Ok((old_after, counts));
        }
        match store.commit_merge(b, moves) {
            Ok(()) => {}
            Err(e @ StoreError::Unfinished(_)) => {
                // Part of the merge is durable; serving on (with the writer lock free) would let
                // other writes mix with it. Stop: opening the store finishes it.
                tracing::error!(
                    error = %e,
                    old = %old.uuid,
                    "a merge failed after its first part was written; stopping so that it is finished when the store is opened again"
                );
                std::process::exit(FAIL_STOP_STATUS);
            }
            Err(e) => return Err(e.into()),
        }
        self.outbox_signal.notify_waiters();
        self.tidy_signal().notify_one();
        Ok((old_after, counts))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::clock::Clock;
    use crate::fixtures::{lone_cluster_settings, merge_state, seed_big_user};
    use crate::store::LinkEnd;
    use crate::store::records::Link;
    use std::path::Path;

    fn open(path: &Path) -> Accounts {
        // Also used to reopen a store these tests just dropped.
        Accounts::new(crate::store::open_after_drop(path).unwrap(), lone_cluster_settings(), Clock::System).unwrap()
    }

    /// Merges the big user's old account into its new one (admin variant, with redirect).
    fn merge_with_redirect(accounts: &Accounts, big: &crate::fixtures::BigUser) {
        let caller = accounts.system_root_caller().unwrap();
        let params = MergeParams {
            new_owner_uuid: Some(big.new_owner.to_string()),
            redirect_to_new_user: Some("true".into()),
            old_user_uuid: Some(big.old.uuid.to_string()),
            new_user_uuid: Some(big.new.uuid.to_string()),
            new_user_token: None,
        };
        accounts.merge(&caller, &params, None).unwrap();
    }

    /// The tidy moves what a merge left under the old uuid to the new owner and user, and every
    /// answer stays the same; a second tidy finds nothing to do.
    #[test]
    fn the_tidy_empties_the_old_users_index_keys_and_changes_no_answer() {
        let dir = tempfile::tempdir().unwrap();
        let accounts = open(&dir.path().join("store"));
        let big = seed_big_user(&accounts, "tidy", 500, 500).unwrap();
        merge_with_redirect(&accounts, &big);
        let store = accounts.store();
        let direct = |index| store.link_end_candidates(index, &big.old.uuid).unwrap().len();
        // 250 tails and 250 heads left under the old user; nothing under it as owner (that index
        // moves its entries with the rows).
        assert_eq!(
            (store.owned_uuids(&big.old.uuid).unwrap().len(), direct(LinkEnd::Tail), direct(LinkEnd::Head)),
            (0, 250, 250)
        );
        let moved_links = store.links_by_tail(&big.new.uuid).unwrap();

        assert_eq!(accounts.tidy_indexes().unwrap(), 500);
        assert_eq!(
            (store.owned_uuids(&big.old.uuid).unwrap().len(), direct(LinkEnd::Tail), direct(LinkEnd::Head)),
            (0, 0, 0)
        );
        assert_eq!(merge_state(&accounts, &big).unwrap(), big.state_after_redirect());
        assert_eq!(store.links_by_tail(&big.new.uuid).unwrap(), moved_links);
        assert_eq!(accounts.tidy_indexes().unwrap(), 0);
    }

    /// On PostgreSQL the server rewrites the moved rows itself: each ends exactly as the daemon
    /// would have rewritten it (only top-level fields change: a link's `properties` may name the
    /// old user too, and text of any script survives the trip through `jsonb`), links of other
    /// owners keep their owner, and every index entry of the rows is where the rows say, none left
    /// behind.
    #[test]
    fn a_merge_on_postgres_rewrites_rows_as_the_daemon_would() {
        let Some(db) = crate::store::testing::TestDb::create() else { return };
        let store = crate::store::Store::open_with(Path::new("unused"), db.options()).unwrap();
        let clock = Clock::manual(1_800_000_000);
        let accounts = Accounts::new(store, lone_cluster_settings(), clock.clone()).unwrap();
        let big = seed_big_user(&accounts, "exact", 40, 40).unwrap();
        let store = accounts.store();
        let old = big.old.uuid.clone();
        let other = store.user(&big.new.uuid).unwrap().unwrap().owner_uuid;
        let link = |owner: &ObjectUuid, head: &ObjectUuid, tail: &ObjectUuid, props| Link {
            uuid: accounts.new_uuid(ObjectKind::Link),
            owner_uuid: owner.clone(),
            created_at: clock.now(),
            modified_at: clock.now(),
            modified_by_user_uuid: None,
            link_class: "tag".into(),
            name: "naïve \"quoted\" \\ 東京 \u{1F600}".into(),
            head_uuid: head.clone(),
            tail_uuid: tail.clone(),
            properties: props,
        };
        let mut b = WriteBatch::new();
        let nested = link(&other, &big.sample, &old, json!({"owner_uuid": old, "tail_uuid": old, "n": 1.5e300}));
        let headed = link(&other, &old, &big.sample, json!({"list": [old, {"head_uuid": old}]}));
        let trashed = Group {
            uuid: accounts.new_uuid(ObjectKind::Group),
            owner_uuid: old.clone(),
            created_at: clock.now(),
            modified_at: clock.now(),
            modified_by_user_uuid: None,
            name: "merged-in".into(),
            description: Some("ça va\tbien\n".into()),
            group_class: "project".into(),
            properties: json!({}),
            trash_at: Some(clock.now()),
        };
        b.put_object(None, &nested).unwrap();
        b.put_object(None, &headed).unwrap();
        b.put_object(None, &trashed).unwrap();
        store.commit(b).unwrap();
        clock.advance(60);

        let m = OwnerMove {
            old_user_uuid: old.clone(),
            new_user_uuid: big.new.uuid.clone(),
            new_owner_uuid: big.new_owner.clone(),
            move_heads: true,
            at: clock.now(),
        };
        let (groups, collections, links) = store.merge_rows_as_daemon(&m).unwrap();
        let planned = store.plan_merge(&m).unwrap();
        assert_eq!(
            (planned.groups(), planned.collections(), planned.links()),
            (groups.len(), collections.len(), links.len())
        );
        let asked = vec!["merged-in".to_string(), "project 0".into(), "collection 1".into(), "nobody's".into()];
        let named = store.merge_moved_named(&planned, ObjectKind::Group, asked).unwrap();
        let mut named: Vec<(&str, bool)> = named.iter().map(|n| (n.name.as_str(), n.trashed)).collect();
        named.sort();
        assert_eq!(named, [("merged-in", true), ("project 0", false)]);
        assert_eq!((groups.len() + collections.len(), links.len()), (41, 42));
        drop(planned);
        merge_with_redirect(&accounts, &big);

        for g in &groups {
            assert_eq!(store.object::<Group>(&g.uuid).unwrap().as_ref(), Some(g));
        }
        for c in &collections {
            assert_eq!(store.object::<Collection>(&c.uuid).unwrap().as_ref(), Some(c));
        }
        for l in &links {
            assert_eq!(store.object::<Link>(&l.uuid).unwrap().as_ref(), Some(l));
        }
        let nested_after = store.object::<Link>(&nested.uuid).unwrap().unwrap();
        assert_eq!(
            (&nested_after.owner_uuid, &nested_after.tail_uuid, &nested_after.properties, &nested_after.name),
            (&other, &big.new.uuid, &nested.properties, &nested.name)
        );
        assert_eq!(store.object::<Link>(&headed.uuid).unwrap().unwrap().head_uuid, big.new.uuid);
        assert_eq!(store.owner_time_mismatches().unwrap(), Vec::<String>::new());
        assert_eq!(store.row_index_mismatches().unwrap(), Vec::<String>::new());
        assert!(store.owned_uuids(&old).unwrap().iter().all(|u| u.kind() == ObjectKind::AuthorizedKey));
    }

    /// On PostgreSQL a merge is one transaction that moves the link-end entries with their rows:
    /// nothing is left under the old user, no alias is written, the tidy finds nothing, and the
    /// merge ends as it does on sled.
    #[test]
    fn a_merge_on_postgres_moves_link_ends_and_leaves_nothing_to_tidy() {
        let Some(db) = crate::store::testing::TestDb::create() else { return };
        let store = crate::store::Store::open_with(Path::new("unused"), db.options()).unwrap();
        let accounts = Accounts::new(store, lone_cluster_settings(), Clock::System).unwrap();
        let big = seed_big_user(&accounts, "pg", 300, 300).unwrap();
        merge_with_redirect(&accounts, &big);
        let store = accounts.store();
        let direct = |index| store.link_end_candidates(index, &big.old.uuid).unwrap().len();
        assert_eq!((direct(LinkEnd::Tail), direct(LinkEnd::Head)), (0, 0));
        assert!(store.tidy_indexes().unwrap().is_done(), "a merge on PostgreSQL leaves nothing to tidy");
        assert!(store.unfinished_merges().unwrap().is_empty());
        assert_eq!(merge_state(&accounts, &big).unwrap(), big.state_after_redirect());
        assert_eq!(accounts.tidy_indexes().unwrap(), 0);
        assert_eq!(store.owner_time_mismatches().unwrap(), Vec::<String>::new());
    }
}
