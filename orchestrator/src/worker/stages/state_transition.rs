//! StateTransition: settles a batch on the settlement layer (reference §6.5).
//!
//! L2 (the only path built so far): the job settles aggregator batch `to_settle`.
//! 1. Already settled (`get_last_settled_block` ≥ the batch's end block) and no attempt of ours
//!    recorded → no transaction, the zero hash as external id. With recorded attempts (an
//!    earlier process sent the update, then died), the client is still asked: it finds which
//!    attempt landed, so the job keeps its hash and a resent update still raises its alert.
//! 2. Otherwise the aggregator's program output (bincode `Vec<[u8; 32]>`) and DA segment (JSON
//!    array of hex felts) are loaded, the segment is split into 4096-felt chunks (the last one
//!    zero-padded) and each chunk is turned into a 131072-byte blob in evaluation form, and the
//!    settlement client sends `updateStateKzgDA`.
//!
//! Attempts survive crashes: the client reports every attempt, as it happens, to a recorder
//! that writes the full attempt list to storage (`tx_attempts.json` next to the batch's
//! artifacts). The next `process_job` hands that list back to the client, which resumes the
//! same nonce (or finds the update already mined) instead of sending a second update. Storage
//! rather than the job document: the engine holds the job under optimistic versioning while
//! it is processed, so a mid-flight database update of the job would make the engine's own
//! final update conflict. The job's metadata gets the attempts (`tx_attempts`) with the
//! outcome. An update that landed but needed more than one transaction (an attempt dropped
//! from the pool, replaced for fees, refused as underpriced) raises one Warning alert, kind
//! `settlement_resent`, naming the batch and every attempt's status, fees and hash.
//!
//! L3: the job settles SNOS batch `to_settle` on a Cairo core contract, with the state diff
//! in calldata (Starknet has no blobs; the OS runs with `use_kzg_da = 0`, so its output
//! carries the diff):
//! 1. already settled (`get_last_settled_block` ≥ the batch's end block) → no transaction;
//! 2. the OS output (`snos_output.json`) must have KZG-DA flag 0 (flag 1 is an invalid input:
//!    the blobs would have nowhere to go);
//! 3. the public outputs of the SNOS proof (`<idx>/proof.json`) and of its L2 verification
//!    proof (`<idx>/proof_part2.json`) are read; the first must equal the stored OS output
//!    (a proof of something else is never settled);
//! 4. `update_state(snos_output, program_output)` is sent; its hash is the external id.
//!
//! Verification: the contract's block number reaching the batch's end completes the SNOS
//! batch; a reverted transaction is a rejection with the contract's reason.
//!
//! UpdateState trigger: at most one StateTransition at a time, strictly in order (reference
//! §7). Its parent is the Aggregator job on L2 (aggregator batches) and the DataSubmission job
//! on L3 (SNOS batches).
//!
//! One run: if the latest StateTransition is not `Completed`, nothing happens. Otherwise the
//! completed parents after the last settled index are listed; the smallest must be the next
//! index (last + 1, or 1 when nothing is settled), and exactly one StateTransition is created
//! for it with `Batch { to_settle }` and the parent's artifact paths. On L2 the aggregator
//! batch must also be `ReadyForStateUpdate`.

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use orchestrator_protocol::{
    compression::{io::parse_felt_list, DEFAULT_MAX_NUM_BLOBS},
    transform::felts_to_blobs,
};
use orchestrator_settlement_client_interface::{
    AttemptRecorder, BlobStateUpdate, SettlementClient, SettlementVerificationStatus,
    StateUpdateOutcome, TxAttempt, TxAttemptStatus as ClientAttemptStatus, Word,
};

use super::{proving::create_once, StageInputs, StageWorkers};
use crate::{
    core::client::{Alert, AlertSeverity, DatabaseClient, StorageClient, StorageError},
    types::{
        batch::{AggregatorBatch, AggregatorBatchQuery, AggregatorBatchStatus, SnosBatchStatus},
        jobs::{
            JobItem, JobSpecificMetadata, JobStatus, JobType, JobVerificationStatus,
            StateUpdateMetadata, StateUpdateTxAttempt, TxAttemptStatus,
        },
        queue::WorkerTriggerType,
        Layer,
    },
    worker::{
        alerts,
        handler::{
            load_snos_batch, read_artifact, read_os_output, Attempts, JobError, JobHandlerTrait,
            USE_KZG_DA_OFFSET,
        },
        trigger::{JobTrigger, TriggerError},
        Config,
    },
};

/// The external id of a state update that needed no transaction (already settled).
pub const ZERO_TX_HASH: &str = "0x0000000000000000000000000000000000000000000000000000000000000000";

/// What the settlement handlers share: the settlement client and the stores.
#[derive(Clone)]
pub struct SettlementJobContext {
    /// The settlement layer.
    pub settlement: Arc<dyn SettlementClient>,
    /// Artifact storage.
    pub storage: Arc<dyn StorageClient>,
    /// Jobs and batches.
    pub database: Arc<dyn DatabaseClient>,
    /// The running layer.
    pub layer: Layer,
    /// Most blobs per state update.
    pub max_num_blobs: usize,
    /// Verification polling delay instead of the job type's (tests).
    pub polling_override: Option<Duration>,
    /// Shadow mode (`--shadow`): record and compare instead of sending (see [`crate::shadow`]).
    pub shadow: Option<crate::shadow::ShadowParams>,
}

impl fmt::Debug for SettlementJobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SettlementJobContext")
            .field("settlement", &self.settlement)
            .field("layer", &self.layer)
            .field("max_num_blobs", &self.max_num_blobs)
            .field("polling_override", &self.polling_override)
            .field("shadow", &self.shadow)
            .finish_non_exhaustive()
    }
}

impl SettlementJobContext {
    /// A context with the default blob limit and polling.
    pub fn new(
        settlement: Arc<dyn SettlementClient>,
        storage: Arc<dyn StorageClient>,
        database: Arc<dyn DatabaseClient>,
        layer: Layer,
    ) -> Self {
        Self {
            settlement,
            storage,
            database,
            layer,
            max_num_blobs: DEFAULT_MAX_NUM_BLOBS,
            polling_override: None,
            shadow: None,
        }
    }

    pub(crate) async fn read(&self, key: &str, what: &str) -> Result<Bytes, JobError> {
        read_artifact(self.storage.as_ref(), key, what).await
    }

    /// Reads an artifact that may not exist yet.
    pub(crate) async fn read_optional(
        &self,
        key: &str,
        what: &str,
    ) -> Result<Option<Bytes>, JobError> {
        match self.storage.get_data(key).await {
            Ok(b) => Ok(Some(b)),
            Err(StorageError::NotFound(_)) => Ok(None),
            Err(e) => Err(JobError::client(format!("cannot read {what} at {key}"), e)),
        }
    }

    async fn aggregator_batch(&self, index: u64) -> Result<AggregatorBatch, JobError> {
        let batches = self
            .database
            .get_aggregator_batches(AggregatorBatchQuery {
                indexes: vec![index],
                ..Default::default()
            })
            .await
            .map_err(|e| JobError::client(format!("cannot load aggregator batch {index}"), e))?;
        batches
            .into_iter()
            .find(|b| b.index == index)
            .ok_or_else(|| JobError::fatal(format!("aggregator batch {index} does not exist")))
    }

    async fn set_batch(&self, index: u64, status: AggregatorBatchStatus) -> Result<(), JobError> {
        self.database
            .update_aggregator_batch_status_by_index(index, status)
            .await
            .map(|_| ())
            .map_err(|e| {
                JobError::client(format!("cannot set aggregator batch {index} to {status:?}"), e)
            })
    }

    /// Marks every SNOS batch of aggregator batch `index` `Completed` (it is settled).
    async fn complete_snos_batches(&self, index: u64) -> Result<(), JobError> {
        let batches =
            self.database.get_snos_batches_by_aggregator_index(index).await.map_err(|e| {
                JobError::client(
                    format!("cannot load the SNOS batches of aggregator batch {index}"),
                    e,
                )
            })?;
        for b in batches.iter().filter(|b| b.status != SnosBatchStatus::Completed) {
            self.database
                .update_snos_batch_status_by_index(b.index, SnosBatchStatus::Completed)
                .await
                .map_err(|e| {
                    JobError::client(format!("cannot complete SNOS batch {}", b.index), e)
                })?;
        }
        Ok(())
    }

    async fn last_settled(&self) -> Result<Option<u64>, JobError> {
        self.settlement
            .get_last_settled_block()
            .await
            .map_err(|e| JobError::client("reading the last settled block", e))
    }
}

/// Persists the attempts of one state update to storage as they happen.
struct StorageRecorder {
    storage: Arc<dyn StorageClient>,
    key: String,
}

#[async_trait]
impl AttemptRecorder for StorageRecorder {
    async fn record(&self, attempts: &[TxAttempt]) -> Result<(), String> {
        let json = serde_json::to_vec(attempts).map_err(|e| e.to_string())?;
        self.storage
            .put_data(json.into(), &self.key)
            .await
            .map_err(|e| format!("cannot store the attempts at {}: {e}", self.key))
    }
}

/// Where the attempts of the update settling `to_settle` are kept.
pub fn tx_attempts_path(layer: Layer, to_settle: u64) -> String {
    match layer {
        Layer::L2 => format!("artifacts/batch/{to_settle}/tx_attempts.json"),
        Layer::L3 => format!("{to_settle}/tx_attempts.json"),
    }
}

/// A client attempt as recorded in the job's metadata. The metadata enum has no `Sent`,
/// `Reverted`, `Superseded` or `Dropped`; those map to the nearest status with the detail in
/// `error`.
pub fn to_job_attempt(a: &TxAttempt) -> StateUpdateTxAttempt {
    let (status, note) = match a.status {
        ClientAttemptStatus::Finalized => (TxAttemptStatus::Finalized, None),
        ClientAttemptStatus::Replaced => (TxAttemptStatus::Replaced, None),
        ClientAttemptStatus::TimedOut => (TxAttemptStatus::TimedOut, None),
        ClientAttemptStatus::RejectedUnderpriced => (TxAttemptStatus::RejectedUnderpriced, None),
        ClientAttemptStatus::SubmissionFailed => (TxAttemptStatus::SubmissionFailed, None),
        ClientAttemptStatus::Sent => {
            (TxAttemptStatus::TimedOut, Some("sent; outcome not known yet"))
        }
        ClientAttemptStatus::Reverted => {
            (TxAttemptStatus::SubmissionFailed, Some("mined and reverted"))
        }
        ClientAttemptStatus::Superseded => {
            (TxAttemptStatus::Replaced, Some("superseded: its nonce carried the same update"))
        }
        ClientAttemptStatus::Dropped => {
            (TxAttemptStatus::TimedOut, Some("dropped from the pool unmined; sent again"))
        }
    };
    let error = match (&a.error, note) {
        (Some(e), Some(n)) => Some(format!("{n}: {e}")),
        (Some(e), None) => Some(e.clone()),
        (None, n) => n.map(str::to_owned),
    };
    StateUpdateTxAttempt {
        attempt_no: a.attempt_no,
        tx_hash: a.tx_hash.clone(),
        nonce: a.nonce,
        gas_multiplier: a.gas_multiplier_display(),
        status,
        error,
    }
}

/// The `settlement_resent` alert of a state update of `what` (`aggregator batch 3`) that landed
/// with `outcome`; `None` when one transaction was enough.
pub fn resent_alert(what: &str, outcome: &StateUpdateOutcome) -> Option<Alert> {
    let attempts = &outcome.attempts;
    if attempts.len() < 2 {
        return None;
    }
    let settled_by = match (&outcome.tx_hash, outcome.block_number) {
        (Some(hash), Some(block)) => format!("{hash} in block {block}"),
        (Some(hash), None) => hash.clone(),
        (None, _) => "no attempt of ours: the contract had already advanced past it".to_owned(),
    };
    let listed: Vec<String> = attempts
        .iter()
        .map(|a| {
            let hash = if a.tx_hash.is_empty() { "(not hashed)" } else { &a.tx_hash };
            let error = a.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
            format!(
                "- #{} {:?} nonce {} hash {hash} max_fee_per_gas {} wei, max_priority_fee_per_gas {} wei, \
                 max_fee_per_blob_gas {} wei (x{}){error}",
                a.attempt_no,
                a.status,
                a.nonce,
                a.max_fee_per_gas,
                a.max_priority_fee_per_gas,
                a.max_fee_per_blob_gas,
                a.gas_multiplier_display(),
            )
        })
        .collect();
    Some(Alert {
        severity: AlertSeverity::Warning,
        title: format!("State update of {what} needed {} transactions", attempts.len()),
        body: format!(
            "batch: {what}\nsettled by: {settled_by}\nattempts (oldest first):\n{}\n\
             why: Dropped = left the pool unmined and sent again on the same nonce; Replaced / \
             TimedOut = not mined within the confirmation timeout and replaced with higher fees; \
             RejectedUnderpriced = the node refused the replacement's fees\n\
             action: none for a one-off; often: check the L1 node (its pool and peers), the fees \
             (settlement_base_fee_wei, settlement_blob_base_fee_wei) and \
             --ethereum-max-fee-bumps / --ethereum-tx-confirmation-timeout-secs",
            listed.join("\n")
        ),
    })
}

/// Sends the `settlement_resent` alert when the update of `what` needed several transactions.
async fn alert_if_resent(what: &str, outcome: &StateUpdateOutcome) {
    if let Some(alert) = resent_alert(what, outcome) {
        tracing::warn!(target: "orch::settlement", batch = what, attempts = outcome.attempts.len(), "State update needed more than one transaction");
        alerts::from_handler("settlement_resent", alert).await;
    }
}

/// Decodes a program output stored as bincode `Vec<[u8; 32]>`.
pub fn decode_program_output(bytes: &[u8]) -> Result<Vec<Word>, JobError> {
    bincode::deserialize::<Vec<[u8; 32]>>(bytes)
        .map_err(|e| JobError::fatal_with("the program output does not decode", e))
}

/// The blobs of a DA segment (a JSON array of hex felts): 4096-felt chunks, the last one
/// zero-padded, each in evaluation form; at most `max_blobs`.
pub fn da_segment_to_blobs(segment: &[u8], max_blobs: usize) -> Result<Vec<Vec<u8>>, JobError> {
    let text = std::str::from_utf8(segment)
        .map_err(|e| JobError::fatal_with("the DA segment is not UTF-8", e))?;
    let felts = parse_felt_list(text)
        .map_err(|e| JobError::fatal_with("the DA segment does not parse", e))?;
    if felts.is_empty() {
        return Err(JobError::fatal("the DA segment is empty"));
    }
    felts_to_blobs(&felts, max_blobs).map_err(|e| JobError::fatal_with("the DA segment", e))
}

fn metadata(job: &JobItem) -> Result<StateUpdateMetadata, JobError> {
    match &job.metadata.specific {
        JobSpecificMetadata::StateUpdate(m) => Ok(m.clone()),
        _ => Err(JobError::InvalidMetadata {
            job_type: job.job_type,
            internal_id: job.internal_id,
            reason: "expected StateUpdate metadata".into(),
        }),
    }
}

/// Where the proofs of SNOS batch `index` are stored on L3: the SNOS proof and the proof of
/// its verification on L2.
pub fn l3_proof_paths(index: u64) -> (String, String) {
    (format!("{index}/proof.json"), format!("{index}/proof_part2.json"))
}

fn words_of(felts: &[starknet::core::types::Felt]) -> Vec<Word> {
    felts.iter().map(|f| f.to_bytes_be()).collect()
}

/// The public output of a stored proof, as words.
fn proof_output(bytes: &[u8], key: &str) -> Result<Vec<Word>, JobError> {
    let json: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| JobError::fatal_with(format!("the proof at {key} is not JSON"), e))?;
    let felts = orchestrator_prover_client_interface::public_output::public_output(&json)
        .map_err(|e| JobError::fatal_with(format!("the proof at {key}"), e))?;
    Ok(words_of(&felts))
}

/// StateTransition (attempts 3, verification 10 × 60 s).
#[derive(Debug, Clone)]
pub struct StateTransitionHandler {
    ctx: SettlementJobContext,
}

impl StateTransitionHandler {
    /// A handler over `ctx`.
    pub fn new(ctx: SettlementJobContext) -> Self {
        Self { ctx }
    }

    async fn process_l2(
        &self,
        job: &mut JobItem,
        mut m: StateUpdateMetadata,
    ) -> Result<String, JobError> {
        let to_settle = m.context.to_settle();
        let batch = self.ctx.aggregator_batch(to_settle).await?;
        let attempts_key = tx_attempts_path(self.ctx.layer, to_settle);
        let prior_attempts: Vec<TxAttempt> =
            match self.ctx.read_optional(&attempts_key, "the recorded attempts").await? {
                Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                    JobError::fatal_with(
                        format!("the recorded attempts at {attempts_key} do not parse"),
                        e,
                    )
                })?,
                None => Vec::new(),
            };
        if let Some(last) = self.ctx.last_settled().await?.filter(|&l| l >= batch.end_block) {
            if prior_attempts.is_empty() {
                tracing::info!(
                    batch = to_settle,
                    last_settled = last,
                    end_block = batch.end_block,
                    "Already settled; no transaction"
                );
                return Ok(ZERO_TX_HASH.to_owned());
            }
            // An earlier process sent this update and died before recording the outcome: the
            // client matches the recorded attempts against the chain (it sends nothing for a
            // settled batch), so the job gets the landed hash and the alert is due.
            tracing::info!(
                batch = to_settle,
                last_settled = last,
                attempts = prior_attempts.len(),
                "Already settled; reconciling the recorded attempts"
            );
        }
        let po_path = m.program_output_path.clone().ok_or_else(|| JobError::InvalidMetadata {
            job_type: job.job_type,
            internal_id: job.internal_id,
            reason: "no program_output_path".into(),
        })?;
        let da_path = m.da_segment_path.clone().ok_or_else(|| JobError::InvalidMetadata {
            job_type: job.job_type,
            internal_id: job.internal_id,
            reason: "no da_segment_path (L2 settles with the aggregator's DA segment)".into(),
        })?;
        let program_output =
            decode_program_output(&self.ctx.read(&po_path, "the program output").await?)?;
        let blobs = da_segment_to_blobs(
            &self.ctx.read(&da_path, "the DA segment").await?,
            self.ctx.max_num_blobs,
        )?;
        let update = BlobStateUpdate {
            program_output,
            blobs,
            prior_attempts,
            recorder: Some(Arc::new(StorageRecorder {
                storage: self.ctx.storage.clone(),
                key: attempts_key,
            })),
        };
        let result = self.ctx.settlement.update_state_with_blobs(update).await;
        if matches!(&result, Ok(o) if o.tx_hash.is_some()) {
            // A transaction was paid for: sample the fees and the signer balance now, so the
            // exported balance follows each settlement (the periodic sampler does the rest).
            if let Err(e) = self.ctx.settlement.refresh_metrics().await {
                tracing::warn!(target: "orch::settlement", error = %e, "Could not sample the settlement fees and signer balance");
            }
        }
        let (attempts, outcome) = match result {
            Ok(o) => (o.attempts.clone(), Ok(o)),
            Err(e) => (e.attempts.clone(), Err(e.error)),
        };
        m.tx_attempts = attempts.iter().map(to_job_attempt).collect();
        if let Some(last) = attempts.last() {
            m.tx_nonce = Some(last.nonce);
        }
        let out = match outcome {
            Ok(o) => {
                alert_if_resent(&format!("aggregator batch {to_settle}"), &o).await;
                m.tx_hash = o.tx_hash.clone();
                if let Some(hash) = &o.tx_hash {
                    if let Some(a) = attempts.iter().find(|a| &a.tx_hash == hash) {
                        m.tx_nonce = Some(a.nonce);
                    }
                }
                Ok(o.tx_hash.unwrap_or_else(|| ZERO_TX_HASH.to_owned()))
            }
            Err(e) => {
                let e = JobError::client(format!("settling aggregator batch {to_settle}"), e);
                if !e.is_retryable() {
                    self.ctx.set_batch(to_settle, AggregatorBatchStatus::StateUpdateFailed).await?;
                }
                Err(e)
            }
        };
        job.metadata.specific = JobSpecificMetadata::StateUpdate(m);
        out
    }
}

impl StateTransitionHandler {
    async fn process_l3(
        &self,
        job: &mut JobItem,
        mut m: StateUpdateMetadata,
    ) -> Result<String, JobError> {
        let to_settle = m.context.to_settle();
        let batch = load_snos_batch(self.ctx.database.as_ref(), to_settle).await?;
        if let Some(last) = self.ctx.last_settled().await? {
            if last >= batch.end_block {
                tracing::info!(
                    snos_batch = to_settle,
                    last_settled = last,
                    end_block = batch.end_block,
                    "Already settled; no transaction"
                );
                return Ok(ZERO_TX_HASH.to_owned());
            }
        }
        let os_path = m.snos_output_path.clone().ok_or_else(|| JobError::InvalidMetadata {
            job_type: job.job_type,
            internal_id: job.internal_id,
            reason: "no snos_output_path (L3 settles the OS output)".into(),
        })?;
        let os_output = read_os_output(self.ctx.storage.as_ref(), &os_path).await?;
        match os_output.get(USE_KZG_DA_OFFSET).map(|f| f.to_biguint()) {
            Some(flag) if flag == 0u8.into() => {}
            Some(flag) if flag == 1u8.into() => return self.process_l3_blobs(job, m).await,
            Some(flag) => {
                return Err(JobError::fatal(format!(
                    "SNOS batch {to_settle}: unsupported KZG-DA flag {flag}"
                )))
            }
            None => {
                return Err(JobError::fatal(format!(
                    "SNOS batch {to_settle}: the OS output has {} felts, too short for a header",
                    os_output.len()
                )))
            }
        }
        let (snos_proof_key, bridge_proof_key) = l3_proof_paths(to_settle);
        let snos_output = proof_output(
            &self.ctx.read(&snos_proof_key, "the SNOS proof").await?,
            &snos_proof_key,
        )?;
        if snos_output != words_of(&os_output) {
            return Err(JobError::fatal(format!(
                "SNOS batch {to_settle}: the public output of {snos_proof_key} ({} felts) is not the OS output of the \
                 SNOS run ({} felts); nothing is settled",
                snos_output.len(),
                os_output.len()
            )));
        }
        let program_output = proof_output(
            &self.ctx.read(&bridge_proof_key, "the L2 verification proof").await?,
            &bridge_proof_key,
        )?;
        let result = self
            .ctx
            .settlement
            .update_state_calldata(snos_output, program_output, [0; 32], [0; 32])
            .await;
        match result {
            Ok(hash) => {
                tracing::info!(target: "orch::settlement", snos_batch = to_settle, tx = %hash, "update_state sent");
                m.tx_hash = Some(hash.clone());
                job.metadata.specific = JobSpecificMetadata::StateUpdate(m);
                Ok(hash)
            }
            Err(e) => Err(JobError::client(format!("settling SNOS batch {to_settle}"), e)),
        }
    }

    /// L3 with KZG DA (the OS output has flag 1; settling on Ethereum): the SNOS program
    /// output and the blobs DataSubmission stored go to `update_state_with_blobs`. A Cairo
    /// core contract takes no blobs: its client answers `Unsupported`, which fails the job.
    async fn process_l3_blobs(
        &self,
        job: &mut JobItem,
        mut m: StateUpdateMetadata,
    ) -> Result<String, JobError> {
        let to_settle = m.context.to_settle();
        let missing = |what: &str| JobError::InvalidMetadata {
            job_type: job.job_type,
            internal_id: job.internal_id,
            reason: format!(
                "no {what} (L3 with KZG DA settles the program output with the batch's blobs)"
            ),
        };
        let po_path =
            m.program_output_path.clone().ok_or_else(|| missing("program_output_path"))?;
        let blob_path = m.blob_data_path.clone().ok_or_else(|| missing("blob_data_path"))?;
        let program_output =
            decode_program_output(&self.ctx.read(&po_path, "the program output").await?)?;
        let data = self.ctx.read(&blob_path, "the blob data").await?;
        if data.is_empty() || data.len() % orchestrator_protocol::compression::BYTES_PER_BLOB != 0 {
            return Err(JobError::fatal(format!(
                "the blob data at {blob_path} is {} bytes, not a whole number of {}-byte blobs",
                data.len(),
                orchestrator_protocol::compression::BYTES_PER_BLOB
            )));
        }
        let blobs: Vec<Vec<u8>> = data
            .chunks(orchestrator_protocol::compression::BYTES_PER_BLOB)
            .map(<[u8]>::to_vec)
            .collect();
        let update =
            BlobStateUpdate { program_output, blobs, prior_attempts: Vec::new(), recorder: None };
        match self.ctx.settlement.update_state_with_blobs(update).await {
            Ok(o) => {
                alert_if_resent(&format!("SNOS batch {to_settle}"), &o).await;
                m.tx_attempts = o.attempts.iter().map(to_job_attempt).collect();
                m.tx_hash = o.tx_hash.clone();
                job.metadata.specific = JobSpecificMetadata::StateUpdate(m);
                Ok(o.tx_hash.unwrap_or_else(|| ZERO_TX_HASH.to_owned()))
            }
            Err(e) => Err(JobError::client(
                format!("settling SNOS batch {to_settle} with blobs"),
                e.error,
            )),
        }
    }

    async fn verify_l3(
        &self,
        job: &JobItem,
        m: &StateUpdateMetadata,
    ) -> Result<JobVerificationStatus, JobError> {
        let to_settle = m.context.to_settle();
        let batch = load_snos_batch(self.ctx.database.as_ref(), to_settle).await?;
        let expected = batch.end_block;
        let last = self.ctx.last_settled().await?;
        if last.is_some_and(|l| l >= expected) {
            self.ctx
                .database
                .update_snos_batch_status_by_index(to_settle, SnosBatchStatus::Completed)
                .await
                .map_err(|e| {
                    JobError::client(format!("cannot complete SNOS batch {to_settle}"), e)
                })?;
            return Ok(JobVerificationStatus::Verified);
        }
        let hash = job.external_id.to_string();
        if !hash.is_empty() && hash != ZERO_TX_HASH {
            match self.ctx.settlement.verify_tx_inclusion(&hash).await {
                Ok(SettlementVerificationStatus::Rejected(reason)) => {
                    return Ok(JobVerificationStatus::Rejected(format!(
                        "state update {hash} of SNOS batch {to_settle}: {reason}"
                    )));
                }
                Ok(SettlementVerificationStatus::Pending) => {
                    return Ok(JobVerificationStatus::Pending)
                }
                Ok(SettlementVerificationStatus::Verified) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if last == batch.start_block.checked_sub(1) {
            // Included but the contract has not caught up in the view we read: poll again.
            return Ok(JobVerificationStatus::Pending);
        }
        let found = last.map_or_else(|| "none".to_owned(), |l| l.to_string());
        Ok(JobVerificationStatus::Rejected(format!(
            "SNOS batch {to_settle}: expected the last settled block to be {expected} found {found}"
        )))
    }
}

#[async_trait]
impl JobHandlerTrait for StateTransitionHandler {
    fn job_type(&self) -> JobType {
        JobType::StateTransition
    }

    fn settlement_client(&self) -> Option<Arc<dyn SettlementClient>> {
        Some(self.ctx.settlement.clone())
    }

    async fn process_job(&self, job: &mut JobItem) -> Result<String, JobError> {
        let m = metadata(job)?;
        if self.ctx.shadow.is_some() {
            return self.process_shadow(job, &m).await;
        }
        match self.ctx.layer {
            Layer::L2 => self.process_l2(job, m).await,
            Layer::L3 => self.process_l3(job, m).await,
        }
    }

    async fn verify_job(&self, job: &mut JobItem) -> Result<JobVerificationStatus, JobError> {
        let m = metadata(job)?;
        if let Some(shadow) = &self.ctx.shadow {
            return self.verify_shadow(&m, shadow).await;
        }
        if self.ctx.layer == Layer::L3 {
            return self.verify_l3(job, &m).await;
        }
        let to_settle = m.context.to_settle();
        let batch = self.ctx.aggregator_batch(to_settle).await?;
        let expected = batch.end_block;
        let last = self.ctx.last_settled().await?;
        if last.is_some_and(|l| l >= expected) {
            // The SNOS batches first: a crash in between leaves the aggregator batch pending
            // and this verification runs again. (The reference never completes them on L2.)
            self.ctx.complete_snos_batches(to_settle).await?;
            self.ctx.set_batch(to_settle, AggregatorBatchStatus::Completed).await?;
            return Ok(JobVerificationStatus::Verified);
        }
        let previous_end = batch.start_block.checked_sub(1);
        if last == previous_end {
            // Not advanced yet; a reverted transaction will not advance it.
            let hash = job.external_id.to_string();
            if !hash.is_empty() && hash != ZERO_TX_HASH {
                match self.ctx.settlement.verify_tx_inclusion(&hash).await {
                    Ok(SettlementVerificationStatus::Rejected(reason)) => {
                        return Ok(JobVerificationStatus::Rejected(format!(
                            "state update {hash} of aggregator batch {to_settle}: {reason}"
                        )));
                    }
                    Ok(_) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(JobVerificationStatus::Pending);
        }
        let found = last.map_or_else(|| "none".to_owned(), |l| l.to_string());
        Ok(JobVerificationStatus::Rejected(format!(
            "aggregator batch {to_settle}: expected the last settled block to be {expected} found {found}"
        )))
    }

    fn attempts(&self) -> Attempts {
        if self.ctx.shadow.is_some() {
            // A shadow job waits for the live operator, however long it takes.
            return Attempts::new(3, SHADOW_VERIFICATION_POLLS, Duration::from_secs(60))
                .polling(self.ctx.polling_override);
        }
        Attempts::new(3, 10, Duration::from_secs(60)).polling(self.ctx.polling_override)
    }
}

// -- Shadow mode --

/// Verification polls of a shadow StateTransition (it waits for the live operator): about a
/// week at the default 60 s.
pub const SHADOW_VERIFICATION_POLLS: u64 = 10_000;

/// The external id of a shadow StateTransition (nothing was sent).
pub fn shadow_external_id(to_settle: u64) -> String {
    format!("shadow:batch-{to_settle}")
}

impl StateTransitionHandler {
    /// Shadow mode, processing: builds the update exactly as [`Self::process_l2`] does and
    /// records what would be sent (decoded calldata, versioned hashes, fee estimate) at
    /// [`crate::shadow::call_path`]. Nothing is sent, even when the live operator has already
    /// settled the batch: the comparison needs the would-be update either way.
    async fn process_shadow(
        &self,
        job: &JobItem,
        m: &StateUpdateMetadata,
    ) -> Result<String, JobError> {
        let to_settle = m.context.to_settle();
        if self.ctx.layer != Layer::L2 {
            return Err(JobError::fatal(
                "shadow mode compares Ethereum (L2) state updates only; an L3 orchestrator cannot run with --shadow",
            ));
        }
        let missing = |what: &str| JobError::InvalidMetadata {
            job_type: job.job_type,
            internal_id: job.internal_id,
            reason: format!("no {what}"),
        };
        let po_path =
            m.program_output_path.clone().ok_or_else(|| missing("program_output_path"))?;
        let da_path = m.da_segment_path.clone().ok_or_else(|| missing("da_segment_path"))?;
        let program_output =
            decode_program_output(&self.ctx.read(&po_path, "the program output").await?)?;
        let blobs = da_segment_to_blobs(
            &self.ctx.read(&da_path, "the DA segment").await?,
            self.ctx.max_num_blobs,
        )?;
        let call =
            self.ctx.settlement.preview_update_with_blobs(program_output, blobs).await.map_err(
                |e| {
                    JobError::client(
                        format!("building the would-be update of aggregator batch {to_settle}"),
                        e,
                    )
                },
            )?;
        let key = crate::shadow::call_path(to_settle);
        let json = serde_json::to_vec(&call)
            .map_err(|e| JobError::fatal_with("the would-be update does not serialize", e))?;
        crate::worker::handler::write_artifact(
            self.ctx.storage.as_ref(),
            &key,
            json.into(),
            "the would-be update",
        )
        .await?;
        tracing::info!(target: "orch::settlement", batch = to_settle, function = %call.function, blobs = call.blob_versioned_hashes.len(), fee_wei = ?call.fee_wei, "Shadow: would-be state update recorded, nothing sent; waiting for the live operator");
        Ok(shadow_external_id(to_settle))
    }

    /// Shadow mode, verification: pending until the live operator's contract reaches the
    /// batch's last block; then the live update of the same range is found among the core
    /// contract's `LogStateUpdate` events, its transaction fetched and compared with the
    /// recorded would-be update. The report goes to [`crate::shadow::report_path`] and the
    /// `shadow_comparisons_total` metric; the job completes whatever the result (the report
    /// carries it), and the batch is completed as the chain settled it.
    async fn verify_shadow(
        &self,
        m: &StateUpdateMetadata,
        shadow: &crate::shadow::ShadowParams,
    ) -> Result<JobVerificationStatus, JobError> {
        let to_settle = m.context.to_settle();
        let batch = self.ctx.aggregator_batch(to_settle).await?;
        let (start, end) = (batch.start_block, batch.end_block);
        if self.ctx.last_settled().await?.is_none_or(|l| l < end) {
            tracing::debug!(
                batch = to_settle,
                end_block = end,
                "Shadow: the live operator has not settled the batch yet"
            );
            return Ok(JobVerificationStatus::Pending);
        }
        let key = crate::shadow::call_path(to_settle);
        let would_be: orchestrator_settlement_client_interface::StateUpdateCall =
            serde_json::from_slice(&self.ctx.read(&key, "the would-be update").await?).map_err(
                |e| JobError::fatal_with(format!("the would-be update at {key} does not parse"), e),
            )?;
        let updates = self
            .ctx
            .settlement
            .settled_state_updates(shadow.scan_from_block)
            .await
            .map_err(|e| JobError::client("reading the live operator's state updates", e))?;
        let (found, range) = crate::shadow::live_update_of(&updates, start, end);
        let live = match found {
            Some(u) => Some(self.ctx.settlement.landed_update(&u.tx_hash).await.map_err(|e| {
                JobError::client(format!("reading the live state update {}", u.tx_hash), e)
            })?),
            None => None,
        };
        let report = crate::shadow::ShadowReport::new(
            (to_settle, start, end),
            &would_be,
            live.as_ref(),
            range,
        );
        let json = serde_json::to_vec(&report)
            .map_err(|e| JobError::fatal_with("the shadow report does not serialize", e))?;
        crate::worker::handler::write_artifact(
            self.ctx.storage.as_ref(),
            &crate::shadow::report_path(to_settle),
            json.into(),
            "the shadow report",
        )
        .await?;
        if report.matched {
            tracing::info!(target: "orch::settlement", batch = to_settle, live_tx = ?report.live_tx_hash, "Shadow: the would-be state update matches the live one");
        } else {
            let listed: Vec<String> = report.differences.iter().map(ToString::to_string).collect();
            tracing::warn!(target: "orch::settlement", batch = to_settle, live_tx = ?report.live_tx_hash, differences = %listed.join(" | "), "Shadow: the would-be state update differs from the live one");
        }
        let matched = report.matched;
        alerts::handler_metrics(|metrics| metrics.shadow_comparison(matched));
        self.ctx.complete_snos_batches(to_settle).await?;
        self.ctx.set_batch(to_settle, AggregatorBatchStatus::Completed).await?;
        Ok(JobVerificationStatus::Verified)
    }
}

// -- The trigger --

/// Creates StateTransition jobs, one at a time.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpdateStateTrigger;

/// The job type a StateTransition follows on `layer`.
pub fn parent_job_type(layer: Layer) -> JobType {
    match layer {
        Layer::L2 => JobType::Aggregator,
        Layer::L3 => JobType::DataSubmission,
    }
}

/// The index the last StateTransition settled (its context's `to_settle`).
fn settled_index(job: &JobItem) -> u64 {
    match &job.metadata.specific {
        JobSpecificMetadata::StateUpdate(m) => m.context.to_settle(),
        _ => job.internal_id,
    }
}

/// The StateTransition metadata settling the batch of `parent` (its artifact paths).
pub fn state_update_metadata(layer: Layer, parent: &JobItem) -> StateUpdateMetadata {
    let index = parent.internal_id;
    let mut m = StateUpdateMetadata::for_batch(index);
    match (layer, &parent.metadata.specific) {
        (Layer::L2, JobSpecificMetadata::Aggregator(a)) => {
            m.snos_output_path = a.snos_output_path.clone();
            m.program_output_path = a.program_output_path.clone();
            m.da_segment_path = a.da_segment_path.clone();
            m.blob_data_path = a.blob_data_path.clone();
        }
        (Layer::L3, JobSpecificMetadata::Da(d)) => {
            m.snos_output_path = Some(format!("{index}/snos_output.json"));
            m.program_output_path = Some(format!("{index}/program_output.txt"));
            m.blob_data_path = d.blob_data_path.clone();
        }
        _ => {
            m.snos_output_path = Some(format!("{index}/snos_output.json"));
            m.program_output_path = Some(format!("{index}/program_output.txt"));
        }
    }
    m
}

/// What the trigger should do given the latest StateTransition and the completed parents
/// after it (ascending): `Some(parent)` to settle it next, `None` to wait.
pub fn next_to_settle<'a>(latest: Option<&JobItem>, parents: &'a [JobItem]) -> Option<&'a JobItem> {
    let expected = match latest {
        Some(j) if j.status != JobStatus::Completed => return None,
        Some(j) => settled_index(j) + 1,
        None => 1,
    };
    let first = parents.iter().min_by_key(|j| j.internal_id)?;
    (first.internal_id == expected).then_some(first)
}

#[async_trait]
impl JobTrigger for UpdateStateTrigger {
    fn trigger_type(&self) -> WorkerTriggerType {
        WorkerTriggerType::Stage(JobType::StateTransition)
    }

    async fn run(&self, config: Arc<Config>) -> Result<(), TriggerError> {
        let db = config.database();
        let latest = db.get_latest_job_by_type(JobType::StateTransition, None).await?;
        if latest.as_ref().is_some_and(|j| j.status != JobStatus::Completed) {
            tracing::debug!("A StateTransition is in flight; waiting");
            return Ok(());
        }
        let last = latest.as_ref().map_or(0, settled_index);
        let parents = db
            .get_jobs_after_internal_id_by_job_type(
                parent_job_type(config.layer),
                JobStatus::Completed,
                last,
                None,
            )
            .await?;
        let Some(parent) = next_to_settle(latest.as_ref(), &parents) else {
            if let Some(first) = parents.first() {
                tracing::debug!(
                    last_settled = last,
                    next_candidate = first.internal_id,
                    "The next batch to settle is not ready; waiting"
                );
            }
            return Ok(());
        };
        if config.layer == Layer::L2 {
            let batch = db
                .get_aggregator_batches(AggregatorBatchQuery {
                    indexes: vec![parent.internal_id],
                    ..Default::default()
                })
                .await?
                .into_iter()
                .find(|b| b.index == parent.internal_id);
            match batch {
                Some(b) if b.status == AggregatorBatchStatus::ReadyForStateUpdate => {}
                other => {
                    tracing::debug!(
                        aggregator_batch = parent.internal_id,
                        status = ?other.map(|b| b.status),
                        "Aggregator batch not ReadyForStateUpdate; waiting"
                    );
                    return Ok(());
                }
            }
        }
        let m = state_update_metadata(config.layer, parent);
        create_once(
            &config,
            JobType::StateTransition,
            parent.internal_id,
            JobSpecificMetadata::StateUpdate(m),
        )
        .await
    }
}

// -- Building the stage --

/// The StateTransition handler (the settlement client of the pipeline) and the UpdateState
/// trigger.
pub(crate) fn build(inputs: &StageInputs<'_>) -> StageWorkers {
    let StageInputs { params, clients, external } = *inputs;
    let mut ctx = SettlementJobContext::new(
        external.settlement.clone(),
        clients.storage.clone(),
        clients.database.clone(),
        params.layer,
    );
    ctx.max_num_blobs = params.batching.max_num_blobs;
    ctx.polling_override = params.service.verification_poll;
    ctx.shadow = params.shadow.clone();
    workers(ctx)
}

/// The StateTransition handler over `ctx` and the UpdateState trigger.
pub fn workers(ctx: SettlementJobContext) -> StageWorkers {
    (Arc::new(StateTransitionHandler::new(ctx)), Arc::new(UpdateStateTrigger))
}

#[cfg(test)]
mod tests {
    use orchestrator_protocol::compression::{io::felt_hex, BYTES_PER_BLOB};
    use orchestrator_settlement_client_interface::SettlementError;
    use starknet::core::types::Felt;

    use super::*;

    fn segment(n: usize) -> Vec<u8> {
        let felts: Vec<String> = (0..n as u64).map(|i| felt_hex(&Felt::from(i + 1))).collect();
        serde_json::to_vec(&felts).unwrap()
    }

    #[test]
    fn da_segment_pads_to_whole_blobs() {
        assert_eq!(da_segment_to_blobs(&segment(1), 6).unwrap().len(), 1);
        assert_eq!(da_segment_to_blobs(&segment(4096), 6).unwrap().len(), 1);
        let two = da_segment_to_blobs(&segment(4097), 6).unwrap();
        assert_eq!(two.len(), 2);
        assert!(two.iter().all(|b| b.len() == BYTES_PER_BLOB));
    }

    #[test]
    fn too_many_blobs_is_fatal() {
        let e = da_segment_to_blobs(&segment(4097), 1).unwrap_err();
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("blob"), "{e}");
        assert!(!da_segment_to_blobs(b"[]", 6).unwrap_err().is_retryable());
        assert!(!da_segment_to_blobs(b"[\"zz\"]", 6).unwrap_err().is_retryable());
    }

    #[test]
    fn program_output_round_trips_and_garbage_is_fatal() {
        let words = vec![[1u8; 32], [2u8; 32]];
        let bytes = bincode::serialize(&words).unwrap();
        assert_eq!(decode_program_output(&bytes).unwrap(), words);
        assert!(!decode_program_output(&[1, 2, 3]).unwrap_err().is_retryable());
    }

    #[test]
    fn attempts_map_with_their_detail() {
        let a = TxAttempt {
            attempt_no: 2,
            tx_hash: "0xab".into(),
            nonce: 7,
            gas_multiplier_milli: 2200,
            max_fee_per_gas: 1,
            max_priority_fee_per_gas: 1,
            max_fee_per_blob_gas: 1,
            status: ClientAttemptStatus::Reverted,
            error: Some("BAD".into()),
        };
        let j = to_job_attempt(&a);
        assert_eq!(j.gas_multiplier, "2.20");
        assert_eq!(j.status, TxAttemptStatus::SubmissionFailed);
        assert_eq!(j.error.as_deref(), Some("mined and reverted: BAD"));
        assert_eq!(j.nonce, 7);
    }

    #[test]
    fn retryability_follows_the_client() {
        assert!(JobError::client("x", SettlementError::Rpc("down".into())).is_retryable());
        assert!(
            !JobError::client("x", SettlementError::InvalidInput("short".into())).is_retryable()
        );
    }
}

#[cfg(test)]
mod trigger_tests {
    use super::*;
    use crate::types::jobs::AggregatorMetadata;

    fn agg(i: u64) -> JobItem {
        let mut j = JobItem::new(
            JobType::Aggregator,
            i,
            JobSpecificMetadata::Aggregator(AggregatorMetadata {
                batch_num: i,
                program_output_path: Some(format!("artifacts/batch/{i}/program_output.txt")),
                da_segment_path: Some(format!("artifacts/batch/{i}/da_blob.json")),
                ..Default::default()
            }),
        );
        j.status = JobStatus::Completed;
        j
    }

    fn st(i: u64, status: JobStatus) -> JobItem {
        let mut j = JobItem::new(
            JobType::StateTransition,
            i,
            JobSpecificMetadata::StateUpdate(state_update_metadata(Layer::L2, &agg(i))),
        );
        j.status = status;
        j
    }

    #[test]
    fn strictly_sequential() {
        let parents = [agg(2), agg(3)];
        assert!(next_to_settle(None, &parents).is_none(), "1 is missing");
        assert_eq!(next_to_settle(None, &[agg(1), agg(2)]).unwrap().internal_id, 1);
        let done = st(1, JobStatus::Completed);
        assert_eq!(next_to_settle(Some(&done), &parents).unwrap().internal_id, 2);
        let busy = st(1, JobStatus::PendingVerification);
        assert!(next_to_settle(Some(&busy), &parents).is_none());
        assert!(next_to_settle(Some(&done), &[agg(3)]).is_none(), "gap");
        assert!(next_to_settle(Some(&done), &[]).is_none());
    }

    #[test]
    fn paths_come_from_the_aggregator_job() {
        let m = state_update_metadata(Layer::L2, &agg(4));
        assert_eq!(m.context.to_settle(), 4);
        assert!(matches!(m.context, crate::types::jobs::SettlementContext::Batch(_)));
        assert_eq!(m.program_output_path.as_deref(), Some("artifacts/batch/4/program_output.txt"));
        assert_eq!(m.da_segment_path.as_deref(), Some("artifacts/batch/4/da_blob.json"));
    }
}
