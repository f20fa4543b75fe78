//! What the benchmarks share: their knobs, the load figure they print, percentiles, and a
//! `hearth serve` process that is killed when dropped. Each benchmark uses part of it.
#![allow(dead_code)] // each bench binary compiles this module and uses only some of it

use hearth::cli::demo::{PlannedCluster, plan_federation};
use hearth::client::Client;
use std::process::{Child, Command, Stdio};

/// The integration suite's PostgreSQL server (`HEARTH_TEST_PG_URL`'s, or a private one started
/// on first use and stopped when the bench exits), for benches that run on both backends.
#[path = "../../../tests/it/harness/pg.rs"]
pub mod pg;

/// The store backends `HEARTH_BENCH_BACKENDS` names (`sled,postgres` unless set), in order.
/// PostgreSQL is left out, with the reason printed, when its server binaries are not found.
pub fn bench_backends() -> Vec<&'static str> {
    let wanted = std::env::var("HEARTH_BENCH_BACKENDS").unwrap_or_else(|_| "sled,postgres".into());
    let mut out = Vec::new();
    for b in wanted.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        match b {
            "sled" => out.push("sled"),
            "postgres" if std::env::var("HEARTH_TEST_PG_URL").is_ok() || pg::bindir().is_ok() => out.push("postgres"),
            "postgres" => {
                println!("postgres: left out (no PostgreSQL server binaries; HEARTH_TEST_PG_URL names a server)")
            }
            other => panic!("HEARTH_BENCH_BACKENDS: unknown backend {other:?} (sled, postgres)"),
        }
    }
    out
}

/// The release binary under measurement.
pub const HEARTH: &str = env!("CARGO_BIN_EXE_hearth");

/// A numeric knob from the environment, or `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The machine's load averages (1, 5, 15 minutes), printed beside figures.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `p` percentile of sorted microsecond samples, in milliseconds.
pub fn pct_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

/// A running `hearth serve`; killed (and reaped) when dropped.
pub struct Daemon {
    child: Child,
}

impl Daemon {
    /// Stops the process (and waits for it).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the daemon of `c`, logging to `hearth.log` in its directory, with `env` added.
    pub fn spawn(c: &PlannedCluster, env: &[(&str, &str)]) -> Daemon {
        let log = std::fs::File::create(c.dir.join("hearth.log")).expect("create hearth.log");
        let child = Command::new(HEARTH)
            .arg("serve")
            .arg("--config")
            .arg(&c.config)
            // `hearth serve` reads every HEARTH_* variable as a setting and refuses unknown ones:
            // the bench's own knobs must not reach it.
            .env_clear()
            .envs(std::env::vars().filter(|(k, _)| !k.starts_with("HEARTH_")))
            .env("RUST_LOG", "warn,hearth=info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn hearth serve");
        Daemon { child }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Points the planned cluster `c` at a fresh database on [`pg::server`] (its `[store]` section):
/// the database's name, for dropping once the daemon is gone.
pub fn store_on_postgres(c: &PlannedCluster) -> anyhow::Result<String> {
    use std::io::Write;
    let server = pg::server();
    let db = server.create_database("bench");
    let mut f = std::fs::OpenOptions::new().append(true).open(&c.config)?;
    writeln!(f, "\n[store]\nbackend = \"postgres\"\nurl = \"{}\"", server.url_of(&db))?;
    Ok(db)
}

/// One cluster `zzzzz` planned in `dir` (not started), and its CA certificate (PEM).
pub fn plan_one(dir: &std::path::Path) -> anyhow::Result<(PlannedCluster, Vec<u8>)> {
    let (mut plan, ca_path) = plan_federation(dir, &["zzzzz"], "")?;
    let ca_pem = std::fs::read(&ca_path)?;
    Ok((plan.remove(0), ca_pem))
}

/// One cluster, `zzzzz`, planned in a temporary directory with its own CA; its `hearth serve`
/// started and answering. Fields drop in order: the daemon stops before its directory goes.
pub struct Lone {
    /// The running daemon.
    pub daemon: Daemon,
    /// Its plan (URL, data dir, root token).
    pub cluster: PlannedCluster,
    /// The CA certificate (PEM) that signed its certificate.
    pub ca_pem: Vec<u8>,
    /// A client with the system root token.
    pub root: Client,
    /// Where everything lives.
    pub dir: tempfile::TempDir,
    /// Its PostgreSQL database, if it runs on one.
    pub database: Option<String>,
}

impl Drop for Lone {
    fn drop(&mut self) {
        if let Some(db) = &self.database {
            self.daemon.kill();
            pg::server().drop_database(db);
        }
    }
}

impl Lone {
    /// Plans and starts the cluster, and waits until it is healthy.
    pub async fn start() -> anyhow::Result<Lone> {
        Lone::start_on("sled").await
    }

    /// [`Lone::start`] on store `backend` (`sled`, or `postgres`: a fresh database on
    /// [`pg::server`], dropped with the `Lone`).
    pub async fn start_on(backend: &str) -> anyhow::Result<Lone> {
        let dir = tempfile::tempdir()?;
        let (cluster, ca_pem) = plan_one(dir.path())?;
        let database = match backend {
            "postgres" => Some(store_on_postgres(&cluster)?),
            _ => None,
        };
        let daemon = Daemon::spawn(&cluster, &[]);
        let root = Client::new(&cluster.url(), Some(&ca_pem))?.with_token(&cluster.root_token);
        root.wait_healthy(60).await?;
        Ok(Lone { daemon, cluster, ca_pem, root, dir, database })
    }

    /// Creates the user `bench` (verified email, [`BENCH_PASSWORD`]) and logs it in: its token.
    pub async fn bench_user(&self) -> anyhow::Result<String> {
        self.root
            .create_user(
                serde_json::json!({"username": "bench", "email": "bench@example.org", "email_verified": true}),
                Some(BENCH_PASSWORD),
            )
            .await?;
        let (token, _) =
            Client::new(&self.cluster.url(), Some(&self.ca_pem))?.login("bench", BENCH_PASSWORD, None).await?;
        Ok(token)
    }
}

/// The password of the user [`Lone::bench_user`] makes.
pub const BENCH_PASSWORD: &str = "bench-password-1";
