//! Fuzzes decoding and verification of signed objects as they arrive from peers (key documents, token
//! and login assertions, migration requests and grants, token validation requests): no panics, and no
//! content other than what the pinned key signed may ever verify.
#![no_main]

use federation_proto::canonical::canonical_json;
use federation_proto::{
    ClusterId, ClusterSigningKey, KeyDocument, LoginAssertion, MigrationGrant, MigrationRequest, Signed,
    TokenAssertion, TokenValidationRequest, TrustedKeys,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// The signed bytes of every seed in `seeds/signed_verify` (all signed by aaaaa with the key below):
/// the only contents allowed to verify. Read once; the harness, unlike the crate, may do I/O.
fn known_contents() -> &'static BTreeSet<Vec<u8>> {
    static KNOWN: OnceLock<BTreeSet<Vec<u8>>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/seeds/signed_verify");
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| std::fs::read(e.unwrap().path()).ok())
            .filter_map(|bytes| Signed::<Value>::from_slice(&bytes).ok())
            .map(|s| s.signing_bytes().unwrap())
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let a: ClusterId = "aaaaa".parse().unwrap();
    let key = ClusterSigningKey::from_secret_bytes(&[1; 32]);
    let mut trusted = TrustedKeys::new();
    trusted.pin(a.clone(), key.public());

    let _ = serde_json::from_slice::<TokenValidationRequest>(data);
    if let Ok(signed) = Signed::<Value>::from_slice(data) {
        // Serialization round trip is exact.
        let again = Signed::<Value>::from_value(signed.to_value()).unwrap();
        assert_eq!(again, signed);
        if let Ok(v) = signed.verify(&a, &trusted) {
            let bytes = canonical_json(&v).unwrap().into_bytes();
            assert!(known_contents().contains(&bytes), "forged content verified");
        }
        let _ = KeyDocument::verify_update(
            &Signed::<KeyDocument>::from_value(signed.to_value()).unwrap(),
            &a,
            trusted.keys_of(&a).unwrap(),
            0,
        );
    }
    if let Ok(s) = Signed::<TokenAssertion>::from_slice(data) {
        let _ = s.verify(&a, &trusted);
    }
    if let Ok(s) = Signed::<LoginAssertion>::from_slice(data) {
        let _ = s.verify(&a, &trusted);
    }
    if let Ok(s) = Signed::<MigrationRequest>::from_slice(data) {
        let _ = s.verify(&a, &trusted);
    }
    if let Ok(s) = serde_json::from_slice::<Signed<MigrationGrant>>(data) {
        let _ = s.verify(&a, &trusted);
    }
});
