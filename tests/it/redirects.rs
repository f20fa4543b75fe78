//! "Claims stay inside their cluster" (DESIGN §3) for redirects, on real daemons: a peer may say
//! where one of its own users went, but a redirect it announces to a user of another cluster —
//! ours (an admin, an ordinary user, the system user) or a third cluster's — never lets a token
//! act as that user, unless the target's home granted that very migration (the reverse-direction
//! migration, whose grant the target's home remembers). A token stops at the last account whose
//! redirect may be followed.

use crate::harness::{Cluster, Federation, TestUser, set_cookie_value};
use crate::migration::{person_at_two, wait_cached};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Moves `old` (an account at `old_at`) into `new` (at `new_at`) through the JSON flow of
/// DESIGN §4.4: the request at `old_at`, the login with it at `new_at`, the confirmation.
async fn migrate(old_at: &Cluster, old: &TestUser, new_at: &Cluster, new: &TestUser) -> Value {
    let m =
        old.client.post("/hearth/v1/migrations", &json!({"target_cluster": new_at.id})).await.unwrap().ok().unwrap();
    let l = new_at
        .anon
        .post(
            "/hearth/v1/login",
            &json!({"login": new.username, "password": new.password, "remote": old_at.id, "migration_request": m["request"]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap();
    old.client
        .post(
            &format!("/hearth/v1/migrations/{}/confirm", m["uuid"].as_str().unwrap()),
            &json!({"grant": l["migration_grant"]}),
        )
        .await
        .unwrap()
        .ok()
        .unwrap()
}

/// Waits until `from` has delivered every queued notice to `to` (an acknowledged batch is applied).
async fn delivered(from: &Cluster, to: &str) {
    let started = Instant::now();
    loop {
        let all = from.root.get("/hearth/v1/admin/peers").await.unwrap().ok().unwrap();
        let peer = all["items"].as_array().unwrap().iter().find(|i| i["cluster_id"] == to).cloned().unwrap();
        if peer["queue_depth"] == 0 && peer["reachable"] == true {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{} never delivered to {to}: {peer}", from.id);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `home`'s root sets `user`'s redirect to `target` (a users update), and waits until `peer` applied
/// the `user_redirected` notice.
async fn home_redirects(home: &Cluster, user: &str, target: &str, peer: &Cluster) {
    let r = home
        .root
        .put(&format!("/arvados/v1/users/{user}"), &json!({"user": {"redirect_to_user_uuid": target}}))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    delivered(home, &peer.id).await;
}

/// Whom `token` acts as at `at` (`users/current`): (status, uuid, is_admin).
async fn acts_as(at: &Cluster, token: &str) -> (StatusCode, String, bool) {
    let r = at.client(token).get("/arvados/v1/users/current").await.unwrap();
    (r.status, r.body["uuid"].as_str().unwrap_or("").to_string(), r.body["is_admin"] == true)
}

/// `token` at `at` has no admin power and cannot act as `victim`: it lists nobody but itself and
/// cannot mint a token for `victim`.
async fn no_power_over(at: &Cluster, token: &str, victim: &str, case: &str) {
    let client = at.client(token);
    let list = client.get("/arvados/v1/users?limit=1000").await.unwrap();
    if list.status == StatusCode::OK {
        let items = list.body["items"].as_array().unwrap();
        assert!(items.len() <= 1, "{case}: the token lists other users: {}", list.body);
        assert!(!items.iter().any(|u| u["uuid"] == victim), "{case}: the token sees {victim}");
    }
    for attrs in [json!({"owner_uuid": victim, "scopes": ["all"]}), json!({"scopes": ["all"]})] {
        let r = client
            .post("/arvados/v1/api_client_authorizations", &json!({"api_client_authorization": attrs}))
            .await
            .unwrap();
        if r.status.is_success() {
            let minted = r.body["api_token"].as_str().unwrap();
            let (_, uuid, admin) = acts_as(at, &format!("v2/{}/{minted}", r.body["uuid"].as_str().unwrap())).await;
            assert!(uuid != victim && !admin, "{case}: minted {attrs} acting as {uuid} (admin {admin})");
        }
    }
}

/// Finding 2 of issue 10, exactly: after `mb` (at B) migrated into `ma` (at A), A's root points
/// `ma` at B's admin. `mb`'s old token at B must not become B's admin.
#[tokio::test]
async fn a_peer_cannot_redirect_its_user_to_our_admin() {
    let fed = Federation::start(&["aaaaa", "bbbbb"]).await;
    let (a, b) = (fed.at("aaaaa"), fed.at("bbbbb"));
    let admin = b.user_with("boss", json!({"is_admin": true})).await;
    let (ma, mb) = person_at_two(&fed, "aaaaa", "bbbbb", "mona").await;
    migrate(b, &mb, a, &ma).await;
    assert_eq!(acts_as(b, &mb.token).await, (StatusCode::OK, ma.uuid.clone(), false), "the migration worked");

    home_redirects(a, &ma.uuid, &admin.uuid, b).await;
    let (status, uuid, is_admin) = acts_as(b, &mb.token).await;
    assert_ne!(uuid, admin.uuid, "mb's token acts as B's admin");
    assert!(!is_admin, "mb's token has admin power");
    assert_eq!(
        (status, uuid.as_str()),
        (StatusCode::OK, ma.uuid.as_str()),
        "it still acts as the account it moved into"
    );
    no_power_over(b, &mb.token, &admin.uuid, "redirect to B's admin").await;
    // A browser session with that token: told its account moved to A, never shown B's admin.
    let page = b
        .anon
        .http()
        .get(format!("{}/account", b.url))
        .header("Cookie", format!("hearth_session={}", mb.token))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains(&admin.uuid), "the session is B's admin: {page}");
    assert!(page.contains("Your account moved") && page.contains(&ma.uuid), "{page}");
    // A password login as mb is sent to A, where the account it moved into lives.
    let form = b.anon.http().get(format!("{}/login", b.url)).send().await.unwrap();
    let csrf = set_cookie_value(&form, "hearth_csrf").unwrap();
    let r = b
        .anon
        .http()
        .post(format!("{}/login", b.url))
        .header("Cookie", format!("hearth_csrf={csrf}"))
        .form(&[("login", "mona@example.org"), ("password", mb.password.as_str()), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    assert!(r.headers()["location"].to_str().unwrap().starts_with(&format!("{}/login?", a.url)));
    // B's admin is untouched.
    assert_eq!(acts_as(b, &admin.token).await, (StatusCode::OK, admin.uuid.clone(), true));
}

/// Variants: a peer's redirect to an ordinary user of ours, to our system user, to a user of a
/// third cluster cached here, a chain through the peer's own users (followed) that then leaves the
/// peer (not followed), and the same token validated for a third cluster.
#[tokio::test]
async fn a_peer_redirect_leaving_its_cluster_is_never_followed() {
    let fed = Federation::start(&["aaaaa", "bbbbb", "ccccc"]).await;
    let (a, b, c) = (fed.at("aaaaa"), fed.at("bbbbb"), fed.at("ccccc"));
    let admin = b.user_with("boss", json!({"is_admin": true})).await;
    let victim = b.user("vic").await;
    let carl = c.user("carl").await;
    wait_cached(b, &carl.uuid).await;
    let ma2 = a.user("nora").await;
    wait_cached(b, &ma2.uuid).await;
    let (ma, mb) = person_at_two(&fed, "aaaaa", "bbbbb", "mona").await;
    migrate(b, &mb, a, &ma).await;

    let b_root_user = "bbbbb-tpzed-000000000000000".to_string();
    for (target, case) in [
        (&victim.uuid, "an ordinary user of B"),
        (&b_root_user, "B's system user"),
        (&carl.uuid, "a user of C cached at B"),
    ] {
        home_redirects(a, &ma.uuid, target, b).await;
        let (status, uuid, is_admin) = acts_as(b, &mb.token).await;
        assert_eq!((status, uuid.as_str(), is_admin), (StatusCode::OK, ma.uuid.as_str(), false), "{case}");
        no_power_over(b, &mb.token, target, case).await;
        // Validated for C, the token must not be presented as B's user either.
        let (status, uuid, _) = acts_as(c, &mb.token).await;
        assert!(uuid != *target && uuid != victim.uuid, "{case}: at C the token acts as {uuid} ({status})");
    }
    assert_eq!(acts_as(b, &victim.token).await, (StatusCode::OK, victim.uuid.clone(), false));

    // A peer may move its user to another of its own users: followed.
    home_redirects(a, &ma.uuid, &ma2.uuid, b).await;
    assert_eq!(acts_as(b, &mb.token).await, (StatusCode::OK, ma2.uuid.clone(), false), "A's own merge is followed");
    // ... and a later hop of that chain out of A is not.
    home_redirects(a, &ma2.uuid, &admin.uuid, b).await;
    assert_eq!(acts_as(b, &mb.token).await, (StatusCode::OK, ma2.uuid.clone(), false), "chain leaving A");
    no_power_over(b, &mb.token, &admin.uuid, "chain leaving A").await;
    // A loop back into B (mb itself) is not followed either.
    home_redirects(a, &ma2.uuid, &mb.uuid, b).await;
    assert_eq!(acts_as(b, &mb.token).await, (StatusCode::OK, ma2.uuid.clone(), false), "loop back to B");
}

/// The reverse-direction migration: A's account moves into B's account, with a grant B issued at
/// B's login. B remembers that grant, so a token here that resolves to A's account follows the
/// redirect into B's account; when A later re-points its account elsewhere in B, it does not.
#[tokio::test]
async fn the_reverse_migration_is_followed_and_a_later_change_of_its_redirect_is_not() {
    let fed = Federation::start(&["aaaaa", "bbbbb"]).await;
    let (a, b) = (fed.at("aaaaa"), fed.at("bbbbb"));
    let admin = b.user_with("boss", json!({"is_admin": true})).await;
    // The person first moves a wrong account at B (x) into their account at A (ma) ...
    let (ma, x) = person_at_two(&fed, "aaaaa", "bbbbb", "pia").await;
    migrate(b, &x, a, &ma).await;
    assert_eq!(acts_as(b, &x.token).await, (StatusCode::OK, ma.uuid.clone(), false));
    // ... then makes B their home: A's account moves into a new account at B (mb).
    let mb = b.user_with("piab", json!({"email": "pia@example.org"})).await;
    wait_cached(a, &mb.uuid).await;
    let done = migrate(a, &ma, b, &mb).await;
    assert_eq!(done["new_user"]["uuid"], mb.uuid.as_str(), "{done}");
    assert_eq!(acts_as(a, &ma.token).await, (StatusCode::OK, mb.uuid.clone(), false), "at A, ma's token is mb");
    delivered(a, "bbbbb").await;
    // x's old token at B: x → ma (B's own merge) → mb (A's redirect, granted by B): mb.
    assert_eq!(acts_as(b, &x.token).await, (StatusCode::OK, mb.uuid.clone(), false), "the granted hop is followed");
    assert_eq!(acts_as(b, &mb.token).await, (StatusCode::OK, mb.uuid.clone(), false));

    // A later re-points ma at B's admin: the grant was for mb only.
    home_redirects(a, &ma.uuid, &admin.uuid, b).await;
    let (status, uuid, is_admin) = acts_as(b, &x.token).await;
    assert_eq!((status, uuid.as_str(), is_admin), (StatusCode::OK, ma.uuid.as_str(), false));
    no_power_over(b, &x.token, &admin.uuid, "re-pointed after a granted migration").await;
    // And back at mb: followed again.
    home_redirects(a, &ma.uuid, &mb.uuid, b).await;
    assert_eq!(acts_as(b, &x.token).await, (StatusCode::OK, mb.uuid.clone(), false));
}
