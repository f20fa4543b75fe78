//! Browser sessions: cookies, the CSRF double-submit token, the [`Session`] extractor every page
//! authenticates through, and the state that binds a federated hand-off to the browser that began
//! it.
//!
//! Cookies are HttpOnly, Secure, SameSite=Lax, `Path=/`. A page's caller comes only from
//! [`Session`]: the `hearth_session` cookie holding a token of ours, or a peer's token salted for
//! us (validated at its home), whose scopes are exactly `["all"]` — a token scoped to a few API
//! calls is not a session, whatever cookie it is put in. A session switched to a managed profile
//! (kept in the store, keyed by the token's uuid; never in a cookie) acts as the profile, through
//! the same check as the API's `X-Hearth-Act-As`, and every page shows a [`Banner`] while it does.

use super::App;
use super::return_to;
use crate::accounts::{Caller, random_secret};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use federation_proto::{ClusterId, SecretHash};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use url::Url;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "hearth_session";
/// Name of the cookie remembering the person's home cluster.
pub const HOME_COOKIE: &str = "hearth_home";
/// Name of the CSRF cookie.
pub const CSRF_COOKIE: &str = "hearth_csrf";
/// Name of the cookie that binds a federated hand-off to this browser.
pub const HANDOFF_COOKIE: &str = "hearth_handoff";
/// Name of the cookie that binds an OpenID Connect login to the browser that started it.
pub const OIDC_COOKIE: &str = "hearth_oidc";
/// How long a federated hand-off may take, from leaving for the home cluster to coming back.
pub const HANDOFF_SECS: i64 = 600;

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

/// A `Set-Cookie` value: HttpOnly, Secure, SameSite=Lax, `Path=/`.
pub fn set_cookie(name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let age = max_age.map(|a| format!("; Max-Age={a}")).unwrap_or_default();
    HeaderValue::from_str(&format!("{name}={value}; Path=/; HttpOnly; Secure; SameSite=Lax{age}"))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The CSRF token for a page's forms: the request's `hearth_csrf` cookie, or a fresh one (then
/// `true`: the response must set the cookie, see [`with_csrf_cookie`]).
pub fn csrf_token(headers: &HeaderMap) -> (String, bool) {
    match cookies(headers).get(CSRF_COOKIE).cloned().filter(|c| c.len() >= 32) {
        Some(c) => (c, false),
        None => (random_secret(), true),
    }
}

/// Sets the CSRF cookie on `resp` when [`csrf_token`] made a fresh one.
pub fn with_csrf_cookie(mut resp: Response, csrf: &str, fresh: bool) -> Response {
    if fresh {
        resp.headers_mut().append(header::SET_COOKIE, set_cookie(CSRF_COOKIE, csrf, None));
    }
    resp
}

/// Whether a form's CSRF field equals the CSRF cookie.
pub fn csrf_ok(headers: &HeaderMap, field: &str) -> bool {
    use subtle::ConstantTimeEq;
    match cookies(headers).get(CSRF_COOKIE) {
        Some(c) if c.len() >= 32 => c.as_bytes().ct_eq(field.as_bytes()).into(),
        _ => false,
    }
}

/// The caller of a page: `Some` only for a valid session token whose scopes are `["all"]`.
pub struct Session(pub Option<Caller>);

impl FromRequestParts<Arc<App>> for Session {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        Ok(Session(session_caller(app, &parts.headers).await))
    }
}

async fn session_caller(app: &Arc<App>, headers: &HeaderMap) -> Option<Caller> {
    let raw = cookies(headers).get(SESSION_COOKIE)?.clone();
    let token: federation_proto::Token = raw.parse().ok()?;
    let issuer = token.uuid().cluster().clone();
    let caller = if &issuer == app.accounts.cluster() {
        app.accounts.authenticate_local(&token).ok()?
    } else {
        app.remote_caller(&token, &issuer).await.ok()?
    };
    if !caller.scopes.is_all() {
        return None;
    }
    app.accounts.effective_caller(caller, None).ok()
}

/// What every page shows while its session acts as a managed profile: who it acts as, for whom,
/// and the way back.
#[derive(Debug, Clone)]
pub struct Banner {
    /// The profile's name.
    pub profile: String,
    /// The parent's name.
    pub parent: String,
    /// The CSRF token for the "Back to …" form (the browser's `hearth_csrf` cookie); without one the
    /// banner links to the account page instead.
    pub csrf: Option<String>,
}

/// The name a page shows for `u`: its full name, else its username, else its uuid.
pub fn name_of(u: &crate::store::records::User) -> String {
    let full = format!("{} {}", u.first_name, u.last_name).trim().to_string();
    if !full.is_empty() { full } else { u.username.clone().unwrap_or_else(|| u.uuid.to_string()) }
}

impl Banner {
    /// The banner for a page whose session is `caller`: `Some` while it acts as a profile.
    pub fn of(caller: Option<&Caller>, headers: &HeaderMap) -> Option<Banner> {
        let c = caller?;
        let parent = c.acting_parent.as_ref()?;
        Some(Banner {
            profile: name_of(&c.user),
            parent: name_of(parent),
            csrf: cookies(headers).get(CSRF_COOKIE).cloned().filter(|v| v.len() >= 32),
        })
    }
}

/// A federated login about to leave for the home cluster: the URL of the home's login page, and
/// the cookie that must travel with the response sending the browser there.
pub struct Handoff {
    /// The home cluster's login URL (coming back through our `/login/federated`).
    pub url: String,
    cookie: HeaderValue,
}

impl Handoff {
    /// Starts a hand-off to peer `home` that comes back to `return_to` here. The way back carries
    /// `state` = SHA-256 of a fresh secret that only this browser's `hearth_handoff` cookie holds.
    pub fn start(app: &App, home: &ClusterId, return_to: Option<&Url>, extra: &[(&str, &str)]) -> Option<Handoff> {
        let peer = Url::parse(&app.settings.peer(home)?.url).ok()?;
        let secret = random_secret();
        let state = SecretHash::of(&secret).to_hex();
        let back = Url::parse(&app.settings.cluster.public_url).ok()?.join("/login/federated").ok()?;
        let return_to = return_to.map(Url::as_str).unwrap_or("");
        let back = return_to::with_params(back, &[("return_to", return_to), ("state", &state)]);
        let mut params = vec![("remote", app.settings.cluster.id.as_str()), ("return_to", back.as_str())];
        params.extend_from_slice(extra);
        let url = return_to::with_params(peer.join("/login").ok()?, &params);
        Some(Handoff { url, cookie: set_cookie(HANDOFF_COOKIE, &secret, Some(HANDOFF_SECS)) })
    }

    /// `resp` with the hand-off cookie set.
    pub fn attach(self, mut resp: Response) -> Response {
        resp.headers_mut().append(header::SET_COOKIE, self.cookie);
        resp
    }
}

/// Whether `state` (from the way back) belongs to the hand-off this browser began.
pub fn handoff_state_ok(headers: &HeaderMap, state: &str) -> bool {
    use subtle::ConstantTimeEq;
    match cookies(headers).get(HANDOFF_COOKIE) {
        Some(secret) if secret.len() >= 32 && !state.is_empty() => {
            SecretHash::of(secret).to_hex().as_bytes().ct_eq(state.as_bytes()).into()
        }
        _ => false,
    }
}

/// The `Set-Cookie` that ends a hand-off (its state is single-use).
pub fn end_handoff() -> HeaderValue {
    set_cookie(HANDOFF_COOKIE, "", Some(0))
}
