//! Error types of the protocol crate.
//!
//! `ParseError` is what every "parse once at the edge" constructor returns: it names *what* was being
//! parsed and *why* it was refused, but never echoes a secret back. `SaltError` is the one way salting
//! a token can fail. `ProtoError` covers encoding, signing and verification of federation messages;
//! each variant has a stable [`ProtoError::code`] so the daemon can map it to a status without
//! matching on message text.

use std::fmt;

use crate::cluster::ClusterId;

/// A value from outside could not be parsed into one of this crate's types.
///
/// The message names the kind of value (`what`) and the reason; it never contains a token secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {reason}")]
pub struct ParseError {
    what: &'static str,
    reason: String,
}

impl ParseError {
    /// Builds an error about a value of kind `what` (e.g. "cluster id") refused for `reason`.
    pub fn new(what: &'static str, reason: impl fmt::Display) -> Self {
        Self { what, reason: reason.to_string() }
    }

    /// The kind of value that was refused, e.g. `"cluster id"`, `"object uuid"`, `"token"`, `"scope"`.
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// Why it was refused, in words.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Salting a token failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SaltError {
    /// The token's secret is already a salted secret (40 lowercase hex) and the target is not the
    /// issuing cluster: a salted token cannot be re-salted for a third cluster.
    #[error("token is already salted and cannot be salted for another cluster")]
    AlreadySalted,
}

/// Encoding, signing or verifying a federation message failed.
///
/// Verification errors deliberately say little about secrets but enough for an operator to see which
/// check refused a message. Use [`ProtoError::code`] (stable) rather than the message to branch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// A value from outside did not parse (cluster id, uuid, key, header field…).
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// Malformed JSON, a JSON value of the wrong shape, or a serde failure.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// The value cannot be written as canonical JSON (a float, an integer outside ±(2^53−1), …).
    #[error("not canonical JSON: {0}")]
    NotCanonical(String),
    /// The object carries no signature by the cluster it was expected to come from.
    #[error("no signature by {origin}")]
    MissingSignature {
        /// The cluster whose signature was required.
        origin: ClusterId,
    },
    /// None of the origin's signatures is by a key the receiver trusts for it.
    #[error("no key of {origin} that we trust signed this ({key_id})")]
    UnknownKey {
        /// The cluster that supposedly signed.
        origin: ClusterId,
        /// The key id(s) it named.
        key_id: String,
    },
    /// A signature by a trusted key did not verify, or was not a well-formed signature.
    #[error("bad signature")]
    BadSignature,
    /// A signed request was addressed to another cluster.
    #[error("request is addressed to {got}, not to {expected}")]
    WrongDestination {
        /// This cluster.
        expected: ClusterId,
        /// The destination named in the request.
        got: ClusterId,
    },
    /// A signed request's timestamp is too far from the receiver's clock.
    #[error("timestamp {ts} is more than {max_skew_secs}s away from now ({now})")]
    ClockSkew {
        /// The request's timestamp.
        ts: i64,
        /// The receiver's clock.
        now: i64,
        /// The allowed difference.
        max_skew_secs: i64,
    },
    /// The body of a signed request does not match the hash it was signed with.
    #[error("body does not match the signed body hash")]
    BodyHashMismatch,
    /// A cluster named in a message is not the one that was expected (authenticated origin, issuer,
    /// audience, a user's home cluster…).
    #[error("{field} names {got}, expected {expected}")]
    ClusterMismatch {
        /// Which field was checked.
        field: &'static str,
        /// The cluster that had to be named.
        expected: ClusterId,
        /// The cluster that was named.
        got: ClusterId,
    },
    /// A message is well formed and authentic but refused by a protocol rule (batch too large, wrong
    /// object kind, nonce mismatch…); the text says which.
    #[error("refused: {0}")]
    Refused(String),
    /// A message's validity window has passed (or has not started).
    #[error("expired: {0}")]
    Expired(String),
}

impl ProtoError {
    /// A stable, machine-readable code for this error, e.g. `"bad_signature"`.
    pub fn code(&self) -> &'static str {
        match self {
            ProtoError::Parse(_) => "parse",
            ProtoError::Json(_) => "json",
            ProtoError::NotCanonical(_) => "not_canonical",
            ProtoError::MissingSignature { .. } => "missing_signature",
            ProtoError::UnknownKey { .. } => "unknown_key",
            ProtoError::BadSignature => "bad_signature",
            ProtoError::WrongDestination { .. } => "wrong_destination",
            ProtoError::ClockSkew { .. } => "clock_skew",
            ProtoError::BodyHashMismatch => "body_hash_mismatch",
            ProtoError::ClusterMismatch { .. } => "cluster_mismatch",
            ProtoError::Refused(_) => "refused",
            ProtoError::Expired(_) => "expired",
        }
    }

    /// True for errors that mean "this message is not authentic" (as opposed to malformed or refused
    /// by a rule): the daemon answers these with 401.
    pub fn is_authentication_failure(&self) -> bool {
        matches!(
            self,
            ProtoError::MissingSignature { .. }
                | ProtoError::UnknownKey { .. }
                | ProtoError::BadSignature
                | ProtoError::WrongDestination { .. }
                | ProtoError::ClockSkew { .. }
                | ProtoError::BodyHashMismatch
        )
    }

    pub(crate) fn json(e: impl fmt::Display) -> Self {
        ProtoError::Json(e.to_string())
    }

    pub(crate) fn mismatch(field: &'static str, expected: &ClusterId, got: &ClusterId) -> Self {
        ProtoError::ClusterMismatch { field, expected: expected.clone(), got: got.clone() }
    }
}

impl From<serde_json::Error> for ProtoError {
    fn from(e: serde_json::Error) -> Self {
        ProtoError::json(e)
    }
}
