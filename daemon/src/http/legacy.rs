//! Legacy data (DESIGN §4.7): the admin import (`POST /hearth/v1/admin/legacy/import`), the
//! offers and claims of the JSON API, and the account page's "Migrate data" / "Not mine" forms.

use super::App;
use super::auth::Authed;
use super::blocking;
use super::error::{ApiError, ApiResult};
use super::pages::message;
use super::params::Params;
use super::session::{Banner, Session, csrf_ok};
use crate::accounts::Error;
use crate::accounts::legacy::{ImportReport, LegacyClaim, LegacyOffer};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

/// `POST /hearth/v1/admin/legacy/import {"lines": ["<json>", …], "first_line"?: 1, "dry_run"?: false}`:
/// one answer per line; line numbers count from `first_line` (the CLI sends a file in chunks).
pub async fn import(State(app): State<Arc<App>>, Authed(c): Authed, p: Params) -> ApiResult<Json<ImportReport>> {
    let bad = |m: &str| ApiError(Error::unprocessable("invalid_import", m.to_string()));
    let lines = match p.body().get("lines") {
        Some(Value::Array(a)) => a,
        Some(_) => return Err(bad("lines must be an array of strings (the file's lines)")),
        None => return Err(bad("lines is required")),
    };
    let first = match p.body().get("first_line") {
        None | Some(Value::Null) => 1,
        Some(v) => v.as_u64().filter(|n| *n >= 1).ok_or_else(|| bad("first_line must be a positive integer"))?,
    };
    let dry_run = match p.body().get("dry_run") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("dry_run must be a boolean")),
    };
    let mut numbered = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        let Value::String(s) = l else { return Err(bad("lines must be an array of strings (the file's lines)")) };
        numbered.push((first + i as u64, s.clone()));
    }
    let app2 = app.clone();
    Ok(Json(blocking(move || app2.accounts.import_legacy(&c, &numbered, dry_run)).await?))
}

/// Items of `GET /hearth/v1/legacy_offers`.
#[derive(Serialize)]
pub struct Offers {
    items: Vec<LegacyOffer>,
}

/// `GET /hearth/v1/legacy_offers`: legacy data the caller's verified email may claim.
pub async fn offers(State(app): State<Arc<App>>, Authed(c): Authed) -> ApiResult<Json<Offers>> {
    let app2 = app.clone();
    Ok(Json(Offers { items: blocking(move || app2.accounts.legacy_offers(&c)).await? }))
}

/// `POST /hearth/v1/legacy_offers/<legacy_id>/claim`.
pub async fn claim(
    State(app): State<Arc<App>>,
    Authed(c): Authed,
    Path(legacy_id): Path<String>,
) -> ApiResult<Json<LegacyClaim>> {
    let app2 = app.clone();
    Ok(Json(blocking(move || app2.accounts.claim_legacy(&c, &legacy_id)).await?))
}

/// Answer of a dismissal.
#[derive(Serialize)]
pub struct Dismissed {
    legacy_id: String,
    dismissed: bool,
}

/// `POST /hearth/v1/legacy_offers/<legacy_id>/dismiss` ("Not mine").
pub async fn dismiss(
    State(app): State<Arc<App>>,
    Authed(c): Authed,
    Path(legacy_id): Path<String>,
) -> ApiResult<Json<Dismissed>> {
    let app2 = app.clone();
    let id = legacy_id.clone();
    blocking(move || app2.accounts.dismiss_legacy(&c, &id)).await?;
    Ok(Json(Dismissed { legacy_id, dismissed: true }))
}

/// Form of the account page's legacy buttons.
#[derive(Debug, Deserialize)]
pub struct LegacyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    legacy_id: String,
}

/// `POST /legacy/claim` ("Migrate data").
pub async fn claim_submit(
    State(app): State<Arc<App>>,
    Session(c): Session,
    headers: HeaderMap,
    Form(f): Form<LegacyForm>,
) -> Response {
    let banner = Banner::of(c.as_ref(), &headers);
    if !csrf_ok(&headers, &f.csrf) {
        return super::pages::form_expired(&app, banner);
    }
    let Some(c) = c else { return Redirect::to("/login?return_to=/account").into_response() };
    let app2 = app.clone();
    match blocking(move || app2.accounts.claim_legacy(&c, &f.legacy_id)).await {
        Ok(done) => {
            let n = done.moved.len();
            let text = format!(
                "{n} collection{} from the older system (legacy id {}) now belong to you, in project {}.",
                if n == 1 { "" } else { "s" },
                done.legacy_id,
                done.owner_uuid
            );
            message(&app, banner, StatusCode::OK, "Data migrated", &text, Some("/account"), "Back to your account")
        }
        Err(e) => super::pages::not_done(&app, banner, &e.0),
    }
}

/// `POST /legacy/dismiss` ("Not mine").
pub async fn dismiss_submit(
    State(app): State<Arc<App>>,
    Session(c): Session,
    headers: HeaderMap,
    Form(f): Form<LegacyForm>,
) -> Response {
    let banner = Banner::of(c.as_ref(), &headers);
    if !csrf_ok(&headers, &f.csrf) {
        return super::pages::form_expired(&app, banner);
    }
    let Some(c) = c else { return Redirect::to("/login?return_to=/account").into_response() };
    let app2 = app.clone();
    match blocking(move || app2.accounts.dismiss_legacy(&c, &f.legacy_id)).await {
        Ok(()) => Redirect::to("/account").into_response(),
        Err(e) => super::pages::not_done(&app, banner, &e.0),
    }
}
