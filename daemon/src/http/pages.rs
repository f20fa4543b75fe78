//! The web pages: login, account, logout. Server-rendered with askama (escaped), usable without
//! JavaScript. Every form carries a CSRF token that must equal the `hearth_csrf` cookie
//! (double-submit); cookies are HttpOnly, Secure, SameSite=Lax.

use super::App;
use super::login::{blocking, parse_remote};
use crate::accounts::{Caller, ErrorKind, random_secret};
use crate::store::records::TokenKind;
use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use federation_proto::ClusterId;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "hearth_session";
/// Name of the CSRF cookie.
pub const CSRF_COOKIE: &str = "hearth_csrf";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    cluster: &'a str,
    error: Option<String>,
    csrf: &'a str,
    return_to: &'a str,
    remote: &'a str,
    login: &'a str,
}

struct TokenLine {
    uuid: String,
    scopes: String,
    expires: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    cluster: &'a str,
    full_name: String,
    username: String,
    email: String,
    email_verified: bool,
    uuid: String,
    home_cluster: String,
    tokens: Vec<TokenLine>,
    csrf: &'a str,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    cluster: &'a str,
    title: &'a str,
    message: &'a str,
    link: Option<&'a str>,
    link_text: &'a str,
}

/// Cookies of a request.
pub fn cookies(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for h in headers.get_all(header::COOKIE) {
        if let Ok(s) = h.to_str() {
            for part in s.split(';') {
                if let Some((k, v)) = part.trim().split_once('=') {
                    out.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
        }
    }
    out
}

fn set_cookie(name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let age = max_age.map(|a| format!("; Max-Age={a}")).unwrap_or_default();
    HeaderValue::from_str(&format!("{name}={value}; Path=/; HttpOnly; Secure; SameSite=Lax{age}"))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn html(status: StatusCode, body: Result<String, askama::Error>) -> Response {
    match body {
        Ok(b) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], b).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("template error: {e}")).into_response(),
    }
}

/// A page with one message (and maybe a link), at `status`.
pub fn message(
    app: &App,
    status: StatusCode,
    title: &str,
    text: &str,
    link: Option<&str>,
    link_text: &str,
) -> Response {
    let page = MessagePage { cluster: app.settings.cluster.id.as_str(), title, message: text, link, link_text };
    html(status, page.render())
}

/// Checks a `return_to`: a local path, our own origin or a trusted origin, never with user info.
pub fn check_return_to(app: &App, raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        return Ok(String::new());
    }
    if raw.starts_with('/') && !raw.starts_with("//") && !raw.starts_with("/\\") {
        return Ok(raw.to_string());
    }
    let url = reqwest::Url::parse(raw).map_err(|_| "return_to is not a URL".to_string())?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("return_to must not contain user info".into());
    }
    let origin = crate::config::origin_of(raw).ok_or_else(|| "return_to must be an http(s) URL".to_string())?;
    let ours = app.settings.public_origin();
    let trusted =
        origin == ours || app.settings.login.trusted_origins.iter().any(|t| t.trim_end_matches('/') == origin);
    if trusted { Ok(raw.to_string()) } else { Err(format!("return_to origin {origin} is not trusted by this cluster")) }
}

/// `url` with `api_token=<token>` added to its query.
pub fn with_token(url: &str, token: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    let enc = serde_urlencoded::to_string([("api_token", token)]).unwrap_or_default();
    format!("{url}{sep}{enc}")
}

fn bad_request(app: &App, text: &str) -> Response {
    message(app, StatusCode::BAD_REQUEST, "Bad request", text, None, "")
}

/// Query of `GET /login`.
#[derive(Debug, Deserialize, Default)]
pub struct LoginQuery {
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    remote: String,
}

fn check_remote(app: &App, remote: &str) -> Result<Option<ClusterId>, String> {
    match parse_remote(Some(remote.to_string())) {
        Err(_) => Err("Invalid remote cluster id".into()),
        Ok(None) => Ok(None),
        Ok(Some(r)) if app.settings.peer(&r).is_some() => Ok(Some(r)),
        Ok(Some(r)) => Err(format!("remote cluster {r} is not a peer of this cluster")),
    }
}

fn login_form(
    app: &App,
    status: StatusCode,
    headers: &HeaderMap,
    error: Option<String>,
    return_to: &str,
    remote: &str,
    login: &str,
) -> Response {
    let existing = cookies(headers).get(CSRF_COOKIE).cloned().filter(|c| c.len() >= 32);
    let csrf = existing.clone().unwrap_or_else(random_secret);
    let page = LoginPage { cluster: app.settings.cluster.id.as_str(), error, csrf: &csrf, return_to, remote, login };
    let mut resp = html(status, page.render());
    if existing.is_none() {
        resp.headers_mut().append(header::SET_COOKIE, set_cookie(CSRF_COOKIE, &csrf, None));
    }
    resp
}

/// `GET /login`.
pub async fn login_page(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    if let Err(e) = check_return_to(&app, &q.return_to) {
        return bad_request(&app, &e);
    }
    if let Err(e) = check_remote(&app, &q.remote) {
        return bad_request(&app, &e);
    }
    login_form(&app, StatusCode::OK, &headers, None, &q.return_to, &q.remote, "")
}

/// Form of `POST /login`.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    remote: String,
    #[serde(default)]
    csrf: String,
}

fn csrf_ok(headers: &HeaderMap, field: &str) -> bool {
    use subtle::ConstantTimeEq;
    match cookies(headers).get(CSRF_COOKIE) {
        Some(c) if c.len() >= 32 => c.as_bytes().ct_eq(field.as_bytes()).into(),
        _ => false,
    }
}

/// `POST /login`.
pub async fn login_submit(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return message(
            &app,
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form has expired or was not sent by this site. Please log in again.",
            Some("/login"),
            "Log in",
        );
    }
    let return_to = match check_return_to(&app, &f.return_to) {
        Ok(r) => r,
        Err(e) => return bad_request(&app, &e),
    };
    let remote = match check_remote(&app, &f.remote) {
        Ok(r) => r,
        Err(e) => return bad_request(&app, &e),
    };
    let app2 = app.clone();
    let (login, password, source) = (f.login.clone(), f.password.clone(), peer.ip().to_string());
    let outcome = blocking(move || app2.accounts.login(&login, &password, &source, None, TokenKind::Session)).await;
    let out = match outcome {
        Ok(o) => o,
        Err(e) => {
            let status = super::error::status_of(e.0.kind);
            let text = if e.0.kind == ErrorKind::Internal {
                "Something went wrong; please try again.".into()
            } else {
                e.0.message
            };
            return login_form(&app, status, &headers, Some(text), &f.return_to, &f.remote, &f.login);
        }
    };
    let session = out.token.to_string();
    let target = if return_to.is_empty() {
        "/account".to_string()
    } else {
        let handed = match &remote {
            Some(r) => out.token.salt_for(r).map(|t| t.to_string()).unwrap_or_default(),
            None => session.clone(),
        };
        with_token(&return_to, &handed)
    };
    let mut resp = Redirect::to(&target).into_response();
    let max_age = i64::try_from(app.settings.login.token_lifetime_secs).unwrap_or(i64::MAX);
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &session, Some(max_age)));
    resp
}

/// The caller behind the session cookie, if any.
pub async fn session_caller(app: &Arc<App>, headers: &HeaderMap) -> Option<Caller> {
    let raw = cookies(headers).get(SESSION_COOKIE)?.clone();
    let token = raw.parse().ok()?;
    app.accounts.authenticate_local(&token).ok()
}

/// `GET /account`.
pub async fn account_page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(c) = session_caller(&app, &headers).await else {
        return Redirect::to("/login?return_to=/account").into_response();
    };
    let tokens = app
        .accounts
        .store()
        .tokens_of(c.uuid())
        .unwrap_or_default()
        .into_iter()
        .map(|t| TokenLine {
            uuid: t.uuid.to_string(),
            scopes: serde_json::to_string(&t.scopes).unwrap_or_default(),
            expires: t.expires_at.map(crate::clock::format_time).unwrap_or_else(|| "never".into()),
        })
        .collect();
    let existing = cookies(&headers).get(CSRF_COOKIE).cloned().filter(|c| c.len() >= 32);
    let csrf = existing.clone().unwrap_or_else(random_secret);
    let u = &c.user;
    let page = AccountPage {
        cluster: app.settings.cluster.id.as_str(),
        full_name: format!("{} {}", u.first_name, u.last_name).trim().to_string(),
        username: u.username.clone().unwrap_or_default(),
        email: u.email.clone().unwrap_or_default(),
        email_verified: u.email_verified,
        uuid: u.uuid.to_string(),
        home_cluster: u.uuid.cluster().to_string(),
        tokens,
        csrf: &csrf,
    };
    let mut resp = html(StatusCode::OK, page.render());
    if existing.is_none() {
        resp.headers_mut().append(header::SET_COOKIE, set_cookie(CSRF_COOKIE, &csrf, None));
    }
    resp
}

/// Form of `POST /logout`.
#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    return_to: String,
}

async fn end_session(app: &Arc<App>, headers: &HeaderMap, return_to: &str) -> Response {
    if let Some(c) = session_caller(app, headers).await
        && let Some(t) = &c.token
    {
        let _ = app.accounts.revoke_token(&c, &t.uuid);
    }
    let target = match check_return_to(app, return_to) {
        Ok(r) if !r.is_empty() => r,
        _ => "/login".to_string(),
    };
    let mut resp = Redirect::to(&target).into_response();
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", Some(0)));
    resp
}

/// `POST /logout` (the account page's button).
pub async fn logout_submit(State(app): State<Arc<App>>, headers: HeaderMap, Form(f): Form<LogoutForm>) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return message(
            &app,
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form has expired or was not sent by this site.",
            Some("/account"),
            "Back",
        );
    }
    end_session(&app, &headers, &f.return_to).await
}

/// `GET /logout?return_to=…` (Arvados clients log out this way).
pub async fn logout_get(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    end_session(&app, &headers, &q.return_to).await
}

/// `GET /`: to the account page.
pub async fn root() -> Redirect {
    Redirect::to("/account")
}
