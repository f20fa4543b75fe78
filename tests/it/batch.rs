//! Admin batch migration and the federation report (DESIGN §4.6) on three real clusters, driven
//! through the `hearth admin migrate` command as an operator would.

use crate::harness::{Cluster, Federation, HEARTH};
use crate::migration::wait_cached;
use serde_json::{Value, json};
use std::process::Command;

fn admin(c: &Cluster, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(HEARTH)
        .args(["admin", "migrate"])
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

fn json_of(c: &Cluster, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, out, err) = admin(c, &all);
    assert!(ok, "hearth admin migrate {args:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[tokio::test]
async fn report_dry_run_run_and_rerun() {
    let fed = Federation::start(&["aaaaa", "bbbbb", "ccccc"]).await;
    let (a, b, c) = (fed.at("aaaaa"), fed.at("bbbbb"), fed.at("ccccc"));
    // Overlapping accounts: ann (home aaaaa) also at bbbbb and ccccc; ben (home bbbbb) also at aaaaa;
    // cal only at ccccc; dot at aaaaa and bbbbb with an unverified email at bbbbb.
    let mk = |cl: &Cluster, name: &str, verified: bool| {
        let attrs = json!({"username": name, "email": format!("{name}@example.org"), "email_verified": verified});
        let root = cl.root.clone();
        async move { root.create_user(attrs, None).await.unwrap()["uuid"].as_str().unwrap().to_string() }
    };
    let ann_a = mk(a, "ann", true).await;
    let ann_b = mk(b, "ann", true).await;
    let ann_c = mk(c, "ann", true).await;
    let ben_b = mk(b, "ben", true).await;
    let ben_a = mk(a, "ben", true).await;
    let _cal_c = mk(c, "cal", true).await;
    let _dot_a = mk(a, "dot", true).await;
    let dot_b = mk(b, "dot", false).await;
    let coll = b
        .root
        .post("/arvados/v1/collections", &json!({"collection": {"name": "ann's data", "owner_uuid": ann_b}}))
        .await
        .unwrap()
        .ok()
        .unwrap();

    // The report, from any cluster, through the federation.
    let r = json_of(c, &["--report"]);
    let people = r["people"].as_array().unwrap();
    let find = |email: &str| people.iter().find(|p| p["email"] == email).cloned();
    let ann = find("ann@example.org").expect("ann is reported");
    assert_eq!(ann["clusters"], 3);
    assert!(find("cal@example.org").is_none(), "one account, no conflict: not reported");
    let dot = find("dot@example.org").unwrap();
    assert!(dot["conflicts"].as_array().unwrap().iter().any(|c| c.as_str().unwrap().contains("unverified")), "{dot}");
    let (ok, table, _) = admin(c, &["--report"]);
    assert!(ok && table.contains("ann@example.org") && table.contains("unverified"), "{table}");

    let plan_path = fed.dir.path().join("plan.csv");
    std::fs::write(
        &plan_path,
        "login,home_cluster\nann@example.org,aaaaa\nben,bbbbb\ndot@example.org,aaaaa\nnobody@example.org,aaaaa\nnot-an-email@,aaaaa\neve@example.org,qqqqq\ncal@example.org,aaaaa\ncal@example.org,ccccc\n",
    )
    .unwrap();
    let plan = plan_path.to_str().unwrap();
    // Dry run at bbbbb: would merge ann (into aaaaa's), skip ben (home here), refuse dot (unverified),
    // and report the bad lines by number. Nothing changes.
    let d = json_of(b, &["--plan", plan, "--dry-run"]);
    let res = d["results"].as_array().unwrap();
    let line = |n: u64| res.iter().find(|r| r["line"] == n).cloned().unwrap_or_else(|| panic!("line {n} missing: {d}"));
    assert_eq!(line(2)["action"], "merge");
    assert!(line(2)["detail"].as_str().unwrap().contains(&ann_a));
    assert_eq!(line(3)["action"], "skip");
    assert_eq!(line(4)["action"], "refuse");
    assert_eq!(line(5)["action"], "skip", "no account here");
    assert_eq!(line(6)["action"], "refuse");
    assert!(line(7)["detail"].as_str().unwrap().contains("unknown cluster"));
    assert!(
        line(8)["detail"].as_str().unwrap().contains("line 9")
            && line(9)["detail"].as_str().unwrap().contains("line 8")
    );
    let me = b.root.get(&format!("/arvados/v1/users/{ann_b}")).await.unwrap();
    assert_eq!(me.status, reqwest::StatusCode::OK, "dry run changed nothing");

    // The real run at bbbbb, then at aaaaa and ccccc.
    let run = json_of(b, &["--plan", plan]);
    let merged: Vec<&Value> = run["results"].as_array().unwrap().iter().filter(|r| r["action"] == "merged").collect();
    assert_eq!(merged.len(), 1, "{run}");
    let moved =
        b.root.get(&format!("/arvados/v1/collections/{}", coll["uuid"].as_str().unwrap())).await.unwrap().ok().unwrap();
    let project = b
        .root
        .get(&format!("/arvados/v1/groups/{}", moved["owner_uuid"].as_str().unwrap()))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(project["owner_uuid"], ann_a.as_str());
    assert!(project["name"].as_str().unwrap().starts_with("Migrated from ann@example.org"));
    assert_eq!(
        b.root.get(&format!("/arvados/v1/users/{ann_b}")).await.unwrap().status,
        reqwest::StatusCode::NOT_FOUND,
        "ann at bbbbb redirects now"
    );
    let run_a = json_of(a, &["--plan", plan]);
    assert!(
        run_a["results"].as_array().unwrap().iter().any(|r| r["key"] == "ben" && r["action"] == "merged"),
        "{run_a}"
    );
    assert_eq!(a.root.get(&format!("/arvados/v1/users/{ben_a}")).await.unwrap().status, reqwest::StatusCode::NOT_FOUND);
    let _ = wait_cached(a, &ben_b).await;
    let run_c = json_of(c, &["--plan", plan]);
    assert!(
        run_c["results"].as_array().unwrap().iter().any(|r| r["key"] == "ann@example.org" && r["action"] == "merged"),
        "{run_c}"
    );
    assert_eq!(c.root.get(&format!("/arvados/v1/users/{ann_c}")).await.unwrap().status, reqwest::StatusCode::NOT_FOUND);
    // dot (unverified at bbbbb) stays.
    assert_eq!(b.root.get(&format!("/arvados/v1/users/{dot_b}")).await.unwrap().status, reqwest::StatusCode::OK);

    // A re-run does nothing and says so.
    let (ok, again, _) = admin(b, &["--plan", plan]);
    assert!(ok);
    assert!(again.contains("0 merged"), "{again}");
    let again = json_of(b, &["--plan", plan]);
    assert!(again["results"].as_array().unwrap().iter().all(|r| r["action"] != "merged"));
    assert!(
        again["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["key"] == "ann@example.org" && r["detail"] == "already merged")
    );
}
