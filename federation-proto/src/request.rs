//! Signed server-to-server requests: the `Authorization: Hearth-Signature …` header, built and checked here.
//!
//! Header value:
//! `Hearth-Signature origin="aaaaa",destination="bbbbb",key="ed25519:…",ts="1700000000",nonce="…",sig="…"`.
//! `sig` is the unpadded base64 ed25519 signature, by the origin's key `key`, of the canonical JSON of
//! `{"method", "uri", "origin", "destination", "ts", "nonce", "body_sha256"}` where `uri` is the request's
//! path and query exactly as sent on the wire, `ts` is an integer (unix seconds) and `body_sha256` is the
//! lowercase hex SHA-256 of the body bytes (of the empty string for a request without a body).
//!
//! Signing and verifying sit side by side so they cannot drift. [`RequestSignature::verify`] checks the
//! destination, the clock skew, that the key is one the receiver trusts for the origin, the body hash and
//! the signature (`verify_strict`). It cannot check that the nonce is fresh: that needs storage, so the
//! daemon must, after a successful `verify`, refuse a nonce it has already seen from that origin within the
//! skew window (keep seen nonces for at least `2 × max_skew_secs`).

use std::fmt;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::canonical::{MAX_SAFE_INTEGER, canonical_json};
use crate::cluster::ClusterId;
use crate::error::{ParseError, ProtoError};
use crate::keys::{ClusterSigningKey, KeyId, KeyLookup, decode_signature, encode_signature};

/// The authorization scheme name.
pub const SCHEME: &str = "Hearth-Signature";
/// The default allowed difference between a request's `ts` and the receiver's clock, in seconds.
pub const DEFAULT_MAX_SKEW_SECS: i64 = 300;
/// Shortest nonce accepted.
pub const MIN_NONCE_LEN: usize = 16;
/// Longest nonce accepted.
pub const MAX_NONCE_LEN: usize = 64;
/// Longest header value parsed; anything longer is refused before looking at it.
const MAX_HEADER_LEN: usize = 1024;

/// The parsed (or freshly made) `Hearth-Signature` authorization of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestSignature {
    origin: ClusterId,
    destination: ClusterId,
    key: KeyId,
    ts: i64,
    nonce: String,
    sig: String,
}

/// Checks a nonce: `[A-Za-z0-9_-]{16,64}` (e.g. 22 characters of url-safe base64 of 16 random bytes).
pub fn check_nonce(nonce: &str) -> Result<(), ParseError> {
    if !(MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&nonce.len())
        || !nonce.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ParseError::new(
            "nonce",
            format!("must be {MIN_NONCE_LEN} to {MAX_NONCE_LEN} characters of [A-Za-z0-9_-]"),
        ));
    }
    Ok(())
}

fn check_ts(ts: i64) -> Result<(), ParseError> {
    if !(0..=MAX_SAFE_INTEGER).contains(&ts) {
        return Err(ParseError::new("timestamp", "must be in 0..=2^53-1"));
    }
    Ok(())
}

/// Lowercase hex SHA-256 of a request body.
pub fn body_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

#[allow(clippy::too_many_arguments)]
fn signing_string(
    method: &str,
    uri: &str,
    origin: &ClusterId,
    destination: &ClusterId,
    ts: i64,
    nonce: &str,
    body_hash: &str,
) -> Result<String, ProtoError> {
    canonical_json(&json!({
        "method": method,
        "uri": uri,
        "origin": origin.as_str(),
        "destination": destination.as_str(),
        "ts": ts,
        "nonce": nonce,
        "body_sha256": body_hash,
    }))
}

impl RequestSignature {
    /// Signs a request as `origin` for `destination`. `uri` is the path and query exactly as they will be
    /// sent; `ts` is the sender's clock (unix seconds); `nonce` is fresh randomness from the caller
    /// (see [`check_nonce`]).
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        method: &str,
        uri: &str,
        origin: &ClusterId,
        destination: &ClusterId,
        ts: i64,
        nonce: &str,
        body: &[u8],
        key: &ClusterSigningKey,
    ) -> Result<RequestSignature, ProtoError> {
        check_ts(ts)?;
        check_nonce(nonce)?;
        let msg = signing_string(method, uri, origin, destination, ts, nonce, &body_sha256(body))?;
        Ok(RequestSignature {
            origin: origin.clone(),
            destination: destination.clone(),
            key: key.key_id().clone(),
            ts,
            nonce: nonce.to_owned(),
            sig: encode_signature(&key.sign_bytes(msg.as_bytes())),
        })
    }

    /// The `Authorization` header value.
    pub fn to_header_value(&self) -> String {
        format!(
            "{SCHEME} origin=\"{}\",destination=\"{}\",key=\"{}\",ts=\"{}\",nonce=\"{}\",sig=\"{}\"",
            self.origin, self.destination, self.key, self.ts, self.nonce, self.sig
        )
    }

    /// Parses an `Authorization` header value. Strict: the scheme, then exactly the six parameters
    /// `name="value"` (any order, each once, separated by `,` with optional spaces), nothing else.
    pub fn parse_header_value(value: &str) -> Result<RequestSignature, ParseError> {
        let err = |reason: &str| ParseError::new("signature header", reason);
        if value.len() > MAX_HEADER_LEN {
            return Err(err("too long"));
        }
        // Auth schemes are case-insensitive (RFC 9110 §11.1).
        let Some(params) = value
            .get(..SCHEME.len())
            .filter(|scheme| scheme.eq_ignore_ascii_case(SCHEME))
            .and_then(|_| value.get(SCHEME.len()..))
            .and_then(|rest| rest.strip_prefix(' '))
        else {
            return Err(err("must start with \"Hearth-Signature \""));
        };
        let mut fields: [Option<&str>; 6] = [None; 6];
        const NAMES: [&str; 6] = ["origin", "destination", "key", "ts", "nonce", "sig"];
        for part in params.split(',') {
            let part = part.trim_matches(' ');
            let Some((name, quoted)) = part.split_once('=') else {
                return Err(err("parameters must be name=\"value\""));
            };
            let Some(v) =
                quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')).filter(|v| !v.contains(['"', '\\']))
            else {
                return Err(err("parameter values must be in double quotes"));
            };
            let Some(slot) = NAMES.iter().position(|n| *n == name) else {
                return Err(err("unknown parameter"));
            };
            if fields[slot].replace(v).is_some() {
                return Err(err("duplicate parameter"));
            }
        }
        let [Some(origin), Some(destination), Some(key), Some(ts), Some(nonce), Some(sig)] = fields else {
            return Err(err("missing parameter"));
        };
        if ts.is_empty() || ts.len() > 16 || !ts.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("ts must be decimal unix seconds"));
        }
        let ts: i64 = ts.parse().map_err(|_| err("ts must be decimal unix seconds"))?;
        check_ts(ts)?;
        check_nonce(nonce)?;
        if decode_signature(sig).is_err() {
            return Err(err("sig must be 86 characters of unpadded base64"));
        }
        Ok(RequestSignature {
            origin: origin.parse()?,
            destination: destination.parse()?,
            key: key.parse()?,
            ts,
            nonce: nonce.to_owned(),
            sig: sig.to_owned(),
        })
    }

    /// Verifies the request as received by cluster `me` at time `now`, and returns the authenticated
    /// origin. Checks, in order: destination is `me`; `|now − ts| ≤ max_skew_secs`; `keys` knows the
    /// named key for the origin; the body hashes to the signed hash; the signature (`verify_strict`).
    /// The caller must then check the nonce is unseen (see the module docs).
    #[allow(clippy::too_many_arguments)]
    pub fn verify<K: KeyLookup + ?Sized>(
        &self,
        method: &str,
        uri: &str,
        body: &[u8],
        me: &ClusterId,
        now: i64,
        max_skew_secs: i64,
        keys: &K,
    ) -> Result<ClusterId, ProtoError> {
        if &self.destination != me {
            return Err(ProtoError::WrongDestination { expected: me.clone(), got: self.destination.clone() });
        }
        if now.abs_diff(self.ts) > max_skew_secs.unsigned_abs() || max_skew_secs < 0 {
            return Err(ProtoError::ClockSkew { ts: self.ts, now, max_skew_secs });
        }
        let key = keys
            .verify_key(&self.origin, &self.key)
            .ok_or_else(|| ProtoError::UnknownKey { origin: self.origin.clone(), key_id: self.key.to_string() })?;
        let msg =
            signing_string(method, uri, &self.origin, &self.destination, self.ts, &self.nonce, &body_sha256(body))?;
        let sig = decode_signature(&self.sig)?;
        if key.verify_bytes(msg.as_bytes(), &sig).is_err() {
            // Tell a changed body apart from a bad signature only once the origin's key is known.
            return Err(ProtoError::BadSignature);
        }
        Ok(self.origin.clone())
    }

    /// The claimed origin (authenticated only once [`RequestSignature::verify`] succeeded).
    pub fn origin(&self) -> &ClusterId {
        &self.origin
    }

    /// The destination the request was addressed to.
    pub fn destination(&self) -> &ClusterId {
        &self.destination
    }

    /// The id of the key that signed.
    pub fn key_id(&self) -> &KeyId {
        &self.key
    }

    /// The sender's timestamp (unix seconds).
    pub fn ts(&self) -> i64 {
        self.ts
    }

    /// The nonce, which the receiver records to refuse replays.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }
}

impl fmt::Display for RequestSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_header_value())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::keys::TrustedKeys;
    use proptest::prelude::*;

    const NONCE: &str = "n0nce-n0nce_n0nce";
    const NOW: i64 = 1_700_000_000;

    fn key(n: u8) -> ClusterSigningKey {
        ClusterSigningKey::from_secret_bytes(&[n; 32])
    }

    fn cid(s: &str) -> ClusterId {
        s.parse().unwrap()
    }

    fn trusted() -> TrustedKeys {
        let mut t = TrustedKeys::new();
        t.pin(cid("aaaaa"), key(1).public());
        t.pin(cid("ccccc"), key(3).public());
        t
    }

    fn signed(body: &[u8]) -> RequestSignature {
        RequestSignature::sign(
            "POST",
            "/federation/v1/notices?x=1",
            &cid("aaaaa"),
            &cid("bbbbb"),
            NOW,
            NONCE,
            body,
            &key(1),
        )
        .unwrap()
    }

    fn verify(sig: &RequestSignature, body: &[u8]) -> Result<ClusterId, ProtoError> {
        sig.verify(
            "POST",
            "/federation/v1/notices?x=1",
            body,
            &cid("bbbbb"),
            NOW + 10,
            DEFAULT_MAX_SKEW_SECS,
            &trusted(),
        )
    }

    #[test]
    fn round_trip_through_header() {
        let s = signed(b"{}");
        let h = s.to_header_value();
        assert!(h.starts_with("Hearth-Signature origin=\"aaaaa\",destination=\"bbbbb\",key=\"ed25519:"));
        let p = RequestSignature::parse_header_value(&h).unwrap();
        assert_eq!(p, s);
        assert_eq!(verify(&p, b"{}").unwrap(), cid("aaaaa"));
        assert_eq!(p.nonce(), NONCE);
        assert_eq!(p.ts(), NOW);
        // Spaces after commas and another parameter order are fine.
        let reordered = format!(
            "Hearth-Signature sig=\"{}\", nonce=\"{NONCE}\", ts=\"{NOW}\", key=\"{}\", destination=\"bbbbb\", origin=\"aaaaa\"",
            s.sig, s.key
        );
        assert_eq!(RequestSignature::parse_header_value(&reordered).unwrap(), s);
        let lower = h.replacen("Hearth-Signature", "hearth-signature", 1);
        assert_eq!(RequestSignature::parse_header_value(&lower).unwrap(), s);
    }

    #[test]
    fn verification_failures() {
        let s = signed(b"{}");
        let me = cid("bbbbb");
        let uri = "/federation/v1/notices?x=1";
        let t = trusted();
        let code = |r: Result<ClusterId, ProtoError>| r.unwrap_err().code();
        assert_eq!(code(verify(&s, b"{ }")), "bad_signature");
        assert_eq!(code(s.verify("PUT", uri, b"{}", &me, NOW, 300, &t)), "bad_signature");
        assert_eq!(code(s.verify("POST", "/federation/v1/notices", b"{}", &me, NOW, 300, &t)), "bad_signature");
        assert_eq!(code(s.verify("POST", uri, b"{}", &cid("ccccc"), NOW, 300, &t)), "wrong_destination");
        assert_eq!(code(s.verify("POST", uri, b"{}", &me, NOW + 301, 300, &t)), "clock_skew");
        assert_eq!(code(s.verify("POST", uri, b"{}", &me, NOW - 301, 300, &t)), "clock_skew");
        assert!(s.verify("POST", uri, b"{}", &me, NOW - 300, 300, &t).is_ok());
        assert_eq!(code(s.verify("POST", uri, b"{}", &me, i64::MIN, 300, &t)), "clock_skew");
        assert_eq!(code(s.verify("POST", uri, b"{}", &me, NOW, -1, &t)), "clock_skew");
        assert_eq!(code(s.verify("POST", uri, b"{}", &me, NOW, 300, &TrustedKeys::new())), "unknown_key");

        // ccccc claims to be aaaaa, signing with its own key: the key is not aaaaa's.
        let forged = RequestSignature::sign("POST", uri, &cid("aaaaa"), &me, NOW, NONCE, b"{}", &key(3)).unwrap();
        assert_eq!(code(verify(&forged, b"{}")), "unknown_key");
        // Header fields swapped after signing.
        let mut h = s.clone();
        h.origin = cid("ccccc");
        assert_eq!(code(verify(&h, b"{}")), "unknown_key");
        let mut h = s.clone();
        h.nonce = "another-nonce-0000".into();
        assert_eq!(code(verify(&h, b"{}")), "bad_signature");
        let mut h = s.clone();
        h.ts = NOW + 1;
        assert_eq!(code(verify(&h, b"{}")), "bad_signature");
    }

    #[test]
    fn sign_refuses_bad_nonce_or_ts() {
        let k = key(1);
        let (a, b) = (cid("aaaaa"), cid("bbbbb"));
        assert!(RequestSignature::sign("GET", "/", &a, &b, NOW, "short", b"", &k).is_err());
        assert!(RequestSignature::sign("GET", "/", &a, &b, NOW, "bad nonce with space", b"", &k).is_err());
        assert!(RequestSignature::sign("GET", "/", &a, &b, -1, NONCE, b"", &k).is_err());
    }

    #[test]
    fn header_parse_table() {
        let good = signed(b"").to_header_value();
        let sig = signed(b"").sig;
        let kid = key(1).key_id().to_string();
        let bad = [
            String::new(),
            "Hearth-Signature".into(),
            "Hearth-Signature ".into(),
            good.replacen("Hearth-Signature ", "Bearer ", 1),
            format!("{good},origin=\"aaaaa\""),
            format!("{good},extra=\"1\""),
            format!("{good},"),
            good.replace(",nonce=", ",,nonce="),
            good.replace("origin=\"aaaaa\"", "origin=aaaaa"),
            good.replace("origin=\"aaaaa\"", "origin=\"AAAAA\""),
            good.replace("origin=\"aaaaa\",", ""),
            good.replace("ts=\"1700000000\"", "ts=\"-1\""),
            good.replace("ts=\"1700000000\"", "ts=\"+1700000000\""),
            good.replace("ts=\"1700000000\"", "ts=\"\""),
            good.replace("ts=\"1700000000\"", "ts=\"99999999999999999999\""),
            good.replace(NONCE, "short"),
            good.replace(NONCE, "n\\\"once-n0nce_n0nce"),
            good.replace(&sig, &sig[1..]),
            good.replace(&sig, &format!("{sig}==")),
            good.replace(&kid, "ed25519:"),
            format!("{good}\n"),
            "Hearth-Signature origin=\"aaaaa\"".repeat(100),
        ];
        for b in bad {
            assert!(RequestSignature::parse_header_value(&b).is_err(), "{b:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn sign_verify_any_request(method in "[A-Z]{3,6}", uri in "/[ -~]{0,40}", body in prop::collection::vec(any::<u8>(), 0..200),
                                   ts in 0i64..4_000_000_000, nonce in "[A-Za-z0-9_-]{16,64}") {
            let (a, b) = (cid("aaaaa"), cid("bbbbb"));
            let s = RequestSignature::sign(&method, &uri, &a, &b, ts, &nonce, &body, &key(1)).unwrap();
            let p = RequestSignature::parse_header_value(&s.to_header_value()).unwrap();
            prop_assert_eq!(&p, &s);
            prop_assert_eq!(p.verify(&method, &uri, &body, &b, ts, 300, &trusted()).unwrap(), a);
            let mut other = body.clone();
            other.push(0);
            prop_assert!(p.verify(&method, &uri, &other, &b, ts, 300, &trusted()).is_err());
        }

        #[test]
        fn header_byte_flip_never_verifies_or_panics(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut h = signed(b"{}").to_header_value().into_bytes();
            // The scheme is case-insensitive, so start after it.
            let i = SCHEME.len() + pos.index(h.len() - SCHEME.len());
            h[i] ^= 1 << bit;
            if let Ok(text) = String::from_utf8(h)
                && let Ok(p) = RequestSignature::parse_header_value(&text)
            {
                prop_assert!(verify(&p, b"{}").is_err(), "{}", text);
            }
        }
    }
}
