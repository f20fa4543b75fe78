//! Attacks on the browser pages from the security review (issue 10), on real daemons: `return_to`
//! values a browser reads as another host (on every page that takes one), a token salted for one
//! peer sent to another, a federated hand-off replayed into another browser or twice, a scoped
//! token used as a session cookie, and the headers that keep pages out of frames.

use crate::harness::{Cluster, Federation, TestUser, single};
use crate::pages::{CSRF, Page, form_login, get, post, query_param};
use reqwest::StatusCode;

/// `return_to` values that a browser (which drops tabs and newlines and reads `\` as `/`) sends
/// somewhere other than the cluster, or that are not https URLs at all. `HOST` is replaced by the
/// cluster's own `host:port`.
const ATTACKS: &[&str] = &[
    "/\t/evil.example/x",
    "/\t\\evil.example/x",
    "/\t\t/evil.example/x",
    "/\n/evil.example/x",
    "/\r/evil.example/x",
    "/\r\n/evil.example/x",
    "/\x0b/evil.example/x",
    "/\x0c/evil.example/x",
    "/\u{0}/evil.example/x",
    "\t//evil.example/x",
    "/\\evil.example/x",
    "\\/evil.example/x",
    "\\\\evil.example/x",
    " //evil.example/x",
    "//evil.example/x",
    "///evil.example/x",
    "https://evil.example/x",
    "HTTPS://EVIL.EXAMPLE/x",
    "https://HOST@evil.example/x",
    "https://evil.example\\@HOST/x",
    "https://HOST.evil.example/x",
    "https://user:pw@HOST/x",
    "http://HOST/x",
    "javascript:alert(1)",
    "data:text/html,hi",
];

fn attacks(at: &Cluster) -> Vec<String> {
    let host = at.url.trim_start_matches("https://");
    ATTACKS.iter().map(|a| a.replace("HOST", host)).collect()
}

fn q(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap()
}

async fn token_count(u: &TestUser) -> u64 {
    let list = u.client.get("/arvados/v1/api_client_authorizations").await.unwrap().ok().unwrap();
    list["items_available"].as_u64().unwrap()
}

/// Nothing was issued: a 400, no session cookie, no token in the answer.
fn refused(p: &Page, what: &str) {
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{what}: {}", p.body);
    assert!(p.cookie("hearth_session").is_none(), "{what}: a session cookie was set");
    assert!(!p.location.contains("api_token") && !p.body.contains("v2/"), "{what}: a token left");
}

#[tokio::test]
async fn return_to_that_a_browser_reads_as_another_host_is_refused_everywhere_and_issues_nothing() {
    let fed = Federation::start(&["aaaaa", "bbbbb"]).await;
    let (a, b) = (fed.at("aaaaa"), fed.at("bbbbb"));
    let alice = a.user("alice").await;
    let session = form_login(a, "alice", &alice.password).await;
    let before = token_count(&alice).await;
    let csrf = format!("hearth_csrf={CSRF}");
    for bad in attacks(a) {
        let form = [("login", "alice"), ("password", alice.password.as_str()), ("return_to", &bad), ("csrf", CSRF)];
        refused(&post(a, "/login", &csrf, &form).await, &format!("POST /login return_to={bad:?}"));
        let form = [
            ("login", "alice"),
            ("password", alice.password.as_str()),
            ("return_to", &bad),
            ("remote", "bbbbb"),
            ("csrf", CSRF),
        ];
        refused(&post(a, "/login", &csrf, &form).await, &format!("POST /login remote=bbbbb return_to={bad:?}"));
        refused(&get(a, &format!("/login?{}", q(&[("return_to", &bad)])), "").await, &format!("GET /login {bad:?}"));
        refused(
            &get(b, &format!("/login/federated?{}", q(&[("return_to", &bad)])), "").await,
            &format!("GET /login/federated {bad:?}"),
        );
        refused(&get(a, &format!("/logout?{}", q(&[("return_to", &bad)])), &session).await, &format!("logout {bad:?}"));
    }
    assert_eq!(token_count(&alice).await, before, "no refused login issued a token");
    // A refused logout ended nothing: the session still opens the account page.
    let acct = get(a, "/account", &session).await;
    assert_eq!(acct.status, StatusCode::OK);
    assert!(acct.body.contains(&alice.uuid));
    // Our own places are accepted, and the Location is the parsed, absolute URL.
    for (raw, want) in [
        ("/account", format!("{}/account?api_token=", a.url)),
        ("/x/../done?y=1#top", format!("{}/done?y=1&api_token=", a.url)),
        (
            &*format!("{}/done", a.url.to_uppercase().replace("HTTPS://", "https://")),
            format!("{}/done?api_token=", a.url),
        ),
    ] {
        let form = [("login", "alice"), ("password", alice.password.as_str()), ("return_to", raw), ("csrf", CSRF)];
        let p = post(a, "/login", &csrf, &form).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{raw}: {}", p.body);
        assert!(p.location.starts_with(&want), "{raw} went to {}", p.location);
    }
}

#[tokio::test]
async fn a_token_salted_for_one_peer_goes_only_to_that_peers_origin() {
    let fed = Federation::start(&["aaaaa", "bbbbb", "ccccc"]).await;
    let (a, b, c) = (fed.at("aaaaa"), fed.at("bbbbb"), fed.at("ccccc"));
    let kim = a.user("kim").await;
    let before = token_count(&kim).await;
    let csrf = format!("hearth_csrf={CSRF}");
    for bad in [
        format!("{}/login/federated", c.url),
        format!("{}/account", a.url),
        "/account".to_string(),
        format!("{}.evil.example/login/federated", b.url),
    ] {
        let form = [
            ("login", "kim"),
            ("password", kim.password.as_str()),
            ("return_to", &bad),
            ("remote", "bbbbb"),
            ("csrf", CSRF),
        ];
        let p = post(a, "/login", &csrf, &form).await;
        refused(&p, &format!("remote=bbbbb return_to={bad}"));
        assert!(p.body.contains("return_to"), "the refusal names the field: {bad} {}", p.body);
        let p = get(a, &format!("/login?{}", q(&[("remote", "bbbbb"), ("return_to", &bad)])), "").await;
        refused(&p, &format!("GET /login remote=bbbbb return_to={bad}"));
    }
    assert_eq!(token_count(&kim).await, before);
    // B's own origin gets B's salted token.
    let good = format!("{}/login/federated?return_to=%2Faccount", b.url);
    let form = [
        ("login", "kim"),
        ("password", kim.password.as_str()),
        ("return_to", &good),
        ("remote", "bbbbb"),
        ("csrf", CSRF),
    ];
    let p = post(a, "/login", &csrf, &form).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert!(p.location.starts_with(&format!("{}/login/federated?", b.url)), "{}", p.location);
    assert_eq!(query_param(&p.location, "api_token").split('/').nth(2).unwrap().len(), 40, "salted for B");
}

/// Starts a federated login at `b` for home `a` in one browser, logs in at `a`; returns that
/// browser's hand-off cookie and the URL `a` sends it back to.
async fn hand_off(a: &Cluster, b: &Cluster, user: &TestUser) -> (String, String) {
    let start = get(b, "/login?home=aaaaa&return_to=%2Faccount", "").await;
    assert_eq!(start.status, StatusCode::SEE_OTHER);
    let line = start.cookie("hearth_handoff").expect("the hand-off cookie");
    assert!(line.contains("HttpOnly") && line.contains("Secure") && line.contains("Max-Age="), "{line}");
    let cookie = format!("hearth_handoff={}", start.cookie_value("hearth_handoff").unwrap());
    assert!(start.location.starts_with(&format!("{}/login?", a.url)), "{}", start.location);
    let back = query_param(&start.location, "return_to");
    assert!(back.contains("state="), "{back}");
    let form = [
        ("login", user.username.as_str()),
        ("password", user.password.as_str()),
        ("return_to", &back),
        ("remote", "bbbbb"),
        ("csrf", CSRF),
    ];
    let p = post(a, "/login", &format!("hearth_csrf={CSRF}"), &form).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert!(p.location.starts_with(&format!("{}/login/federated?", b.url)), "{}", p.location);
    (cookie, p.location)
}

#[tokio::test]
async fn a_federated_hand_off_works_once_and_only_in_the_browser_that_began_it() {
    let fed = Federation::start(&["aaaaa", "bbbbb"]).await;
    let (a, b) = (fed.at("aaaaa"), fed.at("bbbbb"));
    let mallory = a.user("mallory").await;
    let (cookie, back) = hand_off(a, b, &mallory).await;
    let no_session = |p: &Page, what: &str| {
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{what}: {}", p.body);
        assert!(p.cookie("hearth_session").is_none(), "{what}: a session was started");
    };
    // The victim's browser: no hand-off of its own, or a different one.
    no_session(&get(b, &back, "").await, "no hand-off cookie");
    let (victims, _) = hand_off(a, b, &a.user("victor").await).await;
    no_session(&get(b, &back, &victims).await, "another browser's hand-off");
    // The state cannot be swapped for another one, nor left out.
    let state = query_param(&back, "state");
    no_session(&get(b, &back.replace(&state, &"0".repeat(64)), &cookie).await, "another state");
    no_session(&get(b, &back.replace(&format!("state={state}"), "state="), &cookie).await, "no state");
    // The browser that began it logs in, once; the cookie is spent.
    let ok = get(b, &back, &cookie).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert!(ok.cookie("hearth_session").is_some());
    assert!(ok.cookie("hearth_handoff").is_some_and(|l| l.contains("Max-Age=0")), "{:?}", ok.set_cookies);
    let again = get(b, &back, &cookie).await;
    no_session(&again, "the same hand-off again");
    assert!(again.body.contains("already used"), "{}", again.body);
}

#[tokio::test]
async fn a_scoped_token_is_not_a_session() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let token = alice.scoped_token(&["GET /arvados/v1/users/current"]).await;
    let cookie = format!("hearth_csrf={CSRF}; hearth_session={token}");
    let acct = get(c, "/account", &cookie).await;
    assert!(acct.status.is_redirection() && acct.location.starts_with("/login"), "{} {}", acct.status, acct.location);
    assert!(!acct.body.contains(&alice.uuid));
    // Logging out with it revokes nothing; the token still does what its scope allows.
    let out = get(c, "/logout", &cookie).await;
    assert!(out.status.is_redirection());
    let me = c.client(&token).get("/arvados/v1/users/current").await.unwrap();
    assert_eq!(me.status, StatusCode::OK, "the scoped token was revoked by a page");
    // The same user's ["all"] login token is a session.
    let all = get(c, "/account", &format!("hearth_session={}", alice.token)).await;
    assert_eq!(all.status, StatusCode::OK);
    assert!(all.body.contains(&alice.uuid));
}

#[tokio::test]
async fn pages_cannot_be_framed_and_answers_keep_to_https() {
    let fed = single().await;
    let c = &fed.clusters[0];
    for path in ["/login", "/account", "/arvados/v1/users/current", "/healthz"] {
        let r = c.anon.http().get(format!("{}{path}", c.url)).send().await.unwrap();
        let h = r.headers();
        let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert!(header("content-security-policy").contains("frame-ancestors 'none'"), "{path}");
        assert!(header("strict-transport-security").starts_with("max-age="), "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
    }
}
