//! The real Arvados Python SDK (`arvados-python-client`), both lines sites run (2.7.x and 3.x),
//! against running daemons over HTTPS — and Arvados' own federation admin tool,
//! `arv-federation-migrate` (shipped with 2.7), against a three-cluster Hearth federation.
//!
//! The SDKs live in virtualenvs that `.ci/run` creates (`.venv`, `.venv27`); the tests use
//! `$HEARTH_TEST_PYTHON` / `$HEARTH_TEST_PYTHON27` or those, and fail (rather than skip) when
//! they cannot import the right line of the SDK, so that CI cannot pass without running them.

use crate::harness::{Cluster, Federation, SdkLine, TestUser, sdk_python, single};
use crate::migration::wait_cached;
use hearth::client::Client;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Runs `tests/sdk/check_sdk.py` with the SDK of `line` against a fresh cluster.
async fn check_sdk_with(line: SdkLine) {
    let py = sdk_python(line);
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let bob = c.user("bob").await;
    let admin = c.user_with("boss", json!({"is_admin": true})).await;
    let anonymous = c.anon.post("/hearth/v1/anonymous", &json!({})).await.unwrap().ok().unwrap();
    let out = Command::new(py)
        .arg(repo().join("tests/sdk/check_sdk.py"))
        .env("ARVADOS_API_HOST", c.url.trim_start_matches("https://"))
        .env("ARVADOS_API_TOKEN", &alice.token)
        .env("HEARTH_ADMIN_TOKEN", &admin.token)
        .env("HEARTH_OTHER_USER_TOKEN", &bob.token)
        .env("HEARTH_ANONYMOUS_TOKEN", anonymous["anonymous_token"].as_str().unwrap())
        .env("HEARTH_CA_CERT", &c.ca_path)
        .env("HOME", fed.dir.path())
        .env_remove("ARVADOS_API_HOST_INSECURE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "SDK checks failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("arvados-python-client {}", line.prefix())), "{stdout}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    // The merge the script did is visible here too: bob's token now acts as alice.
    let me = bob.client.get("/arvados/v1/users/current").await.unwrap().ok().unwrap();
    assert_eq!(me["uuid"], alice.uuid.as_str());
}

#[tokio::test]
async fn the_arvados_python_sdk_3_drives_a_daemon() {
    check_sdk_with(SdkLine::V3).await;
}

#[tokio::test]
async fn the_arvados_python_sdk_2_7_drives_a_daemon() {
    check_sdk_with(SdkLine::V2_7).await;
}

/// Runs `arv-federation-migrate` (from the 2.7 SDK's venv) with `args`, in `dir`.
fn migrate_tool(dir: &Path, ca: &Path, args: &[&str]) -> (Output, String) {
    let py = sdk_python(SdkLine::V2_7);
    let tool = py.parent().unwrap().join("arv-federation-migrate");
    let out = Command::new(&py)
        .arg(tool)
        .args(args)
        .current_dir(dir)
        .env("SSL_CERT_FILE", ca)
        .env("HOME", dir)
        .env_remove("ARVADOS_API_HOST")
        .env_remove("ARVADOS_API_TOKEN")
        .env_remove("ARVADOS_API_HOST_INSECURE")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("$ arv-federation-migrate {}\n{text}", args.join(" "));
    (out, text)
}

/// What `who` sees as its own user at `at`.
async fn current_uuid(at: &Cluster, token: &str) -> String {
    at.client(token).get("/arvados/v1/users/current").await.unwrap().ok().unwrap()["uuid"].as_str().unwrap().to_string()
}

async fn project(who: &Client, owner: &str, name: &str) -> Value {
    who.post("/arvados/v1/groups", &json!({"group": {"name": name, "owner_uuid": owner, "group_class": "project"}}))
        .await
        .unwrap()
        .ok()
        .unwrap()
}

/// Arvados' own migration tool merges a person's account at B into their account at A, across a
/// three-cluster Hearth federation: `--check` (tokens, exported config, discovery), `--report`
/// (users of every cluster, `bypass_federation`), `--dry-run`, then `--migrate`, which creates a
/// token for the home account (admin, `owner_uuid`), salts it itself (HMAC-SHA1) for each cluster
/// and uses it there, and merges at each cluster. A name both accounts use at B stops the first
/// run there, with the tool's own explanation and nothing changed at B; `--data-into-subproject`
/// (an unwrapped `groups.create` with `ensure_unique_name`) then goes through.
#[tokio::test]
async fn arv_federation_migrate_merges_an_account_across_a_hearth_federation() {
    let fed = Federation::start(&["aaaaa", "bbbbb", "ccccc"]).await;
    let (a, b, c) = (fed.at("aaaaa"), fed.at("bbbbb"), fed.at("ccccc"));
    let admins: Vec<TestUser> = {
        let mut v = Vec::new();
        for (cl, name) in [(a, "admina"), (b, "adminb"), (c, "adminc")] {
            v.push(cl.user_with(name, json!({"is_admin": true})).await);
        }
        v
    };
    let home = a.user("dana").await;
    wait_cached(b, &home.uuid).await;
    wait_cached(c, &home.uuid).await;
    let wrong = b.user("dana").await;
    wait_cached(a, &wrong.uuid).await;
    wait_cached(c, &wrong.uuid).await;
    // At B, the wrong account holds a project and a collection; the home account (acting at B
    // through its token from A) already has a project of the same name there.
    let notes = wrong
        .client
        .post("/arvados/v1/collections", &json!({"collection": {"name": "notes"}}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    project(&wrong.client, &wrong.uuid, "results").await;
    let home_at_b = b.client(&home.token);
    project(&home_at_b, &home.uuid, "results").await;

    let dir = fed.dir.path();
    let tokens: String = fed
        .clusters
        .iter()
        .zip(&admins)
        .map(|(cl, t)| format!("{},{}\n", cl.url.trim_start_matches("https://"), t.token))
        .collect();
    std::fs::write(dir.join("tokens.csv"), tokens).unwrap();
    let ca = a.ca_path.clone();

    let (out, text) = migrate_tool(dir, &ca, &["--tokens", "tokens.csv", "--check"]);
    assert!(out.status.success() && text.contains("Tokens file passed checks"), "{text}");

    let (out, text) = migrate_tool(dir, &ca, &["--tokens", "tokens.csv", "--report", "report.csv"]);
    assert!(out.status.success() && text.contains("Wrote report.csv"), "{text}");
    let report = std::fs::read_to_string(dir.join("report.csv")).unwrap();
    let rows: Vec<&str> = report.lines().filter(|l| l.starts_with("dana@example.org,")).collect();
    assert_eq!(rows.len(), 2, "both accounts, and no cached copy: {report}");
    assert!(rows.iter().any(|r| r.contains(&home.uuid)) && rows.iter().any(|r| r.contains(&wrong.uuid)), "{report}");
    assert!(!report.contains("000000000000000"), "no system user: {report}");
    // The operator names the home cluster.
    let plan: String = report
        .lines()
        .map(|l| {
            if l.starts_with("dana@example.org,") {
                format!("{},aaaaa\n", l.trim_end_matches(','))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(dir.join("plan.csv"), plan).unwrap();

    let (out, text) = migrate_tool(dir, &ca, &["--tokens", "tokens.csv", "--dry-run", "plan.csv"]);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Performing dry run"), "{text}");
    assert!(text.contains(&format!("Migrating {} to {} on bbbbb", wrong.uuid, home.uuid)), "{text}");
    assert_eq!(current_uuid(b, &wrong.token).await, wrong.uuid, "a dry run changes nothing");

    // The first run: the name both accounts use at B stops the merge there, changing nothing.
    let (out, text) = migrate_tool(dir, &ca, &["--tokens", "tokens.csv", "--migrate", "plan.csv"]);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "Cannot migrate to {} because both origin and target users have a group named 'results'",
            home.uuid
        )),
        "the tool explains the conflict: {text}"
    );
    assert_eq!(current_uuid(b, &wrong.token).await, wrong.uuid, "nothing changed at B");
    let coll = b.root.get(&format!("/arvados/v1/collections/{}", notes["uuid"].as_str().unwrap())).await.unwrap();
    assert_eq!(coll.ok().unwrap()["owner_uuid"], wrong.uuid.as_str());

    // Into a subproject of its own it goes through.
    let (out, text) =
        migrate_tool(dir, &ca, &["--tokens", "tokens.csv", "--data-into-subproject", "--migrate", "plan.csv"]);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("Error") && !text.contains("Skipping user migration"), "{text}");
    // At B the wrong account now stands for the home one, and what it had is in the subproject.
    assert_eq!(current_uuid(b, &wrong.token).await, home.uuid);
    let coll = b
        .root
        .get(&format!("/arvados/v1/collections/{}", notes["uuid"].as_str().unwrap()))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let sub = b
        .root
        .get(&format!("/arvados/v1/groups/{}", coll["owner_uuid"].as_str().unwrap()))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(sub["owner_uuid"], home.uuid.as_str());
    assert_eq!(sub["name"], format!("Migrated from dana@example.org ({})", wrong.uuid));
    // The wrong account's cached copies at A and C redirect too.
    for cl in [a, c] {
        let r = cl.root.get(&format!("/arvados/v1/users/{}", wrong.uuid)).await.unwrap();
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}: a merged-away user is hidden", cl.id);
    }
    // A second run finds nothing left to do.
    let (out, text) =
        migrate_tool(dir, &ca, &["--tokens", "tokens.csv", "--data-into-subproject", "--migrate", "plan.csv"]);
    assert!(out.status.success() && !text.contains("Migrating"), "{text}");
}
