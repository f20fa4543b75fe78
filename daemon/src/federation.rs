//! Federation: this cluster's signing key, peers, signed requests, notices, the remote account
//! cache and salted-token validation.

pub mod signing_key;
