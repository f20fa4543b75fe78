//! Listings that cross kinds, as Arvados' clients browse projects: `groups.contents` (the
//! projects and collections a user or group owns, or everything the caller can read),
//! `groups.shared` (the groups shared with the caller that its own projects do not hold) and
//! `links.get_permissions` (who has been granted what on an object).
//!
//! As in Arvados, contents lists groups (projects and filter groups) first, then collections, each
//! kind filtered and sorted on its own (a filter that suits neither kind is refused), and pages
//! over the two together; collections come without `manifest_text`. `include=["owner_uuid"]` adds
//! the readable owners of the page's items in `included`.

use super::error::{Error, Result};
use super::listing::ListParams;
use super::objects::{ApiObject, ObjectOptions};
use super::{Accounts, Caller, views};
use crate::store::records::{Collection, Group, Link};
use federation_proto::{ObjectKind, ObjectUuid};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// What a `groups.contents` request asks for.
#[derive(Debug, Clone, Default)]
pub struct ContentsRequest {
    /// The user or group whose contents to list (none: everything the caller can read).
    pub owner: Option<ObjectUuid>,
    /// Also the contents of its subprojects, recursively.
    pub recursive: bool,
    /// `include` named `owner_uuid`.
    pub include_owners: bool,
    /// Leave out what the caller's own projects hold (what is shared with the caller).
    pub exclude_home_project: bool,
    /// `include_trash`.
    pub opts: ObjectOptions,
}

/// Deepest project tree followed by `recursive`.
const MAX_DEPTH: usize = super::permissions::MAX_CHAIN;

impl Accounts {
    /// `GET groups/contents`.
    pub fn group_contents(&self, caller: &Caller, req: &ContentsRequest, params: &ListParams) -> Result<Value> {
        let owners = match &req.owner {
            None => None,
            Some(owner) => {
                if req.exclude_home_project {
                    return Err(Error::unprocessable(
                        "exclude_home_with_parent",
                        "Cannot use 'exclude_home_project' with a parent object",
                    ));
                }
                self.check_contents_owner(caller, owner, req.opts)?;
                Some(if req.recursive { self.project_tree(owner)? } else { vec![owner.clone()] })
            }
        };
        let groups = self.contents_of::<Group>(caller, owners.as_deref(), req)?;
        let collections = self.contents_of::<Collection>(caller, owners.as_deref(), req)?;
        let matched = match (params.filter_and_sort(groups), params.filter_and_sort(collections)) {
            (Err(e), Err(_)) => return Err(e),
            (g, c) => {
                let mut all = g.unwrap_or_default();
                all.extend(c.unwrap_or_default().into_iter().map(without_manifest));
                all
            }
        };
        let mut body = params.page("arvados#objectList", matched);
        if req.include_owners {
            let included = self.readable_owners(caller, &body["items"])?;
            if let Some(m) = body.as_object_mut() {
                m.insert("included".into(), Value::Array(included));
            }
        }
        Ok(body)
    }

    /// The owner named in a contents request exists and the caller may see it: a user (its home
    /// project) or a group it can read (not trashed, unless asked).
    fn check_contents_owner(&self, caller: &Caller, owner: &ObjectUuid, opts: ObjectOptions) -> Result<()> {
        let not_found = || Error::not_found("not_found", format!("{owner} not found"));
        match owner.kind() {
            ObjectKind::User => {
                let u = self.store().user(owner)?.ok_or_else(not_found)?;
                if u.redirect_to_user_uuid.is_some() {
                    return Err(not_found());
                }
            }
            ObjectKind::Group => {
                self.store().object::<Group>(owner)?.ok_or_else(not_found)?;
                if !self.can_read(caller, owner)? || (!opts.include_trash && self.in_trash(owner)?) {
                    return Err(not_found());
                }
            }
            _ => return Err(not_found()),
        }
        Ok(())
    }

    /// `root` and the projects under it, to [`MAX_DEPTH`] levels.
    fn project_tree(&self, root: &ObjectUuid) -> Result<Vec<ObjectUuid>> {
        let mut all = vec![root.clone()];
        let mut level = vec![root.clone()];
        for _ in 0..MAX_DEPTH {
            let mut next = Vec::new();
            for owner in &level {
                for g in self.store().owned_records::<Group>(owner)? {
                    if g.group_class == "project" && !all.contains(&g.uuid) {
                        all.push(g.uuid.clone());
                        next.push(g.uuid);
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            level = next;
        }
        Ok(all)
    }

    /// The views of the records of kind `T` under `owners` (or anywhere) that a contents listing
    /// shows the caller: readable, listed kinds of groups, trash as asked, home left out if asked.
    fn contents_of<T: ApiObject>(
        &self,
        caller: &Caller,
        owners: Option<&[ObjectUuid]>,
        req: &ContentsRequest,
    ) -> Result<Vec<Value>> {
        let candidates: Vec<Value> = match owners {
            None => self.readable_views::<T>(caller, req.opts)?,
            Some(owners) => {
                let mut out = Vec::new();
                for owner in owners {
                    for r in self.store().owned_records::<T>(owner)? {
                        if !caller.is_admin() && !self.can_read(caller, r.uuid())? {
                            continue;
                        }
                        let trashed = self.in_trash(r.uuid())?;
                        if trashed && !req.opts.include_trash {
                            continue;
                        }
                        let mut v = r.view();
                        if let Some(m) = v.as_object_mut()
                            && m.contains_key("is_trashed")
                        {
                            m.insert("is_trashed".into(), Value::Bool(trashed));
                        }
                        out.push(v);
                    }
                }
                out
            }
        };
        let mut out = Vec::with_capacity(candidates.len());
        for v in candidates {
            let listed_kind = T::KIND != ObjectKind::Group
                || matches!(v.get("group_class").and_then(Value::as_str), Some("project" | "filter"));
            if listed_kind && (!req.exclude_home_project || self.outside_home(caller, &v)?) {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Whether the record `v` (a view) lies outside the caller's own projects, as Arvados'
    /// `exclude_home` decides: its owner is another user, or an owner the caller cannot read, or a
    /// group that is not a project.
    fn outside_home(&self, caller: &Caller, v: &Value) -> Result<bool> {
        let Some(owner) = v.get("owner_uuid").and_then(Value::as_str).and_then(|s| s.parse::<ObjectUuid>().ok()) else {
            return Ok(true);
        };
        Ok(match owner.kind() {
            ObjectKind::User => &owner != caller.uuid(),
            ObjectKind::Group => {
                (!caller.is_admin() && !self.can_read(caller, &owner)?)
                    || self.store().object::<Group>(&owner)?.is_none_or(|g| g.group_class != "project")
            }
            _ => true,
        })
    }

    /// The owners of `items` (views) that the caller can read: users and groups, once each.
    fn readable_owners(&self, caller: &Caller, items: &Value) -> Result<Vec<Value>> {
        let owners: BTreeSet<ObjectUuid> = items
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i.get("owner_uuid")?.as_str()?.parse().ok())
            .collect();
        let mut out = Vec::new();
        for o in owners {
            match o.kind() {
                ObjectKind::User => {
                    if let Ok(v) = self.get_user(caller, &o) {
                        out.push(v);
                    }
                }
                ObjectKind::Group => {
                    if let Some(g) = self.store().object::<Group>(&o)?
                        && (caller.is_admin() || self.can_read(caller, &o)?)
                    {
                        out.push(views::group(&g));
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// `GET groups/shared`: the groups the caller can read that its own projects do not hold,
    /// with their owners in `included` when `include_owners`.
    pub fn groups_shared(
        &self,
        caller: &Caller,
        include_owners: bool,
        opts: ObjectOptions,
        params: &ListParams,
    ) -> Result<Value> {
        let mut shared = Vec::new();
        for v in self.readable_views::<Group>(caller, opts)? {
            if self.outside_home(caller, &v)? {
                shared.push(v);
            }
        }
        let mut body = params.apply(Group::LIST_KIND, shared)?;
        if include_owners {
            let included = self.readable_owners(caller, &body["items"])?;
            if let Some(m) = body.as_object_mut() {
                m.insert("included".into(), Value::Array(included));
            }
        }
        Ok(body)
    }

    /// `GET permissions/<uuid>`: the permission links whose head is `uuid`, to a caller who may
    /// manage it (403 "Forbidden" to one who may only read it, as in Arvados; 404 otherwise).
    pub fn permissions_on(&self, caller: &Caller, uuid: &ObjectUuid) -> Result<Value> {
        let not_found = || Error::not_found("not_found", format!("{uuid} not found"));
        if !self.exists(uuid)? || !self.can_read(caller, uuid)? {
            return Err(not_found());
        }
        if !self.can_manage(caller, uuid)? {
            return Err(Error::forbidden("permission_denied", "Forbidden"));
        }
        let links: Vec<Value> = self
            .store()
            .links_by_head(uuid)?
            .iter()
            .filter(|l: &&Link| l.link_class == "permission")
            .map(views::link)
            .collect();
        Ok(json!({
            "kind": Link::LIST_KIND,
            "etag": "",
            "self_link": "",
            "offset": 0,
            "limit": links.len(),
            "items_available": links.len(),
            "items": links,
        }))
    }
}

/// A collection's view without its manifest (contents leaves it out, as Arvados does).
fn without_manifest(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.remove("manifest_text");
    }
    v
}
