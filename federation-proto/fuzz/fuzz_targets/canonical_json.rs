//! Fuzzes the strict JSON reader and the canonical writer: canonical output re-reads to the same value
//! and is a fixed point.
#![no_main]

use federation_proto::canonical::{canonical_json, from_strict_slice};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = from_strict_slice(data) else {
        return;
    };
    let c = canonical_json(&v).unwrap();
    let back = from_strict_slice(c.as_bytes()).unwrap();
    assert_eq!(back, v);
    assert_eq!(canonical_json(&back).unwrap(), c);
});
