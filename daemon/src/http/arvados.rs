//! Handlers of the Arvados-compatible API (`/arvados/v1/…`): parse, call the account services, render.

use super::auth::Authed;
use super::error::{ApiError, ApiResult};
use super::params::Params;
use super::{App, RenderedJson};
use crate::accounts::listing::ListParams;
use crate::accounts::merge::{MergeParams, NewUserAuth};
use crate::accounts::objects::ApiObject;
use crate::accounts::{Error, auth::invalid_token};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::Method;
use federation_proto::ObjectUuid;
use serde_json::Value;
use std::sync::Arc;

type AppState = State<Arc<App>>;

fn parse_uuid(raw: &str) -> ApiResult<ObjectUuid> {
    raw.parse().map_err(|_| ApiError(Error::not_found("not_found", format!("{raw} not found"))))
}

pub(crate) fn list_params(app: &App, p: &Params) -> Result<ListParams, Error> {
    ListParams::parse(
        p.get("filters").as_deref(),
        p.get("order").as_deref(),
        p.get("limit").as_deref(),
        p.get("offset").as_deref(),
        p.get("select").as_deref(),
        app.settings.policy.max_list_limit,
    )
}

/// `GET users/current`.
pub async fn users_current(Authed(c): Authed) -> ApiResult<Json<Value>> {
    Ok(Json(crate::accounts::views::user(&c.user)))
}

/// `GET users`. Lists parse, scan, filter, sort and render on the blocking pool (`App::list_json`).
pub async fn users_list(State(app): AppState, Authed(c): Authed, p: Params) -> ApiResult<RenderedJson> {
    app.list_json(move |a| a.accounts.list_users(&c, &list_params(a, &p)?)).await
}

/// `GET users/<uuid>`.
pub async fn users_get(State(app): AppState, Authed(c): Authed, Path(uuid): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(app.accounts.get_user(&c, &parse_uuid(&uuid)?)?))
}

/// `POST users`.
pub async fn users_create(State(app): AppState, Authed(c): Authed, p: Params) -> ApiResult<Json<Value>> {
    Ok(Json(app.accounts.create_user(&c, &p.attrs("user")?)?))
}

/// `PUT users/<uuid>`.
pub async fn users_update(
    State(app): AppState,
    Authed(c): Authed,
    Path(uuid): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    Ok(Json(app.accounts.update_user(&c, &parse_uuid(&uuid)?, &p.attrs("user")?)?))
}

/// `POST users/merge`.
pub async fn users_merge(State(app): AppState, Authed(c): Authed, p: Params) -> ApiResult<Json<Value>> {
    let params = MergeParams {
        new_owner_uuid: p.get_str("new_owner_uuid")?,
        new_user_token: p.get_str("new_user_token")?,
        redirect_to_new_user: p.get("redirect_to_new_user"),
        old_user_uuid: p.get_str("old_user_uuid")?,
        new_user_uuid: p.get_str("new_user_uuid")?,
    };
    let new_user = match params.new_user_token.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => {
            Some(match super::auth::authenticate(&app, raw, &Method::POST, "/arvados/v1/users/merge", None).await {
                Ok(nc) => NewUserAuth::Valid(Box::new(nc)),
                Err(e) if e.code == "scope_forbids" => {
                    // A restricted new_user_token is reported as such by the merge checks.
                    match app.accounts.parse_presented(raw)? {
                        crate::accounts::auth::Presented::Local(t) => {
                            NewUserAuth::Valid(Box::new(app.accounts.authenticate_local(&t)?))
                        }
                        crate::accounts::auth::Presented::Remote(..)
                        | crate::accounts::auth::Presented::Anonymous(_) => NewUserAuth::Invalid,
                    }
                }
                Err(_) => NewUserAuth::Invalid,
            })
        }
    };
    let app2 = app.clone();
    let out = super::blocking(move || app2.accounts.merge(&c, &params, new_user)).await?;
    Ok(Json(out))
}

/// `GET api_client_authorizations/current` (its secret is shown to whoever presented it).
pub async fn tokens_current(
    State(app): AppState,
    Authed(c): Authed,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
) -> ApiResult<Json<Value>> {
    let presented =
        super::auth::presented_in(&headers, &uri).and_then(|raw| raw.parse::<federation_proto::Token>().ok());
    Ok(Json(app.accounts.current_token(&c, presented.as_ref())?))
}

/// `GET api_client_authorizations` (on the blocking pool).
pub async fn tokens_list(State(app): AppState, Authed(c): Authed, p: Params) -> ApiResult<RenderedJson> {
    app.list_json(move |a| a.accounts.list_tokens(&c, &list_params(a, &p)?)).await
}

/// `POST api_client_authorizations`.
pub async fn tokens_create(State(app): AppState, Authed(c): Authed, p: Params) -> ApiResult<Json<Value>> {
    let attrs = match p.attrs("api_client_authorization") {
        Ok(a) => a,
        Err(_) if !p.body().contains_key("api_client_authorization") => serde_json::Map::new(),
        Err(e) => return Err(e),
    };
    Ok(Json(app.accounts.create_token(&c, &attrs)?))
}

/// `GET api_client_authorizations/<uuid>`.
pub async fn tokens_get(State(app): AppState, Authed(c): Authed, Path(uuid): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(app.accounts.get_token(&c, &parse_uuid(&uuid)?)?))
}

/// `DELETE api_client_authorizations/<uuid>`.
pub async fn tokens_delete(
    State(app): AppState,
    Authed(c): Authed,
    Path(uuid): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(app.accounts.revoke_token(&c, &parse_uuid(&uuid)?)?))
}

/// `GET <objects>` (on the blocking pool).
pub async fn objects_list<T: ApiObject>(State(app): AppState, Authed(c): Authed, p: Params) -> ApiResult<RenderedJson> {
    app.list_json(move |a| a.accounts.list_objects::<T>(&c, &list_params(a, &p)?)).await
}

/// `POST <objects>`.
pub async fn objects_create<T: ApiObject>(
    State(app): AppState,
    Authed(c): Authed,
    p: Params,
) -> ApiResult<Json<Value>> {
    Ok(Json(app.accounts.create_object::<T>(&c, &p.attrs(T::RESOURCE)?)?))
}

/// `GET <objects>/<uuid>`.
pub async fn objects_get<T: ApiObject>(
    State(app): AppState,
    Authed(c): Authed,
    Path(uuid): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(app.accounts.get_object::<T>(&c, &parse_uuid(&uuid)?)?))
}

/// `PUT <objects>/<uuid>`.
pub async fn objects_update<T: ApiObject>(
    State(app): AppState,
    Authed(c): Authed,
    Path(uuid): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    Ok(Json(app.accounts.update_object::<T>(&c, &parse_uuid(&uuid)?, &p.attrs(T::RESOURCE)?)?))
}

/// `DELETE <objects>/<uuid>`.
pub async fn objects_delete<T: ApiObject>(
    State(app): AppState,
    Authed(c): Authed,
    Path(uuid): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(app.accounts.delete_object::<T>(&c, &parse_uuid(&uuid)?)?))
}

/// `GET logs` (on the blocking pool).
pub async fn logs_list(State(app): AppState, Authed(c): Authed, p: Params) -> ApiResult<RenderedJson> {
    app.list_json(move |a| a.accounts.list_logs(&c, &list_params(a, &p)?)).await
}

/// `GET logs/<uuid>`.
pub async fn logs_get(State(app): AppState, Authed(c): Authed, Path(uuid): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(app.accounts.get_log(&c, &parse_uuid(&uuid)?)?))
}

/// Any other path: an Arvados-shaped 404 naming it.
pub async fn no_route(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError(Error::not_found("no_route", format!("no such resource or method: {method} {}", uri.path())))
}

/// Kept for handlers that need the one invalid-token answer.
pub fn unauthorized() -> ApiError {
    ApiError(invalid_token())
}
