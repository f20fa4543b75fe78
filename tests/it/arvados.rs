//! Issue 15: what Arvados' own tools and clients expect of a cluster — tokens shown as Arvados
//! shows them (and salted by scripts), the exported config, the methods and parameters the
//! discovery document declares, names unique per owner, local usernames of remote users, and the
//! user life-cycle methods. The real SDKs and tools drive the same things in `sdk.rs`.

use crate::harness::{Cluster, Federation, full_token, single};
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

/// How many groups and collections `c` holds, counted by an admin.
async fn object_count(c: &Cluster) -> (u64, u64) {
    let n = |res: &'static str| async move {
        c.root.get(&format!("/arvados/v1/{res}?limit=0&include_trash=true")).await.unwrap().ok().unwrap()["items_available"]
            .as_u64()
            .unwrap()
    };
    (n("groups").await, n("collections").await)
}

#[tokio::test]
async fn names_are_unique_per_owner_as_in_arvados() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let new_project = |name: &str| json!({"group": {"name": name, "group_class": "project"}});
    let p = alice.client.post("/arvados/v1/groups", &new_project("Results")).await.unwrap().ok().unwrap();
    let before = object_count(c).await;

    let r = alice.client.post("/arvados/v1/groups", &new_project("Results")).await.unwrap();
    assert_eq!((r.status, r.code()), (StatusCode::UNPROCESSABLE_ENTITY, "duplicate_name"));
    let msg = r.body["errors"][0].as_str().unwrap();
    assert!(msg.contains("duplicate key") && msg.contains(uuid(&p)), "{msg}");
    assert!(msg.contains(&format!("Key (owner_uuid, name)=({}, Results) already exists.", alice.uuid)), "{msg}");
    assert_eq!(object_count(c).await, before, "nothing was made");

    // ensure_unique_name: Arvados' free name, " (<last 15 of the uuid>)" added.
    let q = with_query("/arvados/v1/groups", &[("ensure_unique_name", json!(true))]);
    let again = alice.client.post(&q, &new_project("Results")).await.unwrap().ok().unwrap();
    assert_eq!(again["name"], format!("Results ({})", &uuid(&again)[12..]));
    // A boolean Arvados would not read as one is refused.
    let q = with_query("/arvados/v1/groups", &[("ensure_unique_name", json!("yes please"))]);
    let r = alice.client.post(&q, &new_project("Other")).await.unwrap();
    assert_eq!((r.status, r.code()), (StatusCode::UNPROCESSABLE_ENTITY, "not_boolean"));

    // Collections have names of their own: one may share a project's name, not another collection's.
    let coll = |name: &str, owner: &str| json!({"collection": {"name": name, "owner_uuid": owner}});
    let c1 = alice.client.post("/arvados/v1/collections", &coll("Results", &alice.uuid)).await.unwrap().ok().unwrap();
    let r = alice.client.post("/arvados/v1/collections", &coll("Results", &alice.uuid)).await.unwrap();
    assert_eq!(r.code(), "duplicate_name");
    assert!(r.body["errors"][0].as_str().unwrap().contains("index_collections_on_owner_uuid_and_name"));
    // Renaming onto a taken name, or moving into an owner that holds it, is refused too.
    let c2 = alice.client.post("/arvados/v1/collections", &coll("Draft", uuid(&p))).await.unwrap().ok().unwrap();
    let r = alice
        .client
        .put(
            &format!("/arvados/v1/collections/{}", uuid(&c2)),
            &json!({"collection": {"owner_uuid": alice.uuid, "name": "Results"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.code(), "duplicate_name");
    let sub = alice
        .client
        .post(
            "/arvados/v1/groups",
            &json!({"group": {"name": "Draft", "owner_uuid": uuid(&p), "group_class": "project"}}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let r = alice
        .client
        .put(
            &format!("/arvados/v1/groups/{}", uuid(&sub)),
            &json!({"group": {"owner_uuid": alice.uuid, "name": "Results"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.code(), "duplicate_name");
    let c2_now = alice.client.get(&format!("/arvados/v1/collections/{}", uuid(&c2))).await.unwrap().ok().unwrap();
    assert_eq!((c2_now["name"].as_str(), c2_now["owner_uuid"].as_str()), (Some("Draft"), Some(uuid(&p))));
    // Editing something else of a record keeps its name as it is.
    let r = alice
        .client
        .put(&format!("/arvados/v1/collections/{}", uuid(&c1)), &json!({"collection": {"description": "d"}}))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // A trashed project frees its name; taking it back out needs it free again, or ensure_unique_name.
    let trashed =
        alice.client.post(&format!("/arvados/v1/groups/{}/trash", uuid(&p)), &json!({})).await.unwrap().ok().unwrap();
    assert_eq!((trashed["is_trashed"].as_bool(), trashed["trash_at"].is_string()), (Some(true), true));
    assert_eq!(
        alice.client.get(&format!("/arvados/v1/groups/{}", uuid(&p))).await.unwrap().status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        alice.client.get(&format!("/arvados/v1/collections/{}", uuid(&c2))).await.unwrap().status,
        StatusCode::NOT_FOUND,
        "what a trashed project holds is in the trash too"
    );
    let seen = alice
        .client
        .get(&with_query(&format!("/arvados/v1/collections/{}", uuid(&c2)), &[("include_trash", json!(true))]))
        .await
        .unwrap();
    assert_eq!(seen.ok().unwrap()["is_trashed"], true);
    let listed = alice
        .client
        .get(&with_query("/arvados/v1/groups", &[("filters", json!([["name", "=", "Results"]]))]))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(listed["items_available"], 0);
    let taker = alice.client.post("/arvados/v1/groups", &new_project("Results")).await.unwrap().ok().unwrap();
    let untrash = format!("/arvados/v1/groups/{}/untrash", uuid(&p));
    let r = alice.client.post(&untrash, &json!({})).await.unwrap();
    assert_eq!(r.code(), "duplicate_name");
    let back = alice
        .client
        .post(&with_query(&untrash, &[("ensure_unique_name", json!(true))]), &json!({}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(
        (back["is_trashed"].as_bool(), back["name"].clone()),
        (Some(false), json!(format!("Results ({})", &uuid(&p)[12..])))
    );
    let r = alice.client.post(&untrash, &json!({})).await.unwrap();
    assert_eq!((r.status, r.code()), (StatusCode::UNPROCESSABLE_ENTITY, "not_trashed"));
    assert_ne!(uuid(&taker), uuid(&p));
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
async fn users_are_set_up_activated_and_unset_up_as_in_arvados() {
    let fed = Federation::start_with(&["zzzzz", "yyyyy"], "").await;
    let c = fed.at("zzzzz");
    let admin = c.user_with("adam", json!({"is_admin": true})).await;
    let remote = fed.at("yyyyy").user("rita").await;
    wait_cached(c, &remote.uuid).await;

    let system = admin.client.get("/arvados/v1/users/system").await.unwrap().ok().unwrap();
    assert_eq!(
        (system["uuid"].as_str(), system["email"].as_str()),
        (Some("zzzzz-tpzed-000000000000000"), Some("root"))
    );

    // An inactive user may not activate itself until set up.
    let ivy = c
        .root
        .create_user(
            json!({"username": "ivy", "email": "ivy@example.org", "is_active": false}),
            Some("pw-ivy-secret-long"),
        )
        .await
        .unwrap();
    let ivy_uuid = uuid(&ivy).to_string();
    let ivy_token = c.client(&full_token(
        &c.root
            .post(
                "/arvados/v1/api_client_authorizations",
                &json!({"api_client_authorization": {"owner_uuid": ivy_uuid}}),
            )
            .await
            .unwrap()
            .ok()
            .unwrap(),
    ));
    let activate = format!("/arvados/v1/users/{ivy_uuid}/activate");
    let r = ivy_token.post(&activate, &json!({})).await.unwrap();
    assert_eq!((r.status, r.code()), (StatusCode::UNPROCESSABLE_ENTITY, "not_invited"));
    let r = ivy_token.post("/arvados/v1/users/setup", &json!({"uuid": ivy_uuid})).await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN, "setup is for admins");
    let set = admin
        .client
        .post(&with_query("/arvados/v1/users/setup", &[("uuid", json!(ivy_uuid))]), &json!({}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!((set["kind"].as_str(), set["items"][0]["is_invited"].as_bool()), (Some("arvados#HashList"), Some(true)));
    let active = ivy_token.post(&activate, &json!({})).await.unwrap().ok().unwrap();
    assert_eq!(active["is_active"], true);
    // A new user from attributes; an email is needed, and there are no virtual machines.
    let r = admin
        .client
        .post(&with_query("/arvados/v1/users/setup", &[("user", json!({"username": "noemail"}))]), &json!({}))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = admin
        .client
        .post(
            &with_query(
                "/arvados/v1/users/setup",
                &[("uuid", json!(ivy_uuid)), ("vm_uuid", json!("zzzzz-2x53u-000000000000000"))],
            ),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(r.code(), "no_virtual_machines");
    let made = admin
        .client
        .post(
            &with_query("/arvados/v1/users/setup", &[("user", json!({"email": "neo@example.org", "username": "neo"}))]),
            &json!({}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(made["items"][0]["email"], "neo@example.org");

    // A remote user is set up, activated and unset up at home only.
    for path in ["setup", "unsetup"] {
        let p = if path == "setup" {
            with_query("/arvados/v1/users/setup", &[("uuid", json!(remote.uuid))])
        } else {
            format!("/arvados/v1/users/{}/unsetup", remote.uuid)
        };
        let r = admin.client.post(&p, &json!({})).await.unwrap();
        assert_eq!((r.status, r.code()), (StatusCode::UNPROCESSABLE_ENTITY, "remote_user"), "{path}");
    }
    let r = admin.client.post("/arvados/v1/users/zzzzz-tpzed-000000000000000/unsetup", &json!({})).await.unwrap();
    assert_eq!(r.code(), "system_user");

    // Unsetup: inactive, not invited, no tokens, keys, permissions or prefs left.
    let project = admin
        .client
        .post("/arvados/v1/groups", &json!({"group": {"name": "shared", "group_class": "project"}}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    admin
        .client
        .post("/arvados/v1/links", &json!({"link": {"link_class": "permission", "name": "can_read", "tail_uuid": ivy_uuid, "head_uuid": uuid(&project)}}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    ivy_token
        .put(&format!("/arvados/v1/users/{ivy_uuid}"), &json!({"user": {"prefs": {"a": 1}}}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let gone =
        admin.client.post(&format!("/arvados/v1/users/{ivy_uuid}/unsetup"), &json!({})).await.unwrap().ok().unwrap();
    assert_eq!(
        (gone["is_active"].as_bool(), gone["is_invited"].as_bool(), gone["prefs"].clone()),
        (Some(false), Some(false), json!({}))
    );
    assert_eq!(ivy_token.get("/arvados/v1/users/current").await.unwrap().status, StatusCode::UNAUTHORIZED);
    let perms = admin.client.get(&format!("/arvados/v1/permissions/{}", uuid(&project))).await.unwrap().ok().unwrap();
    assert_eq!(perms["items_available"], 0, "{perms}");
}

#[tokio::test]
async fn contents_shared_and_permissions_list_as_arvados_does() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let bob = c.user("bob").await;
    let post = |who: &crate::harness::TestUser, path: &'static str, body: Value| {
        let client = who.client.clone();
        async move { client.post(path, &body).await.unwrap().ok().unwrap() }
    };
    let top = post(&alice, "/arvados/v1/groups", json!({"group": {"name": "top", "group_class": "project"}})).await;
    let sub = post(
        &alice,
        "/arvados/v1/groups",
        json!({"group": {"name": "sub", "owner_uuid": uuid(&top), "group_class": "project"}}),
    )
    .await;
    let c1 = post(&alice, "/arvados/v1/collections", json!({"collection": {"name": "c1", "owner_uuid": uuid(&top), "manifest_text": ". d41d8cd98f00b204e9800998ecf8427e+0 0:0:x\n"}})).await;
    let c2 =
        post(&alice, "/arvados/v1/collections", json!({"collection": {"name": "c2", "owner_uuid": uuid(&sub)}})).await;

    let list = |q: Vec<(&'static str, Value)>| {
        let client = alice.client.clone();
        async move { client.get(&with_query("/arvados/v1/groups/contents", &q)).await.unwrap().ok().unwrap() }
    };
    let items =
        |v: &Value| -> Vec<String> { v["items"].as_array().unwrap().iter().map(|i| uuid(i).to_string()).collect() };
    let direct = list(vec![("uuid", json!(uuid(&top)))]).await;
    assert_eq!(direct["kind"], "arvados#objectList");
    assert_eq!(items(&direct), [uuid(&sub), uuid(&c1)], "groups first, then collections");
    assert!(direct["items"][1].get("manifest_text").is_none(), "no manifests in contents");
    let deep = list(vec![("uuid", json!(uuid(&top))), ("recursive", json!(true)), ("count", json!("none"))]).await;
    assert_eq!(items(&deep).len(), 3);
    assert!(deep.get("items_available").is_none(), "count=none");
    let colls = list(vec![
        ("uuid", json!(uuid(&top))),
        ("recursive", json!(true)),
        ("filters", json!([["uuid", "is_a", "arvados#collection"]])),
    ])
    .await;
    assert_eq!(items(&colls), [uuid(&c2), uuid(&c1)]);
    let paged =
        list(vec![("uuid", json!(uuid(&top))), ("recursive", json!(true)), ("limit", json!(1)), ("offset", json!(1))])
            .await;
    assert_eq!((items(&paged).len(), paged["items_available"].as_u64()), (1, Some(3)));
    let with_owners = list(vec![("uuid", json!(uuid(&top))), ("include", json!(["owner_uuid"]))]).await;
    assert_eq!(with_owners["included"].as_array().unwrap().iter().map(uuid).collect::<Vec<_>>(), [uuid(&top)]);
    let home = alice.client.get(&format!("/arvados/v1/groups/{}/contents", alice.uuid)).await.unwrap().ok().unwrap();
    assert_eq!(items(&home), [uuid(&top)], "the user's home project");
    let r = alice
        .client
        .get(&with_query(
            "/arvados/v1/groups/contents",
            &[("uuid", json!(uuid(&top))), ("exclude_home_project", json!(true))],
        ))
        .await
        .unwrap();
    assert_eq!(r.code(), "exclude_home_with_parent");

    // Shared with bob: sub through a permission link; shared shows it, contents excluding home too.
    assert_eq!(items(&bob.client.get("/arvados/v1/groups/shared").await.unwrap().ok().unwrap()), Vec::<String>::new());
    let link = post(&alice, "/arvados/v1/links", json!({"link": {"link_class": "permission", "name": "can_read", "tail_uuid": bob.uuid, "head_uuid": uuid(&sub)}})).await;
    let shared = bob.client.get("/arvados/v1/groups/shared?include=owner_uuid").await.unwrap().ok().unwrap();
    assert_eq!(items(&shared), [uuid(&sub)]);
    assert_eq!(shared["included"], json!([]), "bob cannot read top, sub's owner");
    let theirs = bob.client.get("/arvados/v1/groups/contents?exclude_home_project=true").await.unwrap().ok().unwrap();
    assert_eq!(items(&theirs), [uuid(&sub)]);

    // Permissions on sub: alice manages it, bob may only read it, a stranger may not see it.
    let perms = alice.client.get(&format!("/arvados/v1/permissions/{}", uuid(&sub))).await.unwrap().ok().unwrap();
    assert_eq!(items(&perms), [uuid(&link)]);
    let r = bob.client.get(&format!("/arvados/v1/permissions/{}", uuid(&sub))).await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = bob.client.get(&format!("/arvados/v1/permissions/{}", uuid(&top))).await.unwrap();
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Trash hides a project's contents from contents too.
    alice.client.post(&format!("/arvados/v1/groups/{}/trash", uuid(&sub)), &json!({})).await.unwrap().ok().unwrap();
    let after = list(vec![("uuid", json!(uuid(&top))), ("recursive", json!(true))]).await;
    assert_eq!(items(&after), [uuid(&c1)]);
    let all = list(vec![("uuid", json!(uuid(&top))), ("recursive", json!(true)), ("include_trash", json!(true))]).await;
    assert_eq!(items(&all).len(), 3);
}

#[tokio::test]
async fn arvados_method_parameters_are_read_as_arvados_reads_them() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let admin = c.user_with("adam", json!({"is_admin": true})).await;
    // bypass_federation is for admins; cluster_id may only name this cluster.
    let r = alice.client.get("/arvados/v1/users?bypass_federation=true").await.unwrap();
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "bypass_federation_admin_only"));
    assert_eq!(admin.client.get("/arvados/v1/users?bypass_federation=true").await.unwrap().status, StatusCode::OK);
    let r = alice
        .client
        .post("/arvados/v1/collections?cluster_id=qqqqq", &json!({"collection": {"name": "x"}}))
        .await
        .unwrap();
    assert_eq!((r.status, r.code()), (StatusCode::UNPROCESSABLE_ENTITY, "cluster_id_elsewhere"));
    let ok = alice
        .client
        .post("/arvados/v1/collections?cluster_id=zzzzz", &json!({"collection": {"name": "here"}}))
        .await
        .unwrap();
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    // where, select on one record, an unwrapped JSON body, and no manifest edits.
    let q = with_query("/arvados/v1/collections", &[("where", json!({"name": ["here", "elsewhere"]}))]);
    assert_eq!(alice.client.get(&q).await.unwrap().ok().unwrap()["items_available"], 1);
    let one = alice
        .client
        .get(&with_query(&format!("/arvados/v1/collections/{}", uuid(&ok.body)), &[("select", json!(["name"]))]))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let mut keys: Vec<&String> = one.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["kind", "name", "uuid"]);
    let unwrapped = alice
        .client
        .post("/arvados/v1/groups?ensure_unique_name=true", &json!({"name": "flat", "group_class": "project"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(unwrapped["name"], "flat");
    let r = alice
        .client
        .post(
            &with_query("/arvados/v1/collections", &[("replace_files", json!({"/a": "x/b"}))]),
            &json!({"collection": {"name": "y"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.code(), "unsupported_parameter");
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

#[tokio::test]
async fn projects_hearth_makes_itself_take_a_free_name_too() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let lena = c.user("lena").await;
    let name = "Legacy data: Lena (old-1)";
    lena.client
        .post("/arvados/v1/groups", &json!({"group": {"name": name, "group_class": "project"}}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let line =
        json!({"legacy_id": "old-1", "email": "lena@example.org", "name": "Lena", "collections": [{"name": "traits"}]});
    c.root.post("/hearth/v1/admin/legacy/import", &json!({"lines": [line.to_string()]})).await.unwrap().ok().unwrap();
    lena.client.post("/hearth/v1/legacy_offers/old-1/claim", &json!({})).await.unwrap().ok().unwrap();
    let q = with_query("/arvados/v1/groups", &[("filters", json!([["name", "like", "Legacy data: Lena%"]]))]);
    let mut names: Vec<String> = lena.client.get(&q).await.unwrap().ok().unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(names[0], name);
    assert!(names[1].starts_with(&format!("{name} (")) && names[1].len() == name.len() + 18, "{names:?}");
}
