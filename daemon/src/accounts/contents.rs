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
use super::listing::{Found, ListParams, Plan};
use super::objects::{ApiObject, ObjectOptions, with_trash_state};
use super::{Accounts, Caller, views};
use crate::store::records::{Collection, Group, Link};
use crate::store::scan::Candidates;
use federation_proto::{ObjectKind, ObjectUuid};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::ops::Bound;

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
        // Every row shown asks whether it is in the trash: one read of the counts.
        let _counts = self.store().count_snapshot();
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
        // Groups first, then collections: the collections' window starts where the groups' ends.
        let owners = owners.as_deref();
        let groups = self.contents_of::<Group>(caller, owners, req, params, params.offset, params.limit);
        let (g_available, g_items) = groups.as_ref().map_or((0, 0), |f| (f.available, f.items.len()));
        let skip = params.offset.saturating_sub(g_available);
        let collections = self.contents_of::<Collection>(caller, owners, req, params, skip, params.limit - g_items);
        let (items, available) = match (groups, collections) {
            (Err(e), Err(_)) => return Err(e),
            (g, c) => {
                // A kind the request's attributes do not suit adds nothing; any other failure is one.
                let g = g.or_else(nothing_if_unsuited)?;
                let c = c.or_else(nothing_if_unsuited)?;
                let mut all = g.items;
                all.extend(c.items.into_iter().map(without_manifest));
                (all, g.available + c.available)
            }
        };
        let mut body = params.page_window("arvados#objectList", items, available);
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

    /// The records of kind `T` under `owners` (or anywhere) that a contents listing shows the
    /// caller (readable, listed kinds of groups, trash as asked, home left out if asked) and match
    /// `params`: how many, and the views of the window `skip`, `take`.
    fn contents_of<T: ApiObject>(
        &self,
        caller: &Caller,
        owners: Option<&[ObjectUuid]>,
        req: &ContentsRequest,
        params: &ListParams,
        skip: usize,
        take: usize,
    ) -> Result<Found> {
        let store = self.store();
        let anonymous = owners.is_none() && caller.is_anonymous();
        // Trash state when shown (anonymous sessions see their own records' plain views).
        let readable = |r: &T| -> Result<Option<bool>> {
            match owners {
                None if anonymous => Ok((r.owner_uuid() == caller.uuid()).then_some(false)),
                None => self.readable_trash_state(caller, r, req.opts),
                Some(owners) => {
                    if !owners.contains(r.owner_uuid()) || (!caller.is_admin() && !self.can_read(caller, r.uuid())?) {
                        return Ok(None);
                    }
                    let trashed = self.in_trash(r.uuid())?;
                    Ok((!trashed || req.opts.include_trash).then_some(trashed))
                }
            }
        };
        let visible = |r: &T| -> Result<Option<bool>> {
            let listed_kind =
                T::KIND != ObjectKind::Group || matches!(r.cheap("group_class").as_str(), Some("project" | "filter"));
            if !listed_kind {
                return Ok(None);
            }
            let Some(trashed) = readable(r)? else { return Ok(None) };
            if req.exclude_home_project && !self.outside_home_of(caller, r.owner_uuid())? {
                return Ok(None);
            }
            Ok(Some(trashed))
        };
        let render =
            |r: &T, trashed: &bool| Ok(if anonymous { r.view() } else { with_trash_state(r.view(), *trashed) });
        // The first item is judged among the owners' records, or all records, as the caller sees them.
        let universe = |owner: Option<&ObjectUuid>| -> Result<Box<dyn Iterator<Item = Result<T>> + '_>> {
            let source = match owner {
                Some(o) => Candidates::Owned(o.clone()),
                None if anonymous => Candidates::Owned(caller.uuid().clone()),
                None => Candidates::UuidRange { lower: Bound::Unbounded, upper: Bound::Unbounded, descending: false },
            };
            Ok(Box::new(store.candidate_rows::<T>(&source)?.map(|r| r.map_err(Error::from))))
        };
        params.check_attributes::<T>(|| {
            let parts: Vec<Option<&ObjectUuid>> = match owners {
                None => vec![None],
                Some(o) => o.iter().map(Some).collect(),
            };
            for part in parts {
                for r in universe(part)? {
                    let r = r?;
                    if let Some(trashed) = visible(&r)? {
                        return Ok(Some(render(&r, &trashed)?));
                    }
                }
            }
            Ok(None)
        })?;
        let planned = params.plan::<T>();
        let (plan, rows): (Plan, Box<dyn Iterator<Item = Result<T>> + '_>) = match (owners, &planned.source) {
            (_, Candidates::Uuids(_)) => {
                let rows = Box::new(store.candidate_rows::<T>(&planned.source)?.map(|r| r.map_err(Error::from)));
                (planned, rows)
            }
            (Some([owner]), _) if let Some(plan) = params.owner_plan(owner) => {
                let rows = Box::new(store.candidate_rows::<T>(&plan.source)?.map(|r| r.map_err(Error::from)));
                (plan, rows)
            }
            (Some(owners), _) => {
                // The owners' records: in uuid order when there is one owner.
                let ordered = owners.len() == 1 && params.uuid_ordered();
                let mut all: Box<dyn Iterator<Item = Result<T>> + '_> = Box::new(std::iter::empty());
                for o in owners {
                    all = Box::new(all.chain(universe(Some(o))?));
                }
                (Plan { source: Candidates::Uuids(Vec::new()), ordered }, all)
            }
            (None, _) if anonymous => {
                (Plan { source: Candidates::Uuids(Vec::new()), ordered: params.uuid_ordered() }, universe(None)?)
            }
            (None, _) => {
                let rows = Box::new(store.candidate_rows::<T>(&planned.source)?.map(|r| r.map_err(Error::from)));
                (planned, rows)
            }
        };
        // Collections of one owner, unfiltered, are counted from the index when all are shown
        // (groups are not: only some classes are listed).
        let known = match (&plan.source, owners) {
            (Candidates::OwnerTime { owner, .. }, Some([_]))
                if T::KIND == ObjectKind::Collection && params.filters.is_empty() && !req.exclude_home_project =>
            {
                self.owned_count_if_all_shown::<T>(caller, owner, req.opts)?
            }
            _ => None,
        };
        params.collect(&plan, rows, skip, take, known, visible, render)
    }

    /// Whether the record `v` (a view) lies outside the caller's own projects (see
    /// [`Accounts::outside_home_of`]).
    fn outside_home(&self, caller: &Caller, v: &Value) -> Result<bool> {
        let Some(owner) = v.get("owner_uuid").and_then(Value::as_str).and_then(|s| s.parse::<ObjectUuid>().ok()) else {
            return Ok(true);
        };
        self.outside_home_of(caller, &owner)
    }

    /// Whether a record owned by `owner` lies outside the caller's own projects, as Arvados'
    /// `exclude_home` decides: its owner is another user, or an owner the caller cannot read, or a
    /// group that is not a project.
    fn outside_home_of(&self, caller: &Caller, owner: &ObjectUuid) -> Result<bool> {
        Ok(match owner.kind() {
            ObjectKind::User => owner != caller.uuid(),
            ObjectKind::Group => {
                (!caller.is_admin() && !self.can_read(caller, owner)?)
                    || self.store().object::<Group>(owner)?.is_none_or(|g| g.group_class != "project")
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
        let _counts = self.store().count_snapshot();
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

/// A kind's part of a contents listing when the request's attributes do not suit the kind (the
/// other kind's part answers alone); other failures stay failures.
fn nothing_if_unsuited(e: Error) -> Result<Found> {
    if e.code == "invalid_list_parameter" { Ok(Found { available: 0, items: Vec::new() }) } else { Err(e) }
}

/// A collection's view without its manifest (contents leaves it out, as Arvados does).
fn without_manifest(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.remove("manifest_text");
    }
    v
}
