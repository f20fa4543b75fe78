//! The federation harness: real `hearth serve` processes on loopback, each with a real sled store in
//! a temporary directory, HTTPS with certificates from one CA per federation, and typed clients.
//! Tests read as the scenario they check: `let fed = Federation::start(&["aaaaa"]).await;`.

use hearth::cli::demo::{PlannedCluster, plan_federation_with_ca};
use hearth::client::Client;
use hearth::tls::LocalCa;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The binary under test.
pub const HEARTH: &str = env!("CARGO_BIN_EXE_hearth");

/// One running cluster.
pub struct Cluster {
    /// Cluster id.
    pub id: String,
    /// Base URL.
    pub url: String,
    /// Client with the system root token.
    pub root: Client,
    /// Client without a token.
    pub anon: Client,
    /// The CA certificate (PEM) the federation's certificates chain to.
    pub ca_pem: Vec<u8>,
    /// Its path.
    pub ca_path: PathBuf,
    /// The cluster's plan (config, dir, …).
    pub plan: PlannedCluster,
    child: Option<Child>,
}

/// A user made for a test.
pub struct TestUser {
    /// uuid.
    pub uuid: String,
    /// username.
    pub username: String,
    /// password.
    pub password: String,
    /// A login token.
    pub token: String,
    /// Client with that token.
    pub client: Client,
}

impl Cluster {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.plan.dir.join("hearth.log"))
            .expect("log file");
        let child = Command::new(HEARTH)
            .arg("serve")
            .arg("--config")
            .arg(&self.plan.config)
            .env("RUST_LOG", "warn,hearth=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn hearth");
        self.child = Some(child);
    }

    /// Waits for `/healthz`.
    pub async fn wait_up(&self) {
        if let Err(e) = self.anon.wait_healthy(60).await {
            let log = std::fs::read_to_string(self.plan.dir.join("hearth.log")).unwrap_or_default();
            panic!("{e}\n--- log of {} ---\n{log}", self.id);
        }
    }

    /// `kill -9`: no shutdown, no flush.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        c.wait().ok()
    }

    /// Starts the process again on the same data dir and port.
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn();
        self.wait_up().await;
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// A client with `token`.
    pub fn client(&self, token: &str) -> Client {
        self.anon.with_token(token)
    }

    /// A plain HTTPS client (trusting the federation's CA) whose connections come from `source`,
    /// a loopback address such as `127.0.0.101`: the daemon sees it as another client address.
    pub fn http_from(&self, source: &str) -> reqwest::Client {
        let ip: std::net::IpAddr = source.parse().expect("source address");
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&self.ca_pem).expect("ca")])
            .redirect(reqwest::redirect::Policy::none())
            .local_address(ip)
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .expect("client")
    }

    /// The value of metric `name` in `/metrics` (summed over its labels; 0 when absent).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.anon.http().get(format!("{}/metrics", self.url)).send().await.unwrap().text().await.unwrap();
        text.lines()
            .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{')))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Creates an active user with a verified email `<username>@example.org` and logs it in.
    pub async fn user(&self, username: &str) -> TestUser {
        self.user_with(username, json!({})).await
    }

    /// Creates a user with extra attributes (e.g. `{"is_admin": true}`) and logs it in.
    pub async fn user_with(&self, username: &str, extra: Value) -> TestUser {
        let password = format!("pw-{username}-secret");
        let mut attrs = json!({"username": username, "email": format!("{username}@example.org"), "email_verified": true, "first_name": username});
        if let (Some(a), Some(e)) = (attrs.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                a.insert(k.clone(), v.clone());
            }
        }
        let u = self.root.create_user(attrs, Some(&password)).await.expect("create user");
        let (token, _) = self.anon.login(username, &password, None).await.expect("login");
        TestUser {
            uuid: u["uuid"].as_str().expect("uuid").to_string(),
            username: username.to_string(),
            password,
            client: self.client(&token),
            token,
        }
    }
}

impl TestUser {
    /// A new token of this user's with `scopes`, in the full `v2/<uuid>/<secret>` form (whether
    /// the API answers the secret alone, as Arvados does, or the full form).
    pub async fn scoped_token(&self, scopes: &[&str]) -> String {
        let t = self
            .client
            .post("/arvados/v1/api_client_authorizations", &json!({"api_client_authorization": {"scopes": scopes}}))
            .await
            .expect("create token")
            .ok()
            .expect("token created");
        full_token(&t)
    }
}

/// The full `v2/<uuid>/<secret>` form of a token that `api_client_authorizations.create` answered
/// (whose `api_token` is the secret alone, as in Arvados; the full form is accepted too).
pub fn full_token(created: &Value) -> String {
    let raw = created["api_token"].as_str().expect("api_token");
    if raw.starts_with("v2/") {
        raw.to_string()
    } else {
        format!("v2/{}/{raw}", created["uuid"].as_str().expect("uuid"))
    }
}

/// The test Python (`$HEARTH_TEST_PYTHON`, else `.venv/bin/python` at the repository root) that can
/// import `module`; fails (never skips) when there is none, so CI cannot pass without running it.
pub fn python_with(module: &str) -> std::path::PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf();
    let candidates: Vec<PathBuf> = std::env::var_os("HEARTH_TEST_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([root.join(".venv/bin/python")])
        .collect();
    for p in &candidates {
        if Command::new(p).args(["-c", &format!("import {module}")]).output().is_ok_and(|o| o.status.success()) {
            return p.clone();
        }
    }
    panic!("no Python with {module} found (tried {candidates:?}); run .ci/run, which makes .venv")
}

/// A line of the Arvados Python SDK that sites run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdkLine {
    /// 2.7.x: the last line to ship the federation admin tools (`arv-federation-migrate`).
    V2_7,
    /// 3.x.
    V3,
}

impl SdkLine {
    /// How its version starts.
    pub fn prefix(self) -> &'static str {
        match self {
            SdkLine::V2_7 => "2.7.",
            SdkLine::V3 => "3.",
        }
    }
}

/// The test Python with `arvados-python-client` of `line`: `$HEARTH_TEST_PYTHON` (3.x) or
/// `$HEARTH_TEST_PYTHON27` (2.7.x), else `.venv/bin/python` or `.venv27/bin/python` at the
/// repository root (`.ci/run` makes both). Fails (never skips) when there is none, so that CI
/// cannot pass without running the SDK.
pub fn sdk_python(line: SdkLine) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf();
    let (var, venv) = match line {
        SdkLine::V2_7 => ("HEARTH_TEST_PYTHON27", ".venv27"),
        SdkLine::V3 => ("HEARTH_TEST_PYTHON", ".venv"),
    };
    let candidates: Vec<PathBuf> =
        std::env::var_os(var).map(PathBuf::from).into_iter().chain([root.join(venv).join("bin/python")]).collect();
    let probe = "import arvados, importlib.metadata as m; print(m.version('arvados-python-client'))";
    for p in &candidates {
        if let Ok(out) = Command::new(p).args(["-c", probe]).output()
            && out.status.success()
            && String::from_utf8_lossy(&out.stdout).trim().starts_with(line.prefix())
        {
            return p.clone();
        }
    }
    panic!(
        "no Python with arvados-python-client {}x found (tried {candidates:?}); run .ci/run, which makes them",
        line.prefix()
    )
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Several clusters that list each other as peers.
pub struct Federation {
    /// The clusters, in the order named.
    pub clusters: Vec<Cluster>,
    /// Root of all their files.
    pub dir: tempfile::TempDir,
}

/// A federation planned (configs, certificates, keys, ports) but not started: a test may add to a
/// cluster's config or start other servers (an OpenID provider) that need the clusters' URLs first.
pub struct Planned {
    /// The clusters' plans, in the order named.
    pub plan: Vec<PlannedCluster>,
    /// The federation's CA.
    pub ca: LocalCa,
    /// Its certificate's path.
    pub ca_path: PathBuf,
    /// Root of all their files.
    pub dir: tempfile::TempDir,
}

impl Planned {
    /// The plan of cluster `id`.
    pub fn at(&self, id: &str) -> &PlannedCluster {
        self.plan.iter().find(|c| c.id == id).expect("no such cluster")
    }

    /// Appends `toml` to cluster `id`'s config.
    pub fn append_toml(&self, id: &str, toml: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&self.at(id).config).expect("config");
        writeln!(f, "\n{toml}").expect("write config");
    }

    /// Starts every cluster and waits until each answers.
    pub async fn start(self) -> Federation {
        let ca_pem = std::fs::read(&self.ca_path).expect("ca");
        let mut clusters = Vec::new();
        for p in self.plan {
            let url = p.url();
            let anon = Client::new(&url, Some(&ca_pem)).expect("client");
            let mut c = Cluster {
                id: p.id.clone(),
                root: anon.with_token(&p.root_token),
                anon,
                url,
                ca_pem: ca_pem.clone(),
                ca_path: self.ca_path.clone(),
                plan: p,
                child: None,
            };
            c.spawn();
            clusters.push(c);
        }
        for c in &clusters {
            c.wait_up().await;
        }
        Federation { clusters, dir: self.dir }
    }
}

impl Federation {
    /// Plans one daemon per id (`extra_toml` is appended to every config) without starting them.
    pub fn plan(ids: &[&str], extra_toml: &str) -> Planned {
        hearth::install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let (plan, ca_path, ca) = plan_federation_with_ca(dir.path(), ids, extra_toml).expect("plan");
        Planned { plan, ca, ca_path, dir }
    }

    /// Starts one daemon per id; `extra_toml` is appended to every config.
    pub async fn start_with(ids: &[&str], extra_toml: &str) -> Federation {
        Self::plan(ids, extra_toml).start().await
    }

    /// Starts one daemon per id with default settings.
    pub async fn start(ids: &[&str]) -> Federation {
        Self::start_with(ids, "").await
    }

    /// The cluster `id`.
    pub fn at(&self, id: &str) -> &Cluster {
        self.clusters.iter().find(|c| c.id == id).expect("no such cluster")
    }

    /// The cluster `id`, mutably (to kill or restart it).
    pub fn at_mut(&mut self, id: &str) -> &mut Cluster {
        self.clusters.iter_mut().find(|c| c.id == id).expect("no such cluster")
    }
}

/// One cluster on its own.
pub async fn single() -> Federation {
    Federation::start(&["zzzzz"]).await
}

/// The value of cookie `name` that a response sets (the part before the first `;`).
pub fn set_cookie_value(resp: &reqwest::Response, name: &str) -> Option<String> {
    set_cookie_line(resp, name)
        .map(|l| l.split(';').next().unwrap_or("").trim_start_matches(&format!("{name}=")).to_string())
}

/// The whole `Set-Cookie` line for cookie `name` (to check its attributes).
pub fn set_cookie_line(resp: &reqwest::Response, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&prefix))
        .map(str::to_string)
}
