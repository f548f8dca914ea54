//! The HTTP server (axum): health probes now; job, batch, block and admin routes grow here.

pub mod health;
pub mod response;

use std::{net::SocketAddr, sync::Arc};

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Shared state of the routes.
pub type AppState = Arc<Config>;

/// The router with every route mounted.
pub fn router(config: Arc<Config>) -> Router {
    Router::new().merge(health::routes()).fallback(response::not_found).with_state(config)
}

/// Binds `addr` (port 0 picks a free port) and returns the listener and its real address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Serves `router` on `listener` until `shutdown`, then finishes in-flight requests.
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}
