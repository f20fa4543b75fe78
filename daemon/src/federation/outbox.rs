//! The notice senders: one task per peer drains that peer's durable outbox in batches of at most
//! 1,000 notices and 1 MiB, two batches in flight, and retries with exponential backoff and jitter (from 1 s up to the
//! configured cap) until the peer acknowledges. Notices are removed only after the peer's 2xx, so
//! a crash or an unreachable peer loses nothing; the receiver's idempotence makes resends harmless.
//!
//! Replicas of one cluster share the outbox (one database): only the replica holding a peer's
//! lease (`store/lease.rs`, [`LEASE_MS`], renewed before each batch and while one is in flight) sends to that peer; the others
//! ask for it every [`LEASE_POLL`]. Each batch is recorded as in flight before it is sent and the
//! record goes with its notices when the peer acknowledges, so a batch is resent exactly as it was
//! (after an error, or by another replica after a crash): its id, a hash of its notices, is the
//! same, and the peer answers it from its stored answer without applying it again. The holder
//! reads the shared outbox at least once a second while idle, so a notice another replica queued
//! waits at most that long.

use super::{Federation, fed_err};
use crate::accounts::ErrorKind;
use federation_proto::ClusterId;
use federation_proto::notice::{MAX_BATCH_NOTICE_BYTES, MAX_NOTICES_PER_BATCH, NoticeBatch};
use rand::RngExt;
use reqwest::Method;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// Batches a sender keeps in flight to one peer.
const IN_FLIGHT: usize = 2;

/// How long a replica's hold on a peer's outbox lasts unless renewed: a replica that dies (or
/// stalls) leaves the peer to another after this. The holder renews it before each batch and
/// every [`LEASE_RENEW`] while batches are in flight, so a send may take as long as a peer
/// request may (15 s) without the lease running out beneath it.
const LEASE_MS: i64 = 10_000;

/// How often the holder renews its lease while it waits for a peer's answer.
const LEASE_RENEW: Duration = Duration::from_secs(2);

/// How often a replica that does not hold a peer's outbox lease asks for it again (the idle
/// sender's wait).
const LEASE_POLL: Duration = Duration::from_secs(1);

/// The lease on `peer`'s outbox.
fn lease_name(peer: &ClusterId) -> String {
    format!("outbox\0{peer}")
}

/// A batch ready to send: its in-flight record, its notices' outbox keys and the body.
struct Prepared {
    record: Vec<u8>,
    keys: Vec<Vec<u8>>,
    body: Vec<u8>,
}

/// What a sender does next.
enum Next {
    /// Another replica holds the peer's outbox lease.
    NotHolder,
    /// Nothing waits (after the cursor).
    Empty,
    /// Send this.
    Batch(Prepared),
}

/// A delivery's result, a task that ended without one (it panicked) as an error.
fn joined(
    r: Result<Result<usize, crate::accounts::Error>, tokio::task::JoinError>,
) -> Result<usize, crate::accounts::Error> {
    r.unwrap_or_else(|e| Err(fed_err(ErrorKind::Internal, "sender_task", e.to_string())))
}

/// What the sender knows about one peer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PeerStats {
    /// Whether the last attempt succeeded (None before the first).
    pub reachable: Option<bool>,
    /// Unix time of the last acknowledged batch.
    pub last_success: Option<i64>,
    /// The last error, if the last attempt failed.
    pub last_error: Option<String>,
    /// Unix time of the next attempt while backing off.
    pub next_retry: Option<i64>,
    /// Failures since the last success.
    pub failures: u32,
    /// Notices acknowledged since start.
    pub sent: u64,
}

/// The backoff before retry number `failures` (≥ 1): 1 s doubling up to `cap`, times a jitter
/// factor in [0.5, 1.5) drawn by the caller.
pub fn backoff(failures: u32, cap_secs: u64, jitter: f64) -> Duration {
    let base = 1u64.checked_shl(failures.saturating_sub(1).min(30)).unwrap_or(u64::MAX).min(cap_secs.max(1));
    Duration::from_secs_f64((base as f64 * jitter).min(cap_secs.max(1) as f64))
}

impl Federation {
    /// Per-peer status for the admin view and metrics, with the current queue depth.
    pub fn peer_status(&self) -> Vec<(ClusterId, String, usize, PeerStats)> {
        let stats = self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.peers
            .values()
            .map(|p| {
                (
                    p.id.clone(),
                    p.url.clone(),
                    self.store.outbox_depth(&p.id),
                    stats.get(&p.id).cloned().unwrap_or_default(),
                )
            })
            .collect()
    }

    fn update_stats(&self, peer: &ClusterId, f: impl FnOnce(&mut PeerStats)) {
        let mut all = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        let s = all.entry(peer.clone()).or_default();
        f(s);
        let labels = [("peer", peer.to_string())];
        metrics::gauge!("hearth_peer_reachable", &labels).set(if s.reachable == Some(true) { 1.0 } else { 0.0 });
        if let Some(t) = s.last_success {
            metrics::gauge!("hearth_peer_last_success_timestamp", &labels).set(t as f64);
        }
        metrics::gauge!("hearth_peer_failures", &labels).set(f64::from(s.failures));
        // 0 while nothing is waiting for a retry.
        metrics::gauge!("hearth_peer_next_retry_timestamp", &labels).set(s.next_retry.unwrap_or(0) as f64);
    }

    /// Sets the queue depth gauge of `peer`, whose outbox `outbox_peek` just found `peeked`
    /// notices in, the `whole` queue or not. A longer queue is counted (a scan of all of it, which
    /// costs as much as sending a batch when thousands wait) at most once a second.
    fn set_depth_gauge(&self, peer: &ClusterId, peeked: usize, whole: bool) {
        let depth = if whole {
            peeked
        } else {
            let mut last = self.depth_counted.lock().unwrap_or_else(|p| p.into_inner());
            if last.get(peer).is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return;
            }
            last.insert(peer.clone(), std::time::Instant::now());
            self.store.outbox_depth(peer)
        };
        metrics::gauge!("hearth_peer_queue_depth", "peer" => peer.to_string()).set(depth as f64);
    }

    /// The next batch for `peer`, when this replica holds (and so renews) the peer's outbox
    /// lease: a batch sent before and not acknowledged (recorded after `after`), as it was;
    /// else the notices queued after `after` (from the start of the queue when none), recorded as
    /// in flight and spliced into a batch body.
    fn prepare_batch(&self, peer: &ClusterId, after: Option<&[u8]>) -> Result<Next, crate::accounts::Error> {
        if !self.store.hold_lease(&lease_name(peer), crate::store::lease::this_process(), LEASE_MS)? {
            return Ok(Next::NotHolder);
        }
        let (record, queued) = match self.store.next_in_flight(peer, after)? {
            Some((record, queued)) => (Some(record), queued),
            None => {
                let (queued, whole) =
                    self.store.outbox_peek(peer, after, MAX_NOTICES_PER_BATCH, MAX_BATCH_NOTICE_BYTES)?;
                self.set_depth_gauge(peer, queued.len(), whole && after.is_none());
                (None, queued)
            }
        };
        if queued.is_empty() {
            return Ok(Next::Empty);
        }
        let (keys, notices): (Vec<_>, Vec<_>) = queued.into_iter().unzip();
        let record = match record {
            Some(r) => r,
            None => self.store.put_in_flight(peer, &keys)?,
        };
        // The queued JSON as it is: decoding every notice to encode it again cost the sender as
        // much time per batch as the receiver spends applying it.
        let body = NoticeBatch::body_from_notice_json(&self.me, peer, notices.iter().map(|n| &n[..]))
            .map_err(|e| fed_err(ErrorKind::Internal, "encode", e.to_string()))?;
        Ok(Next::Batch(Prepared { record, keys, body }))
    }

    /// [`Federation::prepare_batch`] on the blocking pool: reading a batch, and counting a long
    /// queue for the depth gauge, are store reads that grow with the queue.
    async fn prepare_off_runtime(
        self: &Arc<Self>,
        peer: &ClusterId,
        after: Option<Vec<u8>>,
    ) -> Result<Next, crate::accounts::Error> {
        let (me, peer) = (self.clone(), peer.clone());
        tokio::task::spawn_blocking(move || me.prepare_batch(&peer, after.as_deref()))
            .await
            .unwrap_or_else(|e| Err(fed_err(ErrorKind::Internal, "sender_task", e.to_string())))
    }

    /// Sends a prepared batch and, once the peer acknowledged it, removes its notices; Ok(number sent).
    async fn deliver(&self, peer: &ClusterId, batch: Prepared) -> Result<usize, crate::accounts::Error> {
        let answer = self.send_bytes(peer, Method::POST, "/federation/v1/notices", Some(batch.body)).await?;
        if !answer.status.is_success() {
            return Err(fed_err(
                ErrorKind::Upstream,
                "peer_refused",
                format!("{peer} answered {}: {}", answer.status, answer.body),
            ));
        }
        self.store.outbox_acknowledged(&batch.record, &batch.keys)?;
        metrics::counter!("hearth_notices_sent_total", "peer" => peer.to_string()).increment(batch.keys.len() as u64);
        Ok(batch.keys.len())
    }

    fn note_delivered(&self, peer: &ClusterId, n: usize) {
        let now = self.clock.unix();
        self.update_stats(peer, |s| {
            s.reachable = Some(true);
            s.last_success = Some(now);
            s.last_error = None;
            s.next_retry = None;
            s.failures = 0;
            s.sent += n as u64;
        });
    }

    /// The sender loop for one peer; runs until the process ends. Up to [`IN_FLIGHT`] batches
    /// are in flight, each made of the notices after the one before, so that the next batch is
    /// read, spliced and signed while the peer applies the last. Notices are removed as their own
    /// batch is acknowledged; after a failure the sender waits for what is still in flight, backs
    /// off and starts again from the oldest notice left (receivers ignore replays and order).
    pub async fn run_sender(self: Arc<Self>, peer: ClusterId, wake: Arc<tokio::sync::Notify>) {
        let mut in_flight: VecDeque<tokio::task::JoinHandle<Result<usize, crate::accounts::Error>>> = VecDeque::new();
        // The key of the last notice in flight (none: the next batch starts at the oldest).
        let mut cursor: Option<Vec<u8>> = None;
        loop {
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let mut failed = None;
            while in_flight.len() < IN_FLIGHT {
                match self.prepare_off_runtime(&peer, cursor.clone()).await {
                    Ok(Next::Batch(batch)) => {
                        cursor = batch.keys.last().cloned();
                        let (me, to) = (self.clone(), peer.clone());
                        in_flight.push_back(tokio::spawn(async move { me.deliver(&to, batch).await }));
                    }
                    // Nothing to send, or another replica sends to this peer: wait below (at
                    // most a second, LEASE_POLL) and ask again.
                    Ok(Next::Empty | Next::NotHolder) => break,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if failed.is_none() {
                let Some(oldest) = in_flight.pop_front() else {
                    cursor = None;
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep(LEASE_POLL) => {}
                    }
                    continue;
                };
                match joined(self.await_renewing(&peer, oldest).await) {
                    Ok(n) => {
                        self.note_delivered(&peer, n);
                        continue;
                    }
                    Err(e) => failed = Some(e),
                }
            }
            let Some(e) = failed else { continue };
            // What else is in flight finishes first: what it delivered is removed.
            while let Some(h) = in_flight.pop_front() {
                if let Ok(n) = joined(self.await_renewing(&peer, h).await) {
                    self.update_stats(&peer, |s| s.sent += n as u64);
                }
            }
            cursor = None;
            let mut failures = 0;
            self.update_stats(&peer, |s| {
                s.failures += 1;
                failures = s.failures;
                s.reachable = Some(false);
                s.last_error = Some(e.message.clone());
            });
            let jitter = rand::rng().random_range(0.5..1.5);
            let wait = backoff(failures, self.backoff_cap_secs, jitter);
            let next = self.clock.unix() + i64::try_from(wait.as_secs()).unwrap_or(0);
            self.update_stats(&peer, |s| s.next_retry = Some(next));
            tracing::debug!(%peer, error = %e, ?wait, "notice batch not delivered; backing off");
            tokio::time::sleep(wait).await;
        }
    }

    /// Waits for a batch in flight, renewing the peer's outbox lease every [`LEASE_RENEW`] meanwhile
    /// (on the blocking pool: a store write). A renewal that fails or finds the lease taken only
    /// lets another replica send too; the batch's recorded id keeps that harmless.
    async fn await_renewing<T>(
        self: &Arc<Self>,
        peer: &ClusterId,
        batch: tokio::task::JoinHandle<T>,
    ) -> Result<T, tokio::task::JoinError> {
        tokio::pin!(batch);
        loop {
            tokio::select! {
                done = &mut batch => return done,
                _ = tokio::time::sleep(LEASE_RENEW) => {
                    let (store, name) = (self.store.clone(), lease_name(peer));
                    let renewed = tokio::task::spawn_blocking(move || {
                        store.hold_lease(&name, crate::store::lease::this_process(), LEASE_MS)
                    })
                    .await;
                    if !matches!(renewed, Ok(Ok(true))) {
                        tracing::debug!(%peer, "the outbox lease was not renewed while a batch was in flight");
                    }
                }
            }
        }
    }

    /// Starts one sender per peer and the nonce pruner.
    pub fn start_background(self: &Arc<Self>, wake: Arc<tokio::sync::Notify>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        for peer in self.peers.keys().cloned() {
            tasks.push(tokio::spawn(self.clone().run_sender(peer, wake.clone())));
        }
        let me = self.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                let cutoff = me.clock.unix() - 2 * super::MAX_SKEW_SECS;
                // One replica of the cluster prunes (the holder of the background jobs' lease).
                if let Err(e) = me.store.runs_background_jobs().and_then(|mine| match mine {
                    true => me.store.prune_nonces(cutoff).map(drop),
                    false => Ok(()),
                }) {
                    tracing::warn!(error = %e, "pruning nonces failed");
                }
            }
        }));
        tasks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_up_to_the_cap() {
        assert_eq!(backoff(1, 300, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(2, 300, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(5, 300, 1.0), Duration::from_secs(16));
        assert_eq!(backoff(20, 300, 1.0), Duration::from_secs(300));
        assert_eq!(backoff(20, 300, 1.49), Duration::from_secs(300), "jitter never passes the cap");
        assert_eq!(backoff(3, 300, 0.5), Duration::from_secs(2));
    }
}
