//! Signed objects: a JSON object plus the signatures of the clusters that vouch for it.
//!
//! Wire form: the object's own fields, flat, plus `"signatures": {<cluster>: {<key id>: <unpadded base64
//! ed25519 signature>}}` and optionally `"unsigned": <anything>` (not covered by the signatures). A
//! signature covers the canonical JSON ([`crate::canonical`]) of the object with `signatures` and `unsigned`
//! removed. Because the signed bytes are recomputed from the object, a `Signed<T>` can be embedded in other
//! JSON, stored, and verified again later.
//!
//! [`Signed::verify`] is the only way to get at the `T`: it requires a signature by the *expected* origin
//! (a valid signature by some other cluster is not enough), checked with `verify_strict` against a key the
//! receiver trusts for that origin.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::canonical::{StrictValue, canonical_json};
use crate::cluster::ClusterId;
use crate::error::ProtoError;
use crate::keys::{ClusterSigningKey, KeyId, KeyLookup, VerifyKey, decode_signature, encode_signature};

/// The field that carries the signatures.
pub const SIGNATURES_FIELD: &str = "signatures";
/// The field that carries data not covered by the signatures.
pub const UNSIGNED_FIELD: &str = "unsigned";

/// The signatures block: cluster → key id → unpadded base64 signature.
pub type Signatures = BTreeMap<ClusterId, BTreeMap<KeyId, String>>;

/// A `T` (serialized as a JSON object) with the signatures of one or more clusters.
///
/// Serializes and deserializes as the flat JSON object described in the module docs. Deserializing
/// refuses duplicate keys, floats and out-of-range integers (so the signed bytes are well defined) and a
/// malformed `signatures` block, but does not verify anything: call [`Signed::verify`].
pub struct Signed<T> {
    content: Map<String, Value>,
    signatures: Signatures,
    unsigned: Option<Value>,
    _marker: PhantomData<fn() -> T>,
}

impl<T> Signed<T> {
    /// Builds from a JSON object (e.g. one taken out of a larger document), without verifying.
    pub fn from_value(value: Value) -> Result<Self, ProtoError> {
        let Value::Object(mut content) = value else {
            return Err(ProtoError::Json("a signed object must be a JSON object".into()));
        };
        let signatures = match content.remove(SIGNATURES_FIELD) {
            Some(v) => serde_json::from_value::<Signatures>(v)?,
            None => Signatures::new(),
        };
        let unsigned = content.remove(UNSIGNED_FIELD);
        let signed = Self { content, signatures, unsigned, _marker: PhantomData };
        // Refuse now what could never verify (floats, huge integers), anywhere in the object.
        signed.signing_bytes()?;
        if let Some(u) = &signed.unsigned {
            canonical_json(u)?;
        }
        Ok(signed)
    }

    /// Parses JSON text strictly (see [`crate::canonical::from_strict_slice`]), without verifying.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ProtoError> {
        Self::from_value(crate::canonical::from_strict_slice(bytes)?)
    }

    /// The flat JSON object, signatures included.
    pub fn to_value(&self) -> Value {
        let mut map = self.content.clone();
        if !self.signatures.is_empty() {
            // Cluster ids, key ids and strings always serialize.
            if let Ok(v) = serde_json::to_value(&self.signatures) {
                map.insert(SIGNATURES_FIELD.to_owned(), v);
            }
        }
        if let Some(u) = &self.unsigned {
            map.insert(UNSIGNED_FIELD.to_owned(), u.clone());
        }
        Value::Object(map)
    }

    /// The clusters that claim to have signed (unverified; for logs and routing only).
    pub fn claimed_signers(&self) -> impl Iterator<Item = &ClusterId> {
        self.signatures.keys()
    }

    /// The data outside the signatures, if any. Never trust it.
    pub fn unsigned(&self) -> Option<&Value> {
        self.unsigned.as_ref()
    }

    /// Sets the data outside the signatures (does not invalidate them).
    pub fn set_unsigned(&mut self, unsigned: Option<Value>) {
        self.unsigned = unsigned;
    }

    /// The bytes the signatures cover: canonical JSON of the object without `signatures`/`unsigned`.
    pub fn signing_bytes(&self) -> Result<Vec<u8>, ProtoError> {
        // Canonicalising a borrowed map needs a Value; clone once per sign/verify.
        Ok(canonical_json(&Value::Object(self.content.clone()))?.into_bytes())
    }

    /// Adds (or replaces) `origin`'s signature with `key` — e.g. a key document signed with the old and
    /// the new key during a rotation.
    pub fn add_signature(&mut self, origin: &ClusterId, key: &ClusterSigningKey) -> Result<(), ProtoError> {
        let bytes = self.signing_bytes()?;
        let sig = encode_signature(&key.sign_bytes(&bytes));
        self.signatures.entry(origin.clone()).or_default().insert(key.key_id().clone(), sig);
        Ok(())
    }

    /// Checks that `origin` signed with `key` under `key_id` (the signature must be present and valid).
    pub fn check_signature_by(&self, origin: &ClusterId, key_id: &KeyId, key: &VerifyKey) -> Result<(), ProtoError> {
        let sig = self
            .signatures
            .get(origin)
            .and_then(|by_key| by_key.get(key_id))
            .ok_or_else(|| ProtoError::MissingSignature { origin: origin.clone() })?;
        let sig = decode_signature(sig)?;
        key.verify_bytes(&self.signing_bytes()?, &sig)
    }

    /// Checks `expected_origin`'s signatures without decoding the `T`.
    ///
    /// Signatures under key ids that `keys` does not know for the origin are ignored; at least one must
    /// be by a known key, and every signature by a known key must be valid.
    pub fn verify_signatures<K: KeyLookup + ?Sized>(
        &self,
        expected_origin: &ClusterId,
        keys: &K,
    ) -> Result<(), ProtoError> {
        let by_key = self
            .signatures
            .get(expected_origin)
            .filter(|m| !m.is_empty())
            .ok_or_else(|| ProtoError::MissingSignature { origin: expected_origin.clone() })?;
        let bytes = self.signing_bytes()?;
        let mut verified = 0usize;
        for (key_id, sig) in by_key {
            let Some(key) = keys.verify_key(expected_origin, key_id) else {
                continue;
            };
            key.verify_bytes(&bytes, &decode_signature(sig)?)?;
            verified += 1;
        }
        if verified == 0 {
            let ids: Vec<&str> = by_key.keys().map(KeyId::as_str).collect();
            return Err(ProtoError::UnknownKey { origin: expected_origin.clone(), key_id: ids.join(",") });
        }
        Ok(())
    }
}

impl<T: Serialize> Signed<T> {
    /// Serializes `value` (which must serialize as a JSON object without `signatures` or `unsigned`
    /// fields) and signs it as `origin` with `key`.
    pub fn sign(value: T, origin: &ClusterId, key: &ClusterSigningKey) -> Result<Self, ProtoError> {
        let Value::Object(content) = serde_json::to_value(&value)? else {
            return Err(ProtoError::Json("a signed value must serialize as a JSON object".into()));
        };
        if content.contains_key(SIGNATURES_FIELD) || content.contains_key(UNSIGNED_FIELD) {
            return Err(ProtoError::Json("a signed value must not have `signatures` or `unsigned` fields".into()));
        }
        let mut signed = Self { content, signatures: Signatures::new(), unsigned: None, _marker: PhantomData };
        signed.add_signature(origin, key)?;
        Ok(signed)
    }
}

impl<T: DeserializeOwned> Signed<T> {
    /// Verifies `expected_origin`'s signature (see [`Signed::verify_signatures`]) and only then decodes
    /// the `T`. Checks of the content itself (issuer, audience, expiry…) are the `T`'s own `check`.
    pub fn verify<K: KeyLookup + ?Sized>(&self, expected_origin: &ClusterId, keys: &K) -> Result<T, ProtoError> {
        self.verify_signatures(expected_origin, keys)?;
        Ok(serde_json::from_value(Value::Object(self.content.clone()))?)
    }
}

impl<T> Clone for Signed<T> {
    fn clone(&self) -> Self {
        Self {
            content: self.content.clone(),
            signatures: self.signatures.clone(),
            unsigned: self.unsigned.clone(),
            _marker: PhantomData,
        }
    }
}

impl<T> PartialEq for Signed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.content == other.content && self.signatures == other.signatures && self.unsigned == other.unsigned
    }
}

impl<T> fmt::Debug for Signed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signed")
            .field("content", &self.content)
            .field("signatures", &self.signatures)
            .field("unsigned", &self.unsigned)
            .finish()
    }
}

impl<T> Serialize for Signed<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de, T> Deserialize<'de> for Signed<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let StrictValue(v) = StrictValue::deserialize(deserializer)?;
        Self::from_value(v).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::keys::TrustedKeys;
    use proptest::prelude::*;
    use serde_json::json;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Claim {
        subject: String,
        n: i64,
        tags: Vec<String>,
    }

    fn key(n: u8) -> ClusterSigningKey {
        ClusterSigningKey::from_secret_bytes(&[n; 32])
    }

    fn cid(s: &str) -> ClusterId {
        s.parse().unwrap()
    }

    fn trusted() -> TrustedKeys {
        let mut t = TrustedKeys::new();
        t.pin(cid("aaaaa"), key(1).public());
        t.pin(cid("bbbbb"), key(2).public());
        t
    }

    fn claim() -> Claim {
        Claim { subject: "alice".into(), n: 7, tags: vec!["x".into(), "ü\"".into()] }
    }

    #[test]
    fn sign_verify_round_trip() {
        let s = Signed::sign(claim(), &cid("aaaaa"), &key(1)).unwrap();
        assert_eq!(s.verify(&cid("aaaaa"), &trusted()).unwrap(), claim());
        // Through JSON text and back, embedded in another document.
        let doc = json!({"grant": s, "other": 1});
        let text = serde_json::to_string(&doc).unwrap();
        #[derive(Deserialize)]
        struct Outer {
            grant: Signed<Claim>,
        }
        let outer: Outer = serde_json::from_str(&text).unwrap();
        assert_eq!(outer.grant.verify(&cid("aaaaa"), &trusted()).unwrap(), claim());
        // A closure works as a key lookup.
        let lookup = |c: &ClusterId, k: &KeyId| trusted().verify_key(c, k);
        assert!(outer.grant.verify(&cid("aaaaa"), &lookup).is_ok());
    }

    #[test]
    fn wire_shape() {
        let s = Signed::sign(claim(), &cid("aaaaa"), &key(1)).unwrap();
        let v = s.to_value();
        let sig = &v["signatures"]["aaaaa"][key(1).key_id().as_str()];
        assert_eq!(sig.as_str().unwrap().len(), 86);
        assert_eq!(v["subject"], "alice");
        assert_eq!(
            String::from_utf8(s.signing_bytes().unwrap()).unwrap(),
            r#"{"n":7,"subject":"alice","tags":["x","ü\""]}"#
        );
    }

    #[test]
    fn expected_origin_is_required() {
        // Signed by bbbbb with bbbbb's real key: not good enough when aaaaa is expected.
        let s = Signed::sign(claim(), &cid("bbbbb"), &key(2)).unwrap();
        assert_eq!(s.verify(&cid("aaaaa"), &trusted()).unwrap_err().code(), "missing_signature");
        // bbbbb signing under aaaaa's name with its own key: unknown key for aaaaa.
        let s = Signed::sign(claim(), &cid("aaaaa"), &key(2)).unwrap();
        assert_eq!(s.verify(&cid("aaaaa"), &trusted()).unwrap_err().code(), "unknown_key");
        // Unsigned object.
        let s = Signed::<Claim>::from_value(serde_json::to_value(claim()).unwrap()).unwrap();
        assert_eq!(s.verify(&cid("aaaaa"), &trusted()).unwrap_err().code(), "missing_signature");
    }

    #[test]
    fn unsigned_is_not_covered_and_survives() {
        let mut s = Signed::sign(claim(), &cid("aaaaa"), &key(1)).unwrap();
        s.set_unsigned(Some(json!({"age": 3})));
        let back: Signed<Claim> = serde_json::from_value(s.to_value()).unwrap();
        assert_eq!(back.unsigned(), Some(&json!({"age": 3})));
        assert!(back.verify(&cid("aaaaa"), &trusted()).is_ok());
    }

    #[test]
    fn refuses_bad_inputs() {
        assert!(Signed::sign(5, &cid("aaaaa"), &key(1)).is_err());
        assert!(Signed::sign(json!({"signatures": 1}), &cid("aaaaa"), &key(1)).is_err());
        assert!(Signed::sign(json!({"x": 1.5}), &cid("aaaaa"), &key(1)).is_err());
        for bad in [
            &br#"[1]"#[..],
            br#"{"a": 1, "a": 2}"#,
            br#"{"a": 0.5}"#,
            br#"{"signatures": {"AAAAA": {}}}"#,
            br#"{"signatures": {"aaaaa": {"rsa:x": "y"}}}"#,
            br#"{"signatures": []}"#,
        ] {
            assert!(Signed::<Claim>::from_slice(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn tampered_content_fails() {
        let s = Signed::sign(claim(), &cid("aaaaa"), &key(1)).unwrap();
        let mut v = s.to_value();
        v["n"] = json!(8);
        let t = Signed::<Claim>::from_value(v).unwrap();
        assert_eq!(t.verify(&cid("aaaaa"), &trusted()).unwrap_err().code(), "bad_signature");
        let mut v = s.to_value();
        v["extra"] = json!(true);
        let t = Signed::<Claim>::from_value(v).unwrap();
        assert_eq!(t.verify(&cid("aaaaa"), &trusted()).unwrap_err().code(), "bad_signature");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn round_trip_any_claim(subject in ".{0,20}", n in -1000i64..1000, tags in prop::collection::vec(".{0,5}", 0..4)) {
            let c = Claim { subject, n, tags };
            let s = Signed::sign(c.clone(), &cid("aaaaa"), &key(1)).unwrap();
            let text = serde_json::to_vec(&s).unwrap();
            let back = Signed::<Claim>::from_slice(&text).unwrap();
            prop_assert_eq!(back.verify(&cid("aaaaa"), &trusted()).unwrap(), c);
            prop_assert!(back.verify(&cid("bbbbb"), &trusted()).is_err());
        }

        #[test]
        fn any_byte_flip_breaks_verification(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let s = Signed::sign(claim(), &cid("aaaaa"), &key(1)).unwrap();
            let mut text = serde_json::to_vec(&s).unwrap();
            let i = pos.index(text.len());
            text[i] ^= 1 << bit;
            let ok = Signed::<Claim>::from_slice(&text)
                .and_then(|t| t.verify(&cid("aaaaa"), &trusted()));
            prop_assert!(ok.is_err(), "flip at {} of {}", i, String::from_utf8_lossy(&text));
        }

        #[test]
        fn any_signature_bit_flip_breaks_verification(byte in 0usize..64, bit in 0u8..8) {
            let s = Signed::sign(claim(), &cid("aaaaa"), &key(1)).unwrap();
            let mut v = s.to_value();
            let kid = key(1).key_id().as_str().to_owned();
            let sig = v["signatures"]["aaaaa"][&kid].as_str().unwrap().to_owned();
            let mut raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD_NO_PAD, sig).unwrap();
            raw[byte] ^= 1 << bit;
            v["signatures"]["aaaaa"][&kid] =
                json!(base64::Engine::encode(&base64::engine::general_purpose::STANDARD_NO_PAD, raw));
            let t = Signed::<Claim>::from_value(v).unwrap();
            prop_assert_eq!(t.verify(&cid("aaaaa"), &trusted()).unwrap_err().code(), "bad_signature");
        }
    }
}
