//! SnosBatching (L2 and L3): groups blocks into SNOS batches, each run by one SnosRun job
//! (reference §7).
//!
//! One run, under the TTL lock `SnosBatchingWorker`:
//! 1. range: L2 from `max(min_block, last SNOS end + 1, oldest aggregator start)` to
//!    `min(max_block, last aggregator end)` (a block is SNOS-batched only once it has an
//!    aggregator batch); L3 from `max(min_block, last SNOS end + 1)` to `min(max_block, tip)`;
//!    at most `--max-batch-processing-size` blocks;
//! 2. the open batch is closed without waiting for a block when it is too old, full, from another
//!    orchestrator version, or (L2) has reached the end of its closed aggregator batch;
//! 3. per block: the same gate as aggregator batching (pending → stop quietly; unsupported
//!    version → close, alert, stop; replay-bounds mismatch → alert, stop; gap → close, stop),
//!    bouncer weights from the node (0 proving gas → `--default-empty-block-proving-gas`), then
//!    the close rules. `--fixed-blocks-per-snos-batch` replaces the size, age and weight rules;
//!    batches still never span two aggregator batches or two Starknet / orchestrator versions
//!    (the reference lets a fixed size override those too, which breaks the aggregator's
//!    requirement that SNOS batches tile its range).

use std::{fmt, sync::Arc};

use async_trait::async_trait;

use super::{
    gate_block, lock_owner, node_error, system_clock, unsupported_alert, with_lock, AlertOnce,
    BatchingSettings, Clock, CloseReason, Gate,
};
use crate::{
    core::client::madara::{BlockInfo, MadaraClient},
    types::{
        batch::{
            AggregatorBatch, AggregatorBatchQuery, AggregatorBatchStatus, BouncerWeights,
            SnosBatch, SnosBatchStatus,
        },
        queue::WorkerTriggerType,
        Layer, ORCHESTRATOR_VERSION,
    },
    worker::{
        trigger::{JobTrigger, TriggerError},
        Config,
    },
};

/// Name of the TTL lock of this trigger.
pub const LOCK_KEY: &str = "SnosBatchingWorker";

/// The SnosBatching trigger (see the module docs).
pub struct SnosBatchingTrigger {
    node: Arc<dyn MadaraClient>,
    replay: Option<Arc<dyn MadaraClient>>,
    settings: BatchingSettings,
    clock: Clock,
    alerts: AlertOnce,
    owner: String,
}

impl fmt::Debug for SnosBatchingTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnosBatchingTrigger")
            .field("node", &self.node)
            .field("replay", &self.replay.is_some())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

enum Step {
    Continue,
    Stop,
}

impl SnosBatchingTrigger {
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
            clock: system_clock(),
            alerts: AlertOnce::default(),
            owner: lock_owner(LOCK_KEY),
        }
    }

    /// Uses `clock` instead of the system clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn full(&self, batch: &SnosBatch) -> Option<CloseReason> {
        match self.settings.params.fixed_blocks_per_snos_batch {
            Some(fixed) => (batch.num_blocks >= fixed).then_some(CloseReason::FixedSize),
            None => (batch.num_blocks >= self.settings.params.max_blocks_per_snos_batch)
                .then_some(CloseReason::MaxBlocks),
        }
    }

    /// Close rules that do not depend on a next block (the aggregator rule is checked apart).
    fn idle_close_reason(&self, batch: &SnosBatch) -> Option<CloseReason> {
        if batch.orchestrator_version != ORCHESTRATOR_VERSION {
            return Some(CloseReason::OrchestratorVersion);
        }
        if let Some(r) = self.full(batch) {
            return Some(r);
        }
        let fixed = self.settings.params.fixed_blocks_per_snos_batch.is_some();
        (!fixed && self.settings.too_old(batch.created_at, (self.clock)()))
            .then_some(CloseReason::MaxAge)
    }

    /// Close rules checked before block `info` is added.
    fn close_reason(
        &self,
        batch: &SnosBatch,
        info: &BlockInfo,
        weights: &BouncerWeights,
        aggregator_index: Option<u64>,
    ) -> Option<CloseReason> {
        if batch.status != SnosBatchStatus::Open {
            return Some(CloseReason::MaxBlocks);
        }
        if let Some(r) = self.idle_close_reason(batch) {
            return Some(r);
        }
        if batch.starknet_version != info.starknet_version {
            return Some(CloseReason::StarknetVersion);
        }
        if batch.aggregator_batch_index != aggregator_index {
            return Some(CloseReason::AggregatorBatch);
        }
        if self.settings.params.fixed_blocks_per_snos_batch.is_none()
            && batch
                .builtin_weights
                .saturating_add(*weights)
                .exceeds(&self.settings.params.bouncer_weights_limit)
        {
            return Some(CloseReason::Weights);
        }
        None
    }

    /// Whether an L2 SNOS batch ends where its (closed) aggregator batch ends: it cannot grow.
    fn aggregator_done(batch: &SnosBatch, aggregator: Option<&AggregatorBatch>) -> bool {
        aggregator.is_some_and(|a| {
            a.status != AggregatorBatchStatus::Open && batch.end_block >= a.end_block
        })
    }

    async fn aggregator_batch(
        config: &Config,
        index: Option<u64>,
    ) -> Result<Option<AggregatorBatch>, TriggerError> {
        let Some(index) = index else { return Ok(None) };
        let query = AggregatorBatchQuery { indexes: vec![index], ..Default::default() };
        Ok(config.database().get_aggregator_batches(query).await?.into_iter().next())
    }

    async fn save(&self, config: &Config, batch: &mut SnosBatch) -> Result<(), TriggerError> {
        batch.updated_at = (self.clock)();
        config.database().update_or_create_snos_batch(batch).await?;
        tracing::info!(
            target: "orch::batching",
            index = batch.index, start = batch.start_block, end = batch.end_block, status = %batch.status,
            aggregator = ?batch.aggregator_batch_index, "Saved SNOS batch"
        );
        Ok(())
    }

    async fn close(
        &self,
        config: &Config,
        mut batch: SnosBatch,
        reason: CloseReason,
    ) -> Result<(), TriggerError> {
        tracing::info!(target: "orch::batching", index = batch.index, end = batch.end_block, %reason, "Closing SNOS batch");
        batch.status = SnosBatchStatus::Closed;
        self.save(config, &mut batch).await?;
        config.metrics.snos_batch_closed(batch.num_blocks);
        Ok(())
    }

    async fn run_batching(&self, config: &Config) -> Result<(), TriggerError> {
        let db = config.database();
        let latest = db.get_latest_snos_batch().await?;
        let mut next_index = latest.as_ref().map_or(1, |b| b.index + 1);
        let mut next_block = latest.as_ref().map_or(0, |b| b.end_block + 1);
        let mut open = latest.filter(|b| b.status == SnosBatchStatus::Open);

        let upper = match config.layer {
            Layer::L2 => {
                let (Some(oldest), Some(newest)) = (
                    db.get_oldest_aggregator_batch(None).await?,
                    db.get_latest_aggregator_batch().await?,
                ) else {
                    return Ok(());
                };
                next_block = next_block.max(oldest.start_block);
                Some(newest.end_block)
            }
            Layer::L3 => match self.node.block_number().await {
                Ok(tip) => Some(tip),
                Err(e) if e.is_wait() => None,
                Err(e) => return Err(node_error(e)),
            },
        };

        if let Some(batch) = open.take() {
            let aggregator = Self::aggregator_batch(config, batch.aggregator_batch_index).await?;
            let reason = self.idle_close_reason(&batch).or_else(|| {
                Self::aggregator_done(&batch, aggregator.as_ref())
                    .then_some(CloseReason::AggregatorClosed)
            });
            match reason {
                Some(r) => self.close(config, batch, r).await?,
                None => open = Some(batch),
            }
        }

        let Some((first, last)) = upper.and_then(|u| self.settings.range(next_block, u)) else {
            return Ok(());
        };
        tracing::debug!(target: "orch::batching", first, last, "SNOS batching");
        let mut dirty = false;
        for b in first..=last {
            match self.step(config, b, &mut open, &mut next_index, &mut dirty).await? {
                Step::Continue => {}
                Step::Stop => break,
            }
        }
        if let Some(mut batch) = open {
            if dirty {
                self.save(config, &mut batch).await?;
            }
        }
        Ok(())
    }

    async fn step(
        &self,
        config: &Config,
        b: u64,
        open: &mut Option<SnosBatch>,
        next_index: &mut u64,
        dirty: &mut bool,
    ) -> Result<Step, TriggerError> {
        let info = match gate_block(self.node.as_ref(), self.replay.as_deref(), b).await? {
            Gate::Go(info, _) => info,
            Gate::Wait(why) => {
                tracing::debug!(target: "orch::batching", why, "SNOS batching waits");
                return Ok(Step::Stop);
            }
            Gate::Unsupported(info) => {
                if let Some(batch) = open.take() {
                    self.close(config, batch, CloseReason::Unsupported).await?;
                }
                let (key, alert) = unsupported_alert("SNOS", &info);
                self.alerts.send(config, key, alert).await;
                return Ok(Step::Stop);
            }
            Gate::Halt(key, alert) => {
                self.alerts.send(config, key, alert).await;
                return Ok(Step::Stop);
            }
        };
        if let Some(batch) = open.take() {
            if b != batch.end_block + 1 {
                tracing::warn!(target: "orch::batching", expected = batch.end_block + 1, block = b, "Gap in the block sequence");
                self.close(config, batch, CloseReason::Gap).await?;
                return Ok(Step::Stop);
            }
            *open = Some(batch);
        }
        let mut weights = match self.node.bouncer_weights(b).await {
            Ok(w) => w,
            Err(e) if e.is_wait() => return Ok(Step::Stop),
            Err(e) => return Err(node_error(e)),
        };
        if weights.proving_gas == 0 {
            weights.proving_gas = self.settings.params.default_empty_block_proving_gas;
        }
        let aggregator = match config.layer {
            Layer::L3 => None,
            Layer::L2 => Some(config.database().get_aggregator_batch_for_block(b).await?.ok_or_else(|| {
                TriggerError::Other(format!("block {b} has no aggregator batch; SNOS batching on L2 follows aggregator batching"))
            })?),
        };
        let aggregator_index = aggregator.as_ref().map(|a| a.index);

        if let Some(mut batch) = open.take() {
            match self.close_reason(&batch, &info, &weights, aggregator_index) {
                None => {
                    batch.end_block = b;
                    batch.num_blocks = b - batch.start_block + 1;
                    batch.builtin_weights = batch.builtin_weights.saturating_add(weights);
                    *dirty = true;
                    self.close_if_done(config, batch, aggregator.as_ref(), open, dirty).await?;
                    self.alerts.clear();
                    return Ok(Step::Continue);
                }
                Some(reason) => self.close(config, batch, reason).await?,
            }
        }
        let mut batch = SnosBatch::new(
            *next_index,
            aggregator_index,
            b,
            info.starknet_version.clone(),
            weights,
        );
        batch.created_at = (self.clock)();
        tracing::info!(target: "orch::batching", index = batch.index, start = b, aggregator = ?aggregator_index, "New SNOS batch");
        config.metrics.batch_created("snos");
        *next_index += 1;
        *dirty = true;
        self.close_if_done(config, batch, aggregator.as_ref(), open, dirty).await?;
        self.alerts.clear();
        Ok(Step::Continue)
    }

    /// Closes the batch at once when it cannot grow (full, or at the end of its closed
    /// aggregator batch), else keeps it open in `slot`.
    async fn close_if_done(
        &self,
        config: &Config,
        batch: SnosBatch,
        aggregator: Option<&AggregatorBatch>,
        slot: &mut Option<SnosBatch>,
        dirty: &mut bool,
    ) -> Result<(), TriggerError> {
        let reason = self.full(&batch).or_else(|| {
            Self::aggregator_done(&batch, aggregator).then_some(CloseReason::AggregatorClosed)
        });
        match reason {
            Some(r) => {
                *dirty = false;
                self.close(config, batch, r).await
            }
            None => {
                *slot = Some(batch);
                Ok(())
            }
        }
    }
}

#[async_trait]
impl JobTrigger for SnosBatchingTrigger {
    fn trigger_type(&self) -> WorkerTriggerType {
        WorkerTriggerType::SnosBatching
    }

    async fn run(&self, config: Arc<Config>) -> Result<(), TriggerError> {
        let ttl = self.settings.params.batching_worker_lock_duration;
        with_lock(&config, LOCK_KEY, ttl, &self.owner, self.run_batching(&config)).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rstest::rstest;
    use starknet::core::types::Felt;
    use SnosBatchStatus::{Closed as C, Open as O};

    use super::*;
    use crate::{
        core::client::madara::memory::InMemoryMadara,
        worker::batching::aggregator::{
            tests::{env, params, ranges as agg_ranges, settings, TestClock},
            AggregatorBatchingTrigger,
        },
    };

    const V: &str = "0.14.2";

    async fn snos_ranges(config: &Config) -> Vec<(u64, u64, Option<u64>, SnosBatchStatus)> {
        config
            .database()
            .get_snos_batches(Default::default())
            .await
            .unwrap()
            .into_iter()
            .map(|b| (b.start_block, b.end_block, b.aggregator_batch_index, b.status))
            .collect()
    }

    #[derive(Debug, Clone, Copy)]
    enum Rule {
        MaxBlocks,
        Fixed,
        Weights,
        ProvingGasDefault,
        Version,
    }

    /// L3 close rules over 7 blocks.
    #[rstest]
    #[case::max_blocks(Rule::MaxBlocks, vec![(0, 2, None, C), (3, 5, None, C), (6, 6, None, O)])]
    #[case::fixed_overrides_weights(Rule::Fixed, vec![(0, 3, None, C), (4, 6, None, O)])]
    #[case::weights(Rule::Weights, vec![(0, 1, None, C), (2, 3, None, C), (4, 5, None, C), (6, 6, None, O)])]
    #[case::empty_block_proving_gas(Rule::ProvingGasDefault, vec![(0, 2, None, C), (3, 5, None, C), (6, 6, None, O)])]
    #[case::starknet_version(Rule::Version, vec![(0, 4, None, C), (5, 6, None, O)])]
    #[tokio::test]
    async fn l3_close_rules(
        #[case] rule: Rule,
        #[case] want: Vec<(u64, u64, Option<u64>, SnosBatchStatus)>,
    ) {
        let env = env(Layer::L3).await;
        let node = Arc::new(InMemoryMadara::new());
        let mut p = params();
        for b in 0..7 {
            node.push_block(
                if matches!(rule, Rule::Version) && b >= 5 { "0.14.1" } else { V },
                None,
            );
            node.set_weights(
                b,
                BouncerWeights { n_events: 100, proving_gas: 10, ..BouncerWeights::ZERO },
            );
        }
        match rule {
            Rule::MaxBlocks => p.max_blocks_per_snos_batch = 3,
            Rule::Fixed => {
                p.fixed_blocks_per_snos_batch = Some(4);
                p.bouncer_weights_limit.n_events = 100;
            }
            Rule::Weights => p.bouncer_weights_limit.n_events = 250,
            Rule::ProvingGasDefault => {
                for b in 0..7 {
                    node.set_weights(b, BouncerWeights::ZERO);
                }
                p.default_empty_block_proving_gas = 1_000;
                p.bouncer_weights_limit.proving_gas = 3_000;
            }
            Rule::Version => {}
        }
        let trigger = SnosBatchingTrigger::new(node.clone(), None, settings(p));
        trigger.run(env.config.clone()).await.unwrap();
        assert_eq!(snos_ranges(&env.config).await, want);
        for (i, (s, e, _, _)) in want.iter().enumerate() {
            for b in *s..=*e {
                let l = env.config.database().get_block_batch_lookup(b).await.unwrap().unwrap();
                assert_eq!(l.snos_batch_index, Some(i as u64 + 1), "block {b}");
            }
        }
    }

    /// L2: SNOS batches follow aggregator batches and never span two.
    #[tokio::test]
    async fn l2_follows_aggregator_batches() {
        let env = env(Layer::L2).await;
        let node = Arc::new(InMemoryMadara::new());
        node.push_blocks(7, V);
        let mut p = params();
        p.max_batch_size = 3;
        p.max_blocks_per_snos_batch = 2;
        let agg = AggregatorBatchingTrigger::new(node.clone(), None, settings(p.clone()));
        let snos = SnosBatchingTrigger::new(node.clone(), None, settings(p));
        // Before any aggregator batch there is nothing to do.
        snos.run(env.config.clone()).await.unwrap();
        assert!(snos_ranges(&env.config).await.is_empty());
        agg.run(env.config.clone()).await.unwrap();
        assert_eq!(
            agg_ranges(&env.config).await,
            vec![
                (0, 2, AggregatorBatchStatus::Closed),
                (3, 5, AggregatorBatchStatus::Closed),
                (6, 6, AggregatorBatchStatus::Open)
            ]
        );
        snos.run(env.config.clone()).await.unwrap();
        assert_eq!(
            snos_ranges(&env.config).await,
            vec![
                (0, 1, Some(1), C),
                (2, 2, Some(1), C),
                (3, 4, Some(2), C),
                (5, 5, Some(2), C),
                (6, 6, Some(3), O)
            ]
        );
        for b in 0..7 {
            let l = env.config.database().get_block_batch_lookup(b).await.unwrap().unwrap();
            assert!(
                l.snos_batch_index.is_some() && l.aggregator_batch_index.is_some(),
                "{b}: {l:?}"
            );
        }
    }

    /// L2: when the aggregator batch closes on age, the SNOS batch at its end closes on the
    /// next run although no block arrived.
    #[tokio::test]
    async fn l2_closes_when_aggregator_batch_closes() {
        let env = env(Layer::L2).await;
        let node = Arc::new(InMemoryMadara::new());
        node.push_blocks(2, V);
        let clock = TestClock::new();
        let mut p = params();
        p.max_batch_time = Duration::from_secs(60);
        let agg = AggregatorBatchingTrigger::new(node.clone(), None, settings(p.clone()))
            .with_clock(clock.clock());
        // The SNOS age limit alone would not close it yet.
        p.max_batch_time = Duration::from_secs(10_000);
        let snos =
            SnosBatchingTrigger::new(node.clone(), None, settings(p)).with_clock(clock.clock());
        agg.run(env.config.clone()).await.unwrap();
        snos.run(env.config.clone()).await.unwrap();
        assert_eq!(snos_ranges(&env.config).await, vec![(0, 1, Some(1), O)]);
        clock.advance(Duration::from_secs(61));
        agg.run(env.config.clone()).await.unwrap();
        snos.run(env.config.clone()).await.unwrap();
        assert_eq!(snos_ranges(&env.config).await, vec![(0, 1, Some(1), C)]);
    }

    #[tokio::test]
    async fn l3_age_closes_without_new_block() {
        let env = env(Layer::L3).await;
        let node = Arc::new(InMemoryMadara::new());
        node.push_blocks(2, V);
        let clock = TestClock::new();
        let mut p = params();
        p.max_batch_time = Duration::from_secs(60);
        let snos =
            SnosBatchingTrigger::new(node.clone(), None, settings(p)).with_clock(clock.clock());
        snos.run(env.config.clone()).await.unwrap();
        assert_eq!(snos_ranges(&env.config).await, vec![(0, 1, None, O)]);
        clock.advance(Duration::from_secs(60));
        snos.run(env.config.clone()).await.unwrap();
        assert_eq!(snos_ranges(&env.config).await, vec![(0, 1, None, C)]);
    }

    #[tokio::test]
    async fn l3_unsupported_version_and_replay_mismatch_halt() {
        let env = env(Layer::L3).await;
        let node = Arc::new(InMemoryMadara::new());
        let reference = Arc::new(InMemoryMadara::new());
        node.push_blocks(2, V);
        node.push_block("0.13.1", None);
        reference.push_blocks(3, V);
        reference.set_hash(1, Felt::from(7u64));
        let snos =
            SnosBatchingTrigger::new(node.clone(), Some(reference.clone()), settings(params()));
        snos.run(env.config.clone()).await.unwrap();
        assert_eq!(snos_ranges(&env.config).await, vec![(0, 0, None, O)]);
        reference.set_hash(1, Felt::from(0x1001u64));
        snos.run(env.config.clone()).await.unwrap();
        assert_eq!(snos_ranges(&env.config).await, vec![(0, 1, None, C)]);
        let alerts = env.alerts.0.lock().unwrap().clone();
        assert_eq!(alerts.len(), 2, "{alerts:?}");
        assert!(alerts[0].title.contains("block 1 differs"));
        assert!(alerts[1].title.contains("unsupported Starknet version 0.13.1"));
    }

    #[tokio::test]
    async fn l2_starts_at_the_oldest_aggregator_batch() {
        let env = env(Layer::L2).await;
        let node = Arc::new(InMemoryMadara::new());
        node.push_blocks(3, V);
        // An aggregator batch that starts at block 1: block 0 is never SNOS-batched, block 1 is.
        let mut b = AggregatorBatch::new(1, 1, V);
        b.end_block = 2;
        b.num_blocks = 2;
        env.config.database().update_or_create_aggregator_batch(&b).await.unwrap();
        let snos = SnosBatchingTrigger::new(node.clone(), None, settings(params()));
        snos.run(env.config.clone()).await.unwrap();
        assert_eq!(snos_ranges(&env.config).await, vec![(1, 2, Some(1), O)]);
    }

    #[tokio::test]
    async fn l3_node_down_changes_nothing() {
        let env = env(Layer::L3).await;
        let node = Arc::new(InMemoryMadara::new());
        node.push_blocks(2, V);
        node.set_down(true);
        let snos = SnosBatchingTrigger::new(node.clone(), None, settings(params()));
        assert!(snos.run(env.config.clone()).await.is_err());
        assert!(snos_ranges(&env.config).await.is_empty());
        assert!(!env.config.lock().is_locked(LOCK_KEY).await.unwrap());
    }
}
