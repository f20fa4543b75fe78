//! The federation harness: real `hearth serve` processes on loopback, each with a real store (sled
//! in a temporary directory, or with `HEARTH_TEST_STORE=postgres` a PostgreSQL database of its own:
//! see [`pg`]), HTTPS with certificates from one CA per federation, and typed clients.
//! Tests read as the scenario they check: `let fed = Federation::start(&["aaaaa"]).await;`.
//! A cluster may also run as several replicas on one database behind a round-robin proxy
//! ([`Planned::replicate`], PostgreSQL only).

pub mod pg;
pub mod proxy;

use hearth::cli::demo::{PlannedCluster, free_port_on, plan_federation_with_ca};
use hearth::client::Client;
use hearth::store::Store;
use hearth::tls::LocalCa;
pub use pg::{Backend, backend};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    /// Where its store is.
    pub store: StoreAt,
    /// A value that never has a process of its own (a replicated cluster's public face, or a
    /// [`Cluster::handle`]): starting it would start a second daemon on another's config.
    processless: bool,
    /// The process (none for the public face of a replicated cluster, whose processes are its
    /// replicas'). Behind a lock so that [`Cluster::wait_up`] can see it exit.
    child: Mutex<Option<Child>>,
}

/// Where a daemon keeps its store.
#[derive(Debug, Clone)]
pub enum StoreAt {
    /// sled, in this directory (`<data_dir>/store`).
    Sled(PathBuf),
    /// PostgreSQL: database `db` at `url` (the daemon's `store.url`).
    Postgres {
        /// The daemon's `store.url`.
        url: String,
        /// The database's name.
        db: String,
    },
}

impl StoreAt {
    /// Opens the store the daemon used (on sled the daemon must be stopped: sled locks its
    /// directory).
    pub fn open(&self) -> Store {
        match self {
            StoreAt::Sled(dir) => Store::open(dir).expect("open the store"),
            StoreAt::Postgres { url, .. } => {
                let opts = hearth::store::StoreOptions {
                    postgres: Some(hearth::store::PostgresOptions { url: url.clone(), pool_size: 2 }),
                    ..Default::default()
                };
                Store::open_with(std::path::Path::new("/nonexistent"), opts).expect("open the database")
            }
        }
    }

    /// [`StoreAt::open`] right after a store of the same place was dropped (sled's lock is released
    /// by a thread of its own: see `hearth::store::open_after_drop`).
    pub fn open_after_drop(&self) -> Store {
        match self {
            StoreAt::Sled(dir) => hearth::store::open_after_drop(dir).expect("open the store"),
            StoreAt::Postgres { .. } => self.open(),
        }
    }

    /// Everything the store keeps at rest, as bytes to search: sled's files, or a data-only dump
    /// of the database (where binary columns appear hex-encoded: search for both forms).
    pub fn bytes_at_rest(&self) -> Vec<u8> {
        match self {
            StoreAt::Sled(dir) => {
                let mut out = Vec::new();
                for f in walk(dir) {
                    out.extend(std::fs::read(f).unwrap_or_default());
                }
                out
            }
            StoreAt::Postgres { db, .. } => pg::server().dump(db),
        }
    }
}

/// A copy of a stopped daemon's store, to put back later ([`StoreAt::snapshot`]).
#[derive(Debug)]
pub enum Snapshot {
    /// sled: a copy of the store's directory.
    Sled(PathBuf),
    /// PostgreSQL: a database made with the daemon's as its template; dropped with this value.
    Postgres(String),
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        if let Snapshot::Postgres(db) = self {
            pg::server().drop_database(db);
        }
    }
}

impl StoreAt {
    /// Copies the store (its daemon stopped): on sled to `scratch` (a path that does not exist
    /// yet), on PostgreSQL to a new database.
    pub fn snapshot(&self, scratch: &Path) -> Snapshot {
        match self {
            StoreAt::Sled(dir) => {
                copy_dir(dir, scratch);
                Snapshot::Sled(scratch.to_path_buf())
            }
            StoreAt::Postgres { db, .. } => Snapshot::Postgres(pg::server().copy_database(db)),
        }
    }

    /// Puts `snapshot` back in place of the store (its daemon stopped).
    pub fn restore(&self, snapshot: &Snapshot) {
        match (self, snapshot) {
            (StoreAt::Sled(dir), Snapshot::Sled(copy)) => {
                if dir.exists() {
                    std::fs::remove_dir_all(dir).expect("remove the store");
                }
                copy_dir(copy, dir);
            }
            (StoreAt::Postgres { db, .. }, Snapshot::Postgres(copy)) => pg::server().replace_database(db, copy),
            (store, snapshot) => panic!("{snapshot:?} is not a snapshot of a store like {store:?}"),
        }
    }
}

/// Copies directory `from` to `to` (made), recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("make dir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("dir entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).expect("copy file");
        }
    }
}

/// The files under `dir`, recursively.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
        }
    }
    out
}

/// Whether a test that needs `backend` skips because the suite runs on another; when it does, it
/// says so on stderr past the test runner's capture, so that the run's log shows each skip.
pub fn skips_unless(needed: Backend, test: &str, why: &str) -> bool {
    if backend() == needed {
        return false;
    }
    let (needed, running) = (needed.name(), backend().name());
    let _ = writeln!(std::io::stderr(), "SKIP {test}: runs on {needed} only ({why}); HEARTH_TEST_STORE={running}");
    true
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
        assert!(
            !self.processless,
            "this value of {} has no process of its own (a replicated cluster's face, or a handle): \
             start, kill or restart the daemon itself, e.g. one of fed.replicas_mut(\"{}\").members",
            self.id, self.id
        );
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
        *self.child.get_mut().unwrap_or_else(|p| p.into_inner()) = Some(child);
    }

    /// Waits for `/healthz` (60 s at most); fails at once, with the log, if the process exits.
    pub async fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.anon.get("/healthz").await
                && r.status.is_success()
            {
                return;
            }
            let exited =
                self.child.lock().unwrap_or_else(|p| p.into_inner()).as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(self.plan.dir.join("hearth.log")).unwrap_or_default();
                let what = exited.map_or("did not become healthy within 60 s".to_string(), |s| format!("exited ({s})"));
                panic!("{} at {} {what}\n--- log of {} ---\n{log}", self.id, self.url, self.id);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9`: no shutdown, no flush.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.get_mut().unwrap_or_else(|p| p.into_inner()).take()?;
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
        self.child
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|c| c.id())
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
    /// The clusters, in the order named (for a replicated one, its public face: see [`Replicas`]).
    pub clusters: Vec<Cluster>,
    /// Root of all their files.
    pub dir: tempfile::TempDir,
    /// The replicated clusters' replicas and proxies.
    pub replicas: Vec<Replicas>,
    /// The PostgreSQL databases of the federation's daemons, dropped with it.
    databases: Vec<String>,
}

/// The replicas of one cluster: the same cluster id, signing key, root token and database, each
/// with a data dir and listen port of its own, behind one round-robin proxy whose address is the
/// cluster's `public_url` and the URL its peers know. The [`Cluster`] of that id in
/// [`Federation::clusters`] is their public face: its clients go through the proxy and it has no
/// process of its own (kill or restart a replica instead).
pub struct Replicas {
    /// Cluster id.
    pub id: String,
    /// The replicas, each reached directly at its own URL.
    pub members: Vec<Cluster>,
    /// The proxy in front of them.
    pub proxy: proxy::RoundRobin,
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
    /// Clusters to run as several replicas: (id, how many).
    replicated: Vec<(String, usize)>,
    /// Clusters kept on sled whatever `HEARTH_TEST_STORE` says ([`Planned::on_sled`]).
    on_sled: Vec<String>,
}

impl Planned {
    /// The plan of cluster `id`.
    pub fn at(&self, id: &str) -> &PlannedCluster {
        self.plan.iter().find(|c| c.id == id).expect("no such cluster")
    }

    /// Appends `toml` to cluster `id`'s config.
    pub fn append_toml(&self, id: &str, toml: &str) {
        let mut f = std::fs::OpenOptions::new().append(true).open(&self.at(id).config).expect("config");
        writeln!(f, "\n{toml}").expect("write config");
    }

    /// Runs cluster `id` as `n` replicas sharing one database (see [`Replicas`]); PostgreSQL only.
    pub fn replicate(&mut self, id: &str, n: usize) {
        assert!(n >= 1, "at least one replica");
        assert_eq!(backend(), Backend::Postgres, "replicas share one database: run with HEARTH_TEST_STORE=postgres");
        let _ = self.at(id);
        self.replicated.push((id.to_string(), n));
    }

    /// Keeps cluster `id` on sled on either backend (a test that moves a sled store elsewhere).
    pub fn on_sled(&mut self, id: &str) {
        let _ = self.at(id);
        self.on_sled.push(id.to_string());
    }

    /// Starts every cluster and waits until each answers.
    pub async fn start(self) -> Federation {
        let Planned { plan, ca: _, ca_path, dir, replicated, on_sled } = self;
        let ca_pem = std::fs::read(&ca_path).expect("ca");
        // A replicated cluster's public URL is its proxy's: bind the proxy's listener first, on the
        // cluster's own loopback address (which its certificate names), and point every config at it.
        let mut listeners = Vec::new();
        for (id, _) in &replicated {
            let p = plan.iter().find(|c| &c.id == id).expect("no such cluster");
            let listener = std::net::TcpListener::bind((p.ip.as_str(), 0)).expect("proxy listener");
            let public = format!("https://{}:{}", p.ip, listener.local_addr().expect("proxy address").port());
            for c in &plan {
                edit_config(&c.config, |t| t.replace(&format!("\"{}\"", p.url()), &format!("\"{public}\"")));
            }
            listeners.push(listener);
        }
        // Every daemon's store; the replicas of a cluster share its database (their configs are
        // copies of its config, made after this).
        let mut databases = Vec::new();
        let stores: Vec<StoreAt> = plan
            .iter()
            .map(|p| {
                if on_sled.contains(&p.id) { StoreAt::Sled(p.dir.join("store")) } else { store_for(p, &mut databases) }
            })
            .collect();
        let mut clusters = Vec::new();
        let mut replicas = Vec::new();
        for (p, store) in plan.into_iter().zip(stores) {
            let Some(at) = replicated.iter().position(|(id, _)| *id == p.id) else {
                let mut c = Cluster::new(p, store, &ca_pem, &ca_path);
                c.spawn();
                clusters.push(c);
                continue;
            };
            let n = replicated[at].1;
            let listener = listeners[at].try_clone().expect("proxy listener");
            let public_port = listener.local_addr().expect("proxy address").port();
            let face = copy_plan(&p, public_port, p.dir.clone(), p.config.clone());
            let mut members = Vec::new();
            for k in 1..n {
                members.push(plan_replica(&p, k));
            }
            members.insert(0, p);
            let backends: Vec<std::net::SocketAddr> =
                members.iter().map(|m| format!("{}:{}", m.ip, m.port).parse().expect("replica address")).collect();
            let mut members: Vec<Cluster> =
                members.into_iter().map(|m| Cluster::new(m, store.clone(), &ca_pem, &ca_path)).collect();
            for m in &mut members {
                m.spawn();
            }
            let mut face = Cluster::new(face, store, &ca_pem, &ca_path);
            face.processless = true;
            clusters.push(face);
            replicas.push(Replicas {
                id: replicated[at].0.clone(),
                members,
                proxy: proxy::RoundRobin::start(listener, backends),
            });
        }
        let fed = Federation { clusters, dir, replicas, databases };
        for r in &fed.replicas {
            for m in &r.members {
                m.wait_up().await;
            }
        }
        for c in &fed.clusters {
            c.wait_up().await;
        }
        fed
    }
}

impl Cluster {
    /// Another value for the same daemon, without its process: its URL and clients, for a spawned
    /// task to own (dropping it stops nothing).
    pub fn handle(&self) -> Cluster {
        let p = &self.plan;
        let mut c = Cluster::new(
            copy_plan(p, p.port, p.dir.clone(), p.config.clone()),
            self.store.clone(),
            &self.ca_pem,
            &self.ca_path,
        );
        c.url = self.url.clone();
        c.anon = self.anon.clone();
        c.root = self.root.clone();
        c.processless = true;
        c
    }

    /// The cluster of plan `p` (not started).
    fn new(p: PlannedCluster, store: StoreAt, ca_pem: &[u8], ca_path: &Path) -> Cluster {
        let url = p.url();
        let anon = Client::new(&url, Some(ca_pem)).expect("client");
        Cluster {
            id: p.id.clone(),
            root: anon.with_token(&p.root_token),
            anon,
            url,
            ca_pem: ca_pem.to_vec(),
            ca_path: ca_path.to_path_buf(),
            plan: p,
            store,
            processless: false,
            child: Mutex::new(None),
        }
    }
}

/// Rewrites the config file at `path` through `f`.
fn edit_config(path: &Path, f: impl FnOnce(&str) -> String) {
    let text = std::fs::read_to_string(path).expect("read config");
    std::fs::write(path, f(&text)).expect("write config");
}

/// The store of the daemon of plan `p`: sled in its data dir, or on PostgreSQL a new database of
/// its own, whose `backend` and `url` are merged into the config's `[store]` table (keys the
/// config already sets there are left as they are).
fn store_for(p: &PlannedCluster, databases: &mut Vec<String>) -> StoreAt {
    match backend() {
        Backend::Sled => StoreAt::Sled(p.dir.join("store")),
        Backend::Postgres => {
            let server = pg::server();
            let db = server.create_database(&p.id);
            databases.push(db.clone());
            let url = server.url_of(&db);
            let keys = [("backend", "\"postgres\"".to_string()), ("url", format!("\"{url}\""))];
            edit_config(&p.config, |t| merge_table_keys(t, "store", &keys));
            StoreAt::Postgres { url, db }
        }
    }
}

/// `text` (TOML) with `keys` in table `[table]`: added to the table where the file has it (a file
/// with two `[store]` headers is not TOML), except keys it sets already; else a new table at the end.
pub fn merge_table_keys(text: &str, table: &str, keys: &[(&str, String)]) -> String {
    let header = format!("[{table}]");
    let is_header = |l: &str| {
        let t = l.trim();
        t.strip_prefix(header.as_str()).is_some_and(|rest| rest.trim().is_empty() || rest.trim_start().starts_with('#'))
    };
    let lines: Vec<&str> = text.lines().collect();
    let Some(at) = lines.iter().position(|l| is_header(l)) else {
        let mut out = format!("{}\n\n{header}\n", text.trim_end());
        for (k, v) in keys {
            out.push_str(&format!("{k} = {v}\n"));
        }
        return out;
    };
    let end = lines[at + 1..].iter().position(|l| l.trim_start().starts_with('[')).map_or(lines.len(), |e| at + 1 + e);
    let sets = |k: &str| {
        lines[at + 1..end]
            .iter()
            .any(|l| l.trim_start().strip_prefix(k).is_some_and(|r| r.trim_start().starts_with('=')))
    };
    let mut out: Vec<String> = lines[..=at].iter().map(|l| l.to_string()).collect();
    out.extend(keys.iter().filter(|(k, _)| !sets(k)).map(|(k, v)| format!("{k} = {v}")));
    out.extend(lines[at + 1..].iter().map(|l| l.to_string()));
    out.join("\n") + "\n"
}

/// A copy of plan `p` with another port, data dir and config.
fn copy_plan(p: &PlannedCluster, port: u16, dir: PathBuf, config: PathBuf) -> PlannedCluster {
    PlannedCluster {
        id: p.id.clone(),
        ip: p.ip.clone(),
        port,
        dir,
        config,
        root_token: p.root_token.clone(),
        public_key: p.public_key.clone(),
    }
}

/// Replica `k` (≥ 1) of the cluster of plan `p`: a data dir of its own (`<id>-replica<k>`, next to
/// the cluster's) with copies of its TLS certificate and key and its signing key, a port of its
/// own, and a copy of its config (store included) pointing at those.
fn plan_replica(p: &PlannedCluster, k: usize) -> PlannedCluster {
    let dir = p.dir.with_file_name(format!("{}-replica{k}", p.id));
    std::fs::create_dir_all(dir.join("tls")).expect("replica dir");
    for f in ["tls/cert.pem", "tls/key.pem", "signing.key"] {
        std::fs::copy(p.dir.join(f), dir.join(f)).unwrap_or_else(|e| panic!("copying {f} for a replica: {e}"));
    }
    let port = free_port_on(&p.ip).expect("free port");
    let config = dir.join("hearth.toml");
    let text = std::fs::read_to_string(&p.config).expect("read config");
    let listen = format!("listen = \"{}:{}\"", p.ip, p.port);
    assert!(text.contains(&listen), "{} has no {listen}", p.config.display());
    let text = text
        .replace(&listen, &format!("listen = \"{}:{port}\"", p.ip))
        .replace(&format!("\"{}", p.dir.display()), &format!("\"{}", dir.display()));
    std::fs::write(&config, text).expect("write replica config");
    copy_plan(p, port, dir, config)
}

impl Drop for Federation {
    fn drop(&mut self) {
        for c in &mut self.clusters {
            c.kill9();
        }
        for r in &mut self.replicas {
            for m in &mut r.members {
                m.kill9();
            }
        }
        for db in &self.databases {
            pg::server().drop_database(db);
        }
    }
}

impl Federation {
    /// Plans one daemon per id (`extra_toml` is appended to every config) without starting them.
    pub fn plan(ids: &[&str], extra_toml: &str) -> Planned {
        hearth::install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let (plan, ca_path, ca) = plan_federation_with_ca(dir.path(), ids, extra_toml).expect("plan");
        Planned { plan, ca, ca_path, dir, replicated: Vec::new(), on_sled: Vec::new() }
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

    /// The replicas of cluster `id` (planned with [`Planned::replicate`]).
    pub fn replicas(&self, id: &str) -> &Replicas {
        self.replicas.iter().find(|r| r.id == id).expect("no replicas of such a cluster")
    }

    /// The same, mutably (to kill or restart one).
    pub fn replicas_mut(&mut self, id: &str) -> &mut Replicas {
        self.replicas.iter_mut().find(|r| r.id == id).expect("no replicas of such a cluster")
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

#[test]
fn store_keys_merge_into_the_store_table_a_config_has_or_into_a_new_one() {
    let keys = [("backend", "\"postgres\"".to_string()), ("url", "\"postgresql://h/db\"".to_string())];
    let none = "[cluster]\nid = \"zzzzz\"\n";
    assert_eq!(
        merge_table_keys(none, "store", &keys),
        "[cluster]\nid = \"zzzzz\"\n\n[store]\nbackend = \"postgres\"\nurl = \"postgresql://h/db\"\n"
    );
    let has = "[store] # the cache\ncache_mib = 64\nurl = \"mine\"\n\n[login]\nmax_failures = 3\n";
    assert_eq!(
        merge_table_keys(has, "store", &keys),
        "[store] # the cache\nbackend = \"postgres\"\ncache_mib = 64\nurl = \"mine\"\n\n[login]\nmax_failures = 3\n"
    );
    // A table whose name only starts the same is another table.
    let other = "[storehouse]\nx = 1\n";
    assert!(
        merge_table_keys(other, "store", &keys)
            .ends_with("[storehouse]\nx = 1\n\n[store]\nbackend = \"postgres\"\nurl = \"postgresql://h/db\"\n")
    );
}

/// A replica's config is its cluster's with its own port and data dir (certificate, key and
/// signing key copied there), and everything else, store included, the same.
#[test]
fn a_replica_plan_has_its_own_port_and_data_dir_and_the_rest_of_its_clusters_config() {
    let planned = Federation::plan(&["aaaaa", "bbbbb"], "[store]\ncache_mib = 16\n");
    let p = planned.at("aaaaa");
    let r = plan_replica(p, 1);
    assert_eq!(
        (r.id.as_str(), r.ip.as_str(), r.root_token.as_str()),
        (p.id.as_str(), p.ip.as_str(), p.root_token.as_str())
    );
    assert_ne!(r.port, p.port);
    assert_eq!(r.dir, planned.dir.path().join("aaaaa-replica1"));
    for f in ["tls/cert.pem", "tls/key.pem", "signing.key"] {
        assert_eq!(std::fs::read(r.dir.join(f)).unwrap(), std::fs::read(p.dir.join(f)).unwrap(), "{f}");
    }
    let (original, copy) = (std::fs::read_to_string(&p.config).unwrap(), std::fs::read_to_string(&r.config).unwrap());
    assert_eq!(
        copy,
        original
            .replace(&format!("listen = \"{}:{}\"", p.ip, p.port), &format!("listen = \"{}:{}\"", r.ip, r.port))
            .replace(&format!("\"{}", p.dir.display()), &format!("\"{}", r.dir.display()))
    );
    assert!(copy.contains(&format!("public_url = \"{}\"", p.url())), "the same public URL: {copy}");
    assert!(copy.contains(&format!("data_dir = \"{}\"", r.dir.display())), "{copy}");
    assert!(copy.contains("[store]\ncache_mib = 16"), "{copy}");
}

/// The proxy alternates new connections between its backends (two real daemons here, whose
/// certificates both name 127.0.0.1), skips one that is down, and passes the client's address on.
#[tokio::test]
async fn the_proxy_alternates_connections_and_skips_a_backend_that_is_down() {
    let mut fed = Federation::start(&["aaaaa", "bbbbb"]).await;
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let backends = fed.clusters.iter().map(|c| format!("{}:{}", c.plan.ip, c.plan.port).parse().unwrap()).collect();
    let proxy = proxy::RoundRobin::start(listener, backends);
    let front = {
        let mut c = fed.at("aaaaa").handle();
        c.url = format!("https://127.0.0.1:{}", proxy.addr.port());
        c
    };
    let cluster_id = |front: &Cluster| {
        let (http, url) = (front.http_from("127.0.0.77"), format!("{}/arvados/v1/config", front.url));
        async move {
            let v: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            v["ClusterID"].as_str().unwrap().to_string()
        }
    };
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(cluster_id(&front).await);
    }
    assert_eq!(seen, ["aaaaa", "bbbbb", "aaaaa", "bbbbb"]);
    assert_eq!((proxy.connections_to(0), proxy.connections_to(1)), (2, 2));
    fed.at_mut("bbbbb").kill9();
    for _ in 0..3 {
        assert_eq!(cluster_id(&front).await, "aaaaa");
    }
    assert_eq!((proxy.connections_to(0), proxy.connections_to(1)), (5, 2));
}

/// On PostgreSQL every daemon gets a database of its own, named in its config's `[store]` table,
/// and the federation drops them when it goes.
#[tokio::test]
async fn on_postgres_each_daemon_has_a_database_of_its_own_dropped_with_its_federation() {
    if skips_unless(Backend::Postgres, "on_postgres_each_daemon_has_a_database_of_its_own", "databases") {
        return;
    }
    let planned = Federation::plan(&["aaaaa", "bbbbb"], "[store]\ncache_mib = 16\n");
    let mut databases = Vec::new();
    let stores: Vec<StoreAt> = planned.plan.iter().map(|p| store_for(p, &mut databases)).collect();
    assert_eq!(databases.len(), 2);
    assert_ne!(databases[0], databases[1]);
    let listed =
        |db: &str| pg::server().sql(&format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'")).unwrap();
    for (p, store) in planned.plan.iter().zip(&stores) {
        let StoreAt::Postgres { url, db } = store else { panic!("{store:?}") };
        assert_eq!(listed(db).trim(), "1");
        assert_eq!(pg::server().sql_in(url, "SELECT current_database()").unwrap().trim(), db);
        let config = std::fs::read_to_string(&p.config).unwrap();
        assert!(
            config.contains(&format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\ncache_mib = 16\n")),
            "{config}"
        );
        assert_eq!(config.matches("[store]").count(), 1, "{config}");
    }
    let fed = Federation { clusters: Vec::new(), dir: planned.dir, replicas: Vec::new(), databases };
    drop(fed);
    for store in &stores {
        let StoreAt::Postgres { db, .. } = store else { unreachable!() };
        assert_eq!(listed(db).trim(), "0");
    }
}

/// A snapshot puts a store back as it was when taken, on either backend (the crash test's trials
/// each start from one).
#[test]
fn a_snapshot_puts_a_store_back_as_it_was() {
    let planned = Federation::plan(&["aaaaa"], "");
    let mut databases = Vec::new();
    let at = store_for(&planned.plan[0], &mut databases);
    // One row, in a file or in a table: written when `value` is given, read back.
    let row = |value: Option<&str>| -> String {
        match &at {
            StoreAt::Sled(dir) => {
                std::fs::create_dir_all(dir).unwrap();
                if let Some(v) = value {
                    std::fs::write(dir.join("row"), v).unwrap();
                }
                std::fs::read_to_string(dir.join("row")).unwrap()
            }
            StoreAt::Postgres { url, .. } => {
                let server = pg::server();
                server.sql_in(url, "CREATE TABLE IF NOT EXISTS t (v text)").unwrap();
                if let Some(v) = value {
                    server.sql_in(url, &format!("DELETE FROM t; INSERT INTO t VALUES ('{v}')")).unwrap();
                }
                server.sql_in(url, "SELECT v FROM t").unwrap().trim().to_string()
            }
        }
    };
    let write = |v: &str| assert_eq!(row(Some(v)), v);
    let read = || row(None);
    write("seeded");
    let snapshot = at.snapshot(&planned.dir.path().join("pristine"));
    write("changed");
    assert_eq!(read(), "changed");
    at.restore(&snapshot);
    assert_eq!(read(), "seeded");
    write("again");
    at.restore(&snapshot);
    assert_eq!(read(), "seeded");
    drop(snapshot);
    let fed = Federation { clusters: Vec::new(), dir: planned.dir, replicas: Vec::new(), databases };
    drop(fed);
}
