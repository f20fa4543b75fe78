//! Notices: what a home cluster pushes to its peers about its own users, and the batches they travel in.
//!
//! A cluster only ever speaks about its own users (the uuid prefix of every user named is the origin), and
//! every notice carries the user's home record with a home sequence number (`home_seq`, increasing with
//! every change at home) so that receivers can keep the highest one per user and ignore replays and
//! reordering. Notices travel as a [`NoticeBatch`] in the body of a signed request
//! (`POST /federation/v1/notices`); the request signature authenticates the batch and
//! [`NoticeBatch::check`] ties its contents to the authenticated origin.

use serde::{Deserialize, Serialize};

use crate::canonical::{MAX_SAFE_INTEGER, to_canonical_string};
use crate::cluster::ClusterId;
use crate::error::ProtoError;
use crate::uuid::{ObjectKind, ObjectUuid};

/// Most notices one batch may carry. A receiver applies a batch in one store commit (one disk
/// sync), so the batch size is what bounds how many notices a receiver applies per second.
pub const MAX_NOTICES_PER_BATCH: usize = 1000;
/// Most bytes of notices (their JSON) a sender puts in one batch, whatever their number; a batch
/// holds at least one notice. Well under the receivers' 4 MiB request bound (one notice with 100
/// profiles at their bounds is about 200 KiB).
pub const MAX_BATCH_NOTICE_BYTES: usize = 1 << 20;
/// Longest text field (email, names, username, timestamp) accepted in a user record, in bytes.
pub const MAX_FIELD_LEN: usize = 512;
/// Most managed profiles one user record may list.
pub const MAX_PROFILES: usize = 100;

/// A managed profile as its parent's home record lists it: a user of the same home cluster, with no
/// email and no credentials of its own, that only the parent may act as (DESIGN §4.8). A peer learns
/// which profiles a user manages from this list alone, so a profile dropped from the list (deleted or
/// handed over at home) stops being the parent's to act as there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileRecord {
    /// The profile's uuid (a user of the parent's home cluster).
    pub uuid: ObjectUuid,
    /// First name (may be empty).
    #[serde(default)]
    pub first_name: String,
    /// Last name (may be empty).
    #[serde(default)]
    pub last_name: String,
    /// Username, if any.
    #[serde(default)]
    pub username: Option<String>,
}

/// A user's record as its home cluster publishes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The user's uuid; its prefix is the home cluster.
    pub uuid: ObjectUuid,
    /// Email address (may be empty).
    #[serde(default)]
    pub email: String,
    /// Whether the home cluster has verified the email.
    #[serde(default)]
    pub email_verified: bool,
    /// Username, if any.
    #[serde(default)]
    pub username: Option<String>,
    /// First name (may be empty).
    #[serde(default)]
    pub first_name: String,
    /// Last name (may be empty).
    #[serde(default)]
    pub last_name: String,
    /// Whether the account is active at home.
    pub is_active: bool,
    /// Set when the account was merged into another one.
    #[serde(default)]
    pub redirect_to_user_uuid: Option<ObjectUuid>,
    /// Last login at home, as the home cluster formats timestamps (RFC 3339).
    #[serde(default)]
    pub last_login_at: Option<String>,
    /// The home sequence number of this version of the record (at most 2^53 − 1).
    pub home_seq: u64,
    /// The person's ORCID iD (`0000-0002-1825-0097`), when the home cluster learned it from an
    /// ORCID (or ORCID-flagged OpenID Connect) login. Absent from the JSON when unknown, so that
    /// records without one are the same bytes as before the field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcid: Option<String>,
    /// The managed profiles of this user, sorted by uuid (at most [`MAX_PROFILES`]). Absent on the wire
    /// when empty, so a record without profiles is byte for byte what older clusters sign and send, and
    /// their records (which never carry it) parse as "no profiles".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<ProfileRecord>,
}

impl UserRecord {
    /// `first_name last_name`, trimmed, as Arvados computes `full_name`.
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name).trim().to_owned()
    }

    /// Checks the record may be asserted by `home`: a user uuid whose cluster is `home`, a user uuid as
    /// redirect target (if any), bounded text fields, and a `home_seq` that canonical JSON can carry.
    pub fn check_home(&self, home: &ClusterId) -> Result<(), ProtoError> {
        check_user_uuid(&self.uuid, "user.uuid")?;
        if self.uuid.cluster() != home {
            return Err(ProtoError::mismatch("user.uuid", home, self.uuid.cluster()));
        }
        if let Some(r) = &self.redirect_to_user_uuid {
            check_user_uuid(r, "user.redirect_to_user_uuid")?;
            if r == &self.uuid {
                return Err(ProtoError::Refused("a user cannot redirect to itself".into()));
            }
        }
        let texts = [
            Some(&self.email),
            self.username.as_ref(),
            Some(&self.first_name),
            Some(&self.last_name),
            self.last_login_at.as_ref(),
            self.orcid.as_ref(),
        ];
        if texts.into_iter().flatten().any(|t| t.len() > MAX_FIELD_LEN) {
            return Err(ProtoError::Refused(format!("a user record field is longer than {MAX_FIELD_LEN} bytes")));
        }
        self.check_profiles(home)?;
        if self.home_seq > MAX_SAFE_INTEGER.unsigned_abs() {
            return Err(ProtoError::NotCanonical("home_seq exceeds 2^53-1".into()));
        }
        Ok(())
    }
}

impl UserRecord {
    /// The profile list's rules: at most [`MAX_PROFILES`], each a user of `home` other than the record's
    /// own user, listed once, in uuid order, with bounded text fields.
    fn check_profiles(&self, home: &ClusterId) -> Result<(), ProtoError> {
        if self.profiles.len() > MAX_PROFILES {
            return Err(ProtoError::Refused(format!(
                "a user record lists {} profiles; at most {MAX_PROFILES}",
                self.profiles.len()
            )));
        }
        for (i, p) in self.profiles.iter().enumerate() {
            check_user_uuid(&p.uuid, "user.profiles.uuid")?;
            if p.uuid.cluster() != home {
                return Err(ProtoError::mismatch("user.profiles.uuid", home, p.uuid.cluster()));
            }
            if p.uuid == self.uuid {
                return Err(ProtoError::Refused("a user cannot be its own managed profile".into()));
            }
            if i > 0 && self.profiles[i - 1].uuid >= p.uuid {
                return Err(ProtoError::Refused("user.profiles must be sorted by uuid, each listed once".into()));
            }
            let texts = [Some(&p.first_name), Some(&p.last_name), p.username.as_ref()];
            if texts.into_iter().flatten().any(|t| t.len() > MAX_FIELD_LEN) {
                return Err(ProtoError::Refused(format!("a profile field is longer than {MAX_FIELD_LEN} bytes")));
            }
        }
        Ok(())
    }
}

fn check_user_uuid(uuid: &ObjectUuid, field: &str) -> Result<(), ProtoError> {
    if uuid.kind() != ObjectKind::User {
        return Err(ProtoError::Refused(format!("{field} is not a user uuid")));
    }
    Ok(())
}

/// One notice about a user of the origin cluster. JSON: an object with `"type"` set to `login`,
/// `user_updated`, `user_redirected` or `token_revoked`.
///
/// Written as serde's internally tagged enum; read through [`NoticeWire`], one flat object, which is
/// the same JSON without serde buffering every notice of a batch (its `Content`) to find the tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "NoticeWire")]
pub enum Notice {
    /// The user logged in at home; `user` is the home record.
    Login {
        /// The home record.
        user: UserRecord,
    },
    /// The user's record changed at home.
    UserUpdated {
        /// The home record.
        user: UserRecord,
    },
    /// The user was merged into another account (`user.redirect_to_user_uuid` is set).
    UserRedirected {
        /// The home record, with the redirect.
        user: UserRecord,
    },
    /// One of the user's tokens was revoked: receivers drop any cached validation of it at once,
    /// whatever the sequence number.
    TokenRevoked {
        /// The home record at the time of revocation.
        user: UserRecord,
        /// The revoked token (issued by the origin).
        token_uuid: ObjectUuid,
    },
}

/// The notice types, as `"type"` names them.
#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum NoticeType {
    Login,
    UserUpdated,
    UserRedirected,
    TokenRevoked,
}

/// A notice as it is read: the tag, the user record, and `token_uuid` (read as any JSON, and decoded
/// only for `token_revoked`: the other types ignore it, as they ignore any unknown field).
#[derive(Deserialize)]
struct NoticeWire {
    #[serde(rename = "type")]
    kind: NoticeType,
    user: UserRecord,
    #[serde(default)]
    token_uuid: Option<serde_json::Value>,
}

impl TryFrom<NoticeWire> for Notice {
    type Error = String;

    fn try_from(w: NoticeWire) -> Result<Notice, String> {
        let user = w.user;
        Ok(match w.kind {
            NoticeType::Login => Notice::Login { user },
            NoticeType::UserUpdated => Notice::UserUpdated { user },
            NoticeType::UserRedirected => Notice::UserRedirected { user },
            NoticeType::TokenRevoked => {
                let t = w.token_uuid.ok_or("missing field `token_uuid`")?;
                Notice::TokenRevoked { user, token_uuid: serde_json::from_value(t).map_err(|e| e.to_string())? }
            }
        })
    }
}

impl Notice {
    /// The user the notice is about.
    pub fn user(&self) -> &UserRecord {
        match self {
            Notice::Login { user }
            | Notice::UserUpdated { user }
            | Notice::UserRedirected { user }
            | Notice::TokenRevoked { user, .. } => user,
        }
    }

    /// The notice's home sequence number (its user record's).
    pub fn home_seq(&self) -> u64 {
        self.user().home_seq
    }

    /// The wire name of the notice type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Notice::Login { .. } => "login",
            Notice::UserUpdated { .. } => "user_updated",
            Notice::UserRedirected { .. } => "user_redirected",
            Notice::TokenRevoked { .. } => "token_revoked",
        }
    }

    /// Checks the notice may come from `origin`: it is about one of `origin`'s users (and tokens), and
    /// a redirect notice names a redirect target.
    pub fn check(&self, origin: &ClusterId) -> Result<(), ProtoError> {
        self.user().check_home(origin)?;
        match self {
            Notice::UserRedirected { user } if user.redirect_to_user_uuid.is_none() => {
                Err(ProtoError::Refused("user_redirected without redirect_to_user_uuid".into()))
            }
            Notice::TokenRevoked { token_uuid, .. } => {
                if token_uuid.kind() != ObjectKind::Token {
                    return Err(ProtoError::Refused("token_uuid is not a token uuid".into()));
                }
                if token_uuid.cluster() != origin {
                    return Err(ProtoError::mismatch("token_uuid", origin, token_uuid.cluster()));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// A batch of notices from `origin` to `destination`: the body of `POST /federation/v1/notices`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeBatch {
    /// The sending cluster (must equal the request's authenticated origin).
    pub origin: ClusterId,
    /// The receiving cluster.
    pub destination: ClusterId,
    /// The notices, oldest first.
    pub notices: Vec<Notice>,
}

impl NoticeBatch {
    /// The batch id: lowercase hex SHA-256 of the canonical JSON of `notices`. The same notices give the
    /// same id, so a receiver can answer a retried batch as it answered the first time.
    pub fn batch_id(&self) -> Result<String, ProtoError> {
        use sha2::{Digest, Sha256};
        let canonical = to_canonical_string(&self.notices)?;
        Ok(hex::encode(Sha256::digest(canonical.as_bytes())))
    }

    /// The JSON of a batch (what `serde_json::to_vec` of the [`NoticeBatch`] parses back to) from the
    /// JSON of its notices, each as `serde_json` wrote a [`Notice`]: a sender that keeps its queued
    /// notices as JSON sends them without decoding and encoding each one again.
    pub fn body_from_notice_json<'a>(
        origin: &ClusterId,
        destination: &ClusterId,
        notices: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Vec<u8>, ProtoError> {
        let mut out = Vec::with_capacity(64 * 1024);
        out.extend_from_slice(b"{\"origin\":");
        serde_json::to_writer(&mut out, origin)?;
        out.extend_from_slice(b",\"destination\":");
        serde_json::to_writer(&mut out, destination)?;
        out.extend_from_slice(b",\"notices\":[");
        for (i, n) in notices.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(n);
        }
        out.extend_from_slice(b"]}");
        Ok(out)
    }

    /// Checks a received batch against the request's authenticated origin and this cluster (`me`):
    /// `origin` and `destination` match, 1 to [`MAX_NOTICES_PER_BATCH`] notices, and every notice passes [`Notice::check`].
    pub fn check(&self, authenticated_origin: &ClusterId, me: &ClusterId) -> Result<(), ProtoError> {
        if &self.origin != authenticated_origin {
            return Err(ProtoError::mismatch("origin", authenticated_origin, &self.origin));
        }
        if &self.destination != me {
            return Err(ProtoError::mismatch("destination", me, &self.destination));
        }
        if self.notices.is_empty() || self.notices.len() > MAX_NOTICES_PER_BATCH {
            return Err(ProtoError::Refused(format!(
                "a batch carries 1 to {MAX_NOTICES_PER_BATCH} notices, not {}",
                self.notices.len()
            )));
        }
        self.notices.iter().try_for_each(|n| n.check(&self.origin))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn cid(s: &str) -> ClusterId {
        s.parse().unwrap()
    }

    pub(crate) fn user(uuid: &str, seq: u64) -> UserRecord {
        UserRecord {
            uuid: uuid.parse().unwrap(),
            email: "alice@example.org".into(),
            email_verified: true,
            username: Some("alice".into()),
            first_name: "Alice".into(),
            last_name: "Liddell".into(),
            is_active: true,
            redirect_to_user_uuid: None,
            last_login_at: Some("2025-01-02T03:04:05Z".into()),
            home_seq: seq,
            orcid: None,
            profiles: Vec::new(),
        }
    }

    fn profile(uuid: &str, first: &str) -> ProfileRecord {
        ProfileRecord {
            uuid: uuid.parse().unwrap(),
            first_name: first.into(),
            last_name: "Liddell".into(),
            username: None,
        }
    }

    /// Profiles travel in the user record; a record without them is what older clusters sign and send
    /// (the field is absent, not empty), and their records parse as having none.
    #[test]
    fn profiles_in_the_record_and_older_records() {
        let plain = user("aaaaa-tpzed-000000000000001", 3);
        let v = serde_json::to_value(&plain).unwrap();
        assert!(v.get("profiles").is_none(), "no profiles field when there are none: {v}");
        let old_wire = json!({"uuid": "aaaaa-tpzed-000000000000001", "email": "alice@example.org",
            "email_verified": true, "username": "alice", "first_name": "Alice", "last_name": "Liddell",
            "is_active": true, "redirect_to_user_uuid": null, "last_login_at": "2025-01-02T03:04:05Z", "home_seq": 3});
        assert_eq!(serde_json::from_value::<UserRecord>(old_wire.clone()).unwrap(), plain);
        assert_eq!(to_canonical_string(&plain).unwrap(), to_canonical_string(&old_wire).unwrap());

        let mut parent = plain.clone();
        parent.profiles =
            vec![profile("aaaaa-tpzed-00000000000000a", "Kit"), profile("aaaaa-tpzed-00000000000000b", "Lou")];
        let v = serde_json::to_value(&parent).unwrap();
        assert_eq!(v["profiles"][0]["uuid"], "aaaaa-tpzed-00000000000000a");
        assert_eq!(v["profiles"][1]["first_name"], "Lou");
        assert_eq!(serde_json::from_value::<UserRecord>(v).unwrap(), parent);
        assert!(parent.check_home(&cid("aaaaa")).is_ok());
        let n = Notice::UserUpdated { user: parent.clone() };
        assert!(batch(vec![n]).check(&cid("aaaaa"), &cid("bbbbb")).is_ok());

        // Another cluster's user, the parent itself, a non-user, repeats, disorder, too many, too long.
        let cases: Vec<(&str, Vec<ProfileRecord>)> = vec![
            ("foreign", vec![profile("ccccc-tpzed-00000000000000a", "Kit")]),
            ("self", vec![profile("aaaaa-tpzed-000000000000001", "Alice")]),
            ("not a user", vec![profile("aaaaa-j7d0g-00000000000000a", "Kit")]),
            (
                "twice",
                vec![profile("aaaaa-tpzed-00000000000000a", "Kit"), profile("aaaaa-tpzed-00000000000000a", "Kit")],
            ),
            (
                "unsorted",
                vec![profile("aaaaa-tpzed-00000000000000b", "Lou"), profile("aaaaa-tpzed-00000000000000a", "Kit")],
            ),
            ("too many", (0..=MAX_PROFILES).map(|i| profile(&format!("aaaaa-tpzed-{i:015}"), "P")).collect()),
            ("too long", vec![profile("aaaaa-tpzed-00000000000000a", &"k".repeat(MAX_FIELD_LEN + 1))]),
        ];
        for (case, profiles) in cases {
            let mut bad = plain.clone();
            bad.profiles = profiles;
            assert!(bad.check_home(&cid("aaaaa")).is_err(), "{case}");
            assert!(batch(vec![Notice::Login { user: bad }]).check(&cid("aaaaa"), &cid("bbbbb")).is_err(), "{case}");
        }
    }

    fn batch(notices: Vec<Notice>) -> NoticeBatch {
        NoticeBatch { origin: cid("aaaaa"), destination: cid("bbbbb"), notices }
    }

    #[test]
    fn wire_form() {
        let n = Notice::Login { user: user("aaaaa-tpzed-000000000000001", 3) };
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["type"], "login");
        assert_eq!(v["user"]["uuid"], "aaaaa-tpzed-000000000000001");
        assert_eq!(v["user"]["home_seq"], 3);
        assert_eq!(serde_json::from_value::<Notice>(v).unwrap(), n);
        let revoked = json!({"type": "token_revoked", "token_uuid": "aaaaa-gj3su-000000000000009",
                             "user": {"uuid": "aaaaa-tpzed-000000000000001", "is_active": true, "home_seq": 4}});
        let n: Notice = serde_json::from_value(revoked).unwrap();
        assert_eq!(n.type_name(), "token_revoked");
        assert_eq!(n.home_seq(), 4);
        assert!(n.check(&cid("aaaaa")).is_ok());
        assert!(serde_json::from_value::<Notice>(json!({"type": "nope"})).is_err());
        assert_eq!(user("aaaaa-tpzed-000000000000001", 0).full_name(), "Alice Liddell");
    }

    #[test]
    fn batch_checks() {
        let a = cid("aaaaa");
        let b = cid("bbbbb");
        let ok = batch(vec![Notice::UserUpdated { user: user("aaaaa-tpzed-000000000000001", 1) }]);
        assert!(ok.check(&a, &b).is_ok());
        assert_eq!(ok.check(&cid("ccccc"), &b).unwrap_err().code(), "cluster_mismatch");
        assert_eq!(ok.check(&a, &cid("ccccc")).unwrap_err().code(), "cluster_mismatch");
        assert_eq!(batch(vec![]).check(&a, &b).unwrap_err().code(), "refused");
        let many = batch(vec![ok.notices[0].clone(); MAX_NOTICES_PER_BATCH + 1]);
        assert_eq!(many.check(&a, &b).unwrap_err().code(), "refused");
        assert!(batch(vec![ok.notices[0].clone(); MAX_NOTICES_PER_BATCH]).check(&a, &b).is_ok());

        // Speaking about another cluster's user.
        let foreign = batch(vec![Notice::Login { user: user("ccccc-tpzed-000000000000001", 1) }]);
        assert_eq!(foreign.check(&a, &b).unwrap_err().code(), "cluster_mismatch");
        // A non-user uuid as the user.
        let not_user = batch(vec![Notice::Login { user: user("aaaaa-j7d0g-000000000000001", 1) }]);
        assert_eq!(not_user.check(&a, &b).unwrap_err().code(), "refused");
        // Redirect notice without a redirect.
        let r = batch(vec![Notice::UserRedirected { user: user("aaaaa-tpzed-000000000000001", 1) }]);
        assert!(r.check(&a, &b).is_err());
        let mut u = user("aaaaa-tpzed-000000000000001", 2);
        u.redirect_to_user_uuid = Some("ccccc-tpzed-000000000000002".parse().unwrap());
        assert!(batch(vec![Notice::UserRedirected { user: u.clone() }]).check(&a, &b).is_ok());
        u.redirect_to_user_uuid = Some(u.uuid.clone());
        assert!(batch(vec![Notice::UserRedirected { user: u }]).check(&a, &b).is_err());
        // Revoking another cluster's token, or a non-token.
        for t in ["ccccc-gj3su-000000000000009", "aaaaa-tpzed-000000000000009"] {
            let n =
                Notice::TokenRevoked { user: user("aaaaa-tpzed-000000000000001", 1), token_uuid: t.parse().unwrap() };
            assert!(batch(vec![n]).check(&a, &b).is_err(), "{t}");
        }
        // Oversized fields and sequence numbers.
        let mut u = user("aaaaa-tpzed-000000000000001", 1);
        u.email = "x".repeat(MAX_FIELD_LEN + 1);
        assert!(batch(vec![Notice::Login { user: u }]).check(&a, &b).is_err());
        let u = user("aaaaa-tpzed-000000000000001", 1 << 53);
        assert!(batch(vec![Notice::Login { user: u }]).check(&a, &b).is_err());
    }

    #[test]
    fn batch_id_depends_only_on_notices() {
        let n1 = Notice::Login { user: user("aaaaa-tpzed-000000000000001", 1) };
        let n2 = Notice::Login { user: user("aaaaa-tpzed-000000000000001", 2) };
        let id = batch(vec![n1.clone()]).batch_id().unwrap();
        assert_eq!(id.len(), 64);
        let mut other = batch(vec![n1.clone()]);
        other.destination = cid("ccccc");
        assert_eq!(other.batch_id().unwrap(), id);
        assert_ne!(batch(vec![n2.clone()]).batch_id().unwrap(), id);
        assert_ne!(batch(vec![n1.clone(), n2.clone()]).batch_id().unwrap(), batch(vec![n2, n1]).batch_id().unwrap());
        // Stable through a JSON round trip.
        let text = serde_json::to_string(&batch(vec![Notice::Login { user: user("aaaaa-tpzed-000000000000001", 1) }]))
            .unwrap();
        let back: NoticeBatch = serde_json::from_str(&text).unwrap();
        assert_eq!(back.batch_id().unwrap(), id);
    }

    /// A batch body spliced from the notices' own JSON is the batch `serde_json` writes.
    #[test]
    fn body_from_notice_json_is_the_batch() {
        let mut u = user("aaaaa-tpzed-000000000000001", 2);
        u.first_name = "A \"quoted\" name\n".into();
        let b = batch(vec![
            Notice::Login { user: user("aaaaa-tpzed-000000000000001", 1) },
            Notice::TokenRevoked { user: u, token_uuid: "aaaaa-gj3su-000000000000009".parse().unwrap() },
        ]);
        let notices: Vec<Vec<u8>> = b.notices.iter().map(|n| serde_json::to_vec(n).unwrap()).collect();
        let body =
            NoticeBatch::body_from_notice_json(&b.origin, &b.destination, notices.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(body, serde_json::to_vec(&b).unwrap());
        assert_eq!(serde_json::from_slice::<NoticeBatch>(&body).unwrap(), b);
    }

    /// The flat reading of a notice accepts and refuses what serde's internally tagged enum does.
    #[test]
    fn notice_reading_matches_the_tagged_enum() {
        #[derive(Debug, PartialEq, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        #[allow(dead_code)]
        enum Tagged {
            Login { user: UserRecord },
            UserUpdated { user: UserRecord },
            UserRedirected { user: UserRecord },
            TokenRevoked { user: UserRecord, token_uuid: ObjectUuid },
        }
        let u = json!({"uuid": "aaaaa-tpzed-000000000000001", "is_active": true, "home_seq": 4});
        let cases = [
            json!({"type": "login", "user": u}),
            json!({"user": u, "type": "user_updated", "extra": [1, {"x": 2}]}),
            json!({"type": "user_redirected", "user": u, "token_uuid": "not even a uuid"}),
            json!({"type": "token_revoked", "user": u, "token_uuid": "aaaaa-gj3su-000000000000009"}),
            json!({"type": "token_revoked", "token_uuid": "aaaaa-gj3su-000000000000009", "user": u}),
            json!({"type": "token_revoked", "user": u}),
            json!({"type": "token_revoked", "user": u, "token_uuid": null}),
            json!({"type": "token_revoked", "user": u, "token_uuid": 7}),
            json!({"type": "nope", "user": u}),
            json!({"user": u}),
            json!({"type": "login"}),
            json!({"type": "login", "user": {"uuid": "aaaaa-tpzed-000000000000001"}}),
            json!({"type": 1, "user": u}),
            json!([]),
        ];
        for c in cases {
            let old = serde_json::from_value::<Tagged>(c.clone());
            let new = serde_json::from_value::<Notice>(c.clone());
            assert_eq!(old.is_ok(), new.is_ok(), "{c}: {old:?} / {new:?}");
            if let (Ok(o), Ok(n)) = (old, new) {
                assert_eq!(n.type_name(), serde_json::to_value(&n).unwrap()["type"], "{c}");
                let back: Tagged = serde_json::from_value(serde_json::to_value(&n).unwrap()).unwrap();
                assert_eq!(back, o, "{c}");
            }
        }
        let text = r#"{"type":"login","type":"login","user":{"uuid":"aaaaa-tpzed-000000000000001","is_active":true,"home_seq":4}}"#;
        assert_eq!(serde_json::from_str::<Tagged>(text).is_ok(), serde_json::from_str::<Notice>(text).is_ok());
    }

    proptest! {
        #[test]
        fn round_trip(seq in 0u64..(1 << 53), email in ".{0,30}", verified in any::<bool>(), kind in 0u8..4) {
            let mut u = user("aaaaa-tpzed-000000000000001", seq);
            u.email = email;
            u.email_verified = verified;
            let n = match kind {
                0 => Notice::Login { user: u },
                1 => Notice::UserUpdated { user: u },
                2 => { u.redirect_to_user_uuid = Some("bbbbb-tpzed-000000000000001".parse().unwrap()); Notice::UserRedirected { user: u } }
                _ => Notice::TokenRevoked { user: u, token_uuid: "aaaaa-gj3su-000000000000001".parse().unwrap() },
            };
            let b = batch(vec![n]);
            let back: NoticeBatch = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
            prop_assert_eq!(&back, &b);
            prop_assert!(back.check(&cid("aaaaa"), &cid("bbbbb")).is_ok());
            prop_assert_eq!(back.batch_id().unwrap(), b.batch_id().unwrap());
        }
    }

    /// `orcid` is optional on the wire: a record without it has the same bytes as before the field
    /// existed (signatures and batch ids over such records do not change), and one with it round-trips.
    #[test]
    fn orcid_is_absent_unless_known() {
        let plain = user("aaaaa-tpzed-000000000000001", 3);
        let text = to_canonical_string(&plain).unwrap();
        assert!(!text.contains("orcid"), "{text}");
        let back: UserRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, plain);
        let with = UserRecord { orcid: Some("0000-0002-1825-0097".into()), ..plain };
        let text = to_canonical_string(&with).unwrap();
        assert!(text.contains(r#""orcid":"0000-0002-1825-0097""#), "{text}");
        assert_eq!(serde_json::from_str::<UserRecord>(&text).unwrap(), with);
        with.check_home(&cid("aaaaa")).unwrap();
        let long = UserRecord { orcid: Some("x".repeat(MAX_FIELD_LEN + 1)), ..with };
        assert!(long.check_home(&cid("aaaaa")).is_err());
    }
}
