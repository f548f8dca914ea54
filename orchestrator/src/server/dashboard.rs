//! `/dashboard`: one static page (no build step, vanilla JS) that polls `/dashboard/data` and
//! draws batches as rows and stages as columns.

use axum::{
    extract::{RawQuery, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use serde_json::json;

use super::{
    admin::trigger_pause_json,
    api::{aggregator_batch_json, dashboard_stages, jobs_by_stage, snos_batch_json, QueryParams},
    error::ApiResult,
    response::{json, ApiResponse},
    AppState,
};
use crate::{
    core::client::{database::BatchStore, DatabaseClient},
    types::{
        batch::{BatchKind, BatchQuery, SortOrder},
        jobs::JobType,
    },
    worker::Config,
};

/// The page, compiled into the binary.
const PAGE: &str = include_str!("dashboard.html");

/// The dashboard routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/dashboard", get(page)).route("/dashboard/data", get(data))
}

async fn page() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")],
        PAGE,
    )
        .into_response()
}

fn stage_names(types: &[JobType]) -> Vec<String> {
    types.iter().map(ToString::to_string).collect()
}

/// The newest `limit` batches of kind `B`, newest first, each as `to_json` shows it with the job
/// of every stage of `stages` (or null).
async fn batch_rows<B: BatchKind>(
    config: &Config,
    stages: &[JobType],
    limit: u64,
    to_json: fn(&B) -> serde_json::Value,
) -> ApiResult<Vec<serde_json::Value>>
where
    dyn DatabaseClient: BatchStore<B>,
{
    let query =
        BatchQuery { limit: Some(limit), sort: SortOrder::Descending, ..Default::default() };
    let batches = BatchStore::<B>::get_batches(config.database().as_ref(), query).await?;
    let indexes: Vec<u64> = batches.iter().map(B::index).collect();
    let mut jobs = jobs_by_stage(config, stages, &indexes).await?;
    let rows = batches
        .iter()
        .map(|b| {
            let mut row = to_json(b);
            let stages: serde_json::Map<String, serde_json::Value> = stages
                .iter()
                .map(|t| {
                    let job = jobs.get_mut(&t.to_string()).and_then(|m| m.remove(&b.index()));
                    (t.to_string(), json!(job))
                })
                .collect();
            row["jobs"] = serde_json::Value::Object(stages);
            row
        })
        .collect();
    Ok(rows)
}

/// Newest batches first, each with the job of every stage (or null).
async fn data(State(config): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let q = QueryParams::parse(raw.as_deref());
    let limit = q.limit()?;
    let (snos_stages, aggregator_stages) = dashboard_stages(config.layer);

    let snos_rows = batch_rows(&config, &snos_stages, limit, snos_batch_json).await?;
    let aggregator_rows = if aggregator_stages.is_empty() {
        Vec::new()
    } else {
        batch_rows(&config, &aggregator_stages, limit, aggregator_batch_json).await?
    };

    // Pauses come from the database, so the page shows every process's, with who and when.
    let pauses = config.database().get_trigger_pauses().await?;
    let paused: Vec<String> = pauses.iter().map(|p| p.trigger.to_string()).collect();
    let pauses: Vec<serde_json::Value> = pauses.iter().map(trigger_pause_json).collect();
    let halted: Vec<String> =
        config.trigger_control.halted().iter().map(ToString::to_string).collect();
    let body = json!({
        "layer": config.layer.to_string(),
        "generated_at": chrono::Utc::now(),
        "paused_triggers": paused,
        "trigger_pauses": pauses,
        "halted_triggers": halted,
        "settlement_lag": config.watchdog.as_ref().and_then(|w| w.last_lag()),
        "snos": { "stages": stage_names(&snos_stages), "rows": snos_rows },
        "aggregator": { "stages": stage_names(&aggregator_stages), "rows": aggregator_rows },
    });
    Ok(json(StatusCode::OK, ApiResponse::ok(body)))
}
