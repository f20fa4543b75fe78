//! Managed profiles (DESIGN §4.8, seed 003): accounts a parent creates for people without an email
//! or a password of their own, and acts as without a new login.
//!
//! The seed's team chose to keep the parent's token and swap the session's user; so does Hearth: a
//! profile never gets a credential. A profile is a user row with `managed_by` = its parent, no
//! email, no password, never admin, owned (like every user) by the system user. It cannot log in,
//! hold or create tokens, be merged, or manage profiles of its own. Its parent (or an admin) acts
//! as it — with the `X-Hearth-Act-As` header, or by switching a browser session — through the one
//! check in `auth` ([`Accounts::act_as`]); while acting, objects are the profile's and the audit
//! log names the parent too.
//!
//! Profiles live at their parent's home cluster. Every change of a parent's profiles bumps the
//! parent's home sequence and sends peers the parent's record with its new profile list, in the
//! batch of the change: that list is all a peer knows about who may act as whom.
//!
//! A profile grows up when its parent hands it over to its person ([`Accounts::hand_over_profile`]):
//! it gets an email (unverified) and a password, loses `managed_by`, and is an ordinary account.

use super::error::{Error, Result};
use super::users::{check_username, normalize_email};
use super::{Accounts, Caller, passwords, user_record_with};
use crate::store::records::{AuthorizedKey, ProfileSwitch, User};
use crate::store::{OwnedRow, WriteBatch};
use federation_proto::notice::{MAX_FIELD_LEN, MAX_PROFILES, Notice};
use federation_proto::{ObjectKind, ObjectUuid};
use serde_json::json;
use std::collections::BTreeMap;

/// Longest first or last name of a profile, in characters (and at most the federation's field limit
/// in bytes).
pub const MAX_NAME_CHARS: usize = 255;

/// A profile to create.
#[derive(Debug, Clone, Default)]
pub struct NewProfile {
    /// Given name (required).
    pub first_name: String,
    /// Family name (may be empty).
    pub last_name: String,
    /// A login-style name, unique on this cluster (optional).
    pub username: Option<String>,
}

/// Changes to a profile's names; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProfileChanges {
    /// New given name.
    pub first_name: Option<String>,
    /// New family name.
    pub last_name: Option<String>,
    /// New username (`Some(None)` removes it).
    pub username: Option<Option<String>>,
}

/// What deleting a profile did.
#[derive(Debug, Clone)]
pub struct DeletedProfile {
    /// The profile as it was.
    pub profile: User,
    /// Objects it owned that now belong to its parent.
    pub handed_to_parent: Vec<ObjectUuid>,
    /// Links naming it and SSH keys for it, deleted with it (they would point at nobody).
    pub dropped: Vec<ObjectUuid>,
}

fn check_name(field: &str, value: &str, required: bool) -> Result<String> {
    let v = value.trim().to_string();
    if required && v.is_empty() {
        return Err(Error::unprocessable("invalid_profile", format!("{field} is required and cannot be empty")));
    }
    if v.chars().count() > MAX_NAME_CHARS || v.len() > MAX_FIELD_LEN || v.chars().any(char::is_control) {
        return Err(Error::unprocessable(
            "invalid_profile",
            format!("{field} must be at most {MAX_NAME_CHARS} characters, without control characters"),
        ));
    }
    Ok(v)
}

fn profile_cannot_manage() -> Error {
    Error::forbidden(
        "profile_cannot_manage_profiles",
        "a managed profile cannot manage profiles of its own: switch back to the parent account first",
    )
}

impl Accounts {
    /// Who may create or manage profiles as a parent: an active person's account of this
    /// cluster, with an unscoped token, not a profile nor acting as one.
    fn check_parent(&self, caller: &Caller) -> Result<()> {
        if caller.is_acting() || caller.user.managed_by.is_some() {
            return Err(profile_cannot_manage());
        }
        if !caller.scopes.is_all() {
            return Err(Error::forbidden("profiles_scoped_token", "managing profiles needs a token scoped [\"all\"]"));
        }
        caller.require_active()
    }

    /// The stored profile `uuid` that `caller` may manage (its parent, or an admin), under the
    /// writer lock. Anyone else is told it does not exist.
    fn managed_profile(&self, caller: &Caller, uuid: &ObjectUuid) -> Result<User> {
        self.check_parent(caller)?;
        let not_found = || Error::not_found("profile_not_found", format!("managed profile {uuid} not found"));
        let p = self.store().user(uuid)?.ok_or_else(not_found)?;
        let Some(parent) = &p.managed_by else {
            return Err(if caller.is_admin() {
                Error::unprocessable("not_a_profile", format!("{uuid} is not a managed profile"))
            } else {
                not_found()
            });
        };
        if parent != caller.uuid() && !caller.is_admin() {
            return Err(not_found());
        }
        if p.cached_from_home {
            return Err(Error::unprocessable(
                "profile_at_home",
                format!("{uuid} is a profile of cluster {}: it is managed there", uuid.cluster()),
            ));
        }
        Ok(p)
    }

    /// The parent's row with its home sequence bumped and the notice telling peers its profile
    /// list is now `profiles`, both into `b`. Nothing is written for a remote parent (a profile
    /// whose parent moved away in a migration): its record is its home's to send.
    pub(crate) fn parent_changed(&self, b: &mut WriteBatch, parent: &ObjectUuid, profiles: &[User]) -> Result<()> {
        let Some(old) = self.store().user(parent)? else { return Ok(()) };
        if old.cached_from_home {
            return Ok(());
        }
        let new = User { home_seq: old.home_seq + 1, ..old.clone() };
        b.put_user(Some(&old), &new)?;
        self.queue_notice(b, &Notice::UserUpdated { user: user_record_with(&new, profiles) })
    }

    /// Ends every session switched to `profile` (into `b`).
    fn end_switches_to(&self, b: &mut WriteBatch, profile: &ObjectUuid) -> Result<()> {
        for s in self.store().switches_to(profile)? {
            b.delete_profile_switch(&s.token_uuid);
        }
        Ok(())
    }

    /// `POST /hearth/v1/profiles`: a new managed profile of the caller.
    pub fn create_profile(&self, caller: &Caller, new: &NewProfile) -> Result<User> {
        self.check_parent(caller)?;
        if caller.is_system_root || caller.uuid() == self.system_user() {
            return Err(Error::forbidden(
                "profiles_need_a_person",
                "the system user has no profiles; use a person's account",
            ));
        }
        if caller.user.cached_from_home || caller.uuid().cluster() != self.cluster() {
            return Err(Error::unprocessable(
                "profiles_at_home",
                format!("profiles live at their parent's home cluster: create them at {}", caller.uuid().cluster()),
            ));
        }
        let first_name = check_name("first_name", &new.first_name, true)?;
        let last_name = check_name("last_name", &new.last_name, false)?;
        if let Some(u) = &new.username {
            check_username(u)?;
        }
        let _w = self.write_lock()?;
        if let Some(u) = &new.username
            && self.store().user_by_username(u)?.is_some()
        {
            return Err(Error::unprocessable("username_taken", format!("username {u} is already in use")));
        }
        let mut profiles = self.store().profiles_of(caller.uuid())?;
        if profiles.len() >= MAX_PROFILES {
            return Err(Error::unprocessable(
                "too_many_profiles",
                format!("an account may manage at most {MAX_PROFILES} profiles"),
            ));
        }
        let now = self.clock().now();
        let profile = User {
            modified_by_user_uuid: Some(caller.uuid().clone()),
            username: new.username.clone(),
            first_name,
            last_name,
            is_active: true,
            home_seq: 1,
            managed_by: Some(caller.uuid().clone()),
            ..User::new(self.new_uuid(ObjectKind::User), self.system_user().clone(), now)
        };
        let mut b = WriteBatch::new();
        b.put_user(None, &profile)?;
        profiles.push(profile.clone());
        self.parent_changed(&mut b, caller.uuid(), &profiles)?;
        b.put_log(&self.audit(
            caller.actor(),
            "create_profile",
            Some((&profile.uuid, &profile.owner_uuid)),
            format!("{} created managed profile {}", caller.uuid(), profile.uuid),
            json!({"managed_by": caller.uuid(), "first_name": profile.first_name, "last_name": profile.last_name,
                   "username": profile.username}),
        ))?;
        self.commit_and_signal(b)?;
        Ok(profile)
    }

    /// `GET /hearth/v1/profiles`: the caller's managed profiles (none while acting as one).
    pub fn list_profiles(&self, caller: &Caller) -> Result<Vec<User>> {
        Ok(self.store().profiles_of(caller.uuid())?)
    }

    /// `PUT/PATCH /hearth/v1/profiles/<uuid>`: renames a profile (its parent or an admin).
    pub fn update_profile(&self, caller: &Caller, uuid: &ObjectUuid, changes: &ProfileChanges) -> Result<User> {
        let first_name = changes.first_name.as_deref().map(|v| check_name("first_name", v, true)).transpose()?;
        let last_name = changes.last_name.as_deref().map(|v| check_name("last_name", v, false)).transpose()?;
        if let Some(Some(u)) = &changes.username {
            check_username(u)?;
        }
        let _w = self.write_lock()?;
        let old = self.managed_profile(caller, uuid)?;
        if let Some(Some(u)) = &changes.username
            && self.store().user_by_username(u)?.is_some_and(|holder| holder.uuid != old.uuid)
        {
            return Err(Error::unprocessable("username_taken", format!("username {u} is already in use")));
        }
        let mut new = old.clone();
        if let Some(v) = first_name {
            new.first_name = v;
        }
        if let Some(v) = last_name {
            new.last_name = v;
        }
        if let Some(v) = &changes.username {
            new.username = v.clone();
        }
        if new == old {
            return Ok(old);
        }
        new.modified_at = self.clock().now();
        new.modified_by_user_uuid = Some(caller.uuid().clone());
        new.home_seq += 1;
        let parent = old.managed_by.clone().ok_or_else(|| Error::unprocessable("not_a_profile", "not a profile"))?;
        let profiles: Vec<User> = self
            .store()
            .profiles_of(&parent)?
            .into_iter()
            .map(|p| if p.uuid == new.uuid { new.clone() } else { p })
            .collect();
        let mut b = WriteBatch::new();
        b.put_user(Some(&old), &new)?;
        self.parent_changed(&mut b, &parent, &profiles)?;
        b.put_log(&self.audit(
            caller.actor(),
            "update_profile",
            Some((&new.uuid, &new.owner_uuid)),
            format!("{} renamed managed profile {}", caller.uuid(), new.uuid),
            json!({"managed_by": parent,
                   "old": {"first_name": old.first_name, "last_name": old.last_name, "username": old.username},
                   "new": {"first_name": new.first_name, "last_name": new.last_name, "username": new.username}}),
        ))?;
        self.commit_and_signal(b)?;
        Ok(new)
    }

    /// `DELETE /hearth/v1/profiles/<uuid>`: deletes a profile that owns nothing, or, with
    /// `hand_objects_to_parent`, one whose objects then belong to its parent — in one transaction,
    /// with the links naming it and the SSH keys for it, and every session switched to it ended.
    /// Peers hear the parent's new list and the profile's last record (inactive).
    pub fn delete_profile(
        &self,
        caller: &Caller,
        uuid: &ObjectUuid,
        hand_objects_to_parent: bool,
    ) -> Result<DeletedProfile> {
        let _w = self.write_lock()?;
        let p = self.managed_profile(caller, uuid)?;
        let parent = p.managed_by.clone().ok_or_else(|| Error::unprocessable("not_a_profile", "not a profile"))?;
        let store = self.store();
        let owned = store.owned_rows(uuid)?;
        if !owned.is_empty() && !hand_objects_to_parent {
            return Err(Error::unprocessable(
                "profile_owns_objects",
                format!(
                    "managed profile {uuid} owns {} object{}: delete or move them first, or delete it with \
                     hand_objects_to_parent=true to give them to its parent {parent}",
                    owned.len(),
                    if owned.len() == 1 { "" } else { "s" }
                ),
            ));
        }
        let now = self.clock().now();
        let mut b = WriteBatch::new();
        // Links that name the profile and keys for it go with it, whoever owns them.
        let mut gone = BTreeMap::new();
        for l in store.links_by_tail(uuid)?.into_iter().chain(store.links_by_head(uuid)?) {
            gone.insert(l.uuid.clone(), OwnedRow::Link(l));
        }
        for k in store.keys_of(uuid)? {
            gone.insert(k.uuid.clone(), OwnedRow::Key(k));
        }
        let mut handed = Vec::new();
        for row in owned {
            if gone.contains_key(row.uuid()) {
                continue;
            }
            match row {
                OwnedRow::Key(k) => {
                    gone.insert(k.uuid.clone(), OwnedRow::Key(k));
                }
                OwnedRow::Group(g) => {
                    let n = crate::store::records::Group { owner_uuid: parent.clone(), modified_at: now, ..g.clone() };
                    b.put_object(Some(&g), &n)?;
                    handed.push(n.uuid);
                }
                OwnedRow::Collection(c) => {
                    let n =
                        crate::store::records::Collection { owner_uuid: parent.clone(), modified_at: now, ..c.clone() };
                    b.put_object(Some(&c), &n)?;
                    handed.push(n.uuid);
                }
                OwnedRow::Link(l) => {
                    let n = crate::store::records::Link { owner_uuid: parent.clone(), modified_at: now, ..l.clone() };
                    b.put_object(Some(&l), &n)?;
                    handed.push(n.uuid);
                }
            }
        }
        let dropped: Vec<ObjectUuid> = gone.keys().cloned().collect();
        for row in gone.into_values() {
            match row {
                OwnedRow::Link(l) => b.delete_object(&l),
                OwnedRow::Key(k) => b.delete_object::<AuthorizedKey>(&k),
                OwnedRow::Group(g) => b.delete_object(&g),
                OwnedRow::Collection(c) => b.delete_object(&c),
            }
        }
        self.end_switches_to(&mut b, uuid)?;
        b.delete_user(&p);
        let last = User { is_active: false, home_seq: p.home_seq + 1, modified_at: now, ..p.clone() };
        self.queue_notice(&mut b, &Notice::UserUpdated { user: user_record_with(&last, &[]) })?;
        let profiles: Vec<User> = store.profiles_of(&parent)?.into_iter().filter(|q| &q.uuid != uuid).collect();
        self.parent_changed(&mut b, &parent, &profiles)?;
        b.put_log(&self.audit(
            caller.actor(),
            "delete_profile",
            Some((&p.uuid, &p.owner_uuid)),
            format!("{} deleted managed profile {} of {parent}", caller.uuid(), p.uuid),
            json!({"managed_by": parent, "hand_objects_to_parent": hand_objects_to_parent,
                   "handed_to_parent": handed, "dropped": dropped}),
        ))?;
        self.commit_and_signal(b)?;
        Ok(DeletedProfile { profile: p, handed_to_parent: handed, dropped })
    }

    /// `POST /hearth/v1/profiles/<uuid>/hand_over {"email", "password"}`: the profile grows up. It
    /// gets the email (unverified until confirmed) and the password, loses `managed_by` and is an
    /// ordinary account from then on; its parent can no longer act as it, and every session
    /// switched to it ends. Runs argon2: call it off the async runtime.
    pub fn hand_over_profile(&self, caller: &Caller, uuid: &ObjectUuid, email: &str, password: &str) -> Result<User> {
        self.check_parent(caller)?;
        let email = normalize_email(email)?;
        passwords::check_new_password(password)?;
        let owned = password.to_owned();
        let hash = self.hash_gate.run(move || passwords::hash_password(&owned))?;
        let _w = self.write_lock()?;
        let old = self.managed_profile(caller, uuid)?;
        let parent = old.managed_by.clone().ok_or_else(|| Error::unprocessable("not_a_profile", "not a profile"))?;
        let now = self.clock().now();
        let grown = User {
            email: Some(email.clone()),
            email_verified: false,
            password_hash: Some(hash),
            managed_by: None,
            modified_at: now,
            modified_by_user_uuid: Some(caller.uuid().clone()),
            home_seq: old.home_seq + 1,
            ..old.clone()
        };
        let mut b = WriteBatch::new();
        b.put_user(Some(&old), &grown)?;
        self.end_switches_to(&mut b, uuid)?;
        self.queue_notice(&mut b, &Notice::UserUpdated { user: user_record_with(&grown, &[]) })?;
        let profiles: Vec<User> = self.store().profiles_of(&parent)?.into_iter().filter(|q| &q.uuid != uuid).collect();
        self.parent_changed(&mut b, &parent, &profiles)?;
        b.put_log(&self.audit(
            caller.actor(),
            "hand_over_profile",
            Some((&grown.uuid, &grown.owner_uuid)),
            format!("{} handed managed profile {} over to its person ({email}, unverified)", caller.uuid(), grown.uuid),
            json!({"handed_over_by": caller.uuid(), "former_parent": parent, "email": email, "email_verified": false}),
        ))?;
        self.commit_and_signal(b)?;
        Ok(grown)
    }

    /// Switches the browser session `caller` authenticated with to managed profile `profile`
    /// (the check is [`Accounts::act_as`]'s): from now on that session token acts as the profile.
    /// Returns the caller as it now is.
    pub fn switch_session(&self, caller: &Caller, profile: &ObjectUuid) -> Result<Caller> {
        let Some(token) = caller.token.clone() else {
            return Err(Error::unprocessable("no_session", "only a session can switch to a profile"));
        };
        let _w = self.write_lock()?;
        let acting = self.act_as(caller.clone(), profile)?;
        let parent = acting.acting_parent.as_ref().map(|p| p.uuid.clone()).unwrap_or_else(|| caller.uuid().clone());
        let mut b = WriteBatch::new();
        b.put_profile_switch(&ProfileSwitch {
            token_uuid: token.uuid.clone(),
            profile_uuid: profile.clone(),
            parent_uuid: parent.clone(),
            at: self.clock().now(),
        })?;
        b.put_log(&self.audit(
            acting.actor(),
            "switch_profile",
            Some((profile, &acting.user.owner_uuid)),
            format!("{parent} switched a session to managed profile {profile}"),
            json!({"token_uuid": token.uuid}),
        ))?;
        self.store().commit(b)?;
        Ok(acting)
    }

    /// Ends the profile switch of the session `caller` (acting as a profile through it) uses.
    pub fn switch_back(&self, caller: &Caller) -> Result<()> {
        let (Some(token), Some(parent)) = (caller.token.as_ref(), caller.acting_parent.as_ref()) else {
            return Err(Error::unprocessable("not_switched", "this session is not switched to a profile"));
        };
        let _w = self.write_lock()?;
        if self.store().profile_switch(&token.uuid)?.is_none() {
            return Err(Error::unprocessable("not_switched", "this session is not switched to a profile"));
        }
        let mut b = WriteBatch::new();
        b.delete_profile_switch(&token.uuid);
        b.put_log(&self.audit(
            caller.actor(),
            "switch_back",
            Some((caller.uuid(), &caller.user.owner_uuid)),
            format!("{} switched a session back from managed profile {}", parent.uuid, caller.uuid()),
            json!({"token_uuid": token.uuid}),
        ))?;
        self.store().commit(b)?;
        Ok(())
    }
}
