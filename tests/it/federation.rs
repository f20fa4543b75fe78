//! The federation protocol on real daemons (DESIGN §3, §4.2): login notices through the durable
//! outbox across a peer that is down and a home killed with SIGKILL, the signed-request verifier
//! against a hostile peer that really signs (forged origins, keys, destinations, clocks, nonces,
//! bodies and claims), key rotation, token validation at the issuer (one round trip for many
//! concurrent first uses, revocation within seconds, salted tokens), and the admin views.
//!
//! Forged requests are built here with `federation_proto::RequestSignature` and, when they pose as
//! a real cluster, signed with that cluster's own key read from its data dir.

use crate::harness::{Cluster, Federation};
use federation_proto::notice::{Notice, NoticeBatch, UserRecord};
use federation_proto::{ClusterSigningKey, RequestSignature, Token};
use hearth::client::Answer;
use hearth::federation::signing_key;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::fmt::Debug;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ABC: [&str; 3] = ["aaaaa", "bbbbb", "ccccc"];
pub(crate) const NOTICES: &str = "/federation/v1/notices";
const VALIDATE: &str = "/federation/v1/tokens/validate";

/// A bounded wait on observable state: `tick` sleeps 50 ms, or fails the test once `secs` passed.
pub(crate) struct Poll {
    what: String,
    deadline: Instant,
    secs: u64,
}

impl Poll {
    pub(crate) fn new(what: impl Into<String>, secs: u64) -> Poll {
        Poll { what: what.into(), deadline: Instant::now() + Duration::from_secs(secs), secs }
    }

    pub(crate) async fn tick(&self, last_seen: &impl Debug) {
        assert!(Instant::now() < self.deadline, "waited {} s for {}; last seen: {last_seen:?}", self.secs, self.what);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn unix_now() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

pub(crate) fn nonce() -> String {
    hearth::accounts::random_secret()[..32].to_string()
}

/// The signing key a cluster signs with now (read from its data dir, as a hostile insider could).
pub(crate) fn key_of(c: &Cluster) -> ClusterSigningKey {
    signing_key::read(&c.plan.dir.join("signing.key")).unwrap()
}

/// An `Authorization: Hearth-Signature …` value.
#[allow(clippy::too_many_arguments)]
fn signature(
    method: &str,
    uri: &str,
    origin: &str,
    destination: &str,
    ts: i64,
    nonce: &str,
    body: &[u8],
    key: &ClusterSigningKey,
) -> String {
    RequestSignature::sign(method, uri, &origin.parse().unwrap(), &destination.parse().unwrap(), ts, nonce, body, key)
        .unwrap()
        .to_header_value()
}

/// A correctly formed signature by `origin` with `key` for a POST of `body` to `path` at `to`.
pub(crate) fn signed_for(to: &Cluster, origin: &str, key: &ClusterSigningKey, path: &str, body: &[u8]) -> String {
    signature("POST", path, origin, &to.id, unix_now(), &nonce(), body, key)
}

/// POSTs `body` to `path` at `to` with the given `Authorization` (none when `None`).
pub(crate) async fn post_raw(to: &Cluster, path: &str, authorization: Option<&str>, body: &[u8]) -> Answer {
    let mut req =
        to.anon.http().post(format!("{}{path}", to.url)).header("Content-Type", "application/json").body(body.to_vec());
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let bytes = resp.bytes().await.unwrap();
    Answer { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
}

/// POSTs `body` to `path` at `to`, signed as `origin` with `key`.
pub(crate) async fn post_signed(
    to: &Cluster,
    origin: &str,
    key: &ClusterSigningKey,
    path: &str,
    body: &[u8],
) -> Answer {
    post_raw(to, path, Some(&signed_for(to, origin, key, path, body)), body).await
}

/// A home record as a home cluster would publish it.
pub(crate) fn record(uuid: &str, home_seq: u64, first_name: &str) -> UserRecord {
    UserRecord {
        uuid: uuid.parse().unwrap(),
        email: format!("{}@forged.example", first_name.to_lowercase()),
        email_verified: true,
        username: None,
        first_name: first_name.to_string(),
        last_name: "Forged".to_string(),
        is_active: true,
        redirect_to_user_uuid: None,
        last_login_at: Some("2025-01-02T03:04:05.000000000Z".to_string()),
        home_seq,
        orcid: None,
        profiles: Vec::new(),
    }
}

fn login(user: UserRecord) -> Notice {
    Notice::Login { user }
}

pub(crate) fn batch(origin: &str, destination: &str, notices: Vec<Notice>) -> NoticeBatch {
    NoticeBatch { origin: origin.parse().unwrap(), destination: destination.parse().unwrap(), notices }
}

pub(crate) fn body_of(b: &NoticeBatch) -> Vec<u8> {
    serde_json::to_vec(b).unwrap()
}

/// `GET /arvados/v1/users/<uuid>` with `c`'s root token.
pub(crate) async fn user_at(c: &Cluster, uuid: &str) -> Answer {
    c.root.get(&format!("/arvados/v1/users/{uuid}")).await.unwrap()
}

/// Waits until `peer`'s cached copy of `uuid` carries the last login its home reports; returns it.
pub(crate) async fn learns_last_login(peer: &Cluster, home: &Cluster, uuid: &str, secs: u64) -> Value {
    let at_home = user_at(home, uuid).await.ok().unwrap();
    let want = at_home["last_login_at"].clone();
    assert!(want.is_string(), "{at_home}");
    let poll = Poll::new(format!("{} to learn {uuid}'s login at {want}", peer.id), secs);
    loop {
        let r = user_at(peer, uuid).await;
        if r.status == StatusCode::OK && r.body["last_login_at"] == want {
            assert_eq!(r.body["home_cluster"], home.id.as_str(), "{}", r.body);
            assert_eq!(r.body["is_admin"], false, "a cached remote user is never admin: {}", r.body);
            return r.body;
        }
        poll.tick(&(r.status, &r.body)).await;
    }
}

/// `c`'s admin view of `peer` (`GET /hearth/v1/admin/peers`).
pub(crate) async fn peer_view(c: &Cluster, peer: &str) -> Value {
    let all = c.root.get("/hearth/v1/admin/peers").await.unwrap().ok().unwrap();
    all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["cluster_id"] == peer)
        .cloned()
        .unwrap_or_else(|| panic!("{peer} not in {}'s peers: {all}", c.id))
}

/// Waits until `c` has delivered everything to `peer` and last reached it.
async fn drained(c: &Cluster, peer: &str, secs: u64) -> Value {
    let poll = Poll::new(format!("{} to drain its queue to {peer}", c.id), secs);
    loop {
        let v = peer_view(c, peer).await;
        if v["queue_depth"] == 0 && v["reachable"] == true {
            return v;
        }
        poll.tick(&v).await;
    }
}

/// The sum of a Prometheus counter's samples at `c` that carry `peer="<peer>"` (0 when absent).
pub(crate) async fn counter(c: &Cluster, name: &str, peer: &str) -> f64 {
    let text = c.anon.http().get(format!("{}/metrics", c.url)).send().await.unwrap().text().await.unwrap();
    let label = format!("peer=\"{peer}\"");
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{')) && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn token_uuid(token: &str) -> String {
    token.split('/').nth(1).unwrap().to_string()
}

fn salted(token: &str, for_cluster: &str) -> String {
    token.parse::<Token>().unwrap().salt_for(&for_cluster.parse().unwrap()).unwrap().to_string()
}

#[tokio::test]
async fn logins_reach_a_peer_that_was_down_and_survive_a_home_killed_right_after_acknowledging() {
    let mut fed = Federation::start(&ABC).await;
    let alice = fed.at("aaaaa").user("alice").await;
    let bob = fed.at("aaaaa").user("bob").await;
    for peer in ["bbbbb", "ccccc"] {
        for u in [&alice, &bob] {
            let cached = learns_last_login(fed.at(peer), fed.at("aaaaa"), &u.uuid, 20).await;
            assert_eq!(cached["email"], format!("{}@example.org", u.username), "{cached}");
            assert_eq!(cached["username"], u.username.as_str(), "{cached}");
        }
        // The admin view after traffic: nothing queued, the peer reachable.
        let v = drained(fed.at("aaaaa"), peer, 20).await;
        assert!(v["last_success"].is_i64(), "{v}");
        assert!(v["next_retry"].is_null(), "{v}");
    }

    // bbbbb is down while alice logs in three times and bob once.
    fed.at_mut("bbbbb").kill9();
    let a = fed.at("aaaaa");
    for _ in 0..3 {
        a.anon.login("alice", &alice.password, None).await.unwrap();
    }
    a.anon.login("bob", &bob.password, None).await.unwrap();
    // ccccc, up all along, learns at once; aaaaa shows bbbbb unreachable with the notices queued.
    learns_last_login(fed.at("ccccc"), a, &alice.uuid, 20).await;
    learns_last_login(fed.at("ccccc"), a, &bob.uuid, 20).await;
    let poll = Poll::new("aaaaa to see bbbbb unreachable with notices queued", 20);
    loop {
        let v = peer_view(a, "bbbbb").await;
        if v["reachable"] == false && v["queue_depth"].as_u64().unwrap() >= 1 && v["next_retry"].is_i64() {
            assert!(v["last_error"].is_string(), "{v}");
            assert!(v["failures"].as_u64().unwrap() >= 1, "{v}");
            // The same facts as metrics.
            assert_eq!(counter(a, "hearth_peer_reachable", "bbbbb").await, 0.0);
            assert!(counter(a, "hearth_peer_queue_depth", "bbbbb").await >= 1.0);
            assert!(counter(a, "hearth_peer_next_retry_timestamp", "bbbbb").await > 0.0);
            assert!(counter(a, "hearth_peer_last_success_timestamp", "bbbbb").await > 0.0);
            break;
        }
        poll.tick(&v).await;
    }
    drained(a, "ccccc", 20).await;

    // After its restart bbbbb learns all of it (the sender may be backing off for a few seconds).
    fed.at_mut("bbbbb").restart().await;
    for u in [&alice, &bob] {
        learns_last_login(fed.at("bbbbb"), fed.at("aaaaa"), &u.uuid, 30).await;
    }
    drained(fed.at("aaaaa"), "bbbbb", 30).await;

    // A home killed with SIGKILL right after acknowledging a login still delivers its notice:
    // bbbbb is down so the notice can only be in aaaaa's outbox when aaaaa dies.
    fed.at_mut("bbbbb").kill9();
    let (_, user) = fed.at("aaaaa").anon.login("alice", &alice.password, None).await.unwrap();
    fed.at_mut("aaaaa").kill9();
    fed.at_mut("aaaaa").restart().await;
    fed.at_mut("bbbbb").restart().await;
    let at_home = user_at(fed.at("aaaaa"), &alice.uuid).await.ok().unwrap();
    assert_eq!(at_home["last_login_at"], user["last_login_at"], "the acknowledged login survived the kill");
    learns_last_login(fed.at("bbbbb"), fed.at("aaaaa"), &alice.uuid, 30).await;
    learns_last_login(fed.at("ccccc"), fed.at("aaaaa"), &alice.uuid, 30).await;
    drained(fed.at("aaaaa"), "bbbbb", 30).await;
    drained(fed.at("aaaaa"), "ccccc", 30).await;
}

#[tokio::test]
async fn notice_batches_apply_once_and_never_roll_a_cached_record_back() {
    let fed = Federation::start(&ABC).await;
    let (a, b) = (fed.at("aaaaa"), fed.at("bbbbb"));
    let key = key_of(a);
    let uuid = "aaaaa-tpzed-idempotent00001";
    let send = |notices: Vec<Notice>| {
        let body = body_of(&batch("aaaaa", "bbbbb", notices));
        let key = key.clone();
        async move { post_signed(b, "aaaaa", &key, NOTICES, &body).await }
    };
    let first_name = |v: Value| v["first_name"].as_str().unwrap_or_default().to_string();

    let ten = vec![login(record(uuid, 10, "Ten"))];
    let first = send(ten.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["batch_id"], batch("aaaaa", "bbbbb", ten.clone()).batch_id().unwrap().as_str());
    assert_eq!((first.body["applied"].clone(), first.body["ignored"].clone()), (json!(1), json!(0)), "{}", first.body);
    assert_eq!(first_name(user_at(b, uuid).await.ok().unwrap()), "Ten");

    // The same batch again (a retry after a lost acknowledgement): the same answer.
    let again = send(ten.clone()).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body, first.body);

    // An older home_seq never overwrites a newer cached record.
    let older = send(vec![login(record(uuid, 5, "Five"))]).await;
    assert_eq!((older.body["applied"].clone(), older.body["ignored"].clone()), (json!(0), json!(1)), "{}", older.body);
    assert_eq!(first_name(user_at(b, uuid).await.ok().unwrap()), "Ten");
    let newer = send(vec![login(record(uuid, 11, "Eleven"))]).await;
    assert_eq!(newer.body["applied"], 1, "{}", newer.body);
    let cached = user_at(b, uuid).await.ok().unwrap();
    assert_eq!(first_name(cached.clone()), "Eleven");
    assert_eq!(cached["home_cluster"], "aaaaa");
    assert_eq!(cached["is_admin"], false);

    // Replaying the first batch now answers as before and changes nothing.
    let replay = send(ten).await;
    assert_eq!(replay.body, first.body);
    assert_eq!(first_name(user_at(b, uuid).await.ok().unwrap()), "Eleven");

    // Reordered inside one batch: the highest home_seq wins.
    let mixed = send(vec![login(record(uuid, 20, "Twenty")), login(record(uuid, 15, "Fifteen"))]).await;
    assert_eq!((mixed.body["applied"].clone(), mixed.body["ignored"].clone()), (json!(1), json!(1)), "{}", mixed.body);
    assert_eq!(first_name(user_at(b, uuid).await.ok().unwrap()), "Twenty");
    let twice = send(vec![login(record(uuid, 30, "Thirty")), login(record(uuid, 30, "Thirty"))]).await;
    assert_eq!((twice.body["applied"].clone(), twice.body["ignored"].clone()), (json!(1), json!(1)), "{}", twice.body);
    assert_eq!(first_name(user_at(b, uuid).await.ok().unwrap()), "Thirty");
}

#[tokio::test]
async fn forged_stale_replayed_and_overreaching_peer_requests_are_refused_and_change_nothing() {
    let fed = Federation::start(&ABC).await;
    let (a, b, c) = (fed.at("aaaaa"), fed.at("bbbbb"), fed.at("ccccc"));
    let alice = a.user("alice").await;
    let bob = b.user("bob").await;
    let carol = c.user("carol").await;
    learns_last_login(b, a, &alice.uuid, 20).await;
    learns_last_login(b, c, &carol.uuid, 20).await;
    let watched = [alice.uuid.as_str(), bob.uuid.as_str(), carol.uuid.as_str()];
    let mut before = Vec::new();
    for u in watched {
        before.push(user_at(b, u).await.ok().unwrap());
    }

    let a_key = key_of(a);
    let fresh = signing_key::generate();
    let forged = "aaaaa-tpzed-forgedforged001";
    let good = body_of(&batch("aaaaa", "bbbbb", vec![login(record(forged, 7, "Mallory"))]));
    let now = unix_now();
    let mut seen: Vec<(&str, Answer, u16, &str)> = Vec::new();

    let r = post_raw(b, NOTICES, None, &good).await;
    seen.push(("no signature", r, 401, "no_signature"));
    let r = post_raw(b, NOTICES, Some("Hearth-Signature garbage"), &good).await;
    seen.push(("garbage header", r, 401, "bad_signature_header"));
    let zero_sig = {
        let h = signed_for(b, "aaaaa", &a_key, NOTICES, &good);
        let (head, _) = h.split_once("sig=\"").unwrap();
        format!("{head}sig=\"{}\"", "A".repeat(86))
    };
    let r = post_raw(b, NOTICES, Some(&zero_sig), &good).await;
    seen.push(("all-zero signature", r, 401, "signature_refused"));
    let unknown = body_of(&batch("zzzzz", "bbbbb", vec![login(record("zzzzz-tpzed-forgedforged001", 7, "Z"))]));
    let r = post_signed(b, "zzzzz", &fresh, NOTICES, &unknown).await;
    seen.push(("unknown origin", r, 401, "unknown_origin"));
    let r = post_signed(b, "aaaaa", &fresh, NOTICES, &good).await;
    seen.push(("a key that is not aaaaa's", r, 401, "signature_refused"));
    let h = signature("POST", NOTICES, "aaaaa", "ccccc", now, &nonce(), &good, &a_key);
    let r = post_raw(b, NOTICES, Some(&h), &good).await;
    seen.push(("signed for ccccc, sent to bbbbb", r, 401, "signature_refused"));
    let h = signature("POST", NOTICES, "aaaaa", "bbbbb", now - 400, &nonce(), &good, &a_key);
    let r = post_raw(b, NOTICES, Some(&h), &good).await;
    seen.push(("ts 400 s old", r, 401, "signature_refused"));
    let h = signature("POST", NOTICES, "aaaaa", "bbbbb", now + 400, &nonce(), &good, &a_key);
    let r = post_raw(b, NOTICES, Some(&h), &good).await;
    seen.push(("ts 400 s ahead", r, 401, "signature_refused"));
    let other = body_of(&batch("aaaaa", "bbbbb", vec![login(record(forged, 8, "Eve"))]));
    let r = post_raw(b, NOTICES, Some(&signed_for(b, "aaaaa", &a_key, NOTICES, &other)), &good).await;
    seen.push(("signed one body, sent another", r, 401, "signature_refused"));
    let r = post_raw(b, &format!("{NOTICES}?x=1"), Some(&signed_for(b, "aaaaa", &a_key, NOTICES, &good)), &good).await;
    seen.push(("signed one uri, sent another", r, 401, "signature_refused"));
    let h = signature("POST", NOTICES, "bbbbb", "bbbbb", now, &nonce(), &good, &key_of(b));
    let r = post_raw(b, NOTICES, Some(&h), &good).await;
    seen.push(("bbbbb posing as its own peer", r, 401, "unknown_origin"));

    // Authentic requests from aaaaa whose bodies claim more than aaaaa may.
    let claims: Vec<(&str, NoticeBatch)> = vec![
        ("a body naming origin ccccc", batch("ccccc", "bbbbb", vec![login(record(forged, 9, "Mallory"))])),
        ("a body addressed to ccccc", batch("aaaaa", "ccccc", vec![login(record(forged, 9, "Mallory"))])),
        ("a notice about bbbbb's own user", batch("aaaaa", "bbbbb", vec![login(record(&bob.uuid, 1 << 40, "Pwned"))])),
        ("a notice about a ccccc user", batch("aaaaa", "bbbbb", vec![login(record(&carol.uuid, 1 << 40, "Pwned"))])),
        (
            "a valid notice next to one about a ccccc user",
            batch(
                "aaaaa",
                "bbbbb",
                vec![login(record(forged, 9, "Mallory")), login(record(&carol.uuid, 1 << 40, "Pwned"))],
            ),
        ),
        (
            "revoking a ccccc token",
            batch(
                "aaaaa",
                "bbbbb",
                vec![Notice::TokenRevoked {
                    user: record(&alice.uuid, 1 << 40, "Pwned"),
                    token_uuid: token_uuid(&carol.token).parse().unwrap(),
                }],
            ),
        ),
        (
            "a redirect to nowhere",
            batch("aaaaa", "bbbbb", vec![Notice::UserRedirected { user: record(&alice.uuid, 1 << 40, "Pwned") }]),
        ),
    ];
    for (what, bad) in claims {
        let r = post_signed(b, "aaaaa", &a_key, NOTICES, &body_of(&bad)).await;
        seen.push((what, r, 403, "notice_refused"));
    }

    // The validation endpoint: authenticated like notices, and only about bbbbb's own tokens, salted
    // for the authenticated origin.
    let ask = |t: &str| serde_json::to_vec(&json!({"token": t})).unwrap();
    let bob_for_a = ask(&salted(&bob.token, "aaaaa"));
    let r = post_raw(b, VALIDATE, None, &bob_for_a).await;
    seen.push(("validation without signature", r, 401, "no_signature"));
    let r = post_signed(b, "aaaaa", &fresh, VALIDATE, &bob_for_a).await;
    seen.push(("validation signed by a key not aaaaa's", r, 401, "signature_refused"));
    let r = post_signed(b, "aaaaa", &a_key, VALIDATE, &ask(&salted(&carol.token, "aaaaa"))).await;
    seen.push(("validation of a ccccc token", r, 403, "not_our_token"));
    let r = post_signed(b, "aaaaa", &a_key, VALIDATE, &ask(&salted(&bob.token, "ccccc"))).await;
    seen.push(("validation of a token salted for ccccc", r, 401, "invalid_token"));
    let r = post_signed(b, "aaaaa", &a_key, VALIDATE, &ask(&bob.token)).await;
    seen.push(("validation of an unsalted token", r, 401, "invalid_token"));

    for (what, r, status, code) in &seen {
        assert_eq!((r.status.as_u16(), r.code()), (*status, *code), "{what}: {}", r.body);
    }

    // Nothing changed at bbbbb.
    assert_eq!(user_at(b, forged).await.status, StatusCode::NOT_FOUND);
    for (u, was) in watched.iter().zip(&before) {
        assert_eq!(&user_at(b, u).await.ok().unwrap(), was, "{u} changed");
    }
    assert_eq!(b.client(&bob.token).get("/arvados/v1/users/current").await.unwrap().status, StatusCode::OK);

    // A real signer gets answers: bob's token salted for aaaaa, asked by aaaaa.
    let r = post_signed(b, "aaaaa", &a_key, VALIDATE, &bob_for_a).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!((r.body["issuer"].as_str(), r.body["audience"].as_str()), (Some("bbbbb"), Some("aaaaa")), "{}", r.body);
    assert_eq!(r.body["user"]["uuid"], bob.uuid.as_str());
    assert!(r.body["signatures"]["bbbbb"].is_object(), "{}", r.body);

    // A replayed request: the exact same bytes and header twice.
    let replayed = "aaaaa-tpzed-replayreplay001";
    let body = body_of(&batch("aaaaa", "bbbbb", vec![login(record(replayed, 3, "Once"))]));
    let h = signed_for(b, "aaaaa", &a_key, NOTICES, &body);
    let first = post_raw(b, NOTICES, Some(&h), &body).await;
    assert_eq!((first.status, first.body["applied"].clone()), (StatusCode::OK, json!(1)), "{}", first.body);
    let second = post_raw(b, NOTICES, Some(&h), &body).await;
    assert_eq!((second.status, second.code()), (StatusCode::UNAUTHORIZED, "replayed_nonce"), "{}", second.body);
    assert_eq!(user_at(b, replayed).await.ok().unwrap()["first_name"], "Once");
}

#[tokio::test]
async fn a_rotated_key_is_adopted_from_the_signed_key_document_and_the_old_key_is_refused() {
    let mut fed = Federation::start(&ABC).await;
    let alice = fed.at("aaaaa").user("alice").await;
    // A second token, not used anywhere before the rotation.
    let (unused, _) = fed.at("aaaaa").anon.login("alice", &alice.password, None).await.unwrap();
    for peer in ["bbbbb", "ccccc"] {
        learns_last_login(fed.at(peer), fed.at("aaaaa"), &alice.uuid, 20).await;
        drained(fed.at("aaaaa"), peer, 20).await;
    }
    let a = fed.at("aaaaa");
    let old = key_of(a);
    assert_eq!(peer_view(fed.at("bbbbb"), "aaaaa").await["trusted_keys"], json!([old.public().to_string()]));

    let refused = alice.client.post("/hearth/v1/admin/keys/rotate", &json!({})).await.unwrap();
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let rotated = a.root.post("/hearth/v1/admin/keys/rotate", &json!({})).await.unwrap().ok().unwrap();
    let new = key_of(a);
    assert_ne!(new.public(), old.public());
    assert_eq!(rotated["public_key"], new.public().to_string());
    let doc = a.anon.get("/federation/v1/keys").await.unwrap().ok().unwrap();
    assert_eq!(doc["verify_keys"][new.key_id().as_str()], new.public().to_string(), "{doc}");
    assert!(doc["verify_keys"].get(old.key_id().as_str()).is_none(), "{doc}");
    assert_eq!(doc["old_verify_keys"][old.key_id().as_str()]["key"], old.public().to_string(), "{doc}");

    // ccccc has heard nothing signed by the new key yet; a token it meets for the first time is
    // answered with an assertion signed by the new key, which it must accept after fetching the
    // key document.
    let r = fed.at("ccccc").client(&unused).get("/arvados/v1/users/current").await.unwrap();
    assert_eq!((r.status, r.body["uuid"].as_str()), (StatusCode::OK, Some(alice.uuid.as_str())), "{}", r.body);

    // bbbbb adopts the new key on the first request signed with it ...
    let b = fed.at("bbbbb");
    let notice = |uuid: &str, name: &str| body_of(&batch("aaaaa", "bbbbb", vec![login(record(uuid, 1, name))]));
    let r = post_signed(b, "aaaaa", &new, NOTICES, &notice("aaaaa-tpzed-rotatednewkey01", "New")).await;
    assert_eq!(r.status, StatusCode::OK, "new key: {}", r.body);
    assert_eq!(peer_view(b, "aaaaa").await["trusted_keys"], json!([new.public().to_string()]));
    // ... and from then on refuses the old one.
    let r = post_signed(b, "aaaaa", &old, NOTICES, &notice("aaaaa-tpzed-rotatedoldkey01", "Old")).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "signature_refused"), "old key: {}", r.body);
    assert_eq!(user_at(b, "aaaaa-tpzed-rotatedoldkey01").await.status, StatusCode::NOT_FOUND);

    // aaaaa's own senders sign with the new key: a login after the rotation reaches both peers.
    fed.at("aaaaa").anon.login("alice", &alice.password, None).await.unwrap();
    for peer in ["bbbbb", "ccccc"] {
        learns_last_login(fed.at(peer), fed.at("aaaaa"), &alice.uuid, 30).await;
        drained(fed.at("aaaaa"), peer, 30).await;
    }

    // The adopted keys survive bbbbb's restart.
    fed.at_mut("bbbbb").restart().await;
    let b = fed.at("bbbbb");
    let r = post_signed(b, "aaaaa", &old, NOTICES, &notice("aaaaa-tpzed-rotatedoldkey02", "Old")).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "signature_refused"), "old key: {}", r.body);
    let r = post_signed(b, "aaaaa", &new, NOTICES, &notice("aaaaa-tpzed-rotatednewkey02", "New")).await;
    assert_eq!(r.status, StatusCode::OK, "new key after restart: {}", r.body);
}

#[tokio::test]
async fn remote_tokens_are_checked_once_at_their_issuer_and_a_revocation_reaches_every_peer_in_seconds() {
    let fed = Federation::start(&ABC).await;
    let (a, b, c) = (fed.at("aaaaa"), fed.at("bbbbb"), fed.at("ccccc"));
    let alice = a.user_with("alice", json!({"is_admin": true})).await;
    // bbbbb has a local alice of its own; the two never mix.
    let local_alice = b.user("alice").await;
    assert_ne!(local_alice.uuid, alice.uuid);
    for peer in [b, c] {
        learns_last_login(peer, a, &alice.uuid, 20).await;
    }

    // 100 concurrent first uses of alice's token at bbbbb: all succeed, one validation at aaaaa.
    let before = counter(b, "hearth_token_validations_total", "aaaaa").await;
    let mut uses = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let client = b.client(&alice.token);
        uses.spawn(async move { client.get("/arvados/v1/users/current").await.unwrap() });
    }
    while let Some(r) = uses.join_next().await {
        let r = r.unwrap();
        assert_eq!((r.status, r.body["uuid"].as_str()), (StatusCode::OK, Some(alice.uuid.as_str())), "{}", r.body);
        assert_eq!(r.body["is_admin"], false, "an admin at home is not an admin here: {}", r.body);
    }
    let after = counter(b, "hearth_token_validations_total", "aaaaa").await;
    assert_eq!(after - before, 1.0, "validation round trips for 100 concurrent first uses");
    let r = alice.client.get("/arvados/v1/users/current").await.unwrap().ok().unwrap();
    assert_eq!(r["is_admin"], true);
    let r = b.client(&alice.token).get("/hearth/v1/admin/peers").await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = b.client(&local_alice.token).get("/arvados/v1/users/current").await.unwrap().ok().unwrap();
    assert_eq!(r["uuid"], local_alice.uuid.as_str());

    // bbbbb's admin cannot change the cached record; only aaaaa can.
    let cached = user_at(b, &alice.uuid).await.ok().unwrap();
    assert_eq!(cached["is_admin"], false);
    for attrs in [json!({"first_name": "Changed"}), json!({"is_admin": true}), json!({"is_active": false})] {
        let path = format!("/arvados/v1/users/{}", alice.uuid);
        let r = b.root.put(&path, &json!({"user": attrs})).await.unwrap();
        assert_eq!(r.status, StatusCode::FORBIDDEN, "PUT {attrs}: {}", r.body);
        let r = b.root.call(reqwest::Method::PATCH, &path, Some(&json!({"user": attrs}))).await.unwrap();
        assert_eq!(r.status, StatusCode::FORBIDDEN, "PATCH {attrs}: {}", r.body);
    }
    assert_eq!(user_at(b, &alice.uuid).await.ok().unwrap(), cached);

    // A token naming issuer ccccc is checked at ccccc, never at aaaaa.
    let (via_a, via_c) = (
        counter(b, "hearth_token_validations_total", "aaaaa").await,
        counter(b, "hearth_token_validations_total", "ccccc").await,
    );
    let bogus = format!("v2/ccccc-gj3su-xxxxxxxxxxxxxxx/{}", hearth::accounts::random_secret());
    let r = b.client(&bogus).get("/arvados/v1/users/current").await.unwrap();
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "invalid_token"), "{}", r.body);
    assert_eq!(counter(b, "hearth_token_validations_total", "ccccc").await - via_c, 1.0);
    assert_eq!(counter(b, "hearth_token_validations_total", "aaaaa").await - via_a, 0.0);

    // Revocation: alice's token works at both peers, then stops everywhere within seconds.
    let r = c.client(&alice.token).get("/arvados/v1/users/current").await.unwrap();
    assert_eq!((r.status, r.body["uuid"].as_str()), (StatusCode::OK, Some(alice.uuid.as_str())), "{}", r.body);
    let revoked_at = Instant::now();
    let path = format!("/arvados/v1/api_client_authorizations/{}", token_uuid(&alice.token));
    alice.client.delete(&path).await.unwrap().ok().unwrap();
    assert_eq!(alice.client.get("/arvados/v1/users/current").await.unwrap().status, StatusCode::UNAUTHORIZED);
    for peer in [b, c] {
        let poll = Poll::new(format!("{} to refuse the revoked token", peer.id), 10);
        loop {
            let r = peer.client(&alice.token).get("/arvados/v1/users/current").await.unwrap();
            if r.status == StatusCode::UNAUTHORIZED {
                break;
            }
            poll.tick(&(r.status, &r.body)).await;
        }
    }
    assert!(revoked_at.elapsed() < Duration::from_secs(10), "took {:?}", revoked_at.elapsed());
}

#[tokio::test]
async fn a_token_salted_for_a_peer_works_there_and_on_the_remote_forms_at_home_only() {
    let fed = Federation::start(&ABC).await;
    let (a, b, c) = (fed.at("aaaaa"), fed.at("bbbbb"), fed.at("ccccc"));
    let alice = a.user("alice").await;
    let (token, _) = a.anon.login("alice", &alice.password, Some("bbbbb")).await.unwrap();
    let parts: Vec<&str> = token.split('/').collect();
    assert_eq!(parts.len(), 3, "{token}");
    assert!(parts[1].starts_with("aaaaa-gj3su-"), "{token}");
    assert_eq!(parts[2].len(), 40, "{token}");
    assert!(parts[2].bytes().all(|ch| ch.is_ascii_digit() || (b'a'..=b'f').contains(&ch)), "{token}");

    let current = |at: &Cluster, path: &str| {
        let client = at.client(&token);
        let path = path.to_string();
        async move { client.get(&path).await.unwrap() }
    };
    let r = current(b, "/arvados/v1/users/current").await;
    assert_eq!((r.status, r.body["uuid"].as_str()), (StatusCode::OK, Some(alice.uuid.as_str())), "{}", r.body);
    let r = current(a, "/arvados/v1/users/current").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "plain form at home: {}", r.body);
    let r = current(a, "/arvados/v1/users/current?remote=bbbbb").await;
    assert_eq!((r.status, r.body["uuid"].as_str()), (StatusCode::OK, Some(alice.uuid.as_str())), "{}", r.body);
    let r = current(a, "/arvados/v1/api_client_authorizations/current?remote=bbbbb").await;
    assert_eq!((r.status, r.body["uuid"].as_str()), (StatusCode::OK, Some(parts[1])), "{}", r.body);
    let r = current(a, "/arvados/v1/users/current?remote=ccccc").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "salted for bbbbb, asked as ccccc: {}", r.body);
    let r = current(a, "/arvados/v1/groups?remote=bbbbb").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "?remote= only on the two current forms: {}", r.body);
    let r = current(c, "/arvados/v1/users/current").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "salted for bbbbb, used at ccccc: {}", r.body);
    let r = current(b, "/arvados/v1/users/current").await;
    assert_eq!(r.status, StatusCode::OK, "still fine at bbbbb: {}", r.body);
}

/// Issue 10, finding 8a: a made-up secret for the uuid of a token we hold is refused here; it
/// neither evicts the real token's cached row nor costs a round trip to the issuer.
#[tokio::test]
async fn a_wrong_secret_for_a_cached_token_neither_evicts_it_nor_asks_the_issuer() {
    let fed = Federation::start(&["aaaaa", "bbbbb"]).await;
    let (a, b) = (fed.at("aaaaa"), fed.at("bbbbb"));
    let alice = a.user("alice").await;
    let r = b.client(&alice.token).get("/arvados/v1/users/current").await.unwrap();
    assert_eq!((r.status, r.body["uuid"].as_str()), (StatusCode::OK, Some(alice.uuid.as_str())), "{}", r.body);
    let before = counter(b, "hearth_token_validations_total", "aaaaa").await;
    let uuid = token_uuid(&alice.token);
    for wrong in [
        format!("v2/{uuid}/{}", hearth::accounts::random_secret()),
        salted(&format!("v2/{uuid}/{}", hearth::accounts::random_secret()), "bbbbb"),
    ] {
        let r = b.client(&wrong).get("/arvados/v1/users/current").await.unwrap();
        assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "invalid_token"), "{}", r.body);
    }
    let r = b.client(&alice.token).get("/arvados/v1/users/current").await.unwrap();
    assert_eq!((r.status, r.body["uuid"].as_str()), (StatusCode::OK, Some(alice.uuid.as_str())), "{}", r.body);
    let after = counter(b, "hearth_token_validations_total", "aaaaa").await;
    assert_eq!(after - before, 0.0, "validation round trips for two wrong secrets and the cached token");
}

/// Issue 10, finding 8b: repeating a bogus token of a peer costs one round trip to it for a while,
/// and many different bogus tokens at most the peer's validation budget (here 5, then 1 a second);
/// beyond it the answer is 429, and real tokens get through again once the budget refills.
#[tokio::test]
async fn bogus_tokens_of_a_peer_cost_it_a_bounded_number_of_round_trips() {
    let fed = Federation::start_with(
        &["aaaaa", "bbbbb"],
        "[federation.validation]\nper_peer_per_sec = 1\nper_peer_burst = 5\n",
    )
    .await;
    let (a, b) = (fed.at("aaaaa"), fed.at("bbbbb"));
    let bogus = || format!("v2/aaaaa-gj3su-{}/{}", hearth::accounts::random_id(), hearth::accounts::random_secret());
    let validations = || counter(b, "hearth_token_validations_total", "aaaaa");

    let before = validations().await;
    let same = bogus();
    for i in 0..20 {
        let r = b.client(&same).get("/arvados/v1/users/current").await.unwrap();
        assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "invalid_token"), "use {i}: {}", r.body);
    }
    assert_eq!(validations().await - before, 1.0, "round trips for one bogus token used 20 times");

    tokio::time::sleep(Duration::from_secs(5)).await; // the budget refills to its burst
    let before = validations().await;
    let started = Instant::now();
    let mut uses = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let client = b.client(&bogus());
        uses.spawn(async move { client.get("/arvados/v1/users/current").await.unwrap() });
    }
    let mut throttled = 0;
    while let Some(r) = uses.join_next().await {
        let r = r.unwrap();
        match (r.status, r.code()) {
            (StatusCode::UNAUTHORIZED, "invalid_token") => {}
            (StatusCode::TOO_MANY_REQUESTS, "validations_throttled") => throttled += 1,
            other => panic!("unexpected answer {other:?}: {}", r.body),
        }
    }
    let spent = validations().await - before;
    let bound = 5.0 + started.elapsed().as_secs_f64().ceil();
    assert!(spent <= bound, "{spent} round trips for 20 different bogus tokens (bound {bound})");
    assert!(throttled > 0 && spent + f64::from(throttled) == 20.0, "{spent} validated, {throttled} throttled");

    // A real token of aaaaa is accepted again within a second or two.
    let alice = a.user("alice").await;
    let poll = Poll::new("bbbbb to accept a real token after the flood", 10);
    loop {
        let r = b.client(&alice.token).get("/arvados/v1/users/current").await.unwrap();
        if r.status == StatusCode::OK {
            assert_eq!(r.body["uuid"], alice.uuid.as_str());
            break;
        }
        assert_eq!(r.code(), "validations_throttled", "{}", r.body);
        poll.tick(&(r.status, &r.body)).await;
    }
}

/// Issue 16 item 3: a notice request's nonce is no longer flushed on its own; the commit that
/// applies the batch makes both durable. A receiver killed (-9) right after acknowledging a batch
/// still holds what it applied, refuses the very same request again (its nonce is spent), answers
/// a resend of the batch (a new request) as the first time, and applies a newer batch.
#[tokio::test]
async fn a_batch_acknowledged_right_before_a_kill_is_kept_its_request_stays_spent_and_a_resend_changes_nothing() {
    let mut fed = Federation::start(&["aaaaa", "bbbbb"]).await;
    let key = key_of(fed.at("aaaaa"));
    let uuid = |i: usize| format!("aaaaa-tpzed-crashbatch{i:05}");
    let notices = |seq: u64, name: &str| -> Vec<Notice> {
        (0..100).map(|i| login(record(&uuid(i), seq, &format!("{name}{i}")))).collect()
    };
    let body = body_of(&batch("aaaaa", "bbbbb", notices(7, "Seven")));
    let header = signed_for(fed.at("bbbbb"), "aaaaa", &key, NOTICES, &body);
    let first = post_raw(fed.at("bbbbb"), NOTICES, Some(&header), &body).await;
    assert_eq!((first.status, first.body["applied"].clone()), (StatusCode::OK, json!(100)), "{}", first.body);
    fed.at_mut("bbbbb").kill9();
    fed.at_mut("bbbbb").restart().await;
    let b = fed.at("bbbbb");
    for i in [0, 57, 99] {
        assert_eq!(user_at(b, &uuid(i)).await.ok().unwrap()["first_name"], format!("Seven{i}"));
    }
    let replay = post_raw(b, NOTICES, Some(&header), &body).await;
    assert_eq!((replay.status, replay.code()), (StatusCode::UNAUTHORIZED, "replayed_nonce"), "{}", replay.body);
    let resend = post_signed(b, "aaaaa", &key, NOTICES, &body).await;
    assert_eq!((resend.status, &resend.body), (StatusCode::OK, &first.body));
    let newer = post_signed(b, "aaaaa", &key, NOTICES, &body_of(&batch("aaaaa", "bbbbb", notices(8, "Eight")))).await;
    assert_eq!((newer.status, newer.body["applied"].clone()), (StatusCode::OK, json!(100)), "{}", newer.body);
    assert_eq!(user_at(b, &uuid(57)).await.ok().unwrap()["first_name"], "Eight57");
}

/// Issue 16 item 3: a validated remote token is cached without a flush of its own. A crash may
/// lose the cached row (the next use asks the home again) but never brings back one a revocation
/// evicted: after the revocation notice was applied and the peer killed (-9), the token is refused
/// there, and only after asking its home (the row is gone, not served).
#[tokio::test]
async fn a_remote_token_cached_before_a_kill_still_works_and_a_revoked_one_never_comes_back_from_the_cache() {
    let mut fed = Federation::start(&["aaaaa", "bbbbb"]).await;
    let alice = fed.at("aaaaa").user("alice").await;
    let current = "/arvados/v1/users/current";
    let r = fed.at("bbbbb").client(&alice.token).get(current).await.unwrap();
    assert_eq!((r.status, r.body["uuid"].as_str()), (StatusCode::OK, Some(alice.uuid.as_str())), "{}", r.body);
    fed.at_mut("bbbbb").kill9();
    fed.at_mut("bbbbb").restart().await;
    let r = fed.at("bbbbb").client(&alice.token).get(current).await.unwrap();
    assert_eq!((r.status, r.body["uuid"].as_str()), (StatusCode::OK, Some(alice.uuid.as_str())), "{}", r.body);

    let path = format!("/arvados/v1/api_client_authorizations/{}", token_uuid(&alice.token));
    alice.client.delete(&path).await.unwrap().ok().unwrap();
    drained(fed.at("aaaaa"), "bbbbb", 20).await;
    fed.at_mut("bbbbb").kill9();
    fed.at_mut("bbbbb").restart().await;
    let b = fed.at("bbbbb");
    let r = b.client(&alice.token).get(current).await.unwrap();
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "invalid_token"), "{}", r.body);
    assert_eq!(
        counter(b, "hearth_token_validations_total", "aaaaa").await,
        1.0,
        "the revoked token was not served from the cache but asked about at its home"
    );
}
