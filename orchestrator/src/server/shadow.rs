//! `GET /shadow`: the comparisons of a shadow orchestrator (`--shadow`, `docs/shadow.md`), one
//! per aggregator batch of the newest [`SHADOW_ROUTE_BATCHES`]: matched or the list of
//! differences, the live transaction, the would-be and the live fee; batches whose StateTransition
//! has not compared yet (the live operator has not settled them) are listed as waiting.

use axum::{extract::State, http::StatusCode, response::Response, routing::get, Router};
use serde_json::json;

use super::{
    error::{ApiError, ApiResult},
    response::{json, ApiResponse},
    AppState,
};
use crate::{
    core::client::StorageError,
    shadow::{report_path, ShadowReport},
    types::jobs::{JobSpecificMetadata, JobType},
};

/// Most batches one answer covers (the newest).
pub const SHADOW_ROUTE_BATCHES: u64 = 500;

/// The shadow route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/shadow", get(report))
}

async fn report(State(config): State<AppState>) -> ApiResult<Response> {
    if !config.server.shadow {
        return Err(ApiError::NotFound(
            "this orchestrator does not run in shadow mode (start it with --shadow to compare its \
             would-be state updates with the live operator's)"
                .into(),
        ));
    }
    let latest = config.database().get_latest_job_by_type(JobType::StateTransition, None).await?;
    let last = latest
        .map(|j| match j.metadata.specific {
            JobSpecificMetadata::StateUpdate(m) => m.context.to_settle(),
            _ => j.internal_id,
        })
        .unwrap_or(0);
    let first = last.saturating_sub(SHADOW_ROUTE_BATCHES - 1).max(1);
    let mut batches = Vec::new();
    let mut waiting = Vec::new();
    for index in first..=last {
        let key = report_path(index);
        match config.storage().get_data(&key).await {
            Ok(bytes) => {
                let r: ShadowReport = serde_json::from_slice(&bytes).map_err(|e| {
                    ApiError::Internal(format!("the shadow report at {key} does not parse: {e}"))
                })?;
                batches.push(r);
            }
            Err(StorageError::NotFound(_)) => waiting.push(index),
            Err(e) => {
                return Err(ApiError::Internal(format!("cannot read the shadow report {key}: {e}")))
            }
        }
    }
    let matched = batches.iter().filter(|r| r.matched).count();
    let compared = batches.len();
    let body = json!({
        "compared": compared,
        "matched": matched,
        "mismatched": compared - matched,
        "match_percent": if compared == 0 { None } else { Some(100.0 * matched as f64 / compared as f64) },
        "waiting": waiting,
        "batches": batches,
    });
    Ok(json(StatusCode::OK, ApiResponse::ok(body)))
}
