//! Person records and claims (issue 14, DESIGN §4.9) on real daemons: records checked and found
//! by index, attachments only by whoever may write the object, claims by verified email (here
//! and from a peer's signed record), refusals that say what to verify and change nothing, the
//! automatic claim at login, and the admin queue with approve, reject and the mail that reaches a
//! real SMTP server (Python's aiosmtpd) on loopback.

use crate::harness::{Cluster, Federation, TestUser, single};
use crate::migration::wait_cached;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

async fn person(u: &TestUser, attrs: Value) -> Value {
    u.client.post("/hearth/v1/persons", &json!({"person": attrs})).await.unwrap().ok().unwrap()
}

async fn collection(u: &TestUser, name: &str) -> String {
    let c = u.client.post("/arvados/v1/collections", &json!({"collection": {"name": name}})).await.unwrap();
    c.ok().unwrap()["uuid"].as_str().unwrap().to_string()
}

async fn attach(u: &TestUser, person: &str, object: &str) -> hearth::client::Answer {
    u.client.post(&format!("/hearth/v1/persons/{person}/attach"), &json!({"object_uuid": object})).await.unwrap()
}

async fn search(u: &TestUser, q: &str) -> Vec<String> {
    let q = serde_urlencoded::to_string([("q", q)]).unwrap();
    let r = u.client.get(&format!("/hearth/v1/persons?{q}")).await.unwrap().ok().unwrap();
    r["items"].as_array().unwrap().iter().map(|p| p["uuid"].as_str().unwrap().to_string()).collect()
}

fn uuid(v: &Value) -> String {
    v["uuid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn records_are_checked_found_by_index_and_attached_only_by_writers() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let mallory = c.user("mallory").await;
    for (attrs, code) in [
        (json!({"name": "X", "orcid": "0000-0002-1825-0098"}), "invalid_orcid"),
        (json!({"name": "X", "orcid": "0000-0002-1825"}), "invalid_orcid"),
        (json!({"name": "X", "emails": ["a@b.org", " A@B.org"]}), "invalid_emails"),
        (json!({"name": "X", "emails": ["not-an-email"]}), "invalid_emails"),
        (json!({"name": "", "emails": []}), "invalid_name"),
        (json!({"name": "X", "emails": "a@b.org"}), "invalid_person"),
        (json!({"name": "X", "nick": "x"}), "invalid_person"),
    ] {
        let r = alice.client.post("/hearth/v1/persons", &json!({"person": attrs})).await.unwrap();
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{attrs}: {:?}", r.body);
        assert_eq!(r.code(), code, "{attrs}");
    }
    let all = c.root.get("/hearth/v1/persons").await.unwrap().ok().unwrap();
    assert_eq!(all["items"], json!([]), "a refused record was stored");
    let p = person(&alice, json!({"name": "Josiah Carberry", "emails": ["JC@Example.org"], "orcid": "https://orcid.org/0000-0002-1825-0097"})).await;
    assert_eq!(p["orcid"], "0000-0002-1825-0097");
    assert_eq!(p["emails"], json!(["jc@example.org"]));
    assert!(p["identities"].as_array().unwrap().iter().all(|i| i["verified"] == false), "{p}");
    let other = person(&alice, json!({"name": "Josephine Baker"})).await;
    for (q, want) in [
        ("carb", vec![uuid(&p)]),
        ("JOS", {
            let mut v = vec![uuid(&p), uuid(&other)];
            v.sort_by_key(|u| if *u == uuid(&p) { 1 } else { 0 });
            v
        }),
        ("jos carberry", vec![uuid(&p)]),
        ("jc@example.org", vec![uuid(&p)]),
        ("0000-0002-1825-0097", vec![uuid(&p)]),
        ("nobody", vec![]),
    ] {
        let mut got = search(&mallory, q).await;
        let mut want = want;
        got.sort();
        want.sort();
        assert_eq!(got, want, "q={q}");
    }
    // A search's limit is a number or refused, and a big one is capped.
    for bad in ["abc", "-1", "1.5", " 1"] {
        let q = serde_urlencoded::to_string([("q", "jos"), ("limit", bad)]).unwrap();
        let r = mallory.client.get(&format!("/hearth/v1/persons?{q}")).await.unwrap();
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "limit={bad:?}: {:?}", r.body);
        assert!(r.body.to_string().contains("limit"), "the refusal names the limit: {:?}", r.body);
    }
    for (limit, n) in [("1", 1), ("100000", 2)] {
        let q = serde_urlencoded::to_string([("q", "jos"), ("limit", limit)]).unwrap();
        let r = mallory.client.get(&format!("/hearth/v1/persons?{q}")).await.unwrap().ok().unwrap();
        assert_eq!(r["items"].as_array().unwrap().len(), n, "limit={limit}");
    }
    // Attachments: only to objects the attacher may write.
    let coll = collection(&alice, "carberry papers").await;
    let r = attach(&mallory, &uuid(&p), &coll).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    assert_eq!(attach(&alice, &uuid(&p), &coll).await.status, StatusCode::OK);
    assert_eq!(attach(&alice, &uuid(&p), &coll).await.status, StatusCode::UNPROCESSABLE_ENTITY, "attached twice");
    // …and never through the generic links API, which would skip that check.
    let r = mallory
        .client
        .post(
            "/arvados/v1/links",
            &json!({"link": {"link_class": "person", "name": "author", "head_uuid": uuid(&p), "tail_uuid": coll}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let detail = mallory.client.get(&format!("/hearth/v1/persons/{}", uuid(&p))).await.unwrap().ok().unwrap();
    assert_eq!(detail["attached_to"].as_array().unwrap().len(), 1);
    assert!(detail["attached_to"][0]["object_name"].is_null(), "a reader saw the name of an object it cannot read");
    // Only the writer (or an admin) changes a record.
    let r = mallory
        .client
        .put(&format!("/hearth/v1/persons/{}", uuid(&p)), &json!({"person": {"name": "Mine"}}))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_claim_needs_a_verified_identity_and_grants_read_access_once() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let coll = collection(&alice, "bob's data").await;
    let p = person(&alice, json!({"name": "Bob B", "emails": ["bob@example.org"]})).await;
    attach(&alice, &uuid(&p), &coll).await.ok().unwrap();
    let orcid_only = person(&alice, json!({"name": "Bob O", "orcid": "0000-0002-1694-233X"})).await;
    // The same address, not verified: refused, saying what to verify; nothing changed.
    let imposter = c.user_with("bob2", json!({"email": "bob@example.org", "email_verified": false})).await;
    let r = imposter.client.post(&format!("/hearth/v1/persons/{}/claim", uuid(&p)), &json!({})).await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(r.code(), "identity_unverified");
    assert!(r.body["errors"][0].as_str().unwrap().contains("verify bob@example.org"), "{:?}", r.body);
    let r = imposter.client.post(&format!("/hearth/v1/persons/{}/claim", uuid(&orcid_only)), &json!({})).await.unwrap();
    assert!(r.body["errors"][0].as_str().unwrap().contains("link the ORCID iD 0000-0002-1694-233X"), "{:?}", r.body);
    assert_eq!(
        imposter.client.get(&format!("/arvados/v1/collections/{coll}")).await.unwrap().status,
        StatusCode::NOT_FOUND
    );
    // The verified owner, but with a scoped token: refused.
    let bob = c.user("bob").await;
    let st = bob.scoped_token(&["POST /hearth/v1/persons/"]).await;
    let r = c.client(&st).post(&format!("/hearth/v1/persons/{}/claim", uuid(&p)), &json!({})).await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    // Bob's login already claimed it (his verified email is on it); a claim now says so.
    let got = bob.client.get(&format!("/hearth/v1/persons/{}", uuid(&p))).await.unwrap().ok().unwrap();
    assert_eq!(got["claimed_by"], bob.uuid.as_str(), "the login did not claim the record: {got}");
    let r = bob.client.post(&format!("/hearth/v1/persons/{}/claim", uuid(&p)), &json!({})).await.unwrap();
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "already_claimed");
    // And he can read what the record is attached to.
    assert_eq!(bob.client.get(&format!("/arvados/v1/collections/{coll}")).await.unwrap().status, StatusCode::OK);
    // A record made after his login is claimed by an explicit claim, with the same effect.
    let coll2 = collection(&alice, "more of bob's data").await;
    let p2 = person(&alice, json!({"name": "Robert B", "emails": ["other@example.org", "BOB@example.org"]})).await;
    attach(&alice, &uuid(&p2), &coll2).await.ok().unwrap();
    let done =
        bob.client.post(&format!("/hearth/v1/persons/{}/claim", uuid(&p2)), &json!({})).await.unwrap().ok().unwrap();
    assert_eq!(done["state"], "claimed");
    assert_eq!(done["matched"], "email");
    assert_eq!(done["granted"], json!([coll2]));
    assert_eq!(bob.client.get(&format!("/arvados/v1/collections/{coll2}")).await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn matching_records_are_claimed_at_login_and_the_answer_says_what() {
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let coll = collection(&alice, "carol's survey").await;
    let p = person(&alice, json!({"name": "Carol C", "emails": ["carol@example.org"]})).await;
    attach(&alice, &uuid(&p), &coll).await.ok().unwrap();
    c.root
        .create_user(
            json!({"username": "carol", "email": "Carol@Example.org", "email_verified": true}),
            Some("pw-carol-secret"),
        )
        .await
        .unwrap();
    let r = c
        .anon
        .post("/hearth/v1/login", &json!({"login": "carol", "password": "pw-carol-secret"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let attached = r["attached_persons"].as_array().unwrap();
    assert_eq!(attached.len(), 1, "{r}");
    assert_eq!(attached[0]["uuid"], p["uuid"]);
    let carol = c.client(r["api_token"].as_str().unwrap());
    assert_eq!(carol.get(&format!("/arvados/v1/collections/{coll}")).await.unwrap().status, StatusCode::OK);
    let again = c
        .anon
        .post("/hearth/v1/login", &json!({"login": "carol", "password": "pw-carol-secret"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(again["attached_persons"], json!([]), "a record was claimed twice");
}

/// A real SMTP server on loopback (aiosmtpd, from the test venv), writing what it receives into a
/// maildir; killed when dropped.
struct Smtp {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn smtp() -> Smtp {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(crate::harness::python_with("aiosmtpd"))
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
        .arg(dir.path().join("mail"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "aiosmtpd did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Smtp { child, port, dir }
}

impl Smtp {
    /// The messages received so far (whole text).
    fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(self.dir.path().join("mail").join(sub)) {
                for e in rd.flatten() {
                    out.push(std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        out
    }

    async fn wait_for(&self, needle: &str) -> String {
        let started = Instant::now();
        loop {
            if let Some(m) = self.messages().into_iter().find(|m| m.contains(needle)) {
                return m;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no mail with {needle:?}: {:?}", self.messages());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn name_only_claims_wait_for_an_admin_who_approves_or_rejects_and_is_mailed() {
    let mail = smtp().await;
    let extra =
        format!("[notify]\nsmtp_url = \"smtp://127.0.0.1:{}\"\nadmin_emails = [\"admins@example.org\"]\n", mail.port);
    let fed = Federation::start_with(&["zzzzz"], &extra).await;
    let c: &Cluster = &fed.clusters[0];
    let alice = c.user("alice").await;
    let dana = c.user("dana").await;
    let coll = collection(&alice, "field notes").await;
    let p = person(&alice, json!({"name": "D. Quill"})).await;
    attach(&alice, &uuid(&p), &coll).await.ok().unwrap();
    let r = dana.client.post(&format!("/hearth/v1/persons/{}/claim", uuid(&p)), &json!({})).await.unwrap();
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["state"], "pending");
    let claim = r.body["claim"]["uuid"].as_str().unwrap().to_string();
    let again = dana.client.post(&format!("/hearth/v1/persons/{}/claim", uuid(&p)), &json!({})).await.unwrap();
    assert_eq!(again.code(), "claim_pending");
    // The admins get a mail naming the record and the claimant.
    let m = mail.wait_for("D. Quill").await;
    assert!(m.contains("admins@example.org") && m.contains(&dana.uuid), "{m}");
    // The queue; deciding is for admins only.
    let q = c.root.get("/hearth/v1/admin/claims").await.unwrap().ok().unwrap();
    assert_eq!(q["items"].as_array().unwrap().len(), 1);
    assert_eq!(q["items"][0]["claimant_uuid"], dana.uuid.as_str());
    assert_eq!(dana.client.get("/hearth/v1/admin/claims").await.unwrap().status, StatusCode::FORBIDDEN);
    let r = dana.client.post(&format!("/hearth/v1/admin/claims/{claim}/approve"), &json!({})).await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        dana.client.get(&format!("/arvados/v1/collections/{coll}")).await.unwrap().status,
        StatusCode::NOT_FOUND
    );
    // Approve: the attachments move to Dana, who can read them; the record is retired.
    let ok = c.root.post(&format!("/hearth/v1/admin/claims/{claim}/approve"), &json!({})).await.unwrap().ok().unwrap();
    assert_eq!(ok["state"], "approved");
    assert_eq!(ok["person"]["merged_into"], dana.uuid.as_str());
    assert_eq!(dana.client.get(&format!("/arvados/v1/collections/{coll}")).await.unwrap().status, StatusCode::OK);
    let r = c.root.post(&format!("/hearth/v1/admin/claims/{claim}/approve"), &json!({})).await.unwrap();
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "claim_decided");
    // Reject, with a reason the claimant sees (and without one: refused).
    let p2 = person(&alice, json!({"name": "D. Q. Other"})).await;
    let r = dana.client.post(&format!("/hearth/v1/persons/{}/claim", uuid(&p2)), &json!({})).await.unwrap();
    let claim2 = r.body["claim"]["uuid"].as_str().unwrap().to_string();
    let r = c.root.post(&format!("/hearth/v1/admin/claims/{claim2}/reject"), &json!({})).await.unwrap();
    assert_eq!(r.code(), "missing_reason");
    c.root
        .post(&format!("/hearth/v1/admin/claims/{claim2}/reject"), &json!({"reason": "another Quill"}))
        .await
        .unwrap()
        .ok()
        .unwrap();
    let mine = dana.client.get("/hearth/v1/claims").await.unwrap().ok().unwrap();
    let rejected = mine["items"].as_array().unwrap().iter().find(|c| c["uuid"] == claim2.as_str()).unwrap().clone();
    assert_eq!(rejected["state"], "rejected");
    assert_eq!(rejected["reason"], "another Quill");
    // The audit log has each decision.
    for event in ["person_claim_pending", "person_claim_approved", "person_claim_rejected"] {
        let q = serde_urlencoded::to_string([("filters", format!(r#"[["event_type","=","{event}"]]"#))]).unwrap();
        let logs = c.root.get(&format!("/arvados/v1/logs?{q}")).await.unwrap().ok().unwrap();
        assert!(!logs["items"].as_array().unwrap().is_empty(), "no {event} entry");
    }
}

#[tokio::test]
async fn a_remote_user_claims_on_its_homes_signed_record() {
    let fed = Federation::start(&["aaaaa", "bbbbb"]).await;
    let (a, b) = (fed.at("aaaaa"), fed.at("bbbbb"));
    let writer = b.user("writer").await;
    let coll = collection(&writer, "erin's images").await;
    let p = person(&writer, json!({"name": "Erin E", "emails": ["erin@example.org"]})).await;
    attach(&writer, &uuid(&p), &coll).await.ok().unwrap();
    let erin = a.user("erin").await;
    wait_cached(b, &erin.uuid).await;
    let at_b = b.client(&erin.token);
    let done = at_b.post(&format!("/hearth/v1/persons/{}/claim", uuid(&p)), &json!({})).await.unwrap().ok().unwrap();
    assert_eq!(done["state"], "claimed", "{done}");
    assert_eq!(at_b.get(&format!("/arvados/v1/collections/{coll}")).await.unwrap().status, StatusCode::OK);
    // Unverified at home: refused here too.
    let ulla = a.user_with("ulla", json!({"email": "ulla@example.org", "email_verified": false})).await;
    let p2 = person(&writer, json!({"name": "Ulla", "emails": ["ulla@example.org"]})).await;
    let r = b.client(&ulla.token).post(&format!("/hearth/v1/persons/{}/claim", uuid(&p2)), &json!({})).await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
}

#[tokio::test]
async fn claims_of_each_kind_in_a_browser() {
    use crate::browser::{browser, click, fill, shot, start_chromedriver, text, wait_for_text};
    let fed = single().await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let admin = c.user_with("boss", json!({"is_admin": true})).await;
    let coll = collection(&alice, "gina's genotypes").await;
    let by_email = person(&alice, json!({"name": "Gina G", "emails": ["gina.g@example.org"]})).await;
    attach(&alice, &uuid(&by_email), &coll).await.ok().unwrap();
    let name_only = person(&alice, json!({"name": "G. Gardener"})).await;
    attach(&alice, &uuid(&name_only), &coll).await.ok().unwrap();
    let gina = c.user_with("gina", json!({"email": "gina.g@example.org"})).await;
    let driver = start_chromedriver();
    let b = browser(&driver).await;
    let login = |who: &'static str, pw: String| {
        let b = &b;
        let url = c.url.clone();
        async move {
            b.goto(&format!("{url}/login?local=1")).await.unwrap();
            fill(b, "#login", who).await;
            fill(b, "#password", &pw).await;
            click(b, "#submit").await;
            wait_for_text(b, "h1", "Your account").await;
        }
    };
    login("gina", gina.password.clone()).await;
    assert!(text(&b, "#claimed-persons").await.contains("Gina G"), "the login's claim is not shown");
    shot(&b, "persons-01-account.png").await;
    // Her logins claimed the email record; one made afterwards is claimed with the button.
    let later = person(&alice, json!({"name": "Gina Gee", "emails": ["gina.g@example.org"]})).await;
    attach(&alice, &uuid(&later), &coll).await.ok().unwrap();
    b.goto(&format!("{}/persons/{}", c.url, uuid(&later))).await.unwrap();
    assert_eq!(text(&b, "#person-name").await, "Gina Gee");
    shot(&b, "persons-02-person.png").await;
    click(&b, "#claim").await;
    wait_for_text(&b, "#message", "is now yours (your email matched)").await;
    shot(&b, "persons-03-claimed.png").await;
    b.goto(&format!("{}/persons/{}", c.url, uuid(&name_only))).await.unwrap();
    click(&b, "#claim").await;
    wait_for_text(&b, "#message", "an admin will decide").await;
    b.goto(&format!("{}/account", c.url)).await.unwrap();
    assert!(b.source().await.unwrap().contains("waiting for an admin"));
    shot(&b, "persons-04-pending.png").await;
    b.delete_all_cookies().await.unwrap();
    login("boss", admin.password.clone()).await;
    b.goto(&format!("{}/admin/claims", c.url)).await.unwrap();
    assert!(text(&b, "main").await.contains("G. Gardener"));
    shot(&b, "persons-05-queue.png").await;
    click(&b, ".approve").await;
    wait_for_text(&b, "main", "No claim is waiting").await;
    let p = gina.client.get(&format!("/hearth/v1/persons/{}", uuid(&name_only))).await.unwrap().ok().unwrap();
    assert_eq!(p["merged_into"], gina.uuid.as_str());
    b.close().await.unwrap();
}

/// The ORCID path: a record naming an ORCID iD is claimed at the first ORCID login (the provider
/// is ORCID-flagged, so its subject is the user's ORCID iD) and by an explicit claim later; a user
/// without that ORCID iD is told to link it first.
#[tokio::test]
async fn an_orcid_login_claims_the_records_naming_its_orcid() {
    use crate::oidc::{Agent, setup};
    let accounts = json!({"ada": {"sub": "0000-0002-1825-0097", "email": "ada@elsewhere.example", "email_verified": false,
        "name": "Ada Lovelace", "preferred_username": "ada"}});
    let (fed, _op) = setup(&["aaaaa"], &["aaaaa"], "", "orcid = true", accounts).await;
    let c = fed.at("aaaaa");
    let writer = c.user("writer").await;
    let coll = collection(&writer, "analytical engine notes").await;
    let p = person(&writer, json!({"name": "A. A. Lovelace", "orcid": "0000-0002-1825-0097"})).await;
    attach(&writer, &uuid(&p), &coll).await.ok().unwrap();
    // Someone else, without that ORCID iD: told what to link, nothing changed.
    let other = c.user("other").await;
    let r = other.client.post(&format!("/hearth/v1/persons/{}/claim", uuid(&p)), &json!({})).await.unwrap();
    assert_eq!(r.code(), "identity_unverified");
    assert!(r.body["errors"][0].as_str().unwrap().contains("link the ORCID iD 0000-0002-1825-0097"), "{:?}", r.body);
    // Ada's first login through the ORCID-flagged provider claims it.
    let agent = Agent::new(&c.ca_pem);
    let done = agent.login(c, "ada", "?return_to=%2Faccount").await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let ada = agent.session(c);
    let me = ada.get("/arvados/v1/users/current").await.unwrap().ok().unwrap();
    assert_eq!(me["orcid"], "0000-0002-1825-0097");
    let got = ada.get(&format!("/hearth/v1/persons/{}", uuid(&p))).await.unwrap().ok().unwrap();
    assert_eq!(got["claimed_by"], me["uuid"], "the ORCID login did not claim the record: {got}");
    assert_eq!(ada.get(&format!("/arvados/v1/collections/{coll}")).await.unwrap().status, StatusCode::OK);
    // A record made afterwards is claimed by the explicit claim, on the ORCID iD.
    let later = person(&writer, json!({"name": "Ada", "orcid": "https://orcid.org/0000-0002-1825-0097"})).await;
    let r = ada.post(&format!("/hearth/v1/persons/{}/claim", uuid(&later)), &json!({})).await.unwrap().ok().unwrap();
    assert_eq!((r["state"].as_str(), r["matched"].as_str()), (Some("claimed"), Some("orcid")), "{r}");
}
