//! The Arvados-shaped JSON view of each record: what clients see, and what list filters match on.
//!
//! Secrets and password hashes never appear here.

use super::listing::Listable;
use crate::clock::{arv_time, format_time};
use crate::store::records::{AuthorizedKey, Collection, Group, Identity, Link, LogEntry, TokenRow, User};
use federation_proto::{ClusterId, ObjectKind, ObjectUuid};
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

fn etag(v: &impl serde::Serialize) -> String {
    use sha2::{Digest, Sha256};
    /// Feeds the serialized record straight into the hash: no buffer to grow per request.
    struct Hashing(Sha256);
    impl std::io::Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut h = Hashing(Sha256::new());
    // Serializing a record into a hash cannot fail (the same records serialize into the store).
    let _ = serde_json::to_writer(&mut h, v);
    hex::encode(&h.0.finalize()[..12])
}

/// How many users' etags each thread remembers (see [`remembered_etag`]).
const REMEMBERED_ETAGS: usize = 8;

thread_local! {
    /// The last users whose etag this thread computed, each with it; the oldest is replaced.
    static ETAGS: std::cell::RefCell<(usize, Vec<(User, String)>)> = const { std::cell::RefCell::new((0, Vec::new())) };
}

/// [`etag`] of `u`, remembered for the last few users this thread answered about. The etag is a
/// function of the record's value alone, and a remembered one is used only for a record equal to
/// the one it was computed from, field by field (times compare as instants and serialize in UTC,
/// JSON values compare as they serialize): so a record changed in any way gets its new etag at
/// once. What is saved is serializing and hashing the record on every `users/current` (the
/// comparison costs a tenth of that).
fn remembered_etag(u: &User) -> String {
    ETAGS.with(|cell| {
        let Ok(mut memo) = cell.try_borrow_mut() else { return etag(u) };
        let (next, entries) = &mut *memo;
        if let Some((_, e)) = entries.iter().find(|(seen, _)| seen == u) {
            return e.clone();
        }
        let e = etag(u);
        if entries.len() < REMEMBERED_ETAGS {
            entries.push((u.clone(), e.clone()));
        } else {
            entries[*next] = (u.clone(), e.clone());
            *next = (*next + 1) % REMEMBERED_ETAGS;
        }
        e
    })
}

/// How many answers about one user each thread remembers (see [`remembered_answer`]).
const REMEMBERED_ANSWERS: usize = 8;

/// An answer about one user and everything it was rendered from.
struct RememberedAnswer {
    user: User,
    shows_managed_by: bool,
    identities: Option<Vec<Identity>>,
    bytes: Vec<u8>,
}

thread_local! {
    /// The last answers this thread rendered about one user (`users/current` above all).
    static ANSWERS: std::cell::RefCell<(usize, Vec<RememberedAnswer>)> = const { std::cell::RefCell::new((0, Vec::new())) };
}

/// The bytes `render` makes of a user's view, remembered for the last few answers this thread
/// gave. The view of one user is a function of its record, whether `managed_by` is shown, and the
/// identities shown with it (`None` when none are), so a remembered answer is used only when all
/// three are equal to what it was rendered from, field by field; equal records serialize to equal
/// bytes, for the reasons [`remembered_etag`] gives. What is saved is rendering the same record to
/// JSON on every `users/current` (the etag included); a changed record, a linked identity or a
/// caller who sees more is rendered anew.
pub fn remembered_answer<E>(
    u: &User,
    shows_managed_by: bool,
    identities: Option<Vec<Identity>>,
    render: impl FnOnce(Option<&[Identity]>) -> Result<Vec<u8>, E>,
) -> Result<Vec<u8>, E> {
    let found = ANSWERS.with(|cell| {
        let memo = cell.try_borrow().ok()?;
        memo.1
            .iter()
            .find(|a| a.shows_managed_by == shows_managed_by && a.identities == identities && &a.user == u)
            .map(|a| a.bytes.clone())
    });
    if let Some(bytes) = found {
        return Ok(bytes);
    }
    let bytes = render(identities.as_deref())?;
    ANSWERS.with(|cell| {
        let Ok(mut memo) = cell.try_borrow_mut() else { return };
        let (next, entries) = &mut *memo;
        let a = RememberedAnswer { user: u.clone(), shows_managed_by, identities, bytes: bytes.clone() };
        if entries.len() < REMEMBERED_ANSWERS {
            entries.push(a);
        } else {
            entries[*next] = a;
            *next = (*next + 1) % REMEMBERED_ANSWERS;
        }
    });
    Ok(bytes)
}

/// A user as the API shows it, as a struct that serializes straight to the answer's bytes:
/// `users/current`, the most frequent request there is, builds no JSON map. Fields are in
/// alphabetical order, so that the bytes are the same as those of [`user`]'s map (serde_json
/// keeps a map's keys sorted).
#[derive(Serialize)]
pub struct UserView<'a> {
    can_manage: bool,
    can_write: bool,
    #[serde(with = "arv_time")]
    created_at: OffsetDateTime,
    email: &'a Option<String>,
    email_verified: bool,
    etag: String,
    first_name: &'a str,
    full_name: String,
    home_cluster: &'a ClusterId,
    #[serde(skip_serializing_if = "Option::is_none")]
    identities: Option<Vec<Value>>,
    identity_url: Option<()>,
    is_active: bool,
    is_admin: bool,
    is_invited: bool,
    kind: &'static str,
    #[serde(with = "arv_time::option")]
    last_login_at: Option<OffsetDateTime>,
    last_name: &'a str,
    managed_by: Option<&'a ObjectUuid>,
    #[serde(with = "arv_time")]
    modified_at: OffsetDateTime,
    modified_by_client_uuid: Option<()>,
    modified_by_user_uuid: &'a Option<ObjectUuid>,
    orcid: &'a Option<String>,
    owner_uuid: &'a ObjectUuid,
    prefs: &'a Value,
    redirect_to_user_uuid: &'a Option<ObjectUuid>,
    username: Option<&'a str>,
    uuid: &'a ObjectUuid,
    writable_by: [&'a ObjectUuid; 2],
}

impl<'a> UserView<'a> {
    /// The view of `u`, with its `managed_by` shown and no identities.
    pub fn of(u: &'a User) -> UserView<'a> {
        UserView::with_etag(u, etag(u))
    }

    /// [`UserView::of`] for an answer about one user (`users/current` above all), whose etag is
    /// [remembered](remembered_etag) for the few users this thread answered about last. Lists,
    /// which show many users once each, use [`UserView::of`].
    pub fn of_one(u: &'a User) -> UserView<'a> {
        UserView::with_etag(u, remembered_etag(u))
    }

    fn with_etag(u: &'a User, etag: String) -> UserView<'a> {
        UserView {
            can_manage: true,
            can_write: true,
            created_at: u.created_at,
            email: &u.email,
            email_verified: u.email_verified,
            etag,
            first_name: &u.first_name,
            full_name: format!("{} {}", u.first_name, u.last_name).trim().to_string(),
            home_cluster: u.uuid.cluster(),
            identities: None,
            identity_url: None,
            is_active: u.is_active,
            is_admin: u.is_admin,
            is_invited: u.is_active || u.is_invited,
            kind: ObjectKind::User.arvados_kind(),
            last_login_at: u.last_login_at,
            last_name: &u.last_name,
            managed_by: u.managed_by.as_ref(),
            modified_at: u.modified_at,
            modified_by_client_uuid: None,
            modified_by_user_uuid: &u.modified_by_user_uuid,
            orcid: &u.orcid,
            owner_uuid: &u.owner_uuid,
            prefs: &u.prefs,
            redirect_to_user_uuid: &u.redirect_to_user_uuid,
            username: u.shown_username(),
            uuid: &u.uuid,
            writable_by: [&u.uuid, &u.owner_uuid],
        }
    }

    /// Shows `managed_by` as null (to those who may not see who manages a profile).
    pub fn hide_managed_by(mut self) -> Self {
        self.managed_by = None;
        self
    }

    /// Adds the user's linked identities.
    pub fn with_identities(mut self, identities: Vec<Value>) -> Self {
        self.identities = Some(identities);
        self
    }

    /// As a JSON value (for answers that add to it, and for list filters).
    pub fn to_value(&self) -> Value {
        // A struct of strings, booleans and JSON values always serializes.
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// A user as the API shows it.
pub fn user(u: &User) -> Value {
    UserView::of(u).to_value()
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use time::macros::datetime;

    fn everything_set() -> User {
        let uuid: ObjectUuid = "zzzzz-tpzed-000000000000001".parse().unwrap();
        let owner: ObjectUuid = "zzzzz-tpzed-000000000000000".parse().unwrap();
        User {
            modified_by_user_uuid: Some(owner.clone()),
            email: Some("a\"b@example.org".into()),
            email_verified: true,
            username: Some("alice".into()),
            first_name: "Alice".into(),
            last_name: "Ünïcode \\ \n".into(),
            is_active: true,
            prefs: json!({"profile": {"organization": "x"}, "z": [1, 2]}),
            redirect_to_user_uuid: Some(owner.clone()),
            password_hash: Some("$argon2id$v=19$...".into()),
            last_login_at: Some(datetime!(2024-05-06 07:08:09.123456789 UTC)),
            orcid: Some("0000-0002-1825-0097".into()),
            managed_by: Some(owner.clone()),
            ..User::new(uuid, owner, datetime!(2024-01-02 03:04:05 UTC))
        }
    }

    /// The fields as the view showed them when it was built as a `json!` map.
    fn as_a_map(u: &User) -> Value {
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
            "full_name": format!("{} {}", u.first_name, u.last_name).trim(),
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

    #[test]
    fn the_user_view_shows_what_the_map_showed_and_serializes_to_the_same_bytes() {
        let full = everything_set();
        let bare = User::new(full.uuid.clone(), full.owner_uuid.clone(), full.created_at);
        for u in [&full, &bare] {
            assert_eq!(user(u), as_a_map(u));
            // Serialized straight from the struct, the bytes are those of the (sorted) map: the
            // struct's fields are in alphabetical order.
            let direct = serde_json::to_vec(&UserView::of(u)).unwrap();
            assert_eq!(direct, serde_json::to_vec(&as_a_map(u)).unwrap());
            let mut with = as_a_map(u);
            with["identities"] = json!([{"provider": "orcid"}]);
            with["managed_by"] = Value::Null;
            let view = UserView::of(u).hide_managed_by().with_identities(vec![json!({"provider": "orcid"})]);
            assert_eq!(serde_json::to_vec(&view).unwrap(), serde_json::to_vec(&with).unwrap());
        }
    }

    #[test]
    fn the_etag_is_the_hash_of_the_serialized_record() {
        use sha2::{Digest, Sha256};
        let u = everything_set();
        let bytes = serde_json::to_vec(&u).unwrap();
        assert_eq!(etag(&u), hex::encode(&Sha256::digest(&bytes)[..12]));
    }

    #[test]
    fn a_remembered_etag_is_that_of_the_record_as_it_is_now() {
        let mut u = everything_set();
        assert_eq!(remembered_etag(&u), etag(&u));
        assert_eq!(remembered_etag(&u), etag(&u), "the same record: the remembered etag");
        // Any change, however small, is a new etag at once (and the old record keeps its own).
        let old = u.clone();
        u.is_active = false;
        assert_ne!(etag(&u), etag(&old));
        assert_eq!(remembered_etag(&u), etag(&u));
        u.prefs["z"] = json!([1, 2, 3]);
        assert_eq!(remembered_etag(&u), etag(&u));
        assert_eq!(remembered_etag(&old), etag(&old));
        // More users than are remembered: each still gets its own.
        let many: Vec<User> =
            (0..3 * REMEMBERED_ETAGS).map(|i| User { first_name: format!("n{i}"), ..u.clone() }).collect();
        for v in many.iter().chain(many.iter().rev()) {
            assert_eq!(remembered_etag(v), etag(v));
            assert_eq!(UserView::of_one(v).etag, UserView::of(v).etag);
        }
    }

    /// What [`remembered_answer`] answers is always what rendering the inputs as they are now
    /// gives: any change to the record, to whether `managed_by` shows, or to the identities
    /// renders anew; only equal inputs reuse bytes.
    #[test]
    fn a_remembered_answer_is_that_of_the_inputs_as_they_are_now() {
        let renders = std::cell::Cell::new(0);
        let answer = |u: &User, shows: bool, ids: Option<Vec<Identity>>| {
            remembered_answer(u, shows, ids, |ids| {
                renders.set(renders.get() + 1);
                let mut v = UserView::of(u);
                if !shows {
                    v = v.hide_managed_by();
                }
                if let Some(ids) = ids {
                    v = v.with_identities(ids.iter().map(|i| json!(i.subject)).collect());
                }
                serde_json::to_vec(&v).map_err(|e| e.to_string())
            })
            .unwrap()
        };
        let fresh = |u: &User, shows: bool, ids: Option<Vec<Identity>>| {
            let before = renders.get();
            let bytes = answer(u, shows, ids);
            (bytes, renders.get() > before)
        };
        let mut u = everything_set();
        let (first, rendered) = fresh(&u, true, None);
        assert!(rendered);
        assert_eq!(fresh(&u, true, None), (first.clone(), false), "equal inputs: the remembered bytes");
        let (hidden, rendered) = fresh(&u, false, None);
        assert!(rendered && hidden != first, "managed_by hidden is another answer");
        let identity = Identity {
            issuer: "https://id.example".into(),
            subject: "s1".into(),
            provider: "p".into(),
            user_uuid: u.uuid.clone(),
            orcid: false,
            claims: Default::default(),
            created_at: datetime!(2024-01-02 03:04:05 UTC),
            last_login_at: None,
        };
        let (with_id, rendered) = fresh(&u, true, Some(vec![identity.clone()]));
        assert!(rendered && with_id != first);
        let other = Identity { subject: "s2".into(), ..identity.clone() };
        let (with_other, rendered) = fresh(&u, true, Some(vec![other]));
        assert!(rendered && with_other != with_id, "another identity: rendered anew");
        assert!(fresh(&u, true, Some(vec![])).1, "no identities is not the same as none shown");
        u.last_name.push('x');
        let (changed, rendered) = fresh(&u, true, None);
        assert!(rendered && changed != first, "a changed record: rendered anew");
        // More inputs than are remembered: each still gets its own bytes.
        let many: Vec<User> =
            (0..3 * REMEMBERED_ANSWERS).map(|i| User { first_name: format!("n{i}"), ..u.clone() }).collect();
        for v in many.iter().chain(many.iter().rev()) {
            assert_eq!(answer(v, true, None), serde_json::to_vec(&UserView::of(v)).unwrap());
        }
    }
}
