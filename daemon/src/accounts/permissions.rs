//! Who may read and write what.
//!
//! Access comes from ownership and from permission links, Arvados-style:
//! - admins may do everything;
//! - a user manages itself and everything whose owner chain (owner, owner's owner, … up to
//!   [`MAX_CHAIN`] steps) reaches the user;
//! - a permission link (`link_class = "permission"`, name `can_read` < `can_write` < `can_manage`)
//!   from a principal (`tail_uuid`) to an object (`head_uuid`) grants that level on the object and on
//!   everything it owns, transitively. The principals of a user are the user and the groups it has a
//!   permission link to (group membership).
//!
//! An anonymous session (see [`super::anonymous`]) is none of these: it manages the collections it
//! owns directly and has no access to anything else, whatever links name it.
//!
//! Nothing is cached: a merge or a new link takes effect on the next request.

use super::Accounts;
use super::error::Result;
use crate::store::OwnedRecord;
use crate::store::records::{Collection, Group, Link};
use federation_proto::{ObjectKind, ObjectUuid};

/// Longest owner chain followed.
pub const MAX_CHAIN: usize = 32;

/// Access levels, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// No access.
    None,
    /// `can_read`.
    Read,
    /// `can_write`.
    Write,
    /// `can_manage` (or ownership).
    Manage,
}

impl Level {
    /// The level a permission link's name grants.
    pub fn from_link_name(name: &str) -> Level {
        match name {
            "can_read" => Level::Read,
            "can_write" => Level::Write,
            "can_manage" => Level::Manage,
            _ => Level::None,
        }
    }
}

impl Accounts {
    /// The owner of any object we store (users, groups, collections, links, keys).
    pub fn owner_of(&self, uuid: &ObjectUuid) -> Result<Option<ObjectUuid>> {
        let s = self.store();
        Ok(match uuid.kind() {
            ObjectKind::User => s.user(uuid)?.map(|u| u.owner_uuid),
            ObjectKind::Group => s.object::<Group>(uuid)?.map(|o| o.owner_uuid),
            ObjectKind::Collection => s.object::<Collection>(uuid)?.map(|o| o.owner_uuid),
            ObjectKind::Link => s.object::<Link>(uuid)?.map(|o| o.owner_uuid),
            ObjectKind::Person => s.object::<crate::store::records::Person>(uuid)?.map(|o| o.owner_uuid),
            ObjectKind::AuthorizedKey => {
                s.object::<crate::store::records::AuthorizedKey>(uuid)?.map(|o| o.owner_uuid().clone())
            }
            _ => None,
        })
    }

    /// Whether an object with this uuid exists here.
    pub fn exists(&self, uuid: &ObjectUuid) -> Result<bool> {
        Ok(self.owner_of(uuid)?.is_some())
    }

    /// The object and its owners, nearest first, up to [`MAX_CHAIN`] entries.
    fn owner_chain(&self, uuid: &ObjectUuid) -> Result<Vec<ObjectUuid>> {
        let mut chain = vec![uuid.clone()];
        let mut cur = uuid.clone();
        while chain.len() < MAX_CHAIN {
            match self.owner_of(&cur)? {
                Some(o) if !chain.contains(&o) => {
                    chain.push(o.clone());
                    cur = o;
                }
                _ => break,
            }
        }
        Ok(chain)
    }

    /// The principals acting for `user`: itself and the groups it is a member of (a trashed group
    /// grants nothing, as in Arvados).
    fn principals(&self, user: &ObjectUuid) -> Result<Vec<ObjectUuid>> {
        let mut out = vec![user.clone()];
        for l in self.store().links_by_tail(user)? {
            if l.link_class == "permission"
                && l.head_uuid.kind() == ObjectKind::Group
                && Level::from_link_name(&l.name) > Level::None
                && self.store().object::<Group>(&l.head_uuid)?.is_none_or(|g| g.trash_at.is_none())
            {
                out.push(l.head_uuid.clone());
            }
        }
        Ok(out)
    }

    /// The access `user` (not admin) has to `uuid`.
    pub fn access_level(&self, user: &ObjectUuid, is_admin: bool, uuid: &ObjectUuid) -> Result<Level> {
        if is_admin {
            return Ok(Level::Manage);
        }
        let chain = self.owner_chain(uuid)?;
        if chain.contains(user) {
            return Ok(Level::Manage);
        }
        let principals = self.principals(user)?;
        let mut best = Level::None;
        for node in &chain {
            for l in self.store().links_by_head(node)? {
                if l.link_class == "permission" && principals.contains(&l.tail_uuid) {
                    best = best.max(Level::from_link_name(&l.name));
                }
            }
            if best == Level::Manage {
                break;
            }
        }
        Ok(best)
    }

    /// The access `caller` has to `uuid`: an anonymous session's own rule, else [`Accounts::access_level`].
    fn caller_level(&self, caller: &super::Caller, uuid: &ObjectUuid) -> Result<Level> {
        if caller.is_anonymous() {
            return Ok(if self.anonymous_manages(caller, uuid)? { Level::Manage } else { Level::None });
        }
        self.access_level(caller.uuid(), caller.is_admin(), uuid)
    }

    /// Whether `caller` can read every object `owner` holds directly because it can read `owner`:
    /// an object's owner chain is the object and its owner's chain, so it grants at least what
    /// the owner's does, when that chain is not cut short by [`MAX_CHAIN`]. Never for an
    /// anonymous session (it reads only what it owns, each object judged on its own).
    pub fn reads_all_owned_by(&self, caller: &super::Caller, owner: &ObjectUuid) -> Result<bool> {
        if caller.is_anonymous() {
            return Ok(false);
        }
        if caller.is_admin() {
            return Ok(true);
        }
        Ok(self.owner_chain(owner)?.len() < MAX_CHAIN && self.access_level(caller.uuid(), false, owner)? >= Level::Read)
    }

    /// Convenience: can `caller` read `uuid`?
    pub fn can_read(&self, caller: &super::Caller, uuid: &ObjectUuid) -> Result<bool> {
        Ok(self.caller_level(caller, uuid)? >= Level::Read)
    }

    /// Convenience: can `caller` write `uuid`?
    pub fn can_write(&self, caller: &super::Caller, uuid: &ObjectUuid) -> Result<bool> {
        Ok(self.caller_level(caller, uuid)? >= Level::Write)
    }

    /// Convenience: can `caller` manage `uuid`?
    pub fn can_manage(&self, caller: &super::Caller, uuid: &ObjectUuid) -> Result<bool> {
        Ok(self.caller_level(caller, uuid)? >= Level::Manage)
    }
}
