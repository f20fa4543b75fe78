//! Login for scripts (`POST /hearth/v1/login`) and setting passwords.

use super::App;
use super::auth::Authed;
use super::error::{ApiError, ApiResult};
use super::params::Params;
use crate::accounts::{Error, ErrorKind, views};
use crate::store::records::TokenKind;
use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use federation_proto::{ClusterId, ObjectUuid};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;

/// Runs blocking work (argon2, big merges) off the async runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Error> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError(Error::new(ErrorKind::Internal, "join", "background task failed")))?
        .map_err(ApiError)
}

/// Parses an optional `remote` cluster id (400 when malformed).
pub fn parse_remote(raw: Option<String>) -> ApiResult<Option<ClusterId>> {
    match raw.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(r) => {
            r.parse().map(Some).map_err(|_| ApiError::bad_request("invalid_remote", "Invalid remote cluster id"))
        }
    }
}

/// `POST /hearth/v1/login` `{"login", "password", "remote"?}` → `{"api_token", "user"}`.
pub async fn api_login(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    p: Params,
) -> ApiResult<Json<Value>> {
    let login = p
        .get_str("login")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError(Error::unprocessable("missing_login", "login is required")))?;
    let password = p
        .get_str("password")?
        .ok_or_else(|| ApiError(Error::unprocessable("missing_password", "password is required")))?;
    let remote = parse_remote(p.get_str("remote")?)?;
    let app2 = app.clone();
    let source = peer.ip().to_string();
    let out =
        blocking(move || app2.accounts.login(&login, &password, &source, remote.as_ref(), TokenKind::Api)).await?;
    Ok(Json(json!({"api_token": out.token.to_string(), "user": views::user(&out.user)})))
}

/// `POST /hearth/v1/users/<uuid>/password` `{"password"}`.
pub async fn set_password(
    State(app): State<Arc<App>>,
    Authed(c): Authed,
    Path(uuid): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    let uuid: ObjectUuid =
        uuid.parse().map_err(|_| ApiError(Error::not_found("not_found", format!("{uuid} not found"))))?;
    let password = p
        .get_str("password")?
        .ok_or_else(|| ApiError(Error::unprocessable("missing_password", "password is required")))?;
    let app2 = app.clone();
    let u = uuid.clone();
    blocking(move || app2.accounts.set_password(&c, &u, &password)).await?;
    Ok(Json(json!({"uuid": uuid, "password_set": true})))
}
