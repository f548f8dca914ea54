//! Probes: `/health` (the reference's `UP`), `/health/live` and `/health/ready`.
//!
//! `/health/ready` checks the internal backends (database, queue, storage: 503 when one
//! fails) and reports the external dependencies (the node, the settlement RPC, the prover)
//! from a reachability probe cached for [`DEPENDENCY_CACHE_TTL`]: when only those fail it
//! answers 200 with `"status": "degraded"` and lists them — the orchestrator itself works and
//! retries them, so a load balancer must not take it out of rotation.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use axum::{extract::State, http::StatusCode, response::Response, routing::get, Router};
use serde::Serialize;

use super::{
    response::{json, ApiResponse},
    AppState,
};

/// How long each readiness check (and each dependency probe) may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a dependency probe's result is reused.
pub const DEPENDENCY_CACHE_TTL: Duration = Duration::from_secs(30);

/// The probe routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(|| async { "UP" }))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

async fn live() -> Response {
    json(StatusCode::OK, ApiResponse::ok(serde_json::json!({"status": "live"})))
}

/// Result of one readiness check.
#[derive(Debug, Serialize)]
struct Check {
    component: &'static str,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

async fn check<F, E>(component: &'static str, f: F) -> Check
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    match tokio::time::timeout(CHECK_TIMEOUT, f).await {
        Ok(Ok(())) => Check { component, ok: true, error: None },
        Ok(Err(e)) => Check { component, ok: false, error: Some(e.to_string()) },
        Err(_) => Check {
            component,
            ok: false,
            error: Some(format!("no answer within {CHECK_TIMEOUT:?}")),
        },
    }
}

async fn ready(State(config): State<AppState>) -> Response {
    let (db, queue, storage, dependencies) = tokio::join!(
        check("database", config.database().health_check()),
        check("queue", config.queue().health_check()),
        check("storage", config.storage().health_check()),
        config.server.dependencies.statuses(),
    );
    let checks = vec![db, queue, storage];
    let failing: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.component).collect();
    let degraded: Vec<&str> = dependencies.iter().filter(|d| !d.ok).map(|d| d.component).collect();
    if !failing.is_empty() {
        let body = ApiResponse {
            success: false,
            data: Some(serde_json::json!({
                "status": "not ready",
                "checks": checks,
                "dependencies": dependencies,
            })),
            message: Some(format!("not ready: {} failing", failing.join(", "))),
        };
        return json(StatusCode::SERVICE_UNAVAILABLE, body);
    }
    if degraded.is_empty() {
        return json(
            StatusCode::OK,
            ApiResponse::ok(serde_json::json!({
                "status": "ready",
                "checks": checks,
                "dependencies": dependencies,
            })),
        );
    }
    // Still 200: the process serves and retries its upstreams; an orchestrator taken out of
    // rotation for a node outage would not come back by itself any sooner.
    let body = ApiResponse {
        success: true,
        data: Some(serde_json::json!({
            "status": "degraded",
            "checks": checks,
            "dependencies": dependencies,
            "degraded": degraded,
        })),
        message: Some(format!("degraded: {} unreachable", degraded.join(", "))),
    };
    json(StatusCode::OK, body)
}

/// An external dependency `/health/ready` reports (the node, the settlement RPC, the prover).
#[async_trait]
pub trait DependencyProbe: Send + Sync + fmt::Debug {
    /// Its name in the answer (`node`, `settlement`, `prover`).
    fn name(&self) -> &'static str;
    /// One cheap reachability probe; `Err` says why it failed (no secret in it: URLs by their
    /// origin only).
    async fn probe(&self) -> Result<(), String>;
}

/// What the last probe of an external dependency found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DependencyStatus {
    /// The dependency.
    pub component: &'static str,
    /// Whether it answered.
    pub ok: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was probed (the result is reused up to [`DEPENDENCY_CACHE_TTL`]).
    pub checked_at: chrono::DateTime<chrono::Utc>,
}

/// The external dependencies of `/health/ready`, probed concurrently at most once per cache
/// period (concurrent requests share one probe run). Empty by default: nothing is reported.
#[derive(Clone, Default)]
pub struct ExternalDependencies {
    inner: Arc<Dependencies>,
}

#[derive(Default)]
struct Dependencies {
    probes: Vec<Arc<dyn DependencyProbe>>,
    ttl: Duration,
    cache: tokio::sync::Mutex<Option<(Instant, Vec<DependencyStatus>)>>,
}

impl fmt::Debug for ExternalDependencies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.inner.probes.iter().map(|p| p.name()).collect();
        f.debug_struct("ExternalDependencies")
            .field("probes", &names)
            .field("ttl", &self.inner.ttl)
            .finish()
    }
}

impl ExternalDependencies {
    /// `probes`, their results cached for [`DEPENDENCY_CACHE_TTL`].
    pub fn new(probes: Vec<Arc<dyn DependencyProbe>>) -> Self {
        Self::with_ttl(probes, DEPENDENCY_CACHE_TTL)
    }

    /// `probes`, their results cached for `ttl`.
    pub fn with_ttl(probes: Vec<Arc<dyn DependencyProbe>>, ttl: Duration) -> Self {
        Self { inner: Arc::new(Dependencies { probes, ttl, cache: Default::default() }) }
    }

    /// The names of the dependencies.
    pub fn names(&self) -> Vec<&'static str> {
        self.inner.probes.iter().map(|p| p.name()).collect()
    }

    /// Each dependency's status: the cached one when fresher than the cache period, else
    /// probed now (each probe within the readiness timeout).
    pub async fn statuses(&self) -> Vec<DependencyStatus> {
        if self.inner.probes.is_empty() {
            return Vec::new();
        }
        // Held across the probes on purpose: concurrent requests wait for one probe run.
        let mut cache = self.inner.cache.lock().await;
        if let Some((at, statuses)) = cache.as_ref() {
            if at.elapsed() < self.inner.ttl {
                return statuses.clone();
            }
        }
        let probes = self.inner.probes.iter().map(|p| async move {
            let result = match tokio::time::timeout(CHECK_TIMEOUT, p.probe()).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
            };
            DependencyStatus {
                component: p.name(),
                ok: result.is_ok(),
                error: result.err(),
                checked_at: chrono::Utc::now(),
            }
        });
        let statuses = futures::future::join_all(probes).await;
        *cache = Some((Instant::now(), statuses.clone()));
        statuses
    }
}
