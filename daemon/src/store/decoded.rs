//! Decoded copies of the rows every authenticated request reads (its token and its user), keyed
//! by the row's exact bytes.
//!
//! Not a cache of anything the store says: every read still fetches the row from the store, and a copy
//! is used only when the bytes just read are the bytes it was decoded from — otherwise (the row
//! changed, or was never seen) they are decoded afresh. So a revoked, expired, deactivated, merged
//! or re-scoped token is judged on the row as it is now, whichever process changed it; what is
//! saved is only the JSON decoding, which was a fifth of the CPU `users/current` cost.

use super::StoreResult;
use super::kv::Value;
use std::collections::HashMap;
use std::sync::Mutex;

/// Shards, so that the two runtime threads rarely wait for one another.
const SHARDS: usize = 8;
/// Rows kept per shard; a full shard is emptied (the next reads decode again).
const PER_SHARD: usize = 512;

/// Decoded rows of one tree, by key.
pub(super) struct Decoded<T> {
    shards: Vec<Shard<T>>,
}

/// Key → (the stored bytes, the row decoded from them).
type Shard<T> = Mutex<HashMap<Vec<u8>, (Value, T)>>;

impl<T: Clone> Decoded<T> {
    pub(super) fn new() -> Decoded<T> {
        Decoded { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect() }
    }

    /// The row whose key is `key` and whose stored bytes are `bytes`: a copy of the one decoded
    /// from these same bytes before, else `decode(bytes)`.
    pub(super) fn get(
        &self,
        key: &[u8],
        bytes: &Value,
        decode: impl FnOnce(&[u8]) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let shard = &self.shards[shard_of(key)];
        if let Ok(rows) = shard.lock()
            && let Some((seen, row)) = rows.get(key)
            && seen == bytes
        {
            return Ok(row.clone());
        }
        let row = decode(bytes)?;
        // A poisoned shard only means no copies are kept.
        if let Ok(mut rows) = shard.lock() {
            if rows.len() >= PER_SHARD && !rows.contains_key(key) {
                rows.clear();
            }
            rows.insert(key.to_vec(), (bytes.clone(), row.clone()));
        }
        Ok(row)
    }
}

fn shard_of(key: &[u8]) -> usize {
    // FNV-1a: keys are uuids, whose last characters are random.
    let h = key.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    (h % SHARDS as u64) as usize
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::cell::Cell;

    fn decode_counting<'a>(n: &'a Cell<u32>) -> impl Fn(&[u8]) -> StoreResult<String> + 'a {
        move |b| {
            n.set(n.get() + 1);
            Ok(String::from_utf8_lossy(b).into_owned())
        }
    }

    #[test]
    fn a_copy_is_used_only_for_the_same_bytes() {
        let d = Decoded::new();
        let n = Cell::new(0);
        let v1 = Value::owned(b"one".to_vec());
        assert_eq!(d.get(b"k", &v1, decode_counting(&n)).unwrap(), "one");
        assert_eq!(d.get(b"k", &v1, decode_counting(&n)).unwrap(), "one");
        assert_eq!(n.get(), 1, "the same bytes are decoded once");
        // The row changed (a revocation, a new scope…): decoded afresh, never the old copy.
        let v2 = Value::owned(b"two".to_vec());
        assert_eq!(d.get(b"k", &v2, decode_counting(&n)).unwrap(), "two");
        assert_eq!(n.get(), 2);
        // And back: bytes decide, not the order things happened in.
        assert_eq!(d.get(b"k", &v1, decode_counting(&n)).unwrap(), "one");
        assert_eq!(n.get(), 3);
        // Another key with the same bytes is its own row.
        assert_eq!(d.get(b"other", &v1, decode_counting(&n)).unwrap(), "one");
        assert_eq!(n.get(), 4);
    }

    #[test]
    fn decoding_errors_are_not_kept() {
        let d: Decoded<String> = Decoded::new();
        let v = Value::owned(b"x".to_vec());
        let bad = |_: &[u8]| Err(super::super::StoreError::Codec { tree: "t", message: "bad".into() });
        assert!(d.get(b"k", &v, bad).is_err());
        let n = Cell::new(0);
        assert_eq!(d.get(b"k", &v, decode_counting(&n)).unwrap(), "x");
        assert_eq!(n.get(), 1);
    }

    #[test]
    fn a_full_shard_is_emptied_not_grown() {
        let d = Decoded::new();
        let n = Cell::new(0);
        let v = Value::owned(b"v".to_vec());
        for i in 0..(SHARDS * PER_SHARD * 4) {
            d.get(format!("key-{i}").as_bytes(), &v, decode_counting(&n)).unwrap();
        }
        assert!(d.shards.iter().all(|s| s.lock().unwrap().len() <= PER_SHARD));
    }
}
