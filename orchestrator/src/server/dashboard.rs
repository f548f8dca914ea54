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
    api::{aggregator_batch_json, dashboard_stages, jobs_by_stage, snos_batch_json, QueryParams},
    error::ApiResult,
    response::{json, ApiResponse},
    AppState,
};
use crate::types::{
    batch::{AggregatorBatchQuery, SnosBatchQuery, SortOrder},
    jobs::JobType,
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

/// Newest batches first, each with the job of every stage (or null).
async fn data(State(config): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let q = QueryParams::parse(raw.as_deref());
    let limit = q.limit()?;
    let db = config.database();
    let (snos_stages, aggregator_stages) = dashboard_stages(config.layer);

    let snos = db
        .get_snos_batches(SnosBatchQuery {
            limit: Some(limit),
            sort: SortOrder::Descending,
            ..Default::default()
        })
        .await?;
    let indexes: Vec<u64> = snos.iter().map(|b| b.index).collect();
    let mut jobs = jobs_by_stage(&config, &snos_stages, &indexes).await?;
    let snos_rows: Vec<_> = snos
        .iter()
        .map(|b| {
            let mut row = snos_batch_json(b);
            let stages: serde_json::Map<String, serde_json::Value> = snos_stages
                .iter()
                .map(|t| {
                    let job = jobs.get_mut(&t.to_string()).and_then(|m| m.remove(&b.index));
                    (t.to_string(), json!(job))
                })
                .collect();
            row["jobs"] = serde_json::Value::Object(stages);
            row
        })
        .collect();

    let mut aggregator_rows = Vec::new();
    if !aggregator_stages.is_empty() {
        let batches = db
            .get_aggregator_batches(AggregatorBatchQuery {
                limit: Some(limit),
                sort: SortOrder::Descending,
                ..Default::default()
            })
            .await?;
        let indexes: Vec<u64> = batches.iter().map(|b| b.index).collect();
        let mut jobs = jobs_by_stage(&config, &aggregator_stages, &indexes).await?;
        for b in &batches {
            let mut row = aggregator_batch_json(b);
            let stages: serde_json::Map<String, serde_json::Value> = aggregator_stages
                .iter()
                .map(|t| {
                    let job = jobs.get_mut(&t.to_string()).and_then(|m| m.remove(&b.index));
                    (t.to_string(), json!(job))
                })
                .collect();
            row["jobs"] = serde_json::Value::Object(stages);
            aggregator_rows.push(row);
        }
    }

    let paused: Vec<String> =
        config.trigger_control.paused().iter().map(ToString::to_string).collect();
    let halted: Vec<String> =
        config.trigger_control.halted().iter().map(ToString::to_string).collect();
    let body = json!({
        "layer": config.layer.to_string(),
        "generated_at": chrono::Utc::now(),
        "paused_triggers": paused,
        "halted_triggers": halted,
        "snos": { "stages": stage_names(&snos_stages), "rows": snos_rows },
        "aggregator": { "stages": stage_names(&aggregator_stages), "rows": aggregator_rows },
    });
    Ok(json(StatusCode::OK, ApiResponse::ok(body)))
}
