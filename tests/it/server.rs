//! Starting and serving: `hearth serve` reads and checks every file its config names before it
//! creates anything in `data_dir`; and the HTTPS server's patience with slow clients: a connection
//! that stalls in the TLS handshake, before its first request, in the middle of a request line or
//! idle between requests is closed after `http.header_read_timeout_secs` (here 1 s; each check
//! allows 30 s, a liveness bound, not a timing goal).

use crate::harness::{Federation, HEARTH};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::BufRead;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// How long a test waits for the server to close a stalled connection before it calls it open.
const LIVENESS: Duration = Duration::from_secs(30);

/// What the server did with a connection we stopped talking on.
#[derive(Debug, PartialEq)]
enum End {
    /// It closed it (end of stream, or a reset / TLS alert).
    Closed,
    /// It was still open after [`LIVENESS`].
    StillOpen,
}

/// Reads (discarding what comes, e.g. a response already asked for) until the stream ends.
fn wait_for_close(stream: &mut impl Read) -> End {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return End::Closed,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return End::StillOpen,
            Err(_) => return End::Closed,
        }
    }
}

fn tls_config(ca_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
}

/// A TCP connection to `addr` whose reads give up after [`LIVENESS`].
fn connect(addr: &str) -> TcpStream {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(LIVENESS)).unwrap();
    tcp
}

/// A TLS connection to `addr` that has sent `bytes` (the handshake completes on the way).
fn tls_sending(
    addr: &str,
    ip: &str,
    ca_pem: &[u8],
    bytes: &[u8],
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let name = ServerName::try_from(ip.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(tls_config(ca_pem), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, connect(addr));
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls.write_all(bytes).unwrap();
    tls.flush().unwrap();
    tls
}

#[tokio::test]
async fn stalled_connections_are_closed() {
    let fed = Federation::start_with(&["zzzzz"], "[http]\nheader_read_timeout_secs = 1\n").await;
    let c = &fed.clusters[0];
    let (ip, addr, ca) = (c.plan.ip.clone(), format!("{}:{}", c.plan.ip, c.plan.port), c.ca_pem.clone());
    type Case = (&'static str, Box<dyn FnOnce() -> End + Send>);
    let cases: Vec<Case> = vec![
        ("TCP connection that never starts TLS", {
            let addr = addr.clone();
            Box::new(move || wait_for_close(&mut connect(&addr)))
        }),
        ("TLS connection that sends nothing", {
            let (addr, ip, ca) = (addr.clone(), ip.clone(), ca.clone());
            Box::new(move || wait_for_close(&mut tls_sending(&addr, &ip, &ca, b"")))
        }),
        ("partial request line", {
            let (addr, ip, ca) = (addr.clone(), ip.clone(), ca.clone());
            Box::new(move || wait_for_close(&mut tls_sending(&addr, &ip, &ca, b"GET /healthz HTT")))
        }),
        ("request line without the end of its headers", {
            let (addr, ip, ca) = (addr.clone(), ip.clone(), ca.clone());
            Box::new(move || wait_for_close(&mut tls_sending(&addr, &ip, &ca, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")))
        }),
        ("kept-alive connection idle after a response", {
            let (addr, ip, ca) = (addr.clone(), ip.clone(), ca.clone());
            Box::new(move || {
                let mut tls = tls_sending(&addr, &ip, &ca, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
                let mut first = [0u8; 12];
                tls.read_exact(&mut first).unwrap();
                assert_eq!(&first, b"HTTP/1.1 200", "the complete request is answered");
                wait_for_close(&mut tls)
            })
        }),
    ];
    let running: Vec<_> = cases.into_iter().map(|(name, case)| (name, std::thread::spawn(case))).collect();
    for (name, t) in running {
        assert_eq!(t.join().unwrap(), End::Closed, "{name}");
    }
    // The daemon serves on.
    assert_eq!(c.anon.get("/healthz").await.unwrap().status, reqwest::StatusCode::OK);
}

/// How a `hearth serve` run ended.
#[derive(Debug)]
enum Start {
    /// It printed that it listens (and was then killed).
    Served,
    /// It exited on its own: success, and what it wrote on stderr.
    Exited(bool, String),
}

/// Runs `hearth serve --config <config>` until it says it listens or exits.
fn serve(config: &Path) -> Start {
    let mut child = Command::new(HEARTH)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let _ = std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    if line.contains("hearth listening on") {
        let _ = child.kill();
        let _ = child.wait();
        return Start::Served;
    }
    let out = child.wait_with_output().unwrap();
    Start::Exited(out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A peer's `ca_cert` that is missing, not PEM, or PEM without a usable certificate, a TLS
/// certificate or key that cannot be loaded, or a signing key that does not parse stops the start
/// with one line naming the key, and so does an OpenID provider's unreadable client secret file,
/// unusable `ca_cert` or bad setting; nothing is created: no data dir, or the empty one stays
/// empty. Before, the signing key, a self-signed certificate and the store were written first.
#[test]
fn a_bad_file_in_the_config_stops_the_start_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = hearth::tls::LocalCa::new("test CA").unwrap();
    let (ca_cert, cert, key) = ca.write_leaf(&d.join("tls"), &["127.0.0.1"]).unwrap();
    let (_, _, other_key) = ca.write_leaf(&d.join("other"), &["127.0.0.1"]).unwrap();
    std::fs::write(d.join("garbage.pem"), "not a certificate\n").unwrap();
    std::fs::write(d.join("bad-der.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
    std::fs::write(d.join("key-only.pem"), std::fs::read(&key).unwrap()).unwrap();
    hearth::tls::write_private(&d.join("bad.key"), b"ed25519-secret:nope\n").unwrap();
    let peer = |ca_cert: &Path| {
        format!(
            "[[federation.peers]]\nid = \"yyyyy\"\nurl = \"https://127.0.0.1:2\"\npublic_key = \"{}\"\nca_cert = \"{}\"\n",
            hearth::federation::signing_key::generate().public(),
            ca_cert.display()
        )
    };
    let self_signed = "[tls]\nself_signed = true\n".to_string();
    let oidc = |rest: &str| {
        format!("[[login.oidc]]\nid = \"op\"\nissuer = \"https://127.0.0.1:3\"\nclient_id = \"c\"\n{rest}\n")
    };
    let tls = |c: &Path, k: &Path| format!("[tls]\ncert = \"{}\"\nkey = \"{}\"\n", c.display(), k.display());
    let cases: Vec<(String, String, &str)> = vec![
        (self_signed.clone(), peer(&d.join("missing.pem")), "federation.peers[0].ca_cert"),
        (self_signed.clone(), peer(&d.join("garbage.pem")), "federation.peers[0].ca_cert"),
        (self_signed.clone(), peer(&d.join("bad-der.pem")), "federation.peers[0].ca_cert"),
        (self_signed.clone(), peer(&d.join("key-only.pem")), "federation.peers[0].ca_cert"),
        (tls(&d.join("missing.pem"), &key), String::new(), "tls.cert"),
        (tls(&d.join("garbage.pem"), &key), String::new(), "tls.cert"),
        (tls(&cert, &d.join("missing.pem")), String::new(), "tls.key"),
        (tls(&cert, &d.join("garbage.pem")), String::new(), "tls.key"),
        (tls(&cert, &other_key), String::new(), "tls.key"),
        (
            self_signed.clone(),
            format!("[federation]\nsigning_key = \"{}\"\n", d.join("bad.key").display()),
            "federation.signing_key",
        ),
        (
            self_signed.clone(),
            oidc(&format!("client_secret_file = \"{}\"", d.join("missing").display())),
            "login.oidc[0].client_secret_file",
        ),
        (
            self_signed.clone(),
            oidc(&format!("client_secret = \"s\"\nca_cert = \"{}\"", d.join("garbage.pem").display())),
            "login.oidc[0].ca_cert",
        ),
        (self_signed.clone(), oidc("client_secret = \"s\"\npreset = \"gitlab\""), "login.oidc[0].preset"),
        (
            self_signed.clone(),
            oidc("client_secret = \"s\"\nclient_secret_file = \"/x\""),
            "login.oidc[0].client_secret",
        ),
        (
            self_signed.clone(),
            oidc(
                "client_secret = \"s\"\n[[login.oidc]]\nid = \"op\"\npreset = \"orcid\"\nclient_id = \"c\"\nclient_secret = \"s\"",
            ),
            "login.oidc[1].id",
        ),
    ];
    for (i, (tls_section, federation, key_named)) in cases.iter().enumerate() {
        for pre_created in [false, true] {
            let data = d.join(format!("data-{i}-{pre_created}"));
            if pre_created {
                std::fs::create_dir(&data).unwrap();
            }
            let config = d.join(format!("c{i}-{pre_created}.toml"));
            std::fs::write(
                &config,
                format!(
                    "[cluster]\nid = \"zzzzz\"\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://127.0.0.1:1\"\ndata_dir = \"{}\"\n{tls_section}{federation}",
                    data.display()
                ),
            )
            .unwrap();
            let case = format!("case {i} ({key_named}, data dir made before: {pre_created})");
            match serve(&config) {
                Start::Served => panic!("{case}: the daemon started"),
                Start::Exited(ok, err) => {
                    assert!(!ok, "{case}: exit status 0");
                    assert!(err.contains(key_named), "{case}: message {err:?} does not name {key_named}");
                    assert_eq!(err.trim().lines().count(), 1, "{case}: one line, got {err:?}");
                }
            }
            if pre_created {
                let left: Vec<_> = std::fs::read_dir(&data).unwrap().flatten().map(|e| e.file_name()).collect();
                assert!(left.is_empty(), "{case}: the data dir holds {left:?}");
            } else {
                assert!(!data.exists(), "{case}: the data dir was created");
            }
        }
    }
    // The same files, fixed, start.
    let data = d.join("data-good");
    let config = d.join("good.toml");
    std::fs::write(
        &config,
        format!(
            "[cluster]\nid = \"zzzzz\"\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://127.0.0.1:1\"\ndata_dir = \"{}\"\n{}{}",
            data.display(),
            tls(&cert, &key),
            peer(&ca_cert)
        ),
    )
    .unwrap();
    assert!(matches!(serve(&config), Start::Served), "a good config starts");
    assert!(data.join("signing.key").exists());
}
