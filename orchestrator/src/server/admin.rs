//! Admin routes (reference §11 bulk operations, plus trigger pause/resume). Mounted only with
//! `--admin-enabled`, under `/admin` and `/api/v1/admin`, behind the bearer-token check.
//!
//! Trigger pauses are stored in the database with who paused (`actor` in the JSON body or the
//! query, else the `X-Operator` header, else `admin`), when and why (`reason`), so every
//! orchestrator process sharing the database honours them and they survive restarts.

use std::time::Duration;

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::Response,
    routing::{get, post},
    Router,
};
use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{
    api::{parse_enum, parse_enums, QueryParams},
    error::{ApiError, ApiResult},
    response::{json, ApiResponse},
    AppState,
};
use crate::{
    core::client::database::TriggerPause,
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

/// A stored pause as the admin listing and the dashboard show it.
pub fn trigger_pause_json(pause: &TriggerPause) -> serde_json::Value {
    json!({
        "trigger": pause.trigger.to_string(),
        "paused_by": pause.paused_by,
        "paused_at": pause.paused_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "paused_at_ms": pause.paused_at_ms(),
        "reason": pause.reason,
    })
}

/// The triggers of this layer, the pauses (from the database: every process's) and the
/// triggers halted at this process's last runs.
async fn triggers_json(config: &Config) -> ApiResult<serde_json::Value> {
    let layer: Vec<String> =
        WorkerTriggerType::for_layer(config.layer).iter().map(ToString::to_string).collect();
    let pauses = config.database().get_trigger_pauses().await?;
    let paused: Vec<String> = pauses.iter().map(|p| p.trigger.to_string()).collect();
    let pauses: Vec<serde_json::Value> = pauses.iter().map(trigger_pause_json).collect();
    let halted: Vec<String> =
        config.trigger_control.halted().iter().map(ToString::to_string).collect();
    Ok(json!({ "triggers": layer, "paused": paused, "pauses": pauses, "halted": halted }))
}

async fn list_triggers(State(config): State<AppState>) -> ApiResult<Response> {
    Ok(json(StatusCode::OK, ApiResponse::ok(triggers_json(&config).await?)))
}

/// The caller's name when it gives none.
pub const DEFAULT_ACTOR: &str = "admin";

/// Longest accepted actor name, in characters.
const MAX_ACTOR_CHARS: usize = 100;

/// Longest accepted pause reason, in characters.
const MAX_REASON_CHARS: usize = 500;

/// The optional JSON body of pause and resume.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    actor: Option<String>,
    reason: Option<String>,
}

/// Who calls and why: `actor` and `reason` from the JSON body, else from the query, the actor
/// else from the `X-Operator` header, else [`DEFAULT_ACTOR`].
fn actor_and_reason(
    headers: &HeaderMap,
    raw: Option<&str>,
    body: &[u8],
) -> ApiResult<(String, Option<String>)> {
    let body: PauseBody = if body.iter().all(u8::is_ascii_whitespace) {
        PauseBody::default()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::BadRequest(format!(
                "invalid body: expected a JSON object such as {{\"actor\": \"alice\", \"reason\": \"prover down\"}} ({e})"
            ))
        })?
    };
    let q = QueryParams::parse(raw);
    let header = match headers.get("x-operator") {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            ApiError::BadRequest("invalid X-Operator header: not visible ASCII".to_owned())
        })?),
    };
    let actor = body
        .actor
        .or_else(|| q.get("actor").map(str::to_owned))
        .or_else(|| header.map(str::to_owned))
        .map(|a| a.trim().to_owned())
        .unwrap_or_else(|| DEFAULT_ACTOR.to_owned());
    if actor.is_empty()
        || actor.chars().count() > MAX_ACTOR_CHARS
        || actor.chars().any(char::is_control)
    {
        return Err(ApiError::invalid(
            "actor",
            &actor,
            format!("expected 1 to {MAX_ACTOR_CHARS} characters without control characters"),
        ));
    }
    let reason = body
        .reason
        .or_else(|| q.get("reason").map(str::to_owned))
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if let Some(r) = &reason {
        if r.chars().count() > MAX_REASON_CHARS {
            return Err(ApiError::invalid(
                "reason",
                r,
                format!("longer than {MAX_REASON_CHARS} characters"),
            ));
        }
    }
    Ok((actor, reason))
}

/// How a stored pause reads in a message: `by alice at 2025-01-01T00:00:00.000Z (prover down)`.
fn describe(pause: &TriggerPause) -> String {
    let at = pause.paused_at.to_rfc3339_opts(SecondsFormat::Millis, true);
    match &pause.reason {
        Some(reason) => format!("by {} at {at} ({reason})", pause.paused_by),
        None => format!("by {} at {at}", pause.paused_by),
    }
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

/// Stores a pause of the trigger in the database: every process sharing it stops running the
/// trigger at its next tick, and the pause outlives restarts. Pausing a paused trigger keeps
/// the first pause.
async fn pause_trigger(
    State(config): State<AppState>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let trigger = layer_trigger(&config, &raw)?;
    let (actor, reason) = actor_and_reason(&headers, query.as_deref(), &body)?;
    let pause = TriggerPause::new(trigger, actor, reason);
    let message = if config.database().insert_trigger_pause(&pause).await? {
        tracing::warn!(
            admin = true,
            %trigger,
            paused_by = %pause.paused_by,
            reason = pause.reason.as_deref().unwrap_or(""),
            "Operator paused job creation by a trigger"
        );
        format!("{trigger} paused {}", describe(&pause))
    } else {
        match config.database().get_trigger_pause(trigger).await? {
            Some(stored) => format!("{trigger} was already paused {}", describe(&stored)),
            None => format!("{trigger} was already paused, and has been resumed since"),
        }
    };
    Ok(ok(triggers_json(&config).await?, message))
}

/// Removes the trigger's pause from the database: every process runs it again at its next tick.
async fn resume_trigger(
    State(config): State<AppState>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let trigger = layer_trigger(&config, &raw)?;
    let (actor, _) = actor_and_reason(&headers, query.as_deref(), &body)?;
    let message = match config.database().delete_trigger_pause(trigger).await? {
        Some(pause) => {
            tracing::info!(
                admin = true,
                %trigger,
                resumed_by = %actor,
                paused_by = %pause.paused_by,
                "Operator resumed job creation by a trigger"
            );
            format!("{trigger} resumed by {actor} (it was paused {})", describe(&pause))
        }
        None => format!("{trigger} was not paused"),
    };
    Ok(ok(triggers_json(&config).await?, message))
}
