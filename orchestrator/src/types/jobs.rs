//! Jobs: the unit of work that moves a batch through one stage (reference §3.1).

use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ORCHESTRATOR_VERSION;

/// The six stages a batch goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[derive(strum::Display, strum::EnumString, strum::EnumIter, strum::AsRefStr)]
pub enum JobType {
    /// Runs the Starknet OS over a SNOS batch and stores the Cairo PIE.
    SnosRun,
    /// Publishes the state diff (L3 data availability).
    DataSubmission,
    /// Has the SNOS PIE proven.
    ProofCreation,
    /// Verifies the proof on the settlement layer (L3).
    ProofRegistration,
    /// Updates the state on the settlement layer.
    StateTransition,
    /// Aggregates the proofs of an aggregator batch (L2).
    Aggregator,
}

/// Where a job is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[derive(strum::Display, strum::EnumString, strum::EnumIter, strum::AsRefStr)]
pub enum JobStatus {
    /// Created, waiting to be processed.
    Created,
    /// A worker is processing it; `process_started_at` says since when.
    LockedForProcessing,
    /// Processed; waiting for the outcome to be verified.
    PendingVerification,
    /// Verified: done.
    Completed,
    /// Verification stayed pending for all its attempts.
    VerificationTimeout,
    /// Verification rejected it; it will be processed again.
    VerificationFailed,
    /// Gave up; needs an operator (retry moves it to `PendingRetry`).
    Failed,
    /// An operator asked for a retry of a failed job.
    PendingRetry,
}

impl JobStatus {
    /// Statuses from which a job may be locked for processing.
    pub const PROCESSABLE: [Self; 3] =
        [Self::Created, Self::VerificationFailed, Self::PendingRetry];
    /// Statuses in which a verification attempt is meaningful.
    pub const VERIFIABLE: [Self; 3] =
        [Self::PendingVerification, Self::VerificationTimeout, Self::VerificationFailed];

    /// Whether no further automatic transition will happen.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

/// The id the external system gave to the job's work (tx hash, prover key, bucket id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExternalId {
    /// A textual id.
    String(String),
    /// A numeric id.
    Number(usize),
}

impl Default for ExternalId {
    fn default() -> Self {
        Self::String(String::new())
    }
}

impl From<String> for ExternalId {
    fn from(value: String) -> Self {
        Self::String(value)
    }
}

impl From<&str> for ExternalId {
    fn from(value: &str) -> Self {
        Self::String(value.to_owned())
    }
}

impl fmt::Display for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String(s) => f.write_str(s),
            Self::Number(n) => write!(f, "{n}"),
        }
    }
}

/// A job as stored in the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobItem {
    /// Primary key.
    pub id: Uuid,
    /// The batch index (or block) this job works on; unique per job type.
    pub internal_id: u64,
    /// The stage.
    pub job_type: JobType,
    /// Where it is in its life cycle.
    pub status: JobStatus,
    /// The id of the external work (tx hash, prover key, …); empty until processed.
    pub external_id: ExternalId,
    /// Counters, timestamps, failure history and per-type data.
    pub metadata: JobMetadata,
    /// Optimistic-concurrency version; every update increments it.
    pub version: i32,
    /// Creation time, truncated to milliseconds (whole seconds in records written by earlier
    /// versions, which read back as they are).
    pub created_at: DateTime<Utc>,
    /// Last update time, truncated to milliseconds.
    pub updated_at: DateTime<Utc>,
}

impl JobItem {
    /// A new `Created` job with fresh common metadata.
    pub fn new(job_type: JobType, internal_id: u64, specific: JobSpecificMetadata) -> Self {
        let now = now_ms();
        Self {
            id: Uuid::new_v4(),
            internal_id,
            job_type,
            status: JobStatus::Created,
            external_id: ExternalId::default(),
            metadata: JobMetadata { common: CommonMetadata::default(), specific },
            version: 0,
            created_at: now,
            updated_at: now,
        }
    }
}

/// The current time truncated to whole seconds, as batch and lookup timestamps are stored.
pub fn now_secs() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// The current time truncated to milliseconds, as job timestamps are stored (`created_at`,
/// `updated_at` and the stage times of [`CommonMetadata`]): every store keeps milliseconds
/// exactly (BSON datetimes are milliseconds), so a job reads back equal to what was written.
pub fn now_ms() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// Metadata shared by all jobs plus the job type's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobMetadata {
    /// Attempt counters, timestamps and failure history.
    pub common: CommonMetadata,
    /// The job type's own data.
    pub specific: JobSpecificMetadata,
}

/// Attempt counters, timestamps and failure history of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommonMetadata {
    /// Processing attempts since creation or the last operator retry.
    pub process_attempt_no: u64,
    /// Operator retries (`Failed` → `PendingRetry`).
    pub process_retry_attempt_no: u64,
    /// Verification attempts in the current verification round.
    pub verification_attempt_no: u64,
    /// Forced re-verifications.
    pub verification_retry_attempt_no: u64,
    /// When the current processing started (this and the three below: milliseconds, see
    /// [`now_ms`]).
    #[serde(default)]
    pub process_started_at: Option<DateTime<Utc>>,
    /// When processing last finished.
    #[serde(default)]
    pub process_completed_at: Option<DateTime<Utc>>,
    /// When verification started.
    #[serde(default)]
    pub verification_started_at: Option<DateTime<Utc>>,
    /// When verification finished.
    #[serde(default)]
    pub verification_completed_at: Option<DateTime<Utc>>,
    /// The latest failure reason.
    #[serde(default)]
    pub failure_reason: Option<String>,
    /// Earlier failure reasons, oldest first.
    #[serde(default)]
    pub previous_failure_reasons: Vec<String>,
    /// The orchestrator version that created the job.
    pub orchestrator_version: String,
}

impl Default for CommonMetadata {
    fn default() -> Self {
        Self {
            process_attempt_no: 0,
            process_retry_attempt_no: 0,
            verification_attempt_no: 0,
            verification_retry_attempt_no: 0,
            process_started_at: None,
            process_completed_at: None,
            verification_started_at: None,
            verification_completed_at: None,
            failure_reason: None,
            previous_failure_reasons: Vec::new(),
            orchestrator_version: ORCHESTRATOR_VERSION.to_owned(),
        }
    }
}

impl CommonMetadata {
    /// Records a failure, keeping the previous reason in the history.
    pub fn record_failure(&mut self, reason: impl Into<String>) {
        if let Some(previous) = self.failure_reason.take() {
            self.previous_failure_reasons.push(previous);
        }
        self.failure_reason = Some(reason.into());
    }
}

/// Per-type job data, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum JobSpecificMetadata {
    /// SnosRun.
    Snos(SnosMetadata),
    /// ProofCreation and ProofRegistration.
    Proving(ProvingMetadata),
    /// DataSubmission.
    Da(DaMetadata),
    /// StateTransition.
    StateUpdate(StateUpdateMetadata),
    /// Aggregator.
    Aggregator(AggregatorMetadata),
}

/// The fields of a job's metadata the databases store in their own columns, so that the block
/// and settlement queries need no per-type code: a job type's metadata says here which block it
/// works on, which range it covers, which batch it settles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexedFields {
    /// The block the job works on (proving, DA).
    pub block_number: Option<u64>,
    /// The first and last block of the range it covers (SNOS).
    pub block_range: Option<(u64, u64)>,
    /// The block or batch it settles (state transition).
    pub to_settle: Option<u64>,
    /// When its storage artifacts were tagged for expiry (state transition).
    pub storage_artifacts_tagged_at: Option<DateTime<Utc>>,
}

impl JobSpecificMetadata {
    /// The fields of this metadata the databases index.
    pub fn indexed(&self) -> IndexedFields {
        match self {
            Self::Snos(m) => IndexedFields {
                block_range: Some((m.start_block, m.end_block)),
                ..Default::default()
            },
            Self::Proving(ProvingMetadata { block_number, .. })
            | Self::Da(DaMetadata { block_number, .. }) => {
                IndexedFields { block_number: Some(*block_number), ..Default::default() }
            }
            Self::StateUpdate(m) => IndexedFields {
                to_settle: Some(m.context.to_settle()),
                storage_artifacts_tagged_at: m.storage_artifacts_tagged_at,
                ..Default::default()
            },
            Self::Aggregator(_) => IndexedFields::default(),
        }
    }
}

/// SnosRun data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnosMetadata {
    /// The SNOS batch this job runs.
    pub snos_batch_index: u64,
    /// First block of the batch.
    pub start_block: u64,
    /// Last block of the batch (inclusive).
    pub end_block: u64,
    /// Number of blocks.
    pub num_blocks: u64,
    /// Whether the OS writes its full output.
    pub full_output: bool,
    /// Storage key of the Cairo PIE zip.
    pub cairo_pie_path: Option<String>,
    /// Storage key of the on-chain data (configured, not written).
    pub on_chain_data_path: Option<String>,
    /// Storage key of the raw OS output (JSON array of felts).
    pub snos_output_path: Option<String>,
    /// Storage key of the program output (bincode `Vec<[u8; 32]>`).
    pub program_output_path: Option<String>,
    /// The fact of the run, `0x` hex.
    pub snos_fact: Option<String>,
    /// Steps of the run.
    pub snos_n_steps: Option<usize>,
}

/// What a proving job sends to the prover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProvingInputType {
    /// A proof to verify (ProofRegistration).
    Proof(String),
    /// A Cairo PIE to prove (ProofCreation).
    CairoPie(String),
}

/// ProofCreation and ProofRegistration data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProvingMetadata {
    /// First block of the SNOS batch.
    pub block_number: u64,
    /// Storage key of the input.
    pub input_path: Option<ProvingInputType>,
    /// Fact that must be registered on chain before the job is verified.
    pub ensure_on_chain_registration: Option<String>,
    /// Storage key where the proof is stored, when it is downloaded.
    pub download_proof: Option<String>,
    /// Steps of the proven run.
    pub n_steps: Option<usize>,
    /// Atlantic bucket of the aggregator batch (L2).
    pub bucket_id: Option<String>,
    /// 1-based index of the job inside its bucket.
    pub bucket_job_index: Option<u64>,
}

/// DataSubmission data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DaMetadata {
    /// First block of the SNOS batch.
    pub block_number: u64,
    /// Storage key of the blob data.
    pub blob_data_path: Option<String>,
    /// Transaction that published the data.
    pub tx_hash: Option<String>,
}

/// Outcome of one settlement transaction attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxAttemptStatus {
    /// Included with enough confirmations.
    Finalized,
    /// Replaced by a same-nonce transaction with higher fees.
    Replaced,
    /// Not confirmed in time.
    TimedOut,
    /// Rejected by the node as underpriced.
    RejectedUnderpriced,
    /// Could not be submitted.
    SubmissionFailed,
}

/// One settlement transaction attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateUpdateTxAttempt {
    /// 1-based attempt number.
    pub attempt_no: u32,
    /// Transaction hash, `0x` hex.
    pub tx_hash: String,
    /// Nonce used.
    pub nonce: u64,
    /// Fee multiplier, formatted `x.xx`.
    pub gas_multiplier: String,
    /// Outcome.
    pub status: TxAttemptStatus,
    /// Error, when the attempt failed.
    pub error: Option<String>,
}

/// What a StateTransition settles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SettlementContext {
    /// A single block.
    Block(SettlementContextData),
    /// A batch (aggregator batch on L2, SNOS batch on L3).
    Batch(SettlementContextData),
}

impl SettlementContext {
    /// The block or batch index to settle.
    pub fn to_settle(&self) -> u64 {
        match self {
            Self::Block(d) | Self::Batch(d) => d.to_settle,
        }
    }
}

/// The block or batch of a settlement context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettlementContextData {
    /// Block or batch index to settle.
    pub to_settle: u64,
    /// The index whose settlement last failed.
    pub last_failed: Option<u64>,
}

/// StateTransition data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateUpdateMetadata {
    /// Storage key of the raw OS output.
    pub snos_output_path: Option<String>,
    /// Storage key of the program output.
    pub program_output_path: Option<String>,
    /// Storage key of the blob data (L3).
    pub blob_data_path: Option<String>,
    /// Storage key of the aggregator's DA segment (L2).
    pub da_segment_path: Option<String>,
    /// The settling transaction.
    pub tx_hash: Option<String>,
    /// Its nonce.
    pub tx_nonce: Option<u64>,
    /// Every attempt, oldest first.
    #[serde(default)]
    pub tx_attempts: Vec<StateUpdateTxAttempt>,
    /// What is settled.
    pub context: SettlementContext,
    /// When the settled artifacts were tagged for expiry.
    #[serde(default)]
    pub storage_artifacts_tagged_at: Option<DateTime<Utc>>,
}

impl StateUpdateMetadata {
    /// The metadata of a StateTransition settling batch `index`, before any artifact path or
    /// transaction is known.
    pub fn for_batch(index: u64) -> Self {
        Self {
            snos_output_path: None,
            program_output_path: None,
            blob_data_path: None,
            da_segment_path: None,
            tx_hash: None,
            tx_nonce: None,
            tx_attempts: Vec::new(),
            context: SettlementContext::Batch(SettlementContextData {
                to_settle: index,
                last_failed: None,
            }),
            storage_artifacts_tagged_at: None,
        }
    }
}

/// Aggregator data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AggregatorMetadata {
    /// Aggregator batch index.
    pub batch_num: u64,
    /// Atlantic bucket.
    pub bucket_id: Option<String>,
    /// Fact that must be registered on chain (SHARP, mock prover).
    pub ensure_on_chain_registration: Option<String>,
    /// Storage key of the aggregator proof, when downloaded.
    pub download_proof: Option<String>,
    /// Storage key prefix of the batch's blobs.
    pub blob_data_path: Option<String>,
    /// Storage key of the DA segment.
    pub da_segment_path: Option<String>,
    /// Storage key of the aggregator PIE.
    pub cairo_pie_path: Option<String>,
    /// Storage key of the aggregator OS output.
    pub snos_output_path: Option<String>,
    /// Storage key of the aggregator program output.
    pub program_output_path: Option<String>,
    /// The prover's aggregator query.
    pub aggregator_query_id: Option<String>,
}

/// Fields of a job to change in a versioned update; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobItemUpdates {
    /// New status.
    pub status: Option<JobStatus>,
    /// New external id.
    pub external_id: Option<ExternalId>,
    /// New metadata.
    pub metadata: Option<JobMetadata>,
}

impl JobItemUpdates {
    /// No changes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the status.
    pub fn status(mut self, status: JobStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Sets the external id.
    pub fn external_id(mut self, external_id: impl Into<ExternalId>) -> Self {
        self.external_id = Some(external_id.into());
        self
    }

    /// Sets the metadata.
    pub fn metadata(mut self, metadata: JobMetadata) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self.status.is_none() && self.external_id.is_none() && self.metadata.is_none()
    }

    /// Applies the changes to a copy of `job` (version and `updated_at` included), as a
    /// backend stores it.
    pub fn apply_to(&self, job: &JobItem) -> JobItem {
        let mut next = job.clone();
        if let Some(status) = self.status {
            next.status = status;
        }
        if let Some(external_id) = &self.external_id {
            next.external_id = external_id.clone();
        }
        if let Some(metadata) = &self.metadata {
            next.metadata = metadata.clone();
        }
        next.version = job.version + 1;
        next.updated_at = now_ms();
        next
    }
}

/// The outcome of verifying a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobVerificationStatus {
    /// Not decided yet; check again later.
    Pending,
    /// Done.
    Verified,
    /// Failed, with the reason.
    Rejected(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_through_json_with_a_type_tag() {
        let job = JobItem::new(
            JobType::SnosRun,
            7,
            JobSpecificMetadata::Snos(SnosMetadata { snos_batch_index: 7, ..Default::default() }),
        );
        let json = serde_json::to_value(&job).expect("serialize");
        assert_eq!(json["metadata"]["specific"]["type"], "Snos");
        assert_eq!(json["job_type"], "SnosRun");
        assert_eq!(json["external_id"], "");
        let back: JobItem = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, job);
    }

    #[test]
    fn timestamps_keep_milliseconds_and_whole_second_records_still_read() {
        let job = JobItem::new(
            JobType::SnosRun,
            1,
            JobSpecificMetadata::Snos(SnosMetadata { snos_batch_index: 1, ..Default::default() }),
        );
        assert_eq!(job.created_at.timestamp_subsec_nanos() % 1_000_000, 0, "whole milliseconds");
        let mut json = serde_json::to_value(&job).expect("serialize");
        // A record written when timestamps were whole seconds.
        json["created_at"] = "2026-01-02T03:04:05Z".into();
        json["metadata"]["common"]["process_started_at"] = "2026-01-02T03:04:06Z".into();
        let old: JobItem = serde_json::from_value(json.clone()).expect("old record");
        assert_eq!(old.created_at.timestamp_millis(), 1_767_323_045_000);
        // Milliseconds survive a round trip.
        json["created_at"] = "2026-01-02T03:04:05.123Z".into();
        let new: JobItem = serde_json::from_value(json).expect("new record");
        assert_eq!(new.created_at.timestamp_millis(), 1_767_323_045_123);
        let again: JobItem =
            serde_json::from_value(serde_json::to_value(&new).expect("serialize")).expect("read");
        assert_eq!(again, new);
        let next = JobItemUpdates::new().status(JobStatus::Completed).apply_to(&new);
        assert_eq!(next.updated_at.timestamp_subsec_nanos() % 1_000_000, 0);
        assert!(next.updated_at > new.created_at);
    }

    #[test]
    fn failure_history_keeps_previous_reasons_oldest_first() {
        let mut common = CommonMetadata::default();
        common.record_failure("a");
        common.record_failure("b");
        common.record_failure("c");
        assert_eq!(common.failure_reason.as_deref(), Some("c"));
        assert_eq!(common.previous_failure_reasons, vec!["a", "b"]);
    }

    #[test]
    fn updates_bump_the_version_and_leave_unset_fields() {
        let job = JobItem::new(
            JobType::Aggregator,
            1,
            JobSpecificMetadata::Aggregator(Default::default()),
        );
        let next = JobItemUpdates::new().status(JobStatus::Completed).apply_to(&job);
        assert_eq!(next.version, 1);
        assert_eq!(next.status, JobStatus::Completed);
        assert_eq!(next.external_id, job.external_id);
        assert!(JobItemUpdates::new().is_empty());
    }
}
