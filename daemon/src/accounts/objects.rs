//! Owned objects (groups, collections, links, SSH keys): create, get, list, update, delete, with
//! the permission rules of [`permissions`](super::permissions).

use super::bounds::{self, Bound};
use super::error::{Error, Result};
use super::listing::{ListParams, Plan};
use super::{Accounts, Caller, views};
use crate::store::records::{AuthorizedKey, Collection, Group, Link};
use crate::store::scan::Candidates;
use crate::store::{OwnedRecord, WriteBatch};
use federation_proto::{ObjectKind, ObjectUuid};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

/// Common attributes every owned object accepts and the read-only ones clients echo back.
const COMMON_READ_ONLY: &[&str] = &[
    "uuid",
    "kind",
    "etag",
    "created_at",
    "modified_at",
    "modified_by_user_uuid",
    "modified_by_client_uuid",
    "writable_by",
    "can_write",
    "can_manage",
    "href",
    "head_kind",
    "tail_kind",
    "portable_data_hash",
    "is_trashed",
    "trash_at",
    "delete_at",
    "expires_at",
];

/// An owned record the API can create and edit.
pub trait ApiObject: OwnedRecord + super::listing::Listable {
    /// Singular resource name, e.g. `group` (the wrapper key in request bodies).
    const RESOURCE: &'static str;
    /// Arvados list kind, e.g. `arvados#groupList`.
    const LIST_KIND: &'static str;
    /// Attributes this resource accepts besides `owner_uuid`.
    const FIELDS: &'static [&'static str];
    /// The bound of each free-form attribute (others are short strings: see [`bounds`]).
    const BOUNDS: &'static [(&'static str, Bound)];
    /// The API view.
    fn view(&self) -> Value;
    /// A new record from attributes.
    fn create(
        uuid: ObjectUuid,
        owner: ObjectUuid,
        now: OffsetDateTime,
        actor: ObjectUuid,
        attrs: &Map<String, Value>,
    ) -> Result<Self>;
    /// Applies changed attributes.
    fn apply(&mut self, attrs: &Map<String, Value>) -> Result<()>;
    /// Sets owner and modification stamps.
    fn stamp(&mut self, owner: ObjectUuid, now: OffsetDateTime, actor: ObjectUuid);
    /// Whether records of this kind have names unique per owner (see [`super::names`]).
    const UNIQUE_NAMES: bool = false;
    /// The name that must be unique under the owner (none for a trashed group or a kind without
    /// unique names).
    fn unique_name(&self) -> Option<&str> {
        None
    }
    /// Renames (only called for kinds with unique names).
    fn set_name(&mut self, _name: String) {}
}

/// Arvados' query parameters that change how a create, a get or a list finds or names records.
#[derive(Debug, Clone, Copy, Default)]
pub struct ObjectOptions {
    /// `ensure_unique_name`: a taken name is replaced by a free one instead of refused.
    pub ensure_unique_name: bool,
    /// `include_trash`: trashed projects, and what they hold, are found too.
    pub include_trash: bool,
}

fn opt_str(attrs: &Map<String, Value>, k: &str) -> Result<Option<Option<String>>> {
    match attrs.get(k) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(Error::unprocessable("wrong_type", format!("{k} must be a string"))),
    }
}

fn req_str(attrs: &Map<String, Value>, k: &str, resource: &str) -> Result<String> {
    opt_str(attrs, k)?
        .flatten()
        .ok_or_else(|| Error::unprocessable("missing_attribute", format!("{resource}: {k} is required")))
}

fn props(attrs: &Map<String, Value>) -> Result<Option<Value>> {
    match attrs.get("properties") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(json!({}))),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(_) => Err(Error::unprocessable("wrong_type", "properties must be an object")),
    }
}

fn uuid_attr(attrs: &Map<String, Value>, k: &str) -> Result<Option<ObjectUuid>> {
    match opt_str(attrs, k)?.flatten() {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| Error::unprocessable("invalid_uuid", format!("{k} is not a valid uuid: {s}"))),
    }
}

impl ApiObject for Group {
    const RESOURCE: &'static str = "group";
    const LIST_KIND: &'static str = "arvados#groupList";
    const FIELDS: &'static [&'static str] = &["name", "description", "group_class", "properties"];
    const BOUNDS: &'static [(&'static str, Bound)] = &[
        ("name", Bound::Chars(bounds::MAX_NAME_CHARS)),
        ("description", Bound::Bytes(bounds::MAX_DESCRIPTION_BYTES)),
        ("properties", Bound::Properties),
    ];
    fn view(&self) -> Value {
        views::group(self)
    }
    fn create(
        uuid: ObjectUuid,
        owner: ObjectUuid,
        now: OffsetDateTime,
        actor: ObjectUuid,
        attrs: &Map<String, Value>,
    ) -> Result<Self> {
        let mut g = Group {
            uuid,
            owner_uuid: owner,
            created_at: now,
            modified_at: now,
            modified_by_user_uuid: Some(actor),
            name: req_str(attrs, "name", "group")?,
            description: None,
            group_class: "project".into(),
            properties: json!({}),
            trash_at: None,
        };
        g.apply(attrs)?;
        Ok(g)
    }
    fn apply(&mut self, attrs: &Map<String, Value>) -> Result<()> {
        if let Some(n) = opt_str(attrs, "name")? {
            self.name = n
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Error::unprocessable("missing_attribute", "group: name cannot be empty"))?;
        }
        if let Some(d) = opt_str(attrs, "description")? {
            self.description = d;
        }
        if let Some(c) = opt_str(attrs, "group_class")? {
            let c = c.unwrap_or_else(|| "project".into());
            if !matches!(c.as_str(), "project" | "role" | "filter") {
                return Err(Error::unprocessable("invalid_group_class", "group_class must be project, role or filter"));
            }
            self.group_class = c;
        }
        if let Some(p) = props(attrs)? {
            self.properties = p;
        }
        Ok(())
    }
    fn stamp(&mut self, owner: ObjectUuid, now: OffsetDateTime, actor: ObjectUuid) {
        self.owner_uuid = owner;
        self.modified_at = now;
        self.modified_by_user_uuid = Some(actor);
    }
    const UNIQUE_NAMES: bool = true;
    fn unique_name(&self) -> Option<&str> {
        self.trash_at.is_none().then_some(self.name.as_str())
    }
    fn set_name(&mut self, name: String) {
        self.name = name;
    }
}

impl ApiObject for Collection {
    const RESOURCE: &'static str = "collection";
    const LIST_KIND: &'static str = "arvados#collectionList";
    const FIELDS: &'static [&'static str] = &["name", "description", "properties", "manifest_text"];
    const BOUNDS: &'static [(&'static str, Bound)] = &[
        ("name", Bound::Chars(bounds::MAX_NAME_CHARS)),
        ("description", Bound::Bytes(bounds::MAX_DESCRIPTION_BYTES)),
        ("properties", Bound::Properties),
        ("manifest_text", Bound::Bytes(bounds::MAX_MANIFEST_TEXT_BYTES)),
    ];
    fn view(&self) -> Value {
        views::collection(self)
    }
    fn create(
        uuid: ObjectUuid,
        owner: ObjectUuid,
        now: OffsetDateTime,
        actor: ObjectUuid,
        attrs: &Map<String, Value>,
    ) -> Result<Self> {
        let mut c = Collection {
            name: format!("New collection {}", uuid.id()),
            uuid,
            owner_uuid: owner,
            created_at: now,
            modified_at: now,
            modified_by_user_uuid: Some(actor),
            description: None,
            properties: json!({}),
            manifest_text: String::new(),
        };
        c.apply(attrs)?;
        Ok(c)
    }
    fn apply(&mut self, attrs: &Map<String, Value>) -> Result<()> {
        if let Some(n) = opt_str(attrs, "name")? {
            self.name = n.unwrap_or_default();
        }
        if let Some(d) = opt_str(attrs, "description")? {
            self.description = d;
        }
        if let Some(m) = opt_str(attrs, "manifest_text")? {
            self.manifest_text = m.unwrap_or_default();
        }
        if let Some(p) = props(attrs)? {
            self.properties = p;
        }
        Ok(())
    }
    fn stamp(&mut self, owner: ObjectUuid, now: OffsetDateTime, actor: ObjectUuid) {
        self.owner_uuid = owner;
        self.modified_at = now;
        self.modified_by_user_uuid = Some(actor);
    }
    const UNIQUE_NAMES: bool = true;
    fn unique_name(&self) -> Option<&str> {
        Some(self.name.as_str())
    }
    fn set_name(&mut self, name: String) {
        self.name = name;
    }
}

impl ApiObject for Link {
    const RESOURCE: &'static str = "link";
    const LIST_KIND: &'static str = "arvados#linkList";
    const FIELDS: &'static [&'static str] = &["link_class", "name", "head_uuid", "tail_uuid", "properties"];
    const BOUNDS: &'static [(&'static str, Bound)] = &[
        ("link_class", Bound::Chars(bounds::MAX_LINK_CLASS_CHARS)),
        ("name", Bound::Chars(bounds::MAX_NAME_CHARS)),
        ("properties", Bound::Properties),
    ];
    fn view(&self) -> Value {
        views::link(self)
    }
    fn create(
        uuid: ObjectUuid,
        owner: ObjectUuid,
        now: OffsetDateTime,
        actor: ObjectUuid,
        attrs: &Map<String, Value>,
    ) -> Result<Self> {
        let head = uuid_attr(attrs, "head_uuid")?
            .ok_or_else(|| Error::unprocessable("missing_attribute", "link: head_uuid is required"))?;
        let tail = uuid_attr(attrs, "tail_uuid")?.unwrap_or_else(|| owner.clone());
        let mut l = Link {
            uuid,
            owner_uuid: owner,
            created_at: now,
            modified_at: now,
            modified_by_user_uuid: Some(actor),
            link_class: req_str(attrs, "link_class", "link")?,
            name: String::new(),
            head_uuid: head,
            tail_uuid: tail,
            properties: json!({}),
        };
        l.apply(attrs)?;
        Ok(l)
    }
    fn apply(&mut self, attrs: &Map<String, Value>) -> Result<()> {
        if let Some(c) = opt_str(attrs, "link_class")? {
            self.link_class =
                c.ok_or_else(|| Error::unprocessable("missing_attribute", "link: link_class cannot be null"))?;
        }
        if let Some(n) = opt_str(attrs, "name")? {
            self.name = n.unwrap_or_default();
        }
        if let Some(h) = uuid_attr(attrs, "head_uuid")? {
            self.head_uuid = h;
        }
        if let Some(t) = uuid_attr(attrs, "tail_uuid")? {
            self.tail_uuid = t;
        }
        if let Some(p) = props(attrs)? {
            self.properties = p;
        }
        if self.link_class == "permission" && !matches!(self.name.as_str(), "can_read" | "can_write" | "can_manage") {
            return Err(Error::unprocessable(
                "invalid_permission",
                "permission link name must be can_read, can_write or can_manage",
            ));
        }
        Ok(())
    }
    fn stamp(&mut self, owner: ObjectUuid, now: OffsetDateTime, actor: ObjectUuid) {
        self.owner_uuid = owner;
        self.modified_at = now;
        self.modified_by_user_uuid = Some(actor);
    }
}

impl ApiObject for AuthorizedKey {
    const RESOURCE: &'static str = "authorized_key";
    const LIST_KIND: &'static str = "arvados#authorizedKeyList";
    const FIELDS: &'static [&'static str] = &["name", "key_type", "public_key", "authorized_user_uuid"];
    const BOUNDS: &'static [(&'static str, Bound)] = &[
        ("name", Bound::Chars(bounds::MAX_NAME_CHARS)),
        ("key_type", Bound::Chars(bounds::MAX_KEY_TYPE_CHARS)),
        ("public_key", Bound::Bytes(bounds::MAX_PUBLIC_KEY_BYTES)),
    ];
    fn view(&self) -> Value {
        views::authorized_key(self)
    }
    fn create(
        uuid: ObjectUuid,
        owner: ObjectUuid,
        now: OffsetDateTime,
        actor: ObjectUuid,
        attrs: &Map<String, Value>,
    ) -> Result<Self> {
        let mut k = AuthorizedKey {
            uuid,
            authorized_user_uuid: uuid_attr(attrs, "authorized_user_uuid")?.unwrap_or_else(|| owner.clone()),
            owner_uuid: owner,
            created_at: now,
            modified_at: now,
            modified_by_user_uuid: Some(actor),
            name: String::new(),
            key_type: "SSH".into(),
            public_key: req_str(attrs, "public_key", "authorized_key")?,
        };
        k.apply(attrs)?;
        Ok(k)
    }
    fn apply(&mut self, attrs: &Map<String, Value>) -> Result<()> {
        if let Some(n) = opt_str(attrs, "name")? {
            self.name = n.unwrap_or_default();
        }
        if let Some(t) = opt_str(attrs, "key_type")? {
            self.key_type = t.unwrap_or_else(|| "SSH".into());
        }
        if let Some(p) = opt_str(attrs, "public_key")? {
            let p = p.unwrap_or_default();
            let mut parts = p.split_whitespace();
            let ok = parts.next().is_some_and(|t| t.starts_with("ssh-") || t.starts_with("ecdsa-"))
                && parts.next().is_some_and(|b| b.len() >= 16);
            if !ok {
                return Err(Error::unprocessable(
                    "invalid_public_key",
                    "public_key must look like 'ssh-ed25519 AAAA… comment'",
                ));
            }
            self.public_key = p;
        }
        if let Some(u) = uuid_attr(attrs, "authorized_user_uuid")? {
            self.authorized_user_uuid = u;
        }
        Ok(())
    }
    fn stamp(&mut self, owner: ObjectUuid, now: OffsetDateTime, actor: ObjectUuid) {
        self.owner_uuid = owner;
        self.modified_at = now;
        self.modified_by_user_uuid = Some(actor);
    }
}

/// A view with `is_trashed` set as the owner chain says (a record in a trashed project is trashed
/// too, as Arvados shows it).
pub(crate) fn with_trash_state(mut v: Value, trashed: bool) -> Value {
    if let Some(m) = v.as_object_mut()
        && m.contains_key("is_trashed")
    {
        m.insert("is_trashed".into(), Value::Bool(trashed));
    }
    v
}

/// Every attribute is known, and within its bound.
fn check_attrs<T: ApiObject>(attrs: &Map<String, Value>) -> Result<()> {
    for k in attrs.keys() {
        if k != "owner_uuid" && !T::FIELDS.contains(&k.as_str()) && !COMMON_READ_ONLY.contains(&k.as_str()) {
            return Err(Error::unprocessable(
                "unknown_attribute",
                format!("unknown attribute for {}: {}", T::RESOURCE, bounds::excerpt(k)),
            ));
        }
    }
    bounds::check_attrs(attrs, T::BOUNDS)
}

impl Accounts {
    fn not_found<T: ApiObject>(uuid: &ObjectUuid) -> Error {
        Error::not_found("not_found", format!("{} {uuid} not found", T::RESOURCE))
    }

    /// Checks the rules that depend on the kind (keys for oneself, permission links need manage on the head).
    fn check_kind_rules<T: ApiObject>(&self, caller: &Caller, record: &T) -> Result<()> {
        let v = record.view();
        if T::KIND == ObjectKind::AuthorizedKey
            && let Some(u) = v.get("authorized_user_uuid").and_then(Value::as_str)
            && u != caller.uuid().to_string()
            && !caller.is_admin()
        {
            return Err(Error::forbidden("admin_required", "only admins may add keys for other users"));
        }
        if T::KIND == ObjectKind::Link
            && v.get("link_class").and_then(Value::as_str) == Some(super::persons::LINK_CLASS)
        {
            // A person link gives whoever claims the person read access to its tail: only the
            // attach endpoint, which checks write access to the object, may make one.
            return Err(Error::unprocessable(
                "person_link",
                "person links are made with POST /hearth/v1/persons/<uuid>/attach, which checks access to the object",
            ));
        }
        if T::KIND == ObjectKind::Link && v.get("link_class").and_then(Value::as_str) == Some("permission") {
            let head: ObjectUuid = v
                .get("head_uuid")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Error::unprocessable("invalid_uuid", "bad head_uuid"))?;
            if !self.exists(&head)? {
                return Err(Error::unprocessable("not_found", format!("head_uuid {head} not found")));
            }
            if !self.can_manage(caller, &head)? {
                return Err(Error::forbidden("permission_denied", "granting permission needs can_manage on head_uuid"));
            }
        }
        Ok(())
    }

    fn resolve_owner(&self, caller: &Caller, attrs: &Map<String, Value>, default: ObjectUuid) -> Result<ObjectUuid> {
        if caller.is_anonymous() {
            return self.anonymous_owner(caller, uuid_attr(attrs, "owner_uuid")?);
        }
        let owner = uuid_attr(attrs, "owner_uuid")?.unwrap_or(default);
        if !self.exists(&owner)? {
            return Err(Error::unprocessable("owner_not_found", format!("owner_uuid {owner} not found")));
        }
        if !self.can_write(caller, &owner)? {
            return Err(Error::forbidden("permission_denied", format!("cannot write to owner_uuid {owner}")));
        }
        Ok(owner)
    }

    /// `POST <resources>`.
    pub fn create_object<T: ApiObject>(&self, caller: &Caller, attrs: &Map<String, Value>) -> Result<Value> {
        self.create_object_with::<T>(caller, attrs, ObjectOptions::default())
    }

    /// `POST <resources>` with Arvados' options (`ensure_unique_name`).
    pub fn create_object_with<T: ApiObject>(
        &self,
        caller: &Caller,
        attrs: &Map<String, Value>,
        opts: ObjectOptions,
    ) -> Result<Value> {
        caller.require_active()?;
        check_attrs::<T>(attrs)?;
        let _w = self.write_lock()?;
        let owner = self.resolve_owner(caller, attrs, caller.uuid().clone())?;
        if caller.is_anonymous() {
            self.check_anonymous_create(caller, T::KIND)?;
        }
        let mut record = T::create(self.new_uuid(T::KIND), owner, self.clock().now(), caller.uuid().clone(), attrs)?;
        self.check_kind_rules(caller, &record)?;
        self.claim_name(caller, &mut record, opts.ensure_unique_name)?;
        let mut b = WriteBatch::new();
        b.put_object(None, &record)?;
        b.put_log(&self.audit(
            caller.actor(),
            "create",
            Some((record.uuid(), record.owner_uuid())),
            format!("created {} {}", T::RESOURCE, record.uuid()),
            json!({}),
        ))?;
        self.store().commit(b)?;
        Ok(record.view())
    }

    /// `GET <resources>/<uuid>`.
    pub fn get_object<T: ApiObject>(&self, caller: &Caller, uuid: &ObjectUuid) -> Result<Value> {
        self.get_object_with::<T>(caller, uuid, ObjectOptions::default())
    }

    /// `GET <resources>/<uuid>`; a trashed project (or what one holds) only with `include_trash`.
    pub fn get_object_with<T: ApiObject>(
        &self,
        caller: &Caller,
        uuid: &ObjectUuid,
        opts: ObjectOptions,
    ) -> Result<Value> {
        let record: T = self.store().object(uuid)?.ok_or_else(|| Self::not_found::<T>(uuid))?;
        if !self.can_read(caller, uuid)? && !self.visible_as_party(caller, &record)? {
            return Err(Self::not_found::<T>(uuid));
        }
        let trashed = self.in_trash(uuid)?;
        if trashed && !opts.include_trash {
            return Err(Self::not_found::<T>(uuid));
        }
        Ok(with_trash_state(record.view(), trashed))
    }

    /// A link or key is also visible to the user it is about (never to an anonymous session).
    fn visible_as_party<T: ApiObject>(&self, caller: &Caller, record: &T) -> Result<bool> {
        if caller.is_anonymous() {
            return Ok(false);
        }
        let v = record.view();
        let me = caller.uuid().to_string();
        Ok(["tail_uuid", "head_uuid", "authorized_user_uuid"]
            .iter()
            .any(|k| v.get(*k).and_then(Value::as_str) == Some(me.as_str())))
    }

    /// `GET <resources>`: everything the caller can read (for an anonymous session: what it owns).
    pub fn list_objects<T: ApiObject>(&self, caller: &Caller, params: &ListParams) -> Result<Value> {
        self.list_objects_with::<T>(caller, params, ObjectOptions::default())
    }

    /// `GET <resources>`; trashed projects and what they hold only with `include_trash`.
    pub fn list_objects_with<T: ApiObject>(
        &self,
        caller: &Caller,
        params: &ListParams,
        opts: ObjectOptions,
    ) -> Result<Value> {
        let store = self.store();
        // Every row shown asks whether anything is in the trash: one read of the counts.
        let _counts = store.count_snapshot();
        if caller.is_anonymous() {
            // What it owns, as the views show it.
            params.check_attributes::<T>(|| Ok(self.anonymous_owned::<T>(caller)?.first().map(ApiObject::view)))?;
            let plan = Plan { source: Candidates::Owned(caller.uuid().clone()), ordered: params.uuid_ordered() };
            let rows = store.candidate_rows::<T>(&plan.source)?.map(|r| r.map_err(Error::from));
            return params.list(T::LIST_KIND, &plan, rows, None, |_| Ok(Some(())), |r, ()| Ok(r.view()));
        }
        let visible = |r: &T| self.readable_trash_state(caller, r, opts);
        params.check_attributes::<T>(|| {
            for r in store.objects::<T>() {
                let r = r?;
                if let Some(trashed) = visible(&r)? {
                    return Ok(Some(with_trash_state(r.view(), trashed)));
                }
            }
            Ok(None)
        })?;
        let plan = params.plan::<T>();
        let everything =
            caller.is_admin() && params.filters.is_empty() && (opts.include_trash || store.trashed_groups() == 0);
        let known = match &plan.source {
            _ if everything => Some(usize::try_from(store.rows_in(T::ROWS_TREE)).unwrap_or(usize::MAX)),
            // One owner's rows (the one filter is the owner's): counted from the index when all are shown.
            Candidates::OwnerTime { owner, .. } if params.filters_only_owner(owner) => {
                self.owned_count_if_all_shown::<T>(caller, owner, opts)?
            }
            _ => None,
        };
        let rows = store.candidate_rows::<T>(&plan.source)?.map(|r| r.map_err(Error::from));
        params.list(T::LIST_KIND, &plan, rows, known, visible, |r, trashed| Ok(with_trash_state(r.view(), *trashed)))
    }

    /// How many of `owner`'s rows of kind `T` a list shows `caller`, counted without reading them,
    /// when it shows all of them: the caller reads everything `owner` holds, and none is hidden
    /// in the trash (nothing is in the trash, the trash is shown, or, for kinds other than groups,
    /// whose rows are in the trash only through their owner, `owner` is not in it). None otherwise.
    pub(crate) fn owned_count_if_all_shown<T: ApiObject>(
        &self,
        caller: &Caller,
        owner: &ObjectUuid,
        opts: ObjectOptions,
    ) -> Result<Option<usize>> {
        if !self.reads_all_owned_by(caller, owner)? {
            return Ok(None);
        }
        let store = self.store();
        let none_hidden = opts.include_trash
            || store.trashed_groups() == 0
            || (T::ROWS_KIND != ObjectKind::Group && !self.in_trash(owner)?);
        Ok(if none_hidden { Some(store.owned_count(T::ROWS_KIND, owner)?) } else { None })
    }

    /// Whether a list shows `r` to a caller that is not anonymous (it can read it, or it is about
    /// the caller) and, if so, whether it is in the trash (listed only with `include_trash`).
    pub(crate) fn readable_trash_state<T: ApiObject>(
        &self,
        caller: &Caller,
        r: &T,
        opts: ObjectOptions,
    ) -> Result<Option<bool>> {
        if caller.is_admin() || self.can_read(caller, r.uuid())? || self.visible_as_party(caller, r)? {
            let trashed = self.in_trash(r.uuid())?;
            if !trashed || opts.include_trash {
                return Ok(Some(trashed));
            }
        }
        Ok(None)
    }

    /// The views of every record of kind `T` the caller can read (trash as `opts` says).
    pub(crate) fn readable_views<T: ApiObject>(&self, caller: &Caller, opts: ObjectOptions) -> Result<Vec<Value>> {
        if caller.is_anonymous() {
            return Ok(self.anonymous_owned::<T>(caller)?.iter().map(ApiObject::view).collect());
        }
        let mut items = Vec::new();
        for r in self.store().objects::<T>() {
            let r = r?;
            if let Some(trashed) = self.readable_trash_state(caller, &r, opts)? {
                items.push(with_trash_state(r.view(), trashed));
            }
        }
        Ok(items)
    }

    /// `PUT <resources>/<uuid>`.
    pub fn update_object<T: ApiObject>(
        &self,
        caller: &Caller,
        uuid: &ObjectUuid,
        attrs: &Map<String, Value>,
    ) -> Result<Value> {
        caller.require_active()?;
        check_attrs::<T>(attrs)?;
        let _w = self.write_lock()?;
        let old: T = self.store().object(uuid)?.ok_or_else(|| Self::not_found::<T>(uuid))?;
        if !self.can_read(caller, uuid)? || self.in_trash(uuid)? {
            return Err(Self::not_found::<T>(uuid));
        }
        if !self.can_write(caller, uuid)? {
            return Err(Error::forbidden("permission_denied", format!("no write permission on {uuid}")));
        }
        let mut new = old.clone();
        new.apply(attrs)?;
        let owner = match uuid_attr(attrs, "owner_uuid")? {
            Some(o) if &o != old.owner_uuid() => {
                if !self.can_manage(caller, uuid)? {
                    return Err(Error::forbidden("permission_denied", "changing owner_uuid needs can_manage"));
                }
                if &o == uuid {
                    return Err(Error::unprocessable("owner_cycle", "an object cannot own itself"));
                }
                self.resolve_owner(caller, attrs, o)?
            }
            _ => old.owner_uuid().clone(),
        };
        new.stamp(owner, self.clock().now(), caller.uuid().clone());
        self.check_kind_rules(caller, &new)?;
        if new.unique_name() != old.unique_name() || new.owner_uuid() != old.owner_uuid() {
            self.claim_name(caller, &mut new, false)?;
        }
        let mut b = WriteBatch::new();
        b.put_object(Some(&old), &new)?;
        b.put_log(&self.audit(
            caller.actor(),
            "update",
            Some((new.uuid(), new.owner_uuid())),
            format!("updated {} {uuid}", T::RESOURCE),
            json!({}),
        ))?;
        self.store().commit(b)?;
        Ok(new.view())
    }

    /// `DELETE <resources>/<uuid>`. A group that still owns objects is refused.
    pub fn delete_object<T: ApiObject>(&self, caller: &Caller, uuid: &ObjectUuid) -> Result<Value> {
        caller.require_active()?;
        let _w = self.write_lock()?;
        let old: T = self.store().object(uuid)?.ok_or_else(|| Self::not_found::<T>(uuid))?;
        if !self.can_read(caller, uuid)? {
            return Err(Self::not_found::<T>(uuid));
        }
        if !self.can_write(caller, uuid)? {
            return Err(Error::forbidden("permission_denied", format!("no write permission on {uuid}")));
        }
        if T::KIND == ObjectKind::Group && self.store().owns_anything(uuid)? {
            return Err(Error::unprocessable("not_empty", "cannot delete a group that still owns objects"));
        }
        let mut b = WriteBatch::new();
        b.delete_object(&old);
        b.put_log(&self.audit(
            caller.actor(),
            "delete",
            Some((old.uuid(), old.owner_uuid())),
            format!("deleted {} {uuid}", T::RESOURCE),
            json!({}),
        ))?;
        self.store().commit(b)?;
        Ok(old.view())
    }

    /// Whether `uuid` is in the trash: it is a trashed group, or a group in its owner chain is.
    pub(crate) fn in_trash(&self, uuid: &ObjectUuid) -> Result<bool> {
        // Only groups are put in the trash (what they hold is in it through them): when none is,
        // nothing is, and there is no chain of owners to read.
        if self.store().trashed_groups() == 0 {
            return Ok(false);
        }
        let mut cur = uuid.clone();
        for _ in 0..super::permissions::MAX_CHAIN {
            let next = match cur.kind() {
                ObjectKind::User => return Ok(false),
                ObjectKind::Group => match self.store().object::<Group>(&cur)? {
                    Some(g) if g.trash_at.is_some() => return Ok(true),
                    Some(g) => g.owner_uuid,
                    None => return Ok(false),
                },
                _ => match self.owner_of(&cur)? {
                    Some(o) => o,
                    None => return Ok(false),
                },
            };
            if next == cur {
                return Ok(false);
            }
            cur = next;
        }
        Ok(false)
    }

    /// The group `uuid` for a change of its trash state: it exists, the caller sees it (trashed or
    /// not) and may write it.
    fn group_to_trash(&self, caller: &Caller, uuid: &ObjectUuid) -> Result<Group> {
        let g: Group = self.store().object(uuid)?.ok_or_else(|| Self::not_found::<Group>(uuid))?;
        if !self.can_read(caller, uuid)? {
            return Err(Self::not_found::<Group>(uuid));
        }
        if !self.can_write(caller, uuid)? {
            return Err(Error::forbidden("permission_denied", format!("no write permission on {uuid}")));
        }
        Ok(g)
    }

    fn commit_trash_change(&self, caller: &Caller, old: &Group, new: &Group, what: &str) -> Result<Value> {
        let mut b = WriteBatch::new();
        b.put_object(Some(old), new)?;
        b.put_log(&self.audit(
            caller.actor(),
            "update",
            Some((new.uuid(), new.owner_uuid())),
            format!("{what} group {}", new.uuid),
            json!({"trash_at": new.trash_at.map(crate::clock::format_time)}),
        ))?;
        self.store().commit(b)?;
        Ok(with_trash_state(new.view(), self.in_trash(&new.uuid)?))
    }

    /// `POST groups/<uuid>/trash`: the group and everything it holds disappear from gets and lists
    /// (unless `include_trash`) until it is untrashed. Trashing a trashed group changes nothing.
    /// Nothing is ever deleted on its own (`delete_at` stays null).
    pub fn trash_group(&self, caller: &Caller, uuid: &ObjectUuid) -> Result<Value> {
        caller.require_active()?;
        let _w = self.write_lock()?;
        let old = self.group_to_trash(caller, uuid)?;
        if old.trash_at.is_some() {
            return Ok(with_trash_state(old.view(), true));
        }
        let now = self.clock().now();
        let mut new = old.clone();
        new.trash_at = Some(now);
        new.stamp(old.owner_uuid.clone(), now, caller.uuid().clone());
        self.commit_trash_change(caller, &old, &new, "trashed")
    }

    /// `POST groups/<uuid>/untrash`: back out of the trash. A group that is not trashed itself is
    /// refused (422, as in Arvados); so is a name another group of its owner took meanwhile, unless
    /// `ensure_unique_name` (then it gets Arvados' free name).
    pub fn untrash_group(&self, caller: &Caller, uuid: &ObjectUuid, opts: ObjectOptions) -> Result<Value> {
        caller.require_active()?;
        let _w = self.write_lock()?;
        let old = self.group_to_trash(caller, uuid)?;
        if old.trash_at.is_none() {
            return Err(Error::unprocessable("not_trashed", "Item is not trashed, cannot untrash"));
        }
        let mut new = old.clone();
        new.trash_at = None;
        new.stamp(old.owner_uuid.clone(), self.clock().now(), caller.uuid().clone());
        self.claim_name(caller, &mut new, opts.ensure_unique_name)?;
        self.commit_trash_change(caller, &old, &new, "untrashed")
    }

    /// `GET logs` (admin): the audit log, filterable (e.g. `[["event_type","=","merge"]]`).
    pub fn list_logs(&self, caller: &Caller, params: &ListParams) -> Result<Value> {
        caller.require_admin()?;
        let mut items = Vec::new();
        for e in self.store().logs() {
            items.push(views::log(&e?));
        }
        params.apply("arvados#logList", items)
    }

    /// `GET logs/<uuid>` (admin).
    pub fn get_log(&self, caller: &Caller, uuid: &ObjectUuid) -> Result<Value> {
        caller.require_admin()?;
        let e =
            self.store().log(uuid)?.ok_or_else(|| Error::not_found("not_found", format!("log {uuid} not found")))?;
        Ok(views::log(&e))
    }
}
