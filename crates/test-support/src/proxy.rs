//! A TCP proxy on 127.0.0.1 in front of one service that a test can cut off and restore: an
//! RPC endpoint, a database or a load balancer failing. Used by the chaos workflow and the
//! failover tests.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use url::Url;

/// A TCP proxy on 127.0.0.1 in front of one service. While it is cut, every open connection
/// is closed and new ones are accepted and closed at once (a connection reset to the client),
/// as when a load balancer or a network path fails.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
    stop: CancellationToken,
}

#[derive(Debug)]
struct ProxyState {
    target: SocketAddr,
    down: AtomicBool,
    /// Cancelled to close every connection of the current generation.
    connections: Mutex<CancellationToken>,
    cuts: AtomicU64,
    refused: AtomicU64,
    accepted: AtomicU64,
}

impl TcpProxy {
    /// Starts a proxy to `target` (a URL's host and port) on a free port.
    ///
    /// # Panics
    /// When the target has no address or no port can be bound.
    pub async fn start(target: &Url) -> Self {
        let host = target.host_str().expect("target host");
        let port = target.port_or_known_default().expect("target port");
        let target: SocketAddr = tokio::net::lookup_host((host, port))
            .await
            .expect("resolve target")
            .next()
            .expect("target address");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(ProxyState {
            target,
            down: AtomicBool::new(false),
            connections: Mutex::new(CancellationToken::new()),
            cuts: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        });
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(listener, state.clone(), stop.clone()));
        Self { addr, state, stop }
    }

    /// The URL of the proxied service through the proxy: `base` with the proxy's host and port.
    pub fn url(&self, base: &Url) -> Url {
        let mut url = base.clone();
        url.set_ip_host(self.addr.ip()).expect("ip host");
        url.set_port(Some(self.addr.port())).expect("port");
        url
    }

    /// Cuts the service off (closes every connection) until [`TcpProxy::restore`].
    pub fn cut(&self) {
        if !self.state.down.swap(true, Ordering::SeqCst) {
            self.state.cuts.fetch_add(1, Ordering::SeqCst);
        }
        let mut current = self.state.connections.lock().expect("proxy lock");
        current.cancel();
        *current = CancellationToken::new();
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.state.down.store(false, Ordering::SeqCst);
    }

    /// Cuts so far.
    pub fn cuts(&self) -> u64 {
        self.state.cuts.load(Ordering::SeqCst)
    }

    /// Connections refused while cut.
    pub fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// Connections forwarded so far.
    pub fn accepted(&self) -> u64 {
        self.state.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.state.connections.lock().map(|c| c.cancel()).ok();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<ProxyState>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((client, _)) = accepted else { continue };
        if state.down.load(Ordering::SeqCst) {
            state.refused.fetch_add(1, Ordering::SeqCst);
            drop(client);
            continue;
        }
        state.accepted.fetch_add(1, Ordering::SeqCst);
        let token = state.connections.lock().expect("proxy lock").clone();
        let target = state.target;
        tokio::spawn(async move {
            let Ok(mut upstream) = TcpStream::connect(target).await else { return };
            let mut client = client;
            tokio::select! {
                () = token.cancelled() => {}
                _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
            }
        });
    }
}
