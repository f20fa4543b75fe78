//! Handlers of the federation API (`/federation/v1/…`, signed peer requests) and of the admin
//! views of the federation (`/hearth/v1/admin/…`).

use super::auth::Authed;
use super::error::{ApiError, ApiResult};
use super::{App, RenderedJson};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::header;
use serde_json::{Value, json};
use std::sync::Arc;

/// A request from a peer whose signature, origin, key, destination, time and nonce have been
/// checked (by `Federation::authenticate_request`). Handlers of the federation API take this
/// extractor, so none of them can read a peer's body without the check.
///
/// The nonce is recorded (a second use is refused at once) but not flushed: a handler that writes
/// commits its effects with a flush, which makes the nonce durable too, and one that writes
/// nothing calls `Federation::nonce_durable` unless a replay after a crash could learn nothing
/// from its answer that its body does not already carry (token validation: the body is the token).
pub struct PeerRequest {
    /// The authenticated origin.
    pub origin: federation_proto::ClusterId,
    /// The raw body the signature covers.
    pub body: Bytes,
}

impl FromRequest<Arc<App>> for PeerRequest {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let method = req.method().as_str().to_string();
        let uri = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| req.uri().path().into());
        let auth = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = Bytes::from_request(req, app)
            .await
            .map_err(|e| ApiError::bad_request("body_unreadable", format!("could not read the request body: {e}")))?;
        let origin = app.federation.authenticate_request(&method, &uri, auth.as_deref(), &body).await?;
        Ok(PeerRequest { origin, body })
    }
}

/// `GET /federation/v1/keys`: our key document (public, signed).
pub async fn keys(State(app): State<Arc<App>>) -> ApiResult<Json<Value>> {
    Ok(Json(app.federation.key_document()?))
}

/// `POST /federation/v1/notices` (signed).
pub async fn notices(State(app): State<Arc<App>>, peer: PeerRequest) -> ApiResult<Json<Value>> {
    let app2 = app.clone();
    Ok(Json(super::blocking(move || app2.federation.receive_notices(&app2.accounts, &peer.origin, &peer.body)).await?))
}

/// `POST /federation/v1/tokens/validate` (signed).
pub async fn validate_token(State(app): State<Arc<App>>, peer: PeerRequest) -> ApiResult<Json<Value>> {
    Ok(Json(app.federation.validate_for_peer(&app.accounts, &peer.origin, &peer.body)?))
}

/// `GET /hearth/v1/admin/peers` (admin): per peer, reachable, queue depth, last success, next retry.
pub async fn admin_peers(State(app): State<Arc<App>>, Authed(c): Authed) -> ApiResult<Json<Value>> {
    c.require_admin()?;
    // Counting a queue reads all of it: on the blocking pool.
    let fed = app.federation.clone();
    let status = super::blocking(move || Ok(fed.peer_status())).await?;
    let items: Vec<Value> = status
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

/// `POST /federation/v1/users/lookup` (signed): our local users matching a peer's lookup (a scan
/// of every user, on the blocking pool).
pub async fn users_lookup(State(app): State<Arc<App>>, peer: PeerRequest) -> ApiResult<RenderedJson> {
    app.list_json(move |a| {
        a.federation.nonce_durable()?;
        crate::migration::batch::answer_lookup(&a.accounts, &a.federation, &peer.body)
    })
    .await
}

/// `GET /hearth/v1/admin/federation_report` (admin): the peers' accounts (asked from here), then
/// ours (a scan) and the summary of them all, on the blocking pool.
pub async fn admin_report(State(app): State<Arc<App>>, Authed(c): Authed) -> ApiResult<RenderedJson> {
    use crate::migration::batch;
    c.require_admin()?;
    let (remote, unreachable) = batch::report_peers(&app.federation).await;
    app.list_json(move |a| {
        let mut records = batch::report_local(&a.accounts, &c)?;
        records.extend(remote);
        Ok(batch::report_summary(a.accounts.cluster(), &records, unreachable))
    })
    .await
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
