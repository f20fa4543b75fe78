//! One launcher for everything: `serve`, `demo` and the tests all start a daemon through [`run`].

use crate::accounts::{AccountSettings, Accounts};
use crate::clock::Clock;
use crate::config::{ConfigError, Settings};
use crate::federation::{Federation, signing_key};
use crate::http::{App, router};
use crate::store::Store;
use crate::tls::ServerTlsError;
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
    /// Stops accepting, lets requests in flight finish (up to 10 s), gives up this replica's
    /// leases, flushes the store.
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
        let store = self.app.accounts.store().clone();
        if let Err(e) = tokio::task::spawn_blocking(move || store.release_own_leases()).await? {
            tracing::warn!(error = %e, "giving up this replica's leases failed; the others take over when they expire");
        }
        self.app.accounts.store().flush().context("flushing the store")?;
        Ok(())
    }
}

/// What the files the settings name hold, read and checked before anything is created.
struct Checked {
    /// One client per peer (each `ca_cert` read).
    peers: Vec<crate::federation::peers::Peer>,
    /// The signing key, when its file exists (else it is generated).
    signing_key: Option<federation_proto::ClusterSigningKey>,
    /// The server's TLS configuration, when its files exist (else a self-signed one is generated).
    tls: Option<Arc<rustls::ServerConfig>>,
    /// The OpenID Connect providers (each client secret file and `ca_cert` read).
    oidc: crate::oidc::Oidc,
}

/// Reads and checks every file the settings name, writing nothing: a bad `ca_cert`, certificate
/// or key stops the start with a message naming its key before the data dir, the store, a signing
/// key or a certificate is created.
fn check_files(settings: &Settings) -> anyhow::Result<Checked> {
    let peers = crate::federation::peers::clients(settings)?;
    let oidc = crate::oidc::Oidc::from_settings(settings)?;
    let key_path = settings.signing_key_path();
    let signing_key = signing_key::read_if_present(&key_path)
        .map_err(|e| ConfigError::invalid("federation.signing_key", format!("{e:#}")))?;
    let (cert, key, cert_key, key_key) = match (&settings.tls.cert, &settings.tls.key) {
        (Some(c), Some(k)) => (c.clone(), k.clone(), "tls.cert", "tls.key"),
        _ => {
            let (c, k) = crate::tls::self_signed_paths(&settings.cluster.data_dir);
            if !(c.exists() && k.exists()) {
                return Ok(Checked { peers, signing_key, tls: None, oidc });
            }
            (c, k, "tls.self_signed", "tls.self_signed")
        }
    };
    let tls = crate::tls::server_config(&cert, &key).map_err(|e| match e {
        ServerTlsError::Cert(e) => ConfigError::invalid(cert_key, format!("{e:#}")),
        ServerTlsError::Key(e) => ConfigError::invalid(key_key, format!("{e:#}")),
    })?;
    Ok(Checked { peers, signing_key, tls: Some(tls), oidc })
}

/// Checks every file the settings name, then opens (or creates) the store, keys and certificates,
/// and serves on `listener` until shut down.
pub async fn run(
    settings: Settings,
    listener: std::net::TcpListener,
    metrics: Option<PrometheusHandle>,
) -> anyhow::Result<DaemonHandle> {
    let checked = check_files(&settings)?;
    let data_dir = settings.cluster.data_dir.clone();
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let store = Store::open_with(&data_dir.join("store"), settings.store.options()).context("opening the store")?;
    tracing::info!(backend = store.backend_name(), "store opened");
    if let Some(why) = crate::store::copy::unfinished_copy(&store)? {
        anyhow::bail!("the store: {why}");
    }
    let signing_key = match checked.signing_key {
        Some(k) => k,
        None => signing_key::create(&settings.signing_key_path())?,
    };
    let tls = match checked.tls {
        Some(t) => t,
        None => {
            let host = reqwest::Url::parse(&settings.cluster.public_url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_else(|| "localhost".into());
            let (cert, key) = crate::tls::ensure_self_signed(&data_dir, &host)?;
            crate::tls::server_config(&cert, &key).map_err(|e| match e {
                ServerTlsError::Cert(e) | ServerTlsError::Key(e) => e.context("the self-signed certificate"),
            })?
        }
    };
    let tls = RustlsConfig::from_config(tls);
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
        anonymous: settings.anonymous.clone(),
    };
    let federation = Arc::new(Federation::new(&settings, store.clone(), Clock::System, signing_key, checked.peers)?);
    let accounts = Accounts::new(store, account_settings, Clock::System).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut background = federation.start_background(accounts.outbox_signal().clone());
    let oidc = Arc::new(checked.oidc.with_store(accounts.store().clone()));
    // Providers are discovered before we serve, for a few seconds at most: one that cannot be
    // reached by then is retried in the background and its button says it is unavailable.
    oidc.discover_all(Duration::from_secs(5)).await;
    if !oidc.is_empty() {
        let o = oidc.clone();
        background.push(tokio::spawn(async move { o.keep_discovering().await }));
    }
    let notifier = crate::notify::Notifier::new(&settings.notify, settings.cluster.id.as_str())?;
    let list_gate = Arc::new(tokio::sync::Semaphore::new(crate::http::list_workers()));
    let app = Arc::new(App { settings, accounts, federation, oidc, metrics, notifier, list_gate });
    background.push(tokio::spawn(tidy_indexes(app.clone())));
    if let Some(m) = app.metrics.clone() {
        background.push(tokio::spawn(metrics_upkeep(m)));
    }
    background.push(tokio::spawn(sweep_expired(app.clone())));
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let handle: Handle<SocketAddr> = Handle::new();
    let service = router(app.clone()).into_make_service_with_connect_info::<SocketAddr>();
    // A client gets `header_read_timeout_secs` for the TLS handshake, then for the first request
    // (hyper's protocol detection included), then for each request head on HTTP/1.1 (which also
    // closes kept-alive connections idle that long); HTTP/2 connections whose peer stops
    // answering pings are closed.
    let patience = Duration::from_secs(app.settings.http.header_read_timeout_secs);
    // TCP_NODELAY: a response is written as several TLS records; with Nagle's algorithm the last
    // small segment waited for the client's delayed ACK, 40 ms on every answer longer than a packet.
    let mut server = axum_server::from_tcp_rustls(listener, tls)?
        .map(|tls| tls.handshake_timeout(patience).acceptor(axum_server::accept::NoDelayAcceptor::new()))
        .first_request_timeout(patience)
        .handle(handle.clone());
    server.http_builder().http1().header_read_timeout(patience);
    server.http_builder().http2().keep_alive_interval(H2_PING_INTERVAL).keep_alive_timeout(H2_PING_TIMEOUT);
    let server = tokio::spawn(async move { server.serve(service).await });
    tracing::info!(cluster = %app.settings.cluster.id, %addr, "hearth is serving");
    Ok(DaemonHandle { addr, app, handle, server, background })
}

/// How often an HTTP/2 connection without traffic is pinged.
const H2_PING_INTERVAL: Duration = Duration::from_secs(60);
/// How long a ping may go unanswered before the connection is closed.
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Tidies the index entries merges leave behind: once at start, then after each such merge (on
/// the replica holding the background jobs' lease; on PostgreSQL there are none to tidy).
async fn tidy_indexes(app: Arc<App>) {
    loop {
        let a = app.clone();
        match tokio::task::spawn_blocking(move || match a.accounts.store().runs_background_jobs()? {
            true => a.accounts.tidy_indexes(),
            false => Ok(0),
        })
        .await
        {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(entries = n, "index entries left by merges moved to their owners"),
            Ok(Err(e)) => tracing::warn!(error = %e, "tidying index entries failed; trying again after the next merge"),
            Err(e) => tracing::warn!(error = %e, "the index tidy stopped"),
        }
        app.accounts.tidy_signal().notified().await;
    }
}

/// How often the recorder folds recorded samples into its histograms.
const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Folds the request-latency samples into their histograms every few seconds. The recorder keeps
/// every sample until then (`install_recorder` leaves this to its caller): without it, a daemon
/// that is not scraped grows by every request it answers and a scrape pays for all of them.
async fn metrics_upkeep(handle: PrometheusHandle) {
    let mut tick = tokio::time::interval(METRICS_UPKEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

/// How often expired anonymous sessions and throttle counters are looked for.
const ANONYMOUS_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Deletes expired anonymous sessions with their collections, and the login throttle's counters
/// past their window (PostgreSQL), every minute (the first pass at start), on the one replica
/// holding the background jobs' lease.
async fn sweep_expired(app: Arc<App>) {
    let mut tick = tokio::time::interval(ANONYMOUS_SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let a = app.clone();
        // One replica of the cluster sweeps (the holder of the background jobs' lease).
        type Swept = (crate::accounts::error::Result<usize>, crate::accounts::error::Result<usize>);
        match tokio::task::spawn_blocking(move || -> crate::store::StoreResult<Swept> {
            Ok(match a.accounts.store().runs_background_jobs()? {
                true => (a.accounts.sweep_expired_anonymous(), a.accounts.sweep_login_throttle()),
                false => (Ok(0), Ok(0)),
            })
        })
        .await
        {
            Ok(Ok((anonymous, throttle))) => {
                match anonymous {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(sessions = n, "expired anonymous sessions deleted with their collections"),
                    Err(e) => {
                        tracing::warn!(error = %e, "sweeping expired anonymous sessions failed; trying again later")
                    }
                }
                match throttle {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(keys = n, "login throttle counters past their window deleted"),
                    Err(e) => {
                        tracing::warn!(error = %e, "sweeping the login throttle's counters failed; trying again later")
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the background jobs' lease could not be read; trying again later")
            }
            Err(e) => tracing::warn!(error = %e, "the sweeps of expired sessions and counters stopped"),
        }
    }
}
