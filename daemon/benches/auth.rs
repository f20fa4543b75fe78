//! Benchmark (not a timed test): `GET /arvados/v1/users/current` with a valid token against a bare
//! hyper + rustls server, in one run, measured by an external load generator (`wrk`).
//!
//! The bench starts two separate processes on loopback: the release `hearth serve` and a bare
//! HTTPS server — this very binary started again with [`BARE_ARG`]: hyper's HTTP/1.1 server on
//! tokio-rustls with the daemon's own certificate, key and TLS configuration, answering every
//! request with the JSON body the daemon gave for users/current (the same bytes). It then runs
//! `wrk -t2 -c64 -d<secs>s --latency` against each, alternating (bare, hearth, bare, hearth…) so
//! that drift on the shared machine falls on both, and prints each run, the mean requests/s of
//! each, their ratio beside the goal (≥ 0.5) and the daemon's worst p99 beside its goal (≤ 2 ms),
//! with the machine's load. Each server's CPU time per request is printed too: with wrk on the
//! same cores, it says where the cores went better than the rate alone.
//!
//! Each store backend of `HEARTH_BENCH_BACKENDS` (`sled,postgres`) gets its own daemon and runs,
//! side by side (PostgreSQL: a database on the test suite's server, see `tests/it/harness/pg.rs`).
//!
//! `cargo bench -p hearth --bench auth` (needs `wrk`: `apt-get install wrk`). Environment:
//! `HEARTH_BENCH_SECS` (10 per run), `HEARTH_BENCH_ROUNDS` (2), `HEARTH_BENCH_WARMUP_SECS` (2),
//! `HEARTH_BENCH_WRK_THREADS` (2), `HEARTH_BENCH_WRK_CONNECTIONS` (64).

// A benchmark is neither a test nor daemon code: a failed set-up step should stop it loudly with
// the reason, which is what unwrap/expect/panic do here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use support::{Lone, env_num, load};

/// The first argument that makes this binary the bare server: `<BARE_ARG> <cert> <key> <body file>`.
const BARE_ARG: &str = "--bare-tls-server";

/// The goals of issue #16, item 2.
const GOAL_RATIO: f64 = 0.5;
const GOAL_P99_MS: f64 = 2.0;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(BARE_ARG) {
        return bare::serve(Path::new(&args[2]), Path::new(&args[3]), Path::new(&args[4]));
    }
    tokio::runtime::Runtime::new()?.block_on(bench())
}

/// One wrk run's figures.
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    /// CPU seconds the server process used during the run.
    server_cpu_s: f64,
}

async fn bench() -> anyhow::Result<()> {
    hearth::install_crypto_provider();
    require_wrk();
    let secs = env_num("HEARTH_BENCH_SECS", 10);
    let rounds = env_num("HEARTH_BENCH_ROUNDS", 2).max(1);
    let warmup = env_num("HEARTH_BENCH_WARMUP_SECS", 2);
    let threads = env_num("HEARTH_BENCH_WRK_THREADS", 2);
    let conns = env_num("HEARTH_BENCH_WRK_CONNECTIONS", 64);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let wrk_cmd = format!("wrk -t{threads} -c{conns} -d{secs}s --latency -H 'Authorization: Bearer …'");
    println!(
        "auth bench: {wrk_cmd}, {rounds} rounds of (bare, hearth), {warmup} s warm-up each first; {cores} cores; load {}",
        load()
    );

    for backend in support::bench_backends() {
        let lone = Lone::start_on(backend).await?;
        let (c, ca_pem, daemon) = (&lone.cluster, &lone.ca_pem, &lone.daemon);
        let token = lone.bench_user().await?;

        // The bare server answers with the very bytes the daemon answers users/current with.
        let current = format!("{}/arvados/v1/users/current", c.url());
        let http = reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(ca_pem)?]).build()?;
        let resp = http.get(&current).bearer_auth(&token).send().await?;
        assert_eq!(resp.status().as_u16(), 200, "users/current with the bench's token");
        let body = resp.bytes().await?;
        let body_path = lone.dir.path().join("users-current.json");
        std::fs::write(&body_path, &body)?;
        let tls_dir = c.dir.join("tls");
        let bare = BareServer::spawn(&tls_dir.join("cert.pem"), &tls_dir.join("key.pem"), &body_path);
        // The daemon's certificate names 127.0.0.1, where the bare server listens too.
        let bare_url = format!("https://127.0.0.1:{}/arvados/v1/users/current", bare.port);
        println!("{backend}: users/current body: {} bytes (the bare server answers the same bytes)", body.len());

        let run = |url: &str, pid: u32, secs: u64| {
            let cpu = cpu_secs(pid);
            let mut r = wrk(url, &token, threads, conns, secs);
            r.server_cpu_s = cpu_secs(pid) - cpu;
            r
        };
        run(&bare_url, bare.pid(), warmup);
        run(&current, daemon.pid(), warmup);
        let (mut bares, mut hearths) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            for (name, url, pid, out) in
                [("bare", &bare_url, bare.pid(), &mut bares), ("hearth", &current, daemon.pid(), &mut hearths)]
            {
                let l = load();
                let r = run(url, pid, secs);
                println!(
                    "{backend} round {round} {name:<6} {:>9.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   ({} requests; server CPU {:.2} cores, {:.1} µs/request)   load {l} -> {}",
                    r.rps,
                    r.p50_ms,
                    r.p99_ms,
                    r.requests,
                    r.server_cpu_s / secs as f64,
                    r.server_cpu_s * 1e6 / r.requests.max(1) as f64,
                    load()
                );
                out.push(r);
            }
        }
        let mean = |v: &[Run], f: fn(&Run) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
        let (bare_rps, hearth_rps) = (mean(&bares, |r| r.rps), mean(&hearths, |r| r.rps));
        let ratio = hearth_rps / bare_rps;
        let worst_p99 = hearths.iter().map(|r| r.p99_ms).fold(0.0, f64::max);
        let met = |ok: bool| if ok { "met" } else { "NOT met" };
        println!("{backend}: bare hyper+rustls         {bare_rps:>9.0} req/s (mean of {rounds})");
        println!(
            "{backend}: hearth GET users/current  {hearth_rps:>9.0} req/s (mean of {rounds}), p50 {:.2} ms (mean)",
            mean(&hearths, |r| r.p50_ms)
        );
        println!(
            "{backend}: ratio hearth/bare         {ratio:>9.2}   goal ≥ {GOAL_RATIO}: {}",
            met(ratio >= GOAL_RATIO)
        );
        println!(
            "{backend}: hearth p99 (worst run)    {worst_p99:>9.2} ms   goal ≤ {GOAL_P99_MS} ms: {}",
            met(worst_p99 <= GOAL_P99_MS)
        );
        println!("load {}", load());
        drop(bare);
        drop(lone);
    }
    Ok(())
}

/// Stops the bench with the one thing to do when wrk is missing.
fn require_wrk() {
    if Command::new("wrk").arg("-v").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        eprintln!(
            "auth bench: `wrk` (the load generator) was not found on PATH; install it with `apt-get install wrk`"
        );
        std::process::exit(2);
    }
}

/// Runs wrk against `url` for `secs` and reads its summary. Every answer must be a 2xx: a run
/// of refusals would measure something else.
fn wrk(url: &str, token: &str, threads: u64, conns: u64, secs: u64) -> Run {
    let out = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{conns}"))
        .arg(format!("-d{secs}s"))
        .arg("--latency")
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"))
        .arg(url)
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("Non-2xx"), "wrk saw answers other than 2xx from {url}:\n{text}");
    let field = |prefix: &str| -> &str {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {prefix:?} in wrk's output:\n{text}"))
    };
    let requests = text
        .lines()
        .find_map(|l| l.split_once(" requests in ").map(|(n, _)| n.trim()))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk's output:\n{text}"));
    Run {
        rps: field("Requests/sec:").parse().expect("Requests/sec"),
        p50_ms: duration_ms(field("50%")),
        p99_ms: duration_ms(field("99%")),
        requests,
        server_cpu_s: 0.0,
    }
}

/// wrk's durations (`812.00us`, `1.23ms`, `2.00s`) in milliseconds.
fn duration_ms(s: &str) -> f64 {
    let (num, scale) = if let Some(n) = s.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60e3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e3)
    } else {
        panic!("unknown wrk duration {s:?}")
    };
    num.parse::<f64>().unwrap_or_else(|_| panic!("unknown wrk duration {s:?}")) * scale
}

/// User + system CPU seconds a process has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 =
        f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0) + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0 // USER_HZ is 100 on Linux
}

/// The bare server process; killed (and reaped) when dropped.
struct BareServer {
    child: Child,
    port: u16,
}

impl BareServer {
    fn spawn(cert: &Path, key: &Path, body: &Path) -> BareServer {
        let mut child = Command::new(std::env::current_exe().expect("the bench's own path"))
            .arg(BARE_ARG)
            .arg(cert)
            .arg(key)
            .arg(body)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the bare server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("its stdout")).read_line(&mut line).expect("its port");
        let port = line.trim().parse().unwrap_or_else(|_| panic!("the bare server said {line:?}, not its port"));
        BareServer { child, port }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for BareServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bare server: what any Rust HTTPS server on this stack pays per request, and nothing else.
mod bare {
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    use std::convert::Infallible;
    use std::path::Path;
    use std::sync::Arc;

    /// Serves `body` to every request on 127.0.0.1 (a free port, printed on stdout) over TLS with
    /// the daemon's certificate and configuration (HTTP/1.1 only: it speaks nothing else).
    pub fn serve(cert: &Path, key: &Path, body: &Path) -> anyhow::Result<()> {
        hearth::install_crypto_provider();
        let mut config =
            (*hearth::tls::server_config(cert, key).map_err(|e| anyhow::anyhow!("the TLS files: {e:?}"))?).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let body: Arc<str> = std::fs::read_to_string(body)?.into();
        // The same runtime as `hearth serve` (`#[tokio::main]`: one worker per core).
        tokio::runtime::Runtime::new()?.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            println!("{}", listener.local_addr()?.port());
            loop {
                let (tcp, _) = listener.accept().await?;
                let _ = tcp.set_nodelay(true);
                let (acceptor, body) = (acceptor.clone(), body.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |_req| {
                        let body = body.to_string();
                        async move {
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .header(hyper::header::CONTENT_TYPE, "application/json")
                                    .body(body)
                                    .expect("a fixed response"),
                            )
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
                });
            }
        })
    }
}
