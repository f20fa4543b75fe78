//! The migration web pages at the HTTP level (DESIGN §4.4): the account page's offer, forged forms
//! refused (403, nothing changed), the confirmation and result pages, the cookies' attributes, the
//! "your account moved" page, dismissing the offer and the "make this cluster my home" start page.

use crate::harness::{Cluster, Federation};
use crate::migration::person_at_two;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

/// A fixed double-submit CSRF value (any 32+ characters equal in cookie and field pass).
pub(crate) const CSRF: &str = "0123456789abcdef0123456789abcdef-test";

pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) location: String,
    pub(crate) set_cookies: Vec<String>,
    pub(crate) body: String,
}

impl Page {
    /// The `Set-Cookie` line for `name`.
    pub(crate) fn cookie(&self, name: &str) -> Option<&str> {
        self.set_cookies.iter().map(String::as_str).find(|c| c.starts_with(&format!("{name}=")))
    }

    /// The value the page sets for cookie `name`.
    pub(crate) fn cookie_value(&self, name: &str) -> Option<String> {
        let line = self.cookie(name)?;
        Some(line.split(';').next()?.split_once('=')?.1.to_string())
    }
}

pub(crate) async fn page(resp: reqwest::Response) -> Page {
    let status = resp.status();
    let location = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let set_cookies =
        resp.headers().get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect();
    Page { status, location, set_cookies, body: resp.text().await.unwrap() }
}

fn url_of(at: &Cluster, path: &str) -> String {
    if path.starts_with("https://") { path.to_string() } else { format!("{}{path}", at.url) }
}

/// `GET` with a `Cookie` header (no redirects are followed).
pub(crate) async fn get(at: &Cluster, path: &str, cookies: &str) -> Page {
    let mut req = at.anon.http().get(url_of(at, path));
    if !cookies.is_empty() {
        req = req.header(COOKIE, cookies);
    }
    page(req.send().await.unwrap()).await
}

/// `POST` of a form with a `Cookie` header.
pub(crate) async fn post(at: &Cluster, path: &str, cookies: &str, form: &[(&str, &str)]) -> Page {
    let mut req = at.anon.http().post(url_of(at, path)).form(form);
    if !cookies.is_empty() {
        req = req.header(COOKIE, cookies);
    }
    page(req.send().await.unwrap()).await
}

/// Asserts the attributes every Hearth cookie carries.
fn assert_cookie_attributes(line: &str) {
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(line.split(';').any(|a| a.trim() == attr), "cookie without {attr}: {line}");
    }
}

/// Logs in through the login form; returns the `Cookie` header of the session (with the CSRF cookie).
pub(crate) async fn form_login(at: &Cluster, login: &str, password: &str) -> String {
    let csrf_cookie = format!("hearth_csrf={CSRF}");
    let p = post(at, "/login", &csrf_cookie, &[("login", login), ("password", password), ("csrf", CSRF)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(p.location, "/account");
    let line = p.cookie("hearth_session").expect("session cookie");
    assert_cookie_attributes(line);
    assert!(line.contains("Max-Age="), "{line}");
    format!("{csrf_cookie}; hearth_session={}", p.cookie_value("hearth_session").unwrap())
}

/// Posts the confirmation form.
async fn confirm(at: &Cluster, path: &str, cookies: &str, grant: &str, api_token: &str, csrf: &str) -> Page {
    post(at, path, cookies, &[("grant", grant), ("api_token", api_token), ("csrf", csrf)]).await
}

/// The value of query parameter `name` of `url`.
pub(crate) fn query_param(url: &str, name: &str) -> String {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q).unwrap();
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v).unwrap_or_else(|| panic!("no {name} in {url}"))
}

#[tokio::test]
async fn forged_forms_are_refused_and_a_merged_session_sees_that_its_account_moved() {
    let fed = Federation::start(&["aaaaa", "bbbbb"]).await;
    let (a, b) = (fed.at("aaaaa"), fed.at("bbbbb"));
    let (home, wrong) = person_at_two(&fed, "aaaaa", "bbbbb", "ada").await;
    let coll = wrong
        .client
        .post("/arvados/v1/collections", &json!({"collection": {"name": "results"}}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let coll_path = format!("/arvados/v1/collections/{}", coll["uuid"].as_str().unwrap());

    // The login page sets the CSRF cookie with the right attributes.
    let login = get(b, "/login", "").await;
    assert_eq!(login.status, StatusCode::OK);
    assert_cookie_attributes(login.cookie("hearth_csrf").expect("csrf cookie"));

    let session = form_login(b, "ada", &wrong.password).await;
    let acct = get(b, "/account", &session).await;
    assert_eq!(acct.status, StatusCode::OK);
    assert!(acct.body.contains("You also have an account at cluster <strong>aaaaa</strong> (ada@example.org"));
    assert!(acct.body.contains(r#"action="/migrations""#));

    // Forged forms: no CSRF field, a wrong one, or no CSRF cookie: 403, nothing changed.
    let no_csrf_cookie = session.replace(&format!("hearth_csrf={CSRF}; "), "");
    for (path, field, value) in [
        ("/migrations", "target_cluster", "aaaaa"),
        ("/migrations/dismiss", "cluster", "aaaaa"),
        ("/migrations/home", "cluster", "aaaaa"),
    ] {
        let p = post(b, path, &session, &[(field, value)]).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path} without csrf");
        let p = post(b, path, &session, &[(field, value), ("csrf", "0123456789abcdef0123456789abcdef-WRONG")]).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path} with a wrong csrf");
        let p = post(b, path, &no_csrf_cookie, &[(field, value), ("csrf", CSRF)]).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path} without the csrf cookie");
        assert!(p.location.is_empty());
    }
    let u = b.root.get(&format!("/arvados/v1/users/{}", wrong.uuid)).await.unwrap().ok().unwrap();
    assert_eq!(u["prefs"], json!({}), "no dismissal stored");
    assert!(get(b, "/account", &session).await.body.contains("You also have an account at cluster"));

    // The real "Move this account" form: to aaaaa's login page with a signed request.
    let p = post(b, "/migrations", &session, &[("target_cluster", "aaaaa"), ("csrf", CSRF)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert!(p.location.starts_with(&format!("{}/login?", a.url)), "{}", p.location);
    let a_login = get(a, &p.location, "").await;
    assert_eq!(a_login.status, StatusCode::OK);
    assert!(a_login.body.contains("for cluster bbbbb"));
    // The person logs in at aaaaa through its form, which sends them back to bbbbb.
    let (remote, return_to, request) = (
        query_param(&p.location, "remote"),
        query_param(&p.location, "return_to"),
        query_param(&p.location, "migration_request"),
    );
    let back = post(
        a,
        "/login",
        &format!("hearth_csrf={CSRF}"),
        &[
            ("login", "ada"),
            ("password", &home.password),
            ("csrf", CSRF),
            ("remote", &remote),
            ("return_to", &return_to),
            ("migration_request", &request),
        ],
    )
    .await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    assert!(back.location.starts_with(&format!("{return_to}?")), "{}", back.location);

    // The confirmation page names what will move.
    let confirm_page = get(b, &back.location, &session).await;
    assert_eq!(confirm_page.status, StatusCode::OK, "{}", confirm_page.body);
    let project_name = format!("Migrated from ada@example.org ({})", wrong.uuid);
    for needle in [wrong.uuid.as_str(), home.uuid.as_str(), project_name.as_str(), "1 object"] {
        assert!(confirm_page.body.contains(needle), "confirmation page lacks {needle}");
    }
    // The same page for a session of another account, or with a bad grant: refused, with why.
    let other = fed.at("bbbbb").user("bob").await;
    let bob = form_login(b, "bob", &other.password).await;
    let p = get(b, &back.location, &bob).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(p.body.contains("Log in as the account being migrated to confirm"), "{}", p.body);
    let forged = back.location.replace("migration_grant=", "migration_grant=x");
    assert_eq!(get(b, &forged, &session).await.status, StatusCode::BAD_REQUEST);

    let confirm_path = format!("{}/confirm", return_to.trim_end_matches("/return"));
    let grant = query_param(&back.location, "migration_grant");
    let salted = query_param(&back.location, "api_token");
    let p = confirm(b, &confirm_path, &session, &grant, &salted, "").await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "confirm without csrf");
    let p = confirm(b, &confirm_path, &session, &grant, &salted, "0123456789abcdef0123456789abcdef-WRONG").await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "confirm with a wrong csrf");
    assert!(p.cookie("hearth_session").is_none());
    let still = b.root.get(&coll_path).await.unwrap().ok().unwrap();
    assert_eq!(still["owner_uuid"], wrong.uuid.as_str(), "nothing moved");
    let u = b.root.get(&format!("/arvados/v1/users/{}", wrong.uuid)).await.unwrap().ok().unwrap();
    assert!(u["redirect_to_user_uuid"].is_null(), "no redirect");

    // Confirmed: the result page, a session as the home account and the home cookie.
    let done = confirm(b, &confirm_path, &session, &grant, &salted, CSRF).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("now redirects to"), "{}", done.body);
    assert!(done.body.contains(&format!(r#"<code id="new-uuid">{}</code>"#, home.uuid)));
    assert!(done.body.contains(&project_name));
    let line = done.cookie("hearth_session").expect("session cookie");
    assert_cookie_attributes(line);
    assert_eq!(done.cookie_value("hearth_session").unwrap(), salted);
    let line = done.cookie("hearth_home").expect("home cookie");
    assert_cookie_attributes(line);
    assert_eq!(done.cookie_value("hearth_home").unwrap(), "aaaaa");
    let moved = b.root.get(&coll_path).await.unwrap().ok().unwrap();
    assert_ne!(moved["owner_uuid"], wrong.uuid.as_str());
    // Confirming again is refused.
    let again = confirm(b, &confirm_path, &session, &grant, &salted, CSRF).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", again.body);

    // The new session is the home account.
    let new_session = format!("hearth_csrf={CSRF}; hearth_session={salted}");
    let acct = get(b, "/account", &new_session).await;
    assert_eq!(acct.status, StatusCode::OK);
    assert!(acct.body.contains(&format!(r#"<code id="user-uuid">{}</code>"#, home.uuid)));
    assert!(!acct.body.contains("Your account moved"));

    // A browser still holding the old session is told the account moved, with a way to log in at home.
    let acct = get(b, "/account", &session).await;
    assert_eq!(acct.status, StatusCode::OK);
    assert!(acct.body.contains("Your account moved"), "{}", acct.body);
    assert!(acct.body.contains(&format!(r#"<code id="old-uuid">{}</code>"#, wrong.uuid)));
    assert!(acct.body.contains(&format!(r#"was merged into <code id="new-uuid">{}</code>"#, home.uuid)));
    assert!(acct.body.contains(&format!(r#"href="{}/login?remote=bbbbb"#, a.url)), "{}", acct.body);
}

#[tokio::test]
async fn the_offer_can_be_dismissed_or_started_from_the_other_cluster() {
    let fed = Federation::start(&["aaaaa", "bbbbb"]).await;
    let (a, b) = (fed.at("aaaaa"), fed.at("bbbbb"));
    let (home, wrong) = person_at_two(&fed, "aaaaa", "bbbbb", "ada").await;
    let session = form_login(b, "ada", &wrong.password).await;

    // "Make this cluster my home" sends the person to the other cluster's start page.
    let p = post(b, "/migrations/home", &session, &[("cluster", "aaaaa"), ("csrf", CSRF)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location, format!("{}/migrations/start?target=bbbbb", a.url));
    // There, without a session: log in first, locally.
    let p2 = get(a, &p.location, "").await;
    assert_eq!(p2.status, StatusCode::SEE_OTHER);
    assert_eq!(p2.location, "/login?local=1&return_to=%2Fmigrations%2Fstart%3Ftarget%3Dbbbbb");
    // Logged in: a confirm-to-start form for moving aaaaa's account into bbbbb's.
    let a_session = form_login(a, "ada", &home.password).await;
    let start = get(a, &p.location, &a_session).await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.body);
    assert!(start.body.contains("Make cluster bbbbb your home"));
    assert!(start.body.contains(&wrong.uuid) && start.body.contains(&home.uuid));
    assert!(start.body.contains(r#"<input type="hidden" name="target_cluster" value="bbbbb">"#));
    let go = post(a, "/migrations", &a_session, &[("target_cluster", "bbbbb"), ("csrf", CSRF)]).await;
    assert_eq!(go.status, StatusCode::SEE_OTHER);
    assert!(go.location.starts_with(&format!("{}/login?remote=aaaaa", b.url)), "{}", go.location);

    // Dismiss hides the offer (kept in the user's prefs).
    let p = post(b, "/migrations/dismiss", &session, &[("cluster", "aaaaa"), ("csrf", CSRF)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(p.location, "/account");
    let acct = get(b, "/account", &session).await;
    assert_eq!(acct.status, StatusCode::OK);
    assert!(!acct.body.contains("You also have an account"));
    let u = b.root.get(&format!("/arvados/v1/users/{}", wrong.uuid)).await.unwrap().ok().unwrap();
    assert_eq!(u["prefs"]["hearth_dismissed_migrations"], json!(["aaaaa"]));
    // Not a peer: 400.
    let p = post(b, "/migrations/dismiss", &session, &[("cluster", "zzzzz"), ("csrf", CSRF)]).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
}
