//! Two replicas of one cluster on one PostgreSQL database (issue 17): aaaaa runs as two `hearth
//! serve` processes with the same cluster id, signing key and database, behind a round-robin
//! proxy that is aaaaa's public URL for its clients and for its peers bbbbb and ccccc. Logins are
//! spread over both replicas (each on a connection of its own), and one replica is killed with
//! SIGKILL in the middle of a login burst. Then:
//! - every login notice reaches every peer exactly once: each peer holds every user's last login
//!   as the home has it, and its count of notices received from aaaaa grew by exactly the number
//!   of logins the home committed (a notice sent twice, by both replicas or again after the kill,
//!   would count twice: a resend after a kill must be the very batch the peer acknowledged, which
//!   the peer answers from its batch answers without counting it again);
//! - a request nonce one replica saw is refused by the other, before and after the kill;
//! - the login throttle counts across both: a burst of wrong passwords spread over the replicas
//!   gets exactly `login.max_failures` checks in all;
//! - nothing acknowledged is lost: every login answered 200 before the kill is at home after it.
//!
//! PostgreSQL only (`HEARTH_TEST_STORE=postgres`): two processes cannot share a sled store. On sled
//! the test says on stderr why it skips, and passes.

use crate::federation::{
    NOTICES, Poll, batch, body_of, counter, key_of, learns_last_login, peer_view, post_raw, record, signed_for, user_at,
};
use crate::harness::{Backend, Cluster, Federation, Replicas, skips_unless};
use federation_proto::notice::Notice;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const ABC: [&str; 3] = ["aaaaa", "bbbbb", "ccccc"];
const PEERS: [&str; 2] = ["bbbbb", "ccccc"];
/// `login.max_failures` of this test.
const MAX: usize = 10;
const CONFIG: &str = "[login]\nmax_failures = 10\nfailure_window_secs = 3600\n";
const VERIFICATIONS: &str = "hearth_argon2_verifications_total";
const RECEIVED: &str = "hearth_notices_received_total";

/// A user of aaaaa's for the bursts.
struct Account {
    uuid: String,
    username: String,
    password: String,
}

/// `POST /hearth/v1/login` at `c` from loopback address `source`, on a connection of its own (so
/// that through the proxy each login goes to the next replica); (status, body), or the transport
/// error of a connection cut by a kill.
async fn login_from(c: &Cluster, source: &str, login: &str, password: &str) -> Result<(StatusCode, Value), String> {
    let r = c
        .http_from(source)
        .post(format!("{}/hearth/v1/login", c.url))
        .json(&json!({"login": login, "password": password}))
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = r.status();
    let body = r.json().await.map_err(|e| format!("{e:?}"))?;
    Ok((status, body))
}

/// The source address of login number `i` of a burst: each its own, so that no source counter
/// of the throttle is shared by two logins.
fn source(i: usize) -> String {
    format!("127.0.{}.{}", 10 + i / 200, 10 + i % 200)
}

/// Each peer's count of notices received from aaaaa.
async fn received(fed: &Federation) -> Vec<f64> {
    let mut out = Vec::new();
    for p in PEERS {
        out.push(counter(fed.at(p), RECEIVED, "aaaaa").await);
    }
    out
}

/// Waits until no live replica of aaaaa has anything queued for any peer.
async fn drained(r: &mut Replicas, secs: u64) {
    let poll = Poll::new("aaaaa's replicas to drain their queues", secs);
    loop {
        let mut depths = Vec::new();
        for m in r.members.iter_mut() {
            if !m.is_running() {
                continue;
            }
            for p in PEERS {
                depths.push((m.url.clone(), p, peer_view(m, p).await["queue_depth"].clone()));
            }
        }
        if depths.iter().all(|(_, _, d)| *d == 0) {
            return;
        }
        poll.tick(&depths).await;
    }
}

/// Waits until every peer counts exactly `want[i]` notices from aaaaa, and checks that the counts
/// stay there once aaaaa has drained (no late second delivery).
async fn received_exactly(fed: &mut Federation, want: &[f64], what: &str) {
    let poll = Poll::new(format!("the peers to count {want:?} notices from aaaaa ({what})"), 30);
    loop {
        let got = received(fed).await;
        assert!(got.iter().zip(want).all(|(g, w)| g <= w), "{what}: a notice reached a peer twice: {got:?} > {want:?}");
        if got == want {
            break;
        }
        poll.tick(&got).await;
    }
    drained(fed.replicas_mut("aaaaa"), 90).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(received(fed).await, want, "{what}: the peers' counts moved after aaaaa drained");
}

/// The home's `last_login_at` of each account.
async fn last_logins(home: &Cluster, accounts: &[Account]) -> Vec<Value> {
    let mut out = Vec::new();
    for a in accounts {
        out.push(user_at(home, &a.uuid).await.ok().unwrap()["last_login_at"].clone());
    }
    out
}

/// One signed notice request from bbbbb to aaaaa; (header, body).
fn signed_request(fed: &Federation, uuid: &str) -> (String, Vec<u8>) {
    let body = body_of(&batch("bbbbb", "aaaaa", vec![Notice::Login { user: record(uuid, 1, "Nonce") }]));
    let to = &fed.replicas("aaaaa").members[0];
    (signed_for(to, "bbbbb", &key_of(fed.at("bbbbb")), NOTICES, &body), body)
}

/// The request is applied by replica `first` and its replay refused by replica `second`.
async fn nonce_is_shared(fed: &Federation, first: usize, second: usize, uuid: &str) {
    let (header, body) = signed_request(fed, uuid);
    let r = &fed.replicas("aaaaa").members;
    let once = post_raw(&r[first], NOTICES, Some(&header), &body).await;
    assert_eq!((once.status, once.body["applied"].clone()), (StatusCode::OK, json!(1)), "{}", once.body);
    let again = post_raw(&r[second], NOTICES, Some(&header), &body).await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::UNAUTHORIZED, "replayed_nonce"),
        "replica {second} took the nonce replica {first} saw: {}",
        again.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_notices_nonces_and_the_throttle_and_a_kill9_of_one_loses_nothing() {
    let name = "two_replicas_share_notices_nonces_and_the_throttle_and_a_kill9_of_one_loses_nothing";
    if skips_unless(Backend::Postgres, name, "two processes share one store") {
        return;
    }
    let mut planned = Federation::plan(&ABC, CONFIG);
    planned.replicate("aaaaa", 2);
    let mut fed = planned.start().await;

    // Accounts at aaaaa, made through the proxy (so by either replica).
    let mut accounts = Vec::new();
    for i in 0..61 {
        let (username, password) = (format!("user{i}"), format!("pw-user{i}-secret"));
        let attrs = json!({"username": username, "email": format!("{username}@example.org"), "email_verified": true});
        let u = fed.at("aaaaa").root.create_user(attrs, Some(&password)).await.unwrap();
        accounts.push(Account { uuid: u["uuid"].as_str().unwrap().to_string(), username, password });
    }
    let (steady, rest) = accounts.split_at(20);
    let (burst, rest) = rest.split_at(40);
    let target = &rest[0];
    drained(fed.replicas_mut("aaaaa"), 90).await;

    // 1. A burst of 20 logins, one per account, spread over both replicas while both are up:
    // every peer learns each, and counts exactly 20 notices.
    let base = received(&fed).await;
    let verified = [
        fed.replicas("aaaaa").members[0].metric(VERIFICATIONS).await,
        fed.replicas("aaaaa").members[1].metric(VERIFICATIONS).await,
    ];
    let proxied = [fed.replicas("aaaaa").proxy.connections_to(0), fed.replicas("aaaaa").proxy.connections_to(1)];
    let mut tasks = tokio::task::JoinSet::new();
    for (i, a) in steady.iter().enumerate() {
        let (c, login, password) = (clone_face(&fed), a.username.clone(), a.password.clone());
        tasks.spawn(async move { login_from(&c, &source(i), &login, &password).await });
    }
    while let Some(r) = tasks.join_next().await {
        let (status, body) = r.unwrap().unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let r = fed.replicas("aaaaa");
    for i in 0..2 {
        assert!(r.proxy.connections_to(i) > proxied[i], "no login went to replica {i}");
        assert!(r.members[i].metric(VERIFICATIONS).await > verified[i], "replica {i} checked no password");
    }
    for p in PEERS {
        for a in steady {
            learns_last_login(fed.at(p), fed.at("aaaaa"), &a.uuid, 30).await;
        }
    }
    let want: Vec<f64> = base.iter().map(|b| b + steady.len() as f64).collect();
    received_exactly(&mut fed, &want, "20 logins, both replicas up").await;

    // 2. A nonce one replica saw is refused by the other, either way round.
    nonce_is_shared(&fed, 0, 1, "bbbbb-tpzed-replicanonce001").await;
    nonce_is_shared(&fed, 1, 0, "bbbbb-tpzed-replicanonce002").await;

    // 3. The throttle counts across both: 30 concurrent wrong passwords for one account from one
    // source, alternating between the replicas, get exactly MAX checks in all; then the right
    // password is refused at both, and another account from another source is not.
    let before: Vec<f64> = {
        let r = fed.replicas("aaaaa");
        vec![r.members[0].metric(VERIFICATIONS).await, r.members[1].metric(VERIFICATIONS).await]
    };
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..30 {
        let member = clone_member(&fed, i % 2);
        let login = target.username.clone();
        tasks.spawn(async move { login_from(&member, "127.0.9.1", &login, &format!("wrong-password-{i}")).await });
    }
    let (mut unauthorized, mut throttled) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r.unwrap().unwrap() {
            (StatusCode::UNAUTHORIZED, _) => unauthorized += 1,
            (StatusCode::TOO_MANY_REQUESTS, _) => throttled += 1,
            (other, body) => panic!("a wrong password answered {other}: {body}"),
        }
    }
    assert_eq!((unauthorized, throttled), (MAX, 30 - MAX), "401s and 429s over both replicas");
    let r = fed.replicas("aaaaa");
    let after = [r.members[0].metric(VERIFICATIONS).await, r.members[1].metric(VERIFICATIONS).await];
    assert_eq!(after[0] - before[0] + after[1] - before[1], MAX as f64, "argon2 runs over both replicas");
    for (i, m) in r.members.iter().enumerate() {
        let (status, body) = login_from(m, "127.0.9.2", &target.username, &target.password).await.unwrap();
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "replica {i}: {body}");
        let (status, body) = login_from(m, "127.0.9.3", &steady[i].username, &steady[i].password).await.unwrap();
        assert_eq!(status, StatusCode::OK, "replica {i}: {body}");
    }
    drained(fed.replicas_mut("aaaaa"), 90).await;

    // 4. 40 logins, one per account, a few milliseconds apart; replica 1 is killed -9 when half
    // have been sent.
    let base = received(&fed).await;
    let at_home = last_logins(fed.at("aaaaa"), burst).await;
    let mut tasks = Vec::new();
    let to_killed_at_start = fed.replicas("aaaaa").proxy.connections_to(1);
    let mut to_killed_before_kill = to_killed_at_start;
    for (i, a) in burst.iter().enumerate() {
        if i == burst.len() / 2 {
            let r = fed.replicas_mut("aaaaa");
            to_killed_before_kill = r.proxy.connections_to(1);
            r.members[1].kill9();
        }
        let (c, login, password) = (clone_face(&fed), a.username.clone(), a.password.clone());
        let from = source(100 + i);
        tasks.push(tokio::spawn(async move { login_from(&c, &from, &login, &password).await }));
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let (mut acknowledged, mut cut) = (Vec::new(), Vec::new());
    for (i, (t, a)) in tasks.into_iter().zip(burst).enumerate() {
        match t.await.unwrap() {
            Ok((StatusCode::OK, body)) => acknowledged.push((a, body["user"]["last_login_at"].clone())),
            Ok((status, body)) => panic!("a login of {} answered {status}: {body}", a.username),
            // Only a login in flight at the killed replica may lose its answer: the proxy sends
            // every connection made after the kill to the survivor.
            Err(e) if i < burst.len() / 2 => cut.push((a.username.clone(), e)),
            Err(e) => panic!("login {i} of {}, sent after the kill, failed: {e}", a.username),
        }
    }
    assert!(to_killed_before_kill > to_killed_at_start, "the killed replica had taken no login of the burst");
    eprintln!("replicas: {} logins acknowledged, {} cut by the kill: {cut:?}", acknowledged.len(), cut.len());

    // Nothing acknowledged is lost: each such login is at home as it was answered.
    let now_at_home = last_logins(fed.at("aaaaa"), burst).await;
    for (a, answered) in &acknowledged {
        let i = burst.iter().position(|b| b.uuid == a.uuid).unwrap();
        assert!(answered.is_string(), "{answered}");
        assert_eq!(&now_at_home[i], answered, "{}'s acknowledged login is not at home", a.username);
    }
    // The logins the home committed: the acknowledged ones, and any whose answer the kill cut.
    let committed: Vec<&Account> =
        burst.iter().zip(at_home.iter().zip(&now_at_home)).filter(|(_, (was, is))| was != is).map(|(a, _)| a).collect();
    assert!(committed.len() >= acknowledged.len() && committed.len() <= acknowledged.len() + cut.len());
    // Every peer learns each of them, and counts each once.
    for p in PEERS {
        for a in &committed {
            learns_last_login(fed.at(p), fed.at("aaaaa"), &a.uuid, 60).await;
        }
    }
    let want: Vec<f64> = base.iter().map(|b| b + committed.len() as f64).collect();
    received_exactly(&mut fed, &want, "40 logins, a replica killed -9 halfway").await;

    // The killed replica comes back on the same database: it resends nothing the survivor
    // delivered, refuses a nonce the survivor saw, and takes logins again.
    let r = fed.replicas_mut("aaaaa");
    r.members[1].restart().await;
    nonce_is_shared(&fed, 0, 1, "bbbbb-tpzed-replicanonce003").await;
    let (c, a) = (clone_member(&fed, 1), &burst[0]);
    let (status, body) = login_from(&c, &source(199), &a.username, &a.password).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    for p in PEERS {
        learns_last_login(fed.at(p), fed.at("aaaaa"), &a.uuid, 30).await;
    }
    let want: Vec<f64> = want.iter().map(|w| w + 1.0).collect();
    received_exactly(&mut fed, &want, "after the killed replica's restart").await;
}

/// A handle on aaaaa's public face (through the proxy) that a spawned task can own.
fn clone_face(fed: &Federation) -> Cluster {
    fed.at("aaaaa").handle()
}

/// A handle on replica `i` of aaaaa (reached directly) that a spawned task can own.
fn clone_member(fed: &Federation, i: usize) -> Cluster {
    fed.replicas("aaaaa").members[i].handle()
}
