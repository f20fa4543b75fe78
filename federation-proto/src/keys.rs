//! Cluster signing keys, verify keys, key ids, pinned-key lookup and the published key document.
//!
//! Every cluster signs with one current ed25519 key. Its public half has a text form,
//! `ed25519:<unpadded standard base64 of the 32 bytes>`, which `hearth keygen` prints and peers pin in their
//! config. Signatures name the key by a [`KeyId`], `ed25519:<id>`, derived from the public key (see
//! [`VerifyKey::key_id`]), so a pinned public key is enough to find the key a signature names.
//!
//! `GET /federation/v1/keys` serves a [`KeyDocument`] signed by the current key. A receiver replaces the
//! keys it trusts for a peer only through [`KeyDocument::verify_update`]: the new document must be signed by
//! a key the receiver already trusts (so a rotation is announced with the old key's signature as well) and
//! by every key it lists as current (proof that the new key's owner signed it).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cluster::ClusterId;
use crate::error::{ParseError, ProtoError};
use crate::signed::Signed;

/// The algorithm prefix of key ids and verify keys.
pub const ED25519_PREFIX: &str = "ed25519:";
/// Length of a derived key id's id part.
pub const DERIVED_KEY_ID_LEN: usize = 12;
const MAX_KEY_ID_LEN: usize = 32;

/// A key id, `ed25519:<id>` with id `[A-Za-z0-9_]{1,32}`. Serializes as that string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(String);

impl KeyId {
    /// The full text form, `ed25519:<id>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after `ed25519:`.
    pub fn id(&self) -> &str {
        self.0.get(ED25519_PREFIX.len()..).unwrap_or("")
    }
}

impl FromStr for KeyId {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some(id) = s.strip_prefix(ED25519_PREFIX) else {
            return Err(ParseError::new("key id", "must start with \"ed25519:\""));
        };
        if id.is_empty() || id.len() > MAX_KEY_ID_LEN || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ParseError::new("key id", "must be ed25519:<1 to 32 characters of [A-Za-z0-9_]>"));
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for KeyId {
    type Error = ParseError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<KeyId> for String {
    fn from(k: KeyId) -> Self {
        k.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ed25519 public key that signatures are checked against.
///
/// Text form (and serde form): `ed25519:<unpadded standard base64 of the 32 bytes>`. Weak (small-order)
/// keys and non-canonical encodings are refused when parsing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VerifyKey(VerifyingKey);

impl VerifyKey {
    /// Builds a verify key from its 32 bytes, refusing invalid and weak keys.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, ParseError> {
        let key = VerifyingKey::from_bytes(bytes)
            .map_err(|_| ParseError::new("verify key", "not a valid ed25519 public key"))?;
        if key.is_weak() {
            return Err(ParseError::new("verify key", "weak ed25519 public key"));
        }
        if key.as_bytes() != bytes {
            return Err(ParseError::new("verify key", "non-canonical encoding"));
        }
        Ok(Self(key))
    }

    /// The 32 public bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The key id derived from this key: `ed25519:` followed by the first 12 lowercase hex characters
    /// (48 bits) of SHA-256 of the 32 public bytes. Ids only need to be unique among one cluster's keys.
    pub fn key_id(&self) -> KeyId {
        let digest = Sha256::digest(self.0.as_bytes());
        let hex = hex::encode(digest);
        let id = hex.get(..DERIVED_KEY_ID_LEN).unwrap_or(&hex);
        KeyId(format!("{ED25519_PREFIX}{id}"))
    }

    /// Checks `signature` over `message` with `verify_strict` (no malleable or small-order signatures).
    pub(crate) fn verify_bytes(&self, message: &[u8], signature: &Signature) -> Result<(), ProtoError> {
        self.0.verify_strict(message, signature).map_err(|_| ProtoError::BadSignature)
    }
}

impl FromStr for VerifyKey {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some(b64) = s.strip_prefix(ED25519_PREFIX) else {
            return Err(ParseError::new("verify key", "must start with \"ed25519:\""));
        };
        // 32 bytes are 43 unpadded base64 characters; refuse anything else before decoding.
        if b64.len() != 43 {
            return Err(ParseError::new("verify key", "must be ed25519:<43 characters of unpadded base64>"));
        }
        let bytes =
            STANDARD_NO_PAD.decode(b64).map_err(|_| ParseError::new("verify key", "invalid unpadded base64"))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| ParseError::new("verify key", "must decode to 32 bytes"))?;
        Self::from_bytes(&bytes)
    }
}

impl fmt::Display for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ED25519_PREFIX}{}", STANDARD_NO_PAD.encode(self.0.as_bytes()))
    }
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyKey({self})")
    }
}

impl TryFrom<String> for VerifyKey {
    type Error = ParseError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<VerifyKey> for String {
    fn from(k: VerifyKey) -> Self {
        k.to_string()
    }
}

impl PartialOrd for VerifyKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for VerifyKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.as_bytes().cmp(other.0.as_bytes())
    }
}

/// A cluster's private signing key with its key id. `Debug` does not print the secret.
#[derive(Clone)]
pub struct ClusterSigningKey {
    key: SigningKey,
    key_id: KeyId,
}

impl ClusterSigningKey {
    /// Builds the key from 32 secret bytes (which the daemon draws from a CSPRNG and keeps in a 0600
    /// file). The key id is derived from the public key ([`VerifyKey::key_id`]).
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(secret);
        let key_id = VerifyKey(key.verifying_key()).key_id();
        Self { key, key_id }
    }

    /// Like [`ClusterSigningKey::from_secret_bytes`], from a slice that must be exactly 32 bytes long.
    pub fn from_secret_slice(secret: &[u8]) -> Result<Self, ParseError> {
        let bytes: &[u8; 32] =
            secret.try_into().map_err(|_| ParseError::new("signing key", "must be exactly 32 bytes"))?;
        Ok(Self::from_secret_bytes(bytes))
    }

    /// The 32 secret bytes, for writing the key file. Handle with care.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The public half, as peers pin it.
    pub fn public(&self) -> VerifyKey {
        VerifyKey(self.key.verifying_key())
    }

    /// The id that signatures made with this key carry.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// Signs raw bytes (ed25519 is deterministic: same key and message, same signature).
    pub(crate) fn sign_bytes(&self, message: &[u8]) -> Signature {
        self.key.sign(message)
    }
}

impl fmt::Debug for ClusterSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterSigningKey")
            .field("key_id", &self.key_id)
            .field("public", &self.public())
            .field("secret", &"<secret>")
            .finish()
    }
}

/// Encodes a signature as unpadded standard base64 (86 characters).
pub(crate) fn encode_signature(sig: &Signature) -> String {
    STANDARD_NO_PAD.encode(sig.to_bytes())
}

/// Decodes an unpadded standard base64 signature; anything else is [`ProtoError::BadSignature`].
pub(crate) fn decode_signature(s: &str) -> Result<Signature, ProtoError> {
    if s.len() != 86 {
        return Err(ProtoError::BadSignature);
    }
    let bytes = STANDARD_NO_PAD.decode(s).map_err(|_| ProtoError::BadSignature)?;
    let bytes: [u8; 64] = bytes.try_into().map_err(|_| ProtoError::BadSignature)?;
    Ok(Signature::from_bytes(&bytes))
}

/// Finds the verify key a cluster signed with. Implemented by [`TrustedKeys`] and by any
/// `Fn(&ClusterId, &KeyId) -> Option<VerifyKey>` closure.
pub trait KeyLookup {
    /// The key `origin` uses under `key_id`, if the receiver trusts one.
    fn verify_key(&self, origin: &ClusterId, key_id: &KeyId) -> Option<VerifyKey>;
}

impl<F> KeyLookup for F
where
    F: Fn(&ClusterId, &KeyId) -> Option<VerifyKey>,
{
    fn verify_key(&self, origin: &ClusterId, key_id: &KeyId) -> Option<VerifyKey> {
        self(origin, key_id)
    }
}

/// The verify keys a receiver trusts, per cluster: the pinned keys from the config, later replaced through
/// [`KeyDocument::verify_update`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedKeys(BTreeMap<ClusterId, BTreeMap<KeyId, VerifyKey>>);

impl TrustedKeys {
    /// No trusted keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts `key` (under its derived id) for `cluster`, in addition to keys already trusted.
    pub fn pin(&mut self, cluster: ClusterId, key: VerifyKey) {
        self.0.entry(cluster).or_default().insert(key.key_id(), key);
    }

    /// Replaces every key trusted for `cluster`.
    pub fn replace(&mut self, cluster: ClusterId, keys: BTreeMap<KeyId, VerifyKey>) {
        self.0.insert(cluster, keys);
    }

    /// The keys trusted for `cluster`.
    pub fn keys_of(&self, cluster: &ClusterId) -> Option<&BTreeMap<KeyId, VerifyKey>> {
        self.0.get(cluster)
    }

    /// Every cluster that has a trusted key.
    pub fn clusters(&self) -> impl Iterator<Item = &ClusterId> {
        self.0.keys()
    }
}

impl KeyLookup for TrustedKeys {
    fn verify_key(&self, origin: &ClusterId, key_id: &KeyId) -> Option<VerifyKey> {
        self.0.get(origin)?.get(key_id).copied()
    }
}

/// A key that a cluster no longer signs with, kept so that objects signed before `expired_ts` still verify.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OldVerifyKey {
    /// The retired key.
    pub key: VerifyKey,
    /// When it stopped being used (unix seconds).
    pub expired_ts: i64,
}

/// The document a cluster publishes at `GET /federation/v1/keys` (always as `Signed<KeyDocument>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDocument {
    /// The cluster whose keys these are.
    pub cluster: ClusterId,
    /// Current keys, by id.
    pub verify_keys: BTreeMap<KeyId, VerifyKey>,
    /// Retired keys, by id.
    #[serde(default)]
    pub old_verify_keys: BTreeMap<KeyId, OldVerifyKey>,
    /// Until when (unix seconds) receivers may rely on this document without fetching it again.
    pub valid_until_ts: i64,
}

impl KeyDocument {
    /// A document listing `current` as the only current key.
    pub fn new(
        cluster: ClusterId,
        current: VerifyKey,
        old_verify_keys: BTreeMap<KeyId, OldVerifyKey>,
        valid_until_ts: i64,
    ) -> Self {
        let mut verify_keys = BTreeMap::new();
        verify_keys.insert(current.key_id(), current);
        Self { cluster, verify_keys, old_verify_keys, valid_until_ts }
    }

    /// Signs the document with `current` (which must be listed in `verify_keys`) and, during a
    /// rotation, also with each key in `previous`, so receivers that only trust an old key accept it.
    pub fn sign(
        self,
        current: &ClusterSigningKey,
        previous: &[&ClusterSigningKey],
    ) -> Result<Signed<KeyDocument>, ProtoError> {
        if self.verify_keys.get(current.key_id()) != Some(&current.public()) {
            return Err(ProtoError::Refused("the signing key must be listed in verify_keys".into()));
        }
        let cluster = self.cluster.clone();
        let mut signed = Signed::sign(self, &cluster, current)?;
        for key in previous {
            signed.add_signature(&cluster, key)?;
        }
        Ok(signed)
    }

    /// Accepts `signed`, fetched from `cluster`, as the new set of keys to trust for it.
    ///
    /// Requires: a valid signature by one of `trusted` (the keys the receiver trusts for `cluster` now),
    /// a valid signature by every key listed as current, `cluster` in the document equal to `cluster`,
    /// `now <= valid_until_ts`, at least one current key, and every listed id equal to its key's
    /// derived id. On success the caller replaces its trusted keys for `cluster` with
    /// [`KeyDocument::verify_keys`].
    pub fn verify_update(
        signed: &Signed<KeyDocument>,
        cluster: &ClusterId,
        trusted: &BTreeMap<KeyId, VerifyKey>,
        now: i64,
    ) -> Result<KeyDocument, ProtoError> {
        let lookup = |c: &ClusterId, k: &KeyId| {
            if c == cluster { trusted.get(k).copied() } else { None }
        };
        let doc = signed.verify(cluster, &lookup)?;
        if &doc.cluster != cluster {
            return Err(ProtoError::mismatch("cluster", cluster, &doc.cluster));
        }
        if now > doc.valid_until_ts {
            return Err(ProtoError::Expired(format!("key document was valid until {}", doc.valid_until_ts)));
        }
        if doc.verify_keys.is_empty() {
            return Err(ProtoError::Refused("key document lists no current key".into()));
        }
        let ids_ok = doc.verify_keys.iter().all(|(id, k)| &k.key_id() == id)
            && doc.old_verify_keys.iter().all(|(id, k)| &k.key.key_id() == id);
        if !ids_ok {
            return Err(ProtoError::Refused("a key id does not match its key".into()));
        }
        for (id, key) in &doc.verify_keys {
            signed.check_signature_by(cluster, id, key)?;
        }
        Ok(doc)
    }

    /// The key with id `key_id` if it was in use at time `ts`: a current key, or an old key with
    /// `ts < expired_ts`. Use it to re-verify an object that was signed at `ts`.
    pub fn key_valid_at(&self, key_id: &KeyId, ts: i64) -> Option<VerifyKey> {
        if let Some(k) = self.verify_keys.get(key_id) {
            return Some(*k);
        }
        self.old_verify_keys.get(key_id).filter(|old| ts < old.expired_ts).map(|old| old.key)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    pub(crate) fn key(n: u8) -> ClusterSigningKey {
        ClusterSigningKey::from_secret_bytes(&[n; 32])
    }

    fn cid(s: &str) -> ClusterId {
        s.parse().unwrap()
    }

    #[test]
    fn verify_key_text_round_trip() {
        let k = key(1).public();
        let s = k.to_string();
        assert!(s.starts_with("ed25519:") && s.len() == 8 + 43, "{s}");
        assert_eq!(s.parse::<VerifyKey>().unwrap(), k);
        let j = serde_json::to_string(&k).unwrap();
        assert_eq!(serde_json::from_str::<VerifyKey>(&j).unwrap(), k);
        for bad in [
            "",
            "ed25519:",
            &s[8..],
            &format!("{s}="),
            &format!("ED25519:{}", &s[8..]),
            &format!("{}-", &s[..s.len() - 1]),
            &trailing_bits_set(&s),
            // the identity point: a weak key
            &format!(
                "ed25519:{}",
                STANDARD_NO_PAD.encode([1u8].iter().chain([0u8; 31].iter()).copied().collect::<Vec<_>>())
            ),
        ] {
            if bad == s {
                continue;
            }
            assert!(bad.parse::<VerifyKey>().is_err(), "{bad}");
        }
    }

    /// The same key with the unused low bits of the last base64 character set: non-canonical.
    fn trailing_bits_set(s: &str) -> String {
        const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let last = s.chars().last().unwrap();
        let idx = ALPHABET.find(last).unwrap();
        let other = ALPHABET.as_bytes()[idx ^ 1] as char;
        format!("{}{other}", &s[..s.len() - 1])
    }

    #[test]
    fn key_ids() {
        let k = key(2);
        assert_eq!(k.key_id(), &k.public().key_id());
        assert_eq!(k.key_id().id().len(), DERIVED_KEY_ID_LEN);
        assert!(k.key_id().as_str().parse::<KeyId>().is_ok());
        assert_ne!(key(2).key_id(), key(3).key_id());
        for bad in ["", "ed25519:", "ed25519:a-b", "rsa:abc", &format!("ed25519:{}", "a".repeat(33))] {
            assert!(bad.parse::<KeyId>().is_err(), "{bad}");
        }
        assert!("ed25519:A_z9".parse::<KeyId>().is_ok());
        assert!(!format!("{:?}", k).contains(&hex::encode(k.secret_bytes())));
    }

    #[test]
    fn signing_key_bytes_round_trip() {
        let k = key(7);
        let k2 = ClusterSigningKey::from_secret_slice(&k.secret_bytes()).unwrap();
        assert_eq!(k2.public(), k.public());
        assert!(ClusterSigningKey::from_secret_slice(&[0u8; 31]).is_err());
    }

    #[test]
    fn key_rotation() {
        let a = cid("aaaaa");
        let (k1, k2, k3) = (key(1), key(2), key(3));
        let mut trusted = BTreeMap::new();
        trusted.insert(k1.key_id().clone(), k1.public());

        // Plain document signed by the trusted key.
        let doc = KeyDocument::new(a.clone(), k1.public(), BTreeMap::new(), 1000);
        let signed = doc.clone().sign(&k1, &[]).unwrap();
        assert_eq!(KeyDocument::verify_update(&signed, &a, &trusted, 500).unwrap(), doc);
        // Expired.
        assert_eq!(KeyDocument::verify_update(&signed, &a, &trusted, 1001).unwrap_err().code(), "expired");
        // Wrong cluster expected.
        assert!(KeyDocument::verify_update(&signed, &cid("bbbbb"), &trusted, 500).is_err());

        // Rotation k1 -> k2, signed by both: accepted.
        let mut old = BTreeMap::new();
        old.insert(k1.key_id().clone(), OldVerifyKey { key: k1.public(), expired_ts: 600 });
        let rotated = KeyDocument::new(a.clone(), k2.public(), old, 2000);
        let signed = rotated.clone().sign(&k2, &[&k1]).unwrap();
        let accepted = KeyDocument::verify_update(&signed, &a, &trusted, 700).unwrap();
        assert_eq!(accepted, rotated);
        assert_eq!(accepted.key_valid_at(k1.key_id(), 599), Some(k1.public()));
        assert_eq!(accepted.key_valid_at(k1.key_id(), 600), None);
        assert_eq!(accepted.key_valid_at(k2.key_id(), 0), Some(k2.public()));

        // Rotation signed only by the new key: refused (not signed by a trusted key).
        let signed = rotated.clone().sign(&k2, &[]).unwrap();
        assert_eq!(KeyDocument::verify_update(&signed, &a, &trusted, 700).unwrap_err().code(), "unknown_key");

        // A document listing k3 as current but signed only by k1 (no proof of k3): refused.
        let mut forged = KeyDocument::new(a.clone(), k1.public(), BTreeMap::new(), 2000);
        forged.verify_keys.insert(k3.key_id().clone(), k3.public());
        let signed = Signed::sign(forged, &a, &k1).unwrap();
        assert_eq!(KeyDocument::verify_update(&signed, &a, &trusted, 700).unwrap_err().code(), "missing_signature");

        // Mismatched key id: refused.
        let mut bad = KeyDocument::new(a.clone(), k1.public(), BTreeMap::new(), 2000);
        bad.verify_keys.insert("ed25519:zzz".parse().unwrap(), k1.public());
        let signed = Signed::sign(bad, &a, &k1).unwrap();
        assert_eq!(KeyDocument::verify_update(&signed, &a, &trusted, 700).unwrap_err().code(), "refused");

        // Signing with a key not listed: refused.
        assert!(KeyDocument::new(a, k1.public(), BTreeMap::new(), 1).sign(&k2, &[]).is_err());
    }

    #[test]
    fn trusted_keys_lookup() {
        let mut t = TrustedKeys::new();
        t.pin(cid("aaaaa"), key(1).public());
        assert_eq!(t.verify_key(&cid("aaaaa"), key(1).key_id()), Some(key(1).public()));
        assert_eq!(t.verify_key(&cid("bbbbb"), key(1).key_id()), None);
        assert_eq!(t.verify_key(&cid("aaaaa"), key(2).key_id()), None);
        assert_eq!(t.clusters().count(), 1);
    }
}
