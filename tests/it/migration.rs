//! Cross-cluster migration (DESIGN §4.4) through the JSON API on real daemons: candidates by
//! verified email, the signed request, the grant from a login at the target, the confirmation and
//! its effects, and the refusals.

use crate::harness::{Cluster, Federation, TestUser, set_cookie_value};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Waits until `at` has cached `uuid` (a login notice arrived).
pub async fn wait_cached(at: &Cluster, uuid: &str) -> Value {
    let started = Instant::now();
    loop {
        let r = at.root.get(&format!("/arvados/v1/users/{uuid}")).await.unwrap();
        if r.status == StatusCode::OK {
            return r.body;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{} never cached {uuid}", at.id);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A person with accounts at two clusters (same verified email), logged in at both.
pub async fn person_at_two(fed: &Federation, home: &str, wrong: &str, name: &str) -> (TestUser, TestUser) {
    let h = fed.at(home).user(name).await;
    wait_cached(fed.at(wrong), &h.uuid).await;
    let w = fed.at(wrong).user(name).await;
    wait_cached(fed.at(home), &w.uuid).await;
    (h, w)
}

#[tokio::test]
async fn json_flow_moves_the_wrong_account_into_the_home_account() {
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
    // 1. candidates at B
    let c = wrong.client.get("/hearth/v1/migration_candidates").await.unwrap().ok().unwrap();
    assert_eq!(c["items"][0]["cluster_id"], "aaaaa");
    assert_eq!(c["items"][0]["user_uuid"], home.uuid.as_str());
    // 2. pending migration
    let m =
        wrong.client.post("/hearth/v1/migrations", &json!({"target_cluster": "aaaaa"})).await.unwrap().ok().unwrap();
    let muuid = m["uuid"].as_str().unwrap().to_string();
    assert!(m["login_url"].as_str().unwrap().starts_with(&format!("{}/login?", a.url)));
    // 3. login at A with the request
    let l = a
        .anon
        .post(
            "/hearth/v1/login",
            &json!({"login": "ada", "password": home.password, "remote": "bbbbb", "migration_request": m["request"]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let salted = l["api_token"].as_str().unwrap();
    assert_eq!(salted.split('/').nth(2).unwrap().len(), 40, "token salted for B");
    // 4. confirm at B
    let r = wrong
        .client
        .post(&format!("/hearth/v1/migrations/{muuid}/confirm"), &json!({"grant": l["migration_grant"]}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(r["old_user"]["redirect_to_user_uuid"], home.uuid.as_str());
    let project = r["new_owner_uuid"].as_str().unwrap();
    // The old token now acts as the home account; the collection is in the new project.
    let me = wrong.client.get("/arvados/v1/users/current").await.unwrap().ok().unwrap();
    assert_eq!(me["uuid"], home.uuid.as_str());
    let got =
        b.root.get(&format!("/arvados/v1/collections/{}", coll["uuid"].as_str().unwrap())).await.unwrap().ok().unwrap();
    assert_eq!(got["owner_uuid"], project);
    let g = b.root.get(&format!("/arvados/v1/groups/{project}")).await.unwrap().ok().unwrap();
    assert_eq!(g["name"], format!("Migrated from ada@example.org ({})", wrong.uuid));
    assert_eq!(g["owner_uuid"], home.uuid.as_str());
    // Doing it again is refused.
    let again = wrong
        .client
        .post(&format!("/hearth/v1/migrations/{muuid}/confirm"), &json!({"grant": l["migration_grant"]}))
        .await
        .unwrap();
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    // A learns that B's account now redirects to A's.
    let started = Instant::now();
    loop {
        let r = a.root.get(&format!("/arvados/v1/users/{}", wrong.uuid)).await.unwrap();
        // Redirected users are hidden from get, as in Arvados: the notice arrived once it is 404 after being cached.
        if r.status == StatusCode::NOT_FOUND {
            let list = a.root.get("/arvados/v1/users?limit=1000").await.unwrap().ok().unwrap();
            assert!(!list["items"].as_array().unwrap().iter().any(|u| u["uuid"] == wrong.uuid.as_str()));
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "A never learned of the redirect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn signing_key_of(c: &Cluster) -> federation_proto::ClusterSigningKey {
    hearth::federation::signing_key::read(&c.plan.dir.join("signing.key")).unwrap()
}

fn sign_as<T: serde::Serialize>(c: &Cluster, v: T) -> Value {
    let id: federation_proto::ClusterId = c.id.parse().unwrap();
    federation_proto::Signed::sign(v, &id, &signing_key_of(c)).unwrap().to_value()
}

async fn nothing_changed(b: &Cluster, wrong: &TestUser, coll: &str) {
    let me = wrong.client.get("/arvados/v1/users/current").await.unwrap().ok().unwrap();
    assert_eq!(me["uuid"], wrong.uuid.as_str(), "the old account is still itself");
    assert!(me["redirect_to_user_uuid"].is_null());
    let c = b.root.get(&format!("/arvados/v1/collections/{coll}")).await.unwrap().ok().unwrap();
    assert_eq!(c["owner_uuid"], wrong.uuid.as_str(), "the old account still owns its data");
}

#[tokio::test]
async fn forged_tampered_expired_misaddressed_and_replayed_grants_are_refused() {
    let fed = Federation::start(&["aaaaa", "bbbbb", "ccccc"]).await;
    let (a, b, c) = (fed.at("aaaaa"), fed.at("bbbbb"), fed.at("ccccc"));
    let (home, wrong) = person_at_two(&fed, "aaaaa", "bbbbb", "grace").await;
    let coll = wrong
        .client
        .post("/arvados/v1/collections", &json!({"collection": {"name": "data"}}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let coll = coll["uuid"].as_str().unwrap().to_string();
    let start = || async {
        wrong.client.post("/hearth/v1/migrations", &json!({"target_cluster": "aaaaa"})).await.unwrap().ok().unwrap()
    };
    let m1 = start().await;
    let m2 = start().await;
    let login = |m: Value| {
        let pw = home.password.clone();
        async move {
            a.anon
                .post(
                    "/hearth/v1/login",
                    &json!({"login": "grace", "password": pw, "remote": "bbbbb", "migration_request": m["request"]}),
                )
                .await
                .unwrap()
                .ok()
                .unwrap()
        }
    };
    let l1 = login(m1.clone()).await;
    let grant1 = l1["migration_grant"].clone();
    let confirm = |m: &Value, grant: Value, who: &TestUser| {
        let path = format!("/hearth/v1/migrations/{}/confirm", m["uuid"].as_str().unwrap());
        let client = who.client.clone();
        async move { client.post(&path, &json!({"grant": grant})).await.unwrap() }
    };
    let nonce1 = m1["request"]["nonce"].as_str().unwrap().to_string();
    let base = grant1.clone();
    let field = |k: &str| base[k].clone();
    let exp = field("expires_at").as_i64().unwrap();
    let grant_body = |audience: &str, nonce: &str, expires_at: i64| federation_proto::assertion::MigrationGrant {
        issuer: "aaaaa".parse().unwrap(),
        user: serde_json::from_value(field("user")).unwrap(),
        token_uuid: field("token_uuid").as_str().unwrap().parse().unwrap(),
        audience: audience.parse().unwrap(),
        migration_nonce: nonce.to_string(),
        expires_at,
    };
    // A grant for another audience (signed by A for ccccc).
    let other_audience = sign_as(a, grant_body("ccccc", &nonce1, exp));
    // Forged: B signs a grant claiming to be A's; C signs one.
    let forged_by_b = sign_as(b, grant_body("bbbbb", &nonce1, exp));
    let forged_by_c = sign_as(c, grant_body("bbbbb", &nonce1, exp));
    // Tampered: a field changed after signing.
    let mut tampered = grant1.clone();
    tampered["migration_nonce"] = json!(m2["request"]["nonce"]);
    let mut tampered_user = grant1.clone();
    tampered_user["user"]["email"] = json!("mallory@example.org");
    // Expired, properly signed by A.
    let expired = sign_as(a, grant_body("bbbbb", &nonce1, 1_000_000_000));
    // Garbage.
    let garbage = json!({"hello": "world"});
    for (name, g, status) in [
        ("other audience", other_audience, StatusCode::FORBIDDEN),
        ("forged by the asking cluster", forged_by_b, StatusCode::FORBIDDEN),
        ("forged by a third cluster", forged_by_c, StatusCode::FORBIDDEN),
        ("tampered nonce", tampered, StatusCode::FORBIDDEN),
        ("tampered user", tampered_user, StatusCode::FORBIDDEN),
        ("expired", expired, StatusCode::FORBIDDEN),
        ("garbage", garbage, StatusCode::FORBIDDEN),
    ] {
        let r = confirm(&m1, g, &wrong).await;
        assert_eq!(r.status, status, "{name}: {}", r.body);
        nothing_changed(b, &wrong, &coll).await;
    }
    // A grant for a different pending migration (m1's grant used to confirm m2).
    let r = confirm(&m2, grant1.clone(), &wrong).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.code(), "grant_refused");
    nothing_changed(b, &wrong, &coll).await;
    // Someone not logged in as the old account.
    let eve = b.user("eve").await;
    let r = confirm(&m1, grant1.clone(), &eve).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "not_the_old_account");
    let r = b
        .anon
        .post(&format!("/hearth/v1/migrations/{}/confirm", m1["uuid"].as_str().unwrap()), &json!({"grant": grant1}))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    nothing_changed(b, &wrong, &coll).await;
    // The real grant works once; replaying it is refused.
    let ok = confirm(&m1, grant1.clone(), &wrong).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let again = confirm(&m1, grant1.clone(), &wrong).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(again.code(), "already_merged");
    // The merged-away account cannot be migrated again (its token now acts as the home account,
    // which is not local here).
    let r = wrong.client.post("/hearth/v1/migrations", &json!({"target_cluster": "aaaaa"})).await.unwrap();
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r = confirm(&m2, login(m2.clone()).await["migration_grant"].clone(), &wrong).await;
    assert!(r.status == StatusCode::FORBIDDEN || r.status == StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
}

#[tokio::test]
async fn requests_need_a_verified_match_a_peer_and_a_valid_signature() {
    let fed = Federation::start(&["aaaaa", "bbbbb"]).await;
    let (a, b) = (fed.at("aaaaa"), fed.at("bbbbb"));
    // Unverified email on either side: no candidate, no migration.
    let home = a.user_with("hank", json!({"email_verified": false})).await;
    wait_cached(b, &home.uuid).await;
    let wrong = b.user("hank").await;
    let c = wrong.client.get("/hearth/v1/migration_candidates").await.unwrap().ok().unwrap();
    assert_eq!(c["items"].as_array().unwrap().len(), 0, "an unverified email is never a match");
    let r = wrong.client.post("/hearth/v1/migrations", &json!({"target_cluster": "aaaaa"})).await.unwrap();
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "no_candidate");
    let unverified_here = b.user_with("ivy", json!({"email_verified": false})).await;
    let c = unverified_here.client.get("/hearth/v1/migration_candidates").await.unwrap().ok().unwrap();
    assert_eq!(c["items"].as_array().unwrap().len(), 0);
    // Invalid targets.
    for (t, status) in
        [("NOPE!", StatusCode::BAD_REQUEST), ("qqqqq", StatusCode::BAD_REQUEST), ("bbbbb", StatusCode::BAD_REQUEST)]
    {
        let r = wrong.client.post("/hearth/v1/migrations", &json!({"target_cluster": t})).await.unwrap();
        assert_eq!(r.status, status, "{t}: {}", r.body);
    }
    // A login at A with a forged or tampered migration request gives no grant (and no login).
    let (home2, wrong2) = person_at_two(&fed, "aaaaa", "bbbbb", "jack").await;
    let m =
        wrong2.client.post("/hearth/v1/migrations", &json!({"target_cluster": "aaaaa"})).await.unwrap().ok().unwrap();
    let mut tampered = m["request"].clone();
    tampered["old_user_uuid"] = json!(wrong.uuid);
    for req in [tampered, json!({"garbage": true})] {
        let r = a
            .anon
            .post(
                "/hearth/v1/login",
                &json!({"login": "jack", "password": home2.password, "remote": "bbbbb", "migration_request": req}),
            )
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    }
    // The request names bbbbb as requester: presenting it with another remote is refused.
    let r = a
        .anon
        .post(
            "/hearth/v1/login",
            &json!({"login": "jack", "password": home2.password, "remote": "NOT!", "migration_request": m["request"]}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn login_routing_by_parameter_and_cookie() {
    let fed = Federation::start(&["aaaaa", "bbbbb"]).await;
    let (a, b) = (fed.at("aaaaa"), fed.at("bbbbb"));
    let kate = a.user("kate").await;
    let http = b.anon.http();
    let get = |url: String, cookie: Option<&str>| {
        let mut r = http.get(url);
        if let Some(c) = cookie {
            r = r.header("Cookie", c);
        }
        r.send()
    };
    // home=aaaaa: 302 to A's login, remote=bbbbb, coming back through B's /login/federated.
    let r = get(format!("{}/login?home=aaaaa&return_to=/account", b.url), None).await.unwrap();
    assert!(r.status().is_redirection());
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let handoff = format!("hearth_handoff={}", set_cookie_value(&r, "hearth_handoff").unwrap());
    assert!(loc.starts_with(&format!("{}/login?remote=bbbbb&return_to=", a.url)), "{loc}");
    assert!(loc.contains("login%2Ffederated"), "{loc}");
    // The hearth_home cookie does the same; an explicit local=1 shows B's own form.
    let r = get(format!("{}/login", b.url), Some("hearth_home=aaaaa")).await.unwrap();
    assert!(r.status().is_redirection());
    let r = get(format!("{}/login?local=1", b.url), Some("hearth_home=aaaaa")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Invalid home / remote / return_to: 400.
    for q in [
        "home=zzzzz",
        "home=NOPE!",
        "remote=zzzzz",
        "return_to=https://evil.example/",
        "return_to=https://u:p@127.0.0.1/",
    ] {
        let r = get(format!("{}/login?{q}", b.url), None).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{q}");
    }
    // Log in at A for B through the form (the browser's path), then come back to B.
    let page = a.anon.http().get(&loc).send().await.unwrap();
    let csrf = set_cookie_value(&page, "hearth_csrf").unwrap();
    let html = page.text().await.unwrap();
    let return_to = html
        .split("name=\"return_to\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&")
        .replace("&#38;", "&")
        .replace("&#x2F;", "/")
        .replace("&#x3D;", "=")
        .replace("&#x3F;", "?");
    let r = a
        .anon
        .http()
        .post(format!("{}/login", a.url))
        .header("Cookie", format!("hearth_csrf={csrf}"))
        .form(&[
            ("login", "kate"),
            ("password", kate.password.as_str()),
            ("return_to", return_to.as_str()),
            ("remote", "bbbbb"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let back = r.headers()["location"].to_str().unwrap().to_string();
    assert!(back.starts_with(&format!("{}/login/federated?", b.url)), "{back}");
    assert!(back.contains("login_assertion="));
    // Tampering with the assertion is refused.
    let bad = back.replace("login_assertion=", "login_assertion=x");
    let get_back = |url: &str| b.anon.http().get(url).header("Cookie", &handoff).send();
    assert_eq!(get_back(&bad).await.unwrap().status(), StatusCode::FORBIDDEN);
    let r = get_back(&back).await.unwrap();
    assert!(r.status().is_redirection(), "{} {back}", r.status());
    let cookies: Vec<String> =
        r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect();
    let home_cookie = cookies.iter().find(|c| c.starts_with("hearth_home=")).unwrap();
    assert!(
        home_cookie.starts_with("hearth_home=aaaaa;")
            && home_cookie.contains("HttpOnly")
            && home_cookie.contains("Secure")
    );
    let session =
        cookies.iter().find(|c| c.starts_with("hearth_session=")).unwrap().split(';').next().unwrap().to_string();
    let token = session.trim_start_matches("hearth_session=");
    assert_eq!(token.split('/').nth(2).unwrap().len(), 40, "the session holds A's token salted for B");
    let acct = b
        .anon
        .http()
        .get(format!("{}/account", b.url))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(acct.contains(&kate.uuid), "B's account page shows the home account");
    // A salted token for B does not work at A.
    assert_eq!(a.client(token).get("/arvados/v1/users/current").await.unwrap().status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_merged_away_account_is_sent_home_and_unknown_logins_are_offered_their_home() {
    let fed = Federation::start(&["aaaaa", "bbbbb"]).await;
    let (a, b) = (fed.at("aaaaa"), fed.at("bbbbb"));
    let (home, wrong) = person_at_two(&fed, "aaaaa", "bbbbb", "liam").await;
    let m =
        wrong.client.post("/hearth/v1/migrations", &json!({"target_cluster": "aaaaa"})).await.unwrap().ok().unwrap();
    let l = a
        .anon
        .post(
            "/hearth/v1/login",
            &json!({"login": "liam", "password": home.password, "remote": "bbbbb", "migration_request": m["request"]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    wrong
        .client
        .post(
            &format!("/hearth/v1/migrations/{}/confirm", m["uuid"].as_str().unwrap()),
            &json!({"grant": l["migration_grant"]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    // The JSON login says where the account went.
    let r = b
        .anon
        .post("/hearth/v1/login", &json!({"login": "liam@example.org", "password": wrong.password}))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "account_moved");
    // The form login sends the person to A's login with a note.
    let page = b.anon.http().get(format!("{}/login", b.url)).send().await.unwrap();
    let csrf = set_cookie_value(&page, "hearth_csrf").unwrap();
    let post = |login: &str, pw: &str| {
        b.anon
            .http()
            .post(format!("{}/login", b.url))
            .header("Cookie", format!("hearth_csrf={csrf}"))
            .form(&[("login", login), ("password", pw), ("csrf", csrf.as_str())])
            .send()
    };
    let r = post("liam@example.org", &wrong.password).await.unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        loc.starts_with(&format!("{}/login?", a.url)) && loc.contains(&format!("moved_from={}", wrong.uuid)),
        "{loc}"
    );
    let note = a.anon.http().get(&loc).send().await.unwrap().text().await.unwrap();
    assert!(note.contains("was merged into an account here"), "A's login page says why");
    // So does its former username, which the merge freed.
    let r = b.anon.post("/hearth/v1/login", &json!({"login": "liam", "password": wrong.password})).await.unwrap();
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "account_moved"), "{}", r.body);
    let r = post("liam", &wrong.password).await.unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.contains(&format!("moved_from={}", wrong.uuid)), "{loc}");
    // Until another account takes the name: then it is that account's.
    let other = b
        .root
        .create_user(json!({"username": "liam", "email": "other-liam@example.org"}), Some("pw-other-liam-secret"))
        .await
        .unwrap();
    let (_, user) = b.anon.login("liam", "pw-other-liam-secret", None).await.unwrap();
    assert_eq!(user["uuid"], other["uuid"]);
    let r = b.anon.post("/hearth/v1/login", &json!({"login": "liam", "password": wrong.password})).await.unwrap();
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "invalid_login"));
    // Someone with no account at B but a verified one at A is offered to continue there.
    let mia = a.user("mia").await;
    wait_cached(b, &mia.uuid).await;
    let r = post("mia@example.org", "not-her-password").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.text().await.unwrap();
    assert!(body.contains("Continue at aaaaa"), "{body}");
}
