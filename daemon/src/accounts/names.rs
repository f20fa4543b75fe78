//! Names are unique per owner, as Arvados enforces with its unique indexes on `(owner_uuid, name)`:
//! among the groups an owner holds (trashed groups excepted) and, separately, among its
//! collections. A project and a collection may share a name.
//!
//! A create or update that would repeat a name is refused with 422 in Arvados' words (`duplicate
//! key value violates unique constraint "index_groups_on_owner_uuid_and_name": Key (owner_uuid,
//! name)=(…, …) already exists.`), naming the object that holds the name; a create with
//! `ensure_unique_name` (and an untrash with it) instead gets Arvados' free name: the first 237
//! characters of the name, then ` (<the last 15 characters of its uuid>)`. A merge that would move
//! an object into an owner that already holds its name is refused before anything changes, in the
//! shape `arv-federation-migrate` recognizes (Arvados' merge fails the same way and also changes
//! nothing).
//!
//! Only a changed name or owner is checked, so records stored before this rule (which may repeat
//! a name) can still be edited otherwise. The refusal names the record holding the name to a
//! caller that may read it, and says "another collection" (or group) to one that may not.

use super::error::{Error, Result};
use super::objects::ApiObject;
use super::{Accounts, Caller};
use federation_proto::{ObjectKind, ObjectUuid};

/// How many characters of the name Arvados keeps before the uuid it adds.
const KEPT_CHARS: usize = 237;

/// Arvados' table of records of `kind` (it names the unique index).
fn table(kind: ObjectKind) -> &'static str {
    if kind == ObjectKind::Group { "groups" } else { "collections" }
}

fn noun(kind: ObjectKind) -> &'static str {
    if kind == ObjectKind::Group { "group" } else { "collection" }
}

/// The name Arvados gives a record whose name is taken: `<name, cut to 237 characters> (<last 15
/// characters of its uuid>)`.
pub fn unique_variant(name: &str, uuid: &ObjectUuid) -> String {
    let kept: String = name.chars().take(KEPT_CHARS).collect();
    format!("{kept} ({})", uuid.id())
}

/// The refusal of a create or update that would repeat `name` under `owner`; `holder` is named
/// when the caller may read it.
pub fn duplicate_name(kind: ObjectKind, owner: &ObjectUuid, name: &str, holder: Option<&ObjectUuid>) -> Error {
    let t = table(kind);
    let who = match holder {
        Some(h) => format!("{} {h}", noun(kind)),
        None => format!("another {}", noun(kind)),
    };
    Error::unprocessable(
        "duplicate_name",
        format!(
            "duplicate key value violates unique constraint \"index_{t}_on_owner_uuid_and_name\": \
             Key (owner_uuid, name)=({owner}, {name}) already exists. {who} has that name: \
             choose another, or send ensure_unique_name=true to be given a free one"
        ),
    )
}

/// The refusal of a merge that would move `moving` (named `name`) into `owner`, which already holds
/// `holder` with that name. The first two lines are PostgreSQL's as Arvados' merge reports them, so
/// that `arv-federation-migrate` explains the conflict to the operator.
pub fn merge_collision(
    kind: ObjectKind,
    old_user: &ObjectUuid,
    owner: &ObjectUuid,
    name: &str,
    moving: &ObjectUuid,
    holder: &ObjectUuid,
) -> Error {
    let (t, n) = (table(kind), noun(kind));
    Error::unprocessable(
        "merge_name_collision",
        format!(
            "duplicate key value violates unique constraint \"index_{t}_on_owner_uuid_and_name\"\n\
             DETAIL:  Key (owner_uuid, name)=({owner}, {name}) already exists.\n\
             : UPDATE \"{t}\": the merge would move {n} {moving} of {old_user} into {owner}, which already \
             holds {n} {holder} with that name; nothing was changed. Rename one of them, or merge into a new project."
        ),
    )
}

impl Accounts {
    /// The live record of kind `T` (a group or a collection) that `owner` holds under `name`, other
    /// than `except`.
    pub(crate) fn name_holder<T: ApiObject>(
        &self,
        owner: &ObjectUuid,
        name: &str,
        except: Option<&ObjectUuid>,
    ) -> Result<Option<ObjectUuid>> {
        if !T::UNIQUE_NAMES {
            return Ok(None);
        }
        Ok(self
            .store()
            .owned_records::<T>(owner)?
            .into_iter()
            .find(|r| r.unique_name() == Some(name) && Some(r.uuid()) != except)
            .map(|r| r.uuid().clone()))
    }

    /// `name` if `owner` holds no live record of kind `T` by that name, else Arvados' free name for
    /// the record `uuid` (for the projects Hearth makes itself: "Migrated from …", "Legacy data: …").
    pub(crate) fn free_name<T: ApiObject>(&self, owner: &ObjectUuid, name: &str, uuid: &ObjectUuid) -> Result<String> {
        Ok(match self.name_holder::<T>(owner, name, Some(uuid))? {
            None => name.to_owned(),
            Some(_) => unique_variant(name, uuid),
        })
    }

    /// Makes sure `record`'s name is free under its owner: refused (422) when it is not, or, with
    /// `ensure_unique`, renamed the way Arvados renames. Records without unique names pass.
    pub(crate) fn claim_name<T: ApiObject>(&self, caller: &Caller, record: &mut T, ensure_unique: bool) -> Result<()> {
        let Some(name) = record.unique_name().map(str::to_owned) else { return Ok(()) };
        let owner = record.owner_uuid().clone();
        let Some(holder) = self.name_holder::<T>(&owner, &name, Some(record.uuid()))? else { return Ok(()) };
        let refuse = |name: &str, holder: &ObjectUuid| -> Result<()> {
            let shown = self.can_read(caller, holder)?.then_some(holder);
            Err(duplicate_name(T::KIND, &owner, name, shown))
        };
        if !ensure_unique {
            return refuse(&name, &holder);
        }
        let free = unique_variant(&name, record.uuid());
        if let Some(other) = self.name_holder::<T>(&owner, &free, Some(record.uuid()))? {
            return refuse(&free, &other);
        }
        record.set_name(free);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_free_name_is_arvados_own() {
        let uuid: ObjectUuid = "zzzzz-j7d0g-0123456789abcde".parse().unwrap();
        assert_eq!(unique_variant("A Project", &uuid), "A Project (0123456789abcde)");
        let long = "x".repeat(255);
        let v = unique_variant(&long, &uuid);
        assert_eq!(v.chars().count(), 255);
        assert!(v.starts_with(&"x".repeat(237)) && v.ends_with(" (0123456789abcde)"));
    }

    #[test]
    fn a_merge_collision_reads_as_arvados_merge_failure() {
        let u = |s: &str| -> ObjectUuid { s.parse().unwrap() };
        let e = merge_collision(
            ObjectKind::Group,
            &u("zzzzz-tpzed-000000000000old"),
            &u("zzzzz-tpzed-000000000000new"),
            "results",
            &u("zzzzz-j7d0g-00000000000move"),
            &u("zzzzz-j7d0g-00000000000hold"),
        );
        // What arv-federation-migrate looks for in the error (Python's re.search, no DOTALL).
        let first = e.message.split('\n').nth(1).unwrap();
        assert_eq!(first, "DETAIL:  Key (owner_uuid, name)=(zzzzz-tpzed-000000000000new, results) already exists.");
        assert!(e.message.split('\n').nth(2).unwrap().starts_with(": UPDATE \"groups\""));
    }
}
