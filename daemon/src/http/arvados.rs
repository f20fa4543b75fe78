//! Handlers of the Arvados-compatible API (`/arvados/v1/…`): parse, call the account services, render.

use super::auth::Authed;
use super::error::{ApiError, ApiResult};
use super::params::Params;
use super::{App, RenderedJson};
use crate::accounts::contents::ContentsRequest;
use crate::accounts::listing::ListParams;
use crate::accounts::merge::{MergeParams, NewUserAuth};
use crate::accounts::objects::{ApiObject, ObjectOptions};
use crate::accounts::user_states::SetupRequest;
use crate::accounts::{Caller, Error, auth::invalid_token};
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
    for flag in ["distinct", "include_old_versions"] {
        // Accepted as Arvados accepts them; every Hearth list is distinct and keeps no old versions.
        bool_param(p, flag)?;
    }
    ListParams::parse(
        p.get("filters").as_deref(),
        p.get("order").as_deref(),
        p.get("limit").as_deref(),
        p.get("offset").as_deref(),
        p.get("select").as_deref(),
        app.settings.policy.max_list_limit,
    )?
    .with_where_and_count(p.get("where").as_deref(), p.get("count").as_deref())
}

/// A boolean parameter as Arvados reads one: `true`/`1` or `false`/`0` (absent: false); anything
/// else is refused (422), as Arvados refuses it.
fn bool_param(p: &Params, name: &str) -> Result<bool, Error> {
    match p.get(name).as_deref() {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(_) => {
            Err(Error::unprocessable("not_boolean", format!("{name} parameter must be a boolean, true or false")))
        }
    }
}

/// The options (`ensure_unique_name`, `include_trash`) a request carries.
fn object_options(p: &Params) -> Result<ObjectOptions, Error> {
    Ok(ObjectOptions {
        ensure_unique_name: bool_param(p, "ensure_unique_name")?,
        include_trash: bool_param(p, "include_trash")?,
    })
}

/// Arvados' federation parameters, answered here (see `Accounts::check_federation_params`).
fn federation_params(app: &App, c: &Caller, p: &Params) -> Result<(), Error> {
    app.accounts.check_federation_params(c, bool_param(p, "bypass_federation")?, p.get("cluster_id").as_deref())
}

/// Only the attributes `select` names (with `kind` and `uuid`), as Arvados answers a get, create
/// or update that asks for some.
fn selected(v: Value, p: &Params) -> Result<Value, Error> {
    match p.get("select").filter(|s| !s.is_empty()) {
        None => Ok(v),
        Some(sel) => Ok(ListParams::parse(None, None, None, None, Some(&sel), 1)?.select_one(v)),
    }
}

/// Arvados' manifest edits (`replace_files`, `replace_segments`): refused, Hearth keeps no file data.
fn no_manifest_edits(p: &Params) -> Result<(), Error> {
    for name in ["replace_files", "replace_segments"] {
        if p.get(name).is_some_and(|v| !v.is_empty() && v != "{}") {
            return Err(Error::unprocessable(
                "unsupported_parameter",
                format!("{name} is not supported here: this cluster keeps collections' metadata, not their files"),
            ));
        }
    }
    Ok(())
}

/// `GET users/current`.
pub async fn users_current(State(app): AppState, Authed(c): Authed) -> ApiResult<super::RenderedJson> {
    Ok(super::RenderedJson(app.accounts.user_view_json(&c, &c.user)?))
}

/// `GET users/system`: the system (root) user.
pub async fn users_system(State(app): AppState, Authed(_): Authed) -> ApiResult<Json<Value>> {
    Ok(Json(app.accounts.system_user_view()?))
}

/// `POST users/<uuid>/activate`.
pub async fn users_activate(
    State(app): AppState,
    Authed(c): Authed,
    Path(uuid): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(app.accounts.activate_user(&c, &parse_uuid(&uuid)?)?))
}

/// `POST users/setup` (`uuid` or `user`, `vm_uuid`, `send_notification_email`, `repo_name`).
pub async fn users_setup(State(app): AppState, Authed(c): Authed, p: Params) -> ApiResult<Json<Value>> {
    bool_param(&p, "send_notification_email")?;
    let user = match p.attrs("user") {
        Ok(m) => Some(m),
        Err(_) if p.get("user").is_none() => None,
        Err(e) => return Err(e),
    };
    let req = SetupRequest { uuid: p.get_str("uuid")?, user, vm_uuid: p.get_str("vm_uuid")? };
    Ok(Json(app.accounts.setup_user(&c, &req)?))
}

/// `POST users/<uuid>/unsetup`.
pub async fn users_unsetup(
    State(app): AppState,
    Authed(c): Authed,
    Path(uuid): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(app.accounts.unsetup_user(&c, &parse_uuid(&uuid)?)?))
}

/// `GET users`. Lists parse, scan, filter, sort and render on the blocking pool (`App::list_json`).
pub async fn users_list(State(app): AppState, Authed(c): Authed, p: Params) -> ApiResult<RenderedJson> {
    federation_params(&app, &c, &p)?;
    app.list_json(move |a| a.accounts.list_users(&c, &list_params(a, &p)?)).await
}

/// `GET users/<uuid>`.
pub async fn users_get(
    State(app): AppState,
    Authed(c): Authed,
    Path(uuid): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    Ok(Json(selected(app.accounts.get_user(&c, &parse_uuid(&uuid)?)?, &p)?))
}

/// `POST users`.
pub async fn users_create(State(app): AppState, Authed(c): Authed, p: Params) -> ApiResult<Json<Value>> {
    federation_params(&app, &c, &p)?;
    let created = app.accounts.create_user(&c, &p.resource_attrs("user")?)?;
    Ok(Json(selected(created, &p)?))
}

/// `PUT users/<uuid>`.
pub async fn users_update(
    State(app): AppState,
    Authed(c): Authed,
    Path(uuid): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    federation_params(&app, &c, &p)?;
    let updated = app.accounts.update_user(&c, &parse_uuid(&uuid)?, &p.resource_attrs("user")?)?;
    Ok(Json(selected(updated, &p)?))
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
            Some(
                match super::auth::authenticate(&app, raw, &Method::POST, "/arvados/v1/users/merge", None, None).await {
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
                },
            )
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
    federation_params(&app, &c, &p)?;
    app.list_json(move |a| a.accounts.list_tokens(&c, &list_params(a, &p)?)).await
}

/// `POST api_client_authorizations`.
pub async fn tokens_create(State(app): AppState, Authed(c): Authed, p: Params) -> ApiResult<Json<Value>> {
    federation_params(&app, &c, &p)?;
    bool_param(&p, "ensure_unique_name")?;
    let attrs = match p.resource_attrs("api_client_authorization") {
        Ok(a) => a,
        Err(_) if !p.body().contains_key("api_client_authorization") => serde_json::Map::new(),
        Err(e) => return Err(e),
    };
    Ok(Json(selected(app.accounts.create_token(&c, &attrs)?, &p)?))
}

/// `GET api_client_authorizations/<uuid>`.
pub async fn tokens_get(
    State(app): AppState,
    Authed(c): Authed,
    Path(uuid): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    Ok(Json(selected(app.accounts.get_token(&c, &parse_uuid(&uuid)?)?, &p)?))
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
    federation_params(&app, &c, &p)?;
    let opts = object_options(&p)?;
    app.list_json(move |a| a.accounts.list_objects_with::<T>(&c, &list_params(a, &p)?, opts)).await
}

/// `POST <objects>`.
pub async fn objects_create<T: ApiObject>(
    State(app): AppState,
    Authed(c): Authed,
    p: Params,
) -> ApiResult<Json<Value>> {
    federation_params(&app, &c, &p)?;
    no_manifest_edits(&p)?;
    bool_param(&p, "async")?;
    let opts = object_options(&p)?;
    let created = app.accounts.create_object_with::<T>(&c, &p.resource_attrs(T::RESOURCE)?, opts)?;
    Ok(Json(selected(created, &p)?))
}

/// `GET <objects>/<uuid>`.
pub async fn objects_get<T: ApiObject>(
    State(app): AppState,
    Authed(c): Authed,
    Path(uuid): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    let opts = object_options(&p)?;
    Ok(Json(selected(app.accounts.get_object_with::<T>(&c, &parse_uuid(&uuid)?, opts)?, &p)?))
}

/// `PUT <objects>/<uuid>`.
pub async fn objects_update<T: ApiObject>(
    State(app): AppState,
    Authed(c): Authed,
    Path(uuid): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    no_manifest_edits(&p)?;
    bool_param(&p, "async")?;
    let updated = app.accounts.update_object::<T>(&c, &parse_uuid(&uuid)?, &p.resource_attrs(T::RESOURCE)?)?;
    Ok(Json(selected(updated, &p)?))
}

/// `DELETE <objects>/<uuid>`.
pub async fn objects_delete<T: ApiObject>(
    State(app): AppState,
    Authed(c): Authed,
    Path(uuid): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(app.accounts.delete_object::<T>(&c, &parse_uuid(&uuid)?)?))
}

/// The `include` parameter of contents and shared: a name or a JSON array of names, of which
/// Hearth has `owner_uuid` (the others name Arvados' containers and workflows, which it has not).
fn include_owners(p: &Params) -> Result<bool, Error> {
    let names: Vec<String> = match p.get("include").filter(|s| !s.is_empty()) {
        None => Vec::new(),
        Some(raw) if raw.starts_with('[') => serde_json::from_str(&raw)
            .map_err(|_| Error::unprocessable("invalid_include", "'include' parameter must be a string or array"))?,
        Some(raw) => vec![raw],
    };
    let mut owners = false;
    for n in names {
        match n.as_str() {
            "owner_uuid" => owners = true,
            "container_uuid" | "collection_uuid" => {}
            other => {
                return Err(Error::unprocessable(
                    "invalid_include",
                    format!("include: unsupported value {}", crate::accounts::bounds::excerpt(other)),
                ));
            }
        }
    }
    Ok(owners)
}

fn contents_request(p: &Params, owner: Option<String>) -> Result<ContentsRequest, Error> {
    let owner = match owner.filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(raw.parse().map_err(|_| Error::not_found("not_found", format!("{raw} not found")))?),
    };
    Ok(ContentsRequest {
        owner,
        recursive: bool_param(p, "recursive")?,
        include_owners: include_owners(p)?,
        exclude_home_project: bool_param(p, "exclude_home_project")?,
        opts: object_options(p)?,
    })
}

/// `GET groups/contents` (on the blocking pool).
pub async fn groups_contents(State(app): AppState, Authed(c): Authed, p: Params) -> ApiResult<RenderedJson> {
    federation_params(&app, &c, &p)?;
    let req = contents_request(&p, p.get_str("uuid")?)?;
    app.list_json(move |a| a.accounts.group_contents(&c, &req, &list_params(a, &p)?)).await
}

/// `GET groups/<uuid>/contents`: the same, with the owner in the path (Arvados' other route).
pub async fn groups_contents_of(
    State(app): AppState,
    Authed(c): Authed,
    Path(uuid): Path<String>,
    p: Params,
) -> ApiResult<RenderedJson> {
    federation_params(&app, &c, &p)?;
    let req = contents_request(&p, Some(uuid))?;
    app.list_json(move |a| a.accounts.group_contents(&c, &req, &list_params(a, &p)?)).await
}

/// `GET groups/shared` (on the blocking pool).
pub async fn groups_shared(State(app): AppState, Authed(c): Authed, p: Params) -> ApiResult<RenderedJson> {
    federation_params(&app, &c, &p)?;
    let (owners, opts) = (include_owners(&p)?, object_options(&p)?);
    app.list_json(move |a| a.accounts.groups_shared(&c, owners, opts, &list_params(a, &p)?)).await
}

/// `POST groups/<uuid>/trash`.
pub async fn groups_trash(State(app): AppState, Authed(c): Authed, Path(uuid): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(app.accounts.trash_group(&c, &parse_uuid(&uuid)?)?))
}

/// `POST groups/<uuid>/untrash` (`ensure_unique_name` as Arvados reads it).
pub async fn groups_untrash(
    State(app): AppState,
    Authed(c): Authed,
    Path(uuid): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    Ok(Json(app.accounts.untrash_group(&c, &parse_uuid(&uuid)?, object_options(&p)?)?))
}

/// `GET permissions/<uuid>` (`links.get_permissions`).
pub async fn links_get_permissions(
    State(app): AppState,
    Authed(c): Authed,
    Path(uuid): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(app.accounts.permissions_on(&c, &parse_uuid(&uuid)?)?))
}

/// `GET logs` (on the blocking pool).
pub async fn logs_list(State(app): AppState, Authed(c): Authed, p: Params) -> ApiResult<RenderedJson> {
    federation_params(&app, &c, &p)?;
    app.list_json(move |a| a.accounts.list_logs(&c, &list_params(a, &p)?)).await
}

/// `GET logs/<uuid>`.
pub async fn logs_get(
    State(app): AppState,
    Authed(c): Authed,
    Path(uuid): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    Ok(Json(selected(app.accounts.get_log(&c, &parse_uuid(&uuid)?)?, &p)?))
}

/// Any other path: an Arvados-shaped 404 naming it.
pub async fn no_route(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError(Error::not_found("no_route", format!("no such resource or method: {method} {}", uri.path())))
}

/// Kept for handlers that need the one invalid-token answer.
pub fn unauthorized() -> ApiError {
    ApiError(invalid_token())
}
