//! The web pages of cross-cluster migration (DESIGN §4.4): the account page's banner and its
//! forms, the confirm-to-start page a peer shows for "make that cluster my home", the confirmation
//! page the target's login sends the person back to, the result, and "your account moved".
//!
//! Every state-changing form is a POST that carries the double-submit CSRF token
//! (`hearth_csrf` cookie = hidden `csrf` field); the service layer is [`crate::migration`].

use super::App;
use super::blocking;
use super::error::status_of;
use super::pages::{html, message, with_params};
use super::session::{
    Banner, HOME_COOKIE, Handoff, SESSION_COOKIE, Session, csrf_ok, csrf_token, set_cookie, with_csrf_cookie,
};
use crate::accounts::{Caller, Error, ErrorKind};
use crate::migration;
use crate::store::records::Group;
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use federation_proto::{ClusterId, ObjectUuid, Token};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The prefs key listing the clusters whose migration offer the person dismissed.
pub const DISMISSED_PREF: &str = "hearth_dismissed_migrations";

/// One offer of the account page's banner: an account at another cluster that a verified email
/// ties to this one.
pub struct Offer {
    /// The other cluster.
    pub cluster: String,
    /// The shared verified email.
    pub email: String,
    /// The account there.
    pub user_uuid: String,
}

#[derive(Template)]
#[template(path = "migration_start.html")]
struct StartPage<'a> {
    cluster: &'a str,
    target: &'a str,
    uuid: &'a str,
    email: &'a str,
    target_uuid: &'a str,
    csrf: &'a str,
    banner: Option<Banner>,
}

#[derive(Template)]
#[template(path = "migration_confirm.html")]
struct ConfirmPage<'a> {
    cluster: &'a str,
    migration_uuid: &'a str,
    old_uuid: &'a str,
    email: &'a str,
    objects: &'a str,
    new_uuid: &'a str,
    new_cluster: &'a str,
    project_name: &'a str,
    grant: &'a str,
    api_token: &'a str,
    csrf: &'a str,
    banner: Option<Banner>,
}

#[derive(Template)]
#[template(path = "migration_done.html")]
struct DonePage<'a> {
    cluster: &'a str,
    old_uuid: &'a str,
    new_uuid: &'a str,
    new_cluster: &'a str,
    project_name: &'a str,
    project_uuid: &'a str,
    banner: Option<Banner>,
}

#[derive(Template)]
#[template(path = "moved.html")]
struct MovedPage<'a> {
    cluster: &'a str,
    old_uuid: Option<&'a str>,
    new_uuid: &'a str,
    new_cluster: &'a str,
    login_url: Option<&'a str>,
    csrf: &'a str,
    banner: Option<Banner>,
}

fn form_expired(app: &App, banner: Option<Banner>) -> Response {
    message(
        app,
        banner,
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form has expired or was not sent by this site. Nothing was changed; please start again.",
        Some("/account"),
        "Back to your account",
    )
}

/// A refusal of the service layer as a page: the status of its kind, and why; nothing changed.
fn refused(app: &App, banner: Option<Banner>, e: &Error) -> Response {
    let text = if e.kind == ErrorKind::Internal {
        "Something went wrong; nothing was changed. Please try again.".to_string()
    } else {
        format!("{} Nothing was changed.", sentence(&e.message))
    };
    message(app, banner, status_of(e.kind), "Migration refused", &text, Some("/account"), "Back to your account")
}

fn sentence(s: &str) -> String {
    let mut out: String = s.trim().to_string();
    if let Some(first) = out.get(..1) {
        out = format!("{}{}", first.to_uppercase(), &out[1..]);
    }
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

fn not_logged_in(return_to: &str) -> Response {
    Redirect::to(&with_params("/login", &[("local", "1"), ("return_to", return_to)])).into_response()
}

fn parse_peer(app: &App, raw: &str) -> Option<ClusterId> {
    raw.parse::<ClusterId>().ok().filter(|c| app.settings.peer(c).is_some())
}

fn dismissed(prefs: &Value) -> Vec<String> {
    crate::accounts::users::pref_strings(prefs, DISMISSED_PREF)
}

/// The banner's offers for the account page: verified-email matches at peers, for a local account,
/// minus the clusters the person dismissed.
pub fn offers_for(app: &App, c: &Caller) -> Vec<Offer> {
    let gone = dismissed(&c.user.prefs);
    migration::candidates_of(&app.accounts, &app.federation, &c.user)
        .unwrap_or_default()
        .into_iter()
        .filter(|o| !gone.iter().any(|d| d == o.cluster_id.as_str()))
        .map(|o| Offer { cluster: o.cluster_id.to_string(), email: o.email, user_uuid: o.user_uuid.to_string() })
        .collect()
}

/// "Your account moved": a session token issued here that now acts as an account of another
/// cluster belongs to a local account merged into that one (a merge with redirect moves the old
/// account's tokens). `None` for every other session.
pub fn moved_page(app: &App, c: &Caller, headers: &HeaderMap) -> Option<Response> {
    let me = app.accounts.cluster();
    let row = c.token.as_ref()?;
    if row.uuid.cluster() != me || c.user.uuid.cluster() == me {
        return None;
    }
    let new = c.user.uuid.clone();
    // Which local account it was: the one whose redirects end at the new account (named only when
    // exactly one does).
    let olds: Vec<ObjectUuid> = app
        .accounts
        .store()
        .users()
        .filter_map(Result::ok)
        .filter(|u| u.uuid.cluster() == me && u.redirect_to_user_uuid.is_some())
        .filter(|u| app.accounts.follow_redirects(u.clone()).is_ok_and(|f| f.uuid == new))
        .map(|u| u.uuid)
        .take(2)
        .collect();
    let old = (olds.len() == 1).then(|| olds[0].to_string());
    let home = new.cluster().clone();
    let moved_from = old.clone().unwrap_or_default();
    let extra: Vec<(&str, &str)> = if moved_from.is_empty() { vec![] } else { vec![("moved_from", &moved_from)] };
    let account = url::Url::parse(&app.settings.cluster.public_url).ok().and_then(|u| u.join("/account").ok());
    let handoff = Handoff::start(app, &home, account.as_ref(), &extra);
    let login_url = handoff.as_ref().map(|h| h.url.clone());
    let (csrf, fresh) = csrf_token(headers);
    let new_text = new.to_string();
    let page = MovedPage {
        cluster: me.as_str(),
        old_uuid: old.as_deref(),
        new_uuid: &new_text,
        new_cluster: home.as_str(),
        login_url: login_url.as_deref(),
        csrf: &csrf,
        banner: Banner::of(Some(c), headers),
    };
    let resp = with_csrf_cookie(html(StatusCode::OK, page.render()), &csrf, fresh);
    Some(match handoff {
        Some(h) => h.attach(resp),
        None => resp,
    })
}

/// Form of `POST /migrations`.
#[derive(Debug, Deserialize)]
pub struct StartForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    target_cluster: String,
}

/// `POST /migrations` (the banner's "Move this account", the start page's button): a pending
/// migration, then 303 to the target's login page, which sends the person back to
/// `/migrations/<uuid>/return`.
pub async fn start_submit(
    State(app): State<Arc<App>>,
    Session(c): Session,
    headers: HeaderMap,
    Form(f): Form<StartForm>,
) -> Response {
    let banner = Banner::of(c.as_ref(), &headers);
    if !csrf_ok(&headers, &f.csrf) {
        return form_expired(&app, banner);
    }
    let Some(c) = c else { return not_logged_in("/account") };
    match migration::start(&app.accounts, &app.federation, &c, &f.target_cluster, &app.settings.cluster.public_url) {
        Ok(v) => match v.get("login_url").and_then(Value::as_str) {
            Some(url) => Redirect::to(url).into_response(),
            None => refused(&app, banner, &Error::new(ErrorKind::Internal, "no_login_url", "no login url")),
        },
        Err(e) => refused(&app, banner, &e),
    }
}

/// Form of the banner's "make this cluster my home" and "Dismiss".
#[derive(Debug, Deserialize)]
pub struct ClusterForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    cluster: String,
}

/// `POST /migrations/home`: "make this cluster my home" — the merge runs where the other account
/// lives, so the person goes to that peer's `/migrations/start?target=<this cluster>`.
pub async fn make_home_submit(
    State(app): State<Arc<App>>,
    Session(c): Session,
    headers: HeaderMap,
    Form(f): Form<ClusterForm>,
) -> Response {
    let banner = Banner::of(c.as_ref(), &headers);
    if !csrf_ok(&headers, &f.csrf) {
        return form_expired(&app, banner);
    }
    let Some(peer) = parse_peer(&app, &f.cluster).and_then(|p| app.settings.peer(&p).map(|s| s.url.clone())) else {
        return message(
            &app,
            banner,
            StatusCode::BAD_REQUEST,
            "Bad request",
            "cluster is not a peer of this cluster",
            None,
            "",
        );
    };
    let url = with_params(
        &format!("{}/migrations/start", peer.trim_end_matches('/')),
        &[("target", app.settings.cluster.id.as_str())],
    );
    Redirect::to(&url).into_response()
}

/// `POST /migrations/dismiss`: hide the banner's offer for a cluster (kept in the user's prefs).
pub async fn dismiss_submit(
    State(app): State<Arc<App>>,
    Session(c): Session,
    headers: HeaderMap,
    Form(f): Form<ClusterForm>,
) -> Response {
    let banner = Banner::of(c.as_ref(), &headers);
    if !csrf_ok(&headers, &f.csrf) {
        return form_expired(&app, banner);
    }
    let Some(c) = c else { return not_logged_in("/account") };
    let Some(peer) = parse_peer(&app, &f.cluster) else {
        return message(
            &app,
            banner,
            StatusCode::BAD_REQUEST,
            "Bad request",
            "cluster is not a peer of this cluster",
            None,
            "",
        );
    };
    let mut prefs = if c.user.prefs.is_object() { c.user.prefs.clone() } else { json!({}) };
    let mut list = dismissed(&prefs);
    if !list.iter().any(|d| d == peer.as_str()) {
        list.push(peer.to_string());
    }
    prefs[DISMISSED_PREF] = json!(list);
    let mut attrs = Map::new();
    attrs.insert("prefs".into(), prefs);
    let app2 = app.clone();
    let uuid = c.uuid().clone();
    match blocking(move || app2.accounts.update_user(&c, &uuid, &attrs)).await {
        Ok(_) => Redirect::to("/account").into_response(),
        Err(e) => refused(&app, banner, &e.0),
    }
}

/// Query of `GET /migrations/start`.
#[derive(Debug, Deserialize)]
pub struct StartQuery {
    #[serde(default)]
    target: String,
}

/// `GET /migrations/start?target=X`: for a logged-in local account here, a confirm-to-start form
/// (moving this account into the person's account at X); otherwise a login here first.
pub async fn start_page(
    State(app): State<Arc<App>>,
    Session(c): Session,
    headers: HeaderMap,
    Query(q): Query<StartQuery>,
) -> Response {
    let banner = Banner::of(c.as_ref(), &headers);
    let Some(target) = parse_peer(&app, &q.target) else {
        let text = "target is not a peer of this cluster";
        return message(&app, banner, StatusCode::BAD_REQUEST, "Bad request", text, None, "");
    };
    let back = with_params("/migrations/start", &[("target", target.as_str())]);
    let me = app.accounts.cluster();
    let c = match c {
        Some(c) if c.user.uuid.cluster() == me => c,
        _ => return not_logged_in(&back),
    };
    let offer = offers_for_all(&app, &c).into_iter().find(|o| o.cluster == target.as_str());
    let Some(offer) = offer else {
        let e = Error::unprocessable(
            "no_candidate",
            format!("no account at {target} shares the verified email of this account ({})", c.user.uuid),
        );
        return refused(&app, banner, &e);
    };
    let (csrf, fresh) = csrf_token(&headers);
    let uuid = c.user.uuid.to_string();
    let page = StartPage {
        cluster: me.as_str(),
        target: target.as_str(),
        uuid: &uuid,
        email: &offer.email,
        target_uuid: &offer.user_uuid,
        csrf: &csrf,
        banner,
    };
    with_csrf_cookie(html(StatusCode::OK, page.render()), &csrf, fresh)
}

/// Every offer, dismissed or not (the start page is an explicit request).
fn offers_for_all(app: &App, c: &Caller) -> Vec<Offer> {
    migration::candidates_of(&app.accounts, &app.federation, &c.user)
        .unwrap_or_default()
        .into_iter()
        .map(|o| Offer { cluster: o.cluster_id.to_string(), email: o.email, user_uuid: o.user_uuid.to_string() })
        .collect()
}

/// Query of `GET /migrations/<uuid>/return` (what the target's login hands back).
#[derive(Debug, Deserialize)]
pub struct ReturnQuery {
    #[serde(default)]
    api_token: String,
    #[serde(default)]
    migration_grant: String,
}

fn parse_token(raw: &str) -> Result<Token, Error> {
    raw.parse::<Token>().map_err(|_| {
        Error::new(ErrorKind::BadRequest, "invalid_token", "the target cluster did not send a valid token")
    })
}

fn parse_migration(raw: &str) -> Result<ObjectUuid, Error> {
    raw.parse().map_err(|_| Error::not_found("not_found", format!("migration {raw} not found")))
}

fn objects_text(n: usize) -> String {
    if n == 1 { "1 object".into() } else { format!("{n} objects") }
}

/// `GET /migrations/<uuid>/return?api_token&login_assertion&migration_grant`: checks everything
/// (as the old account here) and shows exactly what confirming will do; changes nothing.
pub async fn return_page(
    State(app): State<Arc<App>>,
    Session(c): Session,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(q): Query<ReturnQuery>,
) -> Response {
    let banner = Banner::of(c.as_ref(), &headers);
    let Some(c) = c else {
        let e = Error::unauthorized(
            "not_logged_in",
            "your session here has ended: log in with the account being moved and start again",
        );
        return refused(&app, banner, &e);
    };
    let checked = (|| {
        let uuid = parse_migration(&raw)?;
        let token = parse_token(&q.api_token)?;
        let grant = migration::decode_param(&q.migration_grant)?;
        migration::preview(&app.accounts, &app.federation, &c, &uuid, grant, Some(&token))
    })();
    let p = match checked {
        Ok(p) => p,
        Err(e) => return refused(&app, banner, &e),
    };
    let (csrf, fresh) = csrf_token(&headers);
    let (muuid, old_uuid, new_uuid) =
        (p.migration_uuid.to_string(), p.old_user.uuid.to_string(), p.new_user.uuid.to_string());
    let page = ConfirmPage {
        cluster: app.settings.cluster.id.as_str(),
        migration_uuid: &muuid,
        old_uuid: &old_uuid,
        email: p.old_user.email.as_deref().unwrap_or(""),
        objects: &objects_text(p.owned_objects),
        new_uuid: &new_uuid,
        new_cluster: p.new_user.uuid.cluster().as_str(),
        project_name: &p.project_name,
        grant: &q.migration_grant,
        api_token: &q.api_token,
        csrf: &csrf,
        banner,
    };
    let mut resp = with_csrf_cookie(html(StatusCode::OK, page.render()), &csrf, fresh);
    // The page carries a token: keep it out of caches and referrers.
    resp.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(header::REFERRER_POLICY, axum::http::HeaderValue::from_static("no-referrer"));
    resp
}

/// Form of `POST /migrations/<uuid>/confirm`.
#[derive(Debug, Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    grant: String,
    #[serde(default)]
    api_token: String,
}

/// `POST /migrations/<uuid>/confirm`: the merge (all or nothing), the result page, and a session
/// as the home account (the token the target salted for us) with the `hearth_home` cookie.
pub async fn confirm_submit(
    State(app): State<Arc<App>>,
    Session(c): Session,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Form(f): Form<ConfirmForm>,
) -> Response {
    let banner = Banner::of(c.as_ref(), &headers);
    if !csrf_ok(&headers, &f.csrf) {
        return form_expired(&app, banner);
    }
    let Some(c) = c else {
        let e = Error::unauthorized(
            "not_logged_in",
            "your session here has ended: log in with the account being moved and start again",
        );
        return refused(&app, banner, &e);
    };
    let parsed =
        (|| Ok::<_, Error>((parse_migration(&raw)?, parse_token(&f.api_token)?, migration::decode_param(&f.grant)?)))();
    let (uuid, token, grant) = match parsed {
        Ok(v) => v,
        Err(e) => return refused(&app, banner, &e),
    };
    // The token becomes the session below: check it at its home first (the grant binds its uuid).
    let home = token.uuid().cluster().clone();
    if let Err(e) = app.remote_caller(&token, &home).await {
        let e = Error::new(e.kind, e.code, format!("the target cluster's token was refused: {}", e.message));
        return refused(&app, banner, &e);
    }
    let app2 = app.clone();
    let token2 = token.clone();
    let out =
        blocking(move || migration::confirm(&app2.accounts, &app2.federation, &c, &uuid, grant, Some(&token2))).await;
    let out = match out {
        Ok(v) => v,
        Err(e) => return refused(&app, banner, &e.0),
    };
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let old_uuid = s(&out["old_user"]["uuid"]);
    let new_uuid = s(&out["new_user"]["uuid"]);
    let project_uuid = s(&out["new_owner_uuid"]);
    let project_name = project_uuid
        .parse::<ObjectUuid>()
        .ok()
        .and_then(|p| app.accounts.store().object::<Group>(&p).ok().flatten())
        .map(|g| g.name)
        .unwrap_or_default();
    let new_cluster = new_uuid.parse::<ObjectUuid>().map(|u| u.cluster().to_string()).unwrap_or_default();
    let page = DonePage {
        cluster: app.settings.cluster.id.as_str(),
        old_uuid: &old_uuid,
        new_uuid: &new_uuid,
        new_cluster: &new_cluster,
        project_name: &project_name,
        project_uuid: &project_uuid,
        // The session is now the home account's, never a profile's.
        banner: None,
    };
    let mut resp = html(StatusCode::OK, page.render());
    let max_age = i64::try_from(app.settings.login.token_lifetime_secs).unwrap_or(i64::MAX);
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &f.api_token, Some(max_age)));
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(HOME_COOKIE, home.as_str(), Some(365 * 24 * 3600)));
    resp.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    resp
}
