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
use std::sync::{Arc, Mutex, mpsc};

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

/// Runs argon2 computations on a few dedicated threads (one per core), one at a time each. Each
/// computation holds ~19 MiB and a core for ~15 ms. Run on the blocking pool, a burst of logins
/// took gigabytes; bounded to one per core but still on whichever pool thread asked, every such
/// thread left its 19 MiB in its own allocator arena (RSS stayed at 1 GB after 32 concurrent
/// logins). On dedicated threads the memory is reused, and a burst queues instead.
pub struct HashGate {
    jobs: Mutex<mpsc::Sender<Job>>,
}

type Job = Box<dyn FnOnce() + Send>;

impl HashGate {
    /// A gate with `slots` worker threads (at least one). They stop when the gate is dropped.
    pub fn new(slots: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..slots.max(1) {
            let rx = rx.clone();
            let worker = move || {
                loop {
                    let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            };
            if let Err(e) = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(worker) {
                tracing::error!(error = %e, "could not start an argon2 worker thread");
            }
        }
        HashGate { jobs: Mutex::new(tx) }
    }

    /// Runs `f` on a worker once one is free, blocking the calling thread until it is done. A
    /// panic in `f` is raised again here; the worker lives on.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
        });
        let sent = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).send(job);
        match (sent, rx.recv()) {
            (Ok(()), Ok(Ok(v))) => v,
            (Ok(()), Ok(Err(panic))) => std::panic::resume_unwind(panic),
            _ => std::panic::resume_unwind(Box::new("no argon2 worker thread is running")),
        }
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
                    gate.run(move || {
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
