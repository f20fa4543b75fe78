//! `hearth demo`: three clusters (aaaaa, bbbbb, ccccc) as real `hearth serve` processes on
//! loopback, with one CA signing each cluster's certificate, pinned peer keys, an admin and a demo
//! user at each. Prints the URLs and tokens and keeps running until Ctrl-C (or stops at once with
//! `--once`, after checking that every cluster answers).

use crate::client::Client;
use crate::tls::LocalCa;
use anyhow::Context;
use serde_json::json;
use std::path::{Path, PathBuf};
use tokio::process::{Child, Command};

/// The demo's clusters.
pub const CLUSTERS: [&str; 3] = ["aaaaa", "bbbbb", "ccccc"];

/// A free port on loopback address `ip` (bound, read, released).
pub fn free_port_on(ip: &str) -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind((ip, 0))?.local_addr()?.port())
}

/// A free port on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    free_port_on("127.0.0.1")
}

/// One planned cluster of a local federation.
pub struct PlannedCluster {
    /// Cluster id.
    pub id: String,
    /// Loopback address: each cluster gets its own (127.0.0.1, 127.0.0.2, …), because browsers keep
    /// cookies per host, not per port, and clusters sharing a host would share their sessions.
    pub ip: String,
    /// Port.
    pub port: u16,
    /// Data dir.
    pub dir: PathBuf,
    /// Config file.
    pub config: PathBuf,
    /// System root token.
    pub root_token: String,
    /// Public key text.
    pub public_key: String,
}

impl PlannedCluster {
    /// `https://<ip>:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}:{}", self.ip, self.port)
    }
}

/// Writes configs, certificates and keys for a federation of `ids` under `root`: every cluster
/// lists every other as a peer. Returns the plan and the CA certificate path.
pub fn plan_federation(root: &Path, ids: &[&str], extra_toml: &str) -> anyhow::Result<(Vec<PlannedCluster>, PathBuf)> {
    let (plan, ca_path, _) = plan_federation_with_ca(root, ids, extra_toml)?;
    Ok((plan, ca_path))
}

/// [`plan_federation`], also returning the CA itself (to issue certificates for other test
/// servers of the federation, such as an OpenID provider).
pub fn plan_federation_with_ca(
    root: &Path,
    ids: &[&str],
    extra_toml: &str,
) -> anyhow::Result<(Vec<PlannedCluster>, PathBuf, LocalCa)> {
    let ca = LocalCa::new("Hearth demo federation CA")?;
    let ca_path = root.join("ca.pem");
    std::fs::create_dir_all(root)?;
    std::fs::write(&ca_path, ca.cert_pem())?;
    let mut plan = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let dir = root.join(id);
        let ip = format!("127.0.0.{}", (i % 250) + 1);
        let (_, cert, key) = ca.write_leaf(&dir.join("tls"), &[ip.as_str(), "127.0.0.1", "localhost"])?;
        let signing = crate::federation::signing_key::generate();
        crate::federation::signing_key::write(&dir.join("signing.key"), &signing)?;
        let _ = (cert, key);
        plan.push(PlannedCluster {
            id: id.to_string(),
            port: free_port_on(&ip)?,
            ip,
            config: dir.join("hearth.toml"),
            root_token: crate::accounts::random_secret(),
            public_key: signing.public().to_string(),
            dir,
        });
    }
    for c in &plan {
        let mut peers = String::new();
        for p in plan.iter().filter(|p| p.id != c.id) {
            peers.push_str(&format!(
                "\n[[federation.peers]]\nid = \"{}\"\nurl = \"{}\"\npublic_key = \"{}\"\nca_cert = \"{}\"\n",
                p.id,
                p.url(),
                p.public_key,
                ca_path.display()
            ));
        }
        let toml = format!(
            "[cluster]\nid = \"{id}\"\nlisten = \"{ip}:{port}\"\npublic_url = \"{url}\"\ndata_dir = \"{dir}\"\nsystem_root_token = \"{root}\"\n\n\
             [tls]\ncert = \"{dir}/tls/cert.pem\"\nkey = \"{dir}/tls/key.pem\"\n\n[federation]\nsigning_key = \"{dir}/signing.key\"\n{peers}\n{extra_toml}\n",
            id = c.id,
            ip = c.ip,
            port = c.port,
            url = c.url(),
            dir = c.dir.display(),
            root = c.root_token,
        );
        std::fs::write(&c.config, toml)?;
    }
    Ok((plan, ca_path, ca))
}

/// Starts `hearth serve` for a planned cluster (the current executable), logging to `<dir>/hearth.log`.
pub fn spawn_cluster(c: &PlannedCluster) -> anyhow::Result<Child> {
    let exe = std::env::current_exe()?;
    let log = std::fs::File::create(c.dir.join("hearth.log"))?;
    let child = Command::new(exe)
        .arg("serve")
        .arg("--config")
        .arg(&c.config)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting hearth serve")?;
    Ok(child)
}

/// Runs the demo.
pub async fn demo(dir: Option<PathBuf>, once: bool) -> anyhow::Result<()> {
    let tmp;
    let root = match dir {
        Some(d) => d,
        None => {
            tmp = tempfile_dir()?;
            tmp.clone()
        }
    };
    outln!("Hearth demo: three clusters under {}", root.display());
    let mut facts = serde_json::Map::new();
    let (plan, ca_path, ca) = plan_federation_with_ca(&root, &CLUSTERS, "")?;
    let ca_pem = std::fs::read(&ca_path)?;
    let mut children = Vec::new();
    let provider = match plan.first() {
        Some(first) => demo_provider(&root, &ca, &ca_path, first).await,
        None => Err("no cluster".into()),
    };
    match &provider {
        Ok((child, issuer)) => {
            outln!(
                "OpenID Connect: a test provider (tests/oidc-provider) at {issuer} for cluster {}; log in there as ada or grace, any password",
                CLUSTERS[0]
            );
            let _ = child;
        }
        Err(why) => outln!("OpenID Connect: skipped ({why})"),
    }
    for c in &plan {
        children.push(spawn_cluster(c)?);
    }
    for c in &plan {
        let client = Client::new(&c.url(), Some(&ca_pem))?.with_token(&c.root_token);
        client
            .wait_healthy(30)
            .await
            .with_context(|| format!("cluster {} did not start; see {}/hearth.log", c.id, c.dir.display()))?;
        let admin = client
            .create_user(json!({"username": "admin", "email": format!("admin@{}.example", c.id), "email_verified": true, "is_admin": true, "first_name": "Admin"}), Some("admin-password"))
            .await?;
        let demo = client
            .create_user(json!({"username": "demo", "email": "demo@example.org", "email_verified": true, "first_name": "Demo", "last_name": "User"}), Some("demo-password"))
            .await?;
        let (token, _) = Client::new(&c.url(), Some(&ca_pem))?.login("demo", "demo-password", None).await?;
        outln!("\ncluster {}  {}", c.id, c.url());
        outln!("  login page   {}/login", c.url());
        outln!("  log          {}", c.dir.join("hearth.log").display());
        facts.insert(
            c.id.clone(),
            json!({"url": c.url(), "root_token": c.root_token, "demo_token": token, "demo_password": "demo-password",
                   "admin_password": "admin-password", "admin_uuid": admin["uuid"], "demo_uuid": demo["uuid"],
                   "log": c.dir.join("hearth.log"), "config": c.config}),
        );
        outln!("  admin  {}  login admin / admin-password", admin["uuid"].as_str().unwrap_or(""));
        outln!("  demo   {}  login demo / demo-password", demo["uuid"].as_str().unwrap_or(""));
        let ready = client.get("/readyz").await?;
        if let Some(oidc) = ready.body["oidc"].as_object().filter(|o| !o.is_empty()) {
            for (id, status) in oidc {
                outln!(
                    "  OpenID Connect provider {id}: {}  (the login page has its button)",
                    status.as_str().unwrap_or("")
                );
            }
        }
        outln!("  demo user's API token: {token}");
        outln!("  system root token:     {}", c.root_token);
        outln!(
            "  try: curl --cacert {} -H 'Authorization: Bearer {token}' {}/arvados/v1/users/current",
            ca_path.display(),
            c.url()
        );
        let me =
            Client::new(&c.url(), Some(&ca_pem))?.with_token(&token).get("/arvados/v1/users/current").await?.ok()?;
        outln!(
            "  users/current answers: {} ({})",
            me["uuid"].as_str().unwrap_or(""),
            me["username"].as_str().unwrap_or("")
        );
    }
    federation_story(&plan, &ca_pem).await?;
    migration_story(&plan, &ca_pem).await?;
    let facts_path = root.join("demo.json");
    let mut all = json!({"ca_cert": ca_path, "clusters": facts, "dir": root});
    all["python"] =
        json!("the Arvados SDK: ARVADOS_API_HOST=<host:port> ARVADOS_API_TOKEN=<token> REQUESTS_CA_BUNDLE=<ca_cert>");
    std::fs::write(&facts_path, serde_json::to_vec_pretty(&all)?)?;
    outln!(
        "\nCA certificate: {}\nEverything the examples need (URLs, CA, tokens): {}\nEach cluster has its own loopback address, so browser sessions stay apart.",
        ca_path.display(),
        facts_path.display()
    );
    if once {
        outln!("demo ok: three clusters answered; stopping (--once)");
    } else {
        outln!("Running; Ctrl-C (or SIGTERM) stops the clusters.");
        wait_for_stop().await;
    }
    for mut ch in children {
        let _ = ch.start_kill();
        let _ = ch.wait().await;
    }
    if let Ok((mut ch, _)) = provider {
        let _ = ch.start_kill();
        let _ = ch.wait().await;
    }
    outln!("Stopped. The clusters' data, configs and logs are left in {}", root.display());
    Ok(())
}

/// Ctrl-C or SIGTERM, whichever comes first.
async fn wait_for_stop() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The migration part of the demo: Sam made an account at bbbbb although his home is aaaaa (the
/// same verified email); bbbbb finds the match, and the signed exchange merges the stray account
/// into the home one.
async fn migration_story(plan: &[PlannedCluster], ca_pem: &[u8]) -> anyhow::Result<()> {
    let (Some(home), Some(stray)) = (plan.first(), plan.get(1)) else { return Ok(()) };
    outln!("\n== migration: a stray account at {} moves into its home at {} ==", stray.id, home.id);
    let at_home = Client::new(&home.url(), Some(ca_pem))?;
    let at_stray = Client::new(&stray.url(), Some(ca_pem))?;
    let attrs =
        |_: &str| json!({"username": "sam", "email": "sam@example.org", "email_verified": true, "first_name": "Sam"});
    at_home.with_token(&home.root_token).create_user(attrs(&home.id), Some("sam-home-password")).await?;
    at_stray.with_token(&stray.root_token).create_user(attrs(&stray.id), Some("sam-stray-password")).await?;
    let (stray_token, stray_user) = at_stray.login("sam", "sam-stray-password", None).await?;
    let sam = at_stray.with_token(&stray_token);
    sam.post("/arvados/v1/collections", &json!({"collection": {"name": "sam's results"}})).await?.ok()?;
    outln!("  sam has an account at {} ({}) with a collection", stray.id, stray_user["uuid"].as_str().unwrap_or(""));
    // The home's login notice tells the stray cluster where sam's verified email lives.
    let (_, home_user) = at_home.login("sam", "sam-home-password", None).await?;
    let home_uuid = home_user["uuid"].as_str().unwrap_or("").to_string();
    let started = std::time::Instant::now();
    let candidate = loop {
        let c = sam.get("/hearth/v1/migration_candidates").await?.ok()?;
        if let Some(item) = c["items"].as_array().and_then(|a| a.first()).cloned() {
            break item;
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            anyhow::bail!("{} never offered sam a migration", stray.id);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    outln!(
        "  {}'s account page now offers: move into {} at {} (same verified email)",
        stray.id,
        candidate["user_uuid"].as_str().unwrap_or(""),
        candidate["cluster_id"].as_str().unwrap_or("")
    );
    let m = sam.post("/hearth/v1/migrations", &json!({"target_cluster": home.id})).await?.ok()?;
    let grant = at_home
        .post(
            "/hearth/v1/login",
            &json!({"login": "sam", "password": "sam-home-password", "remote": stray.id, "migration_request": m["request"]}),
        )
        .await?
        .ok()?;
    outln!("  sam logs in at {} for {}: a token salted for {} and a signed grant", home.id, stray.id, stray.id);
    let done = sam
        .post(
            &format!("/hearth/v1/migrations/{}/confirm", m["uuid"].as_str().unwrap_or("")),
            &json!({"grant": grant["migration_grant"]}),
        )
        .await?
        .ok()?;
    outln!(
        "  confirmed at {}: {} now redirects to {} (home {}); its objects are in project {}",
        stray.id,
        done["old_user"]["uuid"].as_str().unwrap_or(""),
        home_uuid,
        home.id,
        done["new_owner_uuid"].as_str().unwrap_or("")
    );
    Ok(())
}

/// Where the test provider lives in the source tree (the demo runs from it, through cargo).
fn provider_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("tests").join("oidc-provider")
}

/// Starts the tests' OpenID provider (Node, `tests/oidc-provider`) on 127.0.0.200 for `cluster`,
/// and adds it to that cluster's config as `[[login.oidc]] id = "demo"`. Says why not when Node
/// or the provider's `node_modules` is missing, or it does not start.
async fn demo_provider(
    root: &Path,
    ca: &LocalCa,
    ca_path: &Path,
    cluster: &PlannedCluster,
) -> Result<(Child, String), String> {
    let src = provider_source();
    let node = Command::new("node").arg("--version").output().await;
    if !node.as_ref().is_ok_and(|o| o.status.success()) {
        return Err("node is not installed".into());
    }
    if !src.join("node_modules").join("oidc-provider").exists() {
        return Err(format!("{} has no node_modules: run `npm ci` there", src.display()));
    }
    let ip = "127.0.0.200";
    let port = free_port_on(ip).map_err(|e| e.to_string())?;
    let issuer = format!("https://{ip}:{port}");
    let dir = root.join("oidc-provider");
    let (_, cert, key) = ca.write_leaf(&dir.join("tls"), &[ip]).map_err(|e| e.to_string())?;
    let secret = crate::accounts::random_secret();
    let accounts = json!({
        "ada": {"sub": "0000-0002-1825-0097", "email": "ada@example.org", "email_verified": true, "name": "Ada Lovelace", "preferred_username": "ada"},
        "grace": {"sub": "grace-hopper", "email": "grace@example.org", "email_verified": false, "name": "Grace Hopper", "preferred_username": "grace"},
    });
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("accounts.json"), accounts.to_string()).map_err(|e| e.to_string())?;
    let clients = json!([{"client_id": "hearth-demo", "client_secret": secret,
        "redirect_uris": [format!("{}/login/oidc/demo/callback", cluster.url())]}]);
    let log = std::fs::File::create(dir.join("provider.log")).map_err(|e| e.to_string())?;
    let child = Command::new("node")
        .arg(src.join("server.js"))
        .env("OIDC_ISSUER", &issuer)
        .env("OIDC_CERT", &cert)
        .env("OIDC_KEY", &key)
        .env("OIDC_JWKS", dir.join("jwks.json"))
        .env("OIDC_CLIENTS", clients.to_string())
        .env("OIDC_ACCOUNTS", dir.join("accounts.json"))
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("node did not start: {e}"))?;
    let pem = std::fs::read(ca_path).map_err(|e| e.to_string())?;
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).map_err(|e| e.to_string())?])
        .build()
        .map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    loop {
        let r = http.get(format!("{issuer}/.well-known/openid-configuration")).send().await;
        if r.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            return Err(format!("the provider did not answer; see {}", dir.join("provider.log").display()));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let toml = format!(
        "\n[login]\n\n[[login.oidc]]\nid = \"demo\"\ndisplay_name = \"Demo ID (ORCID-like)\"\nissuer = \"{issuer}\"\n\
         client_id = \"hearth-demo\"\nclient_secret = \"{secret}\"\nca_cert = \"{}\"\norcid = true\ntrusted_email = true\n",
        ca_path.display()
    );
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(&cluster.config).map_err(|e| e.to_string())?;
    f.write_all(toml.as_bytes()).map_err(|e| e.to_string())?;
    Ok((child, issuer))
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir().join(format!("hearth-demo-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    Ok(base)
}

/// The federation part of the demo: a login at aaaaa reaches bbbbb and ccccc as a signed notice,
/// and aaaaa's token works at bbbbb after bbbbb validates it at aaaaa.
async fn federation_story(plan: &[PlannedCluster], ca_pem: &[u8]) -> anyhow::Result<()> {
    let (Some(home), others) = (plan.first(), plan.get(1..).unwrap_or_default()) else { return Ok(()) };
    outln!("\n== federation: a login at {} reaches its peers ==", home.id);
    let anon = Client::new(&home.url(), Some(ca_pem))?;
    let (token, user) = anon.login("demo", "demo-password", None).await?;
    let uuid = user["uuid"].as_str().unwrap_or("").to_string();
    outln!("demo logs in at {} as {uuid}", home.id);
    for peer in others {
        let admin = Client::new(&peer.url(), Some(ca_pem))?.with_token(&peer.root_token);
        let started = std::time::Instant::now();
        loop {
            let r = admin.get(&format!("/arvados/v1/users/{uuid}")).await?;
            if r.status.is_success() {
                outln!(
                    "  {} cached {} ({}, home {}) after {} ms",
                    peer.id,
                    uuid,
                    r.body["email"].as_str().unwrap_or(""),
                    r.body["home_cluster"].as_str().unwrap_or(""),
                    started.elapsed().as_millis()
                );
                break;
            }
            if started.elapsed() > std::time::Duration::from_secs(30) {
                anyhow::bail!("{} did not learn of the login within 30 s", peer.id);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    if let Some(peer) = others.first() {
        let me =
            Client::new(&peer.url(), Some(ca_pem))?.with_token(&token).get("/arvados/v1/users/current").await?.ok()?;
        outln!(
            "  {}'s token used at {}: users/current answers {} (validated at its home, then cached)",
            home.id,
            peer.id,
            me["uuid"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
