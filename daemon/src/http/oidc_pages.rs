//! OpenID Connect pages and their JSON twins: the login button's start, the provider's callback,
//! linking an identity from `/account` (the same flow, from a logged-in session), unlinking, and
//! `GET /hearth/v1/identities` / `POST /hearth/v1/identities/unlink`.
//!
//! A login through a provider ends exactly as a password login does ([`super::pages::logged_in`]):
//! the session cookie, `return_to` (checked by [`super::return_to::check`] at the start and again
//! at the callback) with the token, or for `remote=X` a token salted for X with a signed login
//! assertion; the login notice reaches the peers. The browser that started the flow holds the
//! `hearth_oidc` cookie; the callback ends it whatever happens.

use super::auth::Authed;
use super::error::{ApiError, ApiResult, status_of};
use super::pages::{audience, check_remote, logged_in, message, with_cookie};
use super::params::Params;
use super::session::{OIDC_COOKIE, Session, cookies, csrf_ok, set_cookie};
use super::{App, blocking, return_to};
use crate::accounts::{Error, ErrorKind};
use crate::oidc::{Callback, PENDING_SECS};
use crate::store::records::{OidcPurpose, TokenKind};
use axum::Form;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// A refusal as a page, at the status its kind gets.
fn refusal(app: &App, title: &str, e: &Error, link: &str, link_text: &str) -> Response {
    let text = if e.kind == ErrorKind::Internal { "Something went wrong; please try again." } else { &e.message };
    message(app, None, status_of(e.kind), title, text, Some(link), link_text)
}

/// Sends the browser to the provider, with the cookie that binds the flow to it.
fn to_provider(app: &App, id: &str, purpose: OidcPurpose) -> Result<Response, Error> {
    let started = app.oidc.start(id, purpose)?;
    let resp = Redirect::to(&started.url).into_response();
    Ok(with_cookie(resp, set_cookie(OIDC_COOKIE, &started.browser_secret, Some(PENDING_SECS))))
}

/// Query of `GET /login/oidc/<id>/start`.
#[derive(Debug, Deserialize, Default)]
pub struct StartQuery {
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    remote: String,
}

/// `GET /login/oidc/<id>/start?return_to=…&remote=…`: the login button.
pub async fn start(State(app): State<Arc<App>>, Path(id): Path<String>, Query(q): Query<StartQuery>) -> Response {
    let remote = match check_remote(&app, &q.remote) {
        Ok(r) => r,
        Err(e) => return refusal(&app, "Bad request", &Error::bad_request("invalid_remote", e), "/login", "Log in"),
    };
    let return_to = match return_to::check(&app, &q.return_to, audience(remote.as_ref())) {
        Ok(r) => r,
        Err(e) => {
            return refusal(&app, "Bad request", &Error::bad_request("invalid_return_to", e.0), "/login", "Log in");
        }
    };
    let purpose = OidcPurpose::Login { return_to: return_to.map(|u| u.to_string()).unwrap_or_default(), remote };
    to_provider(&app, &id, purpose).unwrap_or_else(|e| refusal(&app, "Login unavailable", &e, "/login", "Log in"))
}

/// Query of the callback.
#[derive(Debug, Deserialize, Default)]
pub struct CallbackQuery {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// `GET /login/oidc/<id>/callback`: the provider's redirect back. Takes this browser's pending
/// login (single use), checks the answer and the ID token, then logs in (or links).
pub async fn callback(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Session(session): Session,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let end = set_cookie(OIDC_COOKIE, "", Some(0));
    let secret = cookies(&headers).get(OIDC_COOKIE).cloned();
    let cb =
        Callback { code: q.code, state: q.state, iss: q.iss, error: q.error, error_description: q.error_description };
    let checked = async {
        let pending = app.oidc.take(secret.as_deref())?;
        let (provider, who) = app.oidc.finish(&id, &pending, &cb).await?;
        Ok::<_, Error>((pending, provider, who))
    }
    .await;
    let (pending, provider, who) = match checked {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(provider = %id, code = e.code, reason = %e.message, "OpenID Connect login refused");
            return with_cookie(refusal(&app, "Login refused", &e, "/login", "Log in"), end);
        }
    };
    let resp = match pending.purpose {
        OidcPurpose::Login { return_to, remote } => {
            let remote = remote.filter(|r| app.settings.peer(r).is_some());
            let return_to = match return_to::check(&app, &return_to, audience(remote.as_ref())) {
                Ok(r) => r,
                Err(e) => {
                    let e = Error::bad_request("invalid_return_to", e.0);
                    return with_cookie(refusal(&app, "Bad request", &e, "/login", "Log in"), end);
                }
            };
            let (app2, create) = (app.clone(), app.settings.login.oidc_create_users);
            match blocking(move || app2.accounts.oidc_login(&provider, &who, create, TokenKind::Session)).await {
                Ok(out) => logged_in(&app, &headers, &out, return_to.as_ref(), remote.as_ref(), None).await,
                Err(e) => refusal(&app, "Login refused", &e.0, "/login", "Log in"),
            }
        }
        OidcPurpose::Link { user_uuid } => match session {
            Some(c) if c.uuid() == &user_uuid => {
                let app2 = app.clone();
                match blocking(move || app2.accounts.link_identity(&c, &provider, &who)).await {
                    Ok(_) => Redirect::to(&format!("/account?linked={id}")).into_response(),
                    Err(e) => refusal(&app, "Not linked", &e.0, "/account", "Back to your account"),
                }
            }
            _ => {
                let e = Error::forbidden(
                    "oidc_link_session",
                    "this link was started by another session; log in to the account again and link from its page",
                );
                refusal(&app, "Not linked", &e, "/account", "Back to your account")
            }
        },
    };
    with_cookie(resp, end)
}

/// Form of `POST /account/identities/link` and `/unlink`.
#[derive(Debug, Deserialize)]
pub struct IdentityForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    subject: String,
    /// Instead of `provider` when unlinking: the provider's issuer.
    #[serde(default)]
    issuer: String,
}

fn form_expired(app: &App) -> Response {
    message(
        app,
        None,
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form has expired or was not sent by this site.",
        Some("/account"),
        "Back to your account",
    )
}

/// `POST /account/identities/link` ("Link <provider>" on `/account`): runs the login flow at the
/// provider for the logged-in account.
pub async fn link_submit(
    State(app): State<Arc<App>>,
    Session(c): Session,
    headers: HeaderMap,
    Form(f): Form<IdentityForm>,
) -> Response {
    let Some(c) = c else { return Redirect::to("/login?return_to=/account").into_response() };
    if !csrf_ok(&headers, &f.csrf) {
        return form_expired(&app);
    }
    if c.uuid().cluster() != app.accounts.cluster() {
        let e = Error::forbidden("identity_not_local", "identities are linked at your home cluster");
        return refusal(&app, "Not linked", &e, "/account", "Back to your account");
    }
    to_provider(&app, &f.provider, OidcPurpose::Link { user_uuid: c.uuid().clone() })
        .unwrap_or_else(|e| refusal(&app, "Not linked", &e, "/account", "Back to your account"))
}

/// `POST /account/identities/unlink`.
pub async fn unlink_submit(
    State(app): State<Arc<App>>,
    Session(c): Session,
    headers: HeaderMap,
    Form(f): Form<IdentityForm>,
) -> Response {
    let Some(c) = c else { return Redirect::to("/login?return_to=/account").into_response() };
    if !csrf_ok(&headers, &f.csrf) {
        return form_expired(&app);
    }
    let app2 = app.clone();
    let provider = if f.provider.is_empty() { f.issuer.clone() } else { f.provider.clone() };
    let (p2, subject) = (provider.clone(), f.subject.clone());
    match blocking(move || app2.accounts.unlink_identity(&c, &p2, &subject)).await {
        Ok(()) => Redirect::to(&super::pages::with_params("/account", &[("unlinked", &provider)])).into_response(),
        Err(e) => refusal(&app, "Not unlinked", &e.0, "/account", "Back to your account"),
    }
}

/// `GET /hearth/v1/identities`: the caller's identities.
pub async fn identities_json(State(app): State<Arc<App>>, Authed(c): Authed) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"items": app.accounts.identities_view(c.uuid())?})))
}

/// `POST /hearth/v1/identities/unlink` `{"provider", "subject"}`.
pub async fn unlink_json(State(app): State<Arc<App>>, Authed(c): Authed, p: Params) -> ApiResult<Json<Value>> {
    let need = |k: &'static str| -> ApiResult<String> {
        p.get_str(k)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError(Error::unprocessable("missing_parameter", format!("{k} is required"))))
    };
    let provider = match p.get_str("provider")?.filter(|s| !s.is_empty()) {
        Some(v) => v,
        None => need("issuer")?,
    };
    let subject = p.get_str("subject")?.unwrap_or_default();
    let app2 = app.clone();
    let uuid = c.uuid().clone();
    blocking(move || app2.accounts.unlink_identity(&c, &provider, &subject)).await?;
    Ok(Json(json!({"unlinked": true, "items": app.accounts.identities_view(&uuid)?})))
}
