//! Cross-cluster migration (DESIGN §4.4) through the JSON API on real daemons: candidates by
//! verified email, the signed request, the grant from a login at the target, the confirmation and
//! its effects, and the refusals.

use crate::harness::{Cluster, Federation, TestUser};
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
