//! Arvados' user life-cycle methods: `users.system`, `users.setup`, `users.activate`,
//! `users.unsetup`.
//!
//! Arvados invites a user by *setting it up* (an admin; the user then joins the "All users" group,
//! gets a virtual machine login and a welcome mail), and an invited user may *activate* itself.
//! Hearth has no "All users" group, virtual machines or welcome mail: setting up marks the user
//! invited (`is_invited`), which is what `users.activate` asks for. Unsetup is Arvados' undoing of
//! all that: the user is deactivated and loses its tokens, SSH keys, permissions and preferences.
//! A remote user is all of these things at its home cluster only (it is active here exactly when
//! its home says so), so setup, activate and unsetup of one are refused with 422, as Arvados
//! refuses to activate a user of its login cluster on a satellite.

use super::error::{Error, Result};
use super::{Accounts, Caller, views};
use crate::store::WriteBatch;
use crate::store::records::{AuthorizedKey, Link, User};
use federation_proto::ObjectUuid;
use federation_proto::notice::Notice;
use serde_json::{Map, Value, json};

/// What `users.setup` asks for, as received.
#[derive(Debug, Clone, Default)]
pub struct SetupRequest {
    /// An existing user to set up.
    pub uuid: Option<String>,
    /// Attributes of a new user to create and set up.
    pub user: Option<Map<String, Value>>,
    /// A virtual machine to give a login on (there are none here).
    pub vm_uuid: Option<String>,
}

fn remote_refusal(u: &User, what: &str) -> Error {
    Error::unprocessable(
        "remote_user",
        format!("cannot {what} user {} here, only the {} cluster can do that", u.uuid, u.uuid.cluster()),
    )
}

impl Accounts {
    /// `GET users/system`: this cluster's system (root) user, to any caller, as in Arvados.
    pub fn system_user_view(&self) -> Result<Value> {
        let root = self
            .store()
            .user(self.system_user())?
            .ok_or_else(|| Error::new(super::ErrorKind::Internal, "no_system_user", "system user missing"))?;
        Ok(views::user(&root))
    }

    fn live_user(&self, uuid: &ObjectUuid) -> Result<User> {
        let not_found = || Error::not_found("not_found", format!("user {uuid} not found"));
        let u = self.store().user(uuid)?.ok_or_else(not_found)?;
        if u.redirect_to_user_uuid.is_some() {
            return Err(not_found());
        }
        Ok(u)
    }

    /// Writes `new` over `old` with an audit entry and, for a local user, a notice to the peers.
    fn commit_user_change(&self, caller: &Caller, old: &User, mut new: User, event: &str) -> Result<Value> {
        new.modified_at = self.clock().now();
        new.modified_by_user_uuid = Some(caller.uuid().clone());
        new.home_seq += 1;
        let mut b = WriteBatch::new();
        b.put_user(Some(old), &new)?;
        b.put_log(&self.audit(
            caller.actor(),
            event,
            Some((&new.uuid, &new.owner_uuid)),
            format!("{event} user {}", new.uuid),
            json!({"old_attributes": views::user(old), "new_attributes": views::user(&new)}),
        ))?;
        self.queue_notice(&mut b, &Notice::UserUpdated { user: self.user_record(&new)? })?;
        self.commit_and_signal(b)?;
        Ok(views::user(&new))
    }

    /// `POST users/setup` (admins): sets up the user `uuid`, or creates one from `user` (which
    /// must carry an email) and sets it up. Answers Arvados' `arvados#HashList` of what was set up
    /// (here, the user alone).
    pub fn setup_user(&self, caller: &Caller, req: &SetupRequest) -> Result<Value> {
        caller.require_admin()?;
        if let Some(vm) = req.vm_uuid.as_deref().filter(|s| !s.is_empty()) {
            return Err(Error::unprocessable(
                "no_virtual_machines",
                format!("vm_uuid {vm} not found: this cluster has no virtual machines"),
            ));
        }
        let uuid: ObjectUuid = match (req.uuid.as_deref().filter(|s| !s.is_empty()), &req.user) {
            (Some(raw), _) => {
                raw.parse().map_err(|_| Error::not_found("not_found", format!("user {raw} not found")))?
            }
            (None, Some(attrs)) if !attrs.is_empty() => {
                if !attrs.get("email").is_some_and(Value::is_string) {
                    return Err(Error::unprocessable("missing_attribute", "Require user email"));
                }
                let created = self.create_user(caller, attrs)?;
                created["uuid"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| Error::new(super::ErrorKind::Internal, "setup", "created user has no uuid"))?
            }
            _ => return Err(Error::unprocessable("missing_parameter", "Required uuid or user")),
        };
        let _w = self.write_lock()?;
        let old = self.live_user(&uuid)?;
        if old.uuid.cluster() != self.cluster() {
            return Err(remote_refusal(&old, "set up"));
        }
        let user = if old.is_invited {
            views::user(&old)
        } else {
            let new = User { is_invited: true, ..old.clone() };
            self.commit_user_change(caller, &old, new, "setup")?
        };
        Ok(json!({"kind": "arvados#HashList", "items": [user]}))
    }

    /// `POST users/<uuid>/activate`: activates the caller — or, for an admin, the user named. An
    /// inactive user must have been set up (invited) unless an admin asks; an active one is
    /// answered as it is.
    pub fn activate_user(&self, caller: &Caller, uuid: &ObjectUuid) -> Result<Value> {
        let target = if caller.is_admin() { uuid.clone() } else { caller.uuid().clone() };
        let _w = self.write_lock()?;
        let old = self.live_user(&target)?;
        if old.is_active {
            return Ok(views::user(&old));
        }
        if old.uuid.cluster() != self.cluster() {
            return Err(remote_refusal(&old, "activate"));
        }
        if !caller.is_admin() && !old.is_invited {
            return Err(Error::unprocessable("not_invited", "Cannot activate without being invited."));
        }
        let new = User { is_active: true, ..old.clone() };
        self.commit_user_change(caller, &old, new, "activate")
    }

    /// `POST users/<uuid>/unsetup` (admins): deactivates a user and deletes its tokens, its SSH
    /// keys, the permission links it holds and its preferences, as Arvados does; it is no longer
    /// invited or admin. The system user cannot be.
    pub fn unsetup_user(&self, caller: &Caller, uuid: &ObjectUuid) -> Result<Value> {
        caller.require_admin()?;
        let _w = self.write_lock()?;
        let old = self.live_user(uuid)?;
        if &old.uuid == self.system_user() {
            return Err(Error::unprocessable("system_user", "System root user cannot be deactivated"));
        }
        if old.uuid.cluster() != self.cluster() {
            return Err(remote_refusal(&old, "unsetup"));
        }
        let store = self.store();
        let mut b = WriteBatch::new();
        for t in store.tokens_of(&old.uuid)? {
            b.delete_token(&t);
        }
        let mut keys = store.keys_of(&old.uuid)?;
        for k in store.owned_records::<AuthorizedKey>(&old.uuid)? {
            if !keys.iter().any(|held| held.uuid == k.uuid) {
                keys.push(k);
            }
        }
        for k in &keys {
            b.delete_object(k);
        }
        let links: Vec<Link> =
            store.links_by_tail(&old.uuid)?.into_iter().filter(|l| l.link_class == "permission").collect();
        for l in &links {
            b.delete_object(l);
        }
        let new = User {
            is_active: false,
            is_admin: false,
            is_invited: false,
            prefs: json!({}),
            modified_at: self.clock().now(),
            modified_by_user_uuid: Some(caller.uuid().clone()),
            home_seq: old.home_seq + 1,
            ..old.clone()
        };
        b.put_user(Some(&old), &new)?;
        b.put_log(&self.audit(
            caller.actor(),
            "unsetup",
            Some((&new.uuid, &new.owner_uuid)),
            format!("unsetup user {}", new.uuid),
            json!({"deleted": {"tokens": store.tokens_of(&old.uuid)?.len(), "keys": keys.len(), "permission_links": links.len()}}),
        ))?;
        // Peers drop the user's validated tokens when they hear it is inactive.
        self.queue_notice(&mut b, &Notice::UserUpdated { user: self.user_record(&new)? })?;
        self.commit_and_signal(b)?;
        Ok(views::user(&new))
    }
}
