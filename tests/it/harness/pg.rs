//! The store backend the suite runs on, and PostgreSQL for it.
//!
//! `HEARTH_TEST_STORE=sled|postgres` (default `sled`) picks the backend of every daemon the
//! harness starts. With `postgres` each daemon gets a fresh database of its own on one server:
//! `HEARTH_TEST_PG_URL` when set (a base URL of a server where the suite may `CREATE DATABASE`,
//! e.g. `postgresql://postgres@127.0.0.1:5432/postgres`), else a private server that this test
//! binary starts once, on first use, and that is stopped when the binary exits.
//!
//! The private server: `initdb -A trust` into a temporary directory, listening on 127.0.0.1 at a
//! free port and on a unix socket in that directory, run as the `postgres` system user when the
//! suite runs as root (initdb refuses root) and as the current user otherwise. A watchdog process
//! started before the server (in its own session, deaf to SIGINT/SIGTERM/SIGHUP) waits for this
//! binary to exit however it exits, panics and `kill -9` included, then stops the server with
//! `pg_ctl stop -m immediate` and removes the directory: no postmaster is left behind.
//! The binaries come from `HEARTH_TEST_PG_BINDIR`, else `pg_config --bindir`, else the newest
//! `/usr/lib/postgresql/*/bin` (Debian's layout).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The store backend of the daemons a test starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded sled store in the daemon's data dir (the default).
    Sled,
    /// PostgreSQL: a database of the daemon's own on the test server.
    Postgres,
}

impl Backend {
    /// Its name in `HEARTH_TEST_STORE`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sled => "sled",
            Backend::Postgres => "postgres",
        }
    }
}

/// The backend `HEARTH_TEST_STORE` names (`sled` when unset or empty).
pub fn backend() -> Backend {
    static BACKEND: OnceLock<Backend> = OnceLock::new();
    *BACKEND.get_or_init(|| match std::env::var("HEARTH_TEST_STORE").as_deref() {
        Err(_) | Ok("") | Ok("sled") => Backend::Sled,
        Ok("postgres") => Backend::Postgres,
        Ok(other) => panic!("HEARTH_TEST_STORE={other:?}: expected \"sled\" or \"postgres\""),
    })
}

/// The server the suite's databases live on.
pub struct Server {
    /// A URL of the server's maintenance database, to create and drop others from.
    base: url::Url,
    /// Where psql (and for a private server initdb and pg_ctl) are.
    bindir: PathBuf,
    /// The private server's directory (data, socket, log); none for `HEARTH_TEST_PG_URL`.
    pub private_dir: Option<PathBuf>,
}

/// The test server: `HEARTH_TEST_PG_URL`'s or the private one, started on first use. A failure
/// to start it is remembered, so every test reports the same cause instead of trying again.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    match SERVER.get_or_init(|| {
        let bindir = bindir()?;
        match std::env::var("HEARTH_TEST_PG_URL").ok().filter(|u| !u.is_empty()) {
            Some(u) => {
                let base = url::Url::parse(&u).map_err(|e| format!("HEARTH_TEST_PG_URL={u:?}: {e}"))?;
                Ok(Server { base, bindir, private_dir: None })
            }
            None => start_private(&bindir),
        }
    }) {
        Ok(s) => s,
        Err(e) => panic!("no PostgreSQL server for the tests: {e}"),
    }
}

impl Server {
    /// The URL of database `db` on this server (the base URL with its path replaced).
    pub fn url_of(&self, db: &str) -> String {
        let mut u = self.base.clone();
        u.set_path(&format!("/{db}"));
        u.to_string()
    }

    /// Runs `sql` on the maintenance database; Err(psql's stderr) when it fails.
    pub fn sql(&self, sql: &str) -> Result<String, String> {
        self.sql_in(self.base.as_str(), sql)
    }

    /// Runs `sql` in the database at `url`; the rows unaligned, without headers.
    pub fn sql_in(&self, url: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bindir.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!("psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    /// Creates a new, empty database for one daemon; returns its name.
    pub fn create_database(&self, tag: &str) -> String {
        self.create_database_as(tag, "")
    }

    /// A new database named after `tag`, made with `options` (e.g. ` TEMPLATE x`).
    fn create_database_as(&self, tag: &str, options: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let tag: String = tag.chars().filter(char::is_ascii_alphanumeric).take(16).collect();
        let db = format!("hearth_{}_{}_{tag}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        if let Err(e) = self.sql(&format!("CREATE DATABASE {db}{options}")) {
            panic!("creating the test database {db}: {e}");
        }
        db
    }

    /// A new database with `db`'s contents (nothing may be connected to `db`); returns its name.
    pub fn copy_database(&self, db: &str) -> String {
        self.create_database_as("copy", &format!(" TEMPLATE {db}"))
    }

    /// Makes database `db` a copy of `copy` again (nothing may be connected to either).
    pub fn replace_database(&self, db: &str, copy: &str) {
        self.drop_database(db);
        if let Err(e) = self.sql(&format!("CREATE DATABASE {db} TEMPLATE {copy}")) {
            panic!("putting {copy} back as {db}: {e}");
        }
    }

    /// Drops database `db` (its daemons must be stopped; open sessions are ended).
    pub fn drop_database(&self, db: &str) {
        if let Err(e) = self.sql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")) {
            eprintln!("dropping the test database {db}: {e}");
        }
    }

    /// A plain-text dump of the data in database `db` (`pg_dump --data-only`).
    pub fn dump(&self, db: &str) -> Vec<u8> {
        let out = Command::new(self.bindir.join("pg_dump"))
            .args(["--data-only", "--no-owner", "-d", &self.url_of(db)])
            .stdin(Stdio::null())
            .output()
            .expect("running pg_dump");
        assert!(out.status.success(), "pg_dump of {db}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }
}

/// The directory of the PostgreSQL server binaries.
fn bindir() -> Result<PathBuf, String> {
    let has_initdb = |d: &Path| d.join("initdb").is_file() && d.join("psql").is_file();
    if let Some(d) = std::env::var_os("HEARTH_TEST_PG_BINDIR") {
        let d = PathBuf::from(d);
        return if has_initdb(&d) { Ok(d) } else { Err(format!("HEARTH_TEST_PG_BINDIR={d:?} has no initdb and psql")) };
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_initdb(&d) {
            return Ok(d);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, d)| has_initdb(d))
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d).ok_or_else(|| {
        "no PostgreSQL binaries (initdb, psql) found: install postgresql (.ci/run does), or set \
         HEARTH_TEST_PG_BINDIR, or HEARTH_TEST_PG_URL to a server's URL"
            .to_string()
    })
}

/// Whether this process runs as root.
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `tool` of `bindir`, run as the `postgres` system user when we are root.
fn pg_tool(bindir: &Path, tool: &str, as_root: bool) -> Command {
    if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bindir.join(tool));
        c
    } else {
        Command::new(bindir.join(tool))
    }
}

fn run(what: &str, cmd: &mut Command) -> Result<(), String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The watchdog: waits for process `$1` (this test binary) to end, then stops the server of data
/// dir `$4` with pg_ctl `$3` (as the postgres user when `$2` is `root`) and removes `$5`.
const WATCHDOG: &str = r#"trap '' INT TERM HUP
while kill -0 "$1" 2>/dev/null; do sleep 0.2; done
if [ "$2" = root ]; then
  runuser -u postgres -- "$3" -D "$4" stop -m immediate -w -t 30
else
  "$3" -D "$4" stop -m immediate -w -t 30
fi >/dev/null 2>&1
rm -rf "$5"
"#;

/// Starts the private server; see the module doc.
fn start_private(bindir: &Path) -> Result<Server, String> {
    let root =
        tempfile::Builder::new().prefix("hearth-test-pg-").tempdir().map_err(|e| format!("temp dir: {e}"))?.keep();
    let (data, sock, log) = (root.join("data"), root.join("sock"), root.join("postgres.log"));
    std::fs::create_dir(&sock).map_err(|e| format!("{sock:?}: {e}"))?;
    let as_root = is_root();
    if as_root {
        run(
            "chown -R postgres: (the tests run as root; initdb refuses root)",
            Command::new("chown").arg("-R").arg("postgres:").arg(&root),
        )?;
    }
    // The watchdog goes first: whatever happens from here on, the directory and any server in it go
    // when this binary ends.
    let pg_ctl = bindir.join("pg_ctl");
    let mut watchdog = Command::new("setsid");
    watchdog
        .args(["sh", "-c", WATCHDOG, "hearth-test-pg-watchdog"])
        .arg(std::process::id().to_string())
        .arg(if as_root { "root" } else { "user" })
        .arg(&pg_ctl)
        .arg(&data)
        .arg(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    watchdog.spawn().map_err(|e| format!("starting the server's watchdog (setsid sh): {e}"))?;
    run(
        "initdb",
        pg_tool(bindir, "initdb", as_root).arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]),
    )?;
    // A free port may be taken between our probe and the server's bind: try a few.
    let mut last = String::new();
    for _ in 0..3 {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("probing a free port: {e}"))?
            .port();
        // Durability of the server itself is not under test (daemons are killed, never it).
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c max_connections=400 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off",
            sock.display()
        );
        let started = run(
            "pg_ctl start",
            pg_tool(bindir, "pg_ctl", as_root)
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-o", &options, "start"]),
        );
        match started {
            Ok(()) => {
                let base = url::Url::parse(&format!("postgresql://postgres@127.0.0.1:{port}/postgres"))
                    .map_err(|e| e.to_string())?;
                return Ok(Server { base, bindir: bindir.to_path_buf(), private_dir: Some(root) });
            }
            Err(e) => {
                last = format!("{e}\n--- {} ---\n{}", log.display(), std::fs::read_to_string(&log).unwrap_or_default())
            }
        }
    }
    Err(last)
}
