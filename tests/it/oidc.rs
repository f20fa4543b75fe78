//! OpenID Connect login (issue 13) against a real provider: panva's `oidc-provider` run by Node on
//! loopback HTTPS (`tests/oidc-provider/`), with a certificate from the federation's CA. Requests
//! go through each side's real endpoints: the provider's authorization, login page and token
//! endpoints, and the daemon's start and callback. The checks no real provider fails on its own
//! (alg none, a tampered or HMAC-signed token, wrong aud, iss or nonce, expired, unknown kid) are
//! made by the provider's test hook, which replaces the ID token of its next token answer.
//!
//! Missing Node or `tests/oidc-provider/node_modules` fails the tests (`.ci/run` runs `npm ci`).

use crate::browser::{browser, click, fill, shot, start_chromedriver, text};
use crate::harness::{Cluster, Federation, Planned};
use hearth::client::Client;
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CLIENT_ID: &str = "hearth-test-client";
const CLIENT_SECRET: &str = "hearth-test-client-secret-0123456789";
const PROVIDER_IP: &str = "127.0.0.200";

fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("tests").join("oidc-provider")
}

/// A running test provider, stopped when dropped.
pub struct TestProvider {
    child: Option<Child>,
    /// `https://127.0.0.200:<port>`.
    pub issuer: String,
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    jwks: PathBuf,
    accounts: PathBuf,
    clients: String,
    ca_pem: Vec<u8>,
    generation: u32,
}

impl Drop for TestProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

impl TestProvider {
    /// An issuer URL on a free port of the provider's loopback address.
    pub fn issuer() -> String {
        let port = hearth::cli::demo::free_port_on(PROVIDER_IP).expect("port");
        format!("https://{PROVIDER_IP}:{port}")
    }

    /// Starts the provider at `issuer` for the planned federation (see [`TestProvider::prepare`]).
    pub async fn start(planned: &Planned, issuer: &str, accounts: Value) -> TestProvider {
        let mut p = Self::prepare(planned, issuer, accounts);
        p.spawn().await;
        p
    }

    /// The provider at `issuer` for the planned federation, not started yet: one client whose
    /// redirect URIs are every cluster's callback, the given accounts, a certificate from the
    /// federation's CA.
    pub fn prepare(planned: &Planned, issuer: &str, accounts: Value) -> TestProvider {
        let root = planned.dir.path().join("oidc-provider");
        let (_, cert, key) = planned.ca.write_leaf(&root.join("tls"), &[PROVIDER_IP]).expect("provider leaf");
        let redirects: Vec<String> =
            planned.plan.iter().map(|c| format!("{}/login/oidc/test/callback", c.url())).collect();
        let clients = json!([{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": redirects}]);
        let accounts_path = root.join("accounts.json");
        std::fs::write(&accounts_path, accounts.to_string()).expect("accounts");
        TestProvider {
            child: None,
            issuer: issuer.to_string(),
            jwks: root.join("jwks-0.json"),
            dir: root,
            cert,
            key,
            accounts: accounts_path,
            clients: clients.to_string(),
            ca_pem: std::fs::read(&planned.ca_path).expect("ca"),
            generation: 0,
        }
    }

    /// Starts the node process and waits until its discovery document answers.
    pub async fn spawn(&mut self) {
        let dir = provider_dir();
        assert!(
            dir.join("node_modules").join("oidc-provider").exists(),
            "{} has no node_modules: run `npm ci` there (.ci/run does)",
            dir.display()
        );
        let log = std::fs::File::create(self.dir.join(format!("provider-{}.log", self.generation))).expect("log");
        let child = Command::new("node")
            .arg(dir.join("server.js"))
            .env("OIDC_ISSUER", &self.issuer)
            .env("OIDC_CERT", &self.cert)
            .env("OIDC_KEY", &self.key)
            .env("OIDC_JWKS", &self.jwks)
            .env("OIDC_CLIENTS", &self.clients)
            .env("OIDC_ACCOUNTS", &self.accounts)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("node is needed for the OpenID Connect tests");
        self.child = Some(child);
        let http = self.http();
        let started = Instant::now();
        loop {
            let url = format!("{}/.well-known/openid-configuration", self.issuer);
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                return;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let log = std::fs::read_to_string(self.dir.join(format!("provider-{}.log", self.generation)));
                panic!("the test provider did not start: {log:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn http(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&self.ca_pem).expect("ca")])
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client")
    }

    /// Starts the provider again with a new signing key (a key rotation).
    pub async fn rotate_keys(&mut self) {
        self.stop();
        self.generation += 1;
        self.jwks = self.dir.join(format!("jwks-{}.json", self.generation));
        self.spawn().await;
    }

    /// Makes the provider's next token answer carry a forged ID token (see `server.js`).
    pub async fn forge(&self, mode: &str) {
        let r = self.http().post(format!("{}/test/forge", self.issuer)).json(&json!({"mode": mode})).send().await;
        assert_eq!(r.expect("forge").status(), StatusCode::NO_CONTENT);
    }

    /// Replaces the provider's accounts (read on every use).
    pub fn set_accounts(&self, accounts: Value) {
        std::fs::write(&self.accounts, accounts.to_string()).expect("accounts");
    }
}

/// The `[[login.oidc]]` block for the test provider.
pub fn provider_toml(issuer: &str, ca: &Path, extra: &str) -> String {
    format!(
        "[[login.oidc]]\nid = \"test\"\ndisplay_name = \"Test ID\"\nissuer = \"{issuer}\"\nclient_id = \"{CLIENT_ID}\"\n\
         client_secret = \"{CLIENT_SECRET}\"\nca_cert = \"{}\"\n{extra}\n",
        ca.display()
    )
}

/// A federation whose clusters `with_provider` log in through the test provider (with `extra`
/// provider keys and `login` keys), and the provider with `accounts`.
pub async fn setup(
    ids: &[&str],
    with_provider: &[&str],
    login: &str,
    extra: &str,
    accounts: Value,
) -> (Federation, TestProvider) {
    let issuer = TestProvider::issuer();
    let planned = Federation::plan(ids, "");
    for id in with_provider {
        planned.append_toml(id, &format!("[login]\n{login}\n\n{}", provider_toml(&issuer, &planned.ca_path, extra)));
    }
    let op = TestProvider::start(&planned, &issuer, accounts).await;
    (planned.start().await, op)
}

/// What a response said, read once.
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// `Location`, resolved against the request URL.
    pub location: Option<String>,
    /// Body text.
    pub body: String,
}

/// A browser without a browser: cookies per host, redirects followed by hand.
pub struct Agent {
    http: reqwest::Client,
    jar: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
}

impl Agent {
    /// An agent trusting the federation's CA.
    pub fn new(ca_pem: &[u8]) -> Agent {
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca_pem).expect("ca")])
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        Agent { http, jar: Mutex::new(BTreeMap::new()) }
    }

    /// Cookie `name` for `url`'s host.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let host = Url::parse(url).ok()?.host_str()?.to_string();
        self.jar.lock().unwrap().get(&host)?.get(name).cloned()
    }

    /// Sets (or with `None` removes) cookie `name` for `url`'s host.
    pub fn set_cookie(&self, url: &str, name: &str, value: Option<&str>) {
        let host = Url::parse(url).unwrap().host_str().unwrap().to_string();
        let mut jar = self.jar.lock().unwrap();
        let cookies = jar.entry(host).or_default();
        match value {
            Some(v) => cookies.insert(name.to_string(), v.to_string()),
            None => cookies.remove(name),
        };
    }

    async fn send(&self, url: &str, form: Option<&[(&str, &str)]>) -> Answer {
        let parsed = Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        let host = parsed.host_str().unwrap().to_string();
        let cookie = {
            let jar = self.jar.lock().unwrap();
            jar.get(&host).map(|c| c.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; "))
        };
        let mut rb = match form {
            Some(f) => self.http.post(url).form(f),
            None => self.http.get(url),
        };
        if let Some(c) = cookie.filter(|c| !c.is_empty()) {
            rb = rb.header("cookie", c);
        }
        let resp = rb.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        {
            let mut jar = self.jar.lock().unwrap();
            let cookies = jar.entry(host).or_default();
            for line in resp.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
                let first = line.split(';').next().unwrap_or("");
                let Some((k, v)) = first.split_once('=') else { continue };
                let gone = v.is_empty() || line.to_ascii_lowercase().contains("max-age=0");
                if gone {
                    cookies.remove(k.trim());
                } else {
                    cookies.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
        }
        let status = resp.status();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(|l| parsed.join(l).expect("location").to_string());
        Answer { status, location, body: resp.text().await.unwrap_or_default() }
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> Answer {
        self.send(url, None).await
    }

    /// `POST url` with a form.
    pub async fn post(&self, url: &str, form: &[(&str, &str)]) -> Answer {
        self.send(url, Some(form)).await
    }

    /// Follows redirects from `url` until a URL for which `stop` holds (returned, not fetched).
    pub async fn follow_until(&self, url: &str, stop: impl Fn(&Url) -> bool) -> String {
        let mut at = url.to_string();
        for _ in 0..20 {
            if stop(&Url::parse(&at).unwrap()) {
                return at;
            }
            let a = self.get(&at).await;
            at = a.location.unwrap_or_else(|| panic!("{at} answered {} without a redirect: {}", a.status, a.body));
        }
        panic!("too many redirects from {url}");
    }

    /// Logs in at the provider as `login` on the way from `start` (a URL that leads there) and
    /// returns the daemon's callback URL the provider sends the browser to (not yet fetched).
    pub async fn through_provider(&self, start: &str, login: &str) -> String {
        let is_callback = |u: &Url| u.path().starts_with("/login/oidc/") && u.path().ends_with("/callback");
        let at = self.follow_until(start, |u| u.path().starts_with("/interaction/") || is_callback(u)).await;
        if is_callback(&Url::parse(&at).unwrap()) {
            return at;
        }
        let page = self.get(&at).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("Test provider sign-in"), "{}", page.body);
        let posted = self.post(&at, &[("login", login), ("password", "anything")]).await;
        let next = posted.location.unwrap_or_else(|| panic!("the provider refused {login}: {}", posted.body));
        self.follow_until(&next, is_callback).await
    }

    /// A whole login at `cluster` through the provider as `login`: the daemon's final answer.
    pub async fn login(&self, cluster: &Cluster, login: &str, query: &str) -> Answer {
        let cb = self.through_provider(&format!("{}/login/oidc/test/start{query}", cluster.url), login).await;
        self.get(&cb).await
    }

    /// A password login at `cluster` through its form.
    pub async fn password_login(&self, cluster: &Cluster, login: &str, password: &str) -> Answer {
        let page = self.get(&format!("{}/login", cluster.url)).await;
        assert_eq!(page.status, StatusCode::OK);
        let csrf = self.cookie(&cluster.url, "hearth_csrf").expect("csrf cookie");
        self.post(&format!("{}/login", cluster.url), &[("csrf", &csrf), ("login", login), ("password", password)]).await
    }

    /// A client with this agent's session token at `cluster`.
    pub fn session(&self, cluster: &Cluster) -> Client {
        let token = self.cookie(&cluster.url, "hearth_session").expect("a session cookie");
        cluster.client(&token)
    }

    /// Starts linking an identity from `/account` (the logged-in session's), logs in at the
    /// provider as `login`, and returns the daemon's final answer.
    pub async fn link(&self, cluster: &Cluster, login: &str) -> Answer {
        let account = self.get(&format!("{}/account", cluster.url)).await;
        assert!(account.body.contains("id=\"link-test\""), "{}", account.body);
        let csrf = self.cookie(&cluster.url, "hearth_csrf").expect("csrf cookie");
        let started = self
            .post(&format!("{}/account/identities/link", cluster.url), &[("csrf", &csrf), ("provider", "test")])
            .await;
        let to = started.location.unwrap_or_else(|| panic!("link did not start: {}", started.body));
        let cb = self.through_provider(&to, login).await;
        self.get(&cb).await
    }
}

fn person(sub: &str, email: &str, verified: bool, name: &str, username: &str) -> Value {
    json!({"sub": sub, "email": email, "email_verified": verified, "name": name, "preferred_username": username})
}

async fn current(c: &Client) -> Value {
    c.get("/arvados/v1/users/current").await.unwrap().ok().unwrap()
}

/// A first login creates an account keyed on the subject (an untrusted provider's verified email
/// stays unverified), a second login lands in it again, the API shows the identity, and the ORCID
/// iD travels to the peer in the signed record of the login notice.
#[tokio::test]
async fn first_and_second_login_are_keyed_on_the_subject() {
    let accounts = json!({"ada": person("0000-0002-1825-0097", "Ada@Example.org", true, "Ada Lovelace", "ada.l")});
    let (fed, _op) = setup(&["aaaaa", "bbbbb"], &["aaaaa"], "", "orcid = true", accounts).await;
    let a = fed.at("aaaaa");
    let ready = a.anon.get("/readyz").await.unwrap();
    assert_eq!(ready.body["oidc"]["test"], "ready", "{}", ready.body);
    let page =
        a.anon.http().get(format!("{}/login?return_to=/account", a.url)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("id=\"oidc-test\" href=\"/login/oidc/test/start?return_to=https%3A%2F%2F"), "{page}");
    assert!(page.contains("%2Faccount\">Log in with Test ID</a>"), "{page}");
    assert!(page.contains("Log in with Test ID"), "{page}");

    let agent = Agent::new(&a.ca_pem);
    let done = agent.login(a, "ada", "?return_to=%2Faccount").await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let to = done.location.unwrap();
    assert!(to.starts_with(&format!("{}/account?api_token=v2%2Faaaaa-gj3su-", a.url)), "{to}");
    assert!(agent.cookie(&a.url, "hearth_oidc").is_none(), "the flow's cookie is gone");
    let me = current(&agent.session(a)).await;
    let uuid = me["uuid"].as_str().unwrap().to_string();
    assert_eq!(me["username"], "adal");
    assert_eq!(me["email"], "ada@example.org");
    assert_eq!(me["email_verified"], false, "an untrusted provider's email is not verified here");
    assert_eq!((me["first_name"].as_str(), me["last_name"].as_str()), (Some("Ada"), Some("Lovelace")));
    assert_eq!(me["orcid"], "0000-0002-1825-0097");
    let ids = me["identities"].as_array().unwrap();
    assert_eq!(ids.len(), 1, "{me}");
    assert_eq!(ids[0]["provider"], "test");
    assert_eq!(ids[0]["subject"], "0000-0002-1825-0097");
    assert_eq!(ids[0]["email"], "Ada@Example.org");
    assert_eq!(ids[0]["email_verified"], true, "the provider's own word, as it said it");
    let page = agent.get(&format!("{}/account", a.url)).await;
    assert!(page.body.contains("0000-0002-1825-0097") && page.body.contains("id=\"unlink-test-1\""), "{}", page.body);

    // Admins see identities too; the audit log says how the account was made.
    let got = a.root.get(&format!("/arvados/v1/users/{uuid}")).await.unwrap().ok().unwrap();
    assert_eq!(got["identities"][0]["subject"], "0000-0002-1825-0097");
    let logs = a.root.get("/arvados/v1/logs?limit=1000").await.unwrap().ok().unwrap();
    let kinds: Vec<&str> = logs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["object_uuid"] == uuid.as_str())
        .filter_map(|l| l["event_type"].as_str())
        .collect();
    assert!(kinds.contains(&"create") && kinds.contains(&"login"), "{kinds:?}");

    // A second login (the provider remembers the person) lands in the same account.
    let again = Agent::new(&a.ca_pem);
    let done = again.login(a, "ada", "").await;
    assert_eq!(done.location.as_deref(), Some(format!("{}/account", a.url).as_str()), "{}", done.body);
    assert_eq!(current(&again.session(a)).await["uuid"], uuid.as_str());
    let users = a.root.get("/arvados/v1/users?limit=100").await.unwrap().ok().unwrap();
    let adas = users["items"].as_array().unwrap().iter().filter(|u| u["orcid"] == "0000-0002-1825-0097").count();
    assert_eq!(adas, 1, "one identity, one account");

    // The login notice carries the ORCID iD to the peer, in the signed record it caches.
    let b = fed.at("bbbbb");
    let started = Instant::now();
    loop {
        let r = b.root.get(&format!("/arvados/v1/users/{uuid}")).await.unwrap();
        if r.status.is_success() && r.body["orcid"] == "0000-0002-1825-0097" {
            assert_eq!(r.body["email_verified"], false);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "bbbbb never cached the ORCID iD: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A trusted provider's `email_verified: true` is verified here, its `false` is not.
#[tokio::test]
async fn a_trusted_provider_s_email_counts_only_when_it_says_verified() {
    let accounts = json!({
        "yes": person("sub-yes", "yes@example.org", true, "Yes Verified", "yes"),
        "no": person("sub-no", "no@example.org", false, "No Verified", "no"),
    });
    let (fed, _op) = setup(&["aaaaa"], &["aaaaa"], "", "trusted_email = true", accounts).await;
    let a = fed.at("aaaaa");
    for (login, verified) in [("yes", true), ("no", false)] {
        let agent = Agent::new(&a.ca_pem);
        let done = agent.login(a, login, "").await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        let me = current(&agent.session(a)).await;
        assert_eq!(me["email"], format!("{login}@example.org"));
        assert_eq!(me["email_verified"], verified, "{login}: {me}");
        assert_eq!(me["orcid"], Value::Null, "not an ORCID provider");
    }
}

/// An attacker who registers a victim's email at the provider (even a trusted one, saying it is
/// verified) gets an account of their own: the identity never attaches itself to the victim's.
#[tokio::test]
async fn registering_a_victim_s_email_at_the_provider_takes_over_nothing() {
    let accounts = json!({"mallory": person("sub-mallory", "mallory@evil.example", true, "Mallory", "mallory")});
    let (fed, op) = setup(&["aaaaa"], &["aaaaa"], "", "trusted_email = true", accounts).await;
    let a = fed.at("aaaaa");
    let victim = a.user("victim").await;
    // Mallory logs in with her own provider account, then changes its email to the victim's.
    let agent = Agent::new(&a.ca_pem);
    assert_eq!(agent.login(a, "mallory", "").await.status, StatusCode::SEE_OTHER);
    let mallory = current(&agent.session(a)).await;
    op.set_accounts(json!({
        "mallory": person("sub-mallory", "victim@example.org", true, "Mallory", "mallory"),
        "eve": person("sub-eve", "victim@example.org", true, "Eve", "victim"),
    }));
    let again = Agent::new(&a.ca_pem);
    assert_eq!(again.login(a, "mallory", "").await.status, StatusCode::SEE_OTHER);
    let me = current(&again.session(a)).await;
    assert_eq!(me["uuid"], mallory["uuid"], "the subject decides, not the email");
    assert_eq!(me["email"], "mallory@evil.example", "a later login changes no account email");
    assert_eq!(me["identities"][0]["email"], "victim@example.org", "the claim seen at the last login");
    // Eve registers the victim's email (verified, at a trusted provider): an account of her own.
    let eve = Agent::new(&a.ca_pem);
    let done = eve.login(a, "eve", "").await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let me = current(&eve.session(a)).await;
    assert_ne!(me["uuid"], victim.uuid.as_str(), "a new account, not the victim's");
    assert_eq!(me["username"], "victim2", "the victim's username is taken");
    let v = current(&victim.client).await;
    assert_eq!(v["identities"], json!([]), "nothing was linked to the victim");
    // The victim still logs in with the email and password: an account without a password does
    // not make the email ambiguous.
    let again = Agent::new(&a.ca_pem);
    let r = again.password_login(a, "victim@example.org", &victim.password).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(current(&again.session(a)).await["uuid"], victim.uuid.as_str());
}

fn refused(a: &Answer, what: &str) {
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{what}: {}", a.body);
    assert!(a.body.contains("Login refused"), "{what}: {}", a.body);
}

/// Every check of the callback and the ID token, each driven through the daemon's real callback:
/// a wrong or replayed `state`, a callback in another browser, and forged ID tokens. None of them
/// issues a session, and a proper login still works afterwards.
#[tokio::test]
async fn the_callback_refuses_what_it_must() {
    let accounts = json!({"ada": person("sub-ada", "ada@example.org", true, "Ada", "ada")});
    let (fed, op) = setup(&["aaaaa"], &["aaaaa"], "", "", accounts).await;
    let a = fed.at("aaaaa");
    let start = format!("{}/login/oidc/test/start", a.url);

    // Wrong state.
    let agent = Agent::new(&a.ca_pem);
    let cb = agent.through_provider(&start, "ada").await;
    let mut url = Url::parse(&cb).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.to_string(), if k == "state" { format!("{v}x") } else { v.to_string() }))
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let r = agent.get(url.as_str()).await;
    refused(&r, "wrong state");
    assert!(r.body.contains("state"), "{}", r.body);
    assert!(agent.cookie(&a.url, "hearth_session").is_none());
    // The pending login was used up by that attempt: the right state now fails too.
    refused(&agent.get(&cb).await, "after a wrong state");

    // Replayed state: a good callback works once.
    let agent = Agent::new(&a.ca_pem);
    let cb = agent.through_provider(&start, "ada").await;
    let cookie = agent.cookie(&a.url, "hearth_oidc").unwrap();
    assert_eq!(agent.get(&cb).await.status, StatusCode::SEE_OTHER);
    agent.set_cookie(&a.url, "hearth_oidc", Some(&cookie));
    agent.set_cookie(&a.url, "hearth_session", None);
    let r = agent.get(&cb).await;
    refused(&r, "replayed state");
    assert!(r.body.contains("already used"), "{}", r.body);
    assert!(agent.cookie(&a.url, "hearth_session").is_none());

    // The callback in a browser that did not start the login (no hearth_oidc cookie).
    let agent = Agent::new(&a.ca_pem);
    let cb = agent.through_provider(&start, "ada").await;
    let other = Agent::new(&a.ca_pem);
    refused(&other.get(&cb).await, "another browser");

    let users_before = a.root.get("/arvados/v1/users?limit=100").await.unwrap().ok().unwrap()["items"].clone();
    // Forged ID tokens, each in the token answer to a real code exchange.
    for (mode, says) in [
        ("nonce", "nonce"),
        ("tamper", "ID token was refused"),
        ("none", ""),
        ("hs256", ""),
        ("aud", "ID token was refused"),
        ("expired", "ID token was refused"),
        ("iss", "ID token was refused"),
    ] {
        let agent = Agent::new(&a.ca_pem);
        let cb = agent.through_provider(&start, "ada").await;
        op.forge(mode).await;
        let r = agent.get(&cb).await;
        refused(&r, mode);
        assert!(r.body.contains(says), "{mode}: {}", r.body);
        assert!(agent.cookie(&a.url, "hearth_session").is_none(), "{mode}: no session");
    }
    let users = a.root.get("/arvados/v1/users?limit=100").await.unwrap().ok().unwrap();
    assert_eq!(users["items"].as_array().unwrap().len(), users_before.as_array().unwrap().len(), "no account was made");

    // And a proper login still works.
    let agent = Agent::new(&a.ca_pem);
    assert_eq!(agent.get(&agent.through_provider(&start, "ada").await).await.status, StatusCode::SEE_OTHER);
}

/// After the provider rotates its signing key, the first token signed with the new key makes the
/// daemon fetch the JWKS again, once; a made-up key id soon after does not make it fetch again.
#[tokio::test]
async fn rotated_keys_are_fetched_again_at_most_once_a_minute() {
    let accounts = json!({"ada": person("sub-ada", "ada@example.org", true, "Ada", "ada")});
    let (fed, mut op) = setup(&["aaaaa"], &["aaaaa"], "", "", accounts).await;
    let a = fed.at("aaaaa");
    const FETCHES: &str = "hearth_oidc_jwks_fetches_total";
    let agent = Agent::new(&a.ca_pem);
    assert_eq!(agent.login(a, "ada", "").await.status, StatusCode::SEE_OTHER);
    let before = a.metric(FETCHES).await;

    op.rotate_keys().await;
    let agent = Agent::new(&a.ca_pem);
    let r = agent.login(a, "ada", "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "the new key is fetched: {}", r.body);
    assert_eq!(a.metric(FETCHES).await - before, 1.0, "one fetch for the new key");

    let agent = Agent::new(&a.ca_pem);
    let cb = agent.through_provider(&format!("{}/login/oidc/test/start", a.url), "ada").await;
    op.forge("unknown_kid").await;
    let r = agent.get(&cb).await;
    refused(&r, "unknown kid");
    assert!(r.body.contains("key the provider does not publish"), "{}", r.body);
    assert_eq!(a.metric(FETCHES).await - before, 1.0, "no second fetch within a minute");
}

/// Linking from `/account`: the identity then logs in to the linked account; another account
/// cannot link it (and is told which account holds it); unlinking needs another way to log in.
#[tokio::test]
async fn identities_are_linked_from_the_account_page_and_unlinked_with_care() {
    let accounts = json!({
        "ada": person("sub-ada", "ada@example.org", true, "Ada", "ada"),
        "solo": person("sub-solo", "solo@example.org", true, "Solo", "solo"),
    });
    let (fed, op) = setup(&["aaaaa"], &["aaaaa"], "", "trusted_email = true", accounts).await;
    let a = fed.at("aaaaa");
    let alice = a.user("alice").await;
    let bob = a.user("bob").await;

    // Alice links her provider identity "ada" from her account page.
    let agent = Agent::new(&a.ca_pem);
    assert_eq!(agent.password_login(a, "alice", &alice.password).await.status, StatusCode::SEE_OTHER);
    let done = agent.link(a, "ada").await;
    assert_eq!(done.location.as_deref(), Some(format!("{}/account?linked=test", a.url).as_str()), "{}", done.body);
    let page = agent.get(done.location.as_ref().unwrap()).await;
    assert!(page.body.contains("Your Test ID identity is linked to this account"), "{}", page.body);
    let me = current(&alice.client).await;
    assert_eq!(me["identities"][0]["subject"], "sub-ada");
    assert_eq!(me["email"], "alice@example.org", "linking changes no email");

    // The identity now logs in to Alice's account.
    let other = Agent::new(&a.ca_pem);
    assert_eq!(other.login(a, "ada", "").await.status, StatusCode::SEE_OTHER);
    assert_eq!(current(&other.session(a)).await["uuid"], alice.uuid.as_str());

    // Bob cannot link the same identity: it is Alice's.
    let agent_b = Agent::new(&a.ca_pem);
    assert_eq!(agent_b.password_login(a, "bob", &bob.password).await.status, StatusCode::SEE_OTHER);
    let r = agent_b.link(a, "ada").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body.contains("already linked to another account") && r.body.contains(&alice.uuid), "{}", r.body);
    assert_eq!(current(&bob.client).await["identities"], json!([]));

    // Unlinking through the page (CSRF) and the JSON endpoint.
    let csrf = agent.cookie(&a.url, "hearth_csrf").unwrap();
    let no_csrf = agent
        .post(
            &format!("{}/account/identities/unlink", a.url),
            &[("csrf", "x"), ("provider", "test"), ("subject", "sub-ada")],
        )
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    let r = agent
        .post(
            &format!("{}/account/identities/unlink", a.url),
            &[("csrf", &csrf), ("provider", "test"), ("subject", "sub-ada")],
        )
        .await;
    assert_eq!(r.location.as_deref(), Some(format!("{}/account?unlinked=test", a.url).as_str()), "{}", r.body);
    assert_eq!(current(&alice.client).await["identities"], json!([]));
    // Unlinked, the identity is unknown again: a new account, not Alice's.
    let other = Agent::new(&a.ca_pem);
    assert_eq!(other.login(a, "ada", "").await.status, StatusCode::SEE_OTHER);
    assert_ne!(current(&other.session(a)).await["uuid"], alice.uuid.as_str());

    // An account made by the provider has no password: its only identity stays.
    let solo = Agent::new(&a.ca_pem);
    assert_eq!(solo.login(a, "solo", "").await.status, StatusCode::SEE_OTHER);
    let solo_client = solo.session(a);
    // (The provider may be named by its issuer, and the subject left out when there is only one.)
    let r = solo_client.post("/hearth/v1/identities/unlink", &json!({"issuer": op.issuer})).await.unwrap();
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["error_code"], "last_login_method");
    // With a password set, it may go.
    let uuid = current(&solo_client).await["uuid"].as_str().unwrap().to_string();
    let r = solo_client
        .post(&format!("/hearth/v1/users/{uuid}/password"), &json!({"password": "solo-password-1"}))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = solo_client
        .post("/hearth/v1/identities/unlink", &json!({"provider": "test", "subject": "sub-solo"}))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["items"], json!([]));
    let listed = solo_client.get("/hearth/v1/identities").await.unwrap().ok().unwrap();
    assert_eq!(listed["items"], json!([]));
}

/// A login at the home cluster through its provider, for a peer: the federated hand-off brings the
/// person back to the peer with a token salted for it and a signed login assertion, as for a
/// password login.
#[tokio::test]
async fn a_provider_login_at_home_works_for_a_peer() {
    let accounts = json!({"ada": person("sub-ada", "ada@example.org", true, "Ada", "ada")});
    let (fed, _op) = setup(&["aaaaa", "bbbbb"], &["aaaaa"], "", "", accounts).await;
    let (a, b) = (fed.at("aaaaa"), fed.at("bbbbb"));
    let agent = Agent::new(&a.ca_pem);
    let to_home = agent.get(&format!("{}/login?home=aaaaa&return_to=%2Faccount", b.url)).await;
    let home_login = to_home.location.expect("to the home cluster");
    assert!(home_login.starts_with(&format!("{}/login?remote=bbbbb", a.url)), "{home_login}");
    let page = agent.get(&home_login).await;
    let href = page.body.split("id=\"oidc-test\" href=\"").nth(1).and_then(|s| s.split('"').next()).expect("button");
    let href = href.replace("&#38;", "&").replace("&amp;", "&");
    assert!(href.contains("remote=bbbbb"), "{href}");
    let cb = agent.through_provider(&format!("{}{href}", a.url), "ada").await;
    let back = agent.get(&cb).await;
    let to = back.location.unwrap_or_else(|| panic!("{}", back.body));
    assert!(to.starts_with(&format!("{}/login/federated?", b.url)), "{to}");
    assert!(to.contains("login_assertion="), "{to}");
    let done = agent.get(&to).await;
    let at = done.location.unwrap_or_else(|| panic!("{}", done.body));
    assert!(at.starts_with(&format!("{}/account?api_token=v2%2Faaaaa-gj3su-", b.url)), "{at}");
    let session = agent.cookie(&b.url, "hearth_session").unwrap();
    assert!(session.starts_with("v2/aaaaa-gj3su-"), "{session}");
    let me = current(&b.client(&session)).await;
    assert!(me["uuid"].as_str().unwrap().starts_with("aaaaa-tpzed-"), "{me}");
    assert_eq!(me["email"], "ada@example.org");
}

/// A provider that cannot be reached at start does not stop the daemon: its button says it is
/// unavailable, `/readyz` names it, and it is discovered in the background once it answers. With
/// `oidc_create_users = false` an unknown identity is refused.
#[tokio::test]
async fn an_unreachable_provider_is_retried_and_new_users_follow_the_policy() {
    let issuer = TestProvider::issuer();
    let planned = Federation::plan(&["aaaaa"], "");
    planned.append_toml(
        "aaaaa",
        &format!("[login]\noidc_create_users = false\n\n{}", provider_toml(&issuer, &planned.ca_path, "")),
    );
    let accounts = json!({"ada": person("sub-ada", "ada@example.org", true, "Ada", "ada")});
    let mut op = TestProvider::prepare(&planned, &issuer, accounts);
    let fed = planned.start().await;
    let a = fed.at("aaaaa");
    let ready = a.anon.get("/readyz").await.unwrap();
    assert_eq!(ready.status, StatusCode::OK);
    assert!(ready.body["oidc"]["test"].as_str().unwrap().starts_with("unavailable"), "{}", ready.body);
    assert_eq!(ready.body["oidc_unavailable"], json!(["test"]));
    let page = a.anon.http().get(format!("{}/login", a.url)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Log in with Test ID (unavailable at the moment)"), "{page}");
    let r = a.anon.http().get(format!("{}/login/oidc/test/start", a.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);

    // Now the provider comes up.
    op.spawn().await;
    let started = Instant::now();
    loop {
        let ready = a.anon.get("/readyz").await.unwrap();
        if ready.body["oidc"]["test"] == "ready" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(45), "never discovered: {}", ready.body);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let agent = Agent::new(&a.ca_pem);
    let r = agent.login(a, "ada", "").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("no account here is linked to this Test ID identity"), "{}", r.body);
}

/// The whole flow in a real browser: the login page's button, the provider's own sign-in page,
/// back to the account page.
#[tokio::test]
async fn a_person_logs_in_through_the_provider_s_pages_in_a_browser() {
    let accounts = json!({"ada": person("0000-0002-1825-0097", "ada@example.org", true, "Ada Lovelace", "ada")});
    let (fed, _op) = setup(&["aaaaa"], &["aaaaa"], "", "orcid = true\ntrusted_email = true", accounts).await;
    let a = fed.at("aaaaa");
    let driver = start_chromedriver();
    let c = browser(&driver).await;
    c.goto(&format!("{}/login", a.url)).await.unwrap();
    assert_eq!(text(&c, "#oidc-test").await, "Log in with Test ID");
    shot(&c, "oidc-01-login.png").await;
    click(&c, "#oidc-test").await;
    assert_eq!(text(&c, "h1").await, "Test provider sign-in");
    shot(&c, "oidc-02-provider.png").await;
    fill(&c, "#login", "ada").await;
    fill(&c, "#password", "whatever").await;
    click(&c, "#submit").await;
    let uuid = text(&c, "#user-uuid").await;
    assert!(uuid.starts_with("aaaaa-tpzed-"), "{uuid}");
    assert_eq!(text(&c, "#email").await, "ada@example.org (verified)");
    assert_eq!(text(&c, ".identity .subject").await, "0000-0002-1825-0097");
    assert_eq!(text(&c, "#orcid").await, "0000-0002-1825-0097");
    shot(&c, "oidc-03-account.png").await;
    c.close().await.unwrap();
}
