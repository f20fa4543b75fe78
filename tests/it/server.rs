//! The HTTPS server's patience with slow clients: a connection that stalls in the TLS handshake,
//! before its first request, in the middle of a request line or idle between requests is closed
//! after `http.header_read_timeout_secs` (here 1 s; each check allows 30 s, a liveness bound, not
//! a timing goal).

use crate::harness::Federation;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
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
