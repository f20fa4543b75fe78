//! Login for scripts (`POST /hearth/v1/login`) and setting passwords.

use super::auth::Authed;
use super::error::{ApiError, ApiResult};
use super::params::Params;
use super::{App, blocking};
use crate::accounts::{Error, views};
use crate::store::records::TokenKind;
use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use federation_proto::{ClusterId, ObjectUuid};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;

/// Parses an optional `remote` cluster id (400 when malformed).
pub fn parse_remote(raw: Option<String>) -> ApiResult<Option<ClusterId>> {
    match raw.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(r) => {
            r.parse().map(Some).map_err(|_| ApiError::bad_request("invalid_remote", "Invalid remote cluster id"))
        }
    }
}

/// `POST /hearth/v1/login` `{"login", "password", "remote"?, "migration_request"?, "anonymous_token"?}` →
/// `{"api_token", "user", "migration_grant"?, "anonymous_offer"?}`. `anonymous_offer` lists what the
/// anonymous session holds, when it holds anything; `POST /hearth/v1/anonymous_imports` takes it.
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
    let migration_request = match p.body().get("migration_request") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(crate::migration::decode_param(s)?),
        Some(v) => Some(v.clone()),
    };
    // The requests are checked before the password, so that a bad request costs no login.
    let anonymous = super::anonymous::anonymous_param(&p)?;
    if anonymous.is_some() && remote.is_some() {
        return Err(ApiError(Error::unprocessable(
            "anonymous_with_remote",
            "anonymous_token cannot be combined with remote: the anonymous collections are here, and a token \
             salted for another cluster cannot import them",
        )));
    }
    let offer = anonymous.map(|t| app.accounts.anonymous_offer(&t)).transpose()?;
    if let Some(req) = &migration_request {
        let r = remote
            .as_ref()
            .ok_or_else(|| ApiError(Error::unprocessable("missing_remote", "a migration_request needs remote")))?;
        let checked: federation_proto::assertion::MigrationRequest = app.federation.verify_from(r, req.clone())?;
        checked.check(r, app.accounts.cluster(), app.accounts.clock().unix()).map_err(|e| {
            ApiError(Error::forbidden("migration_request_refused", format!("migration request refused: {e}")))
        })?;
    }
    let app2 = app.clone();
    let source = peer.ip().to_string();
    let remote2 = remote.clone();
    let out =
        blocking(move || app2.accounts.login(&login, &password, &source, remote2.as_ref(), TokenKind::Api)).await?;
    let mut body = json!({"api_token": out.token.to_string(), "user": views::user(&out.user)});
    // Person records naming this user's verified email or ORCID iD are claimed at login (seed 004).
    if remote.is_none() {
        let (app2, user) = (app.clone(), out.user.clone());
        let attached = blocking(move || app2.accounts.auto_claim_persons(&user)).await?;
        body["attached_persons"] = json!(attached);
    }
    if let Some(offer) = offer.filter(|o| !o.collections.is_empty()) {
        body["anonymous_offer"] = super::anonymous::offer_json(&offer);
    }
    if let (Some(req), Some(r)) = (migration_request, remote) {
        let grant = crate::migration::grant_for_login(&app.accounts, &app.federation, &r, req, &out.user, &out.token)?;
        body["migration_grant"] = grant;
    }
    Ok(Json(body))
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
