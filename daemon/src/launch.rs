//! One launcher for everything: `serve`, `demo` and the tests all start a daemon through [`run`].

use crate::accounts::{AccountSettings, Accounts};
use crate::clock::Clock;
use crate::config::Settings;
use crate::federation::{Federation, signing_key};
use crate::http::{App, router};
use crate::store::Store;
use anyhow::Context;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use federation_proto::SecretHash;
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// A running daemon.
pub struct DaemonHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The shared state (for in-process callers such as benchmarks).
    pub app: Arc<App>,
    handle: Handle<SocketAddr>,
    server: JoinHandle<std::io::Result<()>>,
    background: Vec<JoinHandle<()>>,
}

impl DaemonHandle {
    /// Stops accepting, lets requests in flight finish (up to 10 s), flushes the store.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.handle.graceful_shutdown(Some(Duration::from_secs(10)));
        match self.server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(task = "https server", error = %e, "task failed"),
            Err(e) => tracing::error!(task = "https server", error = %e, "task panicked"),
        }
        for t in &self.background {
            t.abort();
        }
        self.app.accounts.store().flush().context("flushing the store")?;
        Ok(())
    }
}

/// Opens the store, loads keys and certificates, and serves on `listener` until shut down.
pub async fn run(
    settings: Settings,
    listener: std::net::TcpListener,
    metrics: Option<PrometheusHandle>,
) -> anyhow::Result<DaemonHandle> {
    let data_dir = settings.cluster.data_dir.clone();
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let store = Store::open(&data_dir.join("store")).context("opening the store")?;
    let signing_key = signing_key::load_or_generate(&settings.signing_key_path())?;
    let (cert, key) = match (&settings.tls.cert, &settings.tls.key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => {
            let host = reqwest::Url::parse(&settings.cluster.public_url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_else(|| "localhost".into());
            crate::tls::ensure_self_signed(&data_dir, &host)?
        }
    };
    let tls = RustlsConfig::from_pem_file(&cert, &key)
        .await
        .with_context(|| format!("loading TLS certificate {} and key {}", cert.display(), key.display()))?;
    let account_settings = AccountSettings {
        cluster: settings.cluster.id.clone(),
        peers: settings.federation.peers.iter().map(|p| p.id.clone()).collect(),
        system_root_token: settings.cluster.system_root_token.as_deref().map(SecretHash::of),
        login_token_lifetime_secs: settings.login.token_lifetime_secs,
        max_token_lifetime_secs: settings.policy.max_token_lifetime_secs,
        max_login_failures: settings.login.max_failures,
        login_failure_window_secs: settings.login.failure_window_secs,
        new_users_active: settings.policy.new_users_active,
        max_list_limit: settings.policy.max_list_limit,
    };
    let federation = Arc::new(Federation::new(&settings, store.clone(), Clock::System, signing_key)?);
    let accounts = Accounts::new(store, account_settings, Clock::System).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut background = federation.start_background(accounts.outbox_signal().clone());
    let list_gate = Arc::new(tokio::sync::Semaphore::new(crate::http::list_workers()));
    let app = Arc::new(App { settings, accounts, federation, metrics, list_gate });
    background.push(tokio::spawn(tidy_indexes(app.clone())));
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let handle: Handle<SocketAddr> = Handle::new();
    let service = router(app.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let server = axum_server::from_tcp_rustls(listener, tls)?.handle(handle.clone());
    let server = tokio::spawn(async move { server.serve(service).await });
    tracing::info!(cluster = %app.settings.cluster.id, %addr, "hearth is serving");
    Ok(DaemonHandle { addr, app, handle, server, background })
}

/// Tidies the index entries merges leave behind: once at start, then after each such merge.
async fn tidy_indexes(app: Arc<App>) {
    loop {
        let a = app.clone();
        match tokio::task::spawn_blocking(move || a.accounts.tidy_aliased_indexes()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(entries = n, "index entries left by merges moved to their owners"),
            Ok(Err(e)) => tracing::warn!(error = %e, "tidying index entries failed; trying again after the next merge"),
            Err(e) => tracing::warn!(error = %e, "the index tidy stopped"),
        }
        app.accounts.tidy_signal().notified().await;
    }
}
