//! Fuzzes the `Authorization: Hearth-Signature …` header parser and verifier. Nothing the fuzzer makes may
//! verify against the pinned key (it would need an ed25519 forgery), and what parses must re-format and
//! re-parse to the same value.
#![no_main]

use federation_proto::{ClusterId, ClusterSigningKey, RequestSignature, TrustedKeys};
use libfuzzer_sys::fuzz_target;

/// The seed header (seeds/header_parse) was signed over this request at this time with this nonce.
const SEED_TS: i64 = 1_700_000_000;
const SEED_NONCE: &str = "fuzz-seed-nonce-0001";

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sig) = RequestSignature::parse_header_value(s) else {
        return;
    };
    let again = RequestSignature::parse_header_value(&sig.to_header_value()).unwrap();
    assert_eq!(again, sig);

    let a: ClusterId = "aaaaa".parse().unwrap();
    let b: ClusterId = "bbbbb".parse().unwrap();
    let key = ClusterSigningKey::from_secret_bytes(&[1; 32]);
    let mut trusted = TrustedKeys::new();
    trusted.pin(a, key.public());
    // The seed corpus holds a header signed by this key over exactly this request; any change to it
    // must fail. The unmodified seed is the one input allowed to verify.
    let ok = sig.verify("POST", "/federation/v1/notices", b"{}", &b, sig.ts(), 300, &trusted);
    if ok.is_ok() {
        let original = RequestSignature::sign(
            "POST",
            "/federation/v1/notices",
            &"aaaaa".parse().unwrap(),
            &b,
            SEED_TS,
            SEED_NONCE,
            b"{}",
            &key,
        )
        .unwrap();
        assert_eq!(original, sig, "a modified header verified");
    }
});
