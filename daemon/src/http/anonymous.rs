//! The JSON API of anonymous sessions (DESIGN §4.7): start one without logging in, and, with a
//! user's own token, import or discard what an anonymous session holds. The anonymous session is
//! always proven by its token in the body (`anonymous_token`), checked against its stored hash.

use super::App;
use super::auth::Authed;
use super::error::{ApiError, ApiResult};
use super::params::Params;
use crate::accounts::Error;
use crate::accounts::anonymous::{AnonymousOffer, parse_anonymous_param};
use crate::clock::format_time;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use federation_proto::AnonymousToken;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;

/// The `anonymous_token` of a request body, if any (an empty string counts as none).
pub fn anonymous_param(p: &Params) -> ApiResult<Option<AnonymousToken>> {
    match p.get_str("anonymous_token")?.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(raw) => Ok(Some(parse_anonymous_param(&raw)?)),
    }
}

fn required(p: &Params) -> ApiResult<AnonymousToken> {
    anonymous_param(p)?
        .ok_or_else(|| ApiError(Error::unprocessable("missing_anonymous_token", "anonymous_token is required")))
}

/// The login answer's `anonymous_offer`: `{"anonymous_session_uuid", "collections": [{"uuid", "name"}]}`.
pub fn offer_json(offer: &AnonymousOffer) -> Value {
    let collections: Vec<Value> = offer.collections.iter().map(|c| json!({"uuid": c.uuid, "name": c.name})).collect();
    json!({"anonymous_session_uuid": offer.session_uuid, "collections": collections})
}

/// `POST /hearth/v1/anonymous` (no authentication) → `{"anonymous_token", "uuid", "expires_at"}`.
pub async fn start(State(app): State<Arc<App>>, ConnectInfo(peer): ConnectInfo<SocketAddr>) -> ApiResult<Json<Value>> {
    let s = app.accounts.start_anonymous_session(&peer.ip().to_string())?;
    Ok(Json(json!({
        "anonymous_token": s.token.to_string(),
        "uuid": s.token.uuid(),
        "expires_at": format_time(s.expires_at),
    })))
}

/// `POST /hearth/v1/anonymous_imports {"anonymous_token"}` with the user's token →
/// `{"moved": [uuid…], "owner_uuid", "anonymous_session_uuid"}`.
pub async fn import(State(app): State<Arc<App>>, Authed(c): Authed, p: Params) -> ApiResult<Json<Value>> {
    let token = required(&p)?;
    let out = app.accounts.import_anonymous(&c, &token)?;
    Ok(Json(json!({"moved": out.moved, "owner_uuid": out.owner_uuid, "anonymous_session_uuid": out.session_uuid})))
}

/// `POST /hearth/v1/anonymous_imports/discard {"anonymous_token"}` with the user's token →
/// `{"deleted": [uuid…], "anonymous_session_uuid"}`.
pub async fn discard(State(app): State<Arc<App>>, Authed(c): Authed, p: Params) -> ApiResult<Json<Value>> {
    let token = required(&p)?;
    let out = app.accounts.discard_anonymous(&c, &token)?;
    Ok(Json(json!({"deleted": out.deleted, "anonymous_session_uuid": out.session_uuid})))
}
