//! Hearth: the federation-aware account daemon of one cluster.
//!
//! Data runs one way: `http → accounts | federation → store`. The store alone knows its database
//! (sled or PostgreSQL), the account services never see HTTP types, and the protocol crate
//! (`federation-proto`) never sees the daemon. ARCHITECTURE.md at the repository root is the map.

pub mod accounts;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod federation;
pub mod fixtures;
pub mod http;
pub mod launch;
pub mod migration;
pub mod notify;
pub mod oidc;
pub mod store;
pub mod tls;

/// The allocator of every program built on this library (the daemon, its tests and benchmarks).
/// sled allocates and frees a node for nearly every write; under glibc's malloc a big write (the
/// legacy import of 50,000 accounts) spent a third of its time searching free lists, and took
/// 28 s against 16.6 s with mimalloc (see the `legacy` bench).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Installs ring as the process-wide rustls crypto provider. Call first thing in `main` and in
/// test set-up: a reqwest client built before any provider is installed panics.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
