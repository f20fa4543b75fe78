//! Operations endpoints: `/healthz` (the process answers), `/readyz` (the store is open and
//! answering), `/metrics` (Prometheus text format).

use super::App;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use std::sync::Arc;

/// Liveness.
pub async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, axum::Json(serde_json::json!({"status": "ok"})))
}

/// Readiness: the store answers a read. Also says, per OpenID Connect provider, `ready` or why it
/// is unavailable; an unavailable provider does not make the cluster unready (password logins and
/// the API still work), it is named so that operators see it.
pub async fn readyz(State(app): State<Arc<App>>) -> impl IntoResponse {
    let oidc: serde_json::Map<String, serde_json::Value> =
        app.oidc.providers().iter().map(|p| (p.id().to_string(), p.status().into())).collect();
    let unavailable: Vec<&str> = app.oidc.providers().iter().filter(|p| !p.available()).map(|p| p.id()).collect();
    match app.accounts.store().user(app.accounts.system_user()) {
        Ok(Some(_)) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ready", "oidc": oidc, "oidc_unavailable": unavailable})),
        ),
        _ => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({"status": "store not ready"}))),
    }
}

/// Prometheus metrics.
pub async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    let body = app.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
