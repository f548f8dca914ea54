//! Admin routes (reference §11 bulk operations, plus trigger pause/resume). Mounted only with
//! `--admin-enabled`, under `/admin` and `/api/v1/admin`, behind the bearer-token check.

use std::time::Duration;

use axum::{
    extract::{Path, RawQuery, State},
    http::StatusCode,
    response::Response,
    routing::{get, post},
    Router,
};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::{
    api::{parse_enum, parse_enums, QueryParams},
    error::{ApiError, ApiResult},
    response::{json, ApiResponse},
    AppState,
};
use crate::{
    types::{
        batch::{AggregatorBatchQuery, AggregatorBatchStatus, SnosBatchQuery, SnosBatchStatus},
        jobs::{JobItem, JobStatus, JobType},
        queue::{JobAction, WorkerTriggerType},
    },
    worker::Config,
    worker::{service, EngineError},
};

/// Most jobs one bulk call acts on; call again for more.
pub const BULK_LIMIT: u64 = 1000;

/// The admin routes (mounted by the caller under `/admin`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/jobs/retry/failed", post(retry_failed))
        .route("/jobs/reverify/verification-timeout", post(reverify_timed_out))
        .route("/jobs/requeue/pending-verification", post(requeue_pending_verification))
        .route("/jobs/requeue/created", post(requeue_created))
        .route("/batches/close-open", post(close_open_batches))
        .route("/triggers", get(list_triggers))
        .route("/triggers/{trigger}/pause", post(pause_trigger))
        .route("/triggers/{trigger}/resume", post(resume_trigger))
}

/// Outcome of a bulk operation.
#[derive(Debug, Default, Serialize)]
pub struct BulkResult {
    /// Jobs acted on.
    pub success_count: usize,
    /// Their ids.
    pub successful_job_ids: Vec<Uuid>,
    /// Jobs the operation failed for (the log has each reason).
    pub failed_count: usize,
    /// Their ids.
    pub failed_job_ids: Vec<Uuid>,
}

fn ok<T: Serialize>(data: T, message: String) -> Response {
    json(StatusCode::OK, ApiResponse { success: true, data: Some(data), message: Some(message) })
}

/// Applies `op` to every job of the requested types in `status`.
async fn bulk<F, Fut>(
    config: &Config,
    raw: Option<String>,
    status: JobStatus,
    what: &str,
    op: F,
) -> ApiResult<Response>
where
    F: Fn(JobItem) -> Fut,
    Fut: std::future::Future<Output = Result<(), EngineError>>,
{
    let q = QueryParams::parse(raw.as_deref());
    let types: Vec<JobType> = parse_enums(&q, "job_type")?;
    let jobs = config
        .database()
        .get_jobs_by_types_and_statuses(&types, &[status], Some(BULK_LIMIT), None)
        .await?;
    let mut result = BulkResult::default();
    for job in jobs {
        let id = job.id;
        match op(job).await {
            Ok(()) => result.successful_job_ids.push(id),
            Err(e) => {
                tracing::warn!(job_id = %id, error = %e, "Admin {what} failed for a job");
                result.failed_job_ids.push(id);
            }
        }
    }
    result.success_count = result.successful_job_ids.len();
    result.failed_count = result.failed_job_ids.len();
    tracing::info!(
        admin = true,
        success = result.success_count,
        failed = result.failed_count,
        "Admin {what}"
    );
    let message =
        format!("{what}: {} succeeded, {} failed", result.success_count, result.failed_count);
    Ok(ok(result, message))
}

async fn retry_failed(
    State(config): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let c = config.clone();
    bulk(&config, raw, JobStatus::Failed, "retry of Failed jobs", move |job| {
        let c = c.clone();
        async move { service::retry_job(&c, job.id, false).await.map(|_| ()) }
    })
    .await
}

async fn reverify_timed_out(
    State(config): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let c = config.clone();
    bulk(
        &config,
        raw,
        JobStatus::VerificationTimeout,
        "re-verification of VerificationTimeout jobs",
        move |job| {
            let c = c.clone();
            async move { service::force_verify(&c, job.id, false).await.map(|_| ()) }
        },
    )
    .await
}

async fn requeue_pending_verification(
    State(config): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let c = config.clone();
    bulk(&config, raw, JobStatus::PendingVerification, "requeue of PendingVerification jobs", move |job| {
        let c = c.clone();
        async move { service::send_job_message(&c, &job, JobAction::Verify, Duration::ZERO).await }
    })
    .await
}

async fn requeue_created(
    State(config): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let c = config.clone();
    bulk(&config, raw, JobStatus::Created, "requeue of Created jobs", move |job| {
        let c = c.clone();
        async move { service::send_job_message(&c, &job, JobAction::Process, Duration::ZERO).await }
    })
    .await
}

async fn close_open_batches(State(config): State<AppState>) -> ApiResult<Response> {
    let db = config.database();
    let open_snos = db
        .get_snos_batches(SnosBatchQuery {
            statuses: vec![SnosBatchStatus::Open],
            ..Default::default()
        })
        .await?;
    let mut snos_closed = Vec::new();
    for b in open_snos {
        db.update_snos_batch_status_by_index(b.index, SnosBatchStatus::Closed).await?;
        snos_closed.push(b.index);
    }
    let open_aggregator = db
        .get_aggregator_batches(AggregatorBatchQuery {
            statuses: vec![AggregatorBatchStatus::Open],
            ..Default::default()
        })
        .await?;
    let mut aggregator_closed = Vec::new();
    for b in open_aggregator {
        db.update_aggregator_batch_status_by_index(b.index, AggregatorBatchStatus::Closed).await?;
        aggregator_closed.push(b.index);
    }
    tracing::info!(admin = true, snos = ?snos_closed, aggregator = ?aggregator_closed, "Admin closed the open batches");
    let message = format!(
        "closed {} SNOS and {} aggregator batches",
        snos_closed.len(),
        aggregator_closed.len()
    );
    Ok(ok(
        json!({
            "snos_batches_closed": snos_closed.len(),
            "aggregator_batches_closed": aggregator_closed.len(),
            "snos_batch_indexes": snos_closed,
            "aggregator_batch_indexes": aggregator_closed,
        }),
        message,
    ))
}

fn triggers_json(config: &Config) -> serde_json::Value {
    let layer: Vec<String> =
        WorkerTriggerType::for_layer(config.layer).iter().map(ToString::to_string).collect();
    let paused: Vec<String> =
        config.trigger_control.paused().iter().map(ToString::to_string).collect();
    let halted: Vec<String> =
        config.trigger_control.halted().iter().map(ToString::to_string).collect();
    json!({ "triggers": layer, "paused": paused, "halted": halted })
}

async fn list_triggers(State(config): State<AppState>) -> Response {
    json(StatusCode::OK, ApiResponse::ok(triggers_json(&config)))
}

fn layer_trigger(config: &Config, raw: &str) -> ApiResult<WorkerTriggerType> {
    let trigger: WorkerTriggerType = parse_enum("trigger", raw)?;
    if !config.runs_trigger(trigger) {
        let valid: Vec<String> =
            WorkerTriggerType::for_layer(config.layer).iter().map(ToString::to_string).collect();
        return Err(ApiError::invalid(
            "trigger",
            raw,
            format!(
                "not a trigger of layer {}; expected one of {}",
                config.layer,
                valid.join(", ")
            ),
        ));
    }
    Ok(trigger)
}

async fn pause_trigger(
    State(config): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<Response> {
    let trigger = layer_trigger(&config, &raw)?;
    let changed = config.trigger_control.pause(trigger);
    tracing::warn!(admin = true, %trigger, "Operator paused job creation by a trigger");
    let message =
        if changed { format!("{trigger} paused") } else { format!("{trigger} was already paused") };
    Ok(ok(triggers_json(&config), message))
}

async fn resume_trigger(
    State(config): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<Response> {
    let trigger = layer_trigger(&config, &raw)?;
    let changed = config.trigger_control.resume(trigger);
    tracing::info!(admin = true, %trigger, "Operator resumed job creation by a trigger");
    let message =
        if changed { format!("{trigger} resumed") } else { format!("{trigger} was not paused") };
    Ok(ok(triggers_json(&config), message))
}
