//! Passwords (argon2id) and login throttling.
//!
//! Hashing costs ~15 ms of CPU, so callers run these functions on the [`HashGate`]'s threads.
//! Throttling counts attempts per account and per source address inside a sliding window; at the
//! limit further attempts are refused (429) without checking the password, so a guesser learns
//! nothing and costs us nothing. An attempt takes its slot *before* its password is checked
//! ([`Throttle::reserve`]), so a burst of concurrent attempts cannot all pass the check while the
//! first ones are still hashing; a correct password gives its slot back
//! ([`Reservation::succeeded`]), and an attempt that finds a counter full only of attempts still
//! being checked waits for them instead of being refused.
//!
//! On PostgreSQL the counters live in the store ([`Throttle::shared_in`]), so the cluster's
//! replicas count every attempt together; on sled (one process) they stay in memory.
//!
//! Every checked attempt runs exactly one argon2 verification with the same parameters, whether
//! the account exists, has a password or not ([`verify_password`] falls back to [`DUMMY_HASH`]);
//! `hearth_argon2_verifications_total` counts them.

use super::error::{Error, ErrorKind, Result};
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

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

/// An argon2id hash with the default parameters of [`DUMMY_PASSWORD`], which no account has: what
/// a login is checked against when its account is unknown, has no password, or has a stored hash
/// that does not parse, so that every failed login costs one full verification.
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$94CnU1o70WyURVTzgP0/gw$FJlCu+CdMHfG85JZi0NOn8hsnHO3hRAOGFnivX4IujU";
/// The password [`DUMMY_HASH`] was made from (only tests use it).
#[cfg(test)]
const DUMMY_PASSWORD: &str = "hearth dummy password, never anyone's";

/// Whether `password` matches the PHC string `phc`. Always runs one argon2 verification: without a
/// usable `phc` it verifies against [`DUMMY_HASH`] and answers false.
pub fn verify_password(password: &str, phc: Option<&str>) -> bool {
    let real = phc.and_then(|p| PasswordHash::new(p).ok());
    let ok = match &real {
        Some(h) => Argon2::default().verify_password(password.as_bytes(), h).is_ok(),
        None => {
            if let Ok(h) = PasswordHash::new(DUMMY_HASH) {
                let _ = Argon2::default().verify_password(password.as_bytes(), &h);
            }
            false
        }
    };
    metrics::counter!("hearth_argon2_verifications_total").increment(1);
    ok
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
/// Longest an attempt waits for attempts in flight to settle before it is refused.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Attempt counters.
pub struct Throttle {
    max: usize,
    window: i64,
    keys: Mutex<HashMap<String, Counter>>,
    settled: Condvar,
    /// Counters kept in the store instead, shared by the cluster's replicas (PostgreSQL).
    shared: Option<crate::store::Store>,
}

/// How often an attempt that waits on shared counters looks at them again.
const SHARED_POLL: Duration = Duration::from_millis(50);

/// One key's attempts as the store keeps them for replicas ([`Throttle::shared`]).
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct SharedCounter {
    attempts: Vec<SharedAttempt>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SharedAttempt {
    /// When it was made (the daemon's clock, unix seconds): what the window counts.
    at: i64,
    /// Which attempt (random).
    id: u64,
    /// Still being checked since this system time (unix ms); none: it failed.
    checking_since: Option<i64>,
}

impl SharedCounter {
    fn parse(b: Option<&[u8]>) -> SharedCounter {
        b.and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_default()
    }

    fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Forgets attempts outside the window; one still "being checked" after [`MAX_WAIT`] was cut
    /// short by its replica's death and counts as failed.
    fn prune(&mut self, horizon: i64, now_ms: i64) {
        self.attempts.retain(|a| a.at > horizon);
        let stale = i64::try_from(MAX_WAIT.as_millis()).unwrap_or(i64::MAX);
        for a in &mut self.attempts {
            if a.checking_since.is_some_and(|t| now_ms.saturating_sub(t) > stale) {
                a.checking_since = None;
            }
        }
    }

    fn failed(&self) -> usize {
        self.attempts.iter().filter(|a| a.checking_since.is_none()).count()
    }
}

/// One key's attempts inside the window: failed ones and ones still being checked.
#[derive(Default)]
struct Counter {
    /// When each attempt counted here was made, oldest first.
    times: VecDeque<i64>,
    /// How many of them are still being checked.
    in_flight: usize,
}

impl Counter {
    fn failed(&self) -> usize {
        self.times.len().saturating_sub(self.in_flight)
    }
}

/// What the counters say about a new attempt.
enum Verdict {
    /// There is room: take a slot.
    Room,
    /// Full only because attempts are still being checked: one that succeeds makes room.
    Wait,
    /// Failures alone fill a counter; retry after this many seconds.
    Refuse(i64),
}

/// One attempt's slot under each of its keys, taken by [`Throttle::reserve`]. It counts as a failure
/// unless [`Reservation::succeeded`] is called; dropping it (a wrong password, an unknown login,
/// an error, a panic) keeps it counted.
#[must_use = "a reservation counts as a failure unless it is marked succeeded"]
pub struct Reservation<'a> {
    throttle: &'a Throttle,
    keys: Vec<String>,
    at: i64,
    success: Option<String>,
    /// The attempt's id in shared counters.
    id: u64,
}

impl Throttle {
    /// At most `max` failed attempts per key inside `window_secs`.
    pub fn new(max: u32, window_secs: u64) -> Self {
        Throttle {
            max: usize::try_from(max).unwrap_or(usize::MAX),
            window: i64::try_from(window_secs).unwrap_or(i64::MAX),
            keys: Mutex::new(HashMap::new()),
            settled: Condvar::new(),
            shared: None,
        }
    }

    /// Keeps the counters in `store` (its login-attempt rows, updated atomically), so that every
    /// replica on the same database counts every attempt: at most `max` failures per key are
    /// checked across all of them. On sled one process owns the store, and memory is exact.
    pub fn shared_in(mut self, store: crate::store::Store) -> Self {
        self.shared = Some(store);
        self
    }

    /// Takes a slot under every one of `keys` for an attempt about to be checked, or refuses (and
    /// takes none) when failures fill any of them; the refusal says how long to wait. An attempt in
    /// flight holds its slot, so however many arrive at once, at most `max` per key are checked
    /// before the failures among them refuse the rest. When only attempts in flight fill a counter,
    /// this waits for them (up to 30 s): a correct password gives its slot back, so a burst of
    /// correct logins from one address all get through, one slot after another.
    pub fn reserve(&self, keys: &[String], now: i64) -> Result<Reservation<'_>> {
        if let Some(store) = &self.shared {
            return self.reserve_shared(store, keys, now);
        }
        let deadline = Instant::now() + MAX_WAIT;
        let mut map = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match self.verdict(&mut map, keys, now) {
                Verdict::Room => break,
                Verdict::Refuse(wait) => return Err(throttled(wait)),
                Verdict::Wait => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(throttled(1));
                    }
                    map = self.settled.wait_timeout(map, left).unwrap_or_else(|p| p.into_inner()).0;
                }
            }
        }
        if map.len().saturating_add(keys.len()) > MAX_KEYS {
            self.evict(&mut map, now);
        }
        for k in keys {
            let c = map.entry(k.clone()).or_default();
            c.times.push_back(now);
            c.in_flight += 1;
        }
        Ok(Reservation { throttle: self, keys: keys.to_vec(), at: now, success: None, id: 0 })
    }

    /// [`Throttle::reserve`] on the store's counters: a slot is taken under each key in turn by
    /// an atomic rewrite of its row (so of replicas racing for the last slot one gets it); when a
    /// later key has no room the slots taken are given back, and the attempt waits (polling) or is
    /// refused as the in-memory counters decide.
    fn reserve_shared(&self, store: &crate::store::Store, keys: &[String], now: i64) -> Result<Reservation<'_>> {
        let deadline = Instant::now() + MAX_WAIT;
        let id = rand::random::<u64>();
        let horizon = now.saturating_sub(self.window);
        loop {
            let mut taken = Vec::new();
            let mut verdict = Verdict::Room;
            for k in keys {
                let now_ms = crate::store::lease::now_ms();
                store.update_login_attempts(k, |cur| {
                    let mut c = SharedCounter::parse(cur);
                    c.prune(horizon, now_ms);
                    if c.failed() >= self.max {
                        let oldest = c.attempts.iter().map(|a| a.at).min().unwrap_or(now);
                        verdict = Verdict::Refuse(oldest.saturating_add(self.window).saturating_sub(now).max(1));
                        return None;
                    }
                    if c.attempts.len() >= self.max {
                        verdict = Verdict::Wait;
                        return None;
                    }
                    verdict = Verdict::Room;
                    c.attempts.push(SharedAttempt { at: now, id, checking_since: Some(now_ms) });
                    Some(c.bytes())
                })?;
                if !matches!(verdict, Verdict::Room) {
                    break;
                }
                taken.push(k.clone());
            }
            if matches!(verdict, Verdict::Room) {
                return Ok(Reservation { throttle: self, keys: keys.to_vec(), at: now, success: None, id });
            }
            for k in &taken {
                store.update_login_attempts(k, |cur| {
                    let mut c = SharedCounter::parse(cur);
                    c.attempts.retain(|a| a.id != id);
                    Some(c.bytes())
                })?;
            }
            match verdict {
                Verdict::Refuse(wait) => return Err(throttled(wait)),
                _ if Instant::now() >= deadline => return Err(throttled(1)),
                _ => std::thread::sleep(SHARED_POLL),
            }
        }
    }

    /// Settles a reservation in the store's counters: a failure stays counted (no longer being
    /// checked), a success gives its slots back and forgets the failures under its `clear` key.
    fn settle_shared(&self, store: &crate::store::Store, r: &Reservation<'_>) {
        let mut keys = r.keys.clone();
        if let Some(clear) = &r.success
            && !keys.contains(clear)
        {
            keys.push(clear.clone());
        }
        let horizon = r.at.saturating_sub(self.window);
        for k in &keys {
            let now_ms = crate::store::lease::now_ms();
            let clear = r.success.as_deref() == Some(k.as_str());
            let done = store.update_login_attempts(k, |cur| {
                let mut c = SharedCounter::parse(cur);
                c.prune(horizon, now_ms);
                if r.success.is_some() {
                    c.attempts.retain(|a| a.id != r.id);
                } else if let Some(a) = c.attempts.iter_mut().find(|a| a.id == r.id) {
                    a.checking_since = None;
                }
                if clear {
                    c.attempts.retain(|a| a.checking_since.is_some());
                }
                Some(c.bytes())
            });
            if let Err(e) = done {
                tracing::warn!(error = %e, key = %k, "settling a login attempt in the store failed");
            }
        }
    }

    /// Deletes the store's counters with nothing left in them at `now`: no attempt inside the
    /// window, none being checked (one cut short by its replica's death counts as failed until it
    /// leaves the window). How many went; none when the counters are in memory (they are evicted
    /// there as new keys come).
    pub fn sweep_shared(&self, now: i64) -> Result<usize> {
        let Some(store) = &self.shared else { return Ok(0) };
        let horizon = now.saturating_sub(self.window);
        let now_ms = crate::store::lease::now_ms();
        Ok(store.sweep_login_attempts(|v| {
            let mut c = SharedCounter::parse(Some(v));
            c.prune(horizon, now_ms);
            c.attempts.is_empty()
        })?)
    }

    /// Makes room for new keys: forgets counters with nothing inside the window, then, if that is
    /// not enough, the settled counters attempted least recently (down to 90% of the bound). Keys
    /// are only added by attempts that then run argon2, so this happens only after ~100k checks.
    fn evict(&self, map: &mut HashMap<String, Counter>, now: i64) {
        let horizon = now.saturating_sub(self.window);
        map.retain(|_, c| c.in_flight > 0 || c.times.back().is_some_and(|&t| t > horizon));
        if map.len() < MAX_KEYS {
            return;
        }
        let mut settled: Vec<(i64, String)> = map
            .iter()
            .filter(|(_, c)| c.in_flight == 0)
            .map(|(k, c)| (c.times.back().copied().unwrap_or(i64::MIN), k.clone()))
            .collect();
        settled.sort_unstable();
        let excess = map.len().saturating_sub(MAX_KEYS / 10 * 9);
        for (_, k) in settled.into_iter().take(excess) {
            map.remove(&k);
        }
    }

    fn verdict(&self, map: &mut HashMap<String, Counter>, keys: &[String], now: i64) -> Verdict {
        let horizon = now.saturating_sub(self.window);
        let mut verdict = Verdict::Room;
        for k in keys {
            let Some(c) = map.get_mut(k) else { continue };
            while c.times.front().is_some_and(|&t| t <= horizon) {
                c.times.pop_front();
            }
            if c.failed() >= self.max {
                let oldest = c.times.front().copied().unwrap_or(now);
                let wait = oldest.saturating_add(self.window).saturating_sub(now).max(1);
                let longest = match verdict {
                    Verdict::Refuse(w) => w.max(wait),
                    _ => wait,
                };
                verdict = Verdict::Refuse(longest);
            } else if c.times.len() >= self.max && matches!(verdict, Verdict::Room) {
                verdict = Verdict::Wait;
            }
        }
        verdict
    }

    fn settle(&self, r: &mut Reservation<'_>) {
        if let Some(store) = &self.shared {
            return self.settle_shared(store, r);
        }
        let mut map = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        for k in &r.keys {
            let Some(c) = map.get_mut(k) else { continue };
            c.in_flight = c.in_flight.saturating_sub(1);
            if r.success.is_some()
                && let Some(i) = c.times.iter().rposition(|&t| t == r.at)
            {
                c.times.remove(i);
            }
            if c.times.is_empty() && c.in_flight == 0 {
                map.remove(k);
            }
        }
        if let Some(clear) = &r.success
            && let Some(c) = map.get_mut(clear)
        {
            // Attempts still in flight keep their slots; everything settled is forgotten.
            let keep = c.times.len().min(c.in_flight);
            let drop = c.times.len() - keep;
            c.times.drain(..drop);
            if c.times.is_empty() {
                map.remove(clear);
            }
        }
        drop(map);
        self.settled.notify_all();
    }
}

impl Reservation<'_> {
    /// The attempt succeeded: its slots are given back, and the failures counted under `clear`
    /// (the account just logged in to) are forgotten.
    pub fn succeeded(mut self, clear: &str) {
        self.success = Some(clear.to_string());
    }
}

impl std::fmt::Debug for Reservation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation").field("keys", &self.keys).field("at", &self.at).finish_non_exhaustive()
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.throttle.settle(self);
    }
}

impl super::Accounts {
    /// Deletes the login throttle's counters in the store whose window has passed (PostgreSQL,
    /// where replicas share them; see [`Throttle::sweep_shared`]). How many went.
    pub fn sweep_login_throttle(&self) -> Result<usize> {
        self.throttle.sweep_shared(self.clock().unix())
    }
}

fn throttled(wait: i64) -> Error {
    let mut e = Error::new(ErrorKind::Throttled, "throttled", "too many failed login attempts; try again later");
    e.retry_after = Some(u64::try_from(wait.max(1)).unwrap_or(1));
    e
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hash_then_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", Some(&h)));
        assert!(!verify_password("correct horsf", Some(&h)));
        assert!(!verify_password("x", Some("not a phc string")));
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
    fn the_dummy_hash_is_a_real_one_with_the_default_parameters() {
        // A verification against it runs argon2 in full: it succeeds for the password it was made from.
        assert!(verify_password(DUMMY_PASSWORD, Some(DUMMY_HASH)));
        let h = PasswordHash::new(DUMMY_HASH).unwrap();
        let fresh = hash_password("another password").unwrap();
        let f = PasswordHash::new(&fresh).unwrap();
        assert_eq!(h.algorithm, f.algorithm);
        assert_eq!(h.version, f.version);
        assert_eq!(h.params, f.params, "the dummy hash costs what a real one costs");
        // Without a usable hash the answer is false, even for the dummy's own password.
        assert!(!verify_password(DUMMY_PASSWORD, None));
        assert!(!verify_password(DUMMY_PASSWORD, Some("not a phc string")));
    }

    #[test]
    fn the_shared_counters_past_their_window_are_swept_and_no_others() {
        let Some(db) = crate::store::testing::TestDb::create() else { return };
        let store = crate::store::Store::open_with(std::path::Path::new("unused"), db.options()).unwrap();
        let t = Throttle::new(3, 60).shared_in(store.clone());
        let old = vec!["ip:10.0.0.1".to_string(), "acct:alice".to_string()];
        let recent = vec!["ip:10.0.0.2".to_string()];
        drop(t.reserve(&old, 100).unwrap());
        drop(t.reserve(&recent, 150).unwrap());
        assert_eq!(t.sweep_shared(159).unwrap(), 0, "everything is inside the window at t=159");
        assert_eq!(t.sweep_shared(161).unwrap(), 2, "alice's and 10.0.0.1's failures left the window at t=160");
        assert_eq!(t.sweep_shared(161).unwrap(), 0);
        // The recent failure still counts: two more fill the key.
        drop(t.reserve(&recent, 162).unwrap());
        drop(t.reserve(&recent, 163).unwrap());
        assert_eq!(t.reserve(&recent, 164).unwrap_err().kind, ErrorKind::Throttled);
        assert_eq!(t.sweep_shared(300).unwrap(), 1, "10.0.0.2's, once its last failure left the window");
        // In memory there is nothing to sweep.
        assert_eq!(Throttle::new(3, 60).sweep_shared(1_000).unwrap(), 0);
    }

    #[test]
    fn throttle_counts_inside_the_window() {
        let t = Throttle::new(3, 60);
        let keys = vec!["acct:alice".to_string()];
        for i in 0..3 {
            drop(t.reserve(&keys, 100 + i).unwrap());
        }
        let e = t.reserve(&keys, 103).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Throttled);
        assert_eq!(e.retry_after, Some(57), "the first failure (t=100) leaves the window at t=160");
        t.reserve(&keys, 161).unwrap().succeeded("acct:alice");
        // The success forgot every failure of the account.
        for _ in 0..3 {
            drop(t.reserve(&keys, 162).unwrap());
        }
        assert!(t.reserve(&keys, 162).is_err());
    }

    #[test]
    fn attempts_in_flight_hold_their_slots() {
        let t = Throttle::new(3, 60);
        let keys = vec!["acct:a".to_string(), "src:1".to_string()];
        let mut held: Vec<_> = (0..3).map(|_| t.reserve(&keys, 100).unwrap()).collect();
        // A success gives its source slot back: another account from that source takes it.
        held.remove(0).succeeded("acct:a");
        let b = t.reserve(&["acct:b".to_string(), "src:1".to_string()], 100).unwrap();
        // Clearing acct:a on that success did not forget the two attempts still in flight: once
        // they fail, acct:a has two failures (room for one more), and the source three (full).
        drop(held);
        drop(b);
        assert!(t.reserve(&["acct:a".to_string(), "src:2".to_string()], 100).is_ok());
        assert!(t.reserve(&["acct:a".to_string(), "src:3".to_string()], 100).is_err());
        assert!(t.reserve(&["src:1".to_string()], 100).is_err());
    }

    /// A fourth attempt while three are in flight (limit 3) waits for them: it is refused when they
    /// all fail, and gets a slot when one succeeds. (Whether it arrives before or after they settle,
    /// the outcome is the same, so this test does not depend on timing.)
    #[test]
    fn an_attempt_beyond_the_limit_waits_for_those_in_flight() {
        for succeed in [false, true] {
            let t = Arc::new(Throttle::new(3, 60));
            let keys = vec!["src:1".to_string()];
            let held: Vec<_> = (0..3).map(|_| t.reserve(&keys, 100).unwrap()).collect();
            let fourth = {
                let (t, keys) = (t.clone(), keys.clone());
                std::thread::spawn(move || t.reserve(&keys, 100).map(drop).map_err(|e| e.kind))
            };
            for (i, r) in held.into_iter().enumerate() {
                if succeed && i == 1 {
                    r.succeeded("acct:x");
                } else {
                    drop(r);
                }
            }
            let got = fourth.join().unwrap();
            if succeed {
                assert_eq!(got, Ok(()));
            } else {
                assert_eq!(got, Err(ErrorKind::Throttled));
            }
        }
    }
}
