//! Federation: this cluster's signing key, its peers and the keys it trusts for them, the one
//! signed client for outgoing peer requests and the one verifier for incoming ones, the durable
//! notice outbox and its senders, the remote account cache and salted-token validation.
//!
//! Invariants: every request to a peer is signed by [`Federation::send`]; every request from a
//! peer passes [`Federation::authenticate_request`] before its body is looked at; only a user's
//! home cluster can change that user's cached record here, and a cached record is never admin.

pub mod cache;
pub mod outbox;
pub mod peers;
pub mod signing_key;
pub mod validation_limits;

use crate::accounts::{Error, ErrorKind};
use crate::clock::Clock;
use crate::config::Settings;
use crate::store::Store;
use federation_proto::{ClusterId, ClusterSigningKey, KeyId, KeyLookup, ObjectUuid, TrustedKeys, VerifyKey};
use peers::Peer;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

/// Largest accepted difference between a signed request's `ts` and our clock.
pub const MAX_SKEW_SECS: i64 = 300;

/// How long a token its issuer refused is refused here without asking again.
pub const REFUSAL_MEMORY_SECS: i64 = 60;

/// Most refused tokens remembered (about 100 bytes each).
pub const REFUSAL_MEMORY_ENTRIES: usize = 10_000;

/// Federation state of one daemon.
pub struct Federation {
    me: ClusterId,
    store: Store,
    clock: Clock,
    signing: RwLock<ClusterSigningKey>,
    signing_key_path: PathBuf,
    peers: BTreeMap<ClusterId, Peer>,
    pins: BTreeMap<ClusterId, VerifyKey>,
    trusted: RwLock<TrustedKeys>,
    key_fetches: Mutex<HashMap<ClusterId, i64>>,
    validations: tokio::sync::Mutex<HashMap<ObjectUuid, Arc<tokio::sync::Mutex<()>>>>,
    /// Remote tokens revoked by a notice lately (when): a validation that was in flight when the
    /// notice arrived must not cache its (older) answer.
    revoked: Mutex<HashMap<ObjectUuid, std::time::Instant>>,
    /// Tokens their issuer refused lately: asked again only once this forgets them.
    refused: validation_limits::RefusedTokens,
    /// Validations each issuer may still be asked for.
    budget: validation_limits::PeerBudget,
    stats: Mutex<BTreeMap<ClusterId, outbox::PeerStats>>,
    /// When each peer's outbox was last counted for the queue depth gauge.
    depth_counted: Mutex<HashMap<ClusterId, std::time::Instant>>,
    refresh_secs: i64,
    backoff_cap_secs: u64,
}

fn fed_err(kind: ErrorKind, code: &'static str, msg: impl Into<String>) -> Error {
    Error::new(kind, code, msg)
}

impl Federation {
    /// Sets up peers (with their pinned, or since rotated, keys) and their clients (`clients`, one
    /// per configured peer: [`peers::clients`]).
    pub fn new(
        settings: &Settings,
        store: Store,
        clock: Clock,
        signing: ClusterSigningKey,
        clients: Vec<Peer>,
    ) -> anyhow::Result<Federation> {
        let mut clients: BTreeMap<ClusterId, Peer> = clients.into_iter().map(|p| (p.id.clone(), p)).collect();
        let mut peers = BTreeMap::new();
        let mut trusted = TrustedKeys::new();
        let mut pins = BTreeMap::new();
        for p in &settings.federation.peers {
            let pinned: VerifyKey =
                p.public_key.parse().map_err(|e| anyhow::anyhow!("federation.peers {}: {e}", p.id))?;
            match peers::stored_keys(&store, &p.id, &pinned)? {
                Some(keys) => trusted.replace(p.id.clone(), keys),
                None => trusted.pin(p.id.clone(), pinned),
            }
            pins.insert(p.id.clone(), pinned);
            let client =
                clients.remove(&p.id).ok_or_else(|| anyhow::anyhow!("federation.peers {}: no HTTP client", p.id))?;
            peers.insert(p.id.clone(), client);
        }
        Ok(Federation {
            me: settings.cluster.id.clone(),
            store,
            clock,
            signing: RwLock::new(signing),
            signing_key_path: settings.signing_key_path(),
            peers,
            pins,
            trusted: RwLock::new(trusted),
            key_fetches: Mutex::new(HashMap::new()),
            validations: tokio::sync::Mutex::new(HashMap::new()),
            revoked: Mutex::new(HashMap::new()),
            refused: validation_limits::RefusedTokens::new(REFUSAL_MEMORY_SECS, REFUSAL_MEMORY_ENTRIES),
            budget: validation_limits::PeerBudget::new(
                settings.federation.validation.per_peer_per_sec,
                settings.federation.validation.per_peer_burst,
            ),
            stats: Mutex::new(BTreeMap::new()),
            depth_counted: Mutex::new(HashMap::new()),
            refresh_secs: i64::try_from(settings.federation.remote_token_refresh_secs).unwrap_or(300),
            backoff_cap_secs: settings.federation.retry_backoff_cap_secs,
        })
    }

    /// This cluster.
    pub fn me(&self) -> &ClusterId {
        &self.me
    }

    /// The configured peers.
    pub fn peer_ids(&self) -> impl Iterator<Item = &ClusterId> {
        self.peers.keys()
    }

    /// Whether `id` is a configured peer.
    pub fn is_peer(&self, id: &ClusterId) -> bool {
        self.peers.contains_key(id)
    }

    /// The current signing key.
    pub fn signing_key(&self) -> ClusterSigningKey {
        self.signing.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn lookup(&self) -> impl KeyLookup + '_ {
        move |c: &ClusterId, k: &KeyId| self.trusted.read().unwrap_or_else(|p| p.into_inner()).verify_key(c, k)
    }

    /// Signs `value` as this cluster.
    pub fn sign<T: serde::Serialize>(&self, value: T) -> Result<federation_proto::Signed<T>, Error> {
        federation_proto::Signed::sign(value, &self.me, &self.signing_key())
            .map_err(|e| fed_err(ErrorKind::Internal, "sign", e.to_string()))
    }

    /// Verifies a signed object that `origin` (a peer) must have signed, and returns its content.
    pub fn verify_from<T: serde::de::DeserializeOwned>(
        &self,
        origin: &ClusterId,
        value: serde_json::Value,
    ) -> Result<T, Error> {
        if !self.peers.contains_key(origin) {
            return Err(fed_err(ErrorKind::Forbidden, "not_a_peer", format!("{origin} is not a peer of this cluster")));
        }
        let signed: federation_proto::Signed<T> = federation_proto::Signed::from_value(value)
            .map_err(|e| fed_err(ErrorKind::Forbidden, "bad_signed_object", format!("malformed signed object: {e}")))?;
        signed
            .verify(origin, &self.lookup())
            .map_err(|e| fed_err(ErrorKind::Forbidden, "signature_refused", format!("signature refused: {e}")))
    }

    /// The public origin of peer `id`.
    pub fn peer_url(&self, id: &ClusterId) -> Option<&str> {
        self.peers.get(id).map(|p| p.url.as_str())
    }

    /// Keys currently trusted for `peer` (for tests and the admin view).
    pub fn trusted_keys(&self, peer: &ClusterId) -> Vec<String> {
        self.trusted
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys_of(peer)
            .map(|m| m.values().map(|k| k.to_string()).collect())
            .unwrap_or_default()
    }
}
