//! The JSON API of cross-cluster migration (DESIGN §4.4), for scripts and tests.

use super::auth::Authed;
use super::error::{ApiError, ApiResult};
use super::params::Params;
use super::{App, RenderedJson};
use crate::accounts::Error;
use crate::migration;
use axum::Json;
use axum::extract::{Path, State};
use federation_proto::{ObjectUuid, Token};
use serde_json::Value;
use std::sync::Arc;

/// `GET /hearth/v1/migration_candidates` (on the blocking pool, like every list).
pub async fn candidates(State(app): State<Arc<App>>, Authed(c): Authed) -> ApiResult<RenderedJson> {
    app.list_json(move |a| migration::candidates(&a.accounts, &a.federation, &c)).await
}

/// `POST /hearth/v1/migrations {"target_cluster"}`.
pub async fn start(State(app): State<Arc<App>>, Authed(c): Authed, p: Params) -> ApiResult<Json<Value>> {
    let target = p
        .get_str("target_cluster")?
        .ok_or_else(|| ApiError(Error::unprocessable("missing_target", "target_cluster is required")))?;
    Ok(Json(migration::start(&app.accounts, &app.federation, &c, &target, &app.settings.cluster.public_url)?))
}

/// The grant from a request body: a JSON object, or a string made by `encode_param`.
pub fn grant_param(p: &Params, name: &str) -> ApiResult<Value> {
    match p.body().get(name) {
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(Value::String(s)) => Ok(migration::decode_param(s)?),
        _ => match p.get(name) {
            Some(s) => Ok(migration::decode_param(&s)?),
            None => Err(ApiError(Error::unprocessable("missing_grant", format!("{name} is required")))),
        },
    }
}

/// `POST /hearth/v1/migrations/<uuid>/confirm {"grant", "api_token"?}`.
pub async fn confirm(
    State(app): State<Arc<App>>,
    Authed(c): Authed,
    Path(uuid): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    let uuid: ObjectUuid =
        uuid.parse().map_err(|_| ApiError(Error::not_found("not_found", format!("migration {uuid} not found"))))?;
    let grant = grant_param(&p, "grant")?;
    let token: Option<Token> = match p.get_str("api_token")? {
        Some(t) => {
            Some(t.parse().map_err(|_| ApiError(Error::unprocessable("invalid_token", "api_token is not a token")))?)
        }
        None => None,
    };
    let app2 = app.clone();
    let out =
        super::blocking(move || migration::confirm(&app2.accounts, &app2.federation, &c, &uuid, grant, token.as_ref()))
            .await?;
    Ok(Json(out))
}
