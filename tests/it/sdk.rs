//! The real Arvados Python SDK (`arvados-python-client`) against a running daemon over HTTPS.
//!
//! The SDK lives in a virtualenv that `.ci/run` creates; the test uses `$HEARTH_TEST_PYTHON`, or
//! `.venv/bin/python` at the repository root, and fails (rather than skips) when neither can
//! import `arvados`, so that CI cannot pass without running it.

use crate::harness::single;
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;

fn python() -> PathBuf {
    crate::harness::python_with("arvados")
}

#[tokio::test]
async fn the_arvados_python_sdk_drives_a_daemon() {
    let py = python();
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let bob = c.user("bob").await;
    let admin = c.user_with("boss", json!({"is_admin": true})).await;
    let anonymous = c.anon.post("/hearth/v1/anonymous", &json!({})).await.unwrap().ok().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("tests/sdk/check_sdk.py");
    let out = Command::new(py)
        .arg(script)
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
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    // The merge the script did is visible here too: bob's token now acts as alice.
    let me = bob.client.get("/arvados/v1/users/current").await.unwrap().ok().unwrap();
    assert_eq!(me["uuid"], alice.uuid.as_str());
}
