//! Object uuids in the Arvados form `<cluster>-<infix>-<15 chars [a-z0-9]>`.
//!
//! The cluster part names the object's home cluster (the only cluster allowed to make claims about it);
//! the 5-character infix names the kind of object. Arvados' kinds keep their Arvados infixes; the kinds
//! Hearth adds (migrations `m1gr8`, persons `p3rsn`, claims `c1a1m`, anonymous sessions `an0ns`) chose
//! their own.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::cluster::{ClusterId, is_lower_alnum};
use crate::error::ParseError;

/// Length of the random id part of an object uuid.
pub const UUID_ID_LEN: usize = 15;
/// Length of a whole object uuid: `5 + 1 + 5 + 1 + 15`.
pub const UUID_LEN: usize = 27;

/// The kind of an object, as encoded in the uuid's infix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// A user account (`tpzed`).
    User,
    /// An API token, `apiClientAuthorization` in Arvados (`gj3su`).
    Token,
    /// A group or project (`j7d0g`).
    Group,
    /// A collection (`4zz18`).
    Collection,
    /// A permission or other link (`o0j2j`).
    Link,
    /// An authorized SSH key (`fngyi`).
    AuthorizedKey,
    /// An audit log entry (`57u5n`).
    Log,
    /// A cross-cluster account migration (Hearth, `m1gr8`).
    Migration,
    /// A person record (Hearth, `p3rsn`).
    Person,
    /// A claim on a person record (Hearth, `c1a1m`).
    Claim,
    /// An account of an older system, imported for its owner to claim (Hearth, `l3gcy`).
    LegacyAccount,
    /// A browser's or script's session before any login, which may own collections (Hearth, `an0ns`).
    AnonymousSession,
}

impl ObjectKind {
    /// Every kind, in declaration order.
    pub const ALL: [ObjectKind; 12] = [
        ObjectKind::User,
        ObjectKind::Token,
        ObjectKind::Group,
        ObjectKind::Collection,
        ObjectKind::Link,
        ObjectKind::AuthorizedKey,
        ObjectKind::Log,
        ObjectKind::Migration,
        ObjectKind::Person,
        ObjectKind::Claim,
        ObjectKind::LegacyAccount,
        ObjectKind::AnonymousSession,
    ];

    /// The 5-character uuid infix of this kind, e.g. `"tpzed"` for users.
    pub fn infix(&self) -> &'static str {
        match self {
            ObjectKind::User => "tpzed",
            ObjectKind::Token => "gj3su",
            ObjectKind::Group => "j7d0g",
            ObjectKind::Collection => "4zz18",
            ObjectKind::Link => "o0j2j",
            ObjectKind::AuthorizedKey => "fngyi",
            ObjectKind::Log => "57u5n",
            ObjectKind::Migration => "m1gr8",
            ObjectKind::Person => "p3rsn",
            ObjectKind::Claim => "c1a1m",
            ObjectKind::LegacyAccount => "l3gcy",
            ObjectKind::AnonymousSession => "an0ns",
        }
    }

    /// The kind whose infix is `s`, if any.
    pub fn from_infix(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.infix() == s)
    }

    /// The `kind` string used in API responses, e.g. `"arvados#user"` or `"hearth#migration"`.
    pub fn arvados_kind(&self) -> &'static str {
        match self {
            ObjectKind::User => "arvados#user",
            ObjectKind::Token => "arvados#apiClientAuthorization",
            ObjectKind::Group => "arvados#group",
            ObjectKind::Collection => "arvados#collection",
            ObjectKind::Link => "arvados#link",
            ObjectKind::AuthorizedKey => "arvados#authorizedKey",
            ObjectKind::Log => "arvados#log",
            ObjectKind::Migration => "hearth#migration",
            ObjectKind::Person => "hearth#person",
            ObjectKind::Claim => "hearth#claim",
            ObjectKind::LegacyAccount => "hearth#legacyAccount",
            ObjectKind::AnonymousSession => "hearth#anonymousSession",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.infix())
    }
}

/// A validated object uuid: home cluster, kind, and a 15-character `[a-z0-9]` id.
///
/// Serializes as the plain uuid string; deserializing validates. Ordering is the ordering of the string
/// form.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ObjectUuid {
    cluster: ClusterId,
    kind: ObjectKind,
    id: [u8; UUID_ID_LEN],
}

crate::text_serde::text_serde!(ObjectUuid, "an object uuid");

fn check_id(id: &str) -> Result<(), ParseError> {
    if id.len() != UUID_ID_LEN || !id.bytes().all(is_lower_alnum) {
        return Err(ParseError::new("object uuid", format!("id part must be {UUID_ID_LEN} characters of [a-z0-9]")));
    }
    Ok(())
}

impl ObjectUuid {
    /// Builds a uuid from its parts; `id` must be 15 characters of `[a-z0-9]`.
    pub fn new(cluster: ClusterId, kind: ObjectKind, id: &str) -> Result<Self, ParseError> {
        check_id(id)?;
        let mut bytes = [0; UUID_ID_LEN];
        bytes.copy_from_slice(id.as_bytes());
        Ok(Self { cluster, kind, id: bytes })
    }

    /// Parses `s` and also requires its kind to be `kind`.
    pub fn parse_kind(s: &str, kind: ObjectKind) -> Result<Self, ParseError> {
        let u: ObjectUuid = s.parse()?;
        if u.kind != kind {
            return Err(ParseError::new(
                "object uuid",
                format!(
                    "expected a {} uuid (infix {}), got infix {}",
                    kind.arvados_kind(),
                    kind.infix(),
                    u.kind.infix()
                ),
            ));
        }
        Ok(u)
    }

    /// The home cluster of the object (the uuid's prefix).
    pub fn cluster(&self) -> &ClusterId {
        &self.cluster
    }

    /// The kind of the object (the uuid's infix).
    pub fn kind(&self) -> ObjectKind {
        self.kind
    }

    /// The 15-character id part.
    pub fn id(&self) -> &str {
        // Only ever built from 15 ASCII characters.
        std::str::from_utf8(&self.id).unwrap_or_default()
    }
}

impl FromStr for ObjectUuid {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != UUID_LEN {
            return Err(ParseError::new("object uuid", format!("must be {UUID_LEN} characters, got {}", s.len())));
        }
        let mut parts = s.split('-');
        let (Some(cluster), Some(infix), Some(id), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseError::new("object uuid", "must be <cluster>-<type>-<15 chars>"));
        };
        let cluster: ClusterId = cluster.parse().map_err(|e: ParseError| ParseError::new("object uuid", e.reason()))?;
        let kind =
            ObjectKind::from_infix(infix).ok_or_else(|| ParseError::new("object uuid", "unknown object type infix"))?;
        ObjectUuid::new(cluster, kind, id)
    }
}

impl TryFrom<String> for ObjectUuid {
    type Error = ParseError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ObjectUuid> for String {
    fn from(u: ObjectUuid) -> Self {
        u.to_string()
    }
}

impl fmt::Debug for ObjectUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl fmt::Display for ObjectUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Built on the stack and written at once: uuids are formatted many times per request
        // (store keys, every answer), and this is several times cheaper than `write!` of parts.
        const CL: usize = crate::cluster::CLUSTER_ID_LEN;
        let mut b = [b'-'; CL + 1 + 5 + 1 + UUID_ID_LEN];
        b[..CL].copy_from_slice(self.cluster.as_str().as_bytes());
        b[CL + 1..CL + 6].copy_from_slice(self.kind.infix().as_bytes());
        b[CL + 7..].copy_from_slice(&self.id);
        // Only ever built from ASCII parts.
        f.write_str(std::str::from_utf8(&b).map_err(|_| fmt::Error)?)
    }
}

impl PartialOrd for ObjectUuid {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ObjectUuid {
    fn cmp(&self, other: &Self) -> Ordering {
        (&self.cluster, self.kind.infix(), &self.id).cmp(&(&other.cluster, other.kind.infix(), &other.id))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn infix_round_trip_and_unique() {
        for k in ObjectKind::ALL {
            assert_eq!(ObjectKind::from_infix(k.infix()), Some(k));
            assert_eq!(k.infix().len(), 5);
        }
        let mut infixes: Vec<_> = ObjectKind::ALL.iter().map(|k| k.infix()).collect();
        infixes.sort();
        infixes.dedup();
        assert_eq!(infixes.len(), ObjectKind::ALL.len());
        assert_eq!(ObjectKind::from_infix("xxxxx"), None);
    }

    #[test]
    fn parses_arvados_uuid() {
        let u: ObjectUuid = "zzzzz-gj3su-077z32aux8dg2s1".parse().unwrap();
        assert_eq!(u.cluster().as_str(), "zzzzz");
        assert_eq!(u.kind(), ObjectKind::Token);
        assert_eq!(u.id(), "077z32aux8dg2s1");
        assert_eq!(u.to_string(), "zzzzz-gj3su-077z32aux8dg2s1");
        assert!(ObjectUuid::parse_kind("zzzzz-gj3su-077z32aux8dg2s1", ObjectKind::Token).is_ok());
        let e = ObjectUuid::parse_kind("zzzzz-gj3su-077z32aux8dg2s1", ObjectKind::User).unwrap_err();
        assert!(e.to_string().contains("tpzed"), "{e}");
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "zzzzz",
            "zzzzz-gj3su",
            "zzzzz-gj3su-",
            "zzzzz-gj3su-077z32aux8dg2s",
            "zzzzz-gj3su-077z32aux8dg2s12",
            "zzzzz-xxxxx-077z32aux8dg2s1",
            "ZZZZZ-gj3su-077z32aux8dg2s1",
            "zzzzz-gj3su-077Z32aux8dg2s1",
            "zzzzz_gj3su_077z32aux8dg2s1",
            "zzzz-gj3su-077z32aux8dg2s1x",
            "zzzzz-gj3su-077z32aux8dg2-1",
            " zzzz-gj3su-077z32aux8dg2s1",
            "zzzzz-gj3su-077z32aux8dg2s\u{e9}",
        ] {
            assert!(bad.parse::<ObjectUuid>().is_err(), "{bad:?}");
        }
        let c: ClusterId = "zzzzz".parse().unwrap();
        assert!(ObjectUuid::new(c.clone(), ObjectKind::User, "short").is_err());
        assert!(ObjectUuid::new(c, ObjectKind::User, "aaaaaaaaaaaaaaa").is_ok());
    }

    #[test]
    fn serde_as_string() {
        let u: ObjectUuid = "aaaaa-tpzed-000000000000001".parse().unwrap();
        let j = serde_json::to_string(&u).unwrap();
        assert_eq!(j, "\"aaaaa-tpzed-000000000000001\"");
        assert_eq!(serde_json::from_str::<ObjectUuid>(&j).unwrap(), u);
        assert!(serde_json::from_str::<ObjectUuid>("\"aaaaa-tpzed-00000000000000\"").is_err());
    }

    pub(crate) fn any_kind() -> impl Strategy<Value = ObjectKind> {
        proptest::sample::select(ObjectKind::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn round_trip(c in "[a-z0-9]{5}", k in any_kind(), id in "[a-z0-9]{15}") {
            let u = ObjectUuid::new(c.parse().unwrap(), k, &id).unwrap();
            let s = u.to_string();
            prop_assert_eq!(&s, &format!("{c}-{}-{id}", k.infix()));
            prop_assert_eq!(s.parse::<ObjectUuid>().unwrap(), u);
        }

        #[test]
        fn ordering_matches_strings(a in "[a-z0-9]{5}", ka in any_kind(), b in "[a-z0-9]{5}", kb in any_kind()) {
            let ua = ObjectUuid::new(a.parse().unwrap(), ka, "000000000000000").unwrap();
            let ub = ObjectUuid::new(b.parse().unwrap(), kb, "000000000000000").unwrap();
            prop_assert_eq!(ua.cmp(&ub), ua.to_string().cmp(&ub.to_string()));
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,40}") {
            if let Ok(u) = s.parse::<ObjectUuid>() {
                prop_assert_eq!(u.to_string(), s);
            }
        }
    }
}
