//! Recovery from the settlement layer after losing the database (`orchestrator recover`,
//! `orchestrator run --recover-from-settlement`; see `docs/recovery.md`).
//!
//! The core contract's `LogStateUpdate` events are the record of every settlement: one event
//! per accepted state update, carrying the last block it settled, the state root after it and
//! that block's hash. One settlement is one aggregator batch on L2 and one SNOS batch on L3, so
//! the events give the batches' real boundaries: settlement `k` (1-based, in event order)
//! covers the blocks after the previous settlement's block up to its own, the first one from
//! `--min-block-to-process` (the core contract's initial state is in no event).
//!
//! Recovery:
//! 1. reads the contract's settled block and every `LogStateUpdate` from
//!    `--recover-scan-from-block` ([`settlement_ranges`]: block numbers strictly increasing, the
//!    last one the contract's settled block);
//! 2. compares them with the database ([`plan`]): an empty database gets every settlement; a
//!    database whose batches agree with the chain gets the settlements after its last settled
//!    batch (none when it is up to date); anything else is refused with what disagrees;
//! 3. checks that the node has each settlement's last block with the hash and state root the
//!    event reports (a node of another chain, or one that lacks the blocks, is refused before
//!    anything is written);
//! 4. writes, per settlement in order, its jobs (every stage of the layer, `Completed`; the
//!    StateTransition carries the settling transaction) and then its batches (`Completed`).
//!    Each write is idempotent, so a recovery cut off half-way is finished by running it again.
//!
//! The pipeline then resumes at the first unsettled block: batching continues after the last
//! recovered batch, the job triggers start after the last completed StateTransition, and the
//! StateTransition handler refuses to send an update the contract already has.
//!
//! Not recovered (see `docs/recovery.md`): on L2 the SNOS batch boundaries inside an
//! aggregator batch (one SNOS batch per aggregator batch is written), the batches' weights and
//! blob sizes, prover buckets and the jobs' artifacts.

use eyre::WrapErr;
use orchestrator_settlement_client_interface::{
    SettledStateUpdate, SettlementClient, SettlementError,
};
use starknet::core::types::Felt;

use crate::{
    config::RunParams,
    core::client::{
        database::{DatabaseError, JobQuery},
        madara::{MadaraClient, MadaraError},
        DatabaseClient,
    },
    types::{
        batch::{
            AggregatorBatch, AggregatorBatchStatus, BouncerWeights, SnosBatch, SnosBatchQuery,
            SnosBatchStatus,
        },
        jobs::{
            now_secs, AggregatorMetadata, DaMetadata, ExternalId, JobItem, JobSpecificMetadata,
            JobStatus, JobType, ProvingMetadata, SnosMetadata, StateUpdateMetadata,
        },
        stage, Layer,
    },
    worker::stages::external::ExternalClients,
};

/// The external id of a recovered job that is not a StateTransition: its work happened, but
/// nothing of it is known beyond the settlement.
pub const RECOVERED_EXTERNAL_ID: &str = "recovered-from-settlement";

/// What recovery needs besides the clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoverySettings {
    /// The appchain's layer.
    pub layer: Layer,
    /// The first block of the first settlement (`--min-block-to-process`).
    pub min_block: u64,
    /// The settlement-layer block the events are read from (`--recover-scan-from-block`).
    pub scan_from_block: u64,
}

/// Why recovery refused or failed. Nothing is written unless the error comes from a write.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The settlement layer could not be read.
    #[error("cannot read the core contract's settlements: {0}")]
    Settlement(#[source] SettlementError),
    /// The events do not form a settlement history this orchestrator can rebuild.
    #[error("the core contract's settlement history cannot be rebuilt: {0}")]
    History(String),
    /// The database holds batches that disagree with the chain.
    #[error("the database disagrees with the core contract: {0}")]
    DatabaseDisagrees(String),
    /// The node lacks a settled block, or has another one.
    #[error("the Madara node cannot back the settled blocks: {0}")]
    Node(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] DatabaseError),
}

/// One settlement of the core contract: the batch it settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// 1-based, in the order of the events: the batch index.
    pub index: u64,
    /// First block.
    pub start_block: u64,
    /// Last block (the event's block number).
    pub end_block: u64,
    /// The event.
    pub update: SettledStateUpdate,
}

/// A batch stored in the database, as [`plan`] compares it with the chain: the aggregator
/// batches on L2, the SNOS batches on L3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredBatch {
    /// Batch index.
    pub index: u64,
    /// First block.
    pub start_block: u64,
    /// Last block.
    pub end_block: u64,
    /// Whether the database has it settled (`Completed`).
    pub completed: bool,
}

/// What a recovery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The core contract's settled block (`None`: nothing settled yet).
    pub settled_block: Option<u64>,
    /// Settlements found on chain.
    pub settlements: u64,
    /// Settlements the database had already.
    pub already_stored: u64,
    /// The settlements written now.
    pub written: Vec<Settlement>,
    /// The first block the pipeline batches next.
    pub next_block: u64,
}

impl RecoveryReport {
    /// One line for the operator.
    pub fn summary(&self) -> String {
        let settled =
            self.settled_block.map_or_else(|| "nothing".to_owned(), |b| format!("block {b}"));
        match (self.written.first(), self.written.last()) {
            (Some(first), Some(last)) => format!(
                "recovered {} settlement(s) (batches {}..={}, blocks {}..={}) of {}; the core \
                 contract has settled {settled}; the pipeline resumes at block {}",
                self.written.len(),
                first.index,
                last.index,
                first.start_block,
                last.end_block,
                self.settlements,
                self.next_block
            ),
            _ => format!(
                "nothing to recover: the database already holds the {} settlement(s) of the \
                 core contract, which has settled {settled}; the pipeline resumes at block {}",
                self.already_stored, self.next_block
            ),
        }
    }
}

fn hex(word: &[u8; 32]) -> String {
    format!("{:#x}", Felt::from_bytes_be(word))
}

/// The batch boundaries of `updates` (in event order): settlement `k` covers the blocks after
/// settlement `k − 1`'s block up to its own, the first from `min_block`.
///
/// # Errors
/// `History` when the block numbers do not strictly increase or the first is below
/// `min_block`.
pub fn settlement_ranges(
    min_block: u64,
    updates: &[SettledStateUpdate],
) -> Result<Vec<Settlement>, RecoveryError> {
    let mut out: Vec<Settlement> = Vec::with_capacity(updates.len());
    let mut next = min_block;
    for (i, update) in updates.iter().enumerate() {
        if update.block_number < next {
            let why = match out.last() {
                Some(prev) => format!(
                    "the update of transaction {} settles block {}, not after block {} of the \
                     update before it (transaction {})",
                    update.tx_hash, update.block_number, prev.end_block, prev.update.tx_hash
                ),
                None => format!(
                    "the first update (transaction {}) settles block {}, below \
                     --min-block-to-process {min_block}: give the block the chain's first \
                     settlement started at",
                    update.tx_hash, update.block_number
                ),
            };
            return Err(RecoveryError::History(why));
        }
        out.push(Settlement {
            index: i as u64 + 1,
            start_block: next,
            end_block: update.block_number,
            update: update.clone(),
        });
        next = update.block_number + 1;
    }
    Ok(out)
}

/// Which settlements to write: the position in `chain` from which they are missing from the
/// database (`chain.len()` when none is). `stored` are the database's batches of the settling
/// kind, `anything_stored` whether the database holds any batch or job at all.
///
/// A stored batch must have the boundaries of the settlement of the same index; a stored batch
/// beyond the settlements must be unsettled work after the last settled block. Settlements
/// after the database's last batch are written only when that batch is settled in the database
/// (`Completed`); otherwise the database is behind the chain in a way the pipeline cannot
/// resume from (a database restored from an old backup) and recovery refuses.
///
/// # Errors
/// `DatabaseDisagrees`, saying which batch and how.
pub fn plan(
    chain: &[Settlement],
    stored: &[StoredBatch],
    anything_stored: bool,
    kind: &str,
) -> Result<usize, RecoveryError> {
    let disagree = |s: String| Err(RecoveryError::DatabaseDisagrees(s));
    if !anything_stored {
        return Ok(0);
    }
    let last_settled = chain.last().map(|c| c.end_block);
    for s in stored {
        match s.index.checked_sub(1).and_then(|i| chain.get(i as usize)) {
            Some(c) if (c.start_block, c.end_block) != (s.start_block, s.end_block) => {
                return disagree(format!(
                    "{kind} batch {} covers blocks {}..={} in the database, but the core \
                     contract's settlement {} (transaction {}) covers blocks {}..={}",
                    s.index,
                    s.start_block,
                    s.end_block,
                    c.index,
                    c.update.tx_hash,
                    c.start_block,
                    c.end_block
                ));
            }
            Some(_) => {}
            None if s.completed => {
                return disagree(format!(
                    "{kind} batch {} (blocks {}..={}) is settled in the database, but the core \
                     contract has only {} settlement(s) (is this the database of another chain \
                     or core contract?)",
                    s.index,
                    s.start_block,
                    s.end_block,
                    chain.len()
                ));
            }
            None => {
                if let Some(last) = last_settled.filter(|l| s.start_block <= *l) {
                    return disagree(format!(
                        "unsettled {kind} batch {} starts at block {}, but the core contract \
                         has settled up to block {last}",
                        s.index, s.start_block
                    ));
                }
            }
        }
    }
    let stored_up_to = stored.iter().map(|s| s.index).max().unwrap_or(0);
    if stored_up_to as usize >= chain.len() {
        return Ok(chain.len());
    }
    match stored.iter().max_by_key(|s| s.index) {
        Some(last) if !last.completed => disagree(format!(
            "the core contract has settled up to block {} in {} settlement(s), but the \
             database's last {kind} batch {} (blocks {}..={}) is not settled in it: the \
             database is behind the chain (restored from an old backup?). Recover into an \
             empty database",
            last_settled.unwrap_or_default(),
            chain.len(),
            last.index,
            last.start_block,
            last.end_block
        )),
        _ => Ok(stored_up_to as usize),
    }
}

/// Reads the settlements of the core contract and checks them against its settled block.
///
/// # Errors
/// `Settlement` when the settlement layer fails; `History` when the events and the contract
/// disagree.
pub async fn read_settlements(
    settlement: &dyn SettlementClient,
    settings: &RecoverySettings,
) -> Result<(Option<u64>, Vec<Settlement>), RecoveryError> {
    let settled = settlement.get_last_settled_block().await.map_err(RecoveryError::Settlement)?;
    let updates = settlement
        .settled_state_updates(settings.scan_from_block)
        .await
        .map_err(RecoveryError::Settlement)?;
    let chain = settlement_ranges(settings.min_block, &updates)?;
    let last_event = chain.last().map(|c| c.end_block);
    if last_event != settled {
        let events = last_event.map_or_else(
            || "no LogStateUpdate event".to_owned(),
            |b| format!("the last LogStateUpdate event at block {b}"),
        );
        return Err(RecoveryError::History(format!(
            "the core contract's settled block is {}, but reading from settlement-layer block {} \
             found {events} (is --recover-scan-from-block after the contract's first update?)",
            settled.map_or_else(|| "none".to_owned(), |b| b.to_string()),
            settings.scan_from_block
        )));
    }
    Ok((settled, chain))
}

async fn stored_batches(
    db: &dyn DatabaseClient,
    layer: Layer,
) -> Result<(Vec<StoredBatch>, bool), RecoveryError> {
    let stored: Vec<StoredBatch> = match layer {
        Layer::L2 => db
            .get_aggregator_batches(Default::default())
            .await?
            .into_iter()
            .map(|b| StoredBatch {
                index: b.index,
                start_block: b.start_block,
                end_block: b.end_block,
                completed: b.status == AggregatorBatchStatus::Completed,
            })
            .collect(),
        Layer::L3 => db
            .get_snos_batches(SnosBatchQuery::default())
            .await?
            .into_iter()
            .map(|b| StoredBatch {
                index: b.index,
                start_block: b.start_block,
                end_block: b.end_block,
                completed: b.status == SnosBatchStatus::Completed,
            })
            .collect(),
    };
    let anything = !stored.is_empty()
        || db.get_latest_snos_batch().await?.is_some()
        || db.get_latest_aggregator_batch().await?.is_some()
        || !db.get_jobs(JobQuery { limit: Some(1), ..JobQuery::default() }).await?.is_empty();
    Ok((stored, anything))
}

fn node_error(block: u64, e: MadaraError) -> RecoveryError {
    if e.is_wait() {
        RecoveryError::Node(format!(
            "the core contract settled block {block}, but the node does not have it ({e}); \
             point --madara-rpc-url at a node synced past block {block}"
        ))
    } else {
        RecoveryError::Node(format!("reading settled block {block}: {e}"))
    }
}

/// The Starknet version of each settlement's last block, after checking that the node has
/// that block with the hash and state root of the event.
async fn check_node(
    node: &dyn MadaraClient,
    settlements: &[Settlement],
) -> Result<Vec<String>, RecoveryError> {
    let mut versions = Vec::with_capacity(settlements.len());
    for s in settlements {
        let b = s.end_block;
        let update = node.state_update(b).await.map_err(|e| node_error(b, e))?;
        let (hash, root) = (update.block_hash.to_bytes_be(), update.new_root.to_bytes_be());
        if hash != s.update.block_hash || root != s.update.state_root {
            return Err(RecoveryError::Node(format!(
                "block {b} has hash {} and state root {} on the node, but the core contract's \
                 settlement {} (transaction {}) settled hash {} and root {}: the node follows \
                 another chain",
                hex(&hash),
                hex(&root),
                s.index,
                s.update.tx_hash,
                hex(&s.update.block_hash),
                hex(&s.update.state_root)
            )));
        }
        versions.push(node.block(b).await.map_err(|e| node_error(b, e))?.starknet_version);
    }
    Ok(versions)
}

/// The `Completed` job of `job_type` for settlement `s` (batch `s.index`).
pub fn recovered_job(job_type: JobType, s: &Settlement) -> JobItem {
    let (index, start, end) = (s.index, s.start_block, s.end_block);
    let specific = match job_type {
        JobType::SnosRun => JobSpecificMetadata::Snos(SnosMetadata {
            snos_batch_index: index,
            start_block: start,
            end_block: end,
            num_blocks: end - start + 1,
            ..SnosMetadata::default()
        }),
        JobType::ProofCreation | JobType::ProofRegistration => {
            JobSpecificMetadata::Proving(ProvingMetadata {
                block_number: start,
                ..ProvingMetadata::default()
            })
        }
        JobType::DataSubmission => {
            JobSpecificMetadata::Da(DaMetadata { block_number: start, ..DaMetadata::default() })
        }
        JobType::Aggregator => JobSpecificMetadata::Aggregator(AggregatorMetadata {
            batch_num: index,
            ..AggregatorMetadata::default()
        }),
        JobType::StateTransition => {
            let mut m = StateUpdateMetadata::for_batch(index);
            m.tx_hash = Some(s.update.tx_hash.clone());
            // No artifact to expire: the storage cleanup has nothing to do for it.
            m.storage_artifacts_tagged_at = Some(now_secs());
            JobSpecificMetadata::StateUpdate(m)
        }
    };
    let mut job = JobItem::new(job_type, index, specific);
    job.status = JobStatus::Completed;
    job.external_id = match job_type {
        JobType::StateTransition => ExternalId::String(s.update.tx_hash.clone()),
        _ => ExternalId::String(RECOVERED_EXTERNAL_ID.to_owned()),
    };
    job
}

/// The `Completed` batches of settlement `s`: on L2 its aggregator batch and one SNOS batch
/// covering the same blocks; on L3 its SNOS batch.
pub fn recovered_batches(
    layer: Layer,
    s: &Settlement,
    starknet_version: &str,
) -> (SnosBatch, Option<AggregatorBatch>) {
    let aggregator_index = (layer == Layer::L2).then_some(s.index);
    let mut snos = SnosBatch::new(
        s.index,
        aggregator_index,
        s.start_block,
        starknet_version,
        BouncerWeights::ZERO,
    );
    snos.end_block = s.end_block;
    snos.num_blocks = s.end_block - s.start_block + 1;
    snos.status = SnosBatchStatus::Completed;
    let aggregator = aggregator_index.map(|index| {
        let mut a = AggregatorBatch::new(index, s.start_block, starknet_version);
        a.end_block = s.end_block;
        a.num_blocks = s.end_block - s.start_block + 1;
        a.status = AggregatorBatchStatus::Completed;
        a
    });
    (snos, aggregator)
}

/// Writes settlement `s`: its jobs first, then its batches (the settling kind last), each
/// skipped when already there, so that a cut-off recovery is finished by running it again.
async fn write_settlement(
    db: &dyn DatabaseClient,
    layer: Layer,
    s: &Settlement,
    starknet_version: &str,
) -> Result<(), RecoveryError> {
    for st in stage::stages(layer) {
        match db.create_job(recovered_job(st.job_type, s)).await {
            Ok(_) | Err(DatabaseError::ItemAlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let (snos, aggregator) = recovered_batches(layer, s, starknet_version);
    let query = SnosBatchQuery { indexes: vec![s.index], ..Default::default() };
    match db.get_snos_batches(query).await?.into_iter().next() {
        Some(b) if (b.start_block, b.end_block) == (snos.start_block, snos.end_block) => {}
        Some(b) => {
            return Err(RecoveryError::DatabaseDisagrees(format!(
                "SNOS batch {} covers blocks {}..={} in the database, but settlement {} covers \
                 blocks {}..={}",
                b.index, b.start_block, b.end_block, s.index, s.start_block, s.end_block
            )))
        }
        None => {
            db.create_snos_batch(snos).await?;
        }
    }
    if let Some(a) = aggregator {
        db.create_aggregator_batch(a).await?;
    }
    Ok(())
}

/// Recovers the settlements the database lacks (see the module docs).
///
/// # Errors
/// A [`RecoveryError`] naming what failed or disagrees; nothing is written unless every check
/// passed.
pub async fn recover(
    db: &dyn DatabaseClient,
    node: &dyn MadaraClient,
    settlement: &dyn SettlementClient,
    settings: &RecoverySettings,
) -> Result<RecoveryReport, RecoveryError> {
    let (settled, chain) = read_settlements(settlement, settings).await?;
    let kind = match settings.layer {
        Layer::L2 => "aggregator",
        Layer::L3 => "SNOS",
    };
    let (stored, anything) = stored_batches(db, settings.layer).await?;
    let from = plan(&chain, &stored, anything, kind)?;
    let missing = &chain[from..];
    let versions = check_node(node, missing).await?;
    for (s, version) in missing.iter().zip(&versions) {
        write_settlement(db, settings.layer, s, version).await?;
        tracing::info!(
            target: "orch::recover",
            batch = s.index, start = s.start_block, end = s.end_block, tx = %s.update.tx_hash,
            "Recovered settlement"
        );
    }
    let next_block = stored
        .iter()
        .map(|s| s.end_block + 1)
        .chain(chain.last().map(|c| c.end_block + 1))
        .max()
        .unwrap_or(settings.min_block);
    Ok(RecoveryReport {
        settled_block: settled,
        settlements: chain.len() as u64,
        already_stored: from as u64,
        written: missing.to_vec(),
        next_block,
    })
}

/// [`recover`] over the database, node and settlement client `params` select (`orchestrator
/// recover`, `run --recover-from-settlement`); the database is closed afterwards.
///
/// # Errors
/// A client that cannot be built, or the [`RecoveryError`].
pub async fn recover_with(
    params: &RunParams,
    scan_from_block: u64,
) -> eyre::Result<RecoveryReport> {
    let clients = crate::app::build_clients(params).await?;
    let external = ExternalClients::new(params).await?;
    let settings = RecoverySettings {
        layer: params.layer,
        min_block: params.service.min_block_to_process,
        scan_from_block,
    };
    let result = recover(
        clients.database.as_ref(),
        external.node.as_ref(),
        external.settlement.as_ref(),
        &settings,
    )
    .await;
    if let Err(e) = clients.database.disconnect().await {
        tracing::warn!(target: "orch::recover", error = %e, "Could not close the database after recovery");
    }
    result.wrap_err("recovery from the settlement layer failed")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use orchestrator_settlement_client_interface::{
        SettlementResult, SettlementVerificationStatus, Word,
    };

    use super::*;
    use crate::{
        core::client::madara::memory::InMemoryMadara,
        worker::{
            batching::{
                aggregator::{
                    tests::{env, params, settings},
                    AggregatorBatchingTrigger,
                },
                snos::SnosBatchingTrigger,
            },
            stages::state_transition::next_to_settle,
            trigger::{first_unsettled_snos_batch_index, JobTrigger},
        },
    };

    const V: &str = "0.14.2";

    fn update(block: u64) -> SettledStateUpdate {
        SettledStateUpdate {
            block_number: block,
            state_root: [0; 32],
            block_hash: Felt::from(0x1000 + block).to_bytes_be(),
            tx_hash: format!("0x{:x}", 0xaa00 + block),
            settlement_block: 10 + block,
        }
    }

    /// A settlement layer whose core contract settled `updates`.
    #[derive(Debug)]
    struct Chain(Vec<SettledStateUpdate>);

    #[async_trait]
    impl SettlementClient for Chain {
        async fn update_state_calldata(
            &self,
            _: Vec<Word>,
            _: Vec<Word>,
            _: Word,
            _: Word,
        ) -> SettlementResult<String> {
            panic!("recovery never sends a transaction")
        }
        async fn verify_tx_inclusion(
            &self,
            _: &str,
        ) -> SettlementResult<SettlementVerificationStatus> {
            panic!("recovery never verifies a transaction")
        }
        async fn wait_for_tx_finality(&self, _: &str) -> SettlementResult<Option<u64>> {
            panic!("recovery never waits for a transaction")
        }
        async fn get_last_settled_block(&self) -> SettlementResult<Option<u64>> {
            Ok(self.0.last().map(|u| u.block_number))
        }
        async fn get_nonce(&self) -> SettlementResult<u64> {
            Ok(0)
        }
        async fn settled_state_updates(
            &self,
            from: u64,
        ) -> SettlementResult<Vec<SettledStateUpdate>> {
            Ok(self.0.iter().filter(|u| u.settlement_block >= from).cloned().collect())
        }
    }

    fn recovery(layer: Layer) -> RecoverySettings {
        RecoverySettings { layer, min_block: 0, scan_from_block: 0 }
    }

    fn ranges(s: &[Settlement]) -> Vec<(u64, u64, u64)> {
        s.iter().map(|s| (s.index, s.start_block, s.end_block)).collect()
    }

    #[test]
    fn boundaries_follow_the_events_from_the_first_block() {
        let chain = settlement_ranges(0, &[update(2), update(5), update(9)]).unwrap();
        assert_eq!(ranges(&chain), vec![(1, 0, 2), (2, 3, 5), (3, 6, 9)]);
        assert_eq!(chain[1].update.tx_hash, "0xaa05");
        let chain = settlement_ranges(4, &[update(4), update(7)]).unwrap();
        assert_eq!(ranges(&chain), vec![(1, 4, 4), (2, 5, 7)]);
        assert!(settlement_ranges(0, &[]).unwrap().is_empty());
    }

    #[test]
    fn boundaries_refuse_a_history_that_does_not_advance() {
        let e = settlement_ranges(0, &[update(5), update(5)]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("0xaa05") && msg.contains("not after block 5"), "{msg}");
        let e = settlement_ranges(3, &[update(2)]).unwrap_err().to_string();
        assert!(e.contains("below --min-block-to-process 3"), "{e}");
    }

    fn stored(index: u64, start: u64, end: u64, completed: bool) -> StoredBatch {
        StoredBatch { index, start_block: start, end_block: end, completed }
    }

    #[test]
    fn plan_fills_only_what_is_missing_after_a_settled_database() {
        let chain = settlement_ranges(0, &[update(2), update(5), update(9)]).unwrap();
        assert_eq!(plan(&chain, &[], false, "x").unwrap(), 0, "empty: everything");
        let up_to_date = [stored(1, 0, 2, true), stored(2, 3, 5, true), stored(3, 6, 9, true)];
        assert_eq!(plan(&chain, &up_to_date, true, "x").unwrap(), 3, "nothing missing");
        let prefix = [stored(1, 0, 2, true), stored(2, 3, 5, true)];
        assert_eq!(plan(&chain, &prefix, true, "x").unwrap(), 2, "the tail");
        // Work in flight after the settled blocks is the pipeline's, not recovery's.
        let ahead = [
            stored(1, 0, 2, true),
            stored(2, 3, 5, true),
            stored(3, 6, 9, false),
            stored(4, 10, 12, false),
        ];
        assert_eq!(plan(&chain, &ahead, true, "x").unwrap(), 3);
        // Jobs but no batch (a recovery cut off before its first batch): everything again.
        assert_eq!(plan(&chain, &[], true, "x").unwrap(), 0);
    }

    #[test]
    fn plan_refuses_a_database_that_disagrees_with_the_chain() {
        let chain = settlement_ranges(0, &[update(2), update(5)]).unwrap();
        let other_bounds = [stored(1, 0, 3, true)];
        let e = plan(&chain, &other_bounds, true, "aggregator").unwrap_err().to_string();
        assert!(e.contains("aggregator batch 1 covers blocks 0..=3") && e.contains("0..=2"), "{e}");
        let settled_beyond = [stored(1, 0, 2, true), stored(2, 3, 5, true), stored(3, 6, 8, true)];
        let e = plan(&chain, &settled_beyond, true, "SNOS").unwrap_err().to_string();
        assert!(e.contains("SNOS batch 3") && e.contains("only 2 settlement(s)"), "{e}");
        let behind = [stored(1, 0, 2, false)];
        let e = plan(&chain, &behind, true, "aggregator").unwrap_err().to_string();
        assert!(e.contains("behind the chain") && e.contains("up to block 5"), "{e}");
        let overlapping = [stored(1, 0, 2, true), stored(2, 3, 5, true), stored(3, 5, 7, false)];
        let e = plan(&chain, &overlapping, true, "x").unwrap_err().to_string();
        assert!(e.contains("starts at block 5"), "{e}");
    }

    #[tokio::test]
    async fn l2_recovery_writes_completed_batches_and_jobs_and_batching_resumes_after_them() {
        let env = env(Layer::L2).await;
        let db = env.config.database();
        let node = Arc::new(InMemoryMadara::new());
        node.push_blocks(13, V);
        let chain = Chain(vec![update(2), update(5), update(9)]);
        let report =
            recover(db.as_ref(), node.as_ref(), &chain, &recovery(Layer::L2)).await.unwrap();
        assert_eq!(ranges(&report.written), vec![(1, 0, 2), (2, 3, 5), (3, 6, 9)]);
        assert_eq!((report.settled_block, report.next_block), (Some(9), 10));

        let aggs = db.get_aggregator_batches(Default::default()).await.unwrap();
        let got: Vec<_> =
            aggs.iter().map(|b| (b.index, b.start_block, b.end_block, b.status)).collect();
        use AggregatorBatchStatus::Completed as AC;
        assert_eq!(got, vec![(1, 0, 2, AC), (2, 3, 5, AC), (3, 6, 9, AC)]);
        assert!(aggs
            .iter()
            .all(|b| b.starknet_version == V && b.num_blocks == b.end_block - b.start_block + 1));
        let snos = db.get_snos_batches(Default::default()).await.unwrap();
        let got: Vec<_> = snos
            .iter()
            .map(|b| (b.index, b.aggregator_batch_index, b.start_block, b.end_block, b.status))
            .collect();
        use SnosBatchStatus::Completed as SC;
        assert_eq!(
            got,
            vec![(1, Some(1), 0, 2, SC), (2, Some(2), 3, 5, SC), (3, Some(3), 6, 9, SC)]
        );
        let jobs = db.get_jobs(JobQuery::default()).await.unwrap();
        assert_eq!(jobs.len(), 12, "four stages × three settlements");
        assert!(jobs.iter().all(|j| j.status == JobStatus::Completed));
        let st =
            db.get_job_by_internal_id_and_type(2, JobType::StateTransition).await.unwrap().unwrap();
        assert_eq!(st.external_id.to_string(), "0xaa05", "the settling transaction");
        let snos_job =
            db.get_job_by_internal_id_and_type(3, JobType::SnosRun).await.unwrap().unwrap();
        assert!(
            matches!(&snos_job.metadata.specific, JobSpecificMetadata::Snos(m) if (m.start_block, m.end_block) == (6, 9))
        );
        assert_eq!(db.get_aggregator_batch_for_block(4).await.unwrap().unwrap().index, 2);

        // The pipeline resumes at the first unsettled block, with the next indexes.
        assert_eq!(
            first_unsettled_snos_batch_index(&env.config).await.unwrap(),
            u64::MAX,
            "batch 4 has no SNOS batch yet"
        );
        let agg_trigger = AggregatorBatchingTrigger::new(node.clone(), None, settings(params()));
        agg_trigger.run(env.config.clone()).await.unwrap();
        let next = db.get_latest_aggregator_batch().await.unwrap().unwrap();
        assert_eq!((next.index, next.start_block, next.end_block), (4, 10, 12));
        SnosBatchingTrigger::new(node.clone(), None, settings(params()))
            .run(env.config.clone())
            .await
            .unwrap();
        let next = db.get_latest_snos_batch().await.unwrap().unwrap();
        assert_eq!((next.index, next.aggregator_batch_index, next.start_block), (4, Some(4), 10));
        assert_eq!(first_unsettled_snos_batch_index(&env.config).await.unwrap(), 4);
        let latest_st = db.get_latest_job_by_type(JobType::StateTransition, None).await.unwrap();
        let mut parent = JobItem::new(
            JobType::Aggregator,
            4,
            JobSpecificMetadata::Aggregator(Default::default()),
        );
        parent.status = JobStatus::Completed;
        let parents = [parent];
        assert_eq!(next_to_settle(latest_st.as_ref(), &parents).map(|j| j.internal_id), Some(4));

        // Again: the database is up to date, nothing is written.
        let again =
            recover(db.as_ref(), node.as_ref(), &chain, &recovery(Layer::L2)).await.unwrap();
        assert!(again.written.is_empty(), "{again:?}");
        assert_eq!((again.already_stored, again.next_block), (3, 13));
        assert!(again.summary().starts_with("nothing to recover"), "{}", again.summary());
    }

    #[tokio::test]
    async fn l3_recovery_fills_the_tail_of_a_settled_database() {
        let env = env(Layer::L3).await;
        let db = env.config.database();
        let node = InMemoryMadara::new();
        node.push_blocks(8, V);
        let first = Chain(vec![update(1), update(3)]);
        recover(db.as_ref(), &node, &first, &recovery(Layer::L3)).await.unwrap();
        let later = Chain(vec![update(1), update(3), update(6)]);
        let report = recover(db.as_ref(), &node, &later, &recovery(Layer::L3)).await.unwrap();
        assert_eq!(ranges(&report.written), vec![(3, 4, 6)]);
        assert!(report.summary().contains("blocks 4..=6"), "{}", report.summary());
        let snos = db.get_snos_batches(Default::default()).await.unwrap();
        let got: Vec<_> = snos
            .iter()
            .map(|b| (b.index, b.aggregator_batch_index, b.start_block, b.end_block))
            .collect();
        assert_eq!(got, vec![(1, None, 0, 1), (2, None, 2, 3), (3, None, 4, 6)]);
        assert!(
            db.get_latest_aggregator_batch().await.unwrap().is_none(),
            "L3 has no aggregator batches"
        );
        let types: Vec<JobType> = db
            .get_jobs(JobQuery { internal_ids: Some(&[3]), ..JobQuery::default() })
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.job_type)
            .collect();
        for t in [
            JobType::SnosRun,
            JobType::ProofCreation,
            JobType::ProofRegistration,
            JobType::DataSubmission,
            JobType::StateTransition,
        ] {
            assert!(types.contains(&t), "{t} of settlement 3: {types:?}");
        }
        assert_eq!(first_unsettled_snos_batch_index(&env.config).await.unwrap(), 4);
        SnosBatchingTrigger::new(Arc::new(node), None, settings(params()))
            .run(env.config.clone())
            .await
            .unwrap();
        let next = db.get_latest_snos_batch().await.unwrap().unwrap();
        assert_eq!((next.index, next.start_block), (4, 7));
    }

    #[tokio::test]
    async fn a_node_without_the_settled_blocks_or_of_another_chain_is_refused_before_any_write() {
        let env = env(Layer::L2).await;
        let db = env.config.database();
        let chain = Chain(vec![update(2), update(5)]);
        let short = InMemoryMadara::new();
        short.push_blocks(4, V);
        let e = recover(db.as_ref(), &short, &chain, &recovery(Layer::L2)).await.unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, RecoveryError::Node(_))
                && msg.contains("does not have it")
                && msg.contains("block 5"),
            "{msg}"
        );
        let forked = InMemoryMadara::new();
        forked.push_blocks(6, V);
        forked.set_hash(5, Felt::from(0xdead_u64));
        let msg = recover(db.as_ref(), &forked, &chain, &recovery(Layer::L2))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("another chain") && msg.contains("0xdead") && msg.contains("0xaa05"),
            "{msg}"
        );
        assert!(db.get_latest_aggregator_batch().await.unwrap().is_none());
        assert!(db.get_jobs(JobQuery::default()).await.unwrap().is_empty(), "nothing written");
    }

    #[tokio::test]
    async fn events_that_do_not_reach_the_settled_block_are_refused() {
        /// A contract whose settled block is past its last event (events read from too late).
        #[derive(Debug)]
        struct Ahead(Chain);
        #[async_trait]
        impl SettlementClient for Ahead {
            async fn update_state_calldata(
                &self,
                a: Vec<Word>,
                b: Vec<Word>,
                c: Word,
                d: Word,
            ) -> SettlementResult<String> {
                self.0.update_state_calldata(a, b, c, d).await
            }
            async fn verify_tx_inclusion(
                &self,
                h: &str,
            ) -> SettlementResult<SettlementVerificationStatus> {
                self.0.verify_tx_inclusion(h).await
            }
            async fn wait_for_tx_finality(&self, h: &str) -> SettlementResult<Option<u64>> {
                self.0.wait_for_tx_finality(h).await
            }
            async fn get_last_settled_block(&self) -> SettlementResult<Option<u64>> {
                Ok(Some(9))
            }
            async fn get_nonce(&self) -> SettlementResult<u64> {
                Ok(0)
            }
            async fn settled_state_updates(
                &self,
                from: u64,
            ) -> SettlementResult<Vec<SettledStateUpdate>> {
                self.0.settled_state_updates(from).await
            }
        }
        let env = env(Layer::L3).await;
        let node = InMemoryMadara::new();
        node.push_blocks(10, V);
        let chain = Ahead(Chain(vec![update(2), update(5)]));
        let e = recover(env.config.database().as_ref(), &node, &chain, &recovery(Layer::L3))
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("settled block is 9") && msg.contains("at block 5"), "{msg}");
    }
}
