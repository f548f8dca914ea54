//! The HTTP server (axum): probes, the job/batch/block routes of reference §11 (also under
//! `/api/v1`), the admin routes (only with `--admin-enabled`, behind a bearer token),
//! Prometheus `/metrics`, the `/dashboard` page and the shadow-mode report `/shadow`.
//!
//! Every response carries `x-trace-id`; every route but the probes is rate limited per client
//! IP; every error uses the `{"success": false, "message"}` envelope.

pub mod admin;
pub mod api;
pub mod dashboard;
pub mod error;
pub mod health;
pub mod middleware;
pub mod response;
pub mod shadow;

use crate::worker::Config;
use std::{net::SocketAddr, sync::Arc};

use axum::{
    extract::State,
    http::{header, StatusCode},
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{config::ServerSettings, telemetry::metrics::GAUGE_MIN_REFRESH};

/// Shared state of the routes.
pub type AppState = Arc<Config>;

/// Why the server settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Admin routes requested without a token to protect them.
    #[error(
        "--admin-enabled needs a bearer token: set MADARA_ORCHESTRATOR_ADMIN_TOKEN (or \
         MADARA_ORCHESTRATOR_ADMIN_TOKEN_FILE, or --admin-token); admin routes are never served \
         without authentication"
    )]
    AdminWithoutToken,
}

/// Refuses settings that would expose the admin routes without authentication.
///
/// # Errors
/// [`ServerError::AdminWithoutToken`].
pub fn check_settings(settings: &ServerSettings) -> Result<(), ServerError> {
    if settings.admin_enabled && settings.admin_token.is_none() {
        return Err(ServerError::AdminWithoutToken);
    }
    Ok(())
}

/// The router with every route mounted.
pub fn router(config: Arc<Config>) -> Router {
    let mut actions = api::job_action_routes();
    if config.server.admin_token.is_some() && !config.server.open_job_actions {
        actions =
            actions.route_layer(from_fn_with_state(config.clone(), middleware::require_admin));
    }
    let api = api::routes().merge(actions);
    let mut app = Router::new()
        .merge(health::routes())
        .merge(api.clone())
        .nest("/api/v1", api)
        .merge(dashboard::routes())
        .merge(shadow::routes())
        .route("/metrics", get(metrics));
    if config.server.admin_enabled {
        let admin = admin::routes()
            .route_layer(from_fn_with_state(config.clone(), middleware::require_admin));
        app = app.nest("/admin", admin.clone()).nest("/api/v1/admin", admin);
    }
    let limiter = Arc::new(middleware::RateLimiter::new(
        config.server.rate_limit_per_second,
        config.server.rate_limit_burst,
    ));
    app.fallback(response::not_found)
        .layer(from_fn_with_state(limiter, middleware::rate_limit))
        .layer(from_fn_with_state(config.clone(), middleware::trace))
        .with_state(config)
}

/// Prometheus text exposition of every instrument; gauges are recomputed at most once a second.
async fn metrics(State(config): State<AppState>) -> Response {
    crate::worker::gauges::refresh_gauges(&config, GAUGE_MIN_REFRESH).await;
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        config.metrics.render_prometheus(),
    )
        .into_response()
}

/// Binds `addr` (port 0 picks a free port) and returns the listener and its real address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Serves `router` on `listener` until `shutdown`, then finishes in-flight requests. The peer
/// address of each connection reaches the rate limiter.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
