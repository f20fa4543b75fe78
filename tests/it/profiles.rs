//! Managed profiles (DESIGN §4.8, seed 003) on real daemons: a parent creates profiles and acts as
//! them — with `X-Hearth-Act-As` or by switching a browser session — without a credential of the
//! profile's own; everything done is the profile's and the audit log names the parent too. The
//! refusals (each with its status and code, nothing changed), deletion, the hand-over, merges and
//! migrations that carry profiles along, and acting at a peer on the home's signed word.

use crate::harness::{Cluster, Federation, TestUser, single};
use crate::pages::{CSRF, form_login, get, post};
use hearth::client::{Answer, Client};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const PROFILES: &str = "/hearth/v1/profiles";

/// Creates a profile of `parent`; returns its user record.
pub(crate) async fn profile_of(parent: &TestUser, first: &str, last: &str) -> Value {
    let r = parent.client.post(PROFILES, &json!({"first_name": first, "last_name": last})).await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

fn uuid(v: &Value) -> String {
    v["uuid"].as_str().unwrap_or_else(|| panic!("no uuid in {v}")).to_string()
}

async fn new_collection(c: &Client, name: &str) -> Answer {
    c.post("/arvados/v1/collections", &json!({"collection": {"name": name}})).await.unwrap()
}

/// Everything a refusal must leave as it was: users (with their profiles), objects, the audit log.
async fn snapshot(c: &Cluster) -> Value {
    let mut out = json!({});
    for path in ["users", "collections", "groups", "links", "api_client_authorizations"] {
        let v = c.root.get(&format!("/arvados/v1/{path}?limit=1000")).await.unwrap().ok().unwrap();
        out[path] = v["items"].clone();
    }
    out["logs"] = c.root.get("/arvados/v1/logs?limit=0").await.unwrap().ok().unwrap()["items_available"].clone();
    out
}

/// The audit entries matching `filters` (admin).
async fn logs(c: &Cluster, filters: Value) -> Vec<Value> {
    let q = serde_urlencoded::to_string([("filters", filters.to_string()), ("limit", "1000".into())]).unwrap();
    let v = c.root.get(&format!("/arvados/v1/logs?{q}")).await.unwrap().ok().unwrap();
    v["items"].as_array().unwrap().clone()
}

fn assert_refused(r: &Answer, status: StatusCode, code: &str, mentions: &str, case: &str) {
    assert_eq!(r.status, status, "{case}: {}", r.body);
    assert_eq!(r.code(), code, "{case}: {}", r.body);
    let msg = r.body["errors"][0].as_str().unwrap_or_default();
    assert!(msg.contains(mentions), "{case}: the message should name {mentions:?}: {msg}");
    assert!(r.body["error_token"].is_string(), "{case}: Arvados-shaped body: {}", r.body);
}

#[tokio::test]
async fn a_parent_creates_lists_and_renames_profiles_that_hold_no_credentials() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let ann = c.user("ann").await;
    let bob = c.user("bob").await;

    let kit = profile_of(&ann, "Kit", "Lee").await;
    let kit_uuid = uuid(&kit);
    assert_eq!(kit["managed_by"], ann.uuid.as_str(), "{kit}");
    assert!(kit["email"].is_null() && kit["username"].is_null(), "{kit}");
    assert_eq!(kit["is_admin"], false);
    assert_eq!(kit["is_active"], true);
    let lou = ann.client.post(PROFILES, &json!({"first_name": "Lou", "username": "lou"})).await.unwrap().ok().unwrap();

    // Listed for the parent, in the users API too (managed_by shown); nobody else sees them.
    let mine = ann.client.get(PROFILES).await.unwrap().ok().unwrap();
    let mut names: Vec<&str> =
        mine["items"].as_array().unwrap().iter().map(|p| p["first_name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["Kit", "Lou"]);
    let users = ann.client.get("/arvados/v1/users").await.unwrap().ok().unwrap();
    assert_eq!(users["items_available"], 3, "ann and her two profiles: {users}");
    let got = ann.client.get(&format!("/arvados/v1/users/{kit_uuid}")).await.unwrap().ok().unwrap();
    assert_eq!(got["managed_by"], ann.uuid.as_str());
    let admin_view = c.root.get(&format!("/arvados/v1/users/{kit_uuid}")).await.unwrap().ok().unwrap();
    assert_eq!(admin_view["managed_by"], ann.uuid.as_str());
    let q = serde_urlencoded::to_string([("filters", json!([["managed_by", "=", ann.uuid]]).to_string())]).unwrap();
    let filtered = c.root.get(&format!("/arvados/v1/users?{q}")).await.unwrap().ok().unwrap();
    assert_eq!(filtered["items_available"], 2, "admins filter users by managed_by: {filtered}");
    assert_eq!(bob.client.get(PROFILES).await.unwrap().ok().unwrap()["items"], json!([]));
    assert_eq!(bob.client.get(&format!("/arvados/v1/users/{kit_uuid}")).await.unwrap().status, StatusCode::NOT_FOUND);

    // Renames: PUT and PATCH, by the parent or an admin; anyone else is told it does not exist.
    let r =
        ann.client.put(&format!("{PROFILES}/{kit_uuid}"), &json!({"first_name": "Kitty"})).await.unwrap().ok().unwrap();
    assert_eq!((r["first_name"].as_str(), r["last_name"].as_str()), (Some("Kitty"), Some("Lee")));
    let r = ann
        .client
        .call(reqwest::Method::PATCH, &format!("{PROFILES}/{kit_uuid}"), Some(&json!({"last_name": "Ng"})))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(r["full_name"], "Kitty Ng");
    c.root.put(&format!("{PROFILES}/{}", uuid(&lou)), &json!({"username": "louis"})).await.unwrap().ok().unwrap();
    let before = snapshot(c).await;
    let r = bob.client.put(&format!("{PROFILES}/{kit_uuid}"), &json!({"first_name": "Mine"})).await.unwrap();
    assert_refused(&r, StatusCode::NOT_FOUND, "profile_not_found", &kit_uuid, "another user renames");

    // Bad input: refused with a message naming the problem, nothing changed.
    let cases: Vec<(Value, StatusCode, &str, &str)> = vec![
        (json!({"last_name": "Lee"}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_profile", "first_name"),
        (json!({"first_name": "  "}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_profile", "first_name"),
        (json!({"first_name": 7}), StatusCode::UNPROCESSABLE_ENTITY, "wrong_type", "first_name"),
        (json!({"first_name": "x".repeat(256)}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_profile", "first_name"),
        (
            json!({"first_name": "Max", "email": "max@example.org"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_attribute",
            "email",
        ),
        (
            json!({"first_name": "Max", "username": "louis"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "username_taken",
            "louis",
        ),
        (json!({"first_name": "Max", "username": "ann"}), StatusCode::UNPROCESSABLE_ENTITY, "username_taken", "ann"),
        (
            json!({"first_name": "Max", "username": "no spaces"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_username",
            "username",
        ),
    ];
    for (body, status, code, mentions) in cases {
        let r = ann.client.post(PROFILES, &body).await.unwrap();
        assert_refused(&r, status, code, mentions, &body.to_string());
    }
    let r = ann.client.put(&format!("{PROFILES}/{kit_uuid}"), &json!({"first_name": null})).await.unwrap();
    assert_refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_profile", "first_name", "null first_name");
    let r = ann.client.put(&format!("{PROFILES}/not-a-uuid"), &json!({"first_name": "X"})).await.unwrap();
    assert_refused(&r, StatusCode::NOT_FOUND, "profile_not_found", "not-a-uuid", "malformed uuid");
    let r = ann.client.put(&format!("{PROFILES}/{}", bob.uuid), &json!({"first_name": "X"})).await.unwrap();
    assert_refused(&r, StatusCode::NOT_FOUND, "profile_not_found", &bob.uuid, "not a profile");

    // No credentials of its own: no login, no password, no token, never admin, no email but by a hand-over.
    let r = c.anon.post("/hearth/v1/login", &json!({"login": "louis", "password": "anything-at-all"})).await.unwrap();
    assert_refused(&r, StatusCode::FORBIDDEN, "profile_cannot_log_in", "managed profile", "a profile logs in");
    let r = c
        .root
        .post(&format!("/hearth/v1/users/{kit_uuid}/password"), &json!({"password": "a-long-password"}))
        .await
        .unwrap();
    assert_refused(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "profile_has_no_password",
        &kit_uuid,
        "password for a profile",
    );
    let r = c
        .root
        .post("/arvados/v1/api_client_authorizations", &json!({"api_client_authorization": {"owner_uuid": kit_uuid}}))
        .await
        .unwrap();
    assert_refused(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "profile_cannot_hold_tokens",
        &kit_uuid,
        "a token for a profile",
    );
    for (attrs, mentions) in [
        (json!({"is_admin": true}), "never admin"),
        (json!({"email": "kit@example.org"}), "no email"),
        (json!({"redirect_to_user_uuid": bob.uuid}), "redirected"),
    ] {
        let r = c.root.put(&format!("/arvados/v1/users/{kit_uuid}"), &json!({"user": attrs})).await.unwrap();
        assert_refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "profile_field", mentions, &attrs.to_string());
    }
    // Nor is a profile made, or unmade, through the users API.
    let r = c
        .root
        .put(&format!("/arvados/v1/users/{}", bob.uuid), &json!({"user": {"managed_by": ann.uuid}}))
        .await
        .unwrap();
    assert_refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "read_only", "managed_by", "users API sets managed_by");
    let r = c.root.put(&format!("/arvados/v1/users/{kit_uuid}"), &json!({"user": {"managed_by": null}})).await.unwrap();
    assert_refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "read_only", "hand_over", "users API clears managed_by");
    let r =
        c.root.post("/arvados/v1/users", &json!({"user": {"username": "max", "managed_by": ann.uuid}})).await.unwrap();
    assert_refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "read_only", "managed_by", "users API creates a profile");
    // Acting as a profile: no tokens, no profiles of its own.
    let as_kit = ann.client.acting_as(&kit_uuid);
    let r = as_kit.post("/arvados/v1/api_client_authorizations", &json!({})).await.unwrap();
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "profile_cannot_create_tokens",
        "cannot hold or create tokens",
        "acting, a token",
    );
    let r = as_kit.post(PROFILES, &json!({"first_name": "Grandchild"})).await.unwrap();
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "profile_cannot_manage_profiles",
        "cannot manage profiles",
        "acting, a profile",
    );
    let r = as_kit
        .post(&format!("/hearth/v1/users/{kit_uuid}/password"), &json!({"password": "a-long-password"}))
        .await
        .unwrap();
    assert_refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "profile_has_no_password", &kit_uuid, "acting, a password");
    assert_eq!(snapshot(c).await, before, "refusals changed nothing");

    // A profile is never merged, neither away nor into.
    for (old, new, code) in [(&kit_uuid, &bob.uuid, "merge_profile"), (&bob.uuid, &kit_uuid, "merge_into_profile")] {
        let q = serde_urlencoded::to_string([
            ("old_user_uuid", old.as_str()),
            ("new_user_uuid", new.as_str()),
            ("new_owner_uuid", new.as_str()),
            ("redirect_to_new_user", "true"),
        ])
        .unwrap();
        let r = c.root.post(&format!("/arvados/v1/users/merge?{q}"), &json!({})).await.unwrap();
        assert_refused(&r, StatusCode::UNPROCESSABLE_ENTITY, code, "managed profile", code);
    }
    let q =
        serde_urlencoded::to_string([("new_user_token", bob.token.as_str()), ("new_owner_uuid", bob.uuid.as_str())])
            .unwrap();
    let r = as_kit.post(&format!("/arvados/v1/users/merge?{q}"), &json!({})).await.unwrap();
    assert_refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "merge_profile", "managed profile", "acting, the token merge");
    assert_eq!(snapshot(c).await, before, "refused merges changed nothing");

    // Every change was audited, by the parent (or the admin).
    let created = logs(c, json!([["event_type", "=", "create_profile"]])).await;
    assert_eq!(created.len(), 2);
    assert!(created.iter().all(|e| e["modified_by_user_uuid"] == ann.uuid.as_str()));
    let renamed = logs(c, json!([["event_type", "=", "update_profile"], ["object_uuid", "=", kit_uuid]])).await;
    assert_eq!(renamed.len(), 2);
}

#[tokio::test]
async fn acting_as_a_profile_makes_everything_its_own_and_the_log_names_the_parent() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let ann = c.user("ann").await;
    let bob = c.user("bob").await;
    let admin = c.user_with("ada", json!({"is_admin": true})).await;
    let kit = uuid(&profile_of(&ann, "Kit", "Lee").await);
    let private = ann
        .client
        .post("/arvados/v1/groups", &json!({"group": {"name": "ann's private"}}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let shared =
        ann.client.post("/arvados/v1/groups", &json!({"group": {"name": "for kit"}})).await.unwrap().ok().unwrap();
    ann.client
        .post(
            "/arvados/v1/links",
            &json!({"link": {"link_class": "permission", "name": "can_write", "tail_uuid": kit, "head_uuid": uuid(&shared)}}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();

    let as_kit = ann.client.acting_as(&kit);
    let me = as_kit.get("/arvados/v1/users/current").await.unwrap().ok().unwrap();
    assert_eq!(me["uuid"], kit.as_str(), "users/current answers the profile");
    assert_eq!(me["managed_by"], ann.uuid.as_str());

    // New objects are the profile's, modified by it.
    let coll = new_collection(&as_kit, "kit's drawings").await.ok().unwrap();
    assert_eq!(coll["owner_uuid"], kit.as_str());
    assert_eq!(coll["modified_by_user_uuid"], kit.as_str());
    let inside = as_kit
        .post(
            "/arvados/v1/collections",
            &json!({"collection": {"name": "in the shared project", "owner_uuid": uuid(&shared)}}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(inside["modified_by_user_uuid"], kit.as_str());
    let upd = as_kit
        .put(
            &format!("/arvados/v1/collections/{}", uuid(&coll)),
            &json!({"collection": {"name": "kit's best drawings"}}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(upd["modified_by_user_uuid"], kit.as_str());

    // Permissions are the profile's: what it owns or was shared with it, not the parent's private projects.
    let r = as_kit.get(&format!("/arvados/v1/groups/{}", uuid(&private))).await.unwrap();
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let groups = as_kit.get("/arvados/v1/groups").await.unwrap().ok().unwrap();
    let seen: Vec<&str> = groups["items"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(seen, ["for kit"]);
    let r = as_kit
        .post("/arvados/v1/collections", &json!({"collection": {"name": "sneaky", "owner_uuid": uuid(&private)}}))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // The parent without the header is itself again.
    assert_eq!(ann.client.get("/arvados/v1/users/current").await.unwrap().ok().unwrap()["uuid"], ann.uuid.as_str());

    // An admin may act as anyone's profile; the log names the admin as the one acting.
    let by_admin = new_collection(&admin.client.acting_as(&kit), "from the admin").await.ok().unwrap();
    assert_eq!(by_admin["owner_uuid"], kit.as_str());

    // Every entry written while acting names the profile and the account behind it; an admin lists
    // everything a parent did as any profile by that field.
    let as_ann = logs(c, json!([["acting_parent_uuid", "=", ann.uuid]])).await;
    let mut events: Vec<(&str, &str)> =
        as_ann.iter().map(|e| (e["event_type"].as_str().unwrap(), e["object_uuid"].as_str().unwrap())).collect();
    events.sort();
    let mut want = [("create", uuid(&coll)), ("create", uuid(&inside)), ("update", uuid(&coll))];
    want.sort();
    assert_eq!(events, want.iter().map(|(e, u)| (*e, u.as_str())).collect::<Vec<_>>());
    assert!(as_ann.iter().all(|e| e["modified_by_user_uuid"] == kit.as_str()), "{as_ann:?}");
    let as_admin = logs(c, json!([["acting_parent_uuid", "=", admin.uuid]])).await;
    assert_eq!(as_admin.len(), 1);
    assert_eq!(as_admin[0]["object_uuid"], uuid(&by_admin).as_str());
    let own = logs(c, json!([["modified_by_user_uuid", "=", ann.uuid], ["event_type", "=", "create"]])).await;
    assert!(own.iter().all(|e| e["acting_parent_uuid"].is_null()), "ann's own entries act for nobody: {own:?}");
    let r = bob.client.get("/arvados/v1/logs").await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN, "the log is for admins");
}

#[tokio::test]
async fn who_may_act_as_whom_every_refusal_names_its_problem_and_changes_nothing() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let ann = c.user("ann").await;
    let bob = c.user("bob").await;
    let kit = uuid(&profile_of(&ann, "Kit", "Lee").await);
    ann.client.put(&format!("{PROFILES}/{kit}"), &json!({"username": "kit"})).await.unwrap().ok().unwrap();
    let lou = uuid(&profile_of(&ann, "Lou", "Lee").await);
    let max = uuid(&profile_of(&bob, "Max", "Roe").await);
    let gone = uuid(&profile_of(&ann, "Gone", "Lee").await);
    ann.client.delete(&format!("{PROFILES}/{gone}")).await.unwrap().ok().unwrap();
    let scoped = ann
        .client
        .post(
            "/arvados/v1/api_client_authorizations",
            &json!({"api_client_authorization": {"scopes": ["POST /arvados/v1/collections", "GET /arvados/v1/users/current"]}}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    let scoped = c.client(&crate::harness::full_token(&scoped));
    // A browser session of ann's switched to kit: its token now acts as kit.
    let cookies = form_login(c, "ann", &ann.password).await;
    let session = cookies.split("hearth_session=").nth(1).unwrap().to_string();
    let p = post(c, "/account/switch", &cookies, &[("csrf", CSRF), ("profile_uuid", &kit)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let switched = c.client(&session);
    assert_eq!(switched.get("/arvados/v1/users/current").await.unwrap().ok().unwrap()["uuid"], kit.as_str());
    // The one who switched may act as its profile; fine before every refusal below.
    assert_eq!(new_collection(&ann.client.acting_as(&kit), "allowed").await.status, StatusCode::OK);

    let before = snapshot(c).await;
    let raw = |token: &str, values: &[&str]| {
        let mut req = c.anon.http().post(format!("{}/arvados/v1/collections", c.url)).bearer_auth(token.to_string());
        for v in values {
            req = req.header("X-Hearth-Act-As", *v);
        }
        req.json(&json!({"collection": {"name": "refused"}}))
    };
    let cases: Vec<(&str, Client, StatusCode, &str, String)> = vec![
        (
            "another parent's profile",
            bob.client.acting_as(&kit),
            StatusCode::FORBIDDEN,
            "act_as_not_permitted",
            kit.clone(),
        ),
        (
            "someone else's profile",
            ann.client.acting_as(&max),
            StatusCode::FORBIDDEN,
            "act_as_not_permitted",
            max.clone(),
        ),
        (
            "a user that is not managed",
            ann.client.acting_as(&bob.uuid),
            StatusCode::FORBIDDEN,
            "act_as_not_permitted",
            bob.uuid.clone(),
        ),
        ("oneself", ann.client.acting_as(&ann.uuid), StatusCode::FORBIDDEN, "act_as_not_permitted", ann.uuid.clone()),
        ("a deleted profile", ann.client.acting_as(&gone), StatusCode::FORBIDDEN, "act_as_not_permitted", gone.clone()),
        (
            "an unknown user",
            ann.client.acting_as("zzzzz-tpzed-nosuchuser00000"),
            StatusCode::FORBIDDEN,
            "act_as_not_permitted",
            "zzzzz-tpzed-nosuchuser00000".into(),
        ),
        ("a scoped token", scoped.acting_as(&kit), StatusCode::FORBIDDEN, "act_as_scoped_token", "[\"all\"]".into()),
        (
            "a profile acting as another",
            switched.acting_as(&lou),
            StatusCode::FORBIDDEN,
            "profile_cannot_act_as",
            "managed profile".into(),
        ),
        ("a malformed uuid", ann.client.acting_as("kit"), StatusCode::BAD_REQUEST, "invalid_act_as", "\"kit\"".into()),
        (
            "an empty header",
            ann.client.acting_as(""),
            StatusCode::BAD_REQUEST,
            "invalid_act_as",
            "X-Hearth-Act-As".into(),
        ),
        (
            "a uuid of a collection",
            ann.client.acting_as("zzzzz-4zz18-000000000000000"),
            StatusCode::BAD_REQUEST,
            "invalid_act_as",
            "not a user uuid".into(),
        ),
    ];
    for (case, client, status, code, mentions) in &cases {
        let r = new_collection(client, "refused").await;
        assert_refused(&r, *status, code, mentions, case);
        // Reads are refused alike: the header is judged before any handler runs.
        let r = client.get("/arvados/v1/users/current").await.unwrap();
        assert_eq!(r.status, *status, "{case}, a read: {}", r.body);
    }
    // The header twice.
    let resp = raw(&ann.token, &[&kit, &lou]).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error_code"], "invalid_act_as", "{body}");
    // Without valid credentials the header is not even looked at.
    let r = c
        .client("v2/zzzzz-gj3su-000000000000000/nosuchsecretnosuchsecretnosuchsecret")
        .acting_as("kit")
        .get("/arvados/v1/users/current")
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A profile cannot log in (form or API), so it never has a token to send the header with.
    let r = c.anon.post("/hearth/v1/login", &json!({"login": "kit", "password": "whatever-it-is"})).await.unwrap();
    assert_refused(&r, StatusCode::FORBIDDEN, "profile_cannot_log_in", "cannot log in", "a profile logs in");
    let p = post(
        c,
        "/login",
        &format!("hearth_csrf={CSRF}"),
        &[("login", "kit"), ("password", "whatever-it-is"), ("csrf", CSRF)],
    )
    .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(p.body.contains("is a managed profile: it has no password and cannot log in"), "{}", p.body);
    assert!(p.cookie("hearth_session").is_none(), "no session for a profile");
    // A session already switched cannot switch to another profile either.
    let p = post(c, "/account/switch", &cookies, &[("csrf", CSRF), ("profile_uuid", &lou)]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    assert!(p.body.contains("a managed profile cannot act as another profile"), "{}", p.body);
    assert_eq!(snapshot(c).await, before, "refusals changed nothing");
}

#[tokio::test]
async fn a_profile_is_deleted_only_when_it_owns_nothing_or_hands_its_objects_to_the_parent() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let ann = c.user("ann").await;
    let bob = c.user("bob").await;
    let kit = uuid(&profile_of(&ann, "Kit", "Lee").await);
    let as_kit = ann.client.acting_as(&kit);
    let coll = uuid(&new_collection(&as_kit, "kit's").await.ok().unwrap());
    let proj = uuid(
        &as_kit.post("/arvados/v1/groups", &json!({"group": {"name": "kit's project"}})).await.unwrap().ok().unwrap(),
    );
    // Bob shares a project with kit: the link names kit but is bob's.
    let bobs =
        uuid(&bob.client.post("/arvados/v1/groups", &json!({"group": {"name": "bob's"}})).await.unwrap().ok().unwrap());
    let share = uuid(
        &bob.client
            .post(
                "/arvados/v1/links",
                &json!({"link": {"link_class": "permission", "name": "can_read", "tail_uuid": kit, "head_uuid": bobs}}),
            )
            .await
            .unwrap()
            .ok()
            .unwrap(),
    );

    let before = snapshot(c).await;
    let r = ann.client.delete(&format!("{PROFILES}/{kit}")).await.unwrap();
    assert_refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "profile_owns_objects", "owns 2 objects", "owns objects");
    assert!(r.body["errors"][0].as_str().unwrap().contains("hand_objects_to_parent=true"), "{}", r.body);
    let r = ann.client.delete(&format!("{PROFILES}/{kit}?hand_objects_to_parent=maybe")).await.unwrap();
    assert_refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_parameter", "hand_objects_to_parent", "a bad flag");
    let r = bob.client.delete(&format!("{PROFILES}/{kit}?hand_objects_to_parent=true")).await.unwrap();
    assert_refused(&r, StatusCode::NOT_FOUND, "profile_not_found", &kit, "not the parent");
    let r = as_kit.delete(&format!("{PROFILES}/{kit}")).await.unwrap();
    assert_refused(&r, StatusCode::FORBIDDEN, "profile_cannot_manage_profiles", "cannot manage profiles", "itself");
    assert_eq!(snapshot(c).await, before, "refused deletions changed nothing");

    let done = ann.client.delete(&format!("{PROFILES}/{kit}?hand_objects_to_parent=true")).await.unwrap().ok().unwrap();
    assert_eq!(done["deleted"], true);
    let mut handed: Vec<&str> =
        done["handed_to_parent"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    handed.sort();
    let mut want = vec![coll.as_str(), proj.as_str()];
    want.sort();
    assert_eq!(handed, want);
    assert_eq!(done["dropped"], json!([share]), "the link naming kit went with it");
    for o in [&coll, &proj] {
        let kind = if o.contains("-4zz18-") { "collections" } else { "groups" };
        let got = ann.client.get(&format!("/arvados/v1/{kind}/{o}")).await.unwrap().ok().unwrap();
        assert_eq!(got["owner_uuid"], ann.uuid.as_str());
    }
    assert_eq!(c.root.get(&format!("/arvados/v1/links/{share}")).await.unwrap().status, StatusCode::NOT_FOUND);
    assert_eq!(c.root.get(&format!("/arvados/v1/users/{kit}")).await.unwrap().status, StatusCode::NOT_FOUND);
    assert_eq!(ann.client.get(PROFILES).await.unwrap().ok().unwrap()["items"], json!([]));
    let r = new_collection(&as_kit, "after").await;
    assert_refused(&r, StatusCode::FORBIDDEN, "act_as_not_permitted", &kit, "acting as a deleted profile");
    let entry = logs(c, json!([["event_type", "=", "delete_profile"]])).await;
    assert_eq!(entry.len(), 1);
    assert_eq!(entry[0]["object_uuid"], kit.as_str());
    assert_eq!(entry[0]["modified_by_user_uuid"], ann.uuid.as_str());

    // One that owns nothing goes without the flag.
    let lou = uuid(&profile_of(&ann, "Lou", "Lee").await);
    ann.client.delete(&format!("{PROFILES}/{lou}")).await.unwrap().ok().unwrap();
}

#[tokio::test]
async fn a_profile_handed_over_to_its_person_is_an_ordinary_account() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let ann = c.user("ann").await;
    let bob = c.user("bob").await;
    let kit = uuid(&profile_of(&ann, "Kit", "Lee").await);
    ann.client.put(&format!("{PROFILES}/{kit}"), &json!({"username": "kit"})).await.unwrap().ok().unwrap();
    let coll = uuid(&new_collection(&ann.client.acting_as(&kit), "kit's").await.ok().unwrap());
    let cookies = form_login(c, "ann", &ann.password).await;
    post(c, "/account/switch", &cookies, &[("csrf", CSRF), ("profile_uuid", &kit)]).await;
    let hand = format!("{PROFILES}/{kit}/hand_over");

    let before = snapshot(c).await;
    let cases: Vec<(&TestUser, Value, StatusCode, &str, &str)> = vec![
        (
            &ann,
            json!({"email": "not an address", "password": "kit-own-password"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
            "not an address",
        ),
        (
            &ann,
            json!({"email": "kit@example.org", "password": "short"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "password_too_short",
            "password",
        ),
        (&ann, json!({"password": "kit-own-password"}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_hand_over", "email"),
        (
            &ann,
            json!({"email": "kit@example.org", "password": "kit-own-password", "is_admin": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_attribute",
            "is_admin",
        ),
        (
            &bob,
            json!({"email": "kit@example.org", "password": "kit-own-password"}),
            StatusCode::NOT_FOUND,
            "profile_not_found",
            &kit,
        ),
    ];
    for (who, body, status, code, mentions) in cases {
        let r = who.client.post(&hand, &body).await.unwrap();
        assert_refused(&r, status, code, mentions, &body.to_string());
    }
    let r = ann
        .client
        .acting_as(&kit)
        .post(&hand, &json!({"email": "kit@example.org", "password": "kit-own-password"}))
        .await
        .unwrap();
    assert_refused(&r, StatusCode::FORBIDDEN, "profile_cannot_manage_profiles", "cannot manage profiles", "itself");
    assert_eq!(snapshot(c).await, before, "refused hand-overs changed nothing");

    let grown = ann
        .client
        .post(&hand, &json!({"email": "Kit@Example.org", "password": "kit-own-password"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(grown["email"], "kit@example.org");
    assert_eq!(grown["email_verified"], false, "unverified until confirmed");
    assert!(grown["managed_by"].is_null(), "{grown}");
    // Kit logs in with its own password and still owns what it made.
    let (token, user) = c.anon.login("kit", "kit-own-password", None).await.unwrap();
    assert_eq!(user["uuid"], kit.as_str());
    let kit_client = c.client(&token);
    assert_eq!(
        kit_client.get(&format!("/arvados/v1/collections/{coll}")).await.unwrap().ok().unwrap()["owner_uuid"],
        kit.as_str()
    );
    // The parent can no longer act as it, and its switched session is back to itself.
    let r = new_collection(&ann.client.acting_as(&kit), "after").await;
    assert_refused(&r, StatusCode::FORBIDDEN, "act_as_not_permitted", &kit, "acting after the hand-over");
    let page = get(c, "/account", &cookies).await;
    assert!(page.body.contains(&ann.uuid) && !page.body.contains("acting-banner"), "{}", page.body);
    assert_eq!(ann.client.get(PROFILES).await.unwrap().ok().unwrap()["items"], json!([]));
    assert_eq!(ann.client.get(&format!("/arvados/v1/users/{kit}")).await.unwrap().status, StatusCode::NOT_FOUND);
    // The log says who handed it over, and when.
    let e = logs(c, json!([["event_type", "=", "hand_over_profile"]])).await;
    assert_eq!(e.len(), 1);
    assert_eq!(e[0]["object_uuid"], kit.as_str());
    assert_eq!(e[0]["modified_by_user_uuid"], ann.uuid.as_str());
    assert_eq!(e[0]["properties"]["former_parent"], ann.uuid.as_str());
    assert!(e[0]["event_at"].is_string());
    // It is no longer a profile to manage.
    let r = ann.client.post(&hand, &json!({"email": "kit@example.org", "password": "kit-own-password"})).await.unwrap();
    assert_refused(&r, StatusCode::NOT_FOUND, "profile_not_found", &kit, "handed over twice");
}

#[tokio::test]
async fn a_merged_parents_profiles_follow_it_in_the_same_transaction() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let old = c.user("olda").await;
    let new = c.user("newa").await;
    let kit = uuid(&profile_of(&old, "Kit", "Lee").await);
    let lou = uuid(&profile_of(&new, "Lou", "Lee").await);
    let q = serde_urlencoded::to_string([
        ("new_user_token", new.token.as_str()),
        ("new_owner_uuid", new.uuid.as_str()),
        ("redirect_to_new_user", "true"),
    ])
    .unwrap();
    let r = old.client.post(&format!("/arvados/v1/users/merge?{q}"), &json!({})).await.unwrap().ok().unwrap();
    assert_eq!(r["redirect_to_user_uuid"], new.uuid.as_str());
    let got = c.root.get(&format!("/arvados/v1/users/{kit}")).await.unwrap().ok().unwrap();
    assert_eq!(got["managed_by"], new.uuid.as_str(), "managed_by follows the merge");
    let mut listed: Vec<String> =
        new.client.get(PROFILES).await.unwrap().ok().unwrap()["items"].as_array().unwrap().iter().map(uuid).collect();
    listed.sort();
    let mut want = vec![kit.clone(), lou];
    want.sort();
    assert_eq!(listed, want);
    // The new account acts as it; so does the old account's token (it now acts as the new account).
    for (i, client) in [&new.client, &old.client].into_iter().enumerate() {
        let coll = new_collection(&client.acting_as(&kit), &format!("after the merge {i}")).await.ok().unwrap();
        assert_eq!(coll["owner_uuid"], kit.as_str());
    }
    let merge = logs(c, json!([["event_type", "=", "merge"]])).await;
    assert_eq!(merge[0]["properties"]["moved"]["profiles"], 1, "{:?}", merge[0]);
}

/// At a peer the parent's salted token acts as its profile on the home's signed word (the login
/// notice's and the token assertion's profile list), never on the request's; a profile deleted at
/// home stops working there within seconds; a migration takes a parent's profiles to its new
/// account at their cluster.
#[tokio::test]
async fn at_a_peer_the_parent_acts_as_its_profile_on_the_homes_word_until_home_deletes_it() {
    let fed = Federation::start(&["aaaaa", "bbbbb"]).await;
    let (a, b) = (fed.at("aaaaa"), fed.at("bbbbb"));
    let ann = a.user("ann").await;
    let bob = a.user("bob").await;
    let carl = b.user("carl").await;
    let kit = uuid(&profile_of(&ann, "Kit", "Lee").await);
    let (salted, _) = a.anon.login("ann", &ann.password, Some("bbbbb")).await.unwrap();
    let (bob_salted, _) = a.anon.login("bob", &bob.password, Some("bbbbb")).await.unwrap();
    let at_b = b.client(&salted);

    // bbbbb learns kit from ann's record (the login notice or the token assertion).
    let me = at_b.acting_as(&kit).get("/arvados/v1/users/current").await.unwrap().ok().unwrap();
    assert_eq!(me["uuid"], kit.as_str());
    assert_eq!(me["managed_by"], ann.uuid.as_str());
    assert_eq!(me["home_cluster"], "aaaaa");
    let coll = new_collection(&at_b.acting_as(&kit), "made at bbbbb").await.ok().unwrap();
    assert_eq!(coll["owner_uuid"], kit.as_str());
    let e = logs(b, json!([["acting_parent_uuid", "=", ann.uuid]])).await;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0]["modified_by_user_uuid"], kit.as_str());

    // Nobody else: not another user of ann's home, not ann as a user her home does not list.
    let before = snapshot(b).await;
    let r = new_collection(&b.client(&bob_salted).acting_as(&kit), "bob").await;
    assert_refused(&r, StatusCode::FORBIDDEN, "act_as_not_permitted", &kit, "another user of the home");
    let r = new_collection(&at_b.acting_as(&bob.uuid), "bob").await;
    assert_refused(&r, StatusCode::FORBIDDEN, "act_as_not_permitted", &bob.uuid, "a user the home does not list");
    let r = new_collection(&at_b.acting_as(&carl.uuid), "carl").await;
    assert_refused(&r, StatusCode::FORBIDDEN, "act_as_not_permitted", &carl.uuid, "a user of the peer");
    assert_eq!(snapshot(b).await, before, "refusals at the peer changed nothing");

    // Deleted at home: refused at the peer within seconds (the user_updated notice).
    ann.client.delete(&format!("{PROFILES}/{kit}")).await.unwrap().ok().unwrap();
    let started = Instant::now();
    loop {
        let r = new_collection(&at_b.acting_as(&kit), "after").await;
        if r.status == StatusCode::FORBIDDEN {
            assert_eq!(r.code(), "act_as_not_permitted", "{}", r.body);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "bbbbb still lets ann act as kit: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cached = b.root.get(&format!("/arvados/v1/users/{kit}")).await.unwrap().ok().unwrap();
    assert!(cached["managed_by"].is_null() && cached["is_active"] == false, "{cached}");

    // A new profile reaches the peer too; the peer's admin cannot act as a peer's profile.
    let lou = uuid(&profile_of(&ann, "Lou", "Lee").await);
    let started = Instant::now();
    while new_collection(&at_b.acting_as(&lou), "lou").await.status != StatusCode::OK {
        assert!(started.elapsed() < Duration::from_secs(20), "bbbbb never learned lou");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = new_collection(&b.root.acting_as(&lou), "root").await;
    assert_refused(&r, StatusCode::FORBIDDEN, "act_as_not_permitted", "another cluster", "the peer's admin");
}

#[tokio::test]
async fn a_migrated_parent_takes_its_profiles_along() {
    let fed = Federation::start(&["aaaaa", "bbbbb"]).await;
    let (a, b) = (fed.at("aaaaa"), fed.at("bbbbb"));
    let (home, wrong) = crate::migration::person_at_two(&fed, "aaaaa", "bbbbb", "ada").await;
    // A profile made at the wrong cluster, by the account that will move.
    let kit = uuid(&profile_of(&wrong, "Kit", "Lee").await);
    let coll = uuid(&new_collection(&wrong.client.acting_as(&kit), "kit's").await.ok().unwrap());
    let m =
        wrong.client.post("/hearth/v1/migrations", &json!({"target_cluster": "aaaaa"})).await.unwrap().ok().unwrap();
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
    let r = wrong
        .client
        .post(
            &format!("/hearth/v1/migrations/{}/confirm", m["uuid"].as_str().unwrap()),
            &json!({"grant": l["migration_grant"]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(r["moved"]["profiles"], 1, "{r}");
    // At bbbbb (where the profile lives) it is now managed by the home account, which acts as it
    // with its own token salted for bbbbb; the old token (now the home account's) does too.
    let got = b.root.get(&format!("/arvados/v1/users/{kit}")).await.unwrap().ok().unwrap();
    assert_eq!(got["managed_by"], home.uuid.as_str());
    let salted = l["api_token"].as_str().unwrap();
    for client in [b.client(salted), wrong.client.clone()] {
        let me = client.acting_as(&kit).get("/arvados/v1/users/current").await.unwrap().ok().unwrap();
        assert_eq!(me["uuid"], kit.as_str());
        assert_eq!(
            client.acting_as(&kit).get(&format!("/arvados/v1/collections/{coll}")).await.unwrap().status,
            StatusCode::OK
        );
    }
}

/// A peer takes who manages whom from the parent's home record alone, as the record's home
/// sequence orders it: a batch that lists a profile and then (in a newer record) drops it leaves
/// it unmanaged; a record listing a user of another cluster as a profile is refused whole and
/// changes nothing; an older cluster's record, without the `profiles` field, means no profiles.
#[tokio::test]
async fn a_peer_learns_who_manages_whom_only_from_the_parents_home_record() {
    use crate::federation::{NOTICES, batch, body_of, key_of, post_signed, record};
    use federation_proto::notice::{Notice, ProfileRecord};
    let fed = Federation::start(&["aaaaa", "bbbbb"]).await;
    let (a, b) = (fed.at("aaaaa"), fed.at("bbbbb"));
    let key = key_of(a);
    let (parent, kit) = ("aaaaa-tpzed-parentrecord001", "aaaaa-tpzed-profilerecord01");
    let listing = |seq: u64, profiles: &[&str]| {
        let mut r = record(parent, seq, "Ann");
        r.profiles = profiles
            .iter()
            .map(|p| ProfileRecord {
                uuid: p.parse().unwrap(),
                first_name: "Kit".into(),
                last_name: "Lee".into(),
                username: None,
            })
            .collect();
        r
    };
    let send = |notices: Vec<Notice>| {
        let body = body_of(&batch("aaaaa", "bbbbb", notices));
        let key = key.clone();
        async move { post_signed(b, "aaaaa", &key, NOTICES, &body).await }
    };
    let managed_by = |uuid: &'static str| async move {
        let r = b.root.get(&format!("/arvados/v1/users/{uuid}")).await.unwrap().ok().unwrap();
        r["managed_by"].clone()
    };

    // Listed, then dropped by a newer record in the same batch: not managed.
    let r =
        send(vec![Notice::Login { user: listing(10, &[kit]) }, Notice::UserUpdated { user: listing(11, &[]) }]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(managed_by(kit).await, Value::Null);
    // Listed by a newer record: managed, with the names the list gives.
    send(vec![Notice::UserUpdated { user: listing(12, &[kit]) }]).await.ok().unwrap();
    assert_eq!(managed_by(kit).await, parent);
    let cached = b.root.get(&format!("/arvados/v1/users/{kit}")).await.unwrap().ok().unwrap();
    assert_eq!((cached["first_name"].as_str(), cached["is_admin"].as_bool()), (Some("Kit"), Some(false)));
    // An older record that drops it changes nothing.
    send(vec![Notice::UserUpdated { user: listing(5, &[]) }]).await.ok().unwrap();
    assert_eq!(managed_by(kit).await, parent);

    // aaaaa speaking about a user of bbbbb (or of any other cluster) as its user's profile.
    let before = snapshot(b).await;
    for foreign in ["bbbbb-tpzed-bbbbbprofile001", "ccccc-tpzed-cccccprofile001"] {
        let r = send(vec![Notice::UserUpdated { user: listing(13, &[kit, foreign]) }]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{foreign}: {}", r.body);
        assert_eq!(r.code(), "notice_refused", "{}", r.body);
        assert!(r.body["errors"][0].as_str().unwrap().contains("profiles"), "{}", r.body);
    }
    assert_eq!(snapshot(b).await, before, "a refused batch changed nothing");

    // A record as a cluster without profiles sends it: no `profiles` field at all.
    let old_style = json!({"origin": "aaaaa", "destination": "bbbbb", "notices": [{"type": "user_updated",
        "user": {"uuid": parent, "email": "ann@forged.example", "email_verified": true, "first_name": "Ann",
                 "last_name": "Forged", "is_active": true, "home_seq": 14}}]});
    let r = post_signed(b, "aaaaa", &key, NOTICES, &serde_json::to_vec(&old_style).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["applied"], 1);
    assert_eq!(managed_by(kit).await, Value::Null);
}

/// Seed 003's story in a real browser (headless chromium): a parent logs in, creates a profile on
/// the account page, switches to it — the same session and cookie, a banner on every page —
/// creates a collection, and switches back. The collection is the profile's; the log names both.
/// Every page is saved under `target/screenshots/`.
#[tokio::test]
async fn a_parent_switches_to_a_profile_and_back_in_a_browser() {
    use crate::browser::{browser, click, fill, shot, start_chromedriver, text};
    use fantoccini::Locator;
    let fed = single().await;
    let c = &fed.clusters[0];
    let ann = c.user_with("ann", json!({"first_name": "Ann", "last_name": "Lee"})).await;
    let driver = start_chromedriver();
    let b = browser(&driver).await;

    // 1. The parent logs in and creates a profile on the account page.
    b.goto(&format!("{}/login", c.url)).await.unwrap();
    fill(&b, "#login", "ann").await;
    fill(&b, "#password", &ann.password).await;
    click(&b, "#submit").await;
    assert_eq!(text(&b, "#user-uuid").await, ann.uuid);
    assert!(b.find(Locator::Css("#acting-banner")).await.is_err(), "no banner before switching");
    fill(&b, "#profile-first-name", "Kit").await;
    fill(&b, "#profile-last-name", "Lee").await;
    click(&b, "#create-profile").await;
    let row = text(&b, "#profiles .profile").await;
    assert!(row.contains("Kit Lee"), "{row}");
    shot(&b, "profiles-01-account-with-profile.png").await;
    let kit = uuid(&ann.client.get(PROFILES).await.unwrap().ok().unwrap()["items"][0]);
    let session = b.get_named_cookie("hearth_session").await.unwrap().value().to_string();

    // 2. Switch: the same session, no new login, no new cookie; the page is the profile's.
    click(&b, &format!("#switch-{kit}")).await;
    assert_eq!(text(&b, "#user-uuid").await, kit);
    let banner = text(&b, "#acting-banner").await;
    assert!(banner.contains("You are acting as Kit Lee, a managed profile of Ann Lee"), "{banner}");
    assert_eq!(b.get_named_cookie("hearth_session").await.unwrap().value(), session, "the same session cookie");
    assert!(b.find(Locator::Css("#new-profile")).await.is_err(), "a profile manages no profiles");
    shot(&b, "profiles-02-switched.png").await;

    // 3. As the profile, a collection, on a page that shows the banner too.
    click(&b, "#all-collections").await;
    assert!(text(&b, "#acting-banner").await.contains("Kit Lee"));
    assert_eq!(text(&b, "h1").await, "Your collections");
    fill(&b, "#name", "Kit's drawings").await;
    click(&b, "#create").await;
    assert_eq!(text(&b, ".collection-name").await, "Kit's drawings");
    let coll = text(&b, ".collection-uuid").await;
    shot(&b, "profiles-03-collection-as-profile.png").await;

    // 4. Back to the parent, from the banner.
    click(&b, "#switch-back").await;
    assert_eq!(text(&b, "#user-uuid").await, ann.uuid);
    assert!(b.find(Locator::Css("#acting-banner")).await.is_err(), "no banner after switching back");
    assert_eq!(b.get_named_cookie("hearth_session").await.unwrap().value(), session);
    shot(&b, "profiles-04-back-to-parent.png").await;
    click(&b, "#all-collections").await;
    assert!(b.find(Locator::Css("#no-collections")).await.is_ok(), "ann owns no collection");
    shot(&b, "profiles-05-parent-collections.png").await;
    b.close().await.unwrap();
    drop(driver);

    // The collection is the profile's; the log names the profile and the parent.
    let got = c.root.get(&format!("/arvados/v1/collections/{coll}")).await.unwrap().ok().unwrap();
    assert_eq!(got["owner_uuid"], kit.as_str());
    assert_eq!(got["modified_by_user_uuid"], kit.as_str());
    let created = logs(c, json!([["object_uuid", "=", coll], ["event_type", "=", "create"]])).await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["modified_by_user_uuid"], kit.as_str());
    assert_eq!(created[0]["acting_parent_uuid"], ann.uuid.as_str());
    let mut events: Vec<String> = logs(c, json!([["acting_parent_uuid", "=", ann.uuid]]))
        .await
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_string())
        .collect();
    events.sort();
    assert_eq!(events, ["create", "switch_back", "switch_profile"]);
}
