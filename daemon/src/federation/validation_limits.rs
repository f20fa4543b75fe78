//! What tokens we cannot check ourselves may make us spend on a peer: each validation is a signed
//! round trip to the token's issuer, so anyone holding made-up tokens could otherwise make us send
//! one per request (issue 10, finding 8).
//!
//! - [`RefusedTokens`] remembers, for a short while and in bounded memory, the tokens an issuer
//!   refused (keyed by token uuid and the SHA-256 of the secret salted for us, never the secret):
//!   presenting one again costs no round trip.
//! - [`PeerBudget`] is a token bucket per issuer: at most `burst` validations at once, refilled at
//!   `per_sec`. Concurrent first uses of one token already share one validation (see `cache`), so
//!   the bucket is spent per distinct token.
//!
//! Times are nanoseconds of the injected [`Clock`](crate::clock::Clock), passed in by the caller.

use federation_proto::{ClusterId, ObjectUuid, SecretHash};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

const NANOS_PER_SEC: i128 = 1_000_000_000;

type RefusedKey = (ObjectUuid, [u8; 32]);

/// Tokens an issuer refused lately.
pub struct RefusedTokens {
    ttl_nanos: i128,
    capacity: usize,
    inner: Mutex<Refused>,
}

#[derive(Default)]
struct Refused {
    until: HashMap<RefusedKey, i128>,
    /// Insertion order with each entry's expiry; with one lifetime for all, the front expires first.
    order: VecDeque<(RefusedKey, i128)>,
}

impl RefusedTokens {
    /// Remembers refusals for `ttl_secs`, at most `capacity` of them (the oldest go first).
    pub fn new(ttl_secs: i64, capacity: usize) -> RefusedTokens {
        RefusedTokens {
            ttl_nanos: i128::from(ttl_secs) * NANOS_PER_SEC,
            capacity: capacity.max(1),
            inner: Mutex::new(Refused::default()),
        }
    }

    /// Remembers that the issuer refused token `uuid` with (salted) secret hash `hash` at `now`.
    pub fn remember(&self, uuid: &ObjectUuid, hash: &SecretHash, now: i128) {
        let mut r = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let until = now + self.ttl_nanos;
        let key = (uuid.clone(), *hash.as_bytes());
        r.until.insert(key.clone(), until);
        r.order.push_back((key, until));
        while r.order.len() > self.capacity || r.order.front().is_some_and(|(_, u)| *u <= now) {
            let Some((key, until)) = r.order.pop_front() else { break };
            // A key remembered again later has a later expiry and a later entry: keep it.
            if r.until.get(&key) == Some(&until) {
                r.until.remove(&key);
            }
        }
    }

    /// Whether the issuer refused exactly this token (uuid and secret) less than the lifetime ago.
    pub fn is_refused(&self, uuid: &ObjectUuid, hash: &SecretHash, now: i128) -> bool {
        let r = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        r.until.get(&(uuid.clone(), *hash.as_bytes())).is_some_and(|until| *until > now)
    }

    /// How many refusals are held (expired ones included until they are pushed out).
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).until.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A validation budget per issuing peer (token buckets).
pub struct PeerBudget {
    per_sec: i128,
    burst: i128,
    buckets: Mutex<HashMap<ClusterId, Bucket>>,
}

/// Thousandths of a validation, and when they were counted.
struct Bucket {
    millis: i128,
    at: i128,
}

impl PeerBudget {
    /// `per_sec` validations a second per peer, at most `burst` at once (both at least 1).
    pub fn new(per_sec: u32, burst: u32) -> PeerBudget {
        PeerBudget {
            per_sec: i128::from(per_sec.max(1)),
            burst: i128::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one validation of `peer`'s budget at `now`, or says how many whole seconds to wait.
    pub fn take(&self, peer: &ClusterId, now: i128) -> Result<(), u64> {
        let full = self.burst * 1000;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.entry(peer.clone()).or_insert(Bucket { millis: full, at: now });
        let elapsed = (now - b.at).max(0);
        b.millis = (b.millis + elapsed * self.per_sec * 1000 / NANOS_PER_SEC).min(full);
        b.at = now;
        if b.millis >= 1000 {
            b.millis -= 1000;
            return Ok(());
        }
        let missing = 1000 - b.millis;
        let wait_secs = (missing + self.per_sec * 1000 - 1) / (self.per_sec * 1000);
        Err(u64::try_from(wait_secs.max(1)).unwrap_or(1))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::clock::Clock;

    fn token(i: usize) -> ObjectUuid {
        format!("aaaaa-gj3su-{i:015}").parse().unwrap()
    }

    fn nanos(c: &Clock) -> i128 {
        c.now().unix_timestamp_nanos()
    }

    #[test]
    fn refusals_are_remembered_for_their_lifetime_and_only_for_that_secret() {
        let clock = Clock::manual(1_700_000_000);
        let r = RefusedTokens::new(60, 100);
        let (bad, other) = (SecretHash::of("bad"), SecretHash::of("other"));
        r.remember(&token(1), &bad, nanos(&clock));
        assert!(r.is_refused(&token(1), &bad, nanos(&clock)));
        assert!(!r.is_refused(&token(1), &other, nanos(&clock)), "another secret of the same uuid");
        assert!(!r.is_refused(&token(2), &bad, nanos(&clock)), "the same secret of another uuid");
        clock.advance(59);
        assert!(r.is_refused(&token(1), &bad, nanos(&clock)));
        // Remembered again at 59 s: lives 60 s from then, although its first entry expires.
        r.remember(&token(1), &bad, nanos(&clock));
        clock.advance(2);
        r.remember(&token(3), &bad, nanos(&clock));
        assert!(r.is_refused(&token(1), &bad, nanos(&clock)));
        clock.advance(60);
        assert!(!r.is_refused(&token(1), &bad, nanos(&clock)));
    }

    #[test]
    fn refusals_are_bounded_and_the_oldest_go_first() {
        let clock = Clock::manual(1_700_000_000);
        let r = RefusedTokens::new(60, 10);
        let h = SecretHash::of("bad");
        for i in 0..25 {
            r.remember(&token(i), &h, nanos(&clock));
        }
        assert_eq!(r.len(), 10);
        assert!(!r.is_refused(&token(0), &h, nanos(&clock)));
        assert!(r.is_refused(&token(24), &h, nanos(&clock)));
        // Expired entries are pushed out by the next one.
        clock.advance(61);
        r.remember(&token(99), &h, nanos(&clock));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn a_peers_budget_allows_a_burst_then_its_rate() {
        let clock = Clock::manual(1_700_000_000);
        let budget = PeerBudget::new(2, 5);
        let (a, c): (ClusterId, ClusterId) = ("aaaaa".parse().unwrap(), "ccccc".parse().unwrap());
        for _ in 0..5 {
            assert_eq!(budget.take(&a, nanos(&clock)), Ok(()));
        }
        assert_eq!(budget.take(&a, nanos(&clock)), Err(1));
        assert_eq!(budget.take(&c, nanos(&clock)), Ok(()), "each peer has its own bucket");
        // A second regains two validations at 2 per second.
        clock.advance(1);
        assert_eq!(budget.take(&a, nanos(&clock)), Ok(()));
        assert_eq!(budget.take(&a, nanos(&clock)), Ok(()));
        assert_eq!(budget.take(&a, nanos(&clock)), Err(1));
        // A long pause refills to the burst, no more.
        clock.advance(3600);
        for _ in 0..5 {
            assert_eq!(budget.take(&a, nanos(&clock)), Ok(()));
        }
        assert!(budget.take(&a, nanos(&clock)).is_err());
    }
}
