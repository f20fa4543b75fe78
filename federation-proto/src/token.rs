//! API tokens (`v2/<token uuid>/<secret>`), their salting for other clusters, and secret hashes.
//!
//! A [`Token`] can only hold a token-kind uuid and an alphanumeric secret of 32..=512 characters, so code
//! that has one never re-checks the string. Salting follows Arvados: the token sent to cluster X carries
//! the same uuid and the secret `hex(HMAC-SHA1(key = secret, message = X))`, which is useless anywhere
//! but at X and at home. Nothing stores a secret in plain text: stores keep a [`SecretHash`] (SHA-256) and
//! compare it in constant time. An [`AnonymousToken`] has the same text form with an anonymous-session
//! uuid, and is never taken for a [`Token`].

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::cluster::ClusterId;
use crate::error::{ParseError, SaltError};
use crate::uuid::{ObjectKind, ObjectUuid};

/// Shortest secret accepted (Arvados requires at least 32 random alphanumerics).
pub const MIN_SECRET_LEN: usize = 32;
/// Longest secret accepted; anything longer is refused before any hashing.
pub const MAX_SECRET_LEN: usize = 512;
/// Length of a salted secret: lowercase hex of a 20-byte HMAC-SHA1.
pub const SALTED_SECRET_LEN: usize = 40;

const TOKEN_PREFIX: &str = "v2/";

/// A validated API token.
///
/// `Debug` never prints the secret; `Display` (and serialization) print the full `v2/uuid/secret` form,
/// which is what a client needs to be handed. Equality compares the secret in constant time.
///
/// A freshly issued secret should not be exactly 40 characters long: a 40-character lowercase-hex secret
/// is taken to be a salted one ([`Token::is_salted`]).
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Token {
    uuid: ObjectUuid,
    secret: String,
}

fn check_secret(secret: &str) -> Result<(), ParseError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(ParseError::new("token", format!("secret must be at least {MIN_SECRET_LEN} characters")));
    }
    if secret.len() > MAX_SECRET_LEN {
        return Err(ParseError::new("token", format!("secret must be at most {MAX_SECRET_LEN} characters")));
    }
    if !secret.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ParseError::new("token", "secret must be alphanumeric"));
    }
    Ok(())
}

fn is_salted_secret(secret: &str) -> bool {
    secret.len() == SALTED_SECRET_LEN && secret.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The salted form of `secret` for cluster `target`: lowercase hex HMAC-SHA1(key = secret, msg = target).
pub fn salted_secret(secret: &str, target: &ClusterId) -> String {
    // HMAC accepts keys of any length, so this cannot fail; the fallback keeps the lint happy and is
    // unreachable in practice.
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(target.as_str().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

impl Token {
    /// Builds a token from a token-kind uuid and a secret (alphanumeric, 32..=512 characters).
    pub fn new(uuid: ObjectUuid, secret: impl Into<String>) -> Result<Self, ParseError> {
        if uuid.kind() != ObjectKind::Token {
            return Err(ParseError::new("token", format!("uuid must be of type gj3su, got {}", uuid.kind().infix())));
        }
        let secret = secret.into();
        check_secret(&secret)?;
        Ok(Self { uuid, secret })
    }

    /// The token's uuid (always of kind [`ObjectKind::Token`]).
    pub fn uuid(&self) -> &ObjectUuid {
        &self.uuid
    }

    /// The secret part. Handle with care: never log it.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The cluster that issued the token (its uuid prefix).
    pub fn issuer(&self) -> &ClusterId {
        self.uuid.cluster()
    }

    /// True when the secret is exactly 40 lowercase hex characters, i.e. a salted secret.
    pub fn is_salted(&self) -> bool {
        is_salted_secret(&self.secret)
    }

    /// The token to send to cluster `target`.
    ///
    /// For the issuing cluster the token is returned unchanged (as in Arvados). Otherwise a salted
    /// token cannot be salted again ([`SaltError::AlreadySalted`]); an unsalted one gets its secret
    /// replaced by [`salted_secret`].
    pub fn salt_for(&self, target: &ClusterId) -> Result<Token, SaltError> {
        if target == self.issuer() {
            return Ok(self.clone());
        }
        if self.is_salted() {
            return Err(SaltError::AlreadySalted);
        }
        Ok(Token { uuid: self.uuid.clone(), secret: salted_secret(&self.secret, target) })
    }

    /// SHA-256 of the secret, the only form in which a secret is stored.
    pub fn secret_hash(&self) -> SecretHash {
        SecretHash::of(&self.secret)
    }

    /// SHA-256 of the secret salted for `target` (what the home cluster stores, at issue time, for each
    /// configured peer, so it can check a salted token without keeping the plain secret).
    pub fn salted_secret_hash_for(&self, target: &ClusterId) -> Result<SecretHash, SaltError> {
        Ok(self.salt_for(target)?.secret_hash())
    }
}

impl FromStr for Token {
    type Err = ParseError;

    /// Parses exactly `v2/<token uuid>/<secret>`; anything else (other versions, quotes, whitespace,
    /// missing or extra segments, a uuid of another kind) is refused.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some(rest) = s.strip_prefix(TOKEN_PREFIX) else {
            return Err(ParseError::new("token", "must start with \"v2/\""));
        };
        let mut parts = rest.split('/');
        let (Some(uuid), Some(secret), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(ParseError::new("token", "must be v2/<uuid>/<secret>"));
        };
        let uuid = ObjectUuid::parse_kind(uuid, ObjectKind::Token)
            .map_err(|e| ParseError::new("token", format!("bad uuid: {}", e.reason())))?;
        Token::new(uuid, secret)
    }
}

impl TryFrom<String> for Token {
    type Error = ParseError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Token> for String {
    fn from(t: Token) -> Self {
        t.to_string()
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TOKEN_PREFIX}{}/{}", self.uuid, self.secret)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token").field("uuid", &self.uuid.to_string()).field("secret", &"<secret>").finish()
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        self.uuid == other.uuid && bool::from(self.secret.as_bytes().ct_eq(other.secret.as_bytes()))
    }
}

impl Eq for Token {}

/// The token of an anonymous session: `v2/<anonymous session uuid>/<secret>`.
///
/// It has the shape of an API token so that clients send it the same way (`Authorization: Bearer …`),
/// but its uuid is of kind [`ObjectKind::AnonymousSession`], so neither parses as the other: a user's
/// token is never taken for an anonymous one, nor the reverse. It is never salted (an anonymous session
/// is only good at the cluster that made it). `Debug` never prints the secret; equality compares the
/// secret in constant time.
#[derive(Clone)]
pub struct AnonymousToken {
    uuid: ObjectUuid,
    secret: String,
}

impl AnonymousToken {
    /// Builds a token from an anonymous-session uuid and a secret (alphanumeric, 32..=512 characters).
    pub fn new(uuid: ObjectUuid, secret: impl Into<String>) -> Result<Self, ParseError> {
        if uuid.kind() != ObjectKind::AnonymousSession {
            return Err(ParseError::new(
                "anonymous token",
                format!("uuid must be of type {}, got {}", ObjectKind::AnonymousSession.infix(), uuid.kind().infix()),
            ));
        }
        let secret = secret.into();
        check_secret(&secret).map_err(|e| ParseError::new("anonymous token", e.reason()))?;
        Ok(Self { uuid, secret })
    }

    /// The session's uuid (always of kind [`ObjectKind::AnonymousSession`]).
    pub fn uuid(&self) -> &ObjectUuid {
        &self.uuid
    }

    /// SHA-256 of the secret, the only form in which it is stored.
    pub fn secret_hash(&self) -> SecretHash {
        SecretHash::of(&self.secret)
    }
}

impl FromStr for AnonymousToken {
    type Err = ParseError;

    /// Parses exactly `v2/<anonymous session uuid>/<secret>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| ParseError::new("anonymous token", why);
        let rest = s.strip_prefix(TOKEN_PREFIX).ok_or_else(|| bad("must start with \"v2/\""))?;
        let mut parts = rest.split('/');
        let (Some(uuid), Some(secret), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("must be v2/<uuid>/<secret>"));
        };
        let uuid = ObjectUuid::parse_kind(uuid, ObjectKind::AnonymousSession)
            .map_err(|e| ParseError::new("anonymous token", format!("bad uuid: {}", e.reason())))?;
        AnonymousToken::new(uuid, secret)
    }
}

impl fmt::Display for AnonymousToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TOKEN_PREFIX}{}/{}", self.uuid, self.secret)
    }
}

impl fmt::Debug for AnonymousToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnonymousToken").field("uuid", &self.uuid.to_string()).field("secret", &"<secret>").finish()
    }
}

impl PartialEq for AnonymousToken {
    fn eq(&self, other: &Self) -> bool {
        self.uuid == other.uuid && bool::from(self.secret.as_bytes().ct_eq(other.secret.as_bytes()))
    }
}

impl Eq for AnonymousToken {}

/// SHA-256 of a token secret's UTF-8 bytes: what stores keep instead of the secret.
///
/// Serializes as 64 lowercase hex characters. Equality (`==` and [`SecretHash::ct_eq`]) is constant-time.
#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    /// Hashes `secret` (SHA-256 of its UTF-8 bytes).
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// The raw 32 bytes (e.g. for use as a store key).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Result<Self, ParseError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| ParseError::new("secret hash", "must be 64 hex characters"))?;
        Ok(Self(out))
    }

    /// Constant-time comparison.
    pub fn ct_eq(&self, other: &SecretHash) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl PartialEq for SecretHash {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for SecretHash {}

impl std::hash::Hash for SecretHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHash({})", self.to_hex())
    }
}

impl TryFrom<String> for SecretHash {
    type Error = ParseError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::from_hex(&s)
    }
}

impl From<SecretHash> for String {
    fn from(h: SecretHash) -> Self {
        h.to_hex()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use proptest::prelude::*;

    const SECRET: &str = "3kg6k6lzmp9kj5cpkcoxie963cmvjahbt2fod9zru30k1jqdmi";
    const UUID: &str = "zzzzz-gj3su-077z32aux8dg2s1";

    fn arv_token() -> Token {
        format!("v2/{UUID}/{SECRET}").parse().unwrap()
    }

    fn cid(s: &str) -> ClusterId {
        s.parse().unwrap()
    }

    #[test]
    fn arvados_salting_vectors() {
        let t = arv_token();
        assert!(!t.is_salted());
        let salted = t.salt_for(&cid("zmock")).unwrap();
        assert_eq!(salted.to_string(), "v2/zzzzz-gj3su-077z32aux8dg2s1/7fd31b61f39c0e82a4155592163218272cedacdc");
        assert!(salted.is_salted());
        assert_eq!(salted_secret(SECRET, &cid("zbbbb")), "33b4da68bfe07da0281a7fdbc08b4f6f41c7bd98");
    }

    #[test]
    fn salting_twice_is_an_error() {
        let salted = arv_token().salt_for(&cid("zmock")).unwrap();
        assert_eq!(salted.salt_for(&cid("zbbbb")), Err(SaltError::AlreadySalted));
        assert_eq!(salted.salt_for(&cid("zmock")), Err(SaltError::AlreadySalted));
    }

    #[test]
    fn salting_for_issuer_is_a_no_op() {
        let t = arv_token();
        assert_eq!(t.salt_for(&cid("zzzzz")).unwrap(), t);
        let salted = t.salt_for(&cid("zmock")).unwrap();
        assert_eq!(salted.salt_for(&cid("zzzzz")).unwrap(), salted);
    }

    #[test]
    fn salted_secret_hash_matches_salted_token() {
        let t = arv_token();
        let zmock = cid("zmock");
        let received: Token =
            "v2/zzzzz-gj3su-077z32aux8dg2s1/7fd31b61f39c0e82a4155592163218272cedacdc".parse().unwrap();
        assert!(t.salted_secret_hash_for(&zmock).unwrap().ct_eq(&received.secret_hash()));
        assert_eq!(t.salted_secret_hash_for(&cid("zzzzz")).unwrap(), t.secret_hash());
    }

    #[test]
    fn debug_hides_secret() {
        let d = format!("{:?}", arv_token());
        assert!(!d.contains(SECRET), "{d}");
        assert!(d.contains(UUID) && d.contains("<secret>"), "{d}");
    }

    #[test]
    fn refuses_malformed_tokens() {
        let user_uuid = "zzzzz-tpzed-077z32aux8dg2s1";
        let cases = [
            String::new(),
            "v2".into(),
            "v2/".into(),
            "v2//".into(),
            "v2///".into(),
            "v2/foo/bar".into(),
            format!("v2/{UUID}"),
            format!("v2/{UUID}/"),
            format!("v2//{SECRET}"),
            format!("v8/{UUID}/{SECRET}"),
            format!("V2/{UUID}/{SECRET}"),
            format!("\"v2/{UUID}/{SECRET}\""),
            "/".into(),
            "'; DROP TABLE users; --".into(),
            format!("v2/{UUID}/' OR '1'='1"),
            format!("v2/{UUID}/{SECRET}/extra"),
            format!("v2/{UUID}/{SECRET}/"),
            format!(" v2/{UUID}/{SECRET}"),
            format!("v2/{UUID}/{SECRET} "),
            format!("v2/{UUID}/{SECRET}\n"),
            format!("v2/ {UUID}/{SECRET}"),
            format!("v2/{user_uuid}/{SECRET}"),
            format!("v2/{UUID}/short"),
            format!("v2/{UUID}/{}", "a".repeat(MAX_SECRET_LEN + 1)),
            format!("v2/{UUID}/{}\u{e9}", &SECRET[..40]),
            format!("v2/{UUID}/{}-{}", &SECRET[..20], &SECRET[..20]),
            SECRET.into(),
            format!("Bearer v2/{UUID}/{SECRET}"),
        ];
        for bad in cases {
            let e = bad.parse::<Token>().unwrap_err();
            assert_eq!(e.what(), "token", "{bad:?}");
            assert!(!e.to_string().contains(&SECRET[..32]), "error leaks secret: {e}");
        }
        assert!(format!("v2/{UUID}/{}", "a".repeat(MAX_SECRET_LEN)).parse::<Token>().is_ok());
        assert!(format!("v2/{UUID}/{}", "a".repeat(MIN_SECRET_LEN)).parse::<Token>().is_ok());
    }

    #[test]
    fn new_requires_token_uuid() {
        let u: ObjectUuid = "zzzzz-tpzed-077z32aux8dg2s1".parse().unwrap();
        assert!(Token::new(u, SECRET).is_err());
    }

    #[test]
    fn secret_hash() {
        let h = arv_token().secret_hash();
        assert_eq!(h, SecretHash::of(SECRET));
        assert!(h.ct_eq(&SecretHash::of(SECRET)));
        assert!(!h.ct_eq(&SecretHash::of("x")));
        assert_eq!(SecretHash::from_hex(&h.to_hex()).unwrap(), h);
        assert_eq!(SecretHash::of("").to_hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        let j = serde_json::to_string(&h).unwrap();
        assert_eq!(j, format!("\"{}\"", h.to_hex()));
        assert_eq!(serde_json::from_str::<SecretHash>(&j).unwrap(), h);
        assert!(SecretHash::from_hex("abc").is_err());
        assert!(SecretHash::from_hex(&"g".repeat(64)).is_err());
    }

    #[test]
    fn serde_as_string() {
        let t = arv_token();
        let j = serde_json::to_string(&t).unwrap();
        assert_eq!(j, format!("\"v2/{UUID}/{SECRET}\""));
        assert_eq!(serde_json::from_str::<Token>(&j).unwrap(), t);
        assert!(serde_json::from_str::<Token>("\"v2/x/y\"").is_err());
    }

    #[test]
    fn anonymous_tokens_and_api_tokens_never_parse_as_each_other() {
        let anon = format!("v2/zzzzz-an0ns-077z32aux8dg2s1/{SECRET}");
        let t: AnonymousToken = anon.parse().unwrap();
        assert_eq!(t.uuid().kind(), ObjectKind::AnonymousSession);
        assert_eq!(t.to_string(), anon);
        assert_eq!(t.secret_hash(), SecretHash::of(SECRET));
        assert!(!format!("{t:?}").contains(SECRET));
        assert!(anon.parse::<Token>().is_err());
        assert!(format!("v2/{UUID}/{SECRET}").parse::<AnonymousToken>().is_err());
        for bad in [
            String::new(),
            format!("v2/zzzzz-an0ns-077z32aux8dg2s1/{SECRET}/x"),
            "v2/zzzzz-an0ns-077z32aux8dg2s1/short".into(),
            format!("v3/zzzzz-an0ns-077z32aux8dg2s1/{SECRET}"),
            format!("v2/zzzzz-an0ns-077z32aux8dg2s1/{SECRET} "),
        ] {
            let e = bad.parse::<AnonymousToken>().unwrap_err();
            assert_eq!(e.what(), "anonymous token", "{bad:?}");
            assert!(!e.to_string().contains(&SECRET[..32]), "error leaks secret: {e}");
        }
    }

    prop_compose! {
        pub(crate) fn any_token()(c in "[a-z0-9]{5}", id in "[a-z0-9]{15}", secret in "[A-Za-z0-9]{32,80}") -> Token {
            let uuid = ObjectUuid::new(c.parse().unwrap(), ObjectKind::Token, &id).unwrap();
            Token::new(uuid, secret).unwrap()
        }
    }

    proptest! {
        #[test]
        fn round_trip(t in any_token()) {
            let s = t.to_string();
            prop_assert_eq!(s.parse::<Token>().unwrap(), t);
        }

        #[test]
        fn salted_secret_differs_and_round_trips(t in any_token(), target in "[a-z0-9]{5}") {
            let target: ClusterId = target.parse().unwrap();
            let salted = match t.salt_for(&target) {
                Ok(s) => s,
                Err(SaltError::AlreadySalted) => { prop_assert!(t.is_salted()); return Ok(()); }
            };
            if &target == t.issuer() {
                prop_assert_eq!(&salted, &t);
            } else {
                prop_assert!(salted.is_salted());
                prop_assert_ne!(salted.secret(), t.secret());
                prop_assert_eq!(salted.uuid(), t.uuid());
                prop_assert_eq!(salted.to_string().parse::<Token>().unwrap(), salted.clone());
                prop_assert_eq!(salted.secret_hash() == t.secret_hash(), false);
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(s in "v2/.{0,80}") {
            if let Ok(t) = s.parse::<Token>() {
                prop_assert_eq!(t.to_string(), s);
            }
        }
    }
}
