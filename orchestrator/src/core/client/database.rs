//! The job and batch database (reference §4).

use async_trait::async_trait;
use uuid::Uuid;

use crate::types::{
    batch::{
        AggregatorBatch, AggregatorBatchQuery, AggregatorBatchStatus, AggregatorBatchUpdates,
        BlockBatchLookup, SnosBatch, SnosBatchQuery, SnosBatchStatus, SnosBatchUpdates,
    },
    jobs::{JobItem, JobItemUpdates, JobStatus, JobType},
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
    /// Whether the same operation may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::UpdateFailed { .. })
    }

    /// Wraps any error as `Other`.
    pub fn other(e: impl Into<BoxError>) -> Self {
        Self::Other(e.into())
    }
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
///   fails, a filter value above it matches nothing (or everything, as an upper bound).
///
/// The conformance suite `conformance::database` checks every line of this contract.
#[async_trait]
pub trait DatabaseClient: Send + Sync + std::fmt::Debug {
    /// Checks the database answers.
    async fn health_check(&self) -> DatabaseResult<()>;
    /// Closes connections; later calls may fail.
    async fn disconnect(&self) -> DatabaseResult<()>;
    /// Switches to another database (or file) of the same server; used by tests.
    async fn switch_database(&self, name: &str) -> DatabaseResult<()>;

    // ---- jobs ----

    /// Inserts a new job; `ItemAlreadyExists` when `(job_type, internal_id)` is taken.
    async fn create_job(&self, job: JobItem) -> DatabaseResult<JobItem>;
    /// The job with this id.
    async fn get_job_by_id(&self, id: Uuid) -> DatabaseResult<Option<JobItem>>;
    /// The job of this type and internal id.
    async fn get_job_by_internal_id_and_type(
        &self,
        internal_id: u64,
        job_type: JobType,
    ) -> DatabaseResult<Option<JobItem>>;
    /// The jobs of this type with these internal ids, by internal id ascending.
    async fn get_jobs_by_internal_ids_and_type(
        &self,
        internal_ids: &[u64],
        job_type: JobType,
    ) -> DatabaseResult<Vec<JobItem>>;
    /// Versioned update; returns the stored job after the update.
    async fn update_job(
        &self,
        current: &JobItem,
        updates: JobItemUpdates,
    ) -> DatabaseResult<JobItem>;
    /// The job of this type with the highest internal id.
    async fn get_latest_job_by_type(
        &self,
        job_type: JobType,
        orchestrator_version: Option<&str>,
    ) -> DatabaseResult<Option<JobItem>>;
    /// The job of this type and status with the highest internal id.
    async fn get_latest_job_by_type_and_status(
        &self,
        job_type: JobType,
        status: JobStatus,
        orchestrator_version: Option<&str>,
    ) -> DatabaseResult<Option<JobItem>>;
    /// Jobs of `job_a_type` in `job_a_status` with internal id ≥ `min_internal_id` for which
    /// no job of `job_b_type` with the same internal id exists, by internal id ascending.
    async fn get_jobs_without_successor(
        &self,
        job_a_type: JobType,
        job_a_status: JobStatus,
        job_b_type: JobType,
        orchestrator_version: Option<&str>,
        min_internal_id: u64,
    ) -> DatabaseResult<Vec<JobItem>>;
    /// Jobs of this type and status with internal id > `internal_id`, ascending.
    async fn get_jobs_after_internal_id_by_job_type(
        &self,
        job_type: JobType,
        status: JobStatus,
        internal_id: u64,
        orchestrator_version: Option<&str>,
    ) -> DatabaseResult<Vec<JobItem>>;
    /// Jobs of any of `job_types` (empty = any) in any of `statuses` (empty = any), by
    /// internal id ascending, at most `limit`.
    async fn get_jobs_by_types_and_statuses(
        &self,
        job_types: &[JobType],
        statuses: &[JobStatus],
        limit: Option<u64>,
        orchestrator_version: Option<&str>,
    ) -> DatabaseResult<Vec<JobItem>>;
    /// Completed StateTransition jobs whose artifacts are not yet tagged for expiry.
    async fn get_jobs_without_storage_artifacts_tagged(
        &self,
        limit: Option<u64>,
    ) -> DatabaseResult<Vec<JobItem>>;
    /// Jobs of this type and status with `gte ≤ internal_id ≤ lte`, ascending.
    async fn get_jobs_between_internal_ids(
        &self,
        job_type: JobType,
        status: JobStatus,
        gte: u64,
        lte: u64,
    ) -> DatabaseResult<Vec<JobItem>>;
    /// The job of this type with the lowest internal id whose status is not in `statuses`.
    async fn get_oldest_job_by_type_excluding_statuses(
        &self,
        job_type: JobType,
        statuses: &[JobStatus],
        orchestrator_version: Option<&str>,
    ) -> DatabaseResult<Option<JobItem>>;
    /// Jobs related to a block: proving/DA jobs whose `block_number` is it, StateTransition
    /// jobs whose `context.to_settle` is it, SnosRun jobs whose `start_block..=end_block`
    /// contains it, and Aggregator jobs of the aggregator batch whose range contains it
    /// (Aggregator metadata has no block range: the job's internal id is the batch index).
    async fn get_jobs_by_block_number(&self, block_number: u64) -> DatabaseResult<Vec<JobItem>>;
    /// Jobs in this status, by internal id ascending.
    async fn get_jobs_by_status(&self, status: JobStatus) -> DatabaseResult<Vec<JobItem>>;

    // ---- SNOS batches ----

    /// The SNOS batch with the highest index.
    async fn get_latest_snos_batch(&self) -> DatabaseResult<Option<SnosBatch>>;
    /// SNOS batches matching the query.
    async fn get_snos_batches(&self, query: SnosBatchQuery) -> DatabaseResult<Vec<SnosBatch>>;
    /// Sets the status of the SNOS batch with this index; `NotFound` if there is none.
    async fn update_snos_batch_status_by_index(
        &self,
        index: u64,
        status: SnosBatchStatus,
    ) -> DatabaseResult<SnosBatch>;
    /// SNOS batches in `status` with index ≥ `min_index` that have no SnosRun job yet,
    /// ascending, at most `limit`.
    async fn get_snos_batches_without_jobs(
        &self,
        status: SnosBatchStatus,
        limit: u64,
        orchestrator_version: Option<&str>,
        min_index: u64,
    ) -> DatabaseResult<Vec<SnosBatch>>;
    /// Inserts or replaces the batch (by id) and syncs the block lookups.
    async fn update_or_create_snos_batch(&self, batch: &SnosBatch) -> DatabaseResult<SnosBatch>;
    /// Inserts a new batch; `Conflict` on a taken index or block range start/end.
    async fn create_snos_batch(&self, batch: SnosBatch) -> DatabaseResult<SnosBatch>;
    /// Applies `updates` to the SNOS batch with this index; `NotFound` if there is none.
    async fn update_snos_batch(
        &self,
        index: u64,
        updates: SnosBatchUpdates,
    ) -> DatabaseResult<SnosBatch>;
    /// The SNOS batches of an aggregator batch, ascending.
    async fn get_snos_batches_by_aggregator_index(
        &self,
        aggregator_index: u64,
    ) -> DatabaseResult<Vec<SnosBatch>>;
    /// The lowest-index SNOS batch of an aggregator batch.
    async fn get_start_snos_batch_for_aggregator(
        &self,
        aggregator_index: u64,
    ) -> DatabaseResult<Option<SnosBatch>>;

    // ---- aggregator batches ----

    /// The aggregator batch with the highest index.
    async fn get_latest_aggregator_batch(&self) -> DatabaseResult<Option<AggregatorBatch>>;
    /// The aggregator batch with the lowest index.
    async fn get_oldest_aggregator_batch(
        &self,
        orchestrator_version: Option<&str>,
    ) -> DatabaseResult<Option<AggregatorBatch>>;
    /// Aggregator batches matching the query.
    async fn get_aggregator_batches(
        &self,
        query: AggregatorBatchQuery,
    ) -> DatabaseResult<Vec<AggregatorBatch>>;
    /// Sets the status of the aggregator batch with this index; `NotFound` if there is none.
    async fn update_aggregator_batch_status_by_index(
        &self,
        index: u64,
        status: AggregatorBatchStatus,
    ) -> DatabaseResult<AggregatorBatch>;
    /// Applies `updates` to the aggregator batch with this index; `NotFound` if there is none.
    async fn update_aggregator_batch(
        &self,
        index: u64,
        updates: AggregatorBatchUpdates,
    ) -> DatabaseResult<AggregatorBatch>;
    /// Inserts or replaces the batch (by id) and syncs the block lookups.
    async fn update_or_create_aggregator_batch(
        &self,
        batch: &AggregatorBatch,
    ) -> DatabaseResult<AggregatorBatch>;
    /// Inserts a new batch; `Conflict` on a taken index or block range start/end.
    async fn create_aggregator_batch(
        &self,
        batch: AggregatorBatch,
    ) -> DatabaseResult<AggregatorBatch>;
    /// The aggregator batch containing `block_number`.
    async fn get_aggregator_batch_for_block(
        &self,
        block_number: u64,
    ) -> DatabaseResult<Option<AggregatorBatch>>;

    // ---- lookups ----

    /// Which batches `block_number` belongs to.
    async fn get_block_batch_lookup(
        &self,
        block_number: u64,
    ) -> DatabaseResult<Option<BlockBatchLookup>>;
}
