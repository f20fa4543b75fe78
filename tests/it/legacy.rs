//! Legacy data (issue 11, DESIGN §4.7) on real daemons: `hearth admin import-legacy` with bad
//! lines refused by number and the rest imported, re-imports unchanged or updated, imported
//! collections seen only by admins, offers to verified emails only (as the daemon normalises
//! them), claims that move everything once, "Not mine", and a remote user's claim on its home's
//! signed word.

use crate::harness::{Cluster, Federation, single};
use crate::migration::wait_cached;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::process::Command;

const HEARTH: &str = env!("CARGO_BIN_EXE_hearth");

fn import(c: &Cluster, text: &str, args: &[&str]) -> (bool, String, String) {
    let file = c.plan.dir.join(format!("legacy-{}.jsonl", rand_suffix()));
    std::fs::write(&file, text).unwrap();
    let out = Command::new(HEARTH)
        .args(["admin", "import-legacy"])
        .arg(&file)
        .args(args)
        .env("HEARTH_URL", &c.url)
        .env("HEARTH_TOKEN", &c.plan.root_token)
        .env("HEARTH_CA_CERT", &c.ca_path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn import_json(c: &Cluster, text: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let (ok, out, err) = import(c, text, &args);
    assert!(ok, "import failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn outcomes(report: &Value) -> Vec<(u64, String)> {
    report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["line"].as_u64().unwrap(), l["outcome"].as_str().unwrap().to_string()))
        .collect()
}

fn line(id: &str, email: &str, name: &str, collections: &[&str]) -> String {
    let cs: Vec<Value> =
        collections.iter().map(|n| json!({"name": n, "description": format!("{n} from the old days")})).collect();
    json!({"legacy_id": id, "email": email, "name": name, "collections": cs}).to_string()
}

async fn collections_named(c: &crate::harness::TestUser, name: &str) -> Vec<Value> {
    let q = serde_urlencoded::to_string([("filters", format!(r#"[["name","=","{name}"]]"#))]).unwrap();
    let r = c.client.get(&format!("/arvados/v1/collections?{q}")).await.unwrap().ok().unwrap();
    r["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn import_refuses_bad_lines_by_number_goes_on_and_is_idempotent() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let text = [
        line("g-1", "bob@example.org", "Bob", &["trait-a", "trait-b"]),
        r#"{"email":"x@example.org","name":"No id"}"#.to_string(),
        String::new(),
        line("g-2", "not an email", "Bad", &["x"]),
        r#"{"legacy_id":"g-3","email":"c@example.org","name":"C","collections":[{"description":"no name"}]}"#.into(),
        r#"{"legacy_id":"g-4","email":"d@example.org","name":["D"]}"#.into(),
        line("g-1", "bob@example.org", "Bob again", &["other"]),
        line("g-5", " Carol@Example.ORG ", "Carol", &[]),
        "{not json".into(),
    ]
    .join("\n");
    let r = import_json(c, &text, &[]);
    assert_eq!(
        outcomes(&r),
        vec![
            (1, "imported".into()),
            (2, "refused".into()),
            (4, "refused".into()),
            (5, "refused".into()),
            (6, "refused".into()),
            (7, "refused".into()),
            (8, "imported".into()),
            (9, "refused".into()),
        ]
    );
    let errors: Vec<&str> = r["lines"].as_array().unwrap().iter().filter_map(|l| l["error"].as_str()).collect();
    for want in [
        "legacy_id is required",
        "not an email address",
        "collections[0].name is required",
        "name must be a string",
        "already on line 1",
        "not JSON",
    ] {
        assert!(errors.iter().any(|e| e.contains(want)), "no refusal says {want:?}: {errors:?}");
    }
    assert_eq!(r["counts"], json!({"imported": 2, "updated": 0, "unchanged": 0, "refused": 6}));
    // The table a person reads.
    let (ok, out, _) = import(c, &text, &[]);
    assert!(ok);
    assert!(
        out.contains("unchanged") && out.lines().any(|l| l.starts_with("unchanged") && l.trim_end().ends_with(" 2")),
        "{out}"
    );
    // The same file again: unchanged; the repeated g-1 line did not overwrite the first.
    let again = import_json(c, &text, &[]);
    assert_eq!(again["counts"], json!({"imported": 0, "updated": 0, "unchanged": 2, "refused": 6}));
    // The collections exist, owned by the legacy account: admins see them, users do not.
    let bob = c.user("bob").await;
    let q = serde_urlencoded::to_string([("filters", r#"[["name","=","trait-a"]]"#)]).unwrap();
    let admin_view = c.root.get(&format!("/arvados/v1/collections?{q}")).await.unwrap().ok().unwrap();
    let item = &admin_view["items"][0];
    assert!(item["owner_uuid"].as_str().unwrap().contains("-l3gcy-"), "{admin_view}");
    assert!(collections_named(&bob, "trait-a").await.is_empty(), "a user saw an unclaimed legacy collection");
    let got = bob.client.get(&format!("/arvados/v1/collections/{}", item["uuid"].as_str().unwrap())).await.unwrap();
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    // A changed line updates (collections matched by name); a dry run changes nothing.
    let changed = line("g-1", "bob@example.org", "Bob", &["trait-a", "trait-c"]);
    let dry = import_json(c, &changed, &["--dry-run"]);
    assert_eq!(dry["counts"]["updated"], 1);
    let still = c.root.get(&format!("/arvados/v1/collections?{q}")).await.unwrap().ok().unwrap();
    assert_eq!(still["items"][0]["uuid"], item["uuid"]);
    let offers = bob.client.get("/hearth/v1/legacy_offers").await.unwrap().ok().unwrap();
    let names: Vec<&str> =
        offers["items"][0]["collections"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["trait-a", "trait-b"], "the dry run changed the account");
    let upd = import_json(c, &changed, &[]);
    assert_eq!(upd["counts"]["updated"], 1);
    let offers = bob.client.get("/hearth/v1/legacy_offers").await.unwrap().ok().unwrap();
    let kept: Vec<(&str, &str)> = offers["items"][0]["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["uuid"].as_str().unwrap()))
        .collect();
    assert_eq!(kept.iter().map(|k| k.0).collect::<Vec<_>>(), ["trait-a", "trait-c"]);
    assert_eq!(kept[0].1, item["uuid"].as_str().unwrap(), "a kept collection keeps its uuid");
    // Only admins import.
    let r = bob.client.post("/hearth/v1/admin/legacy/import", &json!({"lines": [changed]})).await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = c.root.post("/hearth/v1/admin/legacy/import", &json!({"lines": [1, 2]})).await.unwrap();
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn offers_go_to_verified_emails_and_a_claim_moves_everything_once() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let text = [
        line("old-7", "  ZOE@Example.ORG ", "Zoe Old", &["maps", "notes"]),
        line("old-8", "zoe@example.org", "Zoe Empty", &[]),
        line("old-9", "zoe@example.org", "Zoe Again", &["photos"]),
    ]
    .join("\n");
    assert_eq!(import_json(c, &text, &[])["counts"]["imported"], 3);
    let zoe = c.user("zoe").await;
    // Same address, not verified: no offer, and a claim changes nothing.
    let imposter = c.user_with("zoe2", json!({"email": "zoe@example.org", "email_verified": false})).await;
    let none = imposter.client.get("/hearth/v1/legacy_offers").await.unwrap().ok().unwrap();
    assert_eq!(none["items"], json!([]));
    let r = imposter.client.post("/hearth/v1/legacy_offers/old-7/claim", &json!({})).await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(r.code(), "email_unverified");
    // Another verified address: not found.
    let other = c.user("yves").await;
    let r = other.client.post("/hearth/v1/legacy_offers/old-7/claim", &json!({})).await.unwrap();
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // The owner: offers for the accounts with collections, by the normalised email.
    let offers = zoe.client.get("/hearth/v1/legacy_offers").await.unwrap().ok().unwrap();
    let ids: Vec<&str> = offers["items"].as_array().unwrap().iter().map(|o| o["legacy_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["old-7", "old-9"], "{offers}");
    // A scoped token cannot claim.
    let st = zoe.scoped_token(&["POST /hearth/v1/legacy_offers/"]).await;
    let r = c.client(&st).post("/hearth/v1/legacy_offers/old-7/claim", &json!({})).await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert!(collections_named(&zoe, "maps").await.is_empty(), "a refused claim moved something");
    // No collections: refused.
    let r = zoe.client.post("/hearth/v1/legacy_offers/old-8/claim", &json!({})).await.unwrap();
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // The claim: every collection into one project of Zoe's, once.
    let done = zoe.client.post("/hearth/v1/legacy_offers/old-7/claim", &json!({})).await.unwrap().ok().unwrap();
    assert_eq!(done["user_uuid"], zoe.uuid.as_str());
    assert_eq!(done["moved"].as_array().unwrap().len(), 2);
    let project = zoe
        .client
        .get(&format!("/arvados/v1/groups/{}", done["owner_uuid"].as_str().unwrap()))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(project["owner_uuid"], zoe.uuid.as_str());
    assert!(project["name"].as_str().unwrap().contains("old-7"), "{project}");
    for name in ["maps", "notes"] {
        let found = collections_named(&zoe, name).await;
        assert_eq!(found.len(), 1, "{name}");
        assert_eq!(found[0]["owner_uuid"], done["owner_uuid"]);
    }
    let r = zoe.client.post("/hearth/v1/legacy_offers/old-7/claim", &json!({})).await.unwrap();
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "already_claimed");
    // A changed line never touches a claimed account.
    let later = import_json(c, &line("old-7", "zoe@example.org", "Zoe Old", &["maps"]), &[]);
    assert_eq!(later["counts"]["refused"], 1);
    assert!(later["lines"][0]["error"].as_str().unwrap().contains("claimed"));
    assert_eq!(collections_named(&zoe, "notes").await.len(), 1);
    // The audit log names the claim.
    let q = serde_urlencoded::to_string([("filters", r#"[["event_type","=","legacy_claim"]]"#)]).unwrap();
    let logs = c.root.get(&format!("/arvados/v1/logs?{q}")).await.unwrap().ok().unwrap();
    assert_eq!(logs["items"].as_array().unwrap().len(), 1, "{logs}");
    // "Not mine" hides the other offer; nothing else changes.
    zoe.client.post("/hearth/v1/legacy_offers/old-9/dismiss", &json!({})).await.unwrap().ok().unwrap();
    let offers = zoe.client.get("/hearth/v1/legacy_offers").await.unwrap().ok().unwrap();
    assert_eq!(offers["items"], json!([]));
}

#[tokio::test]
async fn a_remote_user_claims_on_its_homes_signed_word() {
    let fed = Federation::start(&["aaaaa", "bbbbb"]).await;
    let (a, b) = (fed.at("aaaaa"), fed.at("bbbbb"));
    let text = [line("r-1", "dora@example.org", "Dora", &["cells"]), line("r-2", "ulla@example.org", "Ulla", &["x"])]
        .join("\n");
    assert_eq!(import_json(b, &text, &[])["counts"]["imported"], 2);
    let dora = a.user("dora").await;
    let ulla = a.user_with("ulla", json!({"email_verified": false})).await;
    wait_cached(b, &dora.uuid).await;
    // At B, with A's token: the email and its verification come from A's signed record.
    let at_b = b.client(&dora.token);
    let offers = at_b.get("/hearth/v1/legacy_offers").await.unwrap().ok().unwrap();
    assert_eq!(offers["items"][0]["legacy_id"], "r-1", "{offers}");
    let done = at_b.post("/hearth/v1/legacy_offers/r-1/claim", &json!({})).await.unwrap().ok().unwrap();
    assert_eq!(done["user_uuid"], dora.uuid.as_str());
    let r = b.client(&ulla.token).post("/hearth/v1/legacy_offers/r-2/claim", &json!({})).await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
}

#[tokio::test]
async fn a_returning_user_migrates_legacy_data_in_a_browser() {
    use crate::browser::{browser, click, fill, shot, start_chromedriver, text};
    let fed = single().await;
    let c = &fed.clusters[0];
    let text_in = [line("gn-42", "Lena@Example.org", "Lena Old", &["BXD traits", "liver study"])].join("\n");
    assert_eq!(import_json(c, &text_in, &[])["counts"]["imported"], 1);
    let lena = c.user("lena").await;
    let driver = start_chromedriver();
    let b = browser(&driver).await;
    b.goto(&format!("{}/login", c.url)).await.unwrap();
    fill(&b, "#login", "lena").await;
    fill(&b, "#password", &lena.password).await;
    click(&b, "#submit").await;
    let offer = text(&b, "#legacy-gn-42").await;
    assert!(offer.contains("We found 2 collections of Lena Old (lena@example.org)"), "{offer}");
    assert!(offer.contains("BXD traits") && offer.contains("liver study"), "{offer}");
    shot(&b, "legacy-01-offer.png").await;
    click(&b, ".legacy-claim").await;
    let done = text(&b, "#message").await;
    assert!(done.contains("2 collections from the older system (legacy id gn-42) now belong to you"), "{done}");
    shot(&b, "legacy-02-migrated.png").await;
    for name in ["BXD traits", "liver study"] {
        assert_eq!(collections_named(&lena, name).await.len(), 1, "{name} did not move");
    }
    // The offer is gone from the account page.
    b.goto(&format!("{}/account", c.url)).await.unwrap();
    assert_eq!(text(&b, "#user-uuid").await, lena.uuid);
    assert!(b.find(fantoccini::Locator::Css("#legacy-gn-42")).await.is_err(), "the offer is still shown");
    b.close().await.unwrap();
}

/// `items_available` of a collections list with `filters` (admin).
async fn collections_count(c: &Cluster, filters: Value) -> u64 {
    let q = serde_urlencoded::to_string([("filters", filters.to_string()), ("limit", "0".into())]).unwrap();
    let r = c.root.get(&format!("/arvados/v1/collections?{q}")).await.unwrap().ok().unwrap();
    r["items_available"].as_u64().unwrap()
}

/// An import cut short by a crash is completed by running the same file again (README
/// "Legacy import writes"): the daemon is killed with `kill -9` as soon as the first of the CLI's
/// three requests has landed, while the next is being sent, read or written (where exactly is left
/// to the race), and after a restart the same file is imported again. Every account then has
/// exactly its collections, none is there twice, and a third run finds every line unchanged.
#[tokio::test]
async fn an_import_cut_short_by_a_crash_is_completed_by_running_it_again() {
    let mut fed = single().await;
    let n = 10_001; // the CLI sends at most 5,000 lines a request: three requests
    let text: Vec<String> = (0..n)
        .map(|i| {
            let cs = [format!("a-{i}"), format!("b-{i}"), format!("c-{i}")];
            let cs: Vec<&str> = cs.iter().map(String::as_str).collect();
            line(&format!("crash-{i}"), &format!("crash{i}@example.org"), &format!("Crash {i}"), &cs)
        })
        .collect();
    let file = fed.clusters[0].plan.dir.join("crash.jsonl");
    std::fs::write(&file, text.join("\n")).unwrap();
    let c = &fed.clusters[0];
    let mut cli = Command::new(HEARTH)
        .args(["admin", "import-legacy"])
        .arg(&file)
        .env("HEARTH_URL", &c.url)
        .env("HEARTH_TOKEN", &c.plan.root_token)
        .env("HEARTH_CA_CERT", &c.ca_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first request has been answered (the CLI says "5000/10001 lines sent"), the second
    // is being sent: kill the daemon then. (Polling a list for the first request's rows instead
    // raced on a loaded machine: the last two requests could land between two polls.)
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = cli.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let first = rx.recv_timeout(std::time::Duration::from_secs(300)).expect("the first request never landed");
    assert!(first.ends_with("lines sent"), "{first}");
    fed.clusters[0].kill9();
    assert!(!cli.wait().unwrap().success(), "the CLI said the import succeeded although the daemon was killed");
    fed.clusters[0].restart().await;
    let c = &fed.clusters[0];
    let landed = collections_count(c, json!([["name", "like", "a-%"]])).await;
    assert!(landed >= 5_000 && landed < n, "{landed} accounts' first collection landed before the kill");

    let again = import_json(c, &text.join("\n"), &[]);
    let counts = &again["counts"];
    assert_eq!(counts["refused"], 0, "{counts}");
    assert_eq!(counts["updated"], 0, "a re-run changes nothing it had finished: {counts}");
    assert_eq!(counts["imported"].as_u64().unwrap() + counts["unchanged"].as_u64().unwrap(), n, "{counts}");
    assert!(counts["unchanged"].as_u64().unwrap() >= 5_000, "the first request's lines were kept: {counts}");
    for prefix in ["a-%", "b-%", "c-%"] {
        assert_eq!(collections_count(c, json!([["name", "like", prefix]])).await, n, "collections {prefix}");
    }
    // Accounts on both sides of each request's edge, and some between, own exactly their three.
    let lines = again["lines"].as_array().unwrap();
    for i in [0, 1, 2_500, 4_998, 4_999, 5_000, 5_001, 7_777, 9_999, 10_000] {
        let owner = lines[i]["uuid"].as_str().unwrap();
        let q = serde_urlencoded::to_string([
            ("filters", json!([["owner_uuid", "=", owner]]).to_string()),
            ("order", json!(["name asc"]).to_string()),
        ])
        .unwrap();
        let r = c.root.get(&format!("/arvados/v1/collections?{q}")).await.unwrap().ok().unwrap();
        let names: Vec<&str> = r["items"].as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
        assert_eq!(names, [format!("a-{i}"), format!("b-{i}"), format!("c-{i}")], "line {}", i + 1);
    }
    let third = import_json(c, &text.join("\n"), &[]);
    assert_eq!(third["counts"], json!({"imported": 0, "updated": 0, "unchanged": n, "refused": 0}));
}
