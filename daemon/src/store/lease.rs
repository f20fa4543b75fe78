//! Leases, and the outbox's batches in flight: what lets several replicas on one database share
//! cluster-wide jobs (DESIGN §4.12).
//!
//! A lease is a row of [`TreeId::Leases`], `{holder, until}` (until: unix milliseconds), taken and
//! renewed only by an atomic replace of the row as it was read (insert-if-absent for the first
//! take, `kv::Backend::replace_if` after): of replicas racing for a free or expired lease
//! one wins. The holder renews it while it works; a holder that dies stops renewing and another
//! replica takes the lease once it has expired. Lease times are the system's wall clock, not the
//! daemon's [`crate::clock::Clock`]: they measure whether a process is alive, which a test's clock
//! does not control.
//!
//! On sled a single process owns the store (sled locks its directory), so every lease is its
//! own and nothing is written.
//!
//! A batch of notices in flight is recorded in [`TreeId::OutboxInFlight`] before it is sent and
//! removed with its notices when the peer acknowledges, so whoever sends next (the same replica
//! after an error, or another after a crash) sends that very batch again: a batch's id is a hash
//! of its notices, and the receiver answers a batch it applied from its stored answer.

use super::{StoreResult, TreeId, WriteBatch, kv};
use federation_proto::ClusterId;

#[derive(serde::Serialize, serde::Deserialize)]
struct Lease {
    holder: String,
    until: i64,
}

/// This process's name in leases: its pid and a random number, fixed for its life.
pub fn this_process() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| format!("{}-{:016x}", std::process::id(), rand::random::<u64>()))
}

/// The lease on the cluster's background jobs (expiry sweeps, tidies, the nonce pruner).
const BACKGROUND: &str = "background";

/// How long the lease on background jobs lasts unless renewed: each job renews it on each pass,
/// at least once a minute, so the holder keeps it; after its death another replica takes the jobs
/// over within this.
const BACKGROUND_MS: i64 = 150_000;

/// Unix milliseconds of the system clock.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A batch sent and not yet acknowledged: its record's key and its notices still queued.
pub type InFlight = (Vec<u8>, Vec<super::QueuedNotice>);

impl super::Store {
    /// Takes or renews lease `name` for `holder` for `ttl_ms` from now; whether `holder` holds it.
    pub fn hold_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> StoreResult<bool> {
        if matches!(*self.kv, kv::Backend::Sled(_)) {
            return Ok(true);
        }
        let now = now_ms();
        let new = serde_json::to_vec(&Lease { holder: holder.to_string(), until: now + ttl_ms })
            .map_err(|e| super::StoreError::Backend(e.to_string()))?;
        match self.kv.get(TreeId::Leases, name.as_bytes())? {
            None => self.kv.insert_if_absent(TreeId::Leases, name.as_bytes(), &new),
            Some(cur) => {
                let free = match serde_json::from_slice::<Lease>(&cur) {
                    Ok(l) => l.holder == holder || l.until <= now,
                    Err(_) => true,
                };
                Ok(free && self.kv.replace_if(TreeId::Leases, name.as_bytes(), &cur, &new)?)
            }
        }
    }

    /// Whether this process runs the cluster's background jobs now (it holds, and so renews, their
    /// lease): one replica of a cluster does them, not each. Always on sled.
    pub fn runs_background_jobs(&self) -> StoreResult<bool> {
        self.hold_lease(BACKGROUND, this_process(), BACKGROUND_MS)
    }

    /// Gives lease `name` up if `holder` holds it (a clean shutdown: others need not wait for it
    /// to expire).
    pub fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        if let Some(cur) = self.kv.get(TreeId::Leases, name.as_bytes())?
            && serde_json::from_slice::<Lease>(&cur).is_ok_and(|l| l.holder == holder)
        {
            let gone = serde_json::to_vec(&Lease { holder: String::new(), until: 0 })
                .map_err(|e| super::StoreError::Backend(e.to_string()))?;
            self.kv.replace_if(TreeId::Leases, name.as_bytes(), &cur, &gone)?;
        }
        Ok(())
    }

    /// Gives up every lease this process holds (a clean shutdown: the other replicas take the
    /// outboxes and the background jobs over at once instead of after the leases expire).
    pub fn release_own_leases(&self) -> StoreResult<()> {
        if matches!(*self.kv, kv::Backend::Sled(_)) {
            return Ok(());
        }
        let mut held = Vec::new();
        for e in self.kv.iter(TreeId::Leases) {
            let (k, v) = e?;
            if serde_json::from_slice::<Lease>(&v).is_ok_and(|l| l.holder == this_process()) {
                held.push(String::from_utf8_lossy(&k).into_owned());
            }
        }
        for name in held {
            self.release_lease(&name, this_process())?;
        }
        Ok(())
    }

    /// Rewrites the login throttle's row `key` atomically: `f` gets the row as stored (none: no
    /// row) and returns the new one, or none to write nothing; it is called again when another
    /// process changed the row in between. Whether it wrote.
    pub fn update_login_attempts(
        &self,
        key: &str,
        mut f: impl FnMut(Option<&[u8]>) -> Option<Vec<u8>>,
    ) -> StoreResult<bool> {
        let k = key.as_bytes();
        loop {
            let cur = self.kv.get(TreeId::LoginAttempts, k)?;
            let Some(new) = f(cur.as_deref()) else { return Ok(false) };
            let done = match &cur {
                None => self.kv.insert_if_absent(TreeId::LoginAttempts, k, &new)?,
                Some(c) => self.kv.replace_if(TreeId::LoginAttempts, k, c, &new)?,
            };
            if done {
                return Ok(true);
            }
        }
    }

    /// Deletes the login throttle's rows that `spent` says hold nothing any more (each as it was
    /// read: a row another process rewrote meanwhile stays). Reads the rows in key order, a page
    /// at a time. How many went.
    pub fn sweep_login_attempts(&self, spent: impl Fn(&[u8]) -> bool) -> StoreResult<usize> {
        let mut gone = 0;
        for e in self.kv.iter(TreeId::LoginAttempts) {
            let (k, v) = e?;
            if spent(&v) && self.kv.delete_if(TreeId::LoginAttempts, &k, &v)? {
                gone += 1;
            }
        }
        Ok(gone)
    }

    /// Records a batch for `peer` about to be sent (its notices' outbox keys, in order); returns
    /// the record's key.
    pub fn put_in_flight(&self, peer: &ClusterId, keys: &[Vec<u8>]) -> StoreResult<Vec<u8>> {
        let p = super::prefix(peer.as_str());
        let seqs: Vec<u64> = keys.iter().filter_map(|k| seq_of(&p, k)).collect();
        let first = keys.first().cloned().unwrap_or_else(|| p.clone());
        let mut b = WriteBatch::new();
        b.put_raw(
            TreeId::OutboxInFlight,
            first.clone(),
            serde_json::to_vec(&seqs).map_err(|e| super::StoreError::Backend(e.to_string()))?,
        );
        self.commit_unflushed(b)?;
        Ok(first)
    }

    /// The first recorded batch for `peer` whose record key is after `after` (any, when none),
    /// with its notices still queued (keys and JSON, as [`super::Store::outbox_peek`] gives them). A record whose notices are all gone is
    /// deleted and skipped.
    pub fn next_in_flight(&self, peer: &ClusterId, after: Option<&[u8]>) -> StoreResult<Option<InFlight>> {
        let (lo, hi) = super::after_in(&super::prefix(peer.as_str()), after);
        for e in self.kv.range(TreeId::OutboxInFlight, lo, hi, false) {
            let (k, v) = e?;
            let seqs: Vec<u64> = serde_json::from_slice(&v).unwrap_or_default();
            let mut keys = Vec::with_capacity(seqs.len());
            for s in seqs {
                let key = super::outbox_key(peer, s);
                if let Some(v) = self.kv.get(TreeId::Outbox, &key)? {
                    keys.push((key, v.to_vec()));
                }
            }
            if keys.is_empty() {
                let mut b = WriteBatch::new();
                b.del_raw(TreeId::OutboxInFlight, k.to_vec());
                self.commit_unflushed(b)?;
                continue;
            }
            return Ok(Some((k.to_vec(), keys)));
        }
        Ok(None)
    }

    /// Removes an acknowledged batch: its notices and its record, together. Not flushed: the next
    /// flush (any commit's, or sled's own within 500 ms) makes it durable, and a removal a crash
    /// loses only makes the sender send that batch again, which the receiver answers from its
    /// stored answer.
    pub fn outbox_acknowledged(&self, record: &[u8], keys: &[Vec<u8>]) -> StoreResult<()> {
        let mut b = WriteBatch::new();
        for k in keys {
            b.del_raw(TreeId::Outbox, k.clone());
        }
        b.del_raw(TreeId::OutboxInFlight, record.to_vec());
        self.commit_unflushed(b)
    }
}

/// The sequence number in an outbox key of the peer whose prefix is `p`.
fn seq_of(p: &[u8], key: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(p)?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}
