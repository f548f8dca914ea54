//! Job, batch and block routes of reference §11 (mounted at `/` and under `/api/v1`).

use std::{collections::HashMap, str::FromStr, time::Duration};

use axum::{
    extract::{Path, RawQuery, State},
    http::StatusCode,
    response::Response,
    routing::get,
    Router,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use strum::IntoEnumIterator;
use uuid::Uuid;

use super::{
    error::{ApiError, ApiResult},
    response::{json, ApiResponse},
    AppState,
};
use crate::{
    core::client::{database::BatchStore, DatabaseClient},
    types::{
        batch::{
            AggregatorBatch, AggregatorBatchQuery, BatchKind, BatchQuery, SnosBatch,
            SnosBatchQuery, SortOrder,
        },
        jobs::{JobItem, JobStatus, JobType},
        queue::QueueType,
    },
    worker::service,
    worker::Config,
};

/// Default and largest page of list routes.
pub const DEFAULT_LIMIT: u64 = 50;
/// Largest `limit` a list route accepts.
pub const MAX_LIMIT: u64 = 500;

/// The routes that change a job's state, as `GET` (the reference's) and `POST`. The server
/// puts them behind the admin token when one is set (unless `--open-job-actions`).
pub fn job_action_routes() -> Router<AppState> {
    let route = |action: JobAction| {
        get(move |s, p, q| job_action(action, s, p, q))
            .post(move |s, p, q| job_action(action, s, p, q))
    };
    Router::new()
        .route("/jobs/{id}/process", route(JobAction::Process))
        .route("/jobs/{id}/verify", route(JobAction::Verify))
        .route("/jobs/{id}/retry", route(JobAction::Retry))
}

/// The read-only routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/jobs", get(list_jobs))
        .route("/jobs/{id}", get(get_job))
        .route("/jobs/block/{block_number}/status", get(jobs_for_block))
        .route("/batches/snos", get(|s, q| batches(snos_batch_json, s, q)))
        .route("/batches/aggregator", get(|s, q| batches(aggregator_batch_json, s, q)))
        .route("/blocks/batch-for-block/{block_number}", get(batch_for_block))
        .route("/blocks/settlement-status/{block_number}", get(settlement_status))
}

// ---- parameter parsing ----

/// Query parameters in order; repeated keys keep every value.
#[derive(Debug, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        Self(url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()).into_owned().collect())
    }

    /// The last value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order (comma-separated values are split too).
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// `key` as a boolean (`true`/`false`/`1`/`0`), `default` when absent.
    pub fn bool(&self, key: &str, default: bool) -> ApiResult<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" | "" => Ok(false),
                _ => Err(ApiError::invalid(key, v, "expected true or false")),
            },
        }
    }

    /// `key` as an unsigned integer, if present.
    pub fn u64(&self, key: &str) -> ApiResult<Option<u64>> {
        self.get(key)
            .map(|v| {
                v.parse().map_err(|_| ApiError::invalid(key, v, "expected a non-negative integer"))
            })
            .transpose()
    }

    /// `limit`: default [`DEFAULT_LIMIT`], 1 to [`MAX_LIMIT`].
    pub fn limit(&self) -> ApiResult<u64> {
        match self.u64("limit")? {
            None => Ok(DEFAULT_LIMIT),
            Some(0) => {
                Err(ApiError::invalid("limit", "0", format!("must be between 1 and {MAX_LIMIT}")))
            }
            Some(n) if n > MAX_LIMIT => Err(ApiError::invalid(
                "limit",
                &n.to_string(),
                format!("must be between 1 and {MAX_LIMIT}"),
            )),
            Some(n) => Ok(n),
        }
    }

    /// `sort`: `asc` or `desc` (default `desc`: newest first).
    pub fn sort(&self) -> ApiResult<SortOrder> {
        match self.get("sort").map(str::to_ascii_lowercase).as_deref() {
            None | Some("desc") => Ok(SortOrder::Descending),
            Some("asc") => Ok(SortOrder::Ascending),
            Some(_) => Err(ApiError::invalid(
                "sort",
                self.get("sort").unwrap_or(""),
                "expected asc or desc",
            )),
        }
    }
}

/// Parses an enum value named by `param`, ignoring ASCII case; the error lists the valid
/// values.
pub fn parse_enum<T: FromStr + IntoEnumIterator + std::fmt::Display>(
    param: &str,
    value: &str,
) -> ApiResult<T> {
    if let Ok(v) = value.parse() {
        return Ok(v);
    }
    T::iter().find(|v| v.to_string().eq_ignore_ascii_case(value.trim())).ok_or_else(|| {
        let valid: Vec<String> = T::iter().map(|v| v.to_string()).collect();
        ApiError::invalid(param, value, format!("expected one of {}", valid.join(", ")))
    })
}

/// Parses every value of `param` as `T`.
pub fn parse_enums<T: FromStr + IntoEnumIterator + std::fmt::Display>(
    q: &QueryParams,
    param: &str,
) -> ApiResult<Vec<T>> {
    q.all(param).into_iter().map(|v| parse_enum(param, v)).collect()
}

/// A path segment that must be a job id.
pub fn parse_job_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| ApiError::invalid("job id", raw, "expected a UUID"))
}

/// A path segment that must be a block number.
pub fn parse_block(raw: &str) -> ApiResult<u64> {
    raw.parse()
        .map_err(|_| ApiError::invalid("block_number", raw, "expected a non-negative integer"))
}

fn ok<T: Serialize>(data: T) -> Response {
    json(StatusCode::OK, ApiResponse::ok(data))
}

fn ok_msg<T: Serialize>(data: T, message: impl Into<String>) -> Response {
    json(
        StatusCode::OK,
        ApiResponse { success: true, data: Some(data), message: Some(message.into()) },
    )
}

// ---- shapes ----

/// A job in listings: `{job_type, id, status}`.
#[derive(Debug, Serialize)]
pub struct JobSummary {
    /// Stage.
    pub job_type: JobType,
    /// Id.
    pub id: Uuid,
    /// Status.
    pub status: JobStatus,
}

impl From<&JobItem> for JobSummary {
    fn from(j: &JobItem) -> Self {
        Self { job_type: j.job_type, id: j.id, status: j.status }
    }
}

/// A job with its timestamps, as the settlement status lists it: unix seconds as the
/// reference shows them, and the same times in unix milliseconds (`*_ms`).
#[derive(Debug, Serialize)]
pub struct JobDetail {
    /// Stage.
    pub job_type: JobType,
    /// Id.
    pub id: Uuid,
    /// Batch index (or block) it works on.
    pub internal_id: u64,
    /// Status.
    pub status: JobStatus,
    /// Creation, unix seconds.
    pub created_at: i64,
    /// Creation, unix milliseconds.
    pub created_at_ms: i64,
    /// Last update, unix seconds.
    pub updated_at: i64,
    /// Last update, unix milliseconds.
    pub updated_at_ms: i64,
    /// Stage timestamps.
    pub timestamps: JobTimestamps,
}

/// Stage timestamps of a job, unix seconds and unix milliseconds.
#[derive(Debug, Serialize)]
pub struct JobTimestamps {
    /// Processing started, unix seconds.
    pub process_started_at: Option<i64>,
    /// Processing started, unix milliseconds.
    pub process_started_at_ms: Option<i64>,
    /// Processing finished, unix seconds.
    pub process_completed_at: Option<i64>,
    /// Processing finished, unix milliseconds.
    pub process_completed_at_ms: Option<i64>,
    /// Verification started, unix seconds.
    pub verification_started_at: Option<i64>,
    /// Verification started, unix milliseconds.
    pub verification_started_at_ms: Option<i64>,
    /// Verification finished (the job `Completed`), unix seconds.
    pub verification_completed_at: Option<i64>,
    /// Verification finished, unix milliseconds.
    pub verification_completed_at_ms: Option<i64>,
}

impl From<&JobItem> for JobDetail {
    fn from(j: &JobItem) -> Self {
        let c = &j.metadata.common;
        let secs = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp());
        let ms = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_millis());
        Self {
            job_type: j.job_type,
            id: j.id,
            internal_id: j.internal_id,
            status: j.status,
            created_at: j.created_at.timestamp(),
            created_at_ms: j.created_at.timestamp_millis(),
            updated_at: j.updated_at.timestamp(),
            updated_at_ms: j.updated_at.timestamp_millis(),
            timestamps: JobTimestamps {
                process_started_at: secs(c.process_started_at),
                process_started_at_ms: ms(c.process_started_at),
                process_completed_at: secs(c.process_completed_at),
                process_completed_at_ms: ms(c.process_completed_at),
                verification_started_at: secs(c.verification_started_at),
                verification_started_at_ms: ms(c.verification_started_at),
                verification_completed_at: secs(c.verification_completed_at),
                verification_completed_at_ms: ms(c.verification_completed_at),
            },
        }
    }
}

/// A SNOS batch as `/batches/snos` lists it.
pub fn snos_batch_json(b: &SnosBatch) -> serde_json::Value {
    json!({
        "index": b.index,
        "aggregator_batch_index": b.aggregator_batch_index,
        "start_block": b.start_block,
        "end_block": b.end_block,
        "num_blocks": b.num_blocks,
        "status": b.status,
        "created_at": b.created_at,
        "updated_at": b.updated_at,
        "metrics": {
            "state_diff_size": b.builtin_weights.state_diff_size,
            "sierra_gas": b.builtin_weights.sierra_gas,
            "proving_gas": b.builtin_weights.proving_gas,
        },
    })
}

/// An aggregator batch as `/batches/aggregator` lists it.
pub fn aggregator_batch_json(b: &AggregatorBatch) -> serde_json::Value {
    json!({
        "index": b.index,
        "start_block": b.start_block,
        "end_block": b.end_block,
        "num_blocks": b.num_blocks,
        "aggregator_input_size_upper_bound": b.aggregator_input_size_upper_bound,
        "status": b.status,
        "created_at": b.created_at,
        "updated_at": b.updated_at,
        "blob_len": b.blob_len,
    })
}

// ---- jobs ----

async fn list_jobs(State(config): State<AppState>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let q = QueryParams::parse(raw.as_deref());
    let Some(status) = q.get("status") else {
        let valid: Vec<String> = JobStatus::iter().map(|s| s.to_string()).collect();
        return Err(ApiError::BadRequest(format!(
            "status is required: one of {}",
            valid.join(", ")
        )));
    };
    let status: JobStatus = parse_enum("status", status)?;
    let types: Vec<JobType> = parse_enums(&q, "job_type")?;
    let limit = q.limit()?;
    let jobs = config
        .database()
        .get_jobs_by_types_and_statuses(&types, &[status], Some(limit), None)
        .await?;
    let jobs: Vec<JobSummary> = jobs.iter().map(JobSummary::from).collect();
    Ok(ok(json!({ "jobs": jobs })))
}

async fn get_job(State(config): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let id = parse_job_id(&id)?;
    let job = config
        .database()
        .get_job_by_id(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no job with id {id}")))?;
    Ok(ok(job))
}

/// Answers 429 when `queue` already holds the configured maximum of priority messages.
async fn admit_priority(config: &Config, queue: QueueType) -> ApiResult<()> {
    let waiting = config
        .queue()
        .approximate_len(queue)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let max = config.server.max_priority_queue_size as u64;
    if waiting >= max {
        return Err(ApiError::TooManyRequests(format!(
            "priority queue {queue} is full ({waiting} waiting, at most {max}); retry later or without priority"
        )));
    }
    Ok(())
}

/// An operator action on one job (`/jobs/{id}/process`, `/verify`, `/retry`); with
/// `?priority=true` the job goes through the action's priority queue.
#[derive(Debug, Clone, Copy)]
enum JobAction {
    /// Queue the job for processing again.
    Process,
    /// Force a verification.
    Verify,
    /// Retry a failed job.
    Retry,
}

/// Runs `action` on the job `id`; with `priority`, checks the priority queue has room (429
/// otherwise).
async fn job_action(
    action: JobAction,
    State(config): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let id = parse_job_id(&id)?;
    let priority = QueryParams::parse(raw.as_deref()).bool("priority", false)?;
    if priority {
        let queue = match action {
            JobAction::Verify => QueueType::PriorityVerificationQueue,
            JobAction::Process | JobAction::Retry => QueueType::PriorityProcessingQueue,
        };
        admit_priority(&config, queue).await?;
    }
    let (job, done) = match action {
        JobAction::Process => {
            let job = service::requeue_process(&config, id, priority).await?;
            tracing::info!(job_id = %id, priority, "Operator queued a job for processing");
            (job, "processing")
        }
        JobAction::Verify => {
            let job = service::force_verify(&config, id, priority).await?;
            tracing::info!(job_id = %id, priority, "Operator forced a verification");
            (job, "verification")
        }
        JobAction::Retry => {
            let job = service::retry_job(&config, id, priority).await?;
            tracing::info!(job_id = %id, priority, "Operator retried a failed job");
            (job, "retry")
        }
    };
    Ok(ok_msg(JobSummary::from(&job), format!("job {id} queued for {done}")))
}

async fn jobs_for_block(
    State(config): State<AppState>,
    Path(block): Path<String>,
) -> ApiResult<Response> {
    let block = parse_block(&block)?;
    let jobs = config.database().get_jobs_by_block_number(block).await?;
    let jobs: Vec<JobSummary> = jobs.iter().map(JobSummary::from).collect();
    Ok(ok(json!({ "jobs": jobs })))
}

// ---- batches ----

/// `/batches/snos` and `/batches/aggregator`: the batches of kind `B` selected by `index`,
/// `status`, `limit` and `sort`, each as `to_json` shows it.
async fn batches<B: BatchKind>(
    to_json: fn(&B) -> serde_json::Value,
    State(config): State<AppState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response>
where
    B::Status: FromStr + IntoEnumIterator + std::fmt::Display,
    dyn DatabaseClient: BatchStore<B>,
{
    let q = QueryParams::parse(raw.as_deref());
    let query = BatchQuery {
        indexes: q.u64("index")?.into_iter().collect(),
        statuses: parse_enums(&q, "status")?,
        limit: Some(q.limit()?),
        orchestrator_version: None,
        sort: q.sort()?,
    };
    let batches = BatchStore::<B>::get_batches(config.database().as_ref(), query).await?;
    let batches: Vec<_> = batches.iter().map(to_json).collect();
    Ok(ok(json!({ "batches": batches })))
}

// ---- blocks ----

async fn batch_for_block(
    State(config): State<AppState>,
    Path(block): Path<String>,
) -> ApiResult<Response> {
    let block = parse_block(&block)?;
    let batch =
        config.database().get_aggregator_batch_for_block(block).await?.ok_or_else(|| {
            ApiError::NotFound(format!("no aggregator batch contains block {block} yet"))
        })?;
    Ok(ok(json!({ "batch_number": batch.index })))
}

async fn settlement_status(
    State(config): State<AppState>,
    Path(block): Path<String>,
) -> ApiResult<Response> {
    let block = parse_block(&block)?;
    let db = config.database();
    let lookup = db.get_block_batch_lookup(block).await?;
    let snos_index = lookup.as_ref().and_then(|l| l.snos_batch_index);
    let aggregator_index = lookup.as_ref().and_then(|l| l.aggregator_batch_index);
    let snos_batch = match snos_index {
        Some(i) => db
            .get_snos_batches(SnosBatchQuery {
                indexes: vec![i],
                limit: Some(1),
                ..Default::default()
            })
            .await?
            .first()
            .map(snos_batch_json),
        None => None,
    };
    let (aggregator_batch, aggregator_proof_jobs) = match aggregator_index {
        Some(i) => {
            let batch = db
                .get_aggregator_batches(AggregatorBatchQuery {
                    indexes: vec![i],
                    limit: Some(1),
                    ..Default::default()
                })
                .await?
                .first()
                .map(aggregator_batch_json);
            // The proofs the aggregation waits for: one ProofCreation job per member SNOS batch.
            let members: Vec<u64> =
                db.get_snos_batches_by_aggregator_index(i).await?.iter().map(|b| b.index).collect();
            let proofs =
                db.get_jobs_by_internal_ids_and_type(&members, JobType::ProofCreation).await?;
            (batch, proofs.iter().map(JobDetail::from).collect::<Vec<_>>())
        }
        None => (None, Vec::new()),
    };
    let block_jobs: Vec<JobDetail> =
        db.get_jobs_by_block_number(block).await?.iter().map(JobDetail::from).collect();
    if lookup.is_none() && block_jobs.is_empty() {
        return Err(ApiError::NotFound(format!("block {block} is in no batch and no job yet")));
    }
    Ok(ok(json!({
        "block_number": block,
        "snos_batch": snos_batch,
        "aggregator_batch": aggregator_batch,
        "block_jobs": block_jobs,
        "aggregator_proof_jobs": aggregator_proof_jobs,
    })))
}

/// How long the dashboard data may be cached by the browser.
pub const DASHBOARD_REFRESH: Duration = Duration::from_secs(3);

/// Stages of the dashboard per layer: SNOS-batch stages, then aggregator-batch stages (from
/// the stage table).
pub fn dashboard_stages(layer: crate::types::Layer) -> (Vec<JobType>, Vec<JobType>) {
    use crate::types::stage::{dashboard_columns, BatchKind};
    (dashboard_columns(layer, BatchKind::Snos), dashboard_columns(layer, BatchKind::Aggregator))
}

/// Jobs of `types` for the batches `indexes`: `{stage: {index: summary}}`.
pub async fn jobs_by_stage(
    config: &Config,
    types: &[JobType],
    indexes: &[u64],
) -> ApiResult<HashMap<String, HashMap<u64, JobSummary>>> {
    let mut out = HashMap::new();
    for t in types {
        let jobs = config.database().get_jobs_by_internal_ids_and_type(indexes, *t).await?;
        out.insert(
            t.to_string(),
            jobs.iter().map(|j| (j.internal_id, JobSummary::from(j))).collect(),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::jobs::{JobSpecificMetadata, SnosMetadata};

    #[test]
    fn job_detail_shows_seconds_and_milliseconds() {
        let at = |ms: i64| DateTime::from_timestamp_millis(ms).expect("time");
        let mut job = JobItem::new(
            JobType::SnosRun,
            4,
            JobSpecificMetadata::Snos(SnosMetadata { snos_batch_index: 4, ..Default::default() }),
        );
        job.created_at = at(1_767_323_045_123);
        job.updated_at = at(1_767_323_047_999);
        job.metadata.common.process_started_at = Some(at(1_767_323_045_250));
        let v = serde_json::to_value(JobDetail::from(&job)).expect("serialize");
        assert_eq!(v["created_at"], 1_767_323_045);
        assert_eq!(v["created_at_ms"], 1_767_323_045_123_i64);
        assert_eq!(v["updated_at"], 1_767_323_047);
        assert_eq!(v["updated_at_ms"], 1_767_323_047_999_i64);
        assert_eq!(v["timestamps"]["process_started_at"], 1_767_323_045);
        assert_eq!(v["timestamps"]["process_started_at_ms"], 1_767_323_045_250_i64);
        assert!(v["timestamps"]["verification_completed_at"].is_null());
        assert!(v["timestamps"]["verification_completed_at_ms"].is_null());
    }
}
