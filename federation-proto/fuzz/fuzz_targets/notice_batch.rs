//! Fuzzes the notice batch decoder (`POST /federation/v1/notices` bodies) and its checks: no panics, JSON
//! round trips are exact, and the batch id is a pure function of the notices.
#![no_main]

use federation_proto::{ClusterId, NoticeBatch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = serde_json::from_slice::<NoticeBatch>(data) else {
        return;
    };
    let a: ClusterId = "aaaaa".parse().unwrap();
    let b: ClusterId = "bbbbb".parse().unwrap();
    let checked = batch.check(&a, &b);
    let id = batch.batch_id();
    let text = serde_json::to_vec(&batch).unwrap();
    let back: NoticeBatch = serde_json::from_slice(&text).unwrap();
    assert_eq!(back, batch);
    assert_eq!(back.batch_id(), id);
    assert_eq!(back.check(&a, &b).is_ok(), checked.is_ok());
    if checked.is_ok() {
        for n in &batch.notices {
            assert_eq!(n.user().uuid.cluster(), &a);
        }
    }
});
