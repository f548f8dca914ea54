//! Probes: `/health` (the reference's `UP`), `/health/live` and `/health/ready`.

use std::time::Duration;

use axum::{extract::State, http::StatusCode, response::Response, routing::get, Router};
use serde::Serialize;

use super::{
    response::{json, ApiResponse},
    AppState,
};

/// How long each readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

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
    let (db, queue, storage) = tokio::join!(
        check("database", config.database().health_check()),
        check("queue", config.queue().health_check()),
        check("storage", config.storage().health_check()),
    );
    let checks = vec![db, queue, storage];
    let failing: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.component).collect();
    if failing.is_empty() {
        json(
            StatusCode::OK,
            ApiResponse::ok(serde_json::json!({"status": "ready", "checks": checks})),
        )
    } else {
        let body = ApiResponse {
            success: false,
            data: Some(serde_json::json!({"status": "not ready", "checks": checks})),
            message: Some(format!("not ready: {} failing", failing.join(", "))),
        };
        json(StatusCode::SERVICE_UNAVAILABLE, body)
    }
}
