//! `hearth serve --config FILE`: one cluster's daemon until SIGTERM or Ctrl-C.

use crate::config::Settings;
use anyhow::Context;
use std::path::Path;

/// Sets up logging (text or JSON) with the configured filter.
pub fn init_logging(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{filter},rustls_platform_verifier=off")));
    // Colour codes only for a person at a terminal: logs written to files (the demo, systemd,
    // the tests) stay plain text that grep and log shippers read.
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

/// Runs the daemon.
pub async fn serve(config: &Path, json_logs: bool) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    init_logging(&settings.log.filter, json_logs || settings.log.format == "json");
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().ok();
    let listener = std::net::TcpListener::bind(&settings.cluster.listen)
        .with_context(|| format!("cannot listen on {}", settings.cluster.listen))?;
    let handle = crate::launch::run(settings, listener, metrics).await?;
    outln!("hearth listening on https://{}", handle.addr);
    wait_for_signal().await;
    tracing::info!("shutting down");
    handle.shutdown().await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
