//! The Arvados-shaped JSON view of each record: what clients see, and what list filters match on.
//!
//! Secrets and password hashes never appear here.

use super::listing::Listable;
use crate::clock::format_time;
use crate::store::records::{AuthorizedKey, Collection, Group, Link, LogEntry, TokenRow, User};
use federation_proto::ObjectKind;
use serde_json::{Value, json};

fn etag(v: &impl serde::Serialize) -> String {
    use sha2::{Digest, Sha256};
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    let d = Sha256::digest(&bytes);
    hex::encode(&d[..12])
}

/// A user as the API shows it.
pub fn user(u: &User) -> Value {
    let full_name = format!("{} {}", u.first_name, u.last_name).trim().to_string();
    json!({
        "kind": ObjectKind::User.arvados_kind(),
        "etag": etag(u),
        "uuid": u.uuid,
        "owner_uuid": u.owner_uuid,
        "created_at": format_time(u.created_at),
        "modified_at": format_time(u.modified_at),
        "modified_by_user_uuid": u.modified_by_user_uuid,
        "modified_by_client_uuid": null,
        "email": u.email,
        "email_verified": u.email_verified,
        "username": u.shown_username(),
        "first_name": u.first_name,
        "last_name": u.last_name,
        "full_name": full_name,
        "identity_url": null,
        "is_active": u.is_active,
        "is_admin": u.is_admin,
        "is_invited": u.is_active || u.is_invited,
        "prefs": u.prefs,
        "redirect_to_user_uuid": u.redirect_to_user_uuid,
        "last_login_at": u.last_login_at.map(format_time),
        "home_cluster": u.uuid.cluster(),
        "orcid": u.orcid,
        "managed_by": u.managed_by,
        "writable_by": [u.uuid, u.owner_uuid],
        "can_write": true,
        "can_manage": true,
    })
}

/// A token as the API shows it. `api_token` is the secret alone, as in Arvados, and only when the
/// caller holds it anyway (the answer that created the token, or `current` asked with it): Hearth
/// keeps no secret to show later, so lists and gets show `null`.
pub fn token(t: &TokenRow, api_token: Option<&str>) -> Value {
    json!({
        "kind": ObjectKind::Token.arvados_kind(),
        "etag": etag(t),
        "uuid": t.uuid,
        "owner_uuid": t.user_uuid,
        "user_uuid": t.user_uuid,
        "api_token": api_token,
        "scopes": t.scopes,
        "expires_at": t.expires_at.map(format_time),
        "refreshes_at": null,
        "created_at": format_time(t.created_at),
        "modified_at": format_time(t.modified_at),
        "created_by_ip_address": null,
        "last_used_at": null,
        "token_kind": t.kind,
    })
}

/// A group as the API shows it.
pub fn group(g: &Group) -> Value {
    json!({
        "kind": ObjectKind::Group.arvados_kind(),
        "etag": etag(g),
        "uuid": g.uuid,
        "owner_uuid": g.owner_uuid,
        "created_at": format_time(g.created_at),
        "modified_at": format_time(g.modified_at),
        "modified_by_user_uuid": g.modified_by_user_uuid,
        "name": g.name,
        "description": g.description,
        "group_class": g.group_class,
        "properties": g.properties,
        "trash_at": g.trash_at.map(format_time),
        "delete_at": null,
        "is_trashed": g.trash_at.is_some(),
        "writable_by": [g.owner_uuid],
        "can_write": true,
        "can_manage": true,
    })
}

/// A collection as the API shows it.
pub fn collection(c: &Collection) -> Value {
    json!({
        "kind": ObjectKind::Collection.arvados_kind(),
        "etag": etag(c),
        "uuid": c.uuid,
        "owner_uuid": c.owner_uuid,
        "created_at": format_time(c.created_at),
        "modified_at": format_time(c.modified_at),
        "modified_by_user_uuid": c.modified_by_user_uuid,
        "name": c.name,
        "description": c.description,
        "properties": c.properties,
        "manifest_text": c.manifest_text,
        "portable_data_hash": portable_data_hash(&c.manifest_text),
        "trash_at": null,
        "is_trashed": false,
    })
}

/// Arvados' content address of a manifest: md5 of the text, `+` its length.
fn portable_data_hash(manifest: &str) -> String {
    // Not md5 (no md5 crate in the set): a sha256 prefix marks it as Hearth's own, still content-addressed.
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(manifest.as_bytes());
    format!("{}+{}", hex::encode(&d[..16]), manifest.len())
}

/// A link as the API shows it.
pub fn link(l: &Link) -> Value {
    json!({
        "kind": ObjectKind::Link.arvados_kind(),
        "etag": etag(l),
        "uuid": l.uuid,
        "owner_uuid": l.owner_uuid,
        "created_at": format_time(l.created_at),
        "modified_at": format_time(l.modified_at),
        "modified_by_user_uuid": l.modified_by_user_uuid,
        "link_class": l.link_class,
        "name": l.name,
        "head_uuid": l.head_uuid,
        "head_kind": l.head_uuid.kind().arvados_kind(),
        "tail_uuid": l.tail_uuid,
        "tail_kind": l.tail_uuid.kind().arvados_kind(),
        "properties": l.properties,
    })
}

/// An SSH key as the API shows it.
pub fn authorized_key(k: &AuthorizedKey) -> Value {
    json!({
        "kind": ObjectKind::AuthorizedKey.arvados_kind(),
        "etag": etag(k),
        "uuid": k.uuid,
        "owner_uuid": k.owner_uuid,
        "created_at": format_time(k.created_at),
        "modified_at": format_time(k.modified_at),
        "modified_by_user_uuid": k.modified_by_user_uuid,
        "name": k.name,
        "key_type": k.key_type,
        "public_key": k.public_key,
        "authorized_user_uuid": k.authorized_user_uuid,
        "expires_at": null,
    })
}

/// An audit entry as the API shows it.
pub fn log(e: &LogEntry) -> Value {
    json!({
        "kind": ObjectKind::Log.arvados_kind(),
        "etag": etag(e),
        "uuid": e.uuid,
        "owner_uuid": e.owner_uuid,
        "created_at": format_time(e.created_at),
        "modified_at": format_time(e.created_at),
        "modified_by_user_uuid": e.modified_by_user_uuid,
        "acting_parent_uuid": e.acting_parent_uuid,
        "object_uuid": e.object_uuid,
        "object_owner_uuid": e.object_owner_uuid,
        "object_kind": e.object_uuid.as_ref().map(|u| u.kind().arvados_kind()),
        "event_type": e.event_type,
        "event_at": format_time(e.event_at),
        "summary": e.summary,
        "properties": e.properties,
    })
}

/// The view values every kind shares, for [`Listable::cheap`]: `None` for other attributes.
fn common_cheap<T: crate::store::scan::Listed>(
    r: &T,
    owner: &federation_proto::ObjectUuid,
    attr: &str,
) -> Option<Value> {
    use crate::store::scan::TimeField;
    Some(match attr {
        "kind" => json!(T::ROWS_KIND.arvados_kind()),
        "uuid" => json!(r.list_uuid()),
        "owner_uuid" => json!(owner),
        "created_at" => json!(format_time(r.time(TimeField::Created))),
        "modified_at" => json!(format_time(r.time(TimeField::Modified))),
        _ => return None,
    })
}

/// The attributes [`common_cheap`] gives.
macro_rules! cheap_attrs {
    ($($a:literal),*) => { &["kind", "uuid", "owner_uuid", "created_at", "modified_at", $($a),*] };
}

// What a list filters and sorts on without rendering a view: the same values the views above show.
impl Listable for User {
    const CHEAP: &'static [&'static str] = cheap_attrs!("email", "username");
    const USER_INDEXES: bool = true;
    fn cheap(&self, attr: &str) -> Value {
        common_cheap(self, &self.owner_uuid, attr).unwrap_or_else(|| match attr {
            "email" => json!(self.email),
            "username" => json!(self.shown_username()),
            _ => Value::Null,
        })
    }
}

impl Listable for Group {
    const CHEAP: &'static [&'static str] = cheap_attrs!("name", "group_class");
    const OWNER_INDEX: bool = true;
    fn cheap(&self, attr: &str) -> Value {
        common_cheap(self, &self.owner_uuid, attr).unwrap_or_else(|| match attr {
            "name" => json!(self.name),
            "group_class" => json!(self.group_class),
            _ => Value::Null,
        })
    }
}

impl Listable for Collection {
    const CHEAP: &'static [&'static str] = cheap_attrs!("name");
    const OWNER_INDEX: bool = true;
    fn cheap(&self, attr: &str) -> Value {
        common_cheap(self, &self.owner_uuid, attr).unwrap_or_else(|| match attr {
            "name" => json!(self.name),
            _ => Value::Null,
        })
    }
}

impl Listable for Link {
    const CHEAP: &'static [&'static str] = cheap_attrs!("name", "link_class", "head_uuid", "tail_uuid");
    const OWNER_INDEX: bool = true;
    const LINK_INDEXES: bool = true;
    fn cheap(&self, attr: &str) -> Value {
        common_cheap(self, &self.owner_uuid, attr).unwrap_or_else(|| match attr {
            "name" => json!(self.name),
            "link_class" => json!(self.link_class),
            "head_uuid" => json!(self.head_uuid),
            "tail_uuid" => json!(self.tail_uuid),
            _ => Value::Null,
        })
    }
}

impl Listable for AuthorizedKey {
    const CHEAP: &'static [&'static str] = cheap_attrs!("name", "authorized_user_uuid");
    const OWNER_INDEX: bool = true;
    fn cheap(&self, attr: &str) -> Value {
        common_cheap(self, &self.owner_uuid, attr).unwrap_or_else(|| match attr {
            "name" => json!(self.name),
            "authorized_user_uuid" => json!(self.authorized_user_uuid),
            _ => Value::Null,
        })
    }
}
