//! The job and batch database (reference §4).
//!
//! [`DatabaseClient`] has a few required methods — the statements a backend really runs —
//! and provides every other one as a shortcut of them (the job reads are all
//! [`DatabaseClient::get_jobs`] with a [`JobQuery`]), so the backends implement only the former.

use orchestrator_utils::Retryable;
use std::slice::from_ref;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::types::{
    batch::{
        AggregatorBatch, AggregatorBatchQuery, AggregatorBatchStatus, AggregatorBatchUpdates,
        BatchKind, BatchQuery, BlockBatchLookup, SnosBatch, SnosBatchQuery, SnosBatchStatus,
        SnosBatchUpdates, SortOrder,
    },
    jobs::{JobItem, JobItemUpdates, JobStatus, JobType},
    queue::WorkerTriggerType,
};

use super::BoxError;

/// Result of a database operation.
pub type DatabaseResult<T> = Result<T, DatabaseError>;

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// A job of this type and internal id already exists.
    #[error("a {job_type} job with internal id {internal_id} already exists")]
    ItemAlreadyExists {
        /// Job type.
        job_type: JobType,
        /// Internal id.
        internal_id: u64,
    },
    /// The versioned update matched nothing: another writer changed the job first.
    #[error("job {id} was not updated: version {version} is outdated or the job is gone")]
    UpdateFailed {
        /// Job id.
        id: Uuid,
        /// The version the update expected.
        version: i32,
    },
    /// The update had no fields to change.
    #[error("no fields to update for job {0}")]
    NoUpdateFound(Uuid),
    /// A batch (or other record) to update does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// A batch violates a unique constraint (index, start or end block).
    #[error("conflicting batch: {0}")]
    Conflict(String),
    /// A stored record could not be decoded.
    #[error("corrupt record {what}: {reason}")]
    Corrupt {
        /// Which record.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database is unreachable, busy or timed out.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Anything else.
    #[error(transparent)]
    Other(BoxError),
}

impl DatabaseError {
    /// Wraps any error as `Other`.
    pub fn other(e: impl Into<BoxError>) -> Self {
        Self::Other(e.into())
    }
}

impl Retryable for DatabaseError {
    /// Whether the same operation may succeed later.
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::UpdateFailed { .. })
    }
}

/// The general job read behind the job shortcuts of [`DatabaseClient`]: every filter that is
/// set must match (an empty type or status list matches any); the jobs come by internal id,
/// then job type, in `sort` order.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobQuery<'a> {
    /// Only the job with this id.
    pub id: Option<Uuid>,
    /// Only jobs of these types.
    pub job_types: &'a [JobType],
    /// Only jobs in these statuses.
    pub statuses: &'a [JobStatus],
    /// No job in these statuses.
    pub excluded_statuses: &'a [JobStatus],
    /// Only these internal ids (an empty list matches nothing).
    pub internal_ids: Option<&'a [u64]>,
    /// Internal id at least this.
    pub min_internal_id: Option<u64>,
    /// Internal id at most this.
    pub max_internal_id: Option<u64>,
    /// Only jobs of this `metadata.common.orchestrator_version`.
    pub orchestrator_version: Option<&'a str>,
    /// Only jobs whose storage artifacts are not tagged for expiry yet.
    pub storage_artifacts_untagged: bool,
    /// Order of the internal ids.
    pub sort: SortOrder,
    /// At most this many.
    pub limit: Option<u64>,
}

impl JobQuery<'static> {
    /// The read of [`DatabaseClient::get_jobs_without_storage_artifacts_tagged`].
    pub fn storage_cleanup_page(min_internal_id: u64, limit: u64) -> Self {
        JobQuery {
            job_types: &[JobType::StateTransition],
            statuses: &[JobStatus::Completed],
            storage_artifacts_untagged: true,
            min_internal_id: Some(min_internal_id),
            limit: Some(limit),
            ..JobQuery::default()
        }
    }
}

/// The read behind [`DatabaseClient::get_jobs_without_successor`]: jobs of `job_type` in
/// `status` with internal id ≥ `min_internal_id` for which no job of `successor_type` with
/// the same internal id exists.
#[derive(Debug, Clone, Copy)]
pub struct WithoutSuccessorQuery<'a> {
    /// Type of the jobs.
    pub job_type: JobType,
    /// Status of the jobs.
    pub status: JobStatus,
    /// The type of the job that must not exist yet.
    pub successor_type: JobType,
    /// Only jobs of this `metadata.common.orchestrator_version`.
    pub orchestrator_version: Option<&'a str>,
    /// Internal id at least this.
    pub min_internal_id: u64,
}

/// The read behind [`DatabaseClient::get_snos_batches_without_jobs`]: SNOS batches in
/// `status` with index ≥ `min_index` that have no SnosRun job yet, at most `limit`.
#[derive(Debug, Clone, Copy)]
pub struct WithoutJobsQuery<'a> {
    /// Status of the batches.
    pub status: SnosBatchStatus,
    /// At most this many.
    pub limit: u64,
    /// Only batches of this orchestrator version.
    pub orchestrator_version: Option<&'a str>,
    /// Index at least this.
    pub min_index: u64,
}

/// What a batch write does when a batch with the same id is stored already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchWrite {
    /// Inserts only: a taken id is a `Conflict`, like a taken index, start or end block.
    Create,
    /// Inserts, or replaces the batch with the same id; sets `updated_at`.
    Upsert,
}

/// An operator's pause of a trigger, as stored: while it exists, no orchestrator process
/// sharing the database runs that trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerPause {
    /// The paused trigger (one pause per trigger).
    pub trigger: WorkerTriggerType,
    /// Who paused it: the admin caller's name (`"admin"` when it gave none).
    pub paused_by: String,
    /// When, to the millisecond (every backend stores milliseconds).
    pub paused_at: DateTime<Utc>,
    /// Why, if the caller said.
    pub reason: Option<String>,
}

impl TriggerPause {
    /// A pause of `trigger` by `paused_by`, now (truncated to the millisecond).
    pub fn new(
        trigger: WorkerTriggerType,
        paused_by: impl Into<String>,
        reason: Option<String>,
    ) -> Self {
        let now = Utc::now();
        // `now` is after 1970 and before 262143, so its milliseconds are a valid time.
        let paused_at = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
        Self { trigger, paused_by: paused_by.into(), paused_at, reason }
    }

    /// `paused_at` in unix milliseconds, as the SQL backends store it.
    pub fn paused_at_ms(&self) -> i64 {
        self.paused_at.timestamp_millis()
    }

    /// Rebuilds a stored pause from its fields; `Corrupt` (naming the record) when the trigger
    /// name is unknown to this version or the time is out of range.
    ///
    /// # Errors
    /// `Corrupt`.
    pub fn from_stored(
        trigger: &str,
        paused_by: String,
        paused_at_ms: i64,
        reason: Option<String>,
    ) -> DatabaseResult<Self> {
        let corrupt = |reason: String| DatabaseError::Corrupt {
            what: format!("trigger pause {trigger:?}"),
            reason,
        };
        let trigger_type = trigger.parse().map_err(|e| corrupt(format!("{e}")))?;
        let paused_at = DateTime::from_timestamp_millis(paused_at_ms)
            .ok_or_else(|| corrupt(format!("paused_at {paused_at_ms} ms is out of range")))?;
        Ok(Self { trigger: trigger_type, paused_by, paused_at, reason })
    }
}

/// Internal ids per query of [`DatabaseClient::get_jobs_by_internal_ids_and_type`], well below
/// the bound-parameter limits of the SQL databases.
const INTERNAL_IDS_PER_QUERY: usize = 10_000;

/// The first item of a result.
fn first<T>(items: DatabaseResult<Vec<T>>) -> DatabaseResult<Option<T>> {
    Ok(items?.into_iter().next())
}

/// The batch statements of a backend, written once for both kinds of batch `B`; the batch
/// methods of [`DatabaseClient`] are these for [`SnosBatch`] and [`AggregatorBatch`].
#[async_trait]
pub trait BatchStore<B: BatchKind>: Send + Sync {
    /// The batches matching the query.
    async fn get_batches(&self, query: BatchQuery<B::Status>) -> DatabaseResult<Vec<B>>;
    /// Writes the batch as `mode` says and syncs the block lookups; `Conflict` on a taken
    /// index or block range start/end.
    async fn write_batch(&self, batch: &B, mode: BatchWrite) -> DatabaseResult<B>;
    /// Applies `updates` to the batch with this index; `NotFound` if there is none.
    async fn update_batch(&self, index: u64, updates: B::Updates) -> DatabaseResult<B>;
}

/// Stores jobs, SNOS batches, aggregator batches and the block → batch lookup.
///
/// Contract shared by every backend (checked by the conformance suite):
/// - "not found" is `Ok(None)` (or an empty vector), never an error, except for updates of a
///   record that must exist;
/// - `create_job` is idempotent per `(job_type, internal_id)`: a second create fails with
///   `ItemAlreadyExists` and changes nothing;
/// - `update_job` is versioned: it applies only if the stored version equals `current.version`,
///   increments the version and sets `updated_at`; it sets only the fields present in the
///   updates (the others keep their *stored* value, whatever the caller's copy holds), and of
///   several concurrent updates from one version exactly one succeeds;
/// - batch writes keep `num_blocks = end_block - start_block + 1` and the block lookup rows in
///   sync with the batch ranges (a block a batch no longer covers has that batch's index
///   unset); index, start block and end block are each unique per batch kind (`Conflict`);
/// - `orchestrator_version` filters compare `metadata.common.orchestrator_version` (jobs) or the
///   batch's `orchestrator_version`; `None` matches every version;
/// - integers are stored as signed 64-bit on every backend: writing a `u64` above `i64::MAX`
///   fails, a filter value above it matches nothing (or everything, as an upper bound);
/// - trigger pauses: at most one per trigger; pausing a paused trigger keeps the first pause
///   (who, when, why) unchanged, also when processes race; resuming removes the pause and
///   returns it; every process sharing the database sees a pause at its next read.
///
/// A backend implements the required methods and [`BatchStore`]; the provided ones are
/// shortcuts of them and keep their contract whatever the backend. The conformance suite `conformance::database`
/// checks every line of this contract.
#[async_trait]
pub trait DatabaseClient:
    BatchStore<SnosBatch> + BatchStore<AggregatorBatch> + Send + Sync + std::fmt::Debug
{
    /// Checks the database answers.
    async fn health_check(&self) -> DatabaseResult<()>;
    /// Closes connections; later calls may fail.
    async fn disconnect(&self) -> DatabaseResult<()>;
    /// Switches to another database (or file) of the same server; used by tests.
    async fn switch_database(&self, name: &str) -> DatabaseResult<()>;

    // ---- jobs ----

    /// Inserts a new job unless `(job_type, internal_id)` is taken; whether it did.
    async fn insert_job(&self, job: &JobItem) -> DatabaseResult<bool>;
    /// Versioned update of at least one field; the stored job after the update, or `None`
    /// when the stored version is not `current.version` (or the job is gone).
    async fn write_job_update(
        &self,
        current: &JobItem,
        updates: JobItemUpdates,
    ) -> DatabaseResult<Option<JobItem>>;
    /// The jobs matching `query`, ordered and limited as it says.
    async fn get_jobs(&self, query: JobQuery<'_>) -> DatabaseResult<Vec<JobItem>>;
    /// The jobs matching `query`, by internal id ascending.
    async fn jobs_without_successor(
        &self,
        query: WithoutSuccessorQuery<'_>,
    ) -> DatabaseResult<Vec<JobItem>>;
    /// Jobs related to a block: proving/DA jobs whose `block_number` is it, StateTransition
    /// jobs whose `context.to_settle` is it, SnosRun jobs whose `start_block..=end_block`
    /// contains it, and Aggregator jobs of the aggregator batch whose range contains it
    /// (Aggregator metadata has no block range: the job's internal id is the batch index).
    async fn get_jobs_by_block_number(&self, block_number: u64) -> DatabaseResult<Vec<JobItem>>;

    /// Inserts a new job; `ItemAlreadyExists` when `(job_type, internal_id)` is taken.
    async fn create_job(&self, job: JobItem) -> DatabaseResult<JobItem> {
        if !self.insert_job(&job).await? {
            let (job_type, internal_id) = (job.job_type, job.internal_id);
            return Err(DatabaseError::ItemAlreadyExists { job_type, internal_id });
        }
        Ok(job)
    }
    /// Versioned update; returns the stored job after the update.
    async fn update_job(
        &self,
        current: &JobItem,
        updates: JobItemUpdates,
    ) -> DatabaseResult<JobItem> {
        if updates.is_empty() {
            return Err(DatabaseError::NoUpdateFound(current.id));
        }
        self.write_job_update(current, updates)
            .await?
            .ok_or(DatabaseError::UpdateFailed { id: current.id, version: current.version })
    }
    /// Jobs of `job_a_type` in `job_a_status` with internal id ≥ `min_internal_id` for which
    /// no job of `job_b_type` with the same internal id exists, by internal id ascending.
    async fn get_jobs_without_successor(
        &self,
        job_a_type: JobType,
        job_a_status: JobStatus,
        job_b_type: JobType,
        orchestrator_version: Option<&str>,
        min_internal_id: u64,
    ) -> DatabaseResult<Vec<JobItem>> {
        let query = WithoutSuccessorQuery {
            job_type: job_a_type,
            status: job_a_status,
            successor_type: job_b_type,
            orchestrator_version,
            min_internal_id,
        };
        self.jobs_without_successor(query).await
    }
    /// The job with this id.
    async fn get_job_by_id(&self, id: Uuid) -> DatabaseResult<Option<JobItem>> {
        first(self.get_jobs(JobQuery { id: Some(id), ..JobQuery::default() }).await)
    }
    /// The job of this type and internal id.
    async fn get_job_by_internal_id_and_type(
        &self,
        internal_id: u64,
        job_type: JobType,
    ) -> DatabaseResult<Option<JobItem>> {
        let query = JobQuery {
            job_types: from_ref(&job_type),
            min_internal_id: Some(internal_id),
            max_internal_id: Some(internal_id),
            ..JobQuery::default()
        };
        first(self.get_jobs(query).await)
    }
    /// The jobs of this type with these internal ids, by internal id ascending.
    async fn get_jobs_by_internal_ids_and_type(
        &self,
        internal_ids: &[u64],
        job_type: JobType,
    ) -> DatabaseResult<Vec<JobItem>> {
        let mut jobs = Vec::with_capacity(internal_ids.len());
        for chunk in internal_ids.chunks(INTERNAL_IDS_PER_QUERY) {
            let query = JobQuery {
                job_types: from_ref(&job_type),
                internal_ids: Some(chunk),
                ..JobQuery::default()
            };
            jobs.extend(self.get_jobs(query).await?);
        }
        jobs.sort_by_key(|j| j.internal_id);
        jobs.dedup_by_key(|j| j.internal_id);
        Ok(jobs)
    }
    /// The job of this type with the highest internal id.
    async fn get_latest_job_by_type(
        &self,
        job_type: JobType,
        orchestrator_version: Option<&str>,
    ) -> DatabaseResult<Option<JobItem>> {
        let query = JobQuery {
            job_types: from_ref(&job_type),
            orchestrator_version,
            sort: SortOrder::Descending,
            limit: Some(1),
            ..JobQuery::default()
        };
        first(self.get_jobs(query).await)
    }
    /// The job of this type and status with the highest internal id.
    async fn get_latest_job_by_type_and_status(
        &self,
        job_type: JobType,
        status: JobStatus,
        orchestrator_version: Option<&str>,
    ) -> DatabaseResult<Option<JobItem>> {
        let query = JobQuery {
            job_types: from_ref(&job_type),
            statuses: from_ref(&status),
            orchestrator_version,
            sort: SortOrder::Descending,
            limit: Some(1),
            ..JobQuery::default()
        };
        first(self.get_jobs(query).await)
    }
    /// Jobs of this type and status with internal id > `internal_id`, ascending.
    async fn get_jobs_after_internal_id_by_job_type(
        &self,
        job_type: JobType,
        status: JobStatus,
        internal_id: u64,
        orchestrator_version: Option<&str>,
    ) -> DatabaseResult<Vec<JobItem>> {
        let Some(min) = internal_id.checked_add(1) else { return Ok(Vec::new()) };
        let query = JobQuery {
            job_types: from_ref(&job_type),
            statuses: from_ref(&status),
            min_internal_id: Some(min),
            orchestrator_version,
            ..JobQuery::default()
        };
        self.get_jobs(query).await
    }
    /// Jobs of any of `job_types` (empty = any) in any of `statuses` (empty = any), by
    /// internal id ascending, at most `limit`.
    async fn get_jobs_by_types_and_statuses(
        &self,
        job_types: &[JobType],
        statuses: &[JobStatus],
        limit: Option<u64>,
        orchestrator_version: Option<&str>,
    ) -> DatabaseResult<Vec<JobItem>> {
        let query =
            JobQuery { job_types, statuses, limit, orchestrator_version, ..JobQuery::default() };
        self.get_jobs(query).await
    }
    /// Completed StateTransition jobs whose artifacts are not yet tagged for expiry, with
    /// internal id ≥ `min_internal_id`, by internal id ascending, at most `limit`: one page of
    /// the StorageCleanup trigger, which passes the last internal id of a page + 1 as the next
    /// `min_internal_id` (so a job whose tagging failed is not read again in the same run).
    ///
    /// Every backend serves it from an index that leaves the tagged jobs out (SQL: the
    /// partial index `jobs_storage_cleanup`; MongoDB: `job_type, status,
    /// metadata.specific.storage_artifacts_tagged_at, internal_id`): the read touches the
    /// untagged jobs of the page only, however many settled jobs are tagged already.
    async fn get_jobs_without_storage_artifacts_tagged(
        &self,
        min_internal_id: u64,
        limit: u64,
    ) -> DatabaseResult<Vec<JobItem>> {
        self.get_jobs(JobQuery::storage_cleanup_page(min_internal_id, limit)).await
    }
    /// Jobs of this type and status with `gte ≤ internal_id ≤ lte`, ascending.
    async fn get_jobs_between_internal_ids(
        &self,
        job_type: JobType,
        status: JobStatus,
        gte: u64,
        lte: u64,
    ) -> DatabaseResult<Vec<JobItem>> {
        let query = JobQuery {
            job_types: from_ref(&job_type),
            statuses: from_ref(&status),
            min_internal_id: Some(gte),
            max_internal_id: Some(lte),
            ..JobQuery::default()
        };
        self.get_jobs(query).await
    }
    /// The job of this type with the lowest internal id whose status is not in `statuses`.
    async fn get_oldest_job_by_type_excluding_statuses(
        &self,
        job_type: JobType,
        statuses: &[JobStatus],
        orchestrator_version: Option<&str>,
    ) -> DatabaseResult<Option<JobItem>> {
        let query = JobQuery {
            job_types: from_ref(&job_type),
            excluded_statuses: statuses,
            orchestrator_version,
            limit: Some(1),
            ..JobQuery::default()
        };
        first(self.get_jobs(query).await)
    }
    /// Jobs in this status, by internal id ascending.
    async fn get_jobs_by_status(&self, status: JobStatus) -> DatabaseResult<Vec<JobItem>> {
        self.get_jobs_by_types_and_statuses(&[], from_ref(&status), None, None).await
    }

    // ---- SNOS batches ----

    /// SNOS batches matching the query.
    async fn get_snos_batches(&self, query: SnosBatchQuery) -> DatabaseResult<Vec<SnosBatch>> {
        self.get_batches(query).await
    }
    /// The SNOS batches of an aggregator batch, ascending.
    async fn get_snos_batches_by_aggregator_index(
        &self,
        aggregator_index: u64,
    ) -> DatabaseResult<Vec<SnosBatch>>;
    /// The SNOS batches matching `query`, ascending.
    async fn snos_batches_without_jobs(
        &self,
        query: WithoutJobsQuery<'_>,
    ) -> DatabaseResult<Vec<SnosBatch>>;
    /// Writes the batch as `mode` says and syncs the block lookups; `Conflict` on a taken
    /// index or block range start/end.
    async fn write_snos_batch(
        &self,
        batch: &SnosBatch,
        mode: BatchWrite,
    ) -> DatabaseResult<SnosBatch> {
        self.write_batch(batch, mode).await
    }
    /// Applies `updates` to the SNOS batch with this index; `NotFound` if there is none.
    async fn update_snos_batch(
        &self,
        index: u64,
        updates: SnosBatchUpdates,
    ) -> DatabaseResult<SnosBatch> {
        self.update_batch(index, updates).await
    }

    /// SNOS batches in `status` with index ≥ `min_index` that have no SnosRun job yet,
    /// ascending, at most `limit`.
    async fn get_snos_batches_without_jobs(
        &self,
        status: SnosBatchStatus,
        limit: u64,
        orchestrator_version: Option<&str>,
        min_index: u64,
    ) -> DatabaseResult<Vec<SnosBatch>> {
        let query = WithoutJobsQuery { status, limit, orchestrator_version, min_index };
        self.snos_batches_without_jobs(query).await
    }
    /// The SNOS batch with the highest index.
    async fn get_latest_snos_batch(&self) -> DatabaseResult<Option<SnosBatch>> {
        let query =
            SnosBatchQuery { sort: SortOrder::Descending, limit: Some(1), ..Default::default() };
        first(self.get_snos_batches(query).await)
    }
    /// Sets the status of the SNOS batch with this index; `NotFound` if there is none.
    async fn update_snos_batch_status_by_index(
        &self,
        index: u64,
        status: SnosBatchStatus,
    ) -> DatabaseResult<SnosBatch> {
        self.update_snos_batch(index, SnosBatchUpdates { status: Some(status), end_block: None })
            .await
    }
    /// Inserts or replaces the batch (by id) and syncs the block lookups.
    async fn update_or_create_snos_batch(&self, batch: &SnosBatch) -> DatabaseResult<SnosBatch> {
        self.write_snos_batch(batch, BatchWrite::Upsert).await
    }
    /// Inserts a new batch; `Conflict` on a taken id, index or block range start/end.
    async fn create_snos_batch(&self, batch: SnosBatch) -> DatabaseResult<SnosBatch> {
        self.write_snos_batch(&batch, BatchWrite::Create).await
    }
    /// The lowest-index SNOS batch of an aggregator batch.
    async fn get_start_snos_batch_for_aggregator(
        &self,
        aggregator_index: u64,
    ) -> DatabaseResult<Option<SnosBatch>> {
        first(self.get_snos_batches_by_aggregator_index(aggregator_index).await)
    }

    // ---- aggregator batches ----

    /// Aggregator batches matching the query.
    async fn get_aggregator_batches(
        &self,
        query: AggregatorBatchQuery,
    ) -> DatabaseResult<Vec<AggregatorBatch>> {
        self.get_batches(query).await
    }
    /// Writes the batch as `mode` says and syncs the block lookups; `Conflict` on a taken
    /// index or block range start/end.
    async fn write_aggregator_batch(
        &self,
        batch: &AggregatorBatch,
        mode: BatchWrite,
    ) -> DatabaseResult<AggregatorBatch> {
        self.write_batch(batch, mode).await
    }
    /// Applies `updates` to the aggregator batch with this index; `NotFound` if there is none.
    async fn update_aggregator_batch(
        &self,
        index: u64,
        updates: AggregatorBatchUpdates,
    ) -> DatabaseResult<AggregatorBatch> {
        self.update_batch(index, updates).await
    }

    /// The aggregator batch with the highest index.
    async fn get_latest_aggregator_batch(&self) -> DatabaseResult<Option<AggregatorBatch>> {
        let query = AggregatorBatchQuery {
            sort: SortOrder::Descending,
            limit: Some(1),
            ..Default::default()
        };
        first(self.get_aggregator_batches(query).await)
    }
    /// The aggregator batch with the lowest index.
    async fn get_oldest_aggregator_batch(
        &self,
        orchestrator_version: Option<&str>,
    ) -> DatabaseResult<Option<AggregatorBatch>> {
        let query = AggregatorBatchQuery {
            orchestrator_version: orchestrator_version.map(str::to_owned),
            limit: Some(1),
            ..Default::default()
        };
        first(self.get_aggregator_batches(query).await)
    }
    /// Sets the status of the aggregator batch with this index; `NotFound` if there is none.
    async fn update_aggregator_batch_status_by_index(
        &self,
        index: u64,
        status: AggregatorBatchStatus,
    ) -> DatabaseResult<AggregatorBatch> {
        let updates = AggregatorBatchUpdates { status: Some(status), ..Default::default() };
        self.update_aggregator_batch(index, updates).await
    }
    /// Inserts or replaces the batch (by id) and syncs the block lookups.
    async fn update_or_create_aggregator_batch(
        &self,
        batch: &AggregatorBatch,
    ) -> DatabaseResult<AggregatorBatch> {
        self.write_aggregator_batch(batch, BatchWrite::Upsert).await
    }
    /// Inserts a new batch; `Conflict` on a taken id, index or block range start/end.
    async fn create_aggregator_batch(
        &self,
        batch: AggregatorBatch,
    ) -> DatabaseResult<AggregatorBatch> {
        self.write_aggregator_batch(&batch, BatchWrite::Create).await
    }
    /// The aggregator batch containing `block_number`, found through its block lookup.
    async fn get_aggregator_batch_for_block(
        &self,
        block_number: u64,
    ) -> DatabaseResult<Option<AggregatorBatch>> {
        let lookup = self.get_block_batch_lookup(block_number).await?;
        let Some(index) = lookup.and_then(|l| l.aggregator_batch_index) else { return Ok(None) };
        let query = AggregatorBatchQuery { indexes: vec![index], ..Default::default() };
        first(self.get_aggregator_batches(query).await)
    }

    // ---- lookups ----

    /// Which batches `block_number` belongs to.
    async fn get_block_batch_lookup(
        &self,
        block_number: u64,
    ) -> DatabaseResult<Option<BlockBatchLookup>>;

    // ---- trigger pauses ----

    /// Stores `pause` unless its trigger is paused already; whether it did (`false`: the stored
    /// pause is left as it was).
    async fn insert_trigger_pause(&self, pause: &TriggerPause) -> DatabaseResult<bool>;
    /// Removes the pause of `trigger`; the pause removed, `None` when it was not paused.
    async fn delete_trigger_pause(
        &self,
        trigger: WorkerTriggerType,
    ) -> DatabaseResult<Option<TriggerPause>>;
    /// The pause of `trigger`, if paused: one read by key, cheap enough for every trigger run.
    async fn get_trigger_pause(
        &self,
        trigger: WorkerTriggerType,
    ) -> DatabaseResult<Option<TriggerPause>>;
    /// Every pause, by trigger name.
    async fn get_trigger_pauses(&self) -> DatabaseResult<Vec<TriggerPause>>;
}
