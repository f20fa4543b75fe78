//! `POST /arvados/v1/users/merge` over HTTPS against a real daemon (DESIGN §4.5, issue #3): every
//! refusal with its status, `error_code` and Arvados message, each followed by a check that nothing
//! changed; both variants with and without redirect; parameters from the query string, a form
//! body and a JSON body; redirect chains; concurrent merges of one user; the audit log entry.

use crate::harness::{Backend, Cluster, Federation, TestUser, single, skips_unless};
use hearth::client::{Answer, Client};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

/// How the merge parameters travel.
#[derive(Debug, Clone, Copy)]
enum Via {
    Query,
    Form,
    Json,
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `POST users/merge` with `token` (if any) and `params` sent `via`.
async fn merge_req(c: &Cluster, token: Option<&str>, via: Via, params: &[(&str, Value)]) -> Answer {
    let url = format!("{}/arvados/v1/users/merge", c.url);
    let pairs: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), as_text(v))).collect();
    let mut req = match via {
        Via::Query => {
            let q = serde_urlencoded::to_string(&pairs).unwrap();
            c.anon.http().post(format!("{url}?{q}"))
        }
        Via::Form => c.anon.http().post(&url).form(&pairs),
        Via::Json => {
            let body: Map<String, Value> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            c.anon.http().post(&url).json(&Value::Object(body))
        }
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let bytes = resp.bytes().await.unwrap();
    Answer { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
}

async fn create(c: &Client, resource: &str, attrs: Value) -> Value {
    let singular = resource.trim_end_matches('s');
    let a = c.post(&format!("/arvados/v1/{resource}"), &json!({ singular: attrs })).await.unwrap();
    assert!(a.status.is_success(), "create {resource}: {} {}", a.status, a.body);
    a.body
}

fn uuid(v: &Value) -> String {
    v["uuid"].as_str().unwrap().to_string()
}

async fn get(c: &Client, path: &str) -> Answer {
    c.get(path).await.unwrap()
}

/// A token of `user` with `scopes` (and optional `expires_at`), created by `by`.
async fn token_with(by: &Client, attrs: Value) -> String {
    let a =
        by.post("/arvados/v1/api_client_authorizations", &json!({"api_client_authorization": attrs})).await.unwrap();
    assert!(a.status.is_success(), "create token: {} {}", a.status, a.body);
    crate::harness::full_token(&a.body)
}

/// Everything an admin can see that a merge would touch, without the fields a login changes.
async fn snapshot(c: &Cluster) -> Value {
    let mut out = Map::new();
    for res in ["users", "groups", "collections", "links", "authorized_keys", "api_client_authorizations"] {
        let a = get(&c.root, &format!("/arvados/v1/{res}?limit=1000")).await;
        assert_eq!(a.status, StatusCode::OK, "{res}: {}", a.body);
        let mut items: Vec<Value> = a.body["items"].as_array().unwrap().clone();
        for it in &mut items {
            if let Some(m) = it.as_object_mut() {
                m.remove("etag");
                m.remove("last_login_at");
            }
        }
        items.sort_by_key(uuid);
        out.insert(res.to_string(), Value::Array(items));
    }
    out.insert("merge_logs".into(), json!(merge_logs(c).await.len()));
    Value::Object(out)
}

/// The audit entries of event type `merge`, as an admin lists them.
async fn merge_logs(c: &Cluster) -> Vec<Value> {
    let q = serde_urlencoded::to_string([("filters", r#"[["event_type","=","merge"]]"#), ("limit", "1000")]).unwrap();
    let a = get(&c.root, &format!("/arvados/v1/logs?{q}")).await;
    assert_eq!(a.status, StatusCode::OK, "logs: {}", a.body);
    a.body["items"].as_array().unwrap().clone()
}

/// The old user still logs in, its token still answers as itself, and it still owns `owned`.
async fn assert_old_intact(c: &Cluster, old: &TestUser, owned: &[(&str, &str)], case: &str) {
    let me = get(&old.client, "/arvados/v1/users/current").await;
    assert_eq!(me.status, StatusCode::OK, "{case}: users/current {}", me.body);
    assert_eq!(me.body["uuid"], old.uuid.as_str(), "{case}");
    assert_eq!(me.body["username"], old.username.as_str(), "{case}");
    assert!(me.body["redirect_to_user_uuid"].is_null(), "{case}");
    for (res, id) in owned {
        let o = get(&old.client, &format!("/arvados/v1/{res}/{id}")).await;
        assert_eq!(o.status, StatusCode::OK, "{case}: {res}/{id} {}", o.body);
        assert_eq!(o.body["owner_uuid"], old.uuid.as_str(), "{case}: {res}/{id} changed owner");
    }
    c.anon
        .login(&old.username, &old.password, None)
        .await
        .unwrap_or_else(|e| panic!("{case}: old user cannot log in: {e}"));
}

fn owner_of(a: &Answer) -> String {
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body["owner_uuid"].as_str().unwrap().to_string()
}

/// One refusal: who asks, with what, and the answer expected.
struct Refusal {
    case: &'static str,
    token: Option<String>,
    params: Vec<(&'static str, Value)>,
    status: u16,
    code: &'static str,
    message: Option<&'static str>,
}

#[tokio::test]
async fn every_refusal_answers_as_designed_and_changes_nothing() {
    let fed = single().await;
    let c = fed.at("zzzzz");
    let alice = c.user("alice").await;
    let bob = c.user("bob").await;
    let carol = c.user("carol").await;
    let adam = c.user_with("adam", json!({"is_admin": true})).await;
    let xavier = c.user("xavier").await;
    let yvonne = c.user("yvonne").await;

    // Alice's belongings, which every refusal must leave alone.
    let a_proj = uuid(&create(&alice.client, "groups", json!({"name": "alice project"})).await);
    let a_coll = uuid(&create(&alice.client, "collections", json!({"name": "alice data"})).await);
    let a_link =
        uuid(&create(&alice.client, "links", json!({"link_class": "tag", "name": "mine", "head_uuid": a_coll})).await);
    let a_key = uuid(&create(&alice.client, "authorized_keys", json!({"name": "laptop", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIalice alice@laptop", "authorized_user_uuid": alice.uuid})).await);
    // Bob may write alice's project: still not a place to move alice's objects into.
    create(
        &alice.client,
        "links",
        json!({"link_class": "permission", "name": "can_write", "tail_uuid": bob.uuid, "head_uuid": a_proj}),
    )
    .await;
    let b_coll = uuid(&create(&bob.client, "collections", json!({"name": "bob data"})).await);
    let c_private = uuid(&create(&carol.client, "groups", json!({"name": "carol private"})).await);
    let c_read = uuid(&create(&carol.client, "groups", json!({"name": "carol shared read"})).await);
    create(
        &carol.client,
        "links",
        json!({"link_class": "permission", "name": "can_read", "tail_uuid": bob.uuid, "head_uuid": c_read}),
    )
    .await;
    let owned = [
        ("groups", a_proj.as_str()),
        ("collections", a_coll.as_str()),
        ("links", a_link.as_str()),
        ("authorized_keys", a_key.as_str()),
    ];

    // Xavier is merged into Yvonne beforehand, for the "already merged" checks.
    let x = merge_req(
        c,
        Some(&c.plan.root_token),
        Via::Json,
        &[
            ("old_user_uuid", json!(xavier.uuid)),
            ("new_user_uuid", json!(yvonne.uuid)),
            ("new_owner_uuid", json!(yvonne.uuid)),
            ("redirect_to_new_user", json!(true)),
        ],
    )
    .await;
    assert_eq!(x.status, StatusCode::OK, "{}", x.body);

    let alice_scoped_merge = token_with(&alice.client, json!({"scopes": ["POST /arvados/v1/users/merge"]})).await;
    let alice_scoped_other = token_with(&alice.client, json!({"scopes": ["GET /arvados/v1/users/current"]})).await;
    let bob_scoped_merge = token_with(&bob.client, json!({"scopes": ["POST /arvados/v1/users/merge"]})).await;
    let bob_scoped_other = token_with(&bob.client, json!({"scopes": ["GET /arvados/v1/users/current"]})).await;
    let bob_expired = token_with(&bob.client, json!({"expires_at": "2001-01-01T00:00:00Z"})).await;
    assert_eq!(get(&c.client(&bob_expired), "/arvados/v1/users/current").await.status, StatusCode::UNAUTHORIZED);
    let bob_revoked = {
        let a = bob
            .client
            .post("/arvados/v1/api_client_authorizations", &json!({"api_client_authorization": {}}))
            .await
            .unwrap()
            .ok()
            .unwrap();
        let r = bob.client.delete(&format!("/arvados/v1/api_client_authorizations/{}", uuid(&a))).await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        crate::harness::full_token(&a)
    };

    let root = Some(c.plan.root_token.clone());
    let admin = Some(adam.token.clone());
    let at = Some(alice.token.clone());
    let s = |v: &str| json!(v);
    let nobody = "zzzzz-tpzed-zzzzzzzzzzzzzzz";
    let not_writable = "cannot move objects into supplied new_owner_uuid: new user does not have write permission";
    let cases = vec![
        Refusal {
            case: "no token",
            token: None,
            params: vec![("new_user_token", s(&bob.token)), ("new_owner_uuid", s(&bob.uuid))],
            status: 401,
            code: "not_logged_in",
            message: None,
        },
        Refusal {
            case: "garbage token",
            token: Some("v2/zzzzz-gj3su-000000000000000/nope".into()),
            params: vec![("new_user_token", s(&bob.token)), ("new_owner_uuid", s(&bob.uuid))],
            status: 401,
            code: "invalid_token",
            message: None,
        },
        Refusal {
            case: "token scope forbids merge",
            token: Some(alice_scoped_other.clone()),
            params: vec![("new_user_token", s(&bob.token)), ("new_owner_uuid", s(&bob.uuid))],
            status: 403,
            code: "scope_forbids",
            message: None,
        },
        Refusal {
            case: "scoped caller token",
            token: Some(alice_scoped_merge.clone()),
            params: vec![("new_user_token", s(&bob.token)), ("new_owner_uuid", s(&bob.uuid))],
            status: 403,
            code: "merge_scoped_token",
            message: Some("cannot merge with a scoped token"),
        },
        Refusal {
            case: "scoped caller token comes before a bad new token",
            token: Some(alice_scoped_merge.clone()),
            params: vec![("new_user_token", s("garbage")), ("new_owner_uuid", s(&bob.uuid))],
            status: 403,
            code: "merge_scoped_token",
            message: Some("cannot merge with a scoped token"),
        },
        Refusal {
            case: "no new_user_token",
            token: at.clone(),
            params: vec![("new_owner_uuid", s(&bob.uuid))],
            status: 401,
            code: "merge_invalid_new_user_token",
            message: Some("invalid new_user_token"),
        },
        Refusal {
            case: "empty new_user_token",
            token: at.clone(),
            params: vec![("new_user_token", s("")), ("new_owner_uuid", s(&bob.uuid))],
            status: 401,
            code: "merge_invalid_new_user_token",
            message: Some("invalid new_user_token"),
        },
        Refusal {
            case: "garbage new_user_token",
            token: at.clone(),
            params: vec![
                ("new_user_token", s("v2/zzzzz-gj3su-aaaaaaaaaaaaaaa/secret")),
                ("new_owner_uuid", s(&bob.uuid)),
            ],
            status: 401,
            code: "merge_invalid_new_user_token",
            message: Some("invalid new_user_token"),
        },
        Refusal {
            case: "expired new_user_token",
            token: at.clone(),
            params: vec![("new_user_token", s(&bob_expired)), ("new_owner_uuid", s(&bob.uuid))],
            status: 401,
            code: "merge_invalid_new_user_token",
            message: Some("invalid new_user_token"),
        },
        Refusal {
            case: "revoked new_user_token",
            token: at.clone(),
            params: vec![("new_user_token", s(&bob_revoked)), ("new_owner_uuid", s(&bob.uuid))],
            status: 401,
            code: "merge_invalid_new_user_token",
            message: Some("invalid new_user_token"),
        },
        Refusal {
            case: "new_user_token scoped to merge",
            token: at.clone(),
            params: vec![("new_user_token", s(&bob_scoped_merge)), ("new_owner_uuid", s(&bob.uuid))],
            status: 403,
            code: "merge_new_token_scoped",
            message: Some("supplied new_user_token has restricted scope"),
        },
        Refusal {
            case: "new_user_token scoped elsewhere",
            token: at.clone(),
            params: vec![("new_user_token", s(&bob_scoped_other)), ("new_owner_uuid", s(&bob.uuid))],
            status: 403,
            code: "merge_new_token_scoped",
            message: Some("supplied new_user_token has restricted scope"),
        },
        Refusal {
            case: "non-admin names both users",
            token: at.clone(),
            params: vec![
                ("old_user_uuid", s(&alice.uuid)),
                ("new_user_uuid", s(&bob.uuid)),
                ("new_owner_uuid", s(&bob.uuid)),
            ],
            status: 403,
            code: "merge_admin_required",
            message: Some("Must be admin to use old_user_uuid/new_user_uuid"),
        },
        Refusal {
            case: "non-admin names one user, no owner",
            token: at.clone(),
            params: vec![("new_user_uuid", s(&bob.uuid))],
            status: 403,
            code: "merge_admin_required",
            message: Some("Must be admin to use old_user_uuid/new_user_uuid"),
        },
        Refusal {
            case: "admin gives only old_user_uuid",
            token: admin.clone(),
            params: vec![("old_user_uuid", s(&alice.uuid)), ("new_owner_uuid", s(&bob.uuid))],
            status: 422,
            code: "merge_need_both_uuids",
            message: Some("Must supply both old_user_uuid and new_user_uuid"),
        },
        Refusal {
            case: "admin gives only new_user_uuid",
            token: root.clone(),
            params: vec![("new_user_uuid", s(&bob.uuid)), ("new_owner_uuid", s(&bob.uuid))],
            status: 422,
            code: "merge_need_both_uuids",
            message: Some("Must supply both old_user_uuid and new_user_uuid"),
        },
        Refusal {
            case: "admin gives an empty old_user_uuid",
            token: admin.clone(),
            params: vec![("old_user_uuid", s("")), ("new_user_uuid", s(&bob.uuid)), ("new_owner_uuid", s(&bob.uuid))],
            status: 422,
            code: "merge_need_both_uuids",
            message: Some("Must supply both old_user_uuid and new_user_uuid"),
        },
        Refusal {
            case: "unknown new user",
            token: admin.clone(),
            params: vec![
                ("old_user_uuid", s(&alice.uuid)),
                ("new_user_uuid", s(nobody)),
                ("new_owner_uuid", s(&bob.uuid)),
            ],
            status: 422,
            code: "user_not_found",
            message: Some("User in new_user_uuid not found"),
        },
        Refusal {
            case: "unknown old user",
            token: admin.clone(),
            params: vec![
                ("old_user_uuid", s(nobody)),
                ("new_user_uuid", s(&bob.uuid)),
                ("new_owner_uuid", s(&bob.uuid)),
            ],
            status: 422,
            code: "user_not_found",
            message: Some("User in old_user_uuid not found"),
        },
        Refusal {
            case: "both unknown: new is named first",
            token: root.clone(),
            params: vec![
                ("old_user_uuid", s(nobody)),
                ("new_user_uuid", s("zzzzz-tpzed-yyyyyyyyyyyyyyy")),
                ("new_owner_uuid", s(&bob.uuid)),
            ],
            status: 422,
            code: "user_not_found",
            message: Some("User in new_user_uuid not found"),
        },
        Refusal {
            case: "malformed old_user_uuid",
            token: admin.clone(),
            params: vec![
                ("old_user_uuid", s("not a uuid")),
                ("new_user_uuid", s(&bob.uuid)),
                ("new_owner_uuid", s(&bob.uuid)),
            ],
            status: 422,
            code: "user_not_found",
            message: Some("User in old_user_uuid not found"),
        },
        Refusal {
            case: "new_user_uuid names a group",
            token: admin.clone(),
            params: vec![
                ("old_user_uuid", s(&alice.uuid)),
                ("new_user_uuid", s(&c_private)),
                ("new_owner_uuid", s(&bob.uuid)),
            ],
            status: 422,
            code: "user_not_found",
            message: Some("User in new_user_uuid not found"),
        },
        Refusal {
            case: "admin merges a user into itself",
            token: admin.clone(),
            params: vec![
                ("old_user_uuid", s(&alice.uuid)),
                ("new_user_uuid", s(&alice.uuid)),
                ("new_owner_uuid", s(&alice.uuid)),
            ],
            status: 422,
            code: "merge_to_self",
            message: Some("cannot merge user to self"),
        },
        Refusal {
            case: "token variant into itself",
            token: at.clone(),
            params: vec![("new_user_token", s(&alice.token)), ("new_owner_uuid", s(&alice.uuid))],
            status: 422,
            code: "merge_to_self",
            message: Some("cannot merge user to self"),
        },
        Refusal {
            case: "new_owner_uuid missing",
            token: at.clone(),
            params: vec![("new_user_token", s(&bob.token))],
            status: 422,
            code: "merge_missing_new_owner",
            message: None,
        },
        Refusal {
            case: "new_owner_uuid empty",
            token: admin.clone(),
            params: vec![("old_user_uuid", s(&alice.uuid)), ("new_user_uuid", s(&bob.uuid)), ("new_owner_uuid", s(""))],
            status: 422,
            code: "merge_missing_new_owner",
            message: None,
        },
        Refusal {
            case: "new_owner_uuid unknown",
            token: at.clone(),
            params: vec![("new_user_token", s(&bob.token)), ("new_owner_uuid", s("zzzzz-j7d0g-zzzzzzzzzzzzzzz"))],
            status: 422,
            code: "merge_new_owner_not_found",
            message: None,
        },
        Refusal {
            case: "new_owner_uuid malformed",
            token: at.clone(),
            params: vec![("new_user_token", s(&bob.token)), ("new_owner_uuid", s("not-a-uuid"))],
            status: 422,
            code: "merge_new_owner_not_found",
            message: None,
        },
        Refusal {
            case: "new_owner_uuid is a collection",
            token: at.clone(),
            params: vec![("new_user_token", s(&bob.token)), ("new_owner_uuid", s(&b_coll))],
            status: 422,
            code: "merge_new_owner_not_found",
            message: None,
        },
        Refusal {
            case: "admin merges into a nonexistent owner",
            token: root.clone(),
            params: vec![
                ("old_user_uuid", s(&alice.uuid)),
                ("new_user_uuid", s(&bob.uuid)),
                ("new_owner_uuid", s("zzzzz-j7d0g-zzzzzzzzzzzzzzz")),
            ],
            status: 422,
            code: "merge_new_owner_not_found",
            message: None,
        },
        Refusal {
            case: "new user cannot see the owner",
            token: at.clone(),
            params: vec![("new_user_token", s(&bob.token)), ("new_owner_uuid", s(&c_private))],
            status: 403,
            code: "merge_new_owner_not_writable",
            message: Some(not_writable),
        },
        Refusal {
            case: "new user may only read the owner",
            token: at.clone(),
            params: vec![
                ("new_user_token", s(&bob.token)),
                ("new_owner_uuid", s(&c_read)),
                ("redirect_to_new_user", json!(true)),
            ],
            status: 403,
            code: "merge_new_owner_not_writable",
            message: Some(not_writable),
        },
        Refusal {
            case: "owner is a third user",
            token: admin.clone(),
            params: vec![
                ("old_user_uuid", s(&alice.uuid)),
                ("new_user_uuid", s(&bob.uuid)),
                ("new_owner_uuid", s(&carol.uuid)),
            ],
            status: 403,
            code: "merge_new_owner_not_writable",
            message: Some(not_writable),
        },
        Refusal {
            case: "old user already merged",
            token: admin.clone(),
            params: vec![
                ("old_user_uuid", s(&xavier.uuid)),
                ("new_user_uuid", s(&bob.uuid)),
                ("new_owner_uuid", s(&bob.uuid)),
            ],
            status: 422,
            code: "merge_old_already_merged",
            message: Some("cannot merge an already merged user"),
        },
        Refusal {
            case: "new user already merged",
            token: root.clone(),
            params: vec![
                ("old_user_uuid", s(&alice.uuid)),
                ("new_user_uuid", s(&xavier.uuid)),
                ("new_owner_uuid", s(&xavier.uuid)),
            ],
            status: 422,
            code: "merge_new_already_merged",
            message: Some("cannot merge to an already merged user"),
        },
        Refusal {
            case: "redirect_to_new_user is not a boolean",
            token: at.clone(),
            params: vec![
                ("new_user_token", s(&bob.token)),
                ("new_owner_uuid", s(&bob.uuid)),
                ("redirect_to_new_user", s("maybe")),
            ],
            status: 422,
            code: "merge_redirect_not_boolean",
            message: None,
        },
        Refusal {
            case: "redirect_to_new_user is a number other than 0/1",
            token: admin.clone(),
            params: vec![
                ("old_user_uuid", s(&alice.uuid)),
                ("new_user_uuid", s(&bob.uuid)),
                ("new_owner_uuid", s(&bob.uuid)),
                ("redirect_to_new_user", json!(2)),
            ],
            status: 422,
            code: "merge_redirect_not_boolean",
            message: None,
        },
        Refusal {
            case: "new owner is owned by the old user",
            token: at.clone(),
            params: vec![
                ("new_user_token", s(&bob.token)),
                ("new_owner_uuid", s(&a_proj)),
                ("redirect_to_new_user", json!(true)),
            ],
            status: 422,
            code: "merge_new_owner_owned_by_old",
            message: None,
        },
    ];

    let mut before = snapshot(c).await;
    for (i, r) in cases.iter().enumerate() {
        let via = [Via::Query, Via::Form, Via::Json][i % 3];
        let case = format!("{} (via {via:?})", r.case);
        let a = merge_req(c, r.token.as_deref(), via, &r.params).await;
        assert_eq!(a.status.as_u16(), r.status, "{case}: {}", a.body);
        assert_eq!(a.code(), r.code, "{case}: {}", a.body);
        let errors = a.body["errors"].as_array().unwrap_or_else(|| panic!("{case}: no errors array: {}", a.body));
        assert_eq!(errors.len(), 1, "{case}");
        if let Some(m) = r.message {
            assert_eq!(errors[0], m, "{case}");
        }
        let et = a.body["error_token"].as_str().unwrap_or_else(|| panic!("{case}: no error_token: {}", a.body));
        assert!(et.contains('+'), "{case}: error_token {et}");
        // Nothing changed: every record as before, no merge logged, alice intact, bob not redirected.
        let after = snapshot(c).await;
        assert!(after == before, "{case}: state changed\nbefore: {before}\nafter:  {after}");
        assert_old_intact(c, &alice, &owned, &case).await;
        let b = get(&bob.client, "/arvados/v1/users/current").await;
        assert_eq!(b.body["uuid"], bob.uuid.as_str(), "{case}");
        assert!(
            get(&c.root, &format!("/arvados/v1/users/{}", bob.uuid)).await.body["redirect_to_user_uuid"].is_null(),
            "{case}"
        );
        // The login just made a token: take a fresh baseline.
        before = snapshot(c).await;
    }
    // The daemon answered every refusal without falling over.
    assert!(get(&c.anon, "/healthz").await.status.is_success());
}

#[tokio::test]
async fn token_variant_with_redirect_moves_everything_and_redirects() {
    let fed = single().await;
    let c = fed.at("zzzzz");
    let alice = c.user("alice").await;
    let bob = c.user("bob").await;
    let carol = c.user("carol").await;
    let alice_second = token_with(&alice.client, json!({})).await;

    let a_proj = uuid(&create(&alice.client, "groups", json!({"name": "alice project"})).await);
    let a_coll = uuid(&create(&alice.client, "collections", json!({"name": "alice data"})).await);
    let in_proj =
        uuid(&create(&alice.client, "collections", json!({"name": "in project", "owner_uuid": a_proj})).await);
    let l_owned = uuid(
        &create(
            &alice.client,
            "links",
            json!({"link_class": "tag", "name": "t", "tail_uuid": a_coll, "head_uuid": in_proj}),
        )
        .await,
    );
    let a_key = uuid(&create(&alice.client, "authorized_keys", json!({"name": "laptop", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIalice alice@laptop", "authorized_user_uuid": alice.uuid})).await);
    let c_group = uuid(&create(&carol.client, "groups", json!({"name": "carol shares"})).await);
    let c_coll = uuid(&create(&carol.client, "collections", json!({"name": "carol data"})).await);
    let l_tail = uuid(
        &create(
            &carol.client,
            "links",
            json!({"link_class": "permission", "name": "can_read", "tail_uuid": alice.uuid, "head_uuid": c_group}),
        )
        .await,
    );
    let l_head = uuid(
        &create(
            &carol.client,
            "links",
            json!({"link_class": "tag", "name": "friend", "tail_uuid": c_coll, "head_uuid": alice.uuid}),
        )
        .await,
    );
    let b_proj = uuid(&create(&bob.client, "groups", json!({"name": "bob inbox"})).await);
    // Before: bob sees none of it.
    assert_eq!(get(&bob.client, &format!("/arvados/v1/collections/{a_coll}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&bob.client, &format!("/arvados/v1/groups/{c_group}")).await.status, StatusCode::NOT_FOUND);

    let a = merge_req(
        c,
        Some(&alice.token),
        Via::Form,
        &[
            ("new_user_token", json!(bob.token)),
            ("new_owner_uuid", json!(b_proj)),
            ("redirect_to_new_user", json!("true")),
        ],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    // Returns the old user, redirected and without its username.
    assert_eq!(a.body["uuid"], alice.uuid.as_str());
    assert!(a.body["username"].is_null(), "{}", a.body);
    assert_eq!(a.body["redirect_to_user_uuid"], bob.uuid.as_str());

    // Owned objects moved into new_owner_uuid; things inside them stay put.
    assert_eq!(owner_of(&get(&c.root, &format!("/arvados/v1/groups/{a_proj}")).await), b_proj);
    assert_eq!(owner_of(&get(&c.root, &format!("/arvados/v1/collections/{a_coll}")).await), b_proj);
    assert_eq!(owner_of(&get(&c.root, &format!("/arvados/v1/collections/{in_proj}")).await), a_proj);
    // Links: owner, tail and (with redirect) head.
    let l = get(&c.root, &format!("/arvados/v1/links/{l_owned}")).await;
    assert_eq!(l.body["owner_uuid"], bob.uuid.as_str(), "{}", l.body);
    assert_eq!(l.body["tail_uuid"], a_coll.as_str());
    let l = get(&c.root, &format!("/arvados/v1/links/{l_tail}")).await;
    assert_eq!(l.body["tail_uuid"], bob.uuid.as_str(), "{}", l.body);
    assert_eq!(l.body["owner_uuid"], carol.uuid.as_str());
    let l = get(&c.root, &format!("/arvados/v1/links/{l_head}")).await;
    assert_eq!(l.body["head_uuid"], bob.uuid.as_str(), "{}", l.body);
    // The SSH key moved.
    let k = get(&c.root, &format!("/arvados/v1/authorized_keys/{a_key}")).await;
    assert_eq!(k.body["owner_uuid"], bob.uuid.as_str(), "{}", k.body);
    assert_eq!(k.body["authorized_user_uuid"], bob.uuid.as_str());
    // Both of alice's tokens now act as bob.
    for t in [&alice.token, &alice_second] {
        let me = get(&c.client(t), "/arvados/v1/users/current").await;
        assert_eq!(me.status, StatusCode::OK, "{}", me.body);
        assert_eq!(me.body["uuid"], bob.uuid.as_str());
    }
    // Permissions reflect the merge at once.
    assert_eq!(get(&bob.client, &format!("/arvados/v1/collections/{a_coll}")).await.status, StatusCode::OK);
    assert_eq!(get(&bob.client, &format!("/arvados/v1/groups/{c_group}")).await.status, StatusCode::OK);
    assert_eq!(get(&alice.client, &format!("/arvados/v1/collections/{a_coll}")).await.status, StatusCode::OK);
    // Alice is hidden from lists and get.
    assert_eq!(get(&c.root, &format!("/arvados/v1/users/{}", alice.uuid)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&bob.client, &format!("/arvados/v1/users/{}", alice.uuid)).await.status, StatusCode::NOT_FOUND);
    let list = get(&c.root, "/arvados/v1/users?limit=1000").await;
    let uuids: Vec<&str> = list.body["items"].as_array().unwrap().iter().filter_map(|u| u["uuid"].as_str()).collect();
    assert!(!uuids.contains(&alice.uuid.as_str()) && uuids.contains(&bob.uuid.as_str()), "{uuids:?}");
    // The password no longer logs in as alice, and the username is free again.
    assert!(c.anon.login("alice", &alice.password, None).await.is_err());
    let again = c.root.create_user(json!({"username": "alice", "first_name": "Alice II"}), None).await.unwrap();
    assert_ne!(uuid(&again), alice.uuid);

    // The audit entry: who, old, new, owner, redirect, counts moved.
    let logs = merge_logs(c).await;
    assert_eq!(logs.len(), 1, "{logs:?}");
    let e = &logs[0];
    assert_eq!(e["event_type"], "merge");
    assert_eq!(e["object_uuid"], alice.uuid.as_str());
    assert_eq!(e["modified_by_user_uuid"], alice.uuid.as_str());
    let p = &e["properties"];
    assert_eq!(p["old_user_uuid"], alice.uuid.as_str());
    assert_eq!(p["new_user_uuid"], bob.uuid.as_str());
    assert_eq!(p["new_owner_uuid"], b_proj.as_str());
    assert_eq!(p["redirect_to_new_user"], true);
    assert_eq!(p["moved"], json!({"objects": 2, "links": 3, "tokens": 2, "keys": 1}), "{p}");
    // Only admins read the log.
    assert_eq!(get(&bob.client, "/arvados/v1/logs").await.status, StatusCode::FORBIDDEN);

    // Doing it again is refused: alice's token is bob's now (self), and the admin variant says merged.
    let a = merge_req(
        c,
        Some(&alice.token),
        Via::Json,
        &[
            ("new_user_token", json!(bob.token)),
            ("new_owner_uuid", json!(b_proj)),
            ("redirect_to_new_user", json!(true)),
        ],
    )
    .await;
    assert_eq!((a.status.as_u16(), a.code()), (422, "merge_to_self"), "{}", a.body);
    let a = merge_req(
        c,
        Some(&c.plan.root_token),
        Via::Json,
        &[
            ("old_user_uuid", json!(alice.uuid)),
            ("new_user_uuid", json!(carol.uuid)),
            ("new_owner_uuid", json!(carol.uuid)),
        ],
    )
    .await;
    assert_eq!((a.status.as_u16(), a.code()), (422, "merge_old_already_merged"), "{}", a.body);
    assert_eq!(merge_logs(c).await.len(), 1);
}

#[tokio::test]
async fn admin_variant_without_redirect_deletes_credentials() {
    let fed = single().await;
    let c = fed.at("zzzzz");
    let carol = c.user("carol").await;
    let dave = c.user("dave").await;
    let erin = c.user("erin").await;
    let c_group = uuid(&create(&carol.client, "groups", json!({"name": "carol project"})).await);
    let c_coll = uuid(&create(&carol.client, "collections", json!({"name": "carol data"})).await);
    let c_key = uuid(&create(&carol.client, "authorized_keys", json!({"name": "k", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIcarol carol@host", "authorized_user_uuid": carol.uuid})).await);
    let l_self =
        uuid(&create(&carol.client, "links", json!({"link_class": "tag", "name": "mine", "head_uuid": c_group})).await);
    let e_coll = uuid(&create(&erin.client, "collections", json!({"name": "erin data"})).await);
    let l_head = uuid(
        &create(
            &erin.client,
            "links",
            json!({"link_class": "tag", "name": "about carol", "tail_uuid": e_coll, "head_uuid": carol.uuid}),
        )
        .await,
    );

    let a = merge_req(
        c,
        Some(&c.plan.root_token),
        Via::Json,
        &[
            ("old_user_uuid", json!(carol.uuid)),
            ("new_user_uuid", json!(dave.uuid)),
            ("new_owner_uuid", json!(dave.uuid)),
            ("redirect_to_new_user", json!(false)),
        ],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["uuid"], carol.uuid.as_str());
    assert_eq!(a.body["username"], "carol");
    assert!(a.body["redirect_to_user_uuid"].is_null());

    assert_eq!(owner_of(&get(&c.root, &format!("/arvados/v1/groups/{c_group}")).await), dave.uuid);
    assert_eq!(owner_of(&get(&c.root, &format!("/arvados/v1/collections/{c_coll}")).await), dave.uuid);
    let l = get(&c.root, &format!("/arvados/v1/links/{l_self}")).await;
    assert_eq!(
        (l.body["owner_uuid"].as_str(), l.body["tail_uuid"].as_str()),
        (Some(dave.uuid.as_str()), Some(dave.uuid.as_str())),
        "{}",
        l.body
    );
    // Without redirect the head stays.
    assert_eq!(get(&c.root, &format!("/arvados/v1/links/{l_head}")).await.body["head_uuid"], carol.uuid.as_str());
    // Credentials deleted, not moved.
    assert_eq!(get(&c.root, &format!("/arvados/v1/authorized_keys/{c_key}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&carol.client, "/arvados/v1/users/current").await.status, StatusCode::UNAUTHORIZED);
    let toks = get(&c.root, "/arvados/v1/api_client_authorizations?limit=1000").await;
    assert!(
        toks.body["items"].as_array().unwrap().iter().all(|t| t["user_uuid"] != carol.uuid.as_str()),
        "{}",
        toks.body
    );
    // Carol is still an account of her own, owning nothing, and may log in again.
    let u = get(&c.root, &format!("/arvados/v1/users/{}", carol.uuid)).await;
    assert_eq!((u.status, u.body["username"].as_str()), (StatusCode::OK, Some("carol")), "{}", u.body);
    let (t, _) = c.anon.login("carol", &carol.password, None).await.unwrap();
    assert_eq!(get(&c.client(&t), "/arvados/v1/users/current").await.body["uuid"], carol.uuid.as_str());
    assert_eq!(get(&c.client(&t), &format!("/arvados/v1/collections/{c_coll}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&dave.client, &format!("/arvados/v1/collections/{c_coll}")).await.status, StatusCode::OK);

    let logs = merge_logs(c).await;
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0]["modified_by_user_uuid"], "zzzzz-tpzed-000000000000000");
    let p = &logs[0]["properties"];
    assert_eq!(
        (p["old_user_uuid"].as_str(), p["new_user_uuid"].as_str(), p["new_owner_uuid"].as_str()),
        (Some(carol.uuid.as_str()), Some(dave.uuid.as_str()), Some(dave.uuid.as_str()))
    );
    assert_eq!(p["redirect_to_new_user"], false);
    assert_eq!(p["moved"], json!({"objects": 2, "links": 1, "tokens": 1, "keys": 1}), "{p}");
}

#[tokio::test]
async fn admin_variant_in_query_string_into_a_shared_group_and_token_variant_without_redirect() {
    let fed = single().await;
    let c = fed.at("zzzzz");
    let adam = c.user_with("adam", json!({"is_admin": true})).await;
    let frank = c.user("frank").await;
    let gina = c.user("gina").await;
    let hank = c.user("hank").await;
    let shared = uuid(&create(&hank.client, "groups", json!({"name": "team"})).await);
    create(
        &hank.client,
        "links",
        json!({"link_class": "permission", "name": "can_write", "tail_uuid": gina.uuid, "head_uuid": shared}),
    )
    .await;
    let f_coll = uuid(&create(&frank.client, "collections", json!({"name": "frank data"})).await);

    // An admin user (not the root token), all parameters in the query string, redirect as "1".
    let a = merge_req(
        c,
        Some(&adam.token),
        Via::Query,
        &[
            ("old_user_uuid", json!(frank.uuid)),
            ("new_user_uuid", json!(gina.uuid)),
            ("new_owner_uuid", json!(shared)),
            ("redirect_to_new_user", json!("1")),
        ],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["redirect_to_user_uuid"], gina.uuid.as_str());
    assert_eq!(owner_of(&get(&c.root, &format!("/arvados/v1/collections/{f_coll}")).await), shared);
    assert_eq!(get(&gina.client, &format!("/arvados/v1/collections/{f_coll}")).await.status, StatusCode::OK);
    assert_eq!(get(&hank.client, &format!("/arvados/v1/collections/{f_coll}")).await.status, StatusCode::OK);
    assert_eq!(get(&frank.client, "/arvados/v1/users/current").await.body["uuid"], gina.uuid.as_str());
    let logs = merge_logs(c).await;
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0]["modified_by_user_uuid"], adam.uuid.as_str());

    // Token variant without redirect (redirect "0"), parameters in the query string.
    let ivan = c.user("ivan").await;
    let jane = c.user("jane").await;
    let i_coll = uuid(&create(&ivan.client, "collections", json!({"name": "ivan data"})).await);
    let a = merge_req(
        c,
        Some(&ivan.token),
        Via::Query,
        &[
            ("new_user_token", json!(jane.token)),
            ("new_owner_uuid", json!(jane.uuid)),
            ("redirect_to_new_user", json!("0")),
        ],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["username"], "ivan");
    assert_eq!(owner_of(&get(&c.root, &format!("/arvados/v1/collections/{i_coll}")).await), jane.uuid);
    // The old user's tokens are gone, the new user's still work.
    assert_eq!(get(&ivan.client, "/arvados/v1/users/current").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&jane.client, "/arvados/v1/users/current").await.body["uuid"], jane.uuid.as_str());
    assert_eq!(merge_logs(c).await.len(), 2);
}

#[tokio::test]
async fn redirect_chains_are_followed_and_bounded() {
    let fed = single().await;
    let c = fed.at("zzzzz");
    // A → B → C by two merges: A's token, moved twice, acts as C.
    let a = c.user("chaina").await;
    let b = c.user("chainb").await;
    let cc = c.user("chainc").await;
    let a_coll = uuid(&create(&a.client, "collections", json!({"name": "a data"})).await);
    let r = merge_req(
        c,
        Some(&a.token),
        Via::Json,
        &[("new_user_token", json!(b.token)), ("new_owner_uuid", json!(b.uuid)), ("redirect_to_new_user", json!(true))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = merge_req(
        c,
        Some(&b.token),
        Via::Form,
        &[
            ("new_user_token", json!(cc.token)),
            ("new_owner_uuid", json!(cc.uuid)),
            ("redirect_to_new_user", json!("true")),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for t in [&a.token, &b.token] {
        assert_eq!(get(&c.client(t), "/arvados/v1/users/current").await.body["uuid"], cc.uuid.as_str());
    }
    assert_eq!(owner_of(&get(&c.root, &format!("/arvados/v1/collections/{a_coll}")).await), cc.uuid);
    assert_eq!(get(&cc.client, &format!("/arvados/v1/collections/{a_coll}")).await.status, StatusCode::OK);

    // A chain set by an admin: a token of the first user follows up to 15 hops.
    let mut chain = Vec::new();
    for i in 0..17 {
        let u = c.root.create_user(json!({"username": format!("hop{i}"), "first_name": "hop"}), None).await.unwrap();
        chain.push(uuid(&u));
    }
    let first = token_with(&c.root, json!({"owner_uuid": chain[0]})).await;
    let first = c.client(&first);
    for i in 0..15 {
        let r = c
            .root
            .put(&format!("/arvados/v1/users/{}", chain[i]), &json!({"user": {"redirect_to_user_uuid": chain[i + 1]}}))
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let me = get(&first, "/arvados/v1/users/current").await;
    assert_eq!(
        (me.status, me.body["uuid"].as_str()),
        (StatusCode::OK, Some(chain[15].as_str())),
        "15 hops: {}",
        me.body
    );
    let r = c
        .root
        .put(&format!("/arvados/v1/users/{}", chain[15]), &json!({"user": {"redirect_to_user_uuid": chain[16]}}))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let me = get(&first, "/arvados/v1/users/current").await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "16 hops: {}", me.body);
    assert!(!me.body["errors"].is_null(), "{}", me.body);

    // A dangling target is an error, not a crash.
    let w = c.user("dangling").await;
    let r = c
        .root
        .put(
            &format!("/arvados/v1/users/{}", w.uuid),
            &json!({"user": {"redirect_to_user_uuid": "zzzzz-tpzed-doesnotexist000"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let me = get(&w.client, "/arvados/v1/users/current").await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{}", me.body);
    assert!(get(&c.anon, "/healthz").await.status.is_success());

    // Only admins may set redirect_to_user_uuid.
    let v = c.user("victim").await;
    let m = c.user("mallory").await;
    for (who, target) in [(&m, &v.uuid), (&v, &m.uuid)] {
        let r = who
            .client
            .put(&format!("/arvados/v1/users/{}", who.uuid), &json!({"user": {"redirect_to_user_uuid": target}}))
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    }
    for who in [&v, &m] {
        let me = get(&who.client, "/arvados/v1/users/current").await;
        assert_eq!(me.body["uuid"], who.uuid.as_str());
        assert!(me.body["redirect_to_user_uuid"].is_null());
    }
}

#[tokio::test]
async fn concurrent_merges_of_one_user_exactly_one_wins() {
    let fed = single().await;
    let c = fed.at("zzzzz");
    for round in 0..6 {
        let old = c.user(&format!("old{round}")).await;
        let n1 = c.user(&format!("first{round}")).await;
        let n2 = c.user(&format!("second{round}")).await;
        let n1_proj = uuid(&create(&n1.client, "groups", json!({"name": "inbox"})).await);
        let coll = uuid(&create(&old.client, "collections", json!({"name": "contested"})).await);
        // Even rounds: the token variant, both into the same new user (a request authenticated
        // after the other's commit acts, by design, as that new user) but different owners.
        // Odd rounds: the admin variant, into two different users.
        let (t, p1, p2, owners) = if round % 2 == 0 {
            let p = |owner: &str| {
                vec![
                    ("new_user_token", json!(n1.token)),
                    ("new_owner_uuid", json!(owner)),
                    ("redirect_to_new_user", json!(true)),
                ]
            };
            (
                old.token.clone(),
                p(&n1.uuid),
                p(&n1_proj),
                [(n1.uuid.clone(), n1.uuid.clone()), (n1_proj.clone(), n1.uuid.clone())],
            )
        } else {
            let p = |n: &TestUser| admin_merge_into(&old, n);
            (
                c.plan.root_token.clone(),
                p(&n1),
                p(&n2),
                [(n1.uuid.clone(), n1.uuid.clone()), (n2.uuid.clone(), n2.uuid.clone())],
            )
        };
        let (r1, r2) = tokio::join!(merge_req(c, Some(&t), Via::Json, &p1), merge_req(c, Some(&t), Via::Form, &p2));
        let oks = [&r1, &r2].iter().filter(|r| r.status == StatusCode::OK).count();
        assert_eq!(oks, 1, "round {round}: {} {} / {} {}", r1.status, r1.body, r2.status, r2.body);
        let ((owner, winner), loser) = if r1.status == StatusCode::OK { (&owners[0], &r2) } else { (&owners[1], &r1) };
        // A clear refusal: already merged (checked under the writer lock), or, for a token
        // authenticated after the commit, the old token now is the new user's (self).
        assert!(
            matches!((loser.status.as_u16(), loser.code()), (422, "merge_old_already_merged" | "merge_to_self")),
            "round {round}: {} {}",
            loser.status,
            loser.body
        );
        assert_eq!(&owner_of(&get(&c.root, &format!("/arvados/v1/collections/{coll}")).await), owner, "round {round}");
        assert_eq!(get(&old.client, "/arvados/v1/users/current").await.body["uuid"], winner.as_str(), "round {round}");
        let logs = merge_logs(c).await;
        assert_eq!(logs.iter().filter(|e| e["object_uuid"] == old.uuid.as_str()).count(), 1, "round {round}");
    }
    // The same request six times at once: exactly one wins.
    let old = c.user("manyold").await;
    let new = c.user("manynew").await;
    let p = vec![
        ("new_user_token", json!(new.token)),
        ("new_owner_uuid", json!(new.uuid)),
        ("redirect_to_new_user", json!(true)),
    ];
    let futs: Vec<_> = (0..6).map(|_| merge_req(c, Some(&old.token), Via::Json, &p)).collect();
    let answers = futures_join_all(futs).await;
    let oks = answers.iter().filter(|r| r.status == StatusCode::OK).count();
    assert_eq!(oks, 1, "{:?}", answers.iter().map(|a| (a.status, a.code().to_string())).collect::<Vec<_>>());
    for a in answers.iter().filter(|r| r.status != StatusCode::OK) {
        assert!(matches!(a.code(), "merge_old_already_merged" | "merge_to_self"), "{} {}", a.status, a.body);
    }
}

/// The admin variant's parameters: `old` into `new`, owned by `new`, with redirect.
fn admin_merge_into(old: &TestUser, new: &TestUser) -> Vec<(&'static str, Value)> {
    vec![
        ("old_user_uuid", json!(old.uuid)),
        ("new_user_uuid", json!(new.uuid)),
        ("new_owner_uuid", json!(new.uuid)),
        ("redirect_to_new_user", json!(true)),
    ]
}

/// Two replicas of one cluster on one database (PostgreSQL) asked at once to merge one user into
/// two others: exactly one wins, as on one daemon, because the writer lock under which a merge
/// checks and commits is the cluster's, not each replica's. Both replicas then tell the same story.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_merges_of_one_user_on_two_replicas_exactly_one_wins() {
    let name = "concurrent_merges_of_one_user_on_two_replicas_exactly_one_wins";
    if skips_unless(Backend::Postgres, name, "two processes share one store") {
        return;
    }
    let mut planned = Federation::plan(&["aaaaa"], "");
    planned.replicate("aaaaa", 2);
    let fed = planned.start().await;
    let (face, members) = (fed.at("aaaaa"), &fed.replicas("aaaaa").members);
    let root = face.plan.root_token.clone();
    for round in 0..4 {
        let old = face.user(&format!("old{round}")).await;
        let n1 = face.user(&format!("first{round}")).await;
        let n2 = face.user(&format!("second{round}")).await;
        let coll = uuid(&create(&old.client, "collections", json!({"name": "contested"})).await);
        let (p1, p2) = (admin_merge_into(&old, &n1), admin_merge_into(&old, &n2));
        let (r1, r2) = tokio::join!(
            merge_req(&members[0], Some(&root), Via::Json, &p1),
            merge_req(&members[1], Some(&root), Via::Form, &p2)
        );
        let oks = [&r1, &r2].iter().filter(|r| r.status == StatusCode::OK).count();
        assert_eq!(oks, 1, "round {round}: {} {} / {} {}", r1.status, r1.body, r2.status, r2.body);
        let (winner, loser) = if r1.status == StatusCode::OK { (&n1, &r2) } else { (&n2, &r1) };
        assert_eq!(
            (loser.status.as_u16(), loser.code()),
            (422, "merge_old_already_merged"),
            "round {round}: {}",
            loser.body
        );
        for m in members {
            let coll = get(&m.root, &format!("/arvados/v1/collections/{coll}")).await;
            assert_eq!(owner_of(&coll), winner.uuid, "round {round}, at {}", m.url);
        }
        // The old user's token now stands for the winner (through the proxy, either replica).
        for _ in 0..2 {
            let current = get(&old.client, "/arvados/v1/users/current").await;
            assert_eq!(current.body["uuid"], winner.uuid.as_str(), "round {round}");
        }
        let logs = merge_logs(face).await;
        assert_eq!(logs.iter().filter(|e| e["object_uuid"] == old.uuid.as_str()).count(), 1, "round {round}");
    }
}

/// Runs futures concurrently on this task and collects their outputs in order.
async fn futures_join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.into_iter().map(|o| o.unwrap()).collect()
}

/// DESIGN §4.5: a remote old user's credentials are deleted, never moved — its home's token must
/// not start acting as the local account it was merged into.
#[tokio::test]
async fn a_remote_old_users_credentials_are_never_moved() {
    let fed = crate::harness::Federation::start(&["aaaaa", "bbbbb"]).await;
    let (a, b) = (fed.at("aaaaa"), fed.at("bbbbb"));
    let alice = a.user("alice").await;
    let me = b.client(&alice.token).get("/arvados/v1/users/current").await.unwrap().ok().unwrap();
    assert_eq!(me["uuid"], alice.uuid.as_str(), "alice's token works at bbbbb before the merge");
    let bob = b.user("bob").await;
    let coll = b
        .root
        .post("/arvados/v1/collections", &json!({"collection": {"name": "alice's", "owner_uuid": alice.uuid}}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let q = serde_urlencoded::to_string([
        ("old_user_uuid", alice.uuid.as_str()),
        ("new_user_uuid", bob.uuid.as_str()),
        ("new_owner_uuid", bob.uuid.as_str()),
        ("redirect_to_new_user", "true"),
    ])
    .unwrap();
    let r = b.root.call(reqwest::Method::POST, &format!("/arvados/v1/users/merge?{q}"), None).await.unwrap();
    assert_eq!(r.status, reqwest::StatusCode::OK, "{}", r.body);
    let moved =
        b.root.get(&format!("/arvados/v1/collections/{}", coll["uuid"].as_str().unwrap())).await.unwrap().ok().unwrap();
    assert_eq!(moved["owner_uuid"], bob.uuid.as_str(), "the remote user's objects moved");
    // alice's home token does not become bob here.
    let r = b.client(&alice.token).get("/arvados/v1/users/current").await.unwrap();
    assert_eq!(r.status, reqwest::StatusCode::UNAUTHORIZED, "{}", r.body);
    // bob is unaffected, and alice is still herself at home.
    let me = bob.client.get("/arvados/v1/users/current").await.unwrap().ok().unwrap();
    assert_eq!(me["uuid"], bob.uuid.as_str());
    let me = alice.client.get("/arvados/v1/users/current").await.unwrap().ok().unwrap();
    assert_eq!(me["uuid"], alice.uuid.as_str());
}
