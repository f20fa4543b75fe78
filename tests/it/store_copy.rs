//! `hearth admin store copy`: a sled cluster moved into PostgreSQL (issue 17).
//!
//! A daemon on sled gets users, tokens, a project and collections; a copy while it runs is refused
//! (sled's lock); it is stopped and copied into a new database, copied again (nothing written,
//! verified again), and started on PostgreSQL with the same data dir (its signing key and TLS
//! files): the old password and the old token log in, and the objects are the same. Once the
//! daemon has written to the database, another copy is refused. The cluster is on sled on either
//! run of the suite ([`Planned::on_sled`](crate::harness::Planned::on_sled)); the target is a
//! database on the suite's PostgreSQL server.

use crate::harness::{Federation, HEARTH, merge_table_keys, pg};
use serde_json::{Value, json};
use std::process::Command;

fn copy(from: &std::path::Path, to: &str) -> (bool, String, String) {
    let out = Command::new(HEARTH)
        .args(["admin", "store", "copy", "--from"])
        .arg(from)
        .args(["--to", to])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run hearth admin store copy");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The fields of an object that a copy must keep (the view minus what depends on the request).
fn same(a: &Value, b: &Value) {
    for k in ["uuid", "owner_uuid", "name", "created_at", "modified_at", "properties", "etag"] {
        assert_eq!(a[k], b[k], "field {k}: {a} vs {b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sled_cluster_copied_into_postgres_serves_the_same_accounts_and_objects() {
    let mut plan = Federation::plan(&["zzzzz"], "");
    plan.on_sled("zzzzz");
    let mut fed = plan.start().await;
    let c = fed.at("zzzzz");
    let alice = c.user("alice").await;
    let bob = c.user("bob").await;
    let scoped = alice.scoped_token(&["GET /arvados/v1/users/current"]).await;
    let create = |path: &'static str, body: Value| {
        let client = alice.client.clone();
        async move { client.post(path, &body).await.unwrap().ok().unwrap() }
    };
    let project = create("/arvados/v1/groups", json!({"group": {"name": "Proj", "group_class": "project"}})).await;
    let mut collections = Vec::new();
    for i in 0..5 {
        let attrs = json!({"name": format!("data {i}"), "owner_uuid": project["uuid"], "properties": {"i": i}});
        collections.push(create("/arvados/v1/collections", json!({ "collection": attrs })).await);
    }
    let users_before = c.root.get("/arvados/v1/users?limit=100").await.unwrap().ok().unwrap();
    let dir = c.plan.dir.clone();
    let config = c.plan.config.clone();

    let db = pg::server().create_database("storecopy");
    let url = pg::server().url_of(&db);

    let (ok, _, err) = copy(&dir, &url);
    assert!(!ok && err.contains("in use"), "a copy while the daemon runs is refused: {err}");

    assert!(fed.at_mut("zzzzz").terminate().is_some_and(|s| s.success()), "clean stop");

    let (ok, out, err) = copy(&dir, &url);
    assert!(ok, "first copy: {out}\n{err}");
    assert!(out.contains("copied from") && out.contains("verified"), "{out}");
    assert!(out.contains("useruuid_user") && !out.contains(" NO"), "{out}");
    let (ok, again, err) = copy(&dir, &url);
    assert!(ok, "second copy: {again}\n{err}");
    assert!(again.contains("copied again from") && again.contains("0 rows written, 0 deleted"), "{again}");
    // Every tree's line (rows and checksums) is the same as the first run's.
    let table = |s: &str| s.lines().skip(1).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(table(&out), table(&again));

    let text = std::fs::read_to_string(&config).unwrap();
    let keys = [("backend", "\"postgres\"".to_string()), ("url", format!("\"{url}\""))];
    std::fs::write(&config, merge_table_keys(&text, "store", &keys)).unwrap();
    fed.at_mut("zzzzz").restart().await;
    let c = fed.at("zzzzz");
    assert!(std::fs::read_to_string(dir.join("hearth.log")).unwrap().contains("postgres"), "runs on PostgreSQL");

    let (token, _) = c.anon.login("alice", &alice.password, None).await.expect("old password logs in");
    for t in [&alice.token, &token, &scoped, &bob.token] {
        let me = c.client(t).get("/arvados/v1/users/current").await.unwrap().ok().unwrap();
        assert!(me["uuid"] == alice.uuid.as_str() || me["uuid"] == bob.uuid.as_str(), "{me}");
    }
    let p = alice.client.get(&format!("/arvados/v1/groups/{}", project["uuid"].as_str().unwrap())).await;
    same(&project, &p.unwrap().ok().unwrap());
    for col in &collections {
        let path = format!("/arvados/v1/collections/{}", col["uuid"].as_str().unwrap());
        same(col, &c.client(&alice.token).get(&path).await.unwrap().ok().unwrap());
    }
    let filters =
        serde_urlencoded::to_string([("filters", json!([["owner_uuid", "=", project["uuid"]]]).to_string())]).unwrap();
    let list = c.client(&alice.token).get(&format!("/arvados/v1/collections?{filters}")).await.unwrap().ok().unwrap();
    assert_eq!(list["items_available"], 5, "{list}");
    let users_after = c.root.get("/arvados/v1/users?limit=100").await.unwrap().ok().unwrap();
    assert_eq!(users_before["items_available"], users_after["items_available"]);
    let uuids = |v: &Value| v["items"].as_array().unwrap().iter().map(|u| u["uuid"].clone()).collect::<Vec<_>>();
    assert_eq!(uuids(&users_before), uuids(&users_after));

    // The login above wrote a token into the database: it is no longer what the copy left.
    assert!(fed.at_mut("zzzzz").terminate().is_some_and(|s| s.success()), "clean stop");
    let (ok, out, err) = copy(&dir, &url);
    assert!(!ok && err.contains("changed since"), "a copy over a database a daemon wrote is refused: {out}\n{err}");
    drop(fed);
    pg::server().drop_database(&db);
}
