//! Handlers of the federation API (`/federation/v1/…`, signed peer requests) and of the admin
//! views of the federation (`/hearth/v1/admin/…`).

use super::App;
use super::auth::Authed;
use super::error::{ApiError, ApiResult};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri, header};
use serde_json::{Value, json};
use std::sync::Arc;

fn path_and_query(uri: &Uri) -> String {
    uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| uri.path().to_string())
}

async fn peer_origin(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<federation_proto::ClusterId> {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    Ok(app.federation.authenticate_request(method.as_str(), &path_and_query(uri), auth, body).await?)
}

/// `GET /federation/v1/keys`: our key document (public, signed).
pub async fn keys(State(app): State<Arc<App>>) -> ApiResult<Json<Value>> {
    Ok(Json(app.federation.key_document()?))
}

/// `POST /federation/v1/notices` (signed).
pub async fn notices(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let origin = peer_origin(&app, &method, &uri, &headers, &body).await?;
    let app2 = app.clone();
    let answer = tokio::task::spawn_blocking(move || app2.federation.receive_notices(&app2.accounts, &origin, &body))
        .await
        .map_err(|_| {
            ApiError(crate::accounts::Error::new(crate::accounts::ErrorKind::Internal, "join", "task failed"))
        })??;
    Ok(Json(answer))
}

/// `POST /federation/v1/tokens/validate` (signed).
pub async fn validate_token(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let origin = peer_origin(&app, &method, &uri, &headers, &body).await?;
    Ok(Json(app.federation.validate_for_peer(&app.accounts, &origin, &body)?))
}

/// `GET /hearth/v1/admin/peers` (admin): per peer, reachable, queue depth, last success, next retry.
pub async fn admin_peers(State(app): State<Arc<App>>, Authed(c): Authed) -> ApiResult<Json<Value>> {
    c.require_admin()?;
    let items: Vec<Value> = app
        .federation
        .peer_status()
        .into_iter()
        .map(|(id, url, depth, s)| {
            json!({
                "cluster_id": id, "url": url, "queue_depth": depth, "reachable": s.reachable,
                "last_success": s.last_success, "next_retry": s.next_retry, "failures": s.failures,
                "last_error": s.last_error, "sent": s.sent, "trusted_keys": app.federation.trusted_keys(&id),
            })
        })
        .collect();
    Ok(Json(json!({"cluster_id": app.federation.me(), "items": items})))
}

/// `POST /hearth/v1/admin/keys/rotate` (admin): a new signing key; peers adopt it from our key document.
pub async fn admin_rotate_key(State(app): State<Arc<App>>, Authed(c): Authed) -> ApiResult<Json<Value>> {
    c.require_admin()?;
    let key = app.federation.rotate_key()?;
    Ok(Json(json!({"public_key": key.to_string()})))
}

/// `POST /federation/v1/users/lookup` (signed): our local users matching a peer's lookup.
pub async fn users_lookup(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    peer_origin(&app, &method, &uri, &headers, &body).await?;
    Ok(Json(crate::migration::batch::answer_lookup(&app.accounts, &app.federation, &body)?))
}

/// `GET /hearth/v1/admin/federation_report` (admin).
pub async fn admin_report(State(app): State<Arc<App>>, Authed(c): Authed) -> ApiResult<Json<Value>> {
    Ok(Json(crate::migration::batch::report(&app.accounts, &app.federation, &c).await?))
}

/// `POST /hearth/v1/admin/migrate/plan {"plan": "<csv>"}` (admin): what a run would do here.
pub async fn admin_migrate_plan(
    State(app): State<Arc<App>>,
    Authed(c): Authed,
    p: super::params::Params,
) -> ApiResult<Json<Value>> {
    let plan = p.get_str("plan")?.ok_or_else(|| {
        ApiError(crate::accounts::Error::unprocessable("missing_plan", "plan (CSV text) is required"))
    })?;
    let actions = crate::migration::batch::plan_actions(&app.accounts, &app.federation, &c, &plan).await?;
    Ok(Json(json!({"cluster_id": app.federation.me(), "actions": actions})))
}

/// `POST /hearth/v1/admin/migrate/merge {"old_user_uuid", "home_user_uuid"}` (admin): one merge.
pub async fn admin_migrate_merge(
    State(app): State<Arc<App>>,
    Authed(c): Authed,
    p: super::params::Params,
) -> ApiResult<Json<Value>> {
    let get = |k: &str| -> ApiResult<federation_proto::ObjectUuid> {
        p.get_str(k)?.and_then(|s| s.parse().ok()).ok_or_else(|| {
            ApiError(crate::accounts::Error::unprocessable("invalid_uuid", format!("{k} must be a user uuid")))
        })
    };
    let (old, home) = (get("old_user_uuid")?, get("home_user_uuid")?);
    Ok(Json(crate::migration::batch::merge_one(&app.accounts, &app.federation, &c, &old, &home).await?))
}
