//! Handlers of the managed-profile API (`/hearth/v1/profiles…`, DESIGN §4.8): parse the flat JSON
//! (or form) bodies into the typed requests of `accounts::profiles`, call it, render users as the
//! users API shows them. Acting as a profile is not here: it is the `X-Hearth-Act-As` header, which
//! the one authenticator (`auth`) reads.

use super::App;
use super::auth::Authed;
use super::blocking;
use super::error::{ApiError, ApiResult};
use super::params::Params;
use crate::accounts::profiles::{NewProfile, ProfileChanges};
use crate::accounts::users::user_view_for;
use crate::accounts::{Caller, Error};
use axum::Json;
use axum::extract::{Path, State};
use federation_proto::ObjectUuid;
use serde_json::{Value, json};
use std::sync::Arc;

type AppState = State<Arc<App>>;

fn parse_profile_uuid(raw: &str) -> ApiResult<ObjectUuid> {
    raw.parse().map_err(|_| ApiError(Error::not_found("profile_not_found", format!("managed profile {raw} not found"))))
}

/// Refuses body fields other than `allowed` (they are usually typos, and a silently ignored
/// `email` would look like a hand-over that happened).
fn only_fields(p: &Params, allowed: &[&str], what: &str) -> ApiResult<()> {
    match p.body().keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError(Error::unprocessable(
            "unknown_attribute",
            format!("unknown field for {what}: {k} (known: {})", allowed.join(", ")),
        ))),
        None => Ok(()),
    }
}

/// A string field: absent, null (`Some(None)`), or a string; anything else is refused.
fn string_field(p: &Params, name: &str) -> ApiResult<Option<Option<String>>> {
    match p.body().get(name) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(ApiError(Error::unprocessable("wrong_type", format!("{name} must be a string")))),
    }
}

fn list_view(caller: &Caller, users: &[crate::store::records::User]) -> Value {
    let items: Vec<Value> = users.iter().map(|u| user_view_for(caller, u)).collect();
    json!({"kind": "hearth#profileList", "items_available": items.len(), "items": items})
}

/// `GET /hearth/v1/profiles`: the caller's managed profiles.
pub async fn list(State(app): AppState, Authed(c): Authed) -> ApiResult<Json<Value>> {
    let profiles = app.accounts.list_profiles(&c)?;
    Ok(Json(list_view(&c, &profiles)))
}

/// `POST /hearth/v1/profiles {"first_name", "last_name"?, "username"?}`: a new managed profile.
pub async fn create(State(app): AppState, Authed(c): Authed, p: Params) -> ApiResult<Json<Value>> {
    only_fields(&p, &["first_name", "last_name", "username"], "a profile")?;
    let first_name = string_field(&p, "first_name")?
        .flatten()
        .ok_or_else(|| ApiError(Error::unprocessable("invalid_profile", "first_name is required")))?;
    let new = NewProfile {
        first_name,
        last_name: string_field(&p, "last_name")?.flatten().unwrap_or_default(),
        username: string_field(&p, "username")?.flatten().filter(|u| !u.is_empty()),
    };
    let app2 = app.clone();
    let caller = c.clone();
    let profile = blocking(move || app2.accounts.create_profile(&caller, &new)).await?;
    Ok(Json(user_view_for(&c, &profile)))
}

/// `PUT/PATCH /hearth/v1/profiles/<uuid> {"first_name"?, "last_name"?, "username"?}`: renames it.
pub async fn update(
    State(app): AppState,
    Authed(c): Authed,
    Path(uuid): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    let uuid = parse_profile_uuid(&uuid)?;
    only_fields(&p, &["first_name", "last_name", "username"], "a profile")?;
    let null = |name: &str| ApiError(Error::unprocessable("invalid_profile", format!("{name} cannot be null")));
    let changes = ProfileChanges {
        first_name: string_field(&p, "first_name")?.map(|v| v.ok_or_else(|| null("first_name"))).transpose()?,
        last_name: string_field(&p, "last_name")?.map(Option::unwrap_or_default),
        username: string_field(&p, "username")?.map(|v| v.filter(|u| !u.is_empty())),
    };
    let app2 = app.clone();
    let caller = c.clone();
    let profile = blocking(move || app2.accounts.update_profile(&caller, &uuid, &changes)).await?;
    Ok(Json(user_view_for(&c, &profile)))
}

/// `DELETE /hearth/v1/profiles/<uuid>[?hand_objects_to_parent=true]`.
pub async fn delete(
    State(app): AppState,
    Authed(c): Authed,
    Path(uuid): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    let uuid = parse_profile_uuid(&uuid)?;
    let hand = match p.get("hand_objects_to_parent").as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => {
            return Err(ApiError(Error::unprocessable(
                "invalid_parameter",
                format!("hand_objects_to_parent must be true or false, not {other:?}"),
            )));
        }
    };
    let app2 = app.clone();
    let done = blocking(move || app2.accounts.delete_profile(&c, &uuid, hand)).await?;
    Ok(Json(json!({
        "uuid": done.profile.uuid,
        "deleted": true,
        "managed_by": done.profile.managed_by,
        "handed_to_parent": done.handed_to_parent,
        "dropped": done.dropped,
    })))
}

/// `POST /hearth/v1/profiles/<uuid>/hand_over {"email", "password"}`: the profile becomes an
/// ordinary account of its person.
pub async fn hand_over(
    State(app): AppState,
    Authed(c): Authed,
    Path(uuid): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    let uuid = parse_profile_uuid(&uuid)?;
    only_fields(&p, &["email", "password"], "a hand-over")?;
    let required = |name: &str| ApiError(Error::unprocessable("invalid_hand_over", format!("{name} is required")));
    let email = string_field(&p, "email")?.flatten().ok_or_else(|| required("email"))?;
    let password = string_field(&p, "password")?.flatten().ok_or_else(|| required("password"))?;
    let app2 = app.clone();
    let caller = c.clone();
    let user = blocking(move || app2.accounts.hand_over_profile(&caller, &uuid, &email, &password)).await?;
    Ok(Json(user_view_for(&c, &user)))
}
