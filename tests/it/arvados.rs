//! Issue 15: what Arvados' own tools and clients expect of a cluster — tokens shown as Arvados
//! shows them (and salted by scripts), the exported config, the methods and parameters the
//! discovery document declares, names unique per owner, local usernames of remote users, and the
//! user life-cycle methods. The real SDKs and tools drive the same things in `sdk.rs`.

use crate::harness::Federation;
use reqwest::StatusCode;
use serde_json::json;

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
