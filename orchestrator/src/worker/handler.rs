//! The `JobHandlerTrait` every job type implements, and the registry of handlers.
//!
//! A job type lives in one file next to this one. The engine (`worker::service`) owns every
//! status transition; a handler only does the work and says how it went.

use std::{collections::HashMap, fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use orchestrator_protocol::compression::io::parse_felt_list;
use orchestrator_settlement_client_interface::SettlementClient;

pub use crate::worker::error::JobError;
use crate::{
    core::client::{DatabaseClient, StorageClient},
    types::{
        batch::{SnosBatch, SnosBatchQuery},
        jobs::{JobItem, JobSpecificMetadata, JobType, JobVerificationStatus},
    },
};

/// How a job type's jobs are retried and polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts {
    /// Times a job may be processed before a rejected verification fails it.
    pub process: u64,
    /// Pending verifications before the job times out.
    pub verification: u64,
    /// Delay between verification attempts (at most 900 s).
    pub polling_delay: Duration,
}

impl Attempts {
    /// `process` and `verification` attempts, polling every `polling_delay`.
    pub const fn new(process: u64, verification: u64, polling_delay: Duration) -> Self {
        Self { process, verification, polling_delay }
    }

    /// The same, polling every `polling_override` instead when it is set (tests shorten it).
    pub fn polling(self, polling_override: Option<Duration>) -> Self {
        Self { polling_delay: polling_override.unwrap_or(self.polling_delay), ..self }
    }
}

/// Index of the KZG-DA flag in an OS output.
pub const USE_KZG_DA_OFFSET: usize = 8;

/// Felts of the OS output header (up to and including `full_output`).
pub const OS_HEADER_LEN: usize = 10;

/// SNOS batch `index`: a database error is what the database says it is, a missing batch
/// fatal.
pub(crate) async fn load_snos_batch(
    database: &dyn DatabaseClient,
    index: u64,
) -> Result<SnosBatch, JobError> {
    database
        .get_snos_batches(SnosBatchQuery { indexes: vec![index], ..Default::default() })
        .await
        .map_err(|e| JobError::client(format!("cannot load SNOS batch {index}"), e))?
        .into_iter()
        .find(|b| b.index == index)
        .ok_or_else(|| JobError::fatal(format!("SNOS batch {index} does not exist")))
}

/// The artifact at `key` (`what` names it in errors): retryable when the storage says so
/// (a missing artifact is not: it will not appear by itself).
pub(crate) async fn read_artifact(
    storage: &dyn StorageClient,
    key: &str,
    what: &str,
) -> Result<bytes::Bytes, JobError> {
    storage
        .get_data(key)
        .await
        .map_err(|e| JobError::client(format!("cannot read {what} at {key}"), e))
}

/// Stores `data` at `key` (`what` names it in errors): retryable when the storage says so.
pub(crate) async fn write_artifact(
    storage: &dyn StorageClient,
    key: &str,
    data: bytes::Bytes,
    what: &str,
) -> Result<(), JobError> {
    storage
        .put_data(data, key)
        .await
        .map_err(|e| JobError::client(format!("cannot store {what} at {key}"), e))
}

/// The OS output stored at `key` (a JSON array of hex felts).
pub(crate) async fn read_os_output(
    storage: &dyn StorageClient,
    key: &str,
) -> Result<Vec<starknet::core::types::Felt>, JobError> {
    let bytes = read_artifact(storage, key, "the OS output").await?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| JobError::fatal_with(format!("the OS output at {key} is not UTF-8"), e))?;
    parse_felt_list(text)
        .map_err(|e| JobError::fatal_with(format!("the OS output at {key} does not parse"), e))
}

/// Creates, processes and verifies the jobs of one type.
///
/// Contract: `process_job` may be called more than once for the same job (after a crash or a
/// rejected verification), so it must be idempotent or detect earlier work (for example by a
/// dedup id); it may change `job.metadata.specific`, which the engine stores with the outcome.
#[async_trait]
pub trait JobHandlerTrait: Send + Sync + fmt::Debug {
    /// The job type handled.
    fn job_type(&self) -> JobType;

    /// Builds a new job; the default accepts the metadata as it is.
    async fn create_job(
        &self,
        internal_id: u64,
        specific: JobSpecificMetadata,
    ) -> Result<JobItem, JobError> {
        Ok(JobItem::new(self.job_type(), internal_id, specific))
    }

    /// Does the work; returns the external id (tx hash, prover key, …).
    async fn process_job(&self, job: &mut JobItem) -> Result<String, JobError>;

    /// Checks the outcome of the work.
    async fn verify_job(&self, job: &mut JobItem) -> Result<JobVerificationStatus, JobError>;

    /// How the type's jobs are retried and polled.
    fn attempts(&self) -> Attempts;

    /// Times a job may be processed before a rejected verification fails it.
    fn max_process_attempts(&self) -> u64 {
        self.attempts().process
    }

    /// Pending verifications before the job times out.
    fn max_verification_attempts(&self) -> u64 {
        self.attempts().verification
    }

    /// Delay between verification attempts (at most 900 s).
    fn verification_polling_delay(&self) -> Duration {
        self.attempts().polling_delay
    }

    /// Whether the job can be processed now; `Err(delay)` puts it back for `delay` without
    /// locking it (for example while an RPC is down).
    async fn check_ready_to_process(&self, _job: &JobItem) -> Result<(), Duration> {
        Ok(())
    }

    /// The settlement client this handler settles with (its fee and balance metrics are
    /// exported); `None` for every handler but the settlement one.
    fn settlement_client(&self) -> Option<Arc<dyn SettlementClient>> {
        None
    }
}

/// The handlers of the running layer, by job type.
#[derive(Clone, Default)]
pub struct JobHandlers {
    handlers: HashMap<JobType, Arc<dyn JobHandlerTrait>>,
}

impl JobHandlers {
    /// No handlers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a handler under its job type, replacing any earlier one.
    pub fn with(mut self, handler: Arc<dyn JobHandlerTrait>) -> Self {
        self.handlers.insert(handler.job_type(), handler);
        self
    }

    /// The handler of `job_type`.
    pub fn get(&self, job_type: JobType) -> Option<&Arc<dyn JobHandlerTrait>> {
        self.handlers.get(&job_type)
    }

    /// The settlement client of the registered handlers, if one settles.
    pub fn settlement_client(&self) -> Option<Arc<dyn SettlementClient>> {
        self.handlers.values().find_map(|h| h.settlement_client())
    }

    /// Job types with a handler.
    pub fn job_types(&self) -> impl Iterator<Item = JobType> + '_ {
        self.handlers.keys().copied()
    }
}

impl fmt::Debug for JobHandlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut types: Vec<_> = self.handlers.keys().collect();
        types.sort();
        f.debug_struct("JobHandlers").field("job_types", &types).finish()
    }
}
