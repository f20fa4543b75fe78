//! A round-robin TCP proxy on loopback: one public address for the replicas of a cluster, each
//! new connection going to the next replica (TLS passes through; the replicas' certificate names
//! the proxy's address too). A replica that refuses the connection (it is down) is skipped, as a
//! load balancer's health check would, so that the survivors take its share. The connection to
//! the replica is made from the client's own address (any 127.x.y.z is ours to bind), so the
//! daemon sees each client's address, which its per-source login throttle counts by.
//!
//! It runs on a thread and runtime of its own, so it serves peers' connections whatever the test's
//! own runtime is doing; dropping it closes its listener and every connection it carries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A running proxy.
pub struct RoundRobin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Connections handed to each backend, in the order of `backends`.
    accepted: Arc<Vec<AtomicUsize>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RoundRobin {
    /// Listens on `listener` (bound by the caller, e.g. to `127.0.0.2:0`) and spreads connections
    /// over `backends`.
    pub fn start(listener: std::net::TcpListener, backends: Vec<SocketAddr>) -> RoundRobin {
        let addr = listener.local_addr().expect("proxy address");
        listener.set_nonblocking(true).expect("nonblocking listener");
        let accepted: Arc<Vec<AtomicUsize>> = Arc::new(backends.iter().map(|_| AtomicUsize::new(0)).collect());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let counts = accepted.clone();
        let thread = std::thread::Builder::new()
            .name(format!("proxy-{addr}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("proxy runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    tokio::select! {
                        _ = stopped => {}
                        _ = serve(listener, backends, counts) => {}
                    }
                });
                // Dropping the runtime drops every connection task: their sockets close.
            })
            .expect("proxy thread");
        RoundRobin { addr, accepted, stop: Some(stop), thread: Some(thread) }
    }

    /// Connections handed to backend `i` so far.
    pub fn connections_to(&self, i: usize) -> usize {
        self.accepted[i].load(Ordering::Relaxed)
    }
}

async fn serve(listener: tokio::net::TcpListener, backends: Vec<SocketAddr>, accepted: Arc<Vec<AtomicUsize>>) {
    let next = AtomicUsize::new(0);
    loop {
        let Ok((mut client, from)) = listener.accept().await else { continue };
        let first = next.fetch_add(1, Ordering::Relaxed);
        let (backends, accepted) = (backends.clone(), accepted.clone());
        tokio::spawn(async move {
            for k in 0..backends.len() {
                let i = (first + k) % backends.len();
                let connect = connect_from(from.ip(), backends[i]);
                if let Ok(Ok(mut upstream)) = tokio::time::timeout(Duration::from_secs(2), connect).await {
                    accepted[i].fetch_add(1, Ordering::Relaxed);
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    return;
                }
            }
            // Every backend is down: the client sees its connection closed.
        });
    }
}

/// A connection to `to` from address `ip` (any free port).
async fn connect_from(ip: std::net::IpAddr, to: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = if ip.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(to).await
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
