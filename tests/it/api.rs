//! The foundation, end to end over HTTPS: tokens and their refusals, users, permissions, lists,
//! logins and throttling, config validation, keys, pages, operations endpoints.

use crate::harness::{Federation, HEARTH, set_cookie_line, single};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::process::Command;

async fn users_current_status(fed: &Federation, token: &str) -> StatusCode {
    fed.clusters[0].client(token).get("/arvados/v1/users/current").await.unwrap().status
}

#[tokio::test]
async fn tokens_are_accepted_from_every_arvados_place_and_malformed_ones_are_refused() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    // Bearer, OAuth2 and the api_token query parameter.
    assert_eq!(users_current_status(&fed, &alice.token).await, StatusCode::OK);
    let r = c
        .anon
        .http()
        .get(format!("{}/arvados/v1/users/current", c.url))
        .header("Authorization", format!("OAuth2 {}", alice.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let q = serde_urlencoded::to_string([("api_token", alice.token.as_str()), ("alt", "json")]).unwrap();
    let r = c.anon.get(&format!("/arvados/v1/users/current?{q}")).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["uuid"], alice.uuid.as_str());

    let uuid = alice.token.split('/').nth(1).unwrap().to_string();
    let secret = alice.token.split('/').nth(2).unwrap().to_string();
    let mut off_by_one = secret.clone().into_bytes();
    off_by_one[10] = if off_by_one[10] == b'a' { b'b' } else { b'a' };
    let off_by_one = format!("v2/{uuid}/{}", String::from_utf8(off_by_one).unwrap());
    let bad = [
        "v2".to_string(),
        "v2/".into(),
        "v2//".into(),
        "v2/foo/bar".into(),
        format!("v2/{uuid}"),
        format!("v2/{uuid}/"),
        format!("v8/{uuid}/{secret}"),
        format!("\"{}\"", alice.token),
        "/".into(),
        "' OR 1=1 --".into(),
        "v2/zzzzz-gj3su-000000000000000/' OR '1'='1".into(),
        format!("v2/{uuid}/{secret}x"),
        secret.clone(),
        off_by_one,
        format!("v2/zzzzz-gj3su-aaaaaaaaaaaaaaa/{secret}"),
    ];
    for t in &bad {
        let r = c.client(t).get("/arvados/v1/users/current").await.unwrap();
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "token {t:?} got {}: {}", r.status, r.body);
        assert!(r.body["errors"][0].as_str().unwrap().contains("Not logged in"), "{}", r.body);
        assert!(r.body["error_token"].is_string());
    }
    // No token at all.
    assert_eq!(c.anon.get("/arvados/v1/users/current").await.unwrap().status, StatusCode::UNAUTHORIZED);
    // The real token still works: nothing was changed by the refusals.
    assert_eq!(users_current_status(&fed, &alice.token).await, StatusCode::OK);
}

/// On either backend: sled's files, or a dump of the daemon's PostgreSQL database (where a
/// binary column shows its bytes hex-encoded, so each needle is looked for in both forms).
#[tokio::test]
async fn token_secrets_are_not_stored_in_plain_text() {
    let mut fed = single().await;
    let alice = fed.clusters[0].user("alice").await;
    let created = alice.client.post("/arvados/v1/api_client_authorizations", &json!({})).await.unwrap().ok().unwrap();
    let api_token = crate::harness::full_token(&created);
    let c = fed.at_mut("zzzzz");
    c.terminate();
    let haystack = c.store.bytes_at_rest();
    assert!(haystack.len() > 1000, "store files were not found");
    let found = |needle: &[u8]| contains(&haystack, needle) || contains(&haystack, hex::encode(needle).as_bytes());
    for t in [&alice.token, &api_token] {
        let secret = t.split('/').nth(2).unwrap();
        assert!(!found(secret.as_bytes()), "a token secret is stored in plain text");
    }
    assert!(found(alice.uuid.as_bytes()), "sanity: the store does contain the user's uuid");
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn users_update_rules_and_refusals_change_nothing() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let bob = c.user("bob").await;
    let path = format!("/arvados/v1/users/{}", alice.uuid);
    // Self may change names and prefs.
    let r =
        alice.client.put(&path, &json!({"user": {"first_name": "Alicia", "prefs": {"theme": "dark"}}})).await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["first_name"], "Alicia");
    // Self may not make itself admin, change its email or redirect itself.
    for attrs in [
        json!({"is_admin": true}),
        json!({"email": "x@evil.example"}),
        json!({"redirect_to_user_uuid": bob.uuid}),
        json!({"username": "root2"}),
    ] {
        let r = alice.client.put(&path, &json!({"user": attrs})).await.unwrap();
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{attrs}: {}", r.body);
        assert_eq!(r.code(), "admin_only_field");
    }
    // Another user cannot see or change alice.
    let r = bob.client.put(&path, &json!({"user": {"first_name": "Mallory"}})).await.unwrap();
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(bob.client.get(&path).await.unwrap().status, StatusCode::NOT_FOUND);
    // Wrong types and unknown attributes are 422, malformed JSON 400.
    let r = alice.client.put(&path, &json!({"user": {"first_name": 7}})).await.unwrap();
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body["errors"][0].as_str().unwrap().contains("first_name"));
    let r = alice.client.put(&path, &json!({"user": {"shoe_size": 7}})).await.unwrap();
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body["errors"][0].as_str().unwrap().contains("shoe_size"));
    let r = alice
        .client
        .http()
        .put(format!("{}{path}", c.url))
        .bearer_auth(&alice.token)
        .header("Content-Type", "application/json")
        .body("{\"user\": {\"first_name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_code"], "malformed_json");
    // None of that changed anything.
    let me = alice.client.get("/arvados/v1/users/current").await.unwrap().ok().unwrap();
    assert_eq!(me["first_name"], "Alicia");
    assert_eq!(me["is_admin"], false);
    assert_eq!(me["email"], "alice@example.org");
    assert!(me["redirect_to_user_uuid"].is_null());
    // An admin may change flags; a new email is unverified unless said otherwise.
    let r = c
        .root
        .put(&path, &json!({"user": {"email": "Alice2@Example.org", "is_admin": true}}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(r["email"], "alice2@example.org");
    assert_eq!(r["email_verified"], false);
    assert_eq!(r["is_admin"], true);
    // Usernames are unique.
    let r = c.root.put(&path, &json!({"user": {"username": "bob"}})).await.unwrap();
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "username_taken");
    // Non-admins list only themselves; admins list everyone.
    let list = bob.client.get("/arvados/v1/users").await.unwrap().ok().unwrap();
    assert_eq!(list["items_available"], 1);
    let list = c.root.get("/arvados/v1/users?limit=1&order=%5B%22username%20asc%22%5D").await.unwrap().ok().unwrap();
    assert_eq!(list["kind"], "arvados#userList");
    assert!(list["items_available"].as_u64().unwrap() >= 3);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["username"], "alice");
}

#[tokio::test]
async fn groups_collections_links_permissions_and_lists() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let bob = c.user("bob").await;
    let project = alice
        .client
        .post("/arvados/v1/groups", &json!({"group": {"name": "Proj", "group_class": "project"}}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let pu = project["uuid"].as_str().unwrap();
    assert!(pu.starts_with("zzzzz-j7d0g-"));
    for i in 0..5 {
        alice
            .client
            .post(
                "/arvados/v1/collections",
                &json!({"collection": {"name": format!("data {i}"), "owner_uuid": pu, "properties": {"i": i}}}),
            )
            .await
            .unwrap()
            .ok()
            .unwrap();
    }
    let filters = serde_urlencoded::to_string([
        ("filters", json!([["owner_uuid", "=", pu]]).to_string()),
        ("order", "name desc".into()),
        ("limit", "2".into()),
        ("offset", "1".into()),
    ])
    .unwrap();
    let list = alice.client.get(&format!("/arvados/v1/collections?{filters}")).await.unwrap().ok().unwrap();
    assert_eq!(list["items_available"], 5);
    assert_eq!(list["items"][0]["name"], "data 3");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    // Bob sees nothing and cannot write into alice's project.
    let list = bob.client.get(&format!("/arvados/v1/collections?{filters}")).await.unwrap().ok().unwrap();
    assert_eq!(list["items_available"], 0);
    let r = bob
        .client
        .post("/arvados/v1/collections", &json!({"collection": {"name": "intruder", "owner_uuid": pu}}))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Bob cannot grant himself access.
    let grant =
        json!({"link": {"link_class": "permission", "name": "can_read", "tail_uuid": bob.uuid, "head_uuid": pu}});
    assert_eq!(bob.client.post("/arvados/v1/links", &grant).await.unwrap().status, StatusCode::FORBIDDEN);
    // Alice grants read: bob sees the collections but still cannot write.
    let link = alice.client.post("/arvados/v1/links", &grant).await.unwrap().ok().unwrap();
    let list = bob.client.get(&format!("/arvados/v1/collections?{filters}")).await.unwrap().ok().unwrap();
    assert_eq!(list["items_available"], 5);
    let some = list["items"][0]["uuid"].as_str().unwrap().to_string();
    let r = bob
        .client
        .put(&format!("/arvados/v1/collections/{some}"), &json!({"collection": {"name": "renamed"}}))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Upgrade to write: now he can.
    let lu = link["uuid"].as_str().unwrap();
    alice
        .client
        .put(&format!("/arvados/v1/links/{lu}"), &json!({"link": {"name": "can_write"}}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let r = bob
        .client
        .put(&format!("/arvados/v1/collections/{some}"), &json!({"collection": {"name": "renamed"}}))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Revoke: access goes at once.
    alice.client.delete(&format!("/arvados/v1/links/{lu}")).await.unwrap().ok().unwrap();
    assert_eq!(bob.client.get(&format!("/arvados/v1/collections/{some}")).await.unwrap().status, StatusCode::NOT_FOUND);
    // Bad list parameters are 422 naming the problem; unknown query parameters are ignored.
    let r = alice.client.get("/arvados/v1/collections?filters=%5B%5B%22nope%22%2C%22%3D%22%2C1%5D%5D").await.unwrap();
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body["errors"][0].as_str().unwrap().contains("nope"));
    let r = alice.client.get("/arvados/v1/collections?filters=not-json").await.unwrap();
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(alice.client.get("/arvados/v1/collections?alt=json&frobnicate=1").await.unwrap().status, StatusCode::OK);
    // A group that still owns things cannot be deleted; unknown resources are 404 naming the path.
    assert_eq!(
        alice.client.delete(&format!("/arvados/v1/groups/{pu}")).await.unwrap().status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let r = alice.client.get("/arvados/v1/pipelines").await.unwrap();
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body["errors"][0].as_str().unwrap().contains("/arvados/v1/pipelines"));
    // A form body with the attributes as a JSON string works too (curl style).
    let r = alice
        .client
        .http()
        .post(format!("{}/arvados/v1/groups", c.url))
        .bearer_auth(&alice.token)
        .form(&[("group", json!({"name": "Form project"}).to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // SSH keys: for oneself only.
    let key = json!({"authorized_key": {"name": "laptop", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBc alice@laptop"}});
    let k = alice.client.post("/arvados/v1/authorized_keys", &key).await.unwrap().ok().unwrap();
    assert_eq!(k["authorized_user_uuid"], alice.uuid.as_str());
    let mut other = key.clone();
    other["authorized_key"]["authorized_user_uuid"] = json!(bob.uuid);
    assert_eq!(alice.client.post("/arvados/v1/authorized_keys", &other).await.unwrap().status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn scoped_expired_and_revoked_tokens() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let scoped = alice
        .client
        .post("/arvados/v1/api_client_authorizations", &json!({"api_client_authorization": {"scopes": ["GET /arvados/v1/users/current", "GET /arvados/v1/groups/"]}}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let st = crate::harness::full_token(&scoped);
    let sc = c.client(&st);
    assert_eq!(sc.get("/arvados/v1/users/current").await.unwrap().status, StatusCode::OK);
    assert_eq!(
        sc.get("/arvados/v1/groups/").await.unwrap().status,
        StatusCode::NOT_FOUND,
        "prefix scope reaches the path"
    );
    let r = sc.get("/arvados/v1/collections").await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "scope_forbids");
    assert_eq!(
        sc.post("/arvados/v1/groups", &json!({"group": {"name": "x"}})).await.unwrap().status,
        StatusCode::FORBIDDEN
    );
    // current is allowed under any scope.
    assert_eq!(sc.get("/arvados/v1/api_client_authorizations/current").await.unwrap().status, StatusCode::OK);
    // Bad scopes and times are refused.
    for attrs in [json!({"scopes": ["FETCH /x"]}), json!({"scopes": "all"}), json!({"expires_at": "tomorrow"})] {
        let r = alice
            .client
            .post("/arvados/v1/api_client_authorizations", &json!({"api_client_authorization": attrs}))
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{attrs}");
    }
    // Expired.
    let past = alice
        .client
        .post(
            "/arvados/v1/api_client_authorizations",
            &json!({"api_client_authorization": {"expires_at": "2001-01-01T00:00:00Z"}}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(
        c.client(&crate::harness::full_token(&past)).get("/arvados/v1/users/current").await.unwrap().status,
        StatusCode::UNAUTHORIZED
    );
    // Revoked.
    let t = alice.client.post("/arvados/v1/api_client_authorizations", &json!({})).await.unwrap().ok().unwrap();
    let tc = c.client(&crate::harness::full_token(&t));
    assert_eq!(tc.get("/arvados/v1/users/current").await.unwrap().status, StatusCode::OK);
    let mine = alice.client.get("/arvados/v1/api_client_authorizations").await.unwrap().ok().unwrap();
    assert!(mine["items_available"].as_u64().unwrap() >= 4);
    assert!(mine["items"].as_array().unwrap().iter().all(|i| i["api_token"].is_null()), "secrets are never listed");
    alice
        .client
        .delete(&format!("/arvados/v1/api_client_authorizations/{}", t["uuid"].as_str().unwrap()))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(tc.get("/arvados/v1/users/current").await.unwrap().status, StatusCode::UNAUTHORIZED);
    // Another user cannot revoke alice's token.
    let bob = c.user("bob").await;
    let r = bob
        .client
        .delete(&format!("/arvados/v1/api_client_authorizations/{}", scoped["uuid"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(sc.get("/arvados/v1/users/current").await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn login_password_and_throttling() {
    let fed = Federation::start_with(&["zzzzz"], "[login]\nmax_failures = 3\nfailure_window_secs = 600\n").await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let bob = c.user("bob").await;
    // Email login works too, case-insensitively.
    let (t, u) = c.anon.login("Alice@Example.org", &alice.password, None).await.unwrap();
    assert_eq!(u["uuid"], alice.uuid.as_str());
    assert_eq!(c.client(&t).get("/arvados/v1/users/current").await.unwrap().status, StatusCode::OK);
    // Missing fields 422, wrong password 401, bad remote 400.
    let r = c.anon.post("/hearth/v1/login", &json!({"login": "alice"})).await.unwrap();
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = c
        .anon
        .post("/hearth/v1/login", &json!({"login": "alice", "password": alice.password, "remote": "NOT-A-CLUSTER"}))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = c
        .anon
        .post("/hearth/v1/login", &json!({"login": "alice", "password": alice.password, "remote": "qqqqq"}))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "a well-formed id that is not a peer");
    // Password rules: only self or admin; minimum length.
    let r = bob
        .client
        .post(&format!("/hearth/v1/users/{}/password", alice.uuid), &json!({"password": "hijacked-password"}))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = bob
        .client
        .post(&format!("/hearth/v1/users/{}/password", bob.uuid), &json!({"password": "short"}))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    bob.client
        .post(&format!("/hearth/v1/users/{}/password", bob.uuid), &json!({"password": "a-new-password"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    c.anon.login("bob", "a-new-password", None).await.unwrap();
    for _ in 0..3 {
        let r =
            c.anon.post("/hearth/v1/login", &json!({"login": "alice", "password": "wrong-password"})).await.unwrap();
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.code(), "invalid_login");
    }
    // Now throttled, even with the right password.
    let r = c.anon.post("/hearth/v1/login", &json!({"login": "alice", "password": alice.password})).await.unwrap();
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.code(), "throttled");
    // Unknown logins answer like wrong passwords (and also count against the source).
    let r = c.anon.post("/hearth/v1/login", &json!({"login": "nobody", "password": "whatever1"})).await.unwrap();
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "the source is throttled too");
    // Existing tokens keep working.
    assert_eq!(alice.client.get("/arvados/v1/users/current").await.unwrap().status, StatusCode::OK);
}

/// `VmRSS` of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// A burst of logins does not leave argon2's memory (~19 MiB per computation) behind in every
/// thread that ran one: after 64 concurrent logins the daemon holds under 512 MiB (190-270 MiB
/// here). Hashed on whichever blocking-pool thread asked, the same burst left 1.2 GiB resident.
#[tokio::test]
async fn a_burst_of_logins_leaves_memory_bounded() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let logins: Vec<_> = (0..64)
        .map(|_| {
            let (anon, password) = (c.anon.clone(), alice.password.clone());
            tokio::spawn(async move { anon.login("alice", &password, None).await })
        })
        .collect();
    for l in logins {
        assert!(l.await.unwrap().is_ok(), "every login of the burst succeeds");
    }
    let rss = rss_kib(c.pid().unwrap());
    eprintln!("VmRSS after 64 concurrent logins: {rss} KiB");
    assert!(rss < 512 * 1024, "VmRSS {rss} KiB after 64 concurrent logins");
}

#[tokio::test]
async fn inactive_users_cannot_log_in() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let u = c.root.create_user(json!({"username": "carol", "is_active": false}), Some("carol-password")).await.unwrap();
    assert_eq!(u["is_active"], false);
    let r = c.anon.post("/hearth/v1/login", &json!({"login": "carol", "password": "carol-password"})).await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "inactive");
}

#[tokio::test]
async fn operations_endpoints_and_graceful_shutdown() {
    let mut fed = single().await;
    let c = &fed.clusters[0];
    assert_eq!(c.anon.get("/healthz").await.unwrap().status, StatusCode::OK);
    assert_eq!(c.anon.get("/readyz").await.unwrap().status, StatusCode::OK);
    let _ = c.user("alice").await;
    let m = c.anon.http().get(format!("{}/metrics", c.url)).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("hearth_http_requests_total"), "{m}");
    let d = c.anon.get("/discovery/v1/apis/arvados/v1/rest").await.unwrap().ok().unwrap();
    assert_eq!(d["uuidPrefix"], "zzzzz");
    assert_eq!(d["resources"]["users"]["methods"]["merge"]["path"], "users/merge");
    let status = fed.at_mut("zzzzz").terminate().unwrap();
    assert!(status.success(), "SIGTERM should end the daemon cleanly, got {status:?}");
}

#[tokio::test]
async fn bad_config_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = format!(
        "[cluster]\nid = \"zzzzz\"\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://127.0.0.1:1\"\ndata_dir = \"{}\"\n[tls]\nself_signed = true\n",
        dir.path().join("data").display()
    );
    let cases = [
        (base.replace("[tls]", "[tls]\nfrobnicate = 1"), "frobnicate"),
        (base.replace("id = \"zzzzz\"", "id = \"ZZ\""), "id"),
        (base.replace("listen = \"127.0.0.1:0\"", "listen = \"nowhere\""), "cluster.listen"),
        (base.replace("https://127.0.0.1:1", "http://127.0.0.1:1"), "cluster.public_url"),
        (base.replace("self_signed = true", "self_signed = false"), "tls"),
        (format!("{base}[login]\nmax_failures = \"many\"\n"), "max_failures"),
        (format!("{base}[http]\nheader_read_timeout_secs = 0\n"), "http.header_read_timeout_secs"),
        (
            format!(
                "{base}[[federation.peers]]\nid = \"yyyyy\"\nurl = \"https://127.0.0.1:2\"\npublic_key = \"ed25519:nope\"\n"
            ),
            "federation.peers[0].public_key",
        ),
        (
            format!(
                "{base}[[federation.peers]]\nid = \"zzzzz\"\nurl = \"https://127.0.0.1:2\"\npublic_key = \"ed25519:nope\"\n"
            ),
            "federation.peers[0].id",
        ),
    ];
    for (i, (toml, key)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.toml"));
        std::fs::write(&path, toml).unwrap();
        let out = Command::new(HEARTH).arg("serve").arg("--config").arg(&path).output().unwrap();
        assert!(!out.status.success(), "case {i} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "case {i}: message {err:?} does not name {key}");
        assert_eq!(err.trim().lines().count(), 1, "case {i}: one line, got {err:?}");
    }
    // An environment override is validated like the file.
    let path = dir.path().join("env.toml");
    std::fs::write(&path, &base).unwrap();
    let out = Command::new(HEARTH)
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .env("HEARTH_CLUSTER__LISTEN", "bad")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cluster.listen"));
    // Variables that are not settings (the admin CLI's, for one) do not stop a start.
    let mut child = Command::new(HEARTH)
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .env("HEARTH_URL", "https://example.org")
        .env("HEARTH_TOKEN", "x")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("hearth listening on"), "{line:?}");
}

#[test]
fn keygen_writes_a_private_key_and_prints_the_public_one() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.key");
    let out = Command::new(HEARTH).arg("keygen").arg("--out").arg(&path).output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.trim().lines().last().unwrap();
    assert!(last.starts_with("ed25519:"), "{last}");
    assert!(last.parse::<federation_proto::VerifyKey>().is_ok());
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    // Refuses to overwrite without --force.
    let again = Command::new(HEARTH).arg("keygen").arg("--out").arg(&path).output().unwrap();
    assert!(!again.status.success());
}

#[tokio::test]
async fn login_page_sets_a_session_and_returns_with_a_token() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let page = c.anon.http().get(format!("{}/login?return_to=/account", c.url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csrf_cookie = set_cookie_line(&page, "hearth_csrf").unwrap();
    assert!(csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("Secure") && csrf_cookie.contains("SameSite=Lax"));
    let csrf = csrf_cookie.trim_start_matches("hearth_csrf=").split(';').next().unwrap().to_string();
    let html = page.text().await.unwrap();
    for field in ["name=\"login\"", "name=\"password\"", "name=\"return_to\"", "name=\"csrf\""] {
        assert!(html.contains(field), "{field} missing from the login form");
    }
    let post = |form: Vec<(&'static str, String)>, cookie: Option<String>| {
        let mut r = c.anon.http().post(format!("{}/login", c.url)).form(&form);
        if let Some(ck) = cookie {
            r = r.header("Cookie", ck);
        }
        r.send()
    };
    let good = vec![
        ("login", "alice".to_string()),
        ("password", alice.password.clone()),
        ("return_to", format!("{}/somewhere?x=1", c.url)),
        ("csrf", csrf.clone()),
    ];
    // Without the CSRF cookie: refused.
    let r = post(good.clone(), None).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Untrusted return_to, or one with user info: 400.
    for bad in [
        "https://evil.example/x",
        &format!("https://user:pw@{}/x", c.url.trim_start_matches("https://")),
        "//evil.example/x",
        "javascript:alert(1)",
    ] {
        let mut f = good.clone();
        f[2].1 = bad.to_string();
        let r = post(f, Some(format!("hearth_csrf={csrf}"))).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "return_to {bad}");
    }
    // Good: 303 to return_to with api_token, and a session cookie.
    let r = post(good, Some(format!("hearth_csrf={csrf}"))).await.unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let loc = r.headers().get("location").unwrap().to_str().unwrap().to_string();
    assert!(loc.starts_with(&format!("{}/somewhere?x=1&api_token=v2%2F", c.url)), "{loc}");
    let session = set_cookie_line(&r, "hearth_session").unwrap();
    assert!(session.contains("HttpOnly") && session.contains("Secure") && session.contains("SameSite=Lax"));
    let token = loc.split("api_token=").nth(1).unwrap().replace("%2F", "/");
    let me = c.client(&token).get("/arvados/v1/users/current").await.unwrap().ok().unwrap();
    assert_eq!(me["uuid"], alice.uuid.as_str());
    // The account page shows who is logged in.
    let cookie = session.split(';').next().unwrap().to_string();
    let acct = c
        .anon
        .http()
        .get(format!("{}/account", c.url))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(acct.contains(&alice.uuid));
    // GET /login with a bad remote: 400.
    let r = c.anon.http().get(format!("{}/login?remote=nope!", c.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn the_example_configs_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("config");
    for id in ["aaaaa", "bbbbb", "ccccc"] {
        let s =
            hearth::config::Settings::load(&root.join(format!("{id}.toml"))).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(s.cluster.id.as_str(), id);
        assert_eq!(s.federation.peers.len(), 2);
    }
}

#[tokio::test]
async fn logs_written_to_a_file_carry_no_colour_codes() {
    let mut fed = single().await;
    let c = fed.at_mut("zzzzz");
    let _ = c.user("alice").await;
    c.terminate();
    let log = std::fs::read_to_string(c.plan.dir.join("hearth.log")).unwrap();
    assert!(log.lines().count() >= 2, "the daemon logged nothing: {log:?}");
    assert!(!log.contains('\u{1b}'), "colour codes in a log file: {log:?}");
}
