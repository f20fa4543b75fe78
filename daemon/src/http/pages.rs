//! The web pages: login, account, logout. Server-rendered with askama (escaped), usable without
//! JavaScript. Every form carries a CSRF token that must equal the `hearth_csrf` cookie
//! (double-submit); cookies are HttpOnly, Secure, SameSite=Lax (see [`super::session`]). Every
//! `return_to` passes [`super::return_to::check`].

use super::App;
use super::anonymous_pages::{self, CollectionLine};
use super::blocking;
use super::login::parse_remote;
use super::return_to::{self, Audience};
use super::session::{
    Banner, HOME_COOKIE, Handoff, SESSION_COOKIE, Session, cookies, csrf_ok, csrf_token, end_handoff, handoff_state_ok,
    name_of, set_cookie, with_csrf_cookie,
};
use crate::accounts::profiles::NewProfile;
use crate::accounts::{Caller, Error, ErrorKind};
use crate::store::records::TokenKind;
use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use federation_proto::{ClusterId, ObjectUuid};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use url::Url;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    cluster: &'a str,
    error: Option<String>,
    notice: Option<String>,
    migration_request: &'a str,
    csrf: &'a str,
    return_to: &'a str,
    remote: &'a str,
    login: &'a str,
    banner: Option<Banner>,
    providers: Vec<OidcButton>,
}

/// One "Log in with …" button.
pub struct OidcButton {
    /// Provider id.
    pub id: String,
    /// Its name.
    pub display_name: String,
    /// The start URL, carrying `return_to` and `remote`.
    pub href: String,
    /// Discovered (else the button says it is unavailable).
    pub available: bool,
}

/// The buttons of the login page, for a login that goes on to `return_to` (for `remote`).
pub fn oidc_buttons(app: &App, return_to: &str, remote: &str) -> Vec<OidcButton> {
    let mut params = Vec::new();
    if !return_to.is_empty() {
        params.push(("return_to", return_to));
    }
    if !remote.is_empty() {
        params.push(("remote", remote));
    }
    app.oidc
        .buttons()
        .into_iter()
        .map(|b| OidcButton {
            href: with_params(&format!("/login/oidc/{}/start", b.id), &params),
            id: b.id,
            display_name: b.display_name,
            available: b.available,
        })
        .collect()
}

struct TokenLine {
    uuid: String,
    scopes: String,
    expires: String,
}

/// A managed profile on the account page.
struct ProfileLine {
    uuid: String,
    name: String,
    username: String,
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
    offers: Vec<super::migration_pages::Offer>,
    legacy: Vec<crate::accounts::legacy::LegacyOffer>,
    profiles: Vec<ProfileLine>,
    /// For a managed profile: its parent's name.
    managed_by: Option<String>,
    /// Whether this account may have profiles (a person's account here, not acting as one).
    may_have_profiles: bool,
    banner: Option<Banner>,
    claimed_persons: Vec<crate::accounts::persons::PersonView>,
    claims: Vec<crate::accounts::persons::ClaimView>,
    collections: Vec<CollectionLine>,
    more_collections: usize,
    csrf: &'a str,
    notice: Option<String>,
    orcid: String,
    has_password: bool,
    identities: Vec<IdentityLine>,
    link_providers: Vec<OidcButton>,
}

struct IdentityLine {
    provider: String,
    display_name: String,
    subject: String,
    email: String,
}

/// Query of `GET /account`: what the last action did.
#[derive(Debug, Deserialize, Default)]
pub struct AccountQuery {
    /// A provider whose identity was just linked.
    #[serde(default)]
    linked: String,
    /// A provider whose identity was just unlinked.
    #[serde(default)]
    unlinked: String,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    cluster: &'a str,
    title: &'a str,
    message: &'a str,
    link: Option<&'a str>,
    link_text: &'a str,
    banner: Option<Banner>,
}

/// A rendered page (or a 500 when the template failed).
pub fn html(status: StatusCode, body: Result<String, askama::Error>) -> Response {
    match body {
        Ok(b) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], b).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("template error: {e}")).into_response(),
    }
}

/// A page with one message (and maybe a link), at `status`, with the banner of a session that
/// acts as a managed profile (`banner`; none for a page outside any session).
pub fn message(
    app: &App,
    banner: Option<Banner>,
    status: StatusCode,
    title: &str,
    text: &str,
    link: Option<&str>,
    link_text: &str,
) -> Response {
    let page = MessagePage { cluster: app.settings.cluster.id.as_str(), title, message: text, link, link_text, banner };
    html(status, page.render())
}

/// `url` (a path of ours) with query parameters added.
pub fn with_params(url: &str, params: &[(&str, &str)]) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    let enc = serde_urlencoded::to_string(params).unwrap_or_default();
    format!("{url}{sep}{enc}")
}

/// The audience a `remote` gives `return_to`: that peer's own origin, or ours.
pub(super) fn audience(remote: Option<&ClusterId>) -> Audience<'_> {
    match remote {
        Some(r) => Audience::Peer(r),
        None => Audience::Local,
    }
}

fn bad_request(app: &App, banner: Option<Banner>, text: &str) -> Response {
    message(app, banner, StatusCode::BAD_REQUEST, "Bad request", text, None, "")
}

/// Query of `GET /login`.
#[derive(Debug, Deserialize, Default)]
pub struct LoginQuery {
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    remote: String,
    /// Log in at this peer instead (the person's home cluster).
    #[serde(default)]
    home: String,
    /// Log in here even if the `hearth_home` cookie names another cluster.
    #[serde(default)]
    local: String,
    /// A signed migration request from `remote` (base64url JSON).
    #[serde(default)]
    migration_request: String,
    /// The account at `remote` that was merged into one here (to say why the person is here).
    #[serde(default)]
    moved_from: String,
}

pub(super) fn check_remote(app: &App, remote: &str) -> Result<Option<ClusterId>, String> {
    match parse_remote(Some(remote.to_string())) {
        Err(_) => Err("Invalid remote cluster id".into()),
        Ok(None) => Ok(None),
        Ok(Some(r)) if app.settings.peer(&r).is_some() => Ok(Some(r)),
        Ok(Some(r)) => Err(format!("remote cluster {r} is not a peer of this cluster")),
    }
}

/// What the login form carries through.
#[derive(Default)]
struct FormState<'a> {
    return_to: &'a str,
    remote: &'a str,
    login: &'a str,
    migration_request: &'a str,
    notice: Option<String>,
    banner: Option<Banner>,
}

fn login_form(
    app: &App,
    status: StatusCode,
    headers: &HeaderMap,
    error: Option<String>,
    st: FormState<'_>,
) -> Response {
    let (csrf, fresh) = csrf_token(headers);
    let page = LoginPage {
        cluster: app.settings.cluster.id.as_str(),
        error,
        notice: st.notice,
        csrf: &csrf,
        return_to: st.return_to,
        remote: st.remote,
        login: st.login,
        migration_request: st.migration_request,
        providers: oidc_buttons(app, st.return_to, st.remote),
        banner: st.banner,
    };
    with_csrf_cookie(html(status, page.render()), &csrf, fresh)
}

/// A redirect to a federated login at `home` (with the hand-off cookie), or `None` when `home` is
/// not a peer.
pub fn handoff_redirect(
    app: &App,
    home: &ClusterId,
    return_to: Option<&Url>,
    extra: &[(&str, &str)],
) -> Option<Response> {
    let h = Handoff::start(app, home, return_to, extra)?;
    let resp = Redirect::to(&h.url).into_response();
    Some(h.attach(resp))
}

/// `GET /login`: the form, or a redirect to the person's home cluster (`home=X` or the
/// `hearth_home` cookie).
pub async fn login_page(
    State(app): State<Arc<App>>,
    Session(c): Session,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let banner = Banner::of(c.as_ref(), &headers);
    let remote = match check_remote(&app, &q.remote) {
        Ok(r) => r,
        Err(e) => return bad_request(&app, banner, &e),
    };
    let return_to = match return_to::check(&app, &q.return_to, audience(remote.as_ref())) {
        Ok(r) => r,
        Err(e) => return bad_request(&app, banner, &e.0),
    };
    let home = if !q.home.is_empty() {
        match check_remote(&app, &q.home) {
            Ok(h) => h,
            Err(e) => return bad_request(&app, banner, &format!("home: {e}")),
        }
    } else if q.remote.is_empty() && q.local.is_empty() {
        cookies(&headers)
            .get(HOME_COOKIE)
            .and_then(|c| c.parse::<ClusterId>().ok())
            .filter(|c| app.settings.peer(c).is_some())
    } else {
        None
    };
    if let Some(h) = home
        && remote.is_none()
        && let Some(resp) = handoff_redirect(&app, &h, return_to.as_ref(), &[])
    {
        return resp;
    }
    let notice = (!q.moved_from.is_empty()).then(|| {
        format!(
            "Your account {} at cluster {} was merged into an account here. Log in with this cluster's account.",
            q.moved_from, q.remote
        )
    });
    let st = FormState {
        return_to: return_to.as_ref().map_or("", Url::as_str),
        remote: &q.remote,
        login: "",
        migration_request: &q.migration_request,
        notice,
        banner,
    };
    login_form(&app, StatusCode::OK, &headers, None, st)
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
    migration_request: String,
    #[serde(default)]
    csrf: String,
}

/// Where a login that failed should go instead: the new account's home for a merged-away account,
/// or an offer to continue at the peer whose cached verified email matches an unknown login.
fn redirect_elsewhere(
    app: &Arc<App>,
    banner: Option<Banner>,
    login: &str,
    return_to: Option<&Url>,
    code: &str,
) -> Option<Response> {
    let me = app.accounts.cluster().clone();
    if code == "account_moved" {
        let old = app.accounts.find_login_account(login).ok().flatten()?;
        let new = app.accounts.follow_redirects(old.clone()).ok()?;
        let home = new.uuid.cluster().clone();
        if home == me {
            return None;
        }
        return handoff_redirect(app, &home, return_to, &[("moved_from", &old.uuid.to_string())]);
    }
    if code == "invalid_login" && login.contains('@') {
        let email = login.trim().to_lowercase();
        let users = app.accounts.store().users_by_email(&email).ok()?;
        let local_exists = users.iter().any(|u| u.uuid.cluster() == &me && !u.cached_from_home);
        if local_exists {
            return None;
        }
        let at = users.iter().find(|u| {
            u.cached_from_home
                && u.email_verified
                && u.redirect_to_user_uuid.is_none()
                && app.settings.peer(u.uuid.cluster()).is_some()
        })?;
        let home = at.uuid.cluster().clone();
        if app.settings.login.redirect_to_home {
            return handoff_redirect(app, &home, return_to, &[]);
        }
        let h = Handoff::start(app, &home, return_to, &[])?;
        let page = message(
            app,
            banner,
            StatusCode::OK,
            "Your account is at another cluster",
            &format!(
                "There is no account for {email} here, but cluster {home} has one. Log in there to use this cluster."
            ),
            Some(&h.url),
            &format!("Continue at {home}"),
        );
        return Some(h.attach(page));
    }
    None
}

/// `POST /login`.
pub async fn login_submit(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Session(c): Session,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let banner = Banner::of(c.as_ref(), &headers);
    if !csrf_ok(&headers, &f.csrf) {
        return message(
            &app,
            banner,
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form has expired or was not sent by this site. Please log in again.",
            Some("/login"),
            "Log in",
        );
    }
    let remote = match check_remote(&app, &f.remote) {
        Ok(r) => r,
        Err(e) => return bad_request(&app, banner, &e),
    };
    let return_to = match return_to::check(&app, &f.return_to, audience(remote.as_ref())) {
        Ok(r) => r,
        Err(e) => return bad_request(&app, banner, &e.0),
    };
    let migration_request = if f.migration_request.is_empty() {
        None
    } else {
        let Some(r) = &remote else { return bad_request(&app, banner, "a migration request needs remote") };
        let checked = crate::migration::decode_param(&f.migration_request).and_then(|v| {
            let req: federation_proto::assertion::MigrationRequest = app.federation.verify_from(r, v.clone())?;
            req.check(r, app.accounts.cluster(), app.accounts.clock().unix())
                .map_err(|e| crate::accounts::Error::forbidden("migration_request_refused", e.to_string()))?;
            Ok(v)
        });
        match checked {
            Ok(v) => Some(v),
            Err(e) => return message(&app, banner, StatusCode::FORBIDDEN, "Migration refused", &e.message, None, ""),
        }
    };
    let app2 = app.clone();
    let (login, password, source) = (f.login.clone(), f.password.clone(), peer.ip().to_string());
    let outcome = blocking(move || app2.accounts.login(&login, &password, &source, None, TokenKind::Session)).await;
    let out = match outcome {
        Ok(o) => o,
        Err(e) => {
            if let Some(resp) = redirect_elsewhere(&app, banner.clone(), &f.login, return_to.as_ref(), e.0.code) {
                return resp;
            }
            let status = super::error::status_of(e.0.kind);
            let text = if e.0.kind == ErrorKind::Internal {
                "Something went wrong; please try again.".into()
            } else {
                e.0.message
            };
            let st = FormState {
                return_to: return_to.as_ref().map_or("", Url::as_str),
                remote: &f.remote,
                login: &f.login,
                migration_request: &f.migration_request,
                notice: None,
                banner,
            };
            return login_form(&app, status, &headers, Some(text), st);
        }
    };
    logged_in(&app, &headers, &out, return_to.as_ref(), remote.as_ref(), migration_request).await
}

/// Where a successful page login (password or OpenID Connect) goes: `return_to` with the token
/// (for `remote`: a token salted for it, a signed login assertion and any migration grant), or
/// `/account`; with the session cookie set.
pub async fn logged_in(
    app: &Arc<App>,
    headers: &HeaderMap,
    out: &crate::accounts::users::LoginOutcome,
    return_to: Option<&Url>,
    remote: Option<&ClusterId>,
    migration_request: Option<serde_json::Value>,
) -> Response {
    let session = out.token.to_string();
    if remote.is_none() {
        let (app2, user) = (app.clone(), out.user.clone());
        if let Err(e) = blocking(move || app2.accounts.auto_claim_persons(&user)).await {
            tracing::warn!(error = %e.0.message, "claiming person records at login failed");
        }
    }
    // Work this browser did before logging in is offered first (not on a login for another
    // cluster: that login's answer goes back there).
    let offer = match remote {
        None => anonymous_pages::offer_location(app, headers, return_to),
        Some(_) => None,
    };
    let target = match (offer, return_to, remote) {
        (Some(offer), _, _) => offer,
        (None, None, _) => "/account".to_string(),
        (None, Some(url), Some(r)) => match handoff_params(app, r, out, migration_request) {
            Ok(params) => {
                let refs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
                return_to::with_params(url.clone(), &refs)
            }
            Err(e) => return message(app, None, StatusCode::FORBIDDEN, "Login refused", &e.message, None, ""),
        },
        (None, Some(url), None) => return_to::with_params(url.clone(), &[("api_token", &session)]),
    };
    let mut resp = Redirect::to(&target).into_response();
    let max_age = i64::try_from(app.settings.login.token_lifetime_secs).unwrap_or(i64::MAX);
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &session, Some(max_age)));
    resp
}

/// What a login here for peer `remote` hands back: a token salted for it, a signed login
/// assertion, and the migration grant when the login carried a migration request.
fn handoff_params(
    app: &App,
    remote: &ClusterId,
    out: &crate::accounts::users::LoginOutcome,
    migration_request: Option<serde_json::Value>,
) -> Result<Vec<(&'static str, String)>, crate::accounts::Error> {
    let internal = |e: String| crate::accounts::Error::new(ErrorKind::Internal, "salt", e);
    let salted = out.token.salt_for(remote).map_err(|e| internal(e.to_string()))?;
    let now = app.accounts.clock().unix();
    let assertion = federation_proto::assertion::LoginAssertion {
        issuer: app.accounts.cluster().clone(),
        audience: remote.clone(),
        token_uuid: salted.uuid().clone(),
        user: app.accounts.user_record(&out.user)?,
        issued_at: now,
        expires_at: now + 300,
    };
    let signed = app.federation.sign(assertion)?.to_value();
    let mut params =
        vec![("api_token", salted.to_string()), ("login_assertion", crate::migration::encode_param(&signed))];
    if let Some(req) = migration_request {
        let grant = crate::migration::grant_for_login(&app.accounts, &app.federation, remote, req, &out.user, &salted)?;
        params.push(("migration_grant", crate::migration::encode_param(&grant)));
    }
    Ok(params)
}

/// Query of `GET /login/federated` (the way back from a login at the home cluster).
#[derive(Debug, Deserialize)]
pub struct FederatedQuery {
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    api_token: String,
    #[serde(default)]
    login_assertion: String,
}

/// `GET /login/federated`: checks that this browser began the hand-off (its `hearth_handoff`
/// cookie matches `state`), the home cluster's signed login assertion and token, that the hand-off
/// was not used before, then starts a session here, remembers the home in the `hearth_home` cookie
/// and goes on to `return_to`.
pub async fn login_federated(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<FederatedQuery>,
) -> Response {
    // The way back from a login at home starts a new session: no page here belongs to an old one.
    let return_to = match return_to::check(&app, &q.return_to, Audience::Local) {
        Ok(r) => r,
        Err(e) => return bad_request(&app, None, &e.0),
    };
    let refused = |text: String| {
        let page =
            message(&app, None, StatusCode::FORBIDDEN, "Login refused", &text, Some("/login?local=1"), "Log in here");
        with_cookie(page, end_handoff())
    };
    if !handoff_state_ok(&headers, &q.state) {
        return refused(
            "this sign-in was not started in this browser, or it was already used. Nothing was changed; log in again."
                .into(),
        );
    }
    let Ok(token) = q.api_token.parse::<federation_proto::Token>() else {
        return refused("the home cluster did not send a valid token".into());
    };
    let home = token.uuid().cluster().clone();
    let assertion = crate::migration::decode_param(&q.login_assertion).and_then(|v| {
        let a: federation_proto::assertion::LoginAssertion = app.federation.verify_from(&home, v)?;
        a.check(&token, app.accounts.cluster(), app.accounts.clock().unix())
            .map_err(|e| crate::accounts::Error::forbidden("login_assertion_refused", e.to_string()))?;
        Ok(a)
    });
    if let Err(e) = assertion {
        return refused(format!("the login assertion was refused: {}", e.message));
    }
    // Each hand-off once: its token (a fresh login at home) is remembered for longer than the
    // assertion lives.
    let once = format!("handoff/{}", token.uuid());
    match app.accounts.store().nonce_first_seen(&home, &once, app.accounts.clock().unix()) {
        Ok(true) => {}
        Ok(false) => return refused("this sign-in link was already used; log in again".into()),
        Err(e) => return refused(format!("could not record the sign-in: {e}")),
    }
    // The token is validated (and cached) the usual way, so revocation at home applies here too.
    let caller = match app.remote_caller(&token, &home).await {
        Ok(c) => c,
        Err(e) => return refused(format!("the token was refused: {}", e.message)),
    };
    // A person logged in here through their home claims the records that name the verified
    // email or ORCID iD their home's signed record carries.
    let (app2, user) = (app.clone(), caller.user.clone());
    if let Err(e) = blocking(move || app2.accounts.auto_claim_persons(&user)).await {
        tracing::warn!(error = %e.0.message, "claiming person records at login failed");
    }
    let target = match (anonymous_pages::offer_location(&app, &headers, return_to.as_ref()), return_to) {
        (Some(offer), _) => offer,
        (None, None) => "/account".to_string(),
        (None, Some(url)) => return_to::with_params(url, &[("api_token", &q.api_token)]),
    };
    let mut resp = Redirect::to(&target).into_response();
    let max_age = i64::try_from(app.settings.login.token_lifetime_secs).unwrap_or(i64::MAX);
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &q.api_token, Some(max_age)));
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(HOME_COOKIE, home.as_str(), Some(365 * 24 * 3600)));
    with_cookie(resp, end_handoff())
}

pub(super) fn with_cookie(mut resp: Response, cookie: HeaderValue) -> Response {
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    resp
}

/// How many of the person's collections the account page lists (all are on `/collections`).
const ACCOUNT_COLLECTIONS: usize = 20;

/// `GET /account`.
pub async fn account_page(
    State(app): State<Arc<App>>,
    Session(c): Session,
    headers: HeaderMap,
    Query(q): Query<AccountQuery>,
) -> Response {
    let Some(c) = c else {
        return Redirect::to("/login?return_to=/account").into_response();
    };
    if let Some(moved) = super::migration_pages::moved_page(&app, &c, &headers) {
        return moved;
    }
    let offers = super::migration_pages::offers_for(&app, &c);
    let legacy = app.accounts.legacy_offers(&c).unwrap_or_default();
    let claimed_persons = app.accounts.claimed_persons(&c).unwrap_or_default();
    let claims = app.accounts.my_claims(&c).unwrap_or_default();
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
    let mut collections: Vec<CollectionLine> =
        app.accounts.collections_owned_by(c.uuid()).unwrap_or_default().iter().map(CollectionLine::from).collect();
    let more_collections = collections.len().saturating_sub(ACCOUNT_COLLECTIONS);
    collections.truncate(ACCOUNT_COLLECTIONS);
    let may_have_profiles = !c.is_acting()
        && c.user.managed_by.is_none()
        && !c.user.cached_from_home
        && !c.is_system_root
        && c.uuid() != app.accounts.system_user();
    let profiles = app
        .accounts
        .list_profiles(&c)
        .unwrap_or_default()
        .iter()
        .map(|p| ProfileLine {
            uuid: p.uuid.to_string(),
            name: name_of(p),
            username: p.username.clone().unwrap_or_default(),
        })
        .collect();
    let (csrf, fresh) = csrf_token(&headers);
    let banner = Banner::of(Some(&c), &headers).map(|b| Banner { csrf: Some(csrf.clone()), ..b });
    let u = &c.user;
    let local = u.uuid.cluster() == app.accounts.cluster();
    let provider_name = |id: &str| app.oidc.info(id).map(|p| p.display_name).unwrap_or_else(|_| id.to_string());
    let identities = if local { app.accounts.store().identities_of(&u.uuid).unwrap_or_default() } else { Vec::new() };
    let identities = identities
        .into_iter()
        .map(|i| IdentityLine {
            display_name: provider_name(&i.provider),
            email: i.claims.email.clone().unwrap_or_default(),
            provider: i.provider,
            subject: i.subject,
        })
        .collect();
    let notice = if !q.linked.is_empty() {
        Some(format!("Your {} identity is linked to this account: you can log in with it.", provider_name(&q.linked)))
    } else if !q.unlinked.is_empty() {
        Some(format!("Your {} identity is no longer linked to this account.", provider_name(&q.unlinked)))
    } else {
        None
    };
    let page = AccountPage {
        notice,
        has_password: u.password_hash.is_some(),
        orcid: u.orcid.clone().unwrap_or_default(),
        identities,
        link_providers: if local { oidc_buttons(&app, "", "") } else { Vec::new() },
        cluster: app.settings.cluster.id.as_str(),
        full_name: format!("{} {}", u.first_name, u.last_name).trim().to_string(),
        username: u.username.clone().unwrap_or_default(),
        email: u.email.clone().unwrap_or_default(),
        email_verified: u.email_verified,
        uuid: u.uuid.to_string(),
        home_cluster: u.uuid.cluster().to_string(),
        tokens,
        offers,
        legacy,
        claimed_persons,
        claims,
        collections,
        more_collections,
        profiles,
        managed_by: c.user.managed_by.as_ref().map(|p| match &c.acting_parent {
            Some(parent) if &parent.uuid == p => name_of(parent),
            _ => p.to_string(),
        }),
        may_have_profiles,
        csrf: &csrf,
        banner,
    };
    with_csrf_cookie(html(StatusCode::OK, page.render()), &csrf, fresh)
}

/// Form of `POST /logout`.
#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    return_to: String,
}

async fn end_session(app: &Arc<App>, caller: Option<Caller>, headers: &HeaderMap, return_to: &str) -> Response {
    let target = match return_to::check(app, return_to, Audience::Local) {
        Ok(Some(url)) => url.to_string(),
        Ok(None) => "/login".to_string(),
        Err(e) => return bad_request(app, Banner::of(caller.as_ref(), headers), &e.0),
    };
    if let Some(c) = caller
        && let Some(t) = &c.token
    {
        // A peer's token outlives a logout here: its switch to a profile must not.
        if c.is_acting() {
            let _ = app.accounts.switch_back(&c);
        }
        let _ = app.accounts.revoke_token(&c, &t.uuid);
    }
    let mut resp = Redirect::to(&target).into_response();
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", Some(0)));
    resp
}

/// `POST /logout` (the account page's button).
pub async fn logout_submit(
    State(app): State<Arc<App>>,
    Session(c): Session,
    headers: HeaderMap,
    Form(f): Form<LogoutForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return form_expired(&app, Banner::of(c.as_ref(), &headers));
    }
    end_session(&app, c, &headers, &f.return_to).await
}

/// `GET /logout?return_to=…` (Arvados clients log out this way).
pub async fn logout_get(
    State(app): State<Arc<App>>,
    Session(c): Session,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    end_session(&app, c, &headers, &q.return_to).await
}

/// `GET /`: to the account page.
pub async fn root() -> Redirect {
    Redirect::to("/account")
}

/// The answer to a form whose CSRF field does not match the cookie: nothing was done.
/// A form whose CSRF field does not match its cookie: 403, nothing changed.
pub(crate) fn form_expired(app: &App, banner: Option<Banner>) -> Response {
    message(
        app,
        banner,
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form has expired or was not sent by this site. Nothing was changed.",
        Some("/account"),
        "Back to your account",
    )
}

/// A refusal of the service layer as a page: the status of its kind, and why; nothing changed.
/// A refusal of the service layer as a page, linking back to the account page.
pub(crate) fn not_done(app: &App, banner: Option<Banner>, e: &Error) -> Response {
    not_done_at(app, banner, e, "/account")
}

/// A refusal of the service layer as a page: its status, why (an internal error says only that
/// something went wrong), nothing changed, and a link back to `back`.
pub(crate) fn not_done_at(app: &App, banner: Option<Banner>, e: &Error, back: &str) -> Response {
    let text = if e.kind == ErrorKind::Internal {
        "Something went wrong; nothing was changed. Please try again.".to_string()
    } else {
        format!("{} Nothing was changed.", e.message)
    };
    message(app, banner, super::error::status_of(e.kind), "Not done", &text, Some(back), "Back")
}

/// Form of the account page's "New profile".
#[derive(Debug, Deserialize)]
pub struct NewProfileForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
}

/// `POST /account/profiles`: a new managed profile of the session's account.
pub async fn profile_create_submit(
    State(app): State<Arc<App>>,
    Session(c): Session,
    headers: HeaderMap,
    Form(f): Form<NewProfileForm>,
) -> Response {
    let banner = Banner::of(c.as_ref(), &headers);
    if !csrf_ok(&headers, &f.csrf) {
        return form_expired(&app, banner);
    }
    let Some(c) = c else { return Redirect::to("/login?return_to=/account").into_response() };
    let new = NewProfile { first_name: f.first_name, last_name: f.last_name, username: None };
    let app2 = app.clone();
    match blocking(move || app2.accounts.create_profile(&c, &new)).await {
        Ok(_) => Redirect::to("/account").into_response(),
        Err(e) => not_done(&app, banner, &e.0),
    }
}

/// Form of "Switch to …".
#[derive(Debug, Deserialize)]
pub struct SwitchForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    profile_uuid: String,
}

/// `POST /account/switch`: the session acts as the profile from now on (the same session, no new
/// login, no new cookie), through the one check of who may act as whom.
pub async fn switch_submit(
    State(app): State<Arc<App>>,
    Session(c): Session,
    headers: HeaderMap,
    Form(f): Form<SwitchForm>,
) -> Response {
    let banner = Banner::of(c.as_ref(), &headers);
    if !csrf_ok(&headers, &f.csrf) {
        return form_expired(&app, banner);
    }
    let Some(c) = c else { return Redirect::to("/login?return_to=/account").into_response() };
    let profile: ObjectUuid = match f.profile_uuid.trim().parse() {
        Ok(p) => p,
        Err(_) => {
            let e = Error::bad_request("invalid_act_as", format!("{:?} is not a profile uuid", f.profile_uuid));
            return not_done(&app, banner, &e);
        }
    };
    let app2 = app.clone();
    match blocking(move || app2.accounts.switch_session(&c, &profile)).await {
        Ok(_) => Redirect::to("/account").into_response(),
        Err(e) => not_done(&app, banner, &e.0),
    }
}

/// Form of "Back to …".
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /account/switch_back`: the session acts as its own account again.
pub async fn switch_back_submit(
    State(app): State<Arc<App>>,
    Session(c): Session,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let banner = Banner::of(c.as_ref(), &headers);
    if !csrf_ok(&headers, &f.csrf) {
        return form_expired(&app, banner);
    }
    let Some(c) = c else { return Redirect::to("/login?return_to=/account").into_response() };
    let app2 = app.clone();
    match blocking(move || app2.accounts.switch_back(&c)).await {
        Ok(()) => Redirect::to("/account").into_response(),
        Err(e) => not_done(&app, banner, &e.0),
    }
}
