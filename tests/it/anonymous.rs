//! Anonymous work imported at login (DESIGN §4.7, seed 000), end to end on real daemons: an
//! anonymous token works on its own collections and nowhere else, its limits, the offer at login,
//! the import and the discard and their refusals, the `/collections` page and the offer page over
//! HTTP, and the whole story in a real browser.

use crate::browser::{browser, click, fill, shot, start_chromedriver, text, wait_for_text};
use crate::harness::{Cluster, Federation, single};
use crate::pages::{CSRF, get, post};
use hearth::client::Client;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Instant;

/// A new anonymous session: (token, client with it).
async fn anonymous(c: &Cluster) -> (String, Client) {
    let r = c.anon.post("/hearth/v1/anonymous", &json!({})).await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let token = r.body["anonymous_token"].as_str().expect("anonymous_token").to_string();
    assert!(token.starts_with(&format!("v2/{}-an0ns-", c.id)), "{token}");
    assert!(r.body["expires_at"].is_string(), "{}", r.body);
    (token.clone(), c.client(&token))
}

async fn create_collection(client: &Client, attrs: Value) -> hearth::client::Answer {
    client.post("/arvados/v1/collections", &json!({"collection": attrs})).await.unwrap()
}

async fn made(client: &Client, name: &str) -> String {
    let r = create_collection(client, json!({"name": name})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["uuid"].as_str().unwrap().to_string()
}

fn session_uuid(token: &str) -> &str {
    token.split('/').nth(1).unwrap()
}

fn uuids(list: &Value) -> Vec<String> {
    let mut v: Vec<String> =
        list["items"].as_array().unwrap().iter().map(|i| i["uuid"].as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Where each of `uuids` is now, as root sees it (owner uuid, or "gone").
async fn owners(c: &Cluster, uuids: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for u in uuids {
        let r = c.root.get(&format!("/arvados/v1/collections/{u}")).await.unwrap();
        out.push(if r.status == StatusCode::NOT_FOUND {
            "gone".to_string()
        } else {
            r.body["owner_uuid"].as_str().unwrap().to_string()
        });
    }
    out
}

fn assert_refusal(r: &hearth::client::Answer, status: StatusCode, code: &str, says: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert_eq!(r.code(), code, "{what}: {}", r.body);
    let msg = r.body["errors"][0].as_str().unwrap_or_default();
    assert!(msg.contains(says), "{what}: message {msg:?} should say {says:?}");
    assert!(r.body["error_token"].is_string(), "{what}: not an Arvados error body: {}", r.body);
}

#[tokio::test]
async fn an_anonymous_token_works_on_its_own_collections_only() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let (a_token, a) = anonymous(c).await;
    let (_, b) = anonymous(c).await;

    // Create, with the owner forced to the session.
    let r = create_collection(&a, json!({"name": "draft", "description": "first try"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["owner_uuid"], session_uuid(&a_token));
    let a_coll = r.body["uuid"].as_str().unwrap().to_string();
    let b_coll = made(&b, "b's").await;
    let alice_coll = made(&alice.client, "alice's").await;

    // Get, update, list: own only.
    let r = a.get(&format!("/arvados/v1/collections/{a_coll}")).await.unwrap();
    assert_eq!((r.status, r.body["name"].as_str()), (StatusCode::OK, Some("draft")));
    let r = a.put(&format!("/arvados/v1/collections/{a_coll}"), &json!({"collection": {"name": "second try"}})).await;
    assert_eq!(r.unwrap().ok().unwrap()["name"], "second try");
    assert_eq!(uuids(&a.get("/arvados/v1/collections").await.unwrap().ok().unwrap()), vec![a_coll.clone()]);
    assert_eq!(uuids(&b.get("/arvados/v1/collections").await.unwrap().ok().unwrap()), vec![b_coll.clone()]);
    let filtered = a.get("/arvados/v1/collections?filters=%5B%5B%22name%22%2C%22like%22%2C%22%25%22%5D%5D").await;
    assert_eq!(uuids(&filtered.unwrap().ok().unwrap()), vec![a_coll.clone()]);

    // Another session's or a user's collection: 404 to get, update and delete; nothing changes.
    for other in [&b_coll, &alice_coll] {
        let path = format!("/arvados/v1/collections/{other}");
        assert_eq!(a.get(&path).await.unwrap().status, StatusCode::NOT_FOUND);
        let r = a.put(&path, &json!({"collection": {"name": "mine now"}})).await.unwrap();
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
        assert_eq!(a.delete(&path).await.unwrap().status, StatusCode::NOT_FOUND);
    }
    // Nor does a user see an anonymous session's collection.
    let r = alice.client.get(&format!("/arvados/v1/collections/{a_coll}")).await.unwrap();
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        uuids(&alice.client.get("/arvados/v1/collections").await.unwrap().ok().unwrap()),
        vec![alice_coll.clone()]
    );

    // A permission link naming the session grants it nothing.
    let r = alice
        .client
        .post(
            "/arvados/v1/links",
            &json!({"link": {"link_class": "permission", "name": "can_read", "head_uuid": alice_coll, "tail_uuid": session_uuid(&a_token)}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(a.get(&format!("/arvados/v1/collections/{alice_coll}")).await.unwrap().status, StatusCode::NOT_FOUND);
    assert_eq!(uuids(&a.get("/arvados/v1/collections").await.unwrap().ok().unwrap()), vec![a_coll.clone()]);

    // Someone else as owner: refused, on create and on update, and nothing is made or moved.
    for owner in [alice.uuid.as_str(), session_uuid(&anonymous(c).await.0), "zzzzz-j7d0g-000000000000000"] {
        let r = create_collection(&a, json!({"name": "planted", "owner_uuid": owner})).await;
        assert_refusal(&r, StatusCode::FORBIDDEN, "anonymous_owner", "can only own its own collections", owner);
        let r = a
            .put(&format!("/arvados/v1/collections/{a_coll}"), &json!({"collection": {"owner_uuid": owner}}))
            .await
            .unwrap();
        assert_refusal(&r, StatusCode::FORBIDDEN, "anonymous_owner", "can only own its own collections", owner);
    }
    assert_eq!(uuids(&a.get("/arvados/v1/collections").await.unwrap().ok().unwrap()), vec![a_coll.clone()]);
    assert_eq!(owners(c, std::slice::from_ref(&a_coll)).await, vec![session_uuid(&a_token).to_string()]);
    // Nor can a user plant a collection in an anonymous session.
    let r = create_collection(&alice.client, json!({"name": "gift", "owner_uuid": session_uuid(&a_token)})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);

    // Delete its own.
    assert_eq!(a.delete(&format!("/arvados/v1/collections/{a_coll}")).await.unwrap().status, StatusCode::OK);
    assert!(uuids(&a.get("/arvados/v1/collections").await.unwrap().ok().unwrap()).is_empty());
}

#[tokio::test]
async fn an_anonymous_token_is_refused_everywhere_but_collections() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let (token, a) = anonymous(c).await;
    let coll = made(&a, "mine").await;
    let says = "an anonymous session can only use collections";
    let calls: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/arvados/v1/users/current".into(), None),
        ("GET", "/arvados/v1/users".into(), None),
        ("GET", format!("/arvados/v1/users/{}", alice.uuid), None),
        ("GET", "/arvados/v1/groups".into(), None),
        ("POST", "/arvados/v1/groups".into(), Some(json!({"group": {"name": "p"}}))),
        ("GET", "/arvados/v1/links".into(), None),
        (
            "POST",
            "/arvados/v1/links".into(),
            Some(json!({"link": {"link_class": "tag", "name": "t", "head_uuid": coll}})),
        ),
        ("GET", "/arvados/v1/authorized_keys".into(), None),
        ("GET", "/arvados/v1/api_client_authorizations".into(), None),
        ("GET", "/arvados/v1/api_client_authorizations/current".into(), None),
        ("POST", "/arvados/v1/api_client_authorizations".into(), Some(json!({}))),
        ("GET", "/arvados/v1/logs".into(), None),
        ("GET", "/hearth/v1/migration_candidates".into(), None),
        ("POST", "/hearth/v1/anonymous_imports".into(), Some(json!({"anonymous_token": token}))),
        ("POST", format!("/hearth/v1/users/{}/password", alice.uuid), Some(json!({"password": "x1234567890"}))),
        ("GET", "/hearth/v1/admin/peers".into(), None),
        ("GET", "/account".into(), None),
        ("GET", "/arvados/v1/collections/../users/current".into(), None),
    ];
    for (method, path, body) in &calls {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = a.call(m, path, body.as_ref()).await.unwrap();
        assert_refusal(&r, StatusCode::UNAUTHORIZED, "anonymous_collections_only", says, &format!("{method} {path}"));
    }
    // The api_token query parameter is fenced the same way (here on a page).
    let q = serde_urlencoded::to_string([("api_token", token.as_str())]).unwrap();
    let r = c.anon.get(&format!("/account?{q}")).await.unwrap();
    assert_refusal(&r, StatusCode::UNAUTHORIZED, "anonymous_collections_only", says, "/account?api_token");
    // And it is never a page session.
    let p = get(c, "/account", &format!("hearth_session={token}")).await;
    assert_eq!((p.status, p.location.as_str()), (StatusCode::SEE_OTHER, "/login?return_to=/account"));
    // The discovery document stays readable (the Arvados SDK sends its token for it).
    assert_eq!(a.get("/discovery/v1/apis/arvados/v1/rest").await.unwrap().status, StatusCode::OK);
    // Nothing was created meanwhile.
    assert!(uuids(&alice.client.get("/arvados/v1/groups").await.unwrap().ok().unwrap()).is_empty());
    assert_eq!(uuids(&a.get("/arvados/v1/collections").await.unwrap().ok().unwrap()), vec![coll]);
}

#[tokio::test]
async fn an_anonymous_session_holds_at_most_max_collections() {
    let fed = Federation::start_with(&["zzzzz"], "[anonymous]\nmax_collections = 2\n").await;
    let c = &fed.clusters[0];
    let (_, a) = anonymous(c).await;
    let first = [made(&a, "one").await, made(&a, "two").await];
    let r = create_collection(&a, json!({"name": "three"})).await;
    assert_refusal(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "anonymous_collection_limit",
        "anonymous.max_collections",
        "3rd",
    );
    assert!(r.body["errors"][0].as_str().unwrap().contains("at most 2 collections"), "{}", r.body);
    assert_eq!(uuids(&a.get("/arvados/v1/collections").await.unwrap().ok().unwrap()), sorted(first.to_vec()));
    // Room again after a delete; another session has its own allowance.
    a.delete(&format!("/arvados/v1/collections/{}", first[0])).await.unwrap().ok().unwrap();
    made(&a, "three").await;
    let (_, b) = anonymous(c).await;
    made(&b, "one").await;
    made(&b, "two").await;
}

#[tokio::test]
async fn new_anonymous_sessions_are_limited_per_source_address() {
    let fed = Federation::start_with(&["zzzzz"], "[anonymous]\nmax_sessions_per_source_per_hour = 3\n").await;
    let c = &fed.clusters[0];
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(anonymous(c).await.0);
    }
    let r = c.anon.post("/hearth/v1/anonymous", &json!({})).await.unwrap();
    assert_refusal(
        &r,
        StatusCode::TOO_MANY_REQUESTS,
        "anonymous_session_limit",
        "anonymous.max_sessions_per_source_per_hour",
        "4th session",
    );
    assert!(r.body["errors"][0].as_str().unwrap().contains("at most 3 an hour"), "{}", r.body);
    assert!(r.body.get("anonymous_token").is_none());
    // The sessions already started still work.
    for t in &tokens {
        made(&c.client(t), "still fine").await;
    }
}

#[tokio::test]
async fn a_json_login_offers_the_anonymous_collections_and_the_import_moves_them() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let (token, a) = anonymous(c).await;
    let colls = vec![made(&a, "reads").await, made(&a, "notes").await];

    let body = json!({"login": "alice", "password": alice.password, "anonymous_token": token});
    let login = c.anon.post("/hearth/v1/login", &body).await.unwrap().ok().unwrap();
    let offer = &login["anonymous_offer"];
    assert_eq!(offer["anonymous_session_uuid"], session_uuid(&token));
    let mut names: Vec<&str> =
        offer["collections"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["notes", "reads"]);
    let offered: Vec<String> =
        offer["collections"].as_array().unwrap().iter().map(|c| c["uuid"].as_str().unwrap().to_string()).collect();
    assert_eq!(sorted(offered), sorted(colls.clone()));
    // The offer changed nothing.
    assert_eq!(owners(c, &colls).await, vec![session_uuid(&token).to_string(); 2]);

    let user = c.client(login["api_token"].as_str().unwrap());
    let out =
        user.post("/hearth/v1/anonymous_imports", &json!({"anonymous_token": token})).await.unwrap().ok().unwrap();
    assert_eq!(out["owner_uuid"], alice.uuid.as_str());
    let moved: Vec<String> = out["moved"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(sorted(moved), sorted(colls.clone()));
    assert_eq!(owners(c, &colls).await, vec![alice.uuid.clone(); 2]);
    assert_eq!(uuids(&alice.client.get("/arvados/v1/collections").await.unwrap().ok().unwrap()), sorted(colls.clone()));

    // The session ended: its token is refused, and cannot be imported again.
    let r = a.get("/arvados/v1/collections").await.unwrap();
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let r = user.post("/hearth/v1/anonymous_imports", &json!({"anonymous_token": token})).await.unwrap();
    assert_refusal(&r, StatusCode::UNAUTHORIZED, "invalid_anonymous_token", "ended", "second import");

    // One audit entry names the session, the user and what moved.
    let q = serde_urlencoded::to_string([("filters", r#"[["event_type","=","anonymous_import"]]"#)]).unwrap();
    let logs = c.root.get(&format!("/arvados/v1/logs?{q}")).await.unwrap().ok().unwrap();
    let items = logs["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{logs}");
    assert_eq!(items[0]["object_uuid"], session_uuid(&token));
    assert_eq!(items[0]["modified_by_user_uuid"], alice.uuid.as_str());
    assert_eq!(items[0]["properties"]["owner_uuid"], alice.uuid.as_str());
    assert_eq!(items[0]["properties"]["collections"].as_array().unwrap().len(), 2);

    // A session with nothing in it gets no offer.
    let (empty, _) = anonymous(c).await;
    let body = json!({"login": "alice", "password": alice.password, "anonymous_token": empty});
    let login = c.anon.post("/hearth/v1/login", &body).await.unwrap().ok().unwrap();
    assert!(login.get("anonymous_offer").is_none(), "{login}");
}

#[tokio::test]
async fn imports_and_logins_with_bad_anonymous_tokens_are_refused_and_change_nothing() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let bob = c.user("bob").await;
    let (token, a) = anonymous(c).await;
    let colls = vec![made(&a, "keep me").await];
    let here = vec![session_uuid(&token).to_string()];
    let secret = token.split('/').nth(2).unwrap();
    let import = |by: &Client, t: &str| {
        let (by, t) = (by.clone(), t.to_string());
        async move { by.post("/hearth/v1/anonymous_imports", &json!({"anonymous_token": t})).await.unwrap() }
    };

    let cases = [
        ("garbage".to_string(), "not an anonymous session token"),
        (alice.token.clone(), "not an API token"),
        (bob.token.clone(), "not an API token"),
        (format!("v2/{}/{}x", session_uuid(&token), secret), "no live anonymous session"),
        (format!("v2/zzzzz-an0ns-aaaaaaaaaaaaaaa/{secret}"), "no live anonymous session"),
        (format!("v2/{}/{secret}", session_uuid(&token).replacen("zzzzz", "yyyyy", 1)), "no live anonymous session"),
    ];
    for (bad, says) in &cases {
        let r = import(&alice.client, bad).await;
        assert_refusal(&r, StatusCode::UNAUTHORIZED, "invalid_anonymous_token", says, bad);
        let r = c.anon.post("/hearth/v1/anonymous_imports/discard", &json!({"anonymous_token": bad})).await.unwrap();
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "discard without a user token: {}", r.body);
        // A login naming it is refused before the password is looked at, and issues no token.
        let body = json!({"login": "alice", "password": alice.password, "anonymous_token": bad});
        let r = c.anon.post("/hearth/v1/login", &body).await.unwrap();
        assert_refusal(&r, StatusCode::UNAUTHORIZED, "invalid_anonymous_token", says, &format!("login with {bad}"));
        assert!(r.body.get("api_token").is_none());
    }
    let r = c.anon.post("/hearth/v1/anonymous_imports", &json!({})).await.unwrap();
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "no user token: {}", r.body);
    let r = alice.client.post("/hearth/v1/anonymous_imports", &json!({})).await.unwrap();
    assert_refusal(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "missing_anonymous_token",
        "anonymous_token is required",
        "{}",
    );
    // The anonymous token as the caller's own: fenced.
    let r = import(&a, &token).await;
    assert_refusal(&r, StatusCode::UNAUTHORIZED, "anonymous_collections_only", "only use collections", "self");
    // With remote: refused (a token salted for another cluster could not import here).
    let body = json!({"login": "alice", "password": alice.password, "remote": "bbbbb", "anonymous_token": token});
    let r = c.anon.post("/hearth/v1/login", &body).await.unwrap();
    assert_refusal(&r, StatusCode::UNPROCESSABLE_ENTITY, "anonymous_with_remote", "remote", "remote login");

    assert_eq!(owners(c, &colls).await, here, "nothing moved");
    a.get("/arvados/v1/collections").await.unwrap().ok().unwrap();

    // An ended session's token (here: discarded) is refused too.
    let out = bob.client.post("/hearth/v1/anonymous_imports/discard", &json!({"anonymous_token": token})).await;
    let out = out.unwrap().ok().unwrap();
    assert_eq!(out["deleted"], json!(colls));
    let r = import(&alice.client, &token).await;
    assert_refusal(&r, StatusCode::UNAUTHORIZED, "invalid_anonymous_token", "ended", "after discard");
    assert_eq!(owners(c, &colls).await, ["gone"]);
}

#[tokio::test]
async fn discard_deletes_the_anonymous_collections_and_ends_the_session() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let (token, a) = anonymous(c).await;
    let colls = vec![made(&a, "scratch").await, made(&a, "tmp").await];
    let keep = made(&alice.client, "alice keeps").await;
    let out =
        alice.client.post("/hearth/v1/anonymous_imports/discard", &json!({"anonymous_token": token})).await.unwrap();
    let out = out.ok().unwrap();
    assert_eq!(out["anonymous_session_uuid"], session_uuid(&token));
    let deleted: Vec<String> =
        out["deleted"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(sorted(deleted), sorted(colls.clone()));
    assert_eq!(owners(c, &colls).await, ["gone", "gone"]);
    assert_eq!(owners(c, std::slice::from_ref(&keep)).await, vec![alice.uuid.to_string()]);
    assert_eq!(a.get("/arvados/v1/collections").await.unwrap().status, StatusCode::UNAUTHORIZED);
    let q = serde_urlencoded::to_string([("filters", r#"[["event_type","=","anonymous_discard"]]"#)]).unwrap();
    let logs = c.root.get(&format!("/arvados/v1/logs?{q}")).await.unwrap().ok().unwrap();
    assert_eq!(logs["items"][0]["object_uuid"], session_uuid(&token));
    assert_eq!(logs["items"][0]["modified_by_user_uuid"], alice.uuid.as_str());
}

/// The `Cookie` header a browser would send after `p`'s `Set-Cookie` lines (added to `jar`).
fn absorb(jar: &mut Vec<(String, String)>, set_cookies: &[String]) {
    for line in set_cookies {
        let Some((name, value)) = line.split(';').next().and_then(|kv| kv.split_once('=')) else { continue };
        jar.retain(|(n, _)| n != name);
        let expired = line.contains("Max-Age=0");
        if !expired {
            jar.push((name.to_string(), value.to_string()));
        }
    }
}

/// Answers the offer page's form.
async fn answer(c: &Cluster, cookies: &str, choice: &str, return_to: &str) -> crate::pages::Page {
    post(c, "/anonymous/import", cookies, &[("csrf", CSRF), ("choice", choice), ("return_to", return_to)]).await
}

fn cookie_header(jar: &[(String, String)]) -> String {
    jar.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
}

#[tokio::test]
async fn the_collections_page_and_the_login_offer_work_without_javascript() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let mut jar = vec![("hearth_csrf".to_string(), CSRF.to_string())];

    // No cookie yet: an empty page, and no session is started by looking.
    let p = get(c, "/collections", &cookie_header(&jar)).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("You are not logged in"), "{}", p.body);
    assert!(p.cookie("hearth_anon").is_none());

    // A forged form is refused and starts nothing.
    let p = post(c, "/collections", "", &[("name", "x"), ("csrf", CSRF)]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(p.cookie("hearth_anon").is_none());

    // The first collection starts the session and sets the cookie.
    let p =
        post(c, "/collections", &cookie_header(&jar), &[("name", "alpha"), ("description", "α"), ("csrf", CSRF)]).await;
    assert_eq!((p.status, p.location.as_str()), (StatusCode::SEE_OTHER, "/collections"), "{}", p.body);
    let line = p.cookie("hearth_anon").expect("hearth_anon cookie").to_string();
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age=604800"] {
        assert!(line.split(';').any(|a| a.trim() == attr), "hearth_anon without {attr}: {line}");
    }
    absorb(&mut jar, &p.set_cookies);
    let token = p.cookie_value("hearth_anon").unwrap();
    assert!(token.starts_with("v2/zzzzz-an0ns-"), "{token}");
    for name in ["beta", "gamma"] {
        let p = post(c, "/collections", &cookie_header(&jar), &[("name", name), ("csrf", CSRF)]).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        assert!(p.cookie("hearth_anon").is_none(), "one session per browser");
    }
    let p = post(c, "/collections", &cookie_header(&jar), &[("name", "  "), ("csrf", CSRF)]).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains("A collection needs a name."), "{}", p.body);
    let p = get(c, "/collections", &cookie_header(&jar)).await;
    for name in ["alpha", "beta", "gamma", "α"] {
        assert!(p.body.contains(name), "{name} missing: {}", p.body);
    }
    // Delete one (gamma) through its form; a forged delete changes nothing.
    let listed = c.client(&token).get("/arvados/v1/collections").await.unwrap().ok().unwrap();
    let gamma = listed["items"].as_array().unwrap().iter().find(|i| i["name"] == "gamma").unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let p = post(c, &format!("/collections/{gamma}/delete"), &format!("hearth_anon={token}"), &[("csrf", CSRF)]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let p = post(c, &format!("/collections/{gamma}/delete"), &cookie_header(&jar), &[("csrf", CSRF)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(owners(c, std::slice::from_ref(&gamma)).await, ["gone"]);

    // The login form leads to the offer, keeping return_to.
    let back = format!("{}/collections", c.url);
    let p = post(
        c,
        "/login",
        &cookie_header(&jar),
        &[("login", "alice"), ("password", &alice.password), ("return_to", &back), ("csrf", CSRF)],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let q = serde_urlencoded::to_string([("return_to", back.as_str())]).unwrap();
    assert_eq!(p.location, format!("/anonymous/import?{q}"));
    absorb(&mut jar, &p.set_cookies);
    let session = p.cookie_value("hearth_session").unwrap();
    let offer = get(c, &p.location, &cookie_header(&jar)).await;
    assert_eq!(offer.status, StatusCode::OK);
    assert!(offer.body.contains("Import the 2 collections you made before"), "{}", offer.body);
    assert!(offer.body.contains("alpha") && offer.body.contains("beta"), "{}", offer.body);
    // The logged-in /collections page says what waits.
    let p = get(c, "/collections", &cookie_header(&jar)).await;
    assert!(p.body.contains("still holds 2 collections"), "{}", p.body);

    // A forged answer, or a return_to elsewhere, changes nothing.
    let forged = cookie_header(&jar).replace(CSRF, "another-csrf-value-another-csrf-value");
    assert_eq!(answer(c, &forged, "discard", &back).await.status, StatusCode::FORBIDDEN);
    let p = answer(c, &cookie_header(&jar), "discard", "https://evil.example/").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    let remaining = c.client(&token).get("/arvados/v1/collections").await.unwrap().ok().unwrap();
    assert_eq!(remaining["items"].as_array().unwrap().len(), 2);

    // Import: the collections are alice's, the cookie is cleared, and the login goes on.
    let p = answer(c, &cookie_header(&jar), "import", &back).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let q = serde_urlencoded::to_string([("api_token", session.as_str())]).unwrap();
    assert_eq!(p.location, format!("{back}?{q}"));
    assert!(p.cookie("hearth_anon").unwrap().contains("Max-Age=0"));
    absorb(&mut jar, &p.set_cookies);
    let mine = alice.client.get("/arvados/v1/collections").await.unwrap().ok().unwrap();
    let mut names: Vec<&str> = mine["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["alpha", "beta"]);
    assert_eq!(c.client(&token).get("/arvados/v1/collections").await.unwrap().status, StatusCode::UNAUTHORIZED);
    let p = get(c, "/account", &cookie_header(&jar)).await;
    assert!(p.body.contains("alpha") && p.body.contains("beta"), "{}", p.body);

    // A second browser discards instead: its collections are deleted.
    let mut jar2 = vec![("hearth_csrf".to_string(), CSRF.to_string())];
    let p = post(c, "/collections", &cookie_header(&jar2), &[("name", "throwaway"), ("csrf", CSRF)]).await;
    absorb(&mut jar2, &p.set_cookies);
    let token2 = p.cookie_value("hearth_anon").unwrap();
    let login = [("login", "alice"), ("password", alice.password.as_str()), ("csrf", CSRF)];
    let p = post(c, "/login", &cookie_header(&jar2), &login).await;
    assert_eq!(p.location, "/anonymous/import");
    absorb(&mut jar2, &p.set_cookies);
    let p = answer(c, &cookie_header(&jar2), "discard", "").await;
    assert_eq!((p.status, p.location.as_str()), (StatusCode::SEE_OTHER, "/account"), "{}", p.body);
    assert_eq!(c.client(&token2).get("/arvados/v1/collections").await.unwrap().status, StatusCode::UNAUTHORIZED);
    let mine = alice.client.get("/arvados/v1/collections").await.unwrap().ok().unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 2, "throwaway was deleted, not imported");

    // Without anonymous work the login goes straight on.
    let p = post(c, "/login", &format!("hearth_csrf={CSRF}"), &login).await;
    assert_eq!(p.location, "/account");
}

#[tokio::test]
async fn an_anonymous_visitor_imports_their_collections_at_login_in_a_browser() {
    let started = Instant::now();
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let url = c.url.clone();
    let driver = start_chromedriver();
    let b = browser(&driver).await;

    // 1. An anonymous visitor makes two collections.
    b.goto(&format!("{url}/collections")).await.unwrap();
    assert_eq!(text(&b, "h1").await, "Collections in this browser");
    shot(&b, "anon-01-empty.png").await;
    for (name, description) in [("Sequencing run 12", "raw reads"), ("Plots", "")] {
        fill(&b, "#name", name).await;
        if !description.is_empty() {
            fill(&b, "#description", description).await;
        }
        click(&b, "#create").await;
        wait_for_text(&b, "#collections", name).await;
    }
    let listed = text(&b, "#collections").await;
    assert!(listed.contains("Sequencing run 12") && listed.contains("raw reads"), "{listed}");
    shot(&b, "anon-02-two-collections.png").await;
    let anon = b.get_named_cookie("hearth_anon").await.unwrap().value().to_string();
    assert!(anon.starts_with("v2/zzzzz-an0ns-"), "{anon}");

    // 2. They log in through the login form.
    click(&b, "#login").await;
    assert_eq!(text(&b, "label[for=password]").await, "Password");
    fill(&b, "#login", "alice").await;
    fill(&b, "#password", &alice.password).await;
    shot(&b, "anon-03-login.png").await;
    click(&b, "#submit").await;

    // 3. The offer names both collections.
    let offer = text(&b, "#offer").await;
    assert!(offer.contains("Import the 2 collections you made before logging in"), "{offer}");
    let names = text(&b, "#offer-names").await;
    assert!(names.contains("Sequencing run 12") && names.contains("Plots"), "{names}");
    assert_eq!(text(&b, "#offer-user").await, alice.uuid);
    shot(&b, "anon-04-offer.png").await;
    click(&b, "#import").await;

    // 4. They are on their account page, which lists the collections; the anonymous cookie is gone.
    let _ = text(&b, "#all-collections").await;
    assert_eq!(text(&b, "#user-uuid").await, alice.uuid);
    let listed = text(&b, "#collections").await;
    assert!(listed.contains("Sequencing run 12") && listed.contains("Plots"), "{listed}");
    shot(&b, "anon-05-account.png").await;
    assert!(b.get_named_cookie("hearth_anon").await.is_err(), "hearth_anon should be cleared");

    // The API agrees: both belong to alice now, and the anonymous token is dead.
    let mine = alice.client.get("/arvados/v1/collections").await.unwrap().ok().unwrap();
    let mut got: Vec<&str> = mine["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    got.sort();
    assert_eq!(got, ["Plots", "Sequencing run 12"]);
    assert!(mine["items"].as_array().unwrap().iter().all(|i| i["owner_uuid"] == alice.uuid.as_str()));
    assert_eq!(c.client(&anon).get("/arvados/v1/collections").await.unwrap().status, StatusCode::UNAUTHORIZED);

    b.close().await.unwrap();
    drop(driver);
    eprintln!("browser anonymous import: {:.1}s", started.elapsed().as_secs_f64());
}
