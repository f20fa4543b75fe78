//! Passwords (argon2id) and login throttling.
//!
//! Hashing costs ~15 ms of CPU, so callers on the async runtime run these functions through
//! `spawn_blocking`. Throttling counts failed attempts per account and per source address inside a
//! sliding window; at the limit further attempts are refused (429) without checking the password,
//! so a guesser learns nothing and costs us nothing.

use super::error::{Error, ErrorKind, Result};
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted (argon2 cost does not depend on it, but a bound keeps requests small).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Checks a new password's length.
pub fn check_new_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(Error::unprocessable(
            "password_too_short",
            format!("password must be at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(Error::unprocessable(
            "password_too_long",
            format!("password must be at most {MAX_PASSWORD_LEN} bytes"),
        ));
    }
    Ok(())
}

/// argon2id PHC string for `password` with a fresh salt.
pub fn hash_password(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::new(ErrorKind::Internal, "hash", e.to_string()))
}

/// Whether `password` matches the PHC string `phc`.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// Limits how many argon2 computations run at once. Each one holds ~19 MiB and a core for ~15 ms;
/// unbounded, a burst of logins on the blocking pool took gigabytes that the allocator then kept.
/// With at most one per core, a burst queues instead, and p99 latency drops too.
pub struct HashGate {
    free: Mutex<usize>,
    freed: std::sync::Condvar,
}

impl HashGate {
    /// A gate with `slots` concurrent computations (at least one).
    pub fn new(slots: usize) -> Self {
        HashGate { free: Mutex::new(slots.max(1)), freed: std::sync::Condvar::new() }
    }

    /// Runs `f` once a slot is free (blocking the calling thread until then).
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            while *free == 0 {
                free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
            }
            *free -= 1;
        }
        let out = f();
        *self.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.freed.notify_one();
        out
    }
}

/// Bound on remembered keys, so that a flood of distinct logins cannot grow memory without limit.
const MAX_KEYS: usize = 100_000;

/// Failed-attempt counters.
pub struct Throttle {
    max: u32,
    window: i64,
    failures: Mutex<HashMap<String, VecDeque<i64>>>,
}

impl Throttle {
    /// At most `max` failures per key inside `window_secs`.
    pub fn new(max: u32, window_secs: u64) -> Self {
        Throttle { max, window: i64::try_from(window_secs).unwrap_or(i64::MAX), failures: Mutex::new(HashMap::new()) }
    }

    /// Refuses when any of `keys` has reached the limit; the error says how long to wait.
    pub fn check(&self, keys: &[String], now: i64) -> Result<()> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = 0i64;
        for k in keys {
            if let Some(q) = map.get_mut(k) {
                while q.front().is_some_and(|&t| t <= now - self.window) {
                    q.pop_front();
                }
                if q.len() >= self.max as usize {
                    let oldest = q.front().copied().unwrap_or(now);
                    wait = wait.max(oldest + self.window - now);
                }
            }
        }
        if wait > 0 {
            let mut e =
                Error::new(ErrorKind::Throttled, "throttled", "too many failed login attempts; try again later");
            e.retry_after = Some(u64::try_from(wait).unwrap_or(1));
            return Err(e);
        }
        Ok(())
    }

    /// Records a failure for each key.
    pub fn fail(&self, keys: &[String], now: i64) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEYS {
            let window = self.window;
            map.retain(|_, q| q.back().is_some_and(|&t| t > now - window));
            if map.len() >= MAX_KEYS {
                map.clear();
            }
        }
        for k in keys {
            map.entry(k.clone()).or_default().push_back(now);
        }
    }

    /// Forgets the failures of `key` (after a successful login to that account).
    pub fn clear(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hash_then_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsf", &h));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn the_hash_gate_never_runs_more_than_its_slots() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let gate = Arc::new(HashGate::new(2));
        let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (gate, now, peak) = (gate.clone(), now.clone(), peak.clone());
                std::thread::spawn(move || {
                    gate.run(|| {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        now.fetch_sub(1, Ordering::SeqCst);
                    })
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn throttle_counts_inside_the_window() {
        let t = Throttle::new(3, 60);
        let keys = vec!["acct:alice".to_string()];
        for i in 0..3 {
            t.check(&keys, 100 + i).unwrap();
            t.fail(&keys, 100 + i);
        }
        let e = t.check(&keys, 103).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Throttled);
        assert!(e.retry_after.unwrap() >= 1);
        // The window slides: the first failure (t=100) leaves at t=160.
        t.check(&keys, 161).unwrap();
        t.clear("acct:alice");
        t.check(&keys, 103).unwrap();
    }
}
