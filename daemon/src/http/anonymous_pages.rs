//! The pages of anonymous work (DESIGN §4.7): `/collections`, where a browser that is not logged
//! in lists, creates and deletes its own collections (a person who is logged in sees theirs), and
//! the offer a login leads to, `/anonymous/import`, to import those collections into the account
//! or discard them.
//!
//! A browser's anonymous session travels in the `hearth_anon` cookie (HttpOnly, Secure,
//! SameSite=Lax, like every cookie here), set when the browser makes its first collection. Every
//! form is a POST carrying the double-submit CSRF token. After a successful login (the password
//! form or the federated hand-off) [`offer_location`] sends the browser to the offer when its
//! session holds anything; importing or discarding ends the session, clears the cookie and goes on
//! to where the login was going (`return_to`, checked again by [`return_to::check`]).

use super::App;
use super::error::status_of;
use super::pages::{html, message, with_params};
use super::return_to::{self, Audience};
use super::session::{Banner, SESSION_COOKIE, Session, cookies, csrf_ok, csrf_token, set_cookie, with_csrf_cookie};
use crate::accounts::{Caller, Error, ErrorKind};
use crate::store::records::Collection;
use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use federation_proto::{AnonymousToken, ObjectUuid};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use url::Url;

/// Name of the cookie holding the browser's anonymous session token.
pub const ANON_COOKIE: &str = "hearth_anon";

/// The path of the import offer.
pub const OFFER_PATH: &str = "/anonymous/import";

/// One collection on a page.
pub struct CollectionLine {
    /// Its uuid.
    pub uuid: String,
    /// Its name.
    pub name: String,
    /// Its description (empty when none).
    pub description: String,
}

impl From<&Collection> for CollectionLine {
    fn from(c: &Collection) -> Self {
        CollectionLine {
            uuid: c.uuid.to_string(),
            name: c.name.clone(),
            description: c.description.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "collections.html")]
struct CollectionsPage<'a> {
    banner: Option<Banner>,
    cluster: &'a str,
    anonymous: bool,
    lifetime: String,
    pending: usize,
    collections: Vec<CollectionLine>,
    notice: Option<String>,
    error: Option<String>,
    csrf: &'a str,
}

#[derive(Template)]
#[template(path = "anonymous_import.html")]
struct OfferPage<'a> {
    banner: Option<Banner>,
    cluster: &'a str,
    count: usize,
    names: Vec<String>,
    user_uuid: &'a str,
    return_to: &'a str,
    csrf: &'a str,
}

/// The anonymous token in the browser's `hearth_anon` cookie, if it holds one.
fn cookie_token(headers: &HeaderMap) -> Option<AnonymousToken> {
    cookies(headers).get(ANON_COOKIE)?.parse().ok()
}

fn anon_cookie(app: &App, token: &AnonymousToken) -> HeaderValue {
    let age = i64::try_from(app.settings.anonymous.lifetime_secs).unwrap_or(i64::MAX);
    set_cookie(ANON_COOKIE, &token.to_string(), Some(age))
}

fn clear_anon_cookie() -> HeaderValue {
    set_cookie(ANON_COOKIE, "", Some(0))
}

fn with_cookie(mut resp: Response, cookie: HeaderValue) -> Response {
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    resp
}

/// Who is using `/collections`.
enum Visitor {
    /// A logged-in person: their own collections.
    Person(Caller),
    /// A browser with a live anonymous session.
    Anonymous(Caller, AnonymousToken),
    /// Neither; `expired` when the cookie's session has expired, `stale` when a cookie is there at all.
    Nobody { expired: bool, stale: bool },
}

fn visitor(app: &App, session: Option<Caller>, headers: &HeaderMap) -> Visitor {
    if let Some(c) = session {
        return Visitor::Person(c);
    }
    let stale = cookies(headers).contains_key(ANON_COOKIE);
    let Some(token) = cookie_token(headers) else {
        return Visitor::Nobody { expired: false, stale };
    };
    match app.accounts.authenticate_anonymous(&token) {
        Ok(c) => Visitor::Anonymous(c, token),
        Err(e) => Visitor::Nobody { expired: e.code == "anonymous_session_expired", stale },
    }
}

fn lifetime_text(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => plural(s / 86_400, "day"),
        s if s % 3600 == 0 => plural(s / 3600, "hour"),
        s if s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") }
}

/// How many collections the browser's anonymous session holds (0 when it has none or is dead).
fn pending_in_cookie(app: &App, headers: &HeaderMap) -> usize {
    cookie_token(headers).and_then(|t| app.accounts.anonymous_offer(&t).ok()).map_or(0, |o| o.collections.len())
}

/// What a page render needs besides the visitor.
struct Render<'a> {
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
    headers: &'a HeaderMap,
}

fn render(app: &App, caller: Option<&Caller>, r: Render<'_>) -> Response {
    let collections = match caller {
        Some(c) => app.accounts.collections_owned_by(c.uuid()).unwrap_or_default(),
        None => Vec::new(),
    };
    let anonymous = caller.is_none_or(Caller::is_anonymous);
    let pending = if anonymous { 0 } else { pending_in_cookie(app, r.headers) };
    let (csrf, fresh) = csrf_token(r.headers);
    let page = CollectionsPage {
        banner: Banner::of(caller, r.headers),
        cluster: app.settings.cluster.id.as_str(),
        anonymous,
        lifetime: lifetime_text(app.settings.anonymous.lifetime_secs),
        pending,
        collections: collections.iter().map(CollectionLine::from).collect(),
        notice: r.notice,
        error: r.error,
        csrf: &csrf,
    };
    with_csrf_cookie(html(r.status, page.render()), &csrf, fresh)
}

fn form_expired(app: &App, back: &str) -> Response {
    message(
        app,
        None,
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form has expired or was not sent by this site. Nothing was changed; please try again.",
        Some(back),
        "Back",
    )
}

fn refusal_text(e: &Error) -> String {
    if e.kind == ErrorKind::Internal { "Something went wrong; please try again.".into() } else { e.message.clone() }
}

/// `GET /collections`.
pub async fn collections_page(State(app): State<Arc<App>>, Session(s): Session, headers: HeaderMap) -> Response {
    let ok = |notice| Render { status: StatusCode::OK, notice, error: None, headers: &headers };
    match visitor(&app, s, &headers) {
        Visitor::Person(c) => render(&app, Some(&c), ok(None)),
        Visitor::Anonymous(c, token) => with_cookie(render(&app, Some(&c), ok(None)), anon_cookie(&app, &token)),
        Visitor::Nobody { expired, stale } => {
            let notice = expired.then(|| {
                "The collections this browser made earlier were deleted: they were not used for too long.".to_string()
            });
            let page = render(&app, None, ok(notice));
            if stale { with_cookie(page, clear_anon_cookie()) } else { page }
        }
    }
}

/// Form of `POST /collections`.
#[derive(Debug, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

/// `POST /collections`: a new collection for the person, or for the browser's anonymous session
/// (started now when it has none).
pub async fn create_submit(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Session(s): Session,
    headers: HeaderMap,
    Form(f): Form<CreateForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return form_expired(&app, "/collections");
    }
    let refuse = |caller: Option<&Caller>, status, text: String| {
        render(&app, caller, Render { status, notice: None, error: Some(text), headers: &headers })
    };
    let name = f.name.trim();
    let (caller, new_session) = match visitor(&app, s, &headers) {
        Visitor::Person(c) => (c, None),
        Visitor::Anonymous(c, _) => (c, None),
        Visitor::Nobody { .. } if name.is_empty() => {
            return refuse(None, StatusCode::UNPROCESSABLE_ENTITY, "A collection needs a name.".into());
        }
        Visitor::Nobody { .. } => {
            let started = app
                .accounts
                .start_anonymous_session(&peer.ip().to_string())
                .and_then(|n| Ok((app.accounts.authenticate_anonymous(&n.token)?, n.token)));
            match started {
                Ok((c, token)) => (c, Some(token)),
                Err(e) => return refuse(None, status_of(e.kind), refusal_text(&e)),
            }
        }
    };
    let cookie = new_session.as_ref().map(|t| anon_cookie(&app, t));
    let done = |resp: Response| match &cookie {
        Some(c) => with_cookie(resp, c.clone()),
        None => resp,
    };
    if name.is_empty() {
        return done(refuse(Some(&caller), StatusCode::UNPROCESSABLE_ENTITY, "A collection needs a name.".into()));
    }
    let mut attrs = Map::new();
    attrs.insert("name".into(), Value::String(name.to_string()));
    if !f.description.trim().is_empty() {
        attrs.insert("description".into(), Value::String(f.description.trim().to_string()));
    }
    match app.accounts.create_object::<Collection>(&caller, &attrs) {
        Ok(_) => done(Redirect::to("/collections").into_response()),
        Err(e) => done(refuse(Some(&caller), status_of(e.kind), refusal_text(&e))),
    }
}

/// Form of `POST /collections/<uuid>/delete`.
#[derive(Debug, Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /collections/<uuid>/delete`.
pub async fn delete_submit(
    State(app): State<Arc<App>>,
    Session(s): Session,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    Form(f): Form<DeleteForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return form_expired(&app, "/collections");
    }
    let caller = match visitor(&app, s, &headers) {
        Visitor::Person(c) | Visitor::Anonymous(c, _) => c,
        Visitor::Nobody { .. } => return Redirect::to("/collections").into_response(),
    };
    let result = uuid
        .parse::<ObjectUuid>()
        .map_err(|_| Error::not_found("not_found", format!("collection {uuid} not found")))
        .and_then(|u| app.accounts.delete_object::<Collection>(&caller, &u));
    match result {
        Ok(_) => Redirect::to("/collections").into_response(),
        Err(e) => render(
            &app,
            Some(&caller),
            Render { status: status_of(e.kind), notice: None, error: Some(refusal_text(&e)), headers: &headers },
        ),
    }
}

/// Where a successful login should send the browser first: the import offer, when its anonymous
/// session holds collections (`None`: go on as usual). `return_to` is the login's, already checked.
pub fn offer_location(app: &App, headers: &HeaderMap, return_to: Option<&Url>) -> Option<String> {
    (pending_in_cookie(app, headers) > 0).then(|| match return_to {
        Some(url) => with_params(OFFER_PATH, &[("return_to", url.as_str())]),
        None => OFFER_PATH.to_string(),
    })
}

/// Where the browser goes once the offer is answered: `return_to` with the session's token (as
/// the login would have sent it), or the account page.
fn continue_to(return_to: Option<Url>, headers: &HeaderMap) -> String {
    match (return_to, cookies(headers).get(SESSION_COOKIE)) {
        (Some(url), Some(session)) => return_to::with_params(url, &[("api_token", session.as_str())]),
        _ => "/account".to_string(),
    }
}

/// Query of `GET /anonymous/import`.
#[derive(Debug, Deserialize, Default)]
pub struct OfferQuery {
    #[serde(default)]
    return_to: String,
}

/// `GET /anonymous/import?return_to=…`: the offer, with the names of the collections.
pub async fn offer_page(
    State(app): State<Arc<App>>,
    Session(s): Session,
    headers: HeaderMap,
    Query(q): Query<OfferQuery>,
) -> Response {
    let Some(caller) = s else {
        return Redirect::to("/login").into_response();
    };
    let return_to = match return_to::check(&app, &q.return_to, Audience::Local) {
        Ok(r) => r,
        Err(e) => return message(&app, None, StatusCode::BAD_REQUEST, "Bad request", &e.0, None, ""),
    };
    let offer = cookie_token(&headers).and_then(|t| app.accounts.anonymous_offer(&t).ok());
    let Some(offer) = offer.filter(|o| !o.collections.is_empty()) else {
        // Nothing (left) to offer: go on, and forget a dead session.
        let resp = Redirect::to(&continue_to(return_to, &headers)).into_response();
        return if cookies(&headers).contains_key(ANON_COOKIE) { with_cookie(resp, clear_anon_cookie()) } else { resp };
    };
    let (csrf, fresh) = csrf_token(&headers);
    let page = OfferPage {
        banner: None,
        cluster: app.settings.cluster.id.as_str(),
        count: offer.collections.len(),
        names: offer.collections.into_iter().map(|c| c.name).collect(),
        user_uuid: &caller.uuid().to_string(),
        return_to: return_to.as_ref().map_or("", Url::as_str),
        csrf: &csrf,
    };
    with_csrf_cookie(html(StatusCode::OK, page.render()), &csrf, fresh)
}

/// Form of `POST /anonymous/import`.
#[derive(Debug, Deserialize)]
pub struct OfferForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    choice: String,
}

/// `POST /anonymous/import`: `choice=import` moves the collections to the person, `choice=discard`
/// deletes them; both end the anonymous session and clear its cookie, then go on.
pub async fn offer_submit(
    State(app): State<Arc<App>>,
    Session(s): Session,
    headers: HeaderMap,
    Form(f): Form<OfferForm>,
) -> Response {
    if !csrf_ok(&headers, &f.csrf) {
        return form_expired(&app, "/account");
    }
    let Some(caller) = s else {
        return Redirect::to("/login").into_response();
    };
    let return_to = match return_to::check(&app, &f.return_to, Audience::Local) {
        Ok(r) => r,
        Err(e) => return message(&app, None, StatusCode::BAD_REQUEST, "Bad request", &e.0, None, ""),
    };
    let result = match (cookie_token(&headers), f.choice.as_str()) {
        (_, c) if c != "import" && c != "discard" => {
            return message(
                &app,
                None,
                StatusCode::BAD_REQUEST,
                "Bad request",
                "choice must be import or discard",
                None,
                "",
            );
        }
        (None, _) => Err(Error::unauthorized(
            "invalid_anonymous_token",
            "this browser holds no anonymous session (it may have ended already)",
        )),
        (Some(t), "import") => app.accounts.import_anonymous(&caller, &t).map(|_| ()),
        (Some(t), _) => app.accounts.discard_anonymous(&caller, &t).map(|_| ()),
    };
    let next = continue_to(return_to, &headers);
    let resp = match result {
        Ok(()) => Redirect::to(&next).into_response(),
        Err(e) => message(
            &app,
            None,
            status_of(e.kind),
            "Nothing was imported",
            &format!("{} Nothing was changed.", refusal_text(&e)),
            Some(&next),
            "Continue",
        ),
    };
    with_cookie(resp, clear_anon_cookie())
}
