//! AggregatorBatching (L2): groups blocks into aggregator batches, each proven by one
//! aggregation and settled by one state-update transaction (reference §7).
//!
//! One run, under the TTL lock `AggregatorBatchingWorker`:
//! 1. read the node's tip; load the latest batch (and, if open, its squashed state update);
//! 2. close the open batch if it is too old or from another orchestrator version, even when no
//!    block arrives (the reference only checks when a block is added, §15.1-11);
//! 3. for each block of `[max(min_block, last end + 1), min(max_block, tip)]`, at most
//!    `--max-batch-processing-size` blocks: gate it (pending → stop quietly; unsupported
//!    Starknet version → close the open batch, alert, stop; replay-bounds hash mismatch → alert,
//!    stop; gap → close, stop), then add it to the open batch unless a close rule fires, in
//!    which case the batch is closed and a new one starts at the block;
//! 4. save every changed batch: squashed state update at `state_update/batch/<index>.json`,
//!    blobs at `blob/batch/<index>/<n>.txt` (n from 1), then the batch row (and with it the
//!    block lookup rows). Files first: a crash between leaves a row that lags its files, and the
//!    next run squashes the same blocks again, which changes nothing.

use std::{
    fmt,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use async_trait::async_trait;
use bytes::Bytes;
use orchestrator_protocol::{
    compression::{
        diff_to_blob_felts, encode, squash::squash_state_updates, stateful::StatefulError,
        stateless, EncodeOptions, PipelineError, StarknetVersion,
    },
    transform,
};
use starknet::core::types::{Felt, StateDiff, StateUpdate};

use super::{
    gate_block, halt_alert, lock_owner, node_error, system_clock, unsupported_alert, with_lock,
    AlertOnce, BatchingSettings, Clock, CloseReason, Gate,
};
use crate::{
    core::client::{
        madara::{BlockInfo, MadaraClient, NodeStateReader},
        StorageError,
    },
    types::{
        batch::{
            AggregatorBatch, AggregatorBatchStatus, AggregatorBatchUpdates, AggregatorBatchWeights,
        },
        queue::WorkerTriggerType,
        ORCHESTRATOR_VERSION,
    },
    worker::{
        trigger::{JobTrigger, TriggerError},
        Config,
    },
};

/// Name of the TTL lock of this trigger.
pub const LOCK_KEY: &str = "AggregatorBatchingWorker";

/// Felts of the aggregator input that do not depend on the children (`n_tasks`).
pub const AGGREGATOR_N_TASKS_WORDS: u64 = 1;
/// Per child: the bootloader wrapper (2) and the fixed part of a SNOS output (14).
pub const AGGREGATOR_PER_CHILD_WORDS: u64 = 16;
/// Per modified contract in a full SNOS output.
pub const FULL_CONTRACT_HEADER_WORDS: u64 = 6;
/// Per storage update in a full SNOS output.
pub const FULL_STORAGE_UPDATE_WORDS: u64 = 3;
/// Per declared class in a full SNOS output.
pub const FULL_CLASS_UPDATE_WORDS: u64 = 3;

/// Creates the prover bucket of a new aggregator batch (Atlantic). `None` on the trigger means
/// the prover has no buckets.
#[async_trait]
pub trait BucketCreator: Send + Sync + fmt::Debug {
    /// A new bucket for aggregator batch `index` starting at `start_block`; returns its id.
    async fn create_bucket(&self, index: u64, start_block: u64) -> Result<String, String>;
}

/// What one block adds to the aggregator input bound: a child's fixed words, its messages and
/// its full (unsquashed) state diff output.
pub fn child_input_bound(diff: &StateDiff, message_segment_length: u64) -> u64 {
    let mut contracts = std::collections::HashSet::new();
    contracts.extend(diff.storage_diffs.iter().map(|d| d.address));
    contracts.extend(diff.nonces.iter().map(|n| n.contract_address));
    contracts.extend(diff.deployed_contracts.iter().map(|d| d.address));
    contracts.extend(diff.replaced_classes.iter().map(|r| r.contract_address));
    let storage: u64 = diff.storage_diffs.iter().map(|d| d.storage_entries.len() as u64).sum();
    let classes = (diff.declared_classes.len() + diff.deprecated_declared_classes.len()) as u64;
    AGGREGATOR_PER_CHILD_WORDS
        .saturating_add(message_segment_length)
        .saturating_add(FULL_CONTRACT_HEADER_WORDS.saturating_mul(contracts.len() as u64))
        .saturating_add(FULL_STORAGE_UPDATE_WORDS.saturating_mul(storage))
        .saturating_add(FULL_CLASS_UPDATE_WORDS.saturating_mul(classes))
}

/// The AggregatorBatching trigger (see the module docs).
pub struct AggregatorBatchingTrigger {
    node: Arc<dyn MadaraClient>,
    replay: Option<Arc<dyn MadaraClient>>,
    settings: BatchingSettings,
    buckets: Option<Arc<dyn BucketCreator>>,
    clock: Clock,
    alerts: AlertOnce,
    owner: String,
    alias_fallback_logged: AtomicBool,
}

impl fmt::Debug for AggregatorBatchingTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregatorBatchingTrigger")
            .field("node", &self.node)
            .field("replay", &self.replay.is_some())
            .field("settings", &self.settings)
            .field("buckets", &self.buckets.is_some())
            .finish_non_exhaustive()
    }
}

/// The open batch with its squashed diff; `felts` is the compressed diff once computed.
struct Open {
    batch: AggregatorBatch,
    squashed: StateUpdate,
    felts: Option<Vec<Felt>>,
    dirty: bool,
}

enum Step {
    Continue,
    Stop,
}

impl AggregatorBatchingTrigger {
    /// A trigger reading `node`, with `replay` as the replay-bounds reference node.
    pub fn new(
        node: Arc<dyn MadaraClient>,
        replay: Option<Arc<dyn MadaraClient>>,
        settings: BatchingSettings,
    ) -> Self {
        Self {
            node,
            replay,
            settings,
            buckets: None,
            clock: system_clock(),
            alerts: AlertOnce::default(),
            owner: lock_owner(LOCK_KEY),
            alias_fallback_logged: AtomicBool::new(false),
        }
    }

    /// Creates a prover bucket for every new batch.
    pub fn with_bucket_creator(mut self, buckets: Arc<dyn BucketCreator>) -> Self {
        self.buckets = Some(buckets);
        self
    }

    /// Uses `clock` instead of the system clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn max_blob_size(&self) -> usize {
        self.settings.params.max_blob_size()
    }

    /// Close rules that do not depend on a next block.
    fn idle_close_reason(&self, batch: &AggregatorBatch) -> Option<CloseReason> {
        if batch.orchestrator_version != ORCHESTRATOR_VERSION {
            Some(CloseReason::OrchestratorVersion)
        } else if batch.num_blocks >= self.settings.params.max_batch_size {
            Some(CloseReason::MaxBlocks)
        } else if self.settings.too_old(batch.created_at, (self.clock)()) {
            Some(CloseReason::MaxAge)
        } else {
            None
        }
    }

    /// Close rules checked before block `info` is added (all but the blob size).
    fn close_reason(
        &self,
        batch: &AggregatorBatch,
        info: &BlockInfo,
        weights: &AggregatorBatchWeights,
        block_bound: u64,
    ) -> Option<CloseReason> {
        let limits = &self.settings.params.bouncer_weights_limit;
        if batch.aggregator_input_size_upper_bound.saturating_add(block_bound)
            > self.settings.params.max_aggregator_input_size
        {
            return Some(CloseReason::AggregatorInput);
        }
        if batch.status != AggregatorBatchStatus::Open {
            return Some(CloseReason::MaxBlocks);
        }
        if let Some(r) = self.idle_close_reason(batch) {
            return Some(r);
        }
        if batch.starknet_version != info.starknet_version {
            return Some(CloseReason::StarknetVersion);
        }
        let l1 = batch.builtin_weights.l1_gas.checked_add(weights.l1_gas);
        let msg = batch
            .builtin_weights
            .message_segment_length
            .checked_add(weights.message_segment_length);
        match (l1, msg) {
            (Some(l1), Some(msg))
                if l1 <= limits.l1_gas && msg <= limits.message_segment_length =>
            {
                None
            }
            _ => Some(CloseReason::Weights),
        }
    }

    /// The compressed blob felts of `diff` (blocks up to `block`). A node without an alias
    /// table (starknet-devnet) cannot alias-compress: the diff is then encoded without aliases,
    /// which is never shorter, so the size stays an upper bound.
    async fn blob_felts(
        &self,
        diff: &StateDiff,
        block: u64,
        version: StarknetVersion,
        reader: &NodeStateReader,
    ) -> Result<Vec<Felt>, TriggerError> {
        match diff_to_blob_felts(diff, block, EncodeOptions::for_version(version), reader).await {
            Ok(felts) => Ok(felts),
            Err(PipelineError::Stateful(StatefulError::MissingAlias { value, .. })) => {
                if !self.alias_fallback_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        target: "orch::batching",
                        block,
                        value = %format!("{value:#x}"),
                        "The node has no alias for a value (no stateful-compression table); sizing blobs without aliases"
                    );
                }
                let felts = encode::state_diff_to_felts(diff, version).map_err(|e| {
                    TriggerError::failed(format!("encoding the diff up to block {block}"), e)
                })?;
                if version.supports_stateless_compression() {
                    stateless::compress(&felts).map_err(|e| {
                        TriggerError::failed(format!("compressing the diff up to block {block}"), e)
                    })
                } else {
                    Ok(felts)
                }
            }
            Err(e) => Err(TriggerError::client(format!("blob of the diff up to block {block}"), e)),
        }
    }

    async fn squash(
        &self,
        updates: &[StateUpdate],
        start: u64,
        reader: &NodeStateReader,
    ) -> Result<StateUpdate, TriggerError> {
        squash_state_updates(updates, start.checked_sub(1), reader)
            .await
            .map_err(|e| TriggerError::client(format!("squashing from block {start}"), e))
    }

    async fn load(&self, config: &Config, batch: AggregatorBatch) -> Result<Open, TriggerError> {
        let bytes =
            config.storage().get_data(&batch.squashed_state_updates_path).await.map_err(|e| {
                TriggerError::client(
                    format!(
                        "open aggregator batch {}: cannot read {}",
                        batch.index, batch.squashed_state_updates_path
                    ),
                    e,
                )
            })?;
        let squashed: StateUpdate = serde_json::from_slice(&bytes).map_err(|e| {
            TriggerError::failed(
                format!(
                    "open aggregator batch {}: {} is not a state update",
                    batch.index, batch.squashed_state_updates_path
                ),
                e,
            )
        })?;
        Ok(Open { batch, squashed, felts: None, dirty: false })
    }

    /// Writes the files of a changed batch, then its row.
    async fn save(
        &self,
        config: &Config,
        open: &mut Open,
        reader: &NodeStateReader,
    ) -> Result<(), TriggerError> {
        if !open.dirty {
            return Ok(());
        }
        let batch = &mut open.batch;
        let felts = match open.felts.take() {
            Some(f) => f,
            None => {
                let version = StarknetVersion::parse(&batch.starknet_version).map_err(|e| {
                    TriggerError::failed(format!("aggregator batch {}", batch.index), e)
                })?;
                self.blob_felts(&open.squashed.state_diff, batch.end_block, version, reader).await?
            }
        };
        let blobs = transform::felts_to_blobs(&felts, self.settings.params.max_num_blobs)
            .map_err(|e| TriggerError::failed(format!("aggregator batch {}", batch.index), e))?;
        batch.blob_len = felts.len() as u64;
        let storage = config.storage();
        let json = serde_json::to_vec(&open.squashed)
            .map_err(|e| TriggerError::failed("serialising the squashed state update", e))?;
        let storage_err = |e: StorageError| {
            TriggerError::client(format!("aggregator batch {} files", batch.index), e)
        };
        storage
            .put_data(Bytes::from(json), &batch.squashed_state_updates_path)
            .await
            .map_err(storage_err)?;
        for (i, blob) in blobs.iter().enumerate() {
            let key = format!("{}/{}.txt", batch.blob_path, i + 1);
            storage.put_data(Bytes::from(blob.clone()), &key).await.map_err(storage_err)?;
        }
        // Blob files a longer earlier version of the diff left behind.
        let prefix = format!("{}/", batch.blob_path);
        for key in storage.list_files_in_dir(&prefix).await.map_err(storage_err)? {
            let n = key
                .strip_prefix(&prefix)
                .and_then(|k| k.strip_suffix(".txt"))
                .and_then(|n| n.parse::<usize>().ok());
            if n.is_some_and(|n| n > blobs.len() || n == 0) {
                storage.delete_data(&key).await.map_err(storage_err)?;
            }
        }
        batch.updated_at = (self.clock)();
        config.database().update_or_create_aggregator_batch(batch).await?;
        open.felts = Some(felts);
        open.dirty = false;
        tracing::info!(
            target: "orch::batching",
            index = batch.index, start = batch.start_block, end = batch.end_block, status = %batch.status,
            blob_len = batch.blob_len, input_bound = batch.aggregator_input_size_upper_bound,
            "Saved aggregator batch"
        );
        Ok(())
    }

    async fn close(
        &self,
        config: &Config,
        mut open: Open,
        reason: CloseReason,
        reader: &NodeStateReader,
    ) -> Result<(), TriggerError> {
        tracing::info!(target: "orch::batching", index = open.batch.index, end = open.batch.end_block, %reason, "Closing aggregator batch");
        open.batch.status = AggregatorBatchStatus::Closed;
        let (index, bound) = (open.batch.index, open.batch.aggregator_input_size_upper_bound);
        if open.dirty {
            self.save(config, &mut open, reader).await?;
        } else {
            // Files are current: only the status changes.
            let updates = AggregatorBatchUpdates {
                status: Some(AggregatorBatchStatus::Closed),
                ..Default::default()
            };
            config.database().update_aggregator_batch(index, updates).await?;
        }
        config.metrics.aggregator_batch(index, Some(bound));
        Ok(())
    }

    async fn run_batching(&self, config: &Config) -> Result<(), TriggerError> {
        let reader = NodeStateReader::new(self.node.clone());
        let tip = match self.node.block_number().await {
            Ok(t) => Some(t),
            Err(e) if e.is_wait() => None,
            Err(e) => return Err(node_error(e)),
        };
        let latest = config.database().get_latest_aggregator_batch().await?;
        let mut next_index = latest.as_ref().map_or(1, |b| b.index + 1);
        let next_block = latest.as_ref().map_or(0, |b| b.end_block + 1);
        let mut open = match latest {
            Some(b) if b.status == AggregatorBatchStatus::Open => Some(self.load(config, b).await?),
            _ => None,
        };
        if let Some(o) = open.take() {
            match self.idle_close_reason(&o.batch) {
                Some(reason) => self.close(config, o, reason, &reader).await?,
                None => open = Some(o),
            }
        }
        let Some((first, last)) = tip.and_then(|tip| self.settings.range(next_block, tip)) else {
            return Ok(());
        };
        tracing::debug!(target: "orch::batching", first, last, "Aggregator batching");
        for b in first..=last {
            match self.step(config, b, &mut open, &mut next_index, &reader).await {
                Ok(Step::Continue) => {}
                Ok(Step::Stop) => break,
                Err(e) => return Err(e),
            }
        }
        if let Some(mut o) = open {
            self.save(config, &mut o, &reader).await?;
        }
        Ok(())
    }

    async fn step(
        &self,
        config: &Config,
        b: u64,
        open: &mut Option<Open>,
        next_index: &mut u64,
        reader: &NodeStateReader,
    ) -> Result<Step, TriggerError> {
        let (info, version) =
            match gate_block(self.node.as_ref(), self.replay.as_deref(), b).await? {
                Gate::Go(info, version) => (info, version),
                Gate::Wait(why) => {
                    tracing::debug!(target: "orch::batching", why, "Aggregator batching waits");
                    return Ok(Step::Stop);
                }
                Gate::Unsupported(info) => {
                    if let Some(o) = open.take() {
                        self.close(config, o, CloseReason::Unsupported, reader).await?;
                    }
                    let (key, alert) = unsupported_alert("Aggregator", &info);
                    self.alerts.send(config, key, alert).await;
                    return Ok(Step::Stop);
                }
                Gate::Halt(key, alert) => {
                    self.alerts.send(config, key, alert).await;
                    return Ok(Step::Stop);
                }
            };
        if let Some(o) = open.take() {
            if b != o.batch.end_block + 1 {
                tracing::warn!(target: "orch::batching", expected = o.batch.end_block + 1, block = b, "Gap in the block sequence");
                self.close(config, o, CloseReason::Gap, reader).await?;
                return Ok(Step::Stop);
            }
            *open = Some(o);
        }
        let update = match self.node.state_update(b).await {
            Ok(u) => u,
            Err(e) if e.is_wait() => return Ok(Step::Stop),
            Err(e) => return Err(node_error(e)),
        };
        let bw = match self.node.bouncer_weights(b).await {
            Ok(w) => w,
            Err(e) if e.is_wait() => return Ok(Step::Stop),
            Err(e) => return Err(node_error(e)),
        };
        let weights = AggregatorBatchWeights {
            l1_gas: bw.l1_gas,
            message_segment_length: bw.message_segment_length,
        };
        let block_bound = child_input_bound(&update.state_diff, weights.message_segment_length);
        let max_input = self.settings.params.max_aggregator_input_size;
        if AGGREGATOR_N_TASKS_WORDS.saturating_add(block_bound) > max_input {
            if let Some(o) = open.take() {
                self.close(config, o, CloseReason::AggregatorInput, reader).await?;
            }
            let alert = halt_alert(
                format!("Aggregator batching halted: block {b} alone exceeds --max-aggregator-input-size"),
                format!(
                    "Block {b} needs an aggregator input of at least {} felts (bound of its full SNOS \
                     output) but --max-aggregator-input-size is {max_input}. Raise the limit to go on.",
                    AGGREGATOR_N_TASKS_WORDS + block_bound
                ),
            );
            self.alerts.send(config, format!("input-bound-{b}"), alert).await;
            return Ok(Step::Stop);
        }

        if let Some(mut o) = open.take() {
            let mut reason = self.close_reason(&o.batch, &info, &weights, block_bound);
            if reason.is_none() {
                let squashed = self
                    .squash(&[o.squashed.clone(), update.clone()], o.batch.start_block, reader)
                    .await?;
                let felts = self.blob_felts(&squashed.state_diff, b, version, reader).await?;
                if felts.len() > self.max_blob_size() {
                    reason = Some(CloseReason::BlobSize);
                } else {
                    let batch = &mut o.batch;
                    batch.end_block = b;
                    batch.num_blocks = b - batch.start_block + 1;
                    batch.blob_len = felts.len() as u64;
                    batch.aggregator_input_size_upper_bound += block_bound;
                    batch.builtin_weights.l1_gas += weights.l1_gas;
                    batch.builtin_weights.message_segment_length += weights.message_segment_length;
                    o.squashed = squashed;
                    o.felts = Some(felts);
                    o.dirty = true;
                    self.close_if_full(config, o, open, reader).await?;
                    self.alerts.clear();
                    return Ok(Step::Continue);
                }
            }
            let reason = reason.unwrap_or(CloseReason::MaxBlocks);
            self.close(config, o, reason, reader).await?;
        }

        // A new batch starting at `b`.
        let squashed = self.squash(std::slice::from_ref(&update), b, reader).await?;
        let felts = self.blob_felts(&squashed.state_diff, b, version, reader).await?;
        if felts.len() > self.max_blob_size() {
            let alert = halt_alert(
                format!("Aggregator batching halted: block {b} alone does not fit in the blobs"),
                format!(
                    "The compressed state diff of block {b} has {} felts; at most {} fit \
                     (--max-num-blobs × 4096 − --blob-size-buffer).",
                    felts.len(),
                    self.max_blob_size()
                ),
            );
            self.alerts.send(config, format!("blob-size-{b}"), alert).await;
            return Ok(Step::Stop);
        }
        let mut batch = AggregatorBatch::new(*next_index, b, info.starknet_version.clone());
        if let Some(buckets) = &self.buckets {
            let bucket = buckets.create_bucket(*next_index, b).await.map_err(|e| {
                TriggerError::Other(format!(
                    "creating the prover bucket of aggregator batch {next_index}: {e}"
                ))
            })?;
            batch.bucket_id = Some(bucket);
        }
        batch.created_at = (self.clock)();
        batch.updated_at = batch.created_at;
        batch.blob_len = felts.len() as u64;
        batch.aggregator_input_size_upper_bound = AGGREGATOR_N_TASKS_WORDS + block_bound;
        batch.builtin_weights = weights;
        tracing::info!(target: "orch::batching", index = batch.index, start = b, version = %info.starknet_version, "New aggregator batch");
        config.metrics.batch_created("aggregator");
        config.metrics.aggregator_batch(batch.index, None);
        *next_index += 1;
        let o = Open { batch, squashed, felts: Some(felts), dirty: true };
        self.close_if_full(config, o, open, reader).await?;
        self.alerts.clear();
        Ok(Step::Continue)
    }

    /// Closes a batch at once when it cannot take another block (max blocks reached), else
    /// keeps it open in `slot`.
    async fn close_if_full(
        &self,
        config: &Config,
        o: Open,
        slot: &mut Option<Open>,
        reader: &NodeStateReader,
    ) -> Result<(), TriggerError> {
        if o.batch.num_blocks >= self.settings.params.max_batch_size {
            self.close(config, o, CloseReason::MaxBlocks, reader).await
        } else {
            *slot = Some(o);
            Ok(())
        }
    }
}

#[async_trait]
impl JobTrigger for AggregatorBatchingTrigger {
    fn trigger_type(&self) -> WorkerTriggerType {
        WorkerTriggerType::AggregatorBatching
    }

    async fn run(&self, config: Arc<Config>) -> Result<(), TriggerError> {
        let ttl = self.settings.params.batching_worker_lock_duration;
        let timed = async {
            let started = std::time::Instant::now();
            let run = self.run_batching(&config).await;
            config.metrics.aggregator_batching_run(started.elapsed());
            run
        };
        with_lock(&config, LOCK_KEY, ttl, &self.owner, timed).await.map(|_| ())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::{sync::Mutex, time::Duration};

    use chrono::{DateTime, Utc};
    use rstest::rstest;
    use tempfile::TempDir;

    use super::*;
    use crate::{
        config::{BatchingParams, EngineParams},
        core::client::{
            embedded,
            madara::memory::{storage_diff, InMemoryMadara},
            Alert, AlertClient, AlertError,
        },
        types::{batch::BouncerWeights, Layer},
        worker::{handler::JobHandlers, trigger::Triggers},
    };

    /// Batching flags with the reference defaults and a one-hour age limit.
    pub(crate) fn params() -> BatchingParams {
        BatchingParams {
            max_batch_time: Duration::from_secs(3600),
            max_batch_size: 100,
            max_num_blobs: 6,
            blob_size_buffer: 15,
            batching_worker_lock_duration: Duration::from_secs(3600),
            max_blocks_per_snos_batch: 10,
            fixed_blocks_per_snos_batch: None,
            max_snos_batches_per_aggregator_batch: 50,
            max_aggregator_input_size: 750_000,
            default_empty_block_proving_gas: 1_500_000,
            max_batch_processing_size: 10,
            bouncer_weights_limit: BouncerWeights::DEFAULT_LIMITS,
            bouncer_weights_limit_file: None,
        }
    }

    /// Alerts kept in memory.
    #[derive(Debug, Default)]
    pub(crate) struct Alerts(pub Mutex<Vec<Alert>>);

    #[async_trait]
    impl AlertClient for Alerts {
        async fn send_alert(&self, alert: &Alert) -> Result<(), AlertError> {
            self.0.lock().unwrap().push(alert.clone());
            Ok(())
        }
        async fn health_check(&self) -> Result<(), AlertError> {
            Ok(())
        }
    }

    /// A settable clock.
    pub(crate) struct TestClock(pub Arc<Mutex<DateTime<Utc>>>);

    impl TestClock {
        pub(crate) fn new() -> Self {
            Self(Arc::new(Mutex::new(Utc::now())))
        }
        pub(crate) fn clock(&self) -> Clock {
            let t = self.0.clone();
            Arc::new(move || *t.lock().unwrap())
        }
        pub(crate) fn advance(&self, d: Duration) {
            let mut t = self.0.lock().unwrap();
            *t += chrono::Duration::from_std(d).unwrap();
        }
    }

    /// An embedded tier with in-memory alerts.
    pub(crate) struct Env {
        pub config: Arc<Config>,
        pub alerts: Arc<Alerts>,
        pub _dir: TempDir,
    }

    pub(crate) async fn env(layer: Layer) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let mut clients =
            embedded::open(dir.path(), &embedded::EmbeddedOptions::default()).await.unwrap();
        let alerts = Arc::new(Alerts::default());
        clients.alerts = alerts.clone();
        let config = Arc::new(Config::new(
            layer,
            clients,
            JobHandlers::new(),
            Triggers::new(),
            EngineParams::default(),
        ));
        Env { config, alerts, _dir: dir }
    }

    pub(crate) fn settings(params: BatchingParams) -> BatchingSettings {
        BatchingSettings { params, min_block: 0, max_block: None }
    }

    pub(crate) async fn ranges(config: &Config) -> Vec<(u64, u64, AggregatorBatchStatus)> {
        config
            .database()
            .get_aggregator_batches(Default::default())
            .await
            .unwrap()
            .into_iter()
            .map(|b| (b.start_block, b.end_block, b.status))
            .collect()
    }

    use AggregatorBatchStatus::{Closed as C, Open as O};

    const V: &str = "0.14.2";

    #[derive(Debug, Clone, Copy)]
    enum Rule {
        MaxBlocks,
        Weights,
        InputBound,
        BlobSize,
        Version,
    }

    /// Every close rule that depends on the blocks: 6 blocks, expected batches.
    #[rstest]
    #[case::max_blocks(Rule::MaxBlocks, vec![(0, 1, C), (2, 3, C), (4, 5, C)])]
    #[case::weights(Rule::Weights, vec![(0, 2, C), (3, 5, O)])]
    #[case::input_bound(Rule::InputBound, vec![(0, 1, C), (2, 3, C), (4, 5, O)])]
    #[case::blob_size(Rule::BlobSize, vec![(0, 2, C), (3, 5, O)])]
    #[case::starknet_version(Rule::Version, vec![(0, 3, C), (4, 5, O)])]
    #[tokio::test]
    async fn close_rules(#[case] rule: Rule, #[case] want: Vec<(u64, u64, AggregatorBatchStatus)>) {
        let env = env(Layer::L2).await;
        let node = Arc::new(InMemoryMadara::new());
        let mut p = params();
        for b in 0..6u64 {
            let version = if matches!(rule, Rule::Version) && b >= 4 { "0.14.1" } else { V };
            // Each block writes 150 fresh slots of its own (system-range, so unaliased) contract;
            // keys and values are distinct 128-bit numbers, which the stateless compression
            // cannot shrink: about 300 compressed felts per block.
            let entries: Vec<(Felt, Felt)> = (0..150u128)
                .map(|k| {
                    let n = u128::from(b) * 1000 + k;
                    (Felt::from(u128::MAX - n), Felt::from(u128::MAX / 3 + n))
                })
                .collect();
            node.push_block(version, Some(storage_diff(Felt::from(0x10 + b), &entries)));
            node.set_weights(
                b,
                BouncerWeights {
                    l1_gas: 1_000,
                    message_segment_length: 10,
                    ..BouncerWeights::ZERO
                },
            );
        }
        match rule {
            Rule::MaxBlocks => p.max_batch_size = 2,
            Rule::Weights => p.bouncer_weights_limit.l1_gas = 3_000,
            // One block: 16 + 10 + 6 + 450 = 482; two fit with the n_tasks word, three do not.
            Rule::InputBound => p.max_aggregator_input_size = 1 + 2 * 482,
            Rule::BlobSize => {
                // ≈ 300 felts per block: three blocks fit in 1000 felts, four do not.
                p.max_num_blobs = 1;
                p.blob_size_buffer = 4096 - 1000;
            }
            Rule::Version => {}
        }
        let trigger = AggregatorBatchingTrigger::new(node.clone(), None, settings(p));
        trigger.run(env.config.clone()).await.unwrap();
        assert_eq!(ranges(&env.config).await, want);
        assert!(env.alerts.0.lock().unwrap().is_empty());
        // Lookups follow the batches.
        for (i, (s, e, _)) in want.iter().enumerate() {
            for b in *s..=*e {
                let l = env.config.database().get_block_batch_lookup(b).await.unwrap().unwrap();
                assert_eq!(l.aggregator_batch_index, Some(i as u64 + 1), "block {b}");
            }
        }
    }

    #[tokio::test]
    async fn closes_on_age_without_new_blocks_and_across_runs() {
        let env = env(Layer::L2).await;
        let node = Arc::new(InMemoryMadara::new());
        node.push_blocks(3, V);
        let clock = TestClock::new();
        let mut p = params();
        p.max_batch_time = Duration::from_secs(60);
        let trigger = AggregatorBatchingTrigger::new(node.clone(), None, settings(p))
            .with_clock(clock.clock());
        trigger.run(env.config.clone()).await.unwrap();
        assert_eq!(ranges(&env.config).await, vec![(0, 2, O)]);
        // A later run with a new block extends the open batch (its files are reloaded).
        node.push_blocks(1, V);
        trigger.run(env.config.clone()).await.unwrap();
        assert_eq!(ranges(&env.config).await, vec![(0, 3, O)]);
        // No new block, but the batch is old: it closes anyway.
        clock.advance(Duration::from_secs(61));
        trigger.run(env.config.clone()).await.unwrap();
        assert_eq!(ranges(&env.config).await, vec![(0, 3, C)]);
        node.push_blocks(1, V);
        trigger.run(env.config.clone()).await.unwrap();
        assert_eq!(ranges(&env.config).await, vec![(0, 3, C), (4, 4, O)]);
        // Files of batch 1: squashed diff and one blob.
        let storage = env.config.storage();
        let squashed: StateUpdate =
            serde_json::from_slice(&storage.get_data("state_update/batch/1.json").await.unwrap())
                .unwrap();
        assert_eq!(squashed.state_diff.storage_diffs[0].storage_entries.len(), 4);
        assert_eq!(
            storage.get_data("blob/batch/1/1.txt").await.unwrap().len(),
            transform::BYTES_PER_BLOB
        );
        assert!(storage.get_data("blob/batch/1/2.txt").await.is_err());
    }

    #[tokio::test]
    async fn orchestrator_version_change_closes() {
        let env = env(Layer::L2).await;
        let node = Arc::new(InMemoryMadara::new());
        node.push_blocks(2, V);
        let trigger = AggregatorBatchingTrigger::new(node.clone(), None, settings(params()));
        trigger.run(env.config.clone()).await.unwrap();
        let mut b = env.config.database().get_latest_aggregator_batch().await.unwrap().unwrap();
        b.orchestrator_version = "0.0.1-old".into();
        env.config.database().update_or_create_aggregator_batch(&b).await.unwrap();
        node.push_blocks(1, V);
        trigger.run(env.config.clone()).await.unwrap();
        assert_eq!(ranges(&env.config).await, vec![(0, 1, C), (2, 2, O)]);
    }

    #[tokio::test]
    async fn unsupported_version_closes_and_halts_with_one_alert() {
        let env = env(Layer::L2).await;
        let node = Arc::new(InMemoryMadara::new());
        node.push_blocks(2, V);
        node.push_block("0.15.0", None);
        node.push_blocks(1, V);
        let trigger = AggregatorBatchingTrigger::new(node.clone(), None, settings(params()));
        trigger.run(env.config.clone()).await.unwrap();
        trigger.run(env.config.clone()).await.unwrap();
        assert_eq!(ranges(&env.config).await, vec![(0, 1, C)]);
        let alerts = env.alerts.0.lock().unwrap().clone();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert!(
            alerts[0].title.contains("unsupported Starknet version 0.15.0"),
            "{}",
            alerts[0].title
        );
    }

    #[tokio::test]
    async fn pending_block_stops_quietly() {
        let env = env(Layer::L2).await;
        let node = Arc::new(InMemoryMadara::new());
        node.push_blocks(4, V);
        node.set_pending_from(Some(2));
        let trigger = AggregatorBatchingTrigger::new(node.clone(), None, settings(params()));
        trigger.run(env.config.clone()).await.unwrap();
        assert_eq!(ranges(&env.config).await, vec![(0, 1, O)]);
        node.set_pending_from(None);
        trigger.run(env.config.clone()).await.unwrap();
        assert_eq!(ranges(&env.config).await, vec![(0, 3, O)]);
        assert!(env.alerts.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn node_down_is_an_error_and_changes_nothing() {
        let env = env(Layer::L2).await;
        let node = Arc::new(InMemoryMadara::new());
        node.push_blocks(2, V);
        let trigger = AggregatorBatchingTrigger::new(node.clone(), None, settings(params()));
        trigger.run(env.config.clone()).await.unwrap();
        let before = ranges(&env.config).await;
        node.push_blocks(2, V);
        node.set_down(true);
        let e = trigger.run(env.config.clone()).await.unwrap_err();
        assert!(e.to_string().contains("node is down"), "{e}");
        assert_eq!(ranges(&env.config).await, before);
        // The lock was released: the next run works.
        node.set_down(false);
        trigger.run(env.config.clone()).await.unwrap();
        assert_eq!(ranges(&env.config).await, vec![(0, 3, O)]);
    }

    #[tokio::test]
    async fn replay_bounds_mismatch_halts_with_alert() {
        let env = env(Layer::L2).await;
        let node = Arc::new(InMemoryMadara::new());
        let reference = Arc::new(InMemoryMadara::new());
        node.push_blocks(4, V);
        reference.push_blocks(3, V);
        reference.set_hash(2, Felt::from(0xbad_u64));
        let trigger = AggregatorBatchingTrigger::new(
            node.clone(),
            Some(reference.clone()),
            settings(params()),
        );
        trigger.run(env.config.clone()).await.unwrap();
        assert_eq!(ranges(&env.config).await, vec![(0, 1, O)]);
        let alerts = env.alerts.0.lock().unwrap().clone();
        assert_eq!(alerts.len(), 1);
        assert!(alerts[0].title.contains("block 2 differs"), "{}", alerts[0].title);
        // Fixed on the reference: block 2 goes on; block 3 is beyond the reference → wait.
        reference.set_hash(2, Felt::from(0x1002_u64));
        trigger.run(env.config.clone()).await.unwrap();
        assert_eq!(ranges(&env.config).await, vec![(0, 2, O)]);
    }

    #[tokio::test]
    async fn held_lock_skips_the_run() {
        let env = env(Layer::L2).await;
        let node = Arc::new(InMemoryMadara::new());
        node.push_blocks(2, V);
        env.config
            .lock()
            .acquire_lock(
                LOCK_KEY,
                crate::core::client::LockValue::Boolean(true),
                Duration::from_secs(60),
                Some("other"),
            )
            .await
            .unwrap();
        let trigger = AggregatorBatchingTrigger::new(node.clone(), None, settings(params()));
        trigger.run(env.config.clone()).await.unwrap();
        assert!(ranges(&env.config).await.is_empty());
        assert_eq!(node.calls(), 0);
    }

    #[tokio::test]
    async fn processing_size_min_and_max_block() {
        let env = env(Layer::L2).await;
        let node = Arc::new(InMemoryMadara::new());
        node.push_blocks(10, V);
        let mut p = params();
        p.max_batch_processing_size = 3;
        p.max_batch_size = 2;
        let s = BatchingSettings { params: p, min_block: 2, max_block: Some(6) };
        let trigger = AggregatorBatchingTrigger::new(node.clone(), None, s);
        trigger.run(env.config.clone()).await.unwrap();
        assert_eq!(ranges(&env.config).await, vec![(2, 3, C), (4, 4, O)]);
        trigger.run(env.config.clone()).await.unwrap();
        trigger.run(env.config.clone()).await.unwrap();
        assert_eq!(ranges(&env.config).await, vec![(2, 3, C), (4, 5, C), (6, 6, O)]);
    }

    #[derive(Debug)]
    struct Buckets;

    #[async_trait]
    impl BucketCreator for Buckets {
        async fn create_bucket(&self, index: u64, start_block: u64) -> Result<String, String> {
            Ok(format!("bucket-{index}-{start_block}"))
        }
    }

    #[tokio::test]
    async fn new_batches_get_a_bucket() {
        let env = env(Layer::L2).await;
        let node = Arc::new(InMemoryMadara::new());
        node.push_blocks(3, V);
        let mut p = params();
        p.max_batch_size = 2;
        let trigger = AggregatorBatchingTrigger::new(node.clone(), None, settings(p))
            .with_bucket_creator(Arc::new(Buckets));
        trigger.run(env.config.clone()).await.unwrap();
        let batches =
            env.config.database().get_aggregator_batches(Default::default()).await.unwrap();
        let buckets: Vec<_> = batches.iter().map(|b| b.bucket_id.clone()).collect();
        assert_eq!(buckets, vec![Some("bucket-1-0".to_owned()), Some("bucket-2-2".to_owned())]);
    }

    #[rstest]
    #[case(0, 0, 0, 0, 16)]
    #[case(7, 4, 3, 4, 16 + 7 + 24 + 9 + 12)]
    fn input_bound_formula(
        #[case] msg: u64,
        #[case] contracts: u64,
        #[case] storage: u64,
        #[case] declared: u64,
        #[case] want: u64,
    ) {
        let mut diff = storage_diff(Felt::ONE, &[]);
        diff.storage_diffs.clear();
        for c in 0..contracts {
            let entries: Vec<(Felt, Felt)> = if c == 0 {
                (0..storage).map(|k| (Felt::from(k), Felt::ONE)).collect()
            } else {
                vec![]
            };
            diff.storage_diffs
                .push(storage_diff(Felt::from(100 + c), &entries).storage_diffs.remove(0));
        }
        for d in 0..declared {
            diff.declared_classes.push(starknet::core::types::DeclaredClassItem {
                class_hash: Felt::from(d),
                compiled_class_hash: Felt::ONE,
            });
        }
        assert_eq!(child_input_bound(&diff, msg), want);
        // The reference's example: 1 child, 7 message felts, 4 contracts, 3 writes, 4 classes → 69.
        assert_eq!(AGGREGATOR_N_TASKS_WORDS + 16 + 7 + 6 * 4 + 3 * 3 + 3 * 4, 69);
    }
}
