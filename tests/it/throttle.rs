//! The login throttle and what a login costs, end to end: an attempt takes its slot per account
//! (whatever form of the login names it) and per source address *before* argon2 runs, so a burst
//! of concurrent wrong passwords gets exactly `login.max_failures` checks however fast it comes;
//! and every login that is checked runs exactly one argon2 verification, whether the account
//! exists, has a password, is inactive or merged away (counted through `/metrics`, not timed).

use crate::harness::{Cluster, Federation};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// `login.max_failures` of these tests.
const MAX: usize = 10;
/// A window no test outlasts.
const CONFIG: &str = "[login]\nmax_failures = 10\nfailure_window_secs = 3600\n";
/// The counter of argon2 verifications.
const VERIFICATIONS: &str = "hearth_argon2_verifications_total";

/// How a login is sent: the scripts' JSON API or the browsers' form.
#[derive(Clone, Copy, Debug)]
enum Via {
    Api,
    Form,
}

/// One login attempt at the daemon at `base` through `http` (whose source address the daemon
/// sees); its status and (for the API) its error code.
async fn attempt(base: &str, http: &reqwest::Client, via: Via, login: &str, password: &str) -> (StatusCode, String) {
    match via {
        Via::Api => {
            let r = http
                .post(format!("{base}/hearth/v1/login"))
                .json(&json!({"login": login, "password": password}))
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (status, body["error_code"].as_str().unwrap_or("").to_string())
        }
        Via::Form => {
            // The CSRF check is a double submit: any long enough value sent as both cookie and field.
            let csrf = "c".repeat(40);
            let r = http
                .post(format!("{base}/login"))
                .header("Cookie", format!("hearth_csrf={csrf}"))
                .form(&[("login", login), ("password", password), ("csrf", csrf.as_str()), ("return_to", "")])
                .send()
                .await
                .unwrap();
            (r.status(), String::new())
        }
    }
}

/// Fires all `attempts` (via, login, password) at once from `http`; counts the statuses.
async fn burst(c: &Cluster, http: &reqwest::Client, attempts: Vec<(Via, String, String)>) -> (usize, usize) {
    let tasks: Vec<_> = attempts
        .into_iter()
        .map(|(via, login, password)| {
            let (base, http) = (c.url.clone(), http.clone());
            tokio::spawn(async move { attempt(&base, &http, via, &login, &password).await.0 })
        })
        .collect();
    let (mut unauthorized, mut throttled) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::UNAUTHORIZED => unauthorized += 1,
            StatusCode::TOO_MANY_REQUESTS => throttled += 1,
            other => panic!("a wrong password answered {other}"),
        }
    }
    (unauthorized, throttled)
}

/// The forms one account's login takes: username (with spaces) and email in any case.
fn forms_of(username: &str) -> Vec<String> {
    vec![
        username.to_string(),
        format!("  {username} "),
        format!("{username}@example.org"),
        format!("{}@Example.ORG", username.to_uppercase()),
        format!(" {username}@EXAMPLE.org "),
    ]
}

/// 60 concurrent wrong passwords for one account from one source, through both login endpoints and
/// every form of the login: exactly `max_failures` are checked (401, one argon2 run each), the rest
/// are refused unchecked (429). Checked only after hashing, 130 of 150 such attempts got through.
#[tokio::test]
async fn a_burst_of_wrong_passwords_for_one_account_gets_exactly_max_failures_checks() {
    let fed = Federation::start_with(&["zzzzz"], CONFIG).await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let bob = c.user("bob").await;
    let forms = forms_of("alice");
    let attempts = (0..60)
        .map(|i| {
            let via = if i % 3 == 0 { Via::Form } else { Via::Api };
            (via, forms[i % forms.len()].clone(), format!("wrong-password-{i}"))
        })
        .collect();
    let attacker = c.http_from("127.0.0.101");
    let before = c.metric(VERIFICATIONS).await;
    let (unauthorized, throttled) = burst(c, &attacker, attempts).await;
    assert_eq!((unauthorized, throttled), (MAX, 60 - MAX), "401s and 429s of the burst");
    assert_eq!(c.metric(VERIFICATIONS).await - before, MAX as f64, "argon2 ran once per checked attempt");
    // Inside the window the right password is refused too, through either endpoint, from this
    // source and from any other (the account's counter is full), and nothing is hashed for it.
    let before = c.metric(VERIFICATIONS).await;
    for via in [Via::Api, Via::Form] {
        assert_eq!(attempt(&c.url, &attacker, via, "alice", &alice.password).await.0, StatusCode::TOO_MANY_REQUESTS);
    }
    let elsewhere = c.http_from("127.0.0.102");
    let (status, code) = attempt(&c.url, &elsewhere, Via::Api, "Alice@example.org", &alice.password).await;
    assert_eq!((status, code.as_str()), (StatusCode::TOO_MANY_REQUESTS, "throttled"));
    assert_eq!(c.metric(VERIFICATIONS).await - before, 0.0, "a throttled attempt is not hashed");
    // The throttle is per account and per source, not global: bob logs in from elsewhere.
    assert_eq!(attempt(&c.url, &elsewhere, Via::Api, "bob", &bob.password).await.0, StatusCode::OK);
}

/// The account's counter is keyed by the account, not by the typed string: failures through the
/// username and through the email in other cases, each from a different source, add up.
#[tokio::test]
async fn every_form_of_a_login_counts_against_one_account() {
    let fed = Federation::start_with(&["zzzzz"], "[login]\nmax_failures = 3\nfailure_window_secs = 3600\n").await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let bob = c.user("bob").await;
    for (i, login) in ["alice", "ALICE@example.org", " alice@Example.Org "].iter().enumerate() {
        let from = c.http_from(&format!("127.0.0.{}", 111 + i));
        let (status, code) = attempt(&c.url, &from, Via::Api, login, "wrong-password").await;
        assert_eq!((status, code.as_str()), (StatusCode::UNAUTHORIZED, "invalid_login"), "{login:?}");
    }
    // A fourth source, whose own counter is empty, still meets the account's full counter.
    let fresh = c.http_from("127.0.0.114");
    assert_eq!(attempt(&c.url, &fresh, Via::Api, "alice", &alice.password).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(attempt(&c.url, &fresh, Via::Form, "alice", &alice.password).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(attempt(&c.url, &fresh, Via::Api, "bob", &bob.password).await.0, StatusCode::OK);
    // A name without an account fills its own counter the same way, so the throttle does not tell
    // which names exist.
    for (i, login) in ["ghost@example.org", "GHOST@example.org", " Ghost@Example.Org "].iter().enumerate() {
        let from = c.http_from(&format!("127.0.0.{}", 115 + i));
        assert_eq!(attempt(&c.url, &from, Via::Api, login, "wrong-password").await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, code) = attempt(&c.url, &fresh, Via::Api, "ghost@example.org", "wrong-password").await;
    assert_eq!((status, code.as_str()), (StatusCode::TOO_MANY_REQUESTS, "throttled"));
}

/// One source spraying wrong passwords over many accounts, and unknown logins, all at once: the
/// source's counter lets exactly `max_failures` be checked. Another source is checked as usual.
#[tokio::test]
async fn a_burst_over_many_accounts_from_one_source_gets_exactly_max_failures_checks() {
    let fed = Federation::start_with(&["zzzzz"], CONFIG).await;
    let c = &fed.clusters[0];
    let mut logins = Vec::new();
    for n in 0..5 {
        let u = c.user(&format!("user{n}")).await;
        logins.extend(forms_of(&u.username));
    }
    logins.extend(["nobody", "nobody@example.org", "  Nobody@Example.org"].map(String::from));
    let attempts = (0..60)
        .map(|i| {
            let via = if i % 4 == 0 { Via::Form } else { Via::Api };
            (via, logins[i % logins.len()].clone(), format!("wrong-password-{i}"))
        })
        .collect();
    let sprayer = c.http_from("127.0.0.121");
    let before = c.metric(VERIFICATIONS).await;
    let (unauthorized, throttled) = burst(c, &sprayer, attempts).await;
    assert_eq!((unauthorized, throttled), (MAX, 60 - MAX), "401s and 429s of the burst");
    assert_eq!(c.metric(VERIFICATIONS).await - before, MAX as f64, "argon2 ran once per checked attempt");
    // The source stays refused, unknown logins included (they have no account to count against).
    assert_eq!(attempt(&c.url, &sprayer, Via::Api, "nobody", "whatever1").await.0, StatusCode::TOO_MANY_REQUESTS);
    let other = c.http_from("127.0.0.122");
    assert_eq!(attempt(&c.url, &other, Via::Api, "nobody", "whatever1").await.0, StatusCode::UNAUTHORIZED);
}

/// Every kind of failed login runs argon2 exactly once, against the account's hash or, without
/// one, against a dummy hash with the same parameters: so answering costs the same whether the
/// login is unknown, has no password (an admin made it without one: 4 ms instead of 58 before),
/// is inactive or merged away. A throttled attempt runs none.
#[tokio::test]
async fn every_kind_of_failed_login_runs_argon2_exactly_once() {
    let fed = Federation::start_with(&["zzzzz"], "[login]\nmax_failures = 1\nfailure_window_secs = 3600\n").await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let bob = c.user("bob").await;
    // With max_failures = 1 every failure fills its account's counter: one account per case.
    c.root.create_user(json!({"username": "nopass"}), None).await.unwrap();
    c.root.create_user(json!({"username": "nopass2", "email": "nopass@example.org"}), None).await.unwrap();
    for name in ["idle", "idle2"] {
        c.root.create_user(json!({"username": name, "is_active": false}), Some("idle-password")).await.unwrap();
    }
    let moved = c.root.create_user(json!({"username": "moved"}), Some("moved-password")).await.unwrap();
    let r = c
        .root
        .put(
            &format!("/arvados/v1/users/{}", moved["uuid"].as_str().unwrap()),
            &json!({"user": {"redirect_to_user_uuid": alice.uuid}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for name in ["twin1", "twin2"] {
        c.root
            .create_user(json!({"username": name, "email": "twins@example.org"}), Some("twin-password"))
            .await
            .unwrap();
    }
    let cases: [(&str, &str, StatusCode, &str); 10] = [
        ("alice", "wrong-password", StatusCode::UNAUTHORIZED, "invalid_login"),
        ("nobody", "wrong-password", StatusCode::UNAUTHORIZED, "invalid_login"),
        ("nobody@example.org", "wrong-password", StatusCode::UNAUTHORIZED, "invalid_login"),
        ("not@an@email", "wrong-password", StatusCode::UNAUTHORIZED, "invalid_login"),
        ("nopass", "any-password", StatusCode::UNAUTHORIZED, "invalid_login"),
        ("nopass@example.org", "", StatusCode::UNAUTHORIZED, "invalid_login"),
        ("idle", "wrong-password", StatusCode::UNAUTHORIZED, "invalid_login"),
        ("idle2", "idle-password", StatusCode::FORBIDDEN, "inactive"),
        ("moved", "moved-password", StatusCode::FORBIDDEN, "account_moved"),
        ("twins@example.org", "twin-password", StatusCode::UNAUTHORIZED, "ambiguous_login"),
    ];
    for (i, (login, password, status, code)) in cases.iter().enumerate() {
        // Each from its own source: with max_failures = 1 a second attempt would be throttled.
        let from = c.http_from(&format!("127.0.0.{}", 130 + i));
        let before = c.metric(VERIFICATIONS).await;
        let got = attempt(&c.url, &from, Via::Api, login, password).await;
        assert_eq!((got.0, got.1.as_str()), (*status, *code), "{login:?}");
        assert_eq!(c.metric(VERIFICATIONS).await - before, 1.0, "argon2 runs for {login:?}: exactly once");
        // The same source again is refused without hashing (a correct password gave its slot back).
        let before = c.metric(VERIFICATIONS).await;
        let again = attempt(&c.url, &from, Via::Api, "nobody", "wrong-password").await.0;
        if *status == StatusCode::UNAUTHORIZED {
            assert_eq!(again, StatusCode::TOO_MANY_REQUESTS, "after {login:?}");
            assert_eq!(c.metric(VERIFICATIONS).await - before, 0.0, "a throttled attempt is not hashed");
        }
    }
    // A successful login runs it once too (alice's counter is full: bob's is not).
    let from = c.http_from("127.0.0.150");
    let before = c.metric(VERIFICATIONS).await;
    assert_eq!(attempt(&c.url, &from, Via::Api, "alice", &alice.password).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(attempt(&c.url, &from, Via::Api, "bob", &bob.password).await.0, StatusCode::OK);
    assert_eq!(c.metric(VERIFICATIONS).await - before, 1.0);
}

/// A login name longer than any username or email (254 bytes, trimmed) is refused with 422
/// `too_long` before anything is hashed or counted: the throttle keys its counters by the name
/// as typed (rows of the store on PostgreSQL), so an unbounded name would be unbounded rows. Padding
/// with whitespace that the trim removes still logs in; a multi-byte name is measured in bytes.
#[tokio::test]
async fn a_login_name_past_its_bound_is_refused_before_it_is_counted() {
    let fed = Federation::start_with(&["zzzzz"], CONFIG).await;
    let c = &fed.clusters[0];
    let alice = c.user("alice").await;
    let http = c.http_from("127.0.0.103");
    let before = c.metric(VERIFICATIONS).await;
    let long_email = format!("{}@example.org", "a".repeat(254 - "@example.org".len() + 1));
    let long_unicode = "é".repeat(128); // 128 characters, 256 bytes
    for login in [long_email.as_str(), long_unicode.as_str(), &"x".repeat(10_000)] {
        for _ in 0..(MAX + 2) {
            let (status, code) = attempt(&c.url, &http, Via::Api, login, "whatever-password").await;
            assert_eq!((status, code.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "too_long"), "{}", login.len());
        }
    }
    assert_eq!(c.metric(VERIFICATIONS).await - before, 0.0, "nothing was hashed");
    // None of those counted against the source: alice, padded with whitespace, still logs in.
    let padded = format!(" \t{}\n ", "alice");
    assert_eq!(attempt(&c.url, &http, Via::Api, &padded, &alice.password).await.0, StatusCode::OK);
    let at_bound = format!("{}@example.org", "b".repeat(254 - "@example.org".len()));
    assert_eq!(at_bound.len(), 254);
    let (status, _) = attempt(&c.url, &http, Via::Api, &at_bound, "whatever-password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a name at the bound is checked as any other");
}
