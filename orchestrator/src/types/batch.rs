//! SNOS batches, aggregator batches and the block → batch lookup (reference §3.2).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{jobs::now_secs, ORCHESTRATOR_VERSION};

/// Life cycle of a SNOS batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[derive(strum::Display, strum::EnumString, strum::EnumIter, strum::AsRefStr)]
#[strum(ascii_case_insensitive)]
pub enum SnosBatchStatus {
    /// Still taking blocks.
    Open,
    /// Closed; its SnosRun job may be created.
    Closed,
    /// Its SnosRun job exists.
    SnosJobCreated,
    /// Settled (L3).
    Completed,
}

/// Life cycle of an aggregator batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[derive(strum::Display, strum::EnumString, strum::EnumIter, strum::AsRefStr)]
#[strum(ascii_case_insensitive)]
pub enum AggregatorBatchStatus {
    /// Still taking blocks.
    Open,
    /// Closed; waits for its SNOS proofs.
    Closed,
    /// Its Aggregator job exists.
    PendingAggregatorRun,
    /// The aggregation was submitted.
    PendingAggregatorVerification,
    /// The aggregation is proven; the state update may be sent.
    ReadyForStateUpdate,
    /// The prover failed the aggregation.
    VerificationFailed,
    /// The aggregation failed.
    AggregationFailed,
    /// The state update failed.
    StateUpdateFailed,
    /// Settled.
    Completed,
}

/// Bouncer weights of a block or a SNOS batch (the blockifier's resource counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BouncerWeights {
    /// L1 gas.
    pub l1_gas: u64,
    /// Length of the messages segment.
    pub message_segment_length: u64,
    /// Number of events.
    pub n_events: u64,
    /// State diff size.
    pub state_diff_size: u64,
    /// Sierra gas.
    pub sierra_gas: u64,
    /// Number of transactions.
    pub n_txs: u64,
    /// Proving gas.
    pub proving_gas: u64,
    /// L2 gas of receipts.
    #[serde(default)]
    pub receipt_l2_gas: u64,
}

impl BouncerWeights {
    /// All zero: the weights of an empty batch.
    pub const ZERO: Self = Self {
        l1_gas: 0,
        message_segment_length: 0,
        n_events: 0,
        state_diff_size: 0,
        sierra_gas: 0,
        n_txs: 0,
        proving_gas: 0,
        receipt_l2_gas: 0,
    };

    /// The built-in limits used when no `--bouncer-weights-limit-file` is given.
    pub const DEFAULT_LIMITS: Self = Self {
        l1_gas: 4_400_000,
        message_segment_length: 3_700,
        n_events: 50_000,
        state_diff_size: 24_556,
        sierra_gas: 4_000_000_000,
        n_txs: 10_000,
        proving_gas: 5_000_000_000,
        receipt_l2_gas: 2_500_000_000,
    };

    /// Component-wise saturating sum.
    pub fn saturating_add(self, o: Self) -> Self {
        Self {
            l1_gas: self.l1_gas.saturating_add(o.l1_gas),
            message_segment_length: self
                .message_segment_length
                .saturating_add(o.message_segment_length),
            n_events: self.n_events.saturating_add(o.n_events),
            state_diff_size: self.state_diff_size.saturating_add(o.state_diff_size),
            sierra_gas: self.sierra_gas.saturating_add(o.sierra_gas),
            n_txs: self.n_txs.saturating_add(o.n_txs),
            proving_gas: self.proving_gas.saturating_add(o.proving_gas),
            receipt_l2_gas: self.receipt_l2_gas.saturating_add(o.receipt_l2_gas),
        }
    }

    /// Whether any component exceeds the same component of `limit`.
    pub fn exceeds(&self, limit: &Self) -> bool {
        self.l1_gas > limit.l1_gas
            || self.message_segment_length > limit.message_segment_length
            || self.n_events > limit.n_events
            || self.state_diff_size > limit.state_diff_size
            || self.sierra_gas > limit.sierra_gas
            || self.n_txs > limit.n_txs
            || self.proving_gas > limit.proving_gas
            || self.receipt_l2_gas > limit.receipt_l2_gas
    }
}

impl Default for BouncerWeights {
    fn default() -> Self {
        Self::ZERO
    }
}

/// The weights an aggregator batch is limited by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregatorBatchWeights {
    /// L1 gas.
    pub l1_gas: u64,
    /// Length of the messages segment.
    pub message_segment_length: u64,
}

/// A run of consecutive blocks that one SnosRun job executes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnosBatch {
    /// Primary key.
    pub id: Uuid,
    /// 1-based, consecutive.
    pub index: u64,
    /// The aggregator batch it belongs to (L2).
    pub aggregator_batch_index: Option<u64>,
    /// Starknet version of its blocks.
    pub starknet_version: String,
    /// Orchestrator version that built it.
    pub orchestrator_version: String,
    /// First block.
    pub start_block: u64,
    /// Last block (inclusive).
    pub end_block: u64,
    /// `end_block - start_block + 1`.
    pub num_blocks: u64,
    /// Summed bouncer weights of its blocks.
    pub builtin_weights: BouncerWeights,
    /// Life cycle.
    pub status: SnosBatchStatus,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last update.
    pub updated_at: DateTime<Utc>,
}

impl SnosBatch {
    /// A new open batch holding one block.
    pub fn new(
        index: u64,
        aggregator_batch_index: Option<u64>,
        start_block: u64,
        starknet_version: impl Into<String>,
        weights: BouncerWeights,
    ) -> Self {
        let now = now_secs();
        Self {
            id: Uuid::new_v4(),
            index,
            aggregator_batch_index,
            starknet_version: starknet_version.into(),
            orchestrator_version: ORCHESTRATOR_VERSION.to_owned(),
            start_block,
            end_block: start_block,
            num_blocks: 1,
            builtin_weights: weights,
            status: SnosBatchStatus::Open,
            created_at: now,
            updated_at: now,
        }
    }
}

/// A run of consecutive blocks proven by one aggregation and settled by one transaction (L2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregatorBatch {
    /// Primary key.
    pub id: Uuid,
    /// 1-based, consecutive.
    pub index: u64,
    /// Atlantic bucket.
    pub bucket_id: Option<String>,
    /// Storage key of the squashed state update.
    pub squashed_state_updates_path: String,
    /// Storage key prefix of the batch's blobs.
    pub blob_path: String,
    /// Starknet version of its blocks.
    pub starknet_version: String,
    /// Orchestrator version that built it.
    pub orchestrator_version: String,
    /// First block.
    pub start_block: u64,
    /// Last block (inclusive).
    pub end_block: u64,
    /// `end_block - start_block + 1`.
    pub num_blocks: u64,
    /// Number of compressed felts of the squashed diff.
    pub blob_len: u64,
    /// Upper bound of the aggregator's input size, in felts.
    #[serde(default = "default_aggregator_input_bound")]
    pub aggregator_input_size_upper_bound: u64,
    /// Summed weights of its blocks.
    pub builtin_weights: AggregatorBatchWeights,
    /// Life cycle.
    pub status: AggregatorBatchStatus,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last update.
    pub updated_at: DateTime<Utc>,
}

fn default_aggregator_input_bound() -> u64 {
    750_000
}

impl AggregatorBatch {
    /// A new open batch holding one block, with the reference's storage paths.
    pub fn new(index: u64, start_block: u64, starknet_version: impl Into<String>) -> Self {
        let now = now_secs();
        Self {
            id: Uuid::new_v4(),
            index,
            bucket_id: None,
            squashed_state_updates_path: format!("state_update/batch/{index}.json"),
            blob_path: format!("blob/batch/{index}"),
            starknet_version: starknet_version.into(),
            orchestrator_version: ORCHESTRATOR_VERSION.to_owned(),
            start_block,
            end_block: start_block,
            num_blocks: 1,
            blob_len: 0,
            aggregator_input_size_upper_bound: 0,
            builtin_weights: AggregatorBatchWeights::default(),
            status: AggregatorBatchStatus::Open,
            created_at: now,
            updated_at: now,
        }
    }
}

/// Which batches a block belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockBatchLookup {
    /// The block.
    pub block_number: u64,
    /// Its SNOS batch.
    pub snos_batch_index: Option<u64>,
    /// Its aggregator batch.
    pub aggregator_batch_index: Option<u64>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last update.
    pub updated_at: DateTime<Utc>,
}

/// Sort order of batch queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    /// Lowest index first.
    #[default]
    Ascending,
    /// Highest index first.
    Descending,
}

/// Filter for batch listings; empty vectors match everything.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchQuery<S> {
    /// Only these indexes.
    pub indexes: Vec<u64>,
    /// Only these statuses.
    pub statuses: Vec<S>,
    /// At most this many.
    pub limit: Option<u64>,
    /// Only batches of this orchestrator version.
    pub orchestrator_version: Option<String>,
    /// Order by index.
    pub sort: SortOrder,
}

// Not derived: the derive would demand `S: Default`, which the status enums are not.
impl<S> Default for BatchQuery<S> {
    fn default() -> Self {
        Self {
            indexes: Vec::new(),
            statuses: Vec::new(),
            limit: None,
            orchestrator_version: None,
            sort: SortOrder::default(),
        }
    }
}

/// Filter for SNOS batch listings.
pub type SnosBatchQuery = BatchQuery<SnosBatchStatus>;
/// Filter for aggregator batch listings.
pub type AggregatorBatchQuery = BatchQuery<AggregatorBatchStatus>;

/// Fields of an aggregator batch to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AggregatorBatchUpdates {
    /// New end block.
    pub end_block: Option<u64>,
    /// New status.
    pub status: Option<AggregatorBatchStatus>,
    /// New bucket.
    pub bucket_id: Option<String>,
}

/// Fields of a SNOS batch to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SnosBatchUpdates {
    /// New end block.
    pub end_block: Option<u64>,
    /// New status.
    pub status: Option<SnosBatchStatus>,
}

/// A kind of batch ([`SnosBatch`] or [`AggregatorBatch`]): the types its queries and updates
/// use, so that code storing batches is written once for both kinds.
pub trait BatchKind: Clone + Send + Sync + 'static {
    /// Its life cycle.
    type Status: AsRef<str> + Clone + Send + Sync + 'static;
    /// The fields an update by index may change.
    type Updates: Send + 'static;

    /// The batch index.
    fn index(&self) -> u64;
}

impl BatchKind for SnosBatch {
    type Status = SnosBatchStatus;
    type Updates = SnosBatchUpdates;

    fn index(&self) -> u64 {
        self.index
    }
}

impl BatchKind for AggregatorBatch {
    type Status = AggregatorBatchStatus;
    type Updates = AggregatorBatchUpdates;

    fn index(&self) -> u64 {
        self.index
    }
}
