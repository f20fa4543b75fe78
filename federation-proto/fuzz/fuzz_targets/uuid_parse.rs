//! Fuzzes the cluster id, object uuid, key id and verify key parsers: no panics, and exact round trips.
#![no_main]

use federation_proto::{ClusterId, KeyId, ObjectKind, ObjectUuid, VerifyKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = s.parse::<ClusterId>() {
        assert_eq!(c.as_str(), s);
    }
    if let Ok(u) = s.parse::<ObjectUuid>() {
        assert_eq!(u.to_string(), s);
        assert!(ObjectUuid::parse_kind(s, u.kind()).is_ok());
        let again = ObjectUuid::new(u.cluster().clone(), u.kind(), u.id()).unwrap();
        assert_eq!(again, u);
    }
    for kind in ObjectKind::ALL {
        if let Ok(u) = ObjectUuid::parse_kind(s, kind) {
            assert_eq!(u.kind(), kind);
        }
    }
    let _ = serde_json::from_slice::<ObjectUuid>(data);
    if let Ok(k) = s.parse::<KeyId>() {
        assert_eq!(k.as_str(), s);
    }
    if let Ok(k) = s.parse::<VerifyKey>() {
        assert_eq!(k.to_string(), s);
    }
});
