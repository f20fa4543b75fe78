//! Peers, their keys, and the one signed client.
//!
//! Keys: each peer is pinned in the config by public key. A rotated key is accepted only from the
//! peer's key document (`GET /federation/v1/keys`) signed by a key we already trust; from then on
//! only the document's current keys authenticate requests (old keys no longer do), and the new set
//! is kept in the store so that it survives restarts. Changing the pin in the config resets it.

use super::{Federation, MAX_SKEW_SECS, fed_err};
use crate::accounts::{Error, ErrorKind, random_secret};
use crate::config::{ConfigError, PeerSettings, Settings};
use crate::store::{Store, WriteBatch};
use federation_proto::keys::OldVerifyKey;
use federation_proto::request::RequestSignature;
use federation_proto::{ClusterId, ClusterSigningKey, KeyDocument, KeyId, Signed, VerifyKey};
use reqwest::Method;
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long one request to a peer may take, its answer included.
pub const PEER_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// One peer cluster.
pub struct Peer {
    /// Its id.
    pub id: ClusterId,
    /// Its base URL, without a trailing slash.
    pub url: String,
    http: reqwest::Client,
}

impl Peer {
    /// A peer from the config: trusts only the certificates of its `ca_cert` (read by the
    /// launcher, [`crate::tls::read_ca_certs`]) when it has one, else the system roots.
    pub fn new(p: &PeerSettings, ca: Option<&[CertificateDer<'static>]>) -> anyhow::Result<Peer> {
        let mut b = reqwest::Client::builder()
            .timeout(PEER_REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            // HTTP/1.1: a peer request is one of a chain of wake-ups across two daemons, and
            // HTTP/2 added two task hand-offs to each (the server runs every stream apart from its
            // connection); pooled kept-alive connections carry concurrent requests instead.
            .http1_only()
            .redirect(reqwest::redirect::Policy::none());
        if let Some(certs) = ca {
            let certs = certs.iter().map(|c| reqwest::Certificate::from_der(c)).collect::<Result<Vec<_>, _>>()?;
            b = b.tls_certs_only(certs);
        }
        Ok(Peer { id: p.id.clone(), url: p.url.trim_end_matches('/').to_string(), http: b.build()? })
    }
}

/// A client for every configured peer. Reads each `ca_cert` file and refuses, naming the key, one
/// that cannot be read or holds no usable certificate. Writes nothing, so it runs before the
/// launcher creates anything.
pub fn clients(settings: &Settings) -> anyhow::Result<Vec<Peer>> {
    let mut out = Vec::new();
    for (i, p) in settings.federation.peers.iter().enumerate() {
        let ca = match &p.ca_cert {
            Some(path) => Some(
                crate::tls::read_ca_certs(path)
                    .map_err(|e| ConfigError::invalid(&format!("federation.peers[{i}].ca_cert"), format!("{e:#}")))?,
            ),
            None => None,
        };
        let peer = Peer::new(p, ca.as_deref())
            .map_err(|e| ConfigError::invalid(&format!("federation.peers[{i}]"), format!("{e:#}")))?;
        out.push(peer);
    }
    Ok(out)
}

#[derive(Serialize, Deserialize)]
struct StoredKeys {
    pinned: VerifyKey,
    keys: BTreeMap<KeyId, VerifyKey>,
}

fn meta_name(peer: &ClusterId) -> String {
    format!("peer_keys:{peer}")
}

/// Keys learned for `peer` through a verified rotation, if the config still pins the key they grew from.
pub fn stored_keys(
    store: &Store,
    peer: &ClusterId,
    pinned: &VerifyKey,
) -> anyhow::Result<Option<BTreeMap<KeyId, VerifyKey>>> {
    let Some(bytes) = store.meta(&meta_name(peer))? else { return Ok(None) };
    let stored: StoredKeys = serde_json::from_slice(&bytes)?;
    Ok((&stored.pinned == pinned).then_some(stored.keys))
}

/// An answer from a peer.
#[derive(Debug)]
pub struct PeerAnswer {
    /// Status.
    pub status: reqwest::StatusCode,
    /// Body (Null when not JSON).
    pub body: Value,
}

/// Our own key document and the old keys it lists, as kept in the store after a rotation.
#[derive(Serialize, Deserialize)]
struct OwnKeys {
    old: BTreeMap<KeyId, OldVerifyKey>,
    document: Option<Value>,
}

const OWN_KEYS: &str = "own_keys";

impl Federation {
    /// Sends a signed request to `peer`. The body is JSON (or empty for `None`).
    pub async fn send(
        &self,
        peer: &ClusterId,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<PeerAnswer, Error> {
        let bytes = match body {
            Some(v) => Some(serde_json::to_vec(v).map_err(|e| fed_err(ErrorKind::Internal, "encode", e.to_string()))?),
            None => None,
        };
        self.send_bytes(peer, method, path, bytes).await
    }

    /// [`Federation::send`] of a body already encoded as JSON (or empty for `None`).
    pub async fn send_bytes(
        &self,
        peer: &ClusterId,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<PeerAnswer, Error> {
        let p = self
            .peers
            .get(peer)
            .ok_or_else(|| fed_err(ErrorKind::BadRequest, "not_a_peer", format!("{peer} is not a peer")))?;
        let has_body = body.is_some();
        let bytes = body.unwrap_or_default();
        let key = self.signing_key();
        let sig = RequestSignature::sign(
            method.as_str(),
            path,
            &self.me,
            peer,
            self.clock.unix(),
            &random_secret(),
            &bytes,
            &key,
        )
        .map_err(|e| fed_err(ErrorKind::Internal, "sign", e.to_string()))?;
        let mut req =
            p.http.request(method, format!("{}{}", p.url, path)).header("Authorization", sig.to_header_value());
        if has_body {
            req = req.header("Content-Type", "application/json").body(bytes);
        }
        let resp = req.send().await.map_err(|e| {
            fed_err(ErrorKind::Upstream, "peer_unreachable", format!("cluster {peer} could not be reached: {e}"))
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| fed_err(ErrorKind::Upstream, "peer_unreachable", format!("cluster {peer}: {e}")))?;
        Ok(PeerAnswer { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) })
    }

    /// Verifies an incoming peer request and returns its authenticated origin: the origin is a
    /// configured peer, the key is that peer's, the destination is us, the time is within
    /// [`MAX_SKEW_SECS`], the nonce is new, the body hash and signature match. A key id we do not
    /// know makes us fetch the peer's key document once (rotation), then try again. The nonce is
    /// recorded before this returns but not flushed: the request's own commit makes it durable,
    /// and a request that writes nothing calls [`Federation::nonce_durable`] if a replay after a
    /// crash could learn more from its answer than from its body.
    pub async fn authenticate_request(
        &self,
        method: &str,
        uri: &str,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<ClusterId, Error> {
        let unauth = |code: &'static str, msg: String| fed_err(ErrorKind::Unauthorized, code, msg);
        let header =
            authorization.ok_or_else(|| unauth("no_signature", "peer request without a Hearth-Signature".into()))?;
        let sig = RequestSignature::parse_header_value(header)
            .map_err(|e| unauth("bad_signature_header", format!("malformed Hearth-Signature: {e}")))?;
        let origin = sig.origin().clone();
        if !self.peers.contains_key(&origin) {
            return Err(unauth("unknown_origin", format!("{origin} is not a peer of this cluster")));
        }
        let now = self.clock.unix();
        let first = sig.verify(method, uri, body, &self.me, now, MAX_SKEW_SECS, &self.lookup());
        let verified = match first {
            Err(federation_proto::ProtoError::UnknownKey { .. }) => {
                self.refresh_peer_keys(&origin).await;
                sig.verify(method, uri, body, &self.me, now, MAX_SKEW_SECS, &self.lookup())
            }
            other => other,
        };
        let origin = verified.map_err(|e| unauth("signature_refused", format!("signed request refused: {e}")))?;
        // Recorded without a flush of its own: see `http::federation::PeerRequest`.
        if !self.store.nonce_first_seen_unflushed(&origin, sig.nonce(), now)? {
            return Err(unauth("replayed_nonce", "this request was already received (nonce seen)".into()));
        }
        Ok(origin)
    }

    /// Makes the nonces recorded so far durable (a flush), for a request that writes nothing.
    pub fn nonce_durable(&self) -> Result<(), Error> {
        Ok(self.store.flush()?)
    }

    /// Fetches `peer`'s key document and adopts it if a key we trust signed it (at most every 10 s).
    pub async fn refresh_peer_keys(&self, peer: &ClusterId) {
        let now = self.clock.unix();
        {
            let mut last = self.key_fetches.lock().unwrap_or_else(|p| p.into_inner());
            if last.get(peer).is_some_and(|&t| now - t < 10) {
                return;
            }
            last.insert(peer.clone(), now);
        }
        let Some(p) = self.peers.get(peer) else { return };
        let doc = match p.http.get(format!("{}/federation/v1/keys", p.url)).send().await {
            Ok(r) => r.json::<Value>().await.ok(),
            Err(_) => None,
        };
        let Some(doc) = doc else { return };
        if let Err(e) = self.adopt_key_document(peer, doc) {
            tracing::warn!(%peer, error = %e, "refused a key document");
        }
    }

    /// Checks a peer's key document against the keys we trust and, if it passes, trusts exactly its
    /// current keys from now on.
    pub fn adopt_key_document(&self, peer: &ClusterId, doc: Value) -> Result<(), Error> {
        let refuse = |e: String| fed_err(ErrorKind::Unauthorized, "key_document_refused", e);
        let signed: Signed<KeyDocument> = Signed::from_value(doc).map_err(|e| refuse(e.to_string()))?;
        let current = self.trusted.read().unwrap_or_else(|p| p.into_inner()).keys_of(peer).cloned().unwrap_or_default();
        let verified = KeyDocument::verify_update(&signed, peer, &current, self.clock.unix())
            .map_err(|e| refuse(e.to_string()))?;
        if verified.verify_keys == current {
            return Ok(());
        }
        let pinned = self.pinned_of(peer);
        let mut b = WriteBatch::new();
        let stored = StoredKeys { pinned, keys: verified.verify_keys.clone() };
        b.put_meta(&meta_name(peer), &serde_json::to_vec(&stored).map_err(|e| refuse(e.to_string()))?);
        self.store.commit(b)?;
        self.trusted.write().unwrap_or_else(|p| p.into_inner()).replace(peer.clone(), verified.verify_keys);
        tracing::info!(%peer, "adopted a rotated key document");
        Ok(())
    }

    fn pinned_of(&self, peer: &ClusterId) -> VerifyKey {
        // The config's pin for this peer; the store remembers it beside the rotated keys.
        self.pins.get(peer).copied().unwrap_or_else(|| self.signing_key().public())
    }

    /// Our key document: current key, old keys, signed by the current key (and, right after a
    /// rotation, by the previous key too, so that peers that trust the old key adopt the new one).
    pub fn key_document(&self) -> Result<Value, Error> {
        let own = self.own_keys()?;
        if let Some(doc) = own.document
            && doc.get("valid_until_ts").and_then(Value::as_i64).is_some_and(|t| t > self.clock.unix() + 3600)
        {
            return Ok(doc);
        }
        let key = self.signing_key();
        let doc = KeyDocument::new(self.me.clone(), key.public(), own.old, self.clock.unix() + 7 * 24 * 3600);
        let signed = doc.sign(&key, &[]).map_err(|e| fed_err(ErrorKind::Internal, "sign", e.to_string()))?;
        Ok(signed.to_value())
    }

    fn own_keys(&self) -> Result<OwnKeys, Error> {
        Ok(match self.store.meta(OWN_KEYS)? {
            Some(b) => {
                serde_json::from_slice(&b).map_err(|e| fed_err(ErrorKind::Internal, "own_keys", e.to_string()))?
            }
            None => OwnKeys { old: BTreeMap::new(), document: None },
        })
    }

    /// Rotates our signing key: a new key becomes current (written to the key file), the old one is
    /// listed as expired, and the new key document is signed by both, valid for 30 days. Returns the
    /// new public key.
    pub fn rotate_key(&self) -> Result<VerifyKey, Error> {
        let old = self.signing_key();
        let new: ClusterSigningKey = super::signing_key::generate();
        let now = self.clock.unix();
        let mut own = self.own_keys()?;
        own.old.insert(old.key_id().clone(), OldVerifyKey { key: old.public(), expired_ts: now });
        let doc = KeyDocument::new(self.me.clone(), new.public(), own.old.clone(), now + 30 * 24 * 3600);
        let signed = doc.sign(&new, &[&old]).map_err(|e| fed_err(ErrorKind::Internal, "sign", e.to_string()))?;
        own.document = Some(signed.to_value());
        let tmp = self.signing_key_path.with_extension("new");
        super::signing_key::write(&tmp, &new).map_err(|e| fed_err(ErrorKind::Internal, "key_file", e.to_string()))?;
        std::fs::rename(&tmp, &self.signing_key_path)
            .map_err(|e| fed_err(ErrorKind::Internal, "key_file", e.to_string()))?;
        let mut b = WriteBatch::new();
        b.put_meta(
            OWN_KEYS,
            &serde_json::to_vec(&own).map_err(|e| fed_err(ErrorKind::Internal, "own_keys", e.to_string()))?,
        );
        self.store.commit(b)?;
        *self.signing.write().unwrap_or_else(|p| p.into_inner()) = new.clone();
        tracing::info!(public_key = %new.public(), "rotated the signing key");
        Ok(new.public())
    }
}

/// How long signed requests are accepted around their timestamp (documented for operators).
pub const SKEW: i64 = MAX_SKEW_SECS;
