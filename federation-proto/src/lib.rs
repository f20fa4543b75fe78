//! Hearth's federation protocol: the wire types shared by every Hearth daemon and its tests.
//!
//! This crate owns identifiers ([`ClusterId`], [`ObjectUuid`]), API tokens and their per-cluster salting
//! ([`Token`], [`salted_secret`], [`SecretHash`]), token scopes ([`Scopes`]), and the signed
//! server-to-server protocol: canonical JSON ([`canonical`]), keys and key rotation ([`keys`]), signed
//! objects ([`Signed`]), signed requests ([`RequestSignature`]), notices ([`notice`]) and the assertions
//! and grants clusters hand each other ([`assertion`]). It is pure: it does no I/O, reads no clock (times
//! are passed in as unix seconds) and draws no randomness (callers pass nonces, ids and key bytes in), so
//! every function is deterministic and can be tested and fuzzed in isolation. The wire formats are
//! described in the crate's README.

#![deny(missing_docs)]

pub mod assertion;
pub mod canonical;
pub mod cluster;
pub mod error;
pub mod keys;
pub mod notice;
pub mod request;
pub mod scope;
pub mod signed;
mod text_serde;
pub mod token;
pub mod uuid;

pub use assertion::{LoginAssertion, MigrationGrant, MigrationRequest, TokenAssertion, TokenValidationRequest};
pub use cluster::ClusterId;
pub use error::{ParseError, ProtoError, SaltError};
pub use keys::{ClusterSigningKey, KeyDocument, KeyId, KeyLookup, TrustedKeys, VerifyKey};
pub use notice::{Notice, NoticeBatch, ProfileRecord, UserRecord};
pub use request::RequestSignature;
pub use scope::Scopes;
pub use signed::Signed;
pub use token::{AnonymousToken, SecretHash, Token, salted_secret};
pub use uuid::{ObjectKind, ObjectUuid};
