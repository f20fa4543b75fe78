//! Issue 15: what Arvados' own tools and clients expect of a cluster — tokens shown as Arvados
//! shows them (and salted by scripts), the exported config, the methods and parameters the
//! discovery document declares, names unique per owner, local usernames of remote users, and the
//! user life-cycle methods. The real SDKs and tools drive the same things in `sdk.rs`.

use crate::harness::{Federation, full_token, single};
use crate::migration::wait_cached;
use federation_proto::{ClusterId, salted_secret};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// `path?k=v&…` with the values JSON-encoded where they are not plain strings.
fn with_query(path: &str, q: &[(&str, Value)]) -> String {
    let pairs: Vec<(&str, String)> =
        q.iter().map(|(k, v)| (*k, v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect();
    format!("{path}?{}", serde_urlencoded::to_string(pairs).unwrap())
}

fn uuid(v: &Value) -> &str {
    v["uuid"].as_str().unwrap()
}

#[tokio::test]
async fn tokens_are_shown_as_arvados_shows_them_and_salted_by_scripts_work() {
    let fed = Federation::start(&["aaaaa", "bbbbb"]).await;
    let (a, b) = (fed.at("aaaaa"), fed.at("bbbbb"));
    let alice = a.user("alice").await;
    let bob = a.user("bob").await;
    let admin = a.user_with("adele", json!({"is_admin": true})).await;
    // Logins still answer the full form.
    assert!(alice.token.starts_with("v2/"), "{}", alice.token);

    let created = alice.client.post("/arvados/v1/api_client_authorizations", &json!({})).await.unwrap().ok().unwrap();
    let secret = created["api_token"].as_str().unwrap().to_string();
    assert!(!secret.contains('/') && secret.len() >= 32, "the secret alone: {secret}");
    let token_uuid = uuid(&created).to_string();
    let full = full_token(&created);
    assert_eq!(full, format!("v2/{token_uuid}/{secret}"));

    // Gets and lists cannot show it (nothing stores it); current shows the one presented.
    let got = alice.client.get(&format!("/arvados/v1/api_client_authorizations/{token_uuid}")).await.unwrap();
    assert!(got.ok().unwrap()["api_token"].is_null());
    let mine = a.client(&full).get("/arvados/v1/api_client_authorizations/current").await.unwrap().ok().unwrap();
    assert_eq!((mine["uuid"].as_str(), mine["api_token"].as_str()), (Some(token_uuid.as_str()), Some(secret.as_str())));

    // What an admin script does (arv-federation-migrate): HMAC-SHA1 of the secret with the
    // cluster's id, as hex, in place of the secret — for the peer, and for the issuer itself.
    let salted =
        |cluster: &str| format!("v2/{token_uuid}/{}", salted_secret(&secret, &cluster.parse::<ClusterId>().unwrap()));
    let at_b = b.client(&salted("bbbbb")).get("/arvados/v1/users/current").await.unwrap();
    assert_eq!(at_b.status, StatusCode::OK, "{}", at_b.body);
    assert_eq!(at_b.body["uuid"], alice.uuid.as_str());
    let at_a = a.client(&salted("aaaaa")).get("/arvados/v1/users/current").await.unwrap();
    assert_eq!(at_a.status, StatusCode::OK, "{}", at_a.body);
    assert_eq!(at_a.body["uuid"], alice.uuid.as_str());
    let salted_current = a.client(&salted("aaaaa")).get("/arvados/v1/api_client_authorizations/current").await.unwrap();
    assert!(salted_current.ok().unwrap()["api_token"].is_null(), "a salted form is not the secret");
    // Salted for B, it is no good at A.
    assert_eq!(
        a.client(&salted("bbbbb")).get("/arvados/v1/users/current").await.unwrap().status,
        StatusCode::UNAUTHORIZED
    );

    // An admin makes a token for another local user; nobody else may.
    let for_alice = admin
        .client
        .post("/arvados/v1/api_client_authorizations", &json!({"api_client_authorization": {"owner_uuid": alice.uuid}}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(for_alice["owner_uuid"], alice.uuid.as_str());
    let me = a.client(&full_token(&for_alice)).get("/arvados/v1/users/current").await.unwrap().ok().unwrap();
    assert_eq!(me["uuid"], alice.uuid.as_str());
    let r = bob
        .client
        .post("/arvados/v1/api_client_authorizations", &json!({"api_client_authorization": {"owner_uuid": alice.uuid}}))
        .await
        .unwrap();
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "admin_required"));
}

#[tokio::test]
async fn the_exported_config_and_the_vocabulary_are_public_and_true() {
    let fed = Federation::start(&["aaaaa", "bbbbb"]).await;
    let (a, b) = (fed.at("aaaaa"), fed.at("bbbbb"));
    let cfg = a.anon.get("/arvados/v1/config").await.unwrap().ok().unwrap();
    let mut top: Vec<&str> = cfg.as_object().unwrap().keys().map(String::as_str).collect();
    top.sort_unstable();
    // The top-level keys Arvados' lib/config/export.go publishes.
    assert_eq!(
        top,
        [
            "API",
            "ClusterID",
            "Collections",
            "Containers",
            "InstanceTypes",
            "Login",
            "RemoteClusters",
            "Services",
            "StorageClasses",
            "TLS",
            "Users",
            "Volumes",
            "Workbench"
        ]
    );
    assert_eq!(cfg["ClusterID"], "aaaaa");
    assert_eq!(cfg["Login"]["LoginCluster"], "");
    assert!(cfg["Login"].get("TrustedClients").is_none(), "private in Arvados");
    assert_eq!(cfg["Login"]["RemoteTokenRefresh"], "5m");
    let peer = &cfg["RemoteClusters"]["bbbbb"];
    assert_eq!(peer["Host"], b.url.trim_start_matches("https://"));
    assert_eq!((peer["Scheme"].as_str(), peer["Insecure"].as_bool()), (Some("https"), Some(false)));
    assert_eq!((peer["Proxy"].as_bool(), peer["ActivateUsers"].as_bool()), (Some(false), Some(true)));
    assert_eq!(cfg["Services"]["Controller"]["ExternalURL"], format!("{}/", a.url));
    assert_eq!(cfg["API"]["MaxItemsPerResponse"], 1000);
    assert_eq!(cfg["Collections"]["DefaultReplication"], 2);
    assert_eq!(cfg["StorageClasses"]["default"]["Default"], true);
    let text = serde_json::to_string(&cfg).unwrap();
    assert!(!text.contains(&a.plan.root_token), "no secret is exported");

    let vocabulary = a.anon.get("/arvados/v1/vocabulary").await.unwrap().ok().unwrap();
    assert_eq!(vocabulary, json!({"strict_tags": false, "tags": {}}));
    // The SDK sends whatever token it has, an anonymous session's too.
    let session = a.anon.post("/hearth/v1/anonymous", &json!({})).await.unwrap().ok().unwrap();
    let anon = a.client(session["anonymous_token"].as_str().unwrap());
    assert_eq!(anon.get("/arvados/v1/config").await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn a_merge_that_would_repeat_a_name_changes_nothing_and_says_which() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let bob = c.user("bob").await;
    let project = |who: &crate::harness::TestUser, name: &str| {
        let body = json!({"group": {"name": name, "group_class": "project"}});
        let client = who.client.clone();
        async move { client.post("/arvados/v1/groups", &body).await.unwrap().ok().unwrap() }
    };
    let mine = project(&alice, "results").await;
    let theirs = project(&bob, "results").await;
    let merge = |owner: &str| {
        with_query(
            "/arvados/v1/users/merge",
            &[
                ("old_user_uuid", json!(bob.uuid)),
                ("new_user_uuid", json!(alice.uuid)),
                ("new_owner_uuid", json!(owner)),
                ("redirect_to_new_user", json!(true)),
            ],
        )
    };
    let r = c.root.post(&merge(&alice.uuid), &json!({})).await.unwrap();
    assert_eq!((r.status, r.code()), (StatusCode::UNPROCESSABLE_ENTITY, "merge_name_collision"));
    let msg = r.body["errors"][0].as_str().unwrap();
    assert!(msg.contains(uuid(&mine)) && msg.contains(uuid(&theirs)), "names both: {msg}");
    assert!(
        msg.contains(&format!("Key (owner_uuid, name)=({}, results) already exists.\n: UPDATE \"groups\"", alice.uuid)),
        "{msg}"
    );
    // Nothing changed: bob is there, with his project and a working token.
    let me = bob.client.get("/arvados/v1/users/current").await.unwrap().ok().unwrap();
    assert_eq!((me["uuid"].as_str(), me["redirect_to_user_uuid"].is_null()), (Some(bob.uuid.as_str()), true));
    let g = c.root.get(&format!("/arvados/v1/groups/{}", uuid(&theirs))).await.unwrap().ok().unwrap();
    assert_eq!(g["owner_uuid"], bob.uuid.as_str());
    // Into a fresh project it goes through.
    let fresh = project(&alice, "from bob").await;
    let old = c.root.post(&merge(uuid(&fresh)), &json!({})).await.unwrap().ok().unwrap();
    assert_eq!(old["redirect_to_user_uuid"], alice.uuid.as_str());
}

#[tokio::test]
async fn merging_into_a_merged_user_is_422_whatever_the_owner() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let (x, y, z) = (c.user("xena").await, c.user("yuri").await, c.user("zack").await);
    let xp = x
        .client
        .post("/arvados/v1/groups", &json!({"group": {"name": "x's", "group_class": "project"}}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let merge = |old: &str, new: &str, owner: &str| {
        with_query(
            "/arvados/v1/users/merge",
            &[
                ("old_user_uuid", json!(old)),
                ("new_user_uuid", json!(new)),
                ("new_owner_uuid", json!(owner)),
                ("redirect_to_new_user", json!(true)),
            ],
        )
    };
    c.root.post(&merge(&x.uuid, &y.uuid, &y.uuid), &json!({})).await.unwrap().ok().unwrap();
    // x's project now belongs to y: x can write nothing but itself. Still the answer is that x
    // is merged, not that the owner is not writable.
    for owner in [uuid(&xp), x.uuid.as_str()] {
        let r = c.root.post(&merge(&z.uuid, &x.uuid, owner), &json!({})).await.unwrap();
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "merge_new_already_merged"),
            "{owner}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn remote_users_carry_a_local_username_that_notices_never_change() {
    let fed = Federation::start(&["aaaaa", "bbbbb"]).await;
    let (a, b) = (fed.at("aaaaa"), fed.at("bbbbb"));
    let carol = a.user("carol").await;
    let cached = wait_cached(b, &carol.uuid).await;
    assert_eq!(cached["username"], "carol", "the home's name, shown");
    let at_b = format!("/arvados/v1/users/{}", carol.uuid);
    let someone = b.user("sam").await;
    let r = someone.client.put(&at_b, &json!({"user": {"username": "carolb"}})).await.unwrap();
    assert!(matches!(r.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND), "{}", r.status);

    let set = b.root.put(&at_b, &json!({"user": {"username": "carolb"}})).await.unwrap().ok().unwrap();
    assert_eq!(set["username"], "carolb");
    // It is this cluster's username now: listed by it, and no one else may take it.
    let q = with_query("/arvados/v1/users", &[("filters", json!([["username", "=", "carolb"]]))]);
    let found = b.root.get(&q).await.unwrap().ok().unwrap();
    assert_eq!(found["items"][0]["uuid"], carol.uuid.as_str());
    let r = b.root.create_user(json!({"username": "carolb", "email": "other@example.org"}), None).await;
    assert!(r.is_err(), "a second carolb was made");
    // Only the username is ours to set.
    let r = b.root.put(&at_b, &json!({"user": {"first_name": "Caroline"}})).await.unwrap();
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "remote_user"));
    let r = b.root.put(&at_b, &json!({"user": {"username": "sam"}})).await.unwrap();
    assert_eq!(r.code(), "username_taken");

    // Carol logs in at home again: B hears of it (a newer record) and keeps the local name.
    let seen_before = b.root.get(&at_b).await.unwrap().ok().unwrap()["last_login_at"].clone();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.anon.login("carol", &carol.password, None).await.unwrap();
    let started = Instant::now();
    let now = loop {
        let u = b.root.get(&at_b).await.unwrap().ok().unwrap();
        if u["last_login_at"] != seen_before {
            break u;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "B never heard of the login");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(now["username"], "carolb");
    let found = b.root.get(&q).await.unwrap().ok().unwrap();
    assert_eq!(found["items_available"], 1);
}

#[tokio::test]
async fn imported_anonymous_work_keeps_names_unique() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    alice
        .client
        .post("/arvados/v1/collections", &json!({"collection": {"name": "notes"}}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let session = c.anon.post("/hearth/v1/anonymous", &json!({})).await.unwrap().ok().unwrap();
    let token = session["anonymous_token"].as_str().unwrap();
    let anon = c.client(token);
    let mut made = Vec::new();
    for name in ["notes", "reads"] {
        made.push(
            anon.post("/arvados/v1/collections", &json!({"collection": {"name": name}})).await.unwrap().ok().unwrap(),
        );
    }
    alice.client.post("/hearth/v1/anonymous_imports", &json!({"anonymous_token": token})).await.unwrap().ok().unwrap();
    let name_of = |v: &Value| {
        let client = alice.client.clone();
        let path = format!("/arvados/v1/collections/{}", uuid(v));
        async move { client.get(&path).await.unwrap().ok().unwrap()["name"].as_str().unwrap().to_string() }
    };
    assert_eq!(name_of(&made[0]).await, format!("notes ({})", &uuid(&made[0])[12..]));
    assert_eq!(name_of(&made[1]).await, "reads");
}
