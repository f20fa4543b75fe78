//! Person records and claims over HTTP (DESIGN §4.9): the JSON API under `/hearth/v1/persons`,
//! the claimant's and the admins' claim endpoints, and the pages (a person's page with its claim
//! button, the admin queue). A new pending claim mails the admins when `[notify]` is set.

use super::App;
use super::auth::Authed;
use super::blocking;
use super::error::{ApiError, ApiResult};
use super::pages::{html, message};
use super::params::Params;
use super::session::{Banner, Session, csrf_ok, csrf_token, with_csrf_cookie};
use crate::accounts::listing::ListParams;
use crate::accounts::persons::{ClaimOutcome, ClaimView, PersonDetail, PersonInput, PersonView};
use crate::accounts::{Caller, Error};
use crate::store::records::Link;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use federation_proto::ObjectUuid;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

fn parse_uuid(raw: &str, what: &str) -> ApiResult<ObjectUuid> {
    raw.parse().map_err(|_| ApiError(Error::not_found("not_found", format!("{what} {raw} not found"))))
}

fn input(p: &Params) -> ApiResult<PersonInput> {
    let attrs = p.attrs("person")?;
    let bad = |m: String| ApiError(Error::unprocessable("invalid_person", m));
    let name = match attrs.get("name") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("name must be a string".into())),
    };
    let emails = match attrs.get("emails") {
        None => None,
        Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|e| e.as_str().map(str::to_string).ok_or_else(|| bad("emails must be a list of strings".into())))
                .collect::<ApiResult<Vec<_>>>()?,
        ),
        Some(_) => return Err(bad("emails must be a list of strings".into())),
    };
    let orcid = match attrs.get("orcid") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => return Err(bad("orcid must be a string".into())),
    };
    if let Some(k) = attrs.keys().find(|k| !["name", "emails", "orcid"].contains(&k.as_str())) {
        return Err(bad(format!(
            "unknown attribute {:?} (a person has name, emails, orcid)",
            k.chars().take(64).collect::<String>()
        )));
    }
    Ok(PersonInput { name, emails, orcid })
}

/// `POST /hearth/v1/persons {"person": {"name", "emails"?, "orcid"?}}`.
pub async fn create(State(app): State<Arc<App>>, Authed(c): Authed, p: Params) -> ApiResult<Json<PersonView>> {
    let i = input(&p)?;
    let app2 = app.clone();
    Ok(Json(blocking(move || app2.accounts.create_person(&c, i)).await?))
}

/// `GET /hearth/v1/persons?q=…` (free-text, indexed) or with Arvados list parameters.
pub async fn list(State(app): State<Arc<App>>, Authed(c): Authed, p: Params) -> ApiResult<super::RenderedJson> {
    match p.get_str("q")? {
        Some(q) => {
            // The lists' own parsing of `limit`: a bad one is refused, a big one capped.
            let max = crate::accounts::persons::MAX_SEARCH;
            let limit = ListParams::parse(None, None, p.get("limit").as_deref(), None, None, max as u64)
                .map_err(ApiError)?
                .limit;
            app.list_json(move |a| {
                let items = a.accounts.search_persons(&c, &q, limit)?;
                let n = items.len();
                Ok(serde_json::json!({"kind": "hearth#personList", "items": items, "items_available": n}))
            })
            .await
        }
        None => app.list_json(move |a| a.accounts.list_persons(&c, &super::arvados::list_params(a, &p)?)).await,
    }
}

/// `GET /hearth/v1/persons/<uuid>`.
pub async fn get(
    State(app): State<Arc<App>>,
    Authed(c): Authed,
    Path(raw): Path<String>,
) -> ApiResult<Json<PersonDetail>> {
    let uuid = parse_uuid(&raw, "person")?;
    let app2 = app.clone();
    Ok(Json(blocking(move || app2.accounts.get_person(&c, &uuid)).await?))
}

/// `PUT|PATCH /hearth/v1/persons/<uuid>`.
pub async fn update(
    State(app): State<Arc<App>>,
    Authed(c): Authed,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Json<PersonView>> {
    let uuid = parse_uuid(&raw, "person")?;
    let i = input(&p)?;
    let app2 = app.clone();
    Ok(Json(blocking(move || app2.accounts.update_person(&c, &uuid, i)).await?))
}

/// `POST /hearth/v1/persons/<uuid>/attach {"object_uuid", "role"?}`.
pub async fn attach(
    State(app): State<Arc<App>>,
    Authed(c): Authed,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    let uuid = parse_uuid(&raw, "person")?;
    let object = p
        .get_str("object_uuid")?
        .ok_or_else(|| ApiError(Error::unprocessable("missing_object", "object_uuid is required")))?;
    let object: ObjectUuid =
        object.parse().map_err(|_| ApiError(Error::unprocessable("invalid_uuid", "object_uuid is not a uuid")))?;
    let role = p.get_str("role")?.unwrap_or_default();
    let app2 = app.clone();
    let link: Link = blocking(move || app2.accounts.attach_person(&c, &uuid, &object, &role)).await?;
    Ok(Json(crate::accounts::views::link(&link)))
}

fn tell_admins(app: &App, claim: &ClaimView) {
    let subject =
        format!("[{}] A claim on person record {:?} waits for you", app.settings.cluster.id, claim.person.name);
    let body = format!(
        "{} ({}{}) claims the name-only person record {:?} ({}).\n\nApprove or reject it at {}/admin/claims\n",
        claim.claimant_name,
        claim.claimant_uuid,
        claim.claimant_email.as_deref().map(|e| format!(", {e}")).unwrap_or_default(),
        claim.person.name,
        claim.person.uuid,
        app.settings.cluster.public_url.trim_end_matches('/'),
    );
    app.notifier.tell_admins(subject, body);
}

async fn do_claim(app: &Arc<App>, c: Caller, uuid: ObjectUuid) -> ApiResult<ClaimOutcome> {
    let app2 = app.clone();
    let out = blocking(move || app2.accounts.claim_person(&c, &uuid)).await?;
    if let ClaimOutcome::Pending { claim } = &out {
        tell_admins(app, claim);
    }
    Ok(out)
}

/// `POST /hearth/v1/persons/<uuid>/claim` → `{"state": "claimed", …}` or `{"state": "pending", "claim"}`.
pub async fn claim(State(app): State<Arc<App>>, Authed(c): Authed, Path(raw): Path<String>) -> ApiResult<Response> {
    let uuid = parse_uuid(&raw, "person")?;
    let out = do_claim(&app, c, uuid).await?;
    let status = if matches!(out, ClaimOutcome::Pending { .. }) { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((status, Json(out)).into_response())
}

/// Items of a claims list.
#[derive(Serialize)]
pub struct Claims {
    items: Vec<ClaimView>,
}

/// `GET /hearth/v1/claims`: the caller's own claims.
pub async fn mine(State(app): State<Arc<App>>, Authed(c): Authed) -> ApiResult<Json<Claims>> {
    let app2 = app.clone();
    Ok(Json(Claims { items: blocking(move || app2.accounts.my_claims(&c)).await? }))
}

/// `GET /hearth/v1/admin/claims`: the pending ones.
pub async fn queue(State(app): State<Arc<App>>, Authed(c): Authed) -> ApiResult<Json<Claims>> {
    let app2 = app.clone();
    Ok(Json(Claims { items: blocking(move || app2.accounts.pending_claims(&c)).await? }))
}

/// `POST /hearth/v1/admin/claims/<uuid>/approve`.
pub async fn approve(
    State(app): State<Arc<App>>,
    Authed(c): Authed,
    Path(raw): Path<String>,
) -> ApiResult<Json<ClaimView>> {
    let uuid = parse_uuid(&raw, "claim")?;
    let app2 = app.clone();
    Ok(Json(blocking(move || app2.accounts.approve_claim(&c, &uuid)).await?))
}

/// `POST /hearth/v1/admin/claims/<uuid>/reject {"reason"}`.
pub async fn reject(
    State(app): State<Arc<App>>,
    Authed(c): Authed,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Json<ClaimView>> {
    let uuid = parse_uuid(&raw, "claim")?;
    let reason = p.get_str("reason")?.unwrap_or_default();
    let app2 = app.clone();
    Ok(Json(blocking(move || app2.accounts.reject_claim(&c, &uuid, &reason)).await?))
}

#[derive(Template)]
#[template(path = "person.html")]
struct PersonPage<'a> {
    banner: Option<Banner>,
    cluster: &'a str,
    p: PersonDetail,
    csrf: &'a str,
}

#[derive(Template)]
#[template(path = "claims_admin.html")]
struct QueuePage<'a> {
    banner: Option<Banner>,
    cluster: &'a str,
    claims: Vec<ClaimView>,
    csrf: &'a str,
}

fn refused(app: &App, e: &Error, back: &str) -> Response {
    super::pages::not_done_at(app, None, e, back)
}

fn login_first(path: &str) -> Response {
    Redirect::to(&super::pages::with_params("/login", &[("return_to", path)])).into_response()
}

/// `GET /persons/<uuid>`.
pub async fn person_page(
    State(app): State<Arc<App>>,
    Session(c): Session,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Response {
    let back = format!("/persons/{raw}");
    let Some(c) = c else { return login_first(&back) };
    let banner = Banner::of(Some(&c), &headers);
    let Ok(uuid) = raw.parse::<ObjectUuid>() else {
        return message(
            &app,
            banner,
            StatusCode::NOT_FOUND,
            "Not found",
            "No such person record.",
            Some("/account"),
            "Back",
        );
    };
    let app2 = app.clone();
    match blocking(move || app2.accounts.get_person(&c, &uuid)).await {
        Ok(p) => {
            let (csrf, fresh) = csrf_token(&headers);
            let page = PersonPage { cluster: app.settings.cluster.id.as_str(), p, csrf: &csrf, banner };
            with_csrf_cookie(html(StatusCode::OK, page.render()), &csrf, fresh)
        }
        Err(e) => refused(&app, &e.0, "/account"),
    }
}

/// A form that carries only the CSRF token (and maybe a reason).
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

fn form_expired(app: &App) -> Response {
    super::pages::form_expired(app, None)
}

/// `POST /persons/<uuid>/claim` (the person page's button).
pub async fn claim_submit(
    State(app): State<Arc<App>>,
    Session(c): Session,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return form_expired(&app);
    }
    let back = format!("/persons/{raw}");
    let Some(c) = c else { return login_first(&back) };
    let Ok(uuid) = raw.parse::<ObjectUuid>() else {
        return message(
            &app,
            None,
            StatusCode::NOT_FOUND,
            "Not found",
            "No such person record.",
            Some("/account"),
            "Back",
        );
    };
    match do_claim(&app, c, uuid).await {
        Ok(ClaimOutcome::Claimed { person, granted, matched }) => message(
            &app,
            None,
            StatusCode::OK,
            "Claimed",
            &format!(
                "The person record {} is now yours (your {matched} matched); you can read the {} object{} it is attached to.",
                person.name,
                granted.len(),
                if granted.len() == 1 { "" } else { "s" }
            ),
            Some("/account"),
            "Back to your account",
        ),
        Ok(ClaimOutcome::Pending { claim }) => message(
            &app,
            None,
            StatusCode::ACCEPTED,
            "Claim sent",
            &format!(
                "The record {} names no identity you could prove, so an admin will decide on your claim. Your account page shows where it stands.",
                claim.person.name
            ),
            Some("/account"),
            "Back to your account",
        ),
        Err(e) => refused(&app, &e.0, &back),
    }
}

/// `GET /admin/claims` (admins).
pub async fn queue_page(State(app): State<Arc<App>>, Session(c): Session, headers: HeaderMap) -> Response {
    let Some(c) = c else { return login_first("/admin/claims") };
    let banner = Banner::of(Some(&c), &headers);
    let app2 = app.clone();
    match blocking(move || app2.accounts.pending_claims(&c)).await {
        Ok(claims) => {
            let (csrf, fresh) = csrf_token(&headers);
            let page = QueuePage { cluster: app.settings.cluster.id.as_str(), claims, csrf: &csrf, banner };
            with_csrf_cookie(html(StatusCode::OK, page.render()), &csrf, fresh)
        }
        Err(e) => refused(&app, &e.0, "/account"),
    }
}

/// `POST /admin/claims/<uuid>/approve` and `…/reject` (the queue page's buttons).
pub async fn decide_submit(
    State(app): State<Arc<App>>,
    Session(c): Session,
    headers: HeaderMap,
    Path((raw, decision)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return form_expired(&app);
    }
    let Some(c) = c else { return login_first("/admin/claims") };
    let Ok(uuid) = raw.parse::<ObjectUuid>() else {
        return message(
            &app,
            None,
            StatusCode::NOT_FOUND,
            "Not found",
            "No such claim.",
            Some("/admin/claims"),
            "Back",
        );
    };
    let app2 = app.clone();
    let out = blocking(move || match decision.as_str() {
        "approve" => app2.accounts.approve_claim(&c, &uuid),
        "reject" => app2.accounts.reject_claim(&c, &uuid, &f.reason),
        _ => Err(Error::not_found("not_found", "no such decision")),
    })
    .await;
    match out {
        Ok(_) => Redirect::to("/admin/claims").into_response(),
        Err(e) => refused(&app, &e.0, "/admin/claims"),
    }
}
