//! Aggregator (L2): aggregates the proofs of an aggregator batch (reference §6.6).
//!
//! - Atlantic: the batch's bucket is closed; Atlantic runs the aggregator and serves its
//!   artifacts once the bucket is done.
//! - SHARP and the mock prover: the aggregator runs locally ([`LocalAggregator`]) and its PIE
//!   is submitted as an applicative job. Running the aggregator program is a seam: the build
//!   ships [`UnavailableAggregator`], which fails the job with a clear reason.
//!
//! On success the artifacts are stored (PIE, DA segment, OS output, optional proof), the
//! program output is recomputed from the PIE (aggregator-mode filter) and stored as bincode
//! `Vec<[u8; 32]>`, and the batch becomes `ReadyForStateUpdate`. On failure the batch becomes
//! `VerificationFailed`.
//!
//! Aggregator trigger (L2): an Aggregator job for every closed aggregator batch whose SNOS
//! batches tile it exactly and are all proven (reference §7).

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use orchestrator_gps_fact_checker::fact::{aggregator::filter_aggregator_output, pie};
use orchestrator_prover_client_interface::{ApplicativeJobInfo, Task, TaskStatus, TaskType};

use super::{
    proving::{create_once, variant, verify_error, ProverContext},
    StageInputs, StageWorkers,
};
use crate::{
    config::choices::ProverKind,
    types::{
        batch::{
            AggregatorBatch, AggregatorBatchQuery, AggregatorBatchStatus, SnosBatch,
            SnosBatchStatus,
        },
        jobs::{
            AggregatorMetadata, JobItem, JobSpecificMetadata, JobStatus, JobType,
            JobVerificationStatus,
        },
        queue::WorkerTriggerType,
    },
    worker::{
        handler::{Attempts, JobError, JobHandlerTrait},
        trigger::{available_slots, JobTrigger, TriggerError},
        Config,
    },
};

/// The result of running the aggregator locally.
#[derive(Debug, Clone)]
pub struct LocalAggregation {
    /// Aggregator PIE, zipped.
    pub cairo_pie_zip: Vec<u8>,
    /// DA segment (JSON array of hex felts).
    pub da_segment: Vec<u8>,
    /// The aggregator fact, `0x` hex.
    pub fact: String,
}

/// Runs the aggregator program over the children of a batch (SHARP, mock prover).
#[async_trait]
pub trait LocalAggregator: Send + Sync + fmt::Debug {
    /// Aggregates `children_program_outputs` (bincode program outputs of the SNOS batches)
    /// of aggregator batch `batch_index`.
    async fn aggregate(
        &self,
        batch_index: u64,
        children_program_outputs: Vec<Vec<u8>>,
    ) -> Result<LocalAggregation, JobError>;
}

/// The aggregator program is not part of this build: every local aggregation fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnavailableAggregator;

#[async_trait]
impl LocalAggregator for UnavailableAggregator {
    async fn aggregate(
        &self,
        batch_index: u64,
        _children: Vec<Vec<u8>>,
    ) -> Result<LocalAggregation, JobError> {
        Err(JobError::fatal(format!(
            "aggregator batch {batch_index}: local aggregation needs the Cairo aggregator program, which this build does not \
             include; use --prover atlantic on L2, or plug a LocalAggregator in"
        )))
    }
}

/// Aggregator (attempts 1, verification 900 × 30 s).
#[derive(Debug, Clone)]
pub struct AggregatorHandler {
    ctx: ProverContext,
    local: Arc<dyn LocalAggregator>,
}

fn metadata(job: &JobItem) -> Result<AggregatorMetadata, JobError> {
    match &job.metadata.specific {
        JobSpecificMetadata::Aggregator(m) => Ok(m.clone()),
        other => Err(JobError::InvalidMetadata {
            job_type: job.job_type,
            internal_id: job.internal_id,
            reason: format!("expected Aggregator metadata, found {}", variant(other)),
        }),
    }
}

/// Felts of a program output as the bincode `Vec<[u8; 32]>` the state update reads.
pub fn program_output_bincode(
    output: &[starknet_types_core::felt::Felt],
) -> Result<Vec<u8>, JobError> {
    let words: Vec<[u8; 32]> = output.iter().map(|f| f.to_bytes_be()).collect();
    bincode::serialize(&words)
        .map_err(|e| JobError::fatal_with("cannot encode the program output", e))
}

impl AggregatorHandler {
    /// A handler over `ctx` aggregating locally with `local` (SHARP, mock prover).
    pub fn new(ctx: ProverContext, local: Arc<dyn LocalAggregator>) -> Self {
        Self { ctx, local }
    }

    async fn set_batch(&self, index: u64, status: AggregatorBatchStatus) -> Result<(), JobError> {
        self.ctx
            .database
            .update_aggregator_batch_status_by_index(index, status)
            .await
            .map(|_| ())
            .map_err(|e| {
                JobError::client(format!("cannot set aggregator batch {index} to {status:?}"), e)
            })
    }

    async fn process_local(
        &self,
        job: &mut JobItem,
        m: &mut AggregatorMetadata,
    ) -> Result<String, JobError> {
        let snos =
            self.ctx.database.get_snos_batches_by_aggregator_index(m.batch_num).await.map_err(
                |e| JobError::client(format!("cannot load the SNOS batches of {}", m.batch_num), e),
            )?;
        let indexes: Vec<u64> = snos.iter().map(|b| b.index).collect();
        let proofs = self
            .ctx
            .database
            .get_jobs_by_internal_ids_and_type(&indexes, JobType::ProofCreation)
            .await
            .map_err(|e| JobError::client("cannot load the ProofCreation jobs", e))?;
        let mut outputs = Vec::with_capacity(snos.len());
        for b in &snos {
            outputs.push(
                self.ctx
                    .read(&format!("{}/program_output.txt", b.index), "a child program output")
                    .await?,
            );
        }
        let run = self
            .local
            .aggregate(m.batch_num, outputs.into_iter().map(|b| b.to_vec()).collect())
            .await?;
        if let Some(path) = &m.cairo_pie_path {
            self.ctx.write(path, run.cairo_pie_zip.clone(), "the aggregator PIE").await?;
        }
        if let Some(path) = &m.da_segment_path {
            self.ctx.write(path, run.da_segment.clone(), "the DA segment").await?;
        }
        self.store_program_output(m, &run.cairo_pie_zip).await?;
        m.ensure_on_chain_registration = Some(run.fact.clone());
        job.metadata.specific = JobSpecificMetadata::Aggregator(m.clone());
        let task = Task::RunAggregationWithPie(ApplicativeJobInfo {
            cairo_pie_zip: run.cairo_pie_zip,
            children_cairo_job_keys: proofs.iter().map(|j| j.external_id.to_string()).collect(),
            fact_hash: run.fact,
        });
        self.ctx
            .prover
            .submit_task(task)
            .await
            .map_err(|e| JobError::client("submitting the aggregation", e))
    }

    /// Recomputes the aggregator's own program output from its PIE and stores it.
    async fn store_program_output(
        &self,
        m: &AggregatorMetadata,
        pie_zip: &[u8],
    ) -> Result<(), JobError> {
        let Some(path) = &m.program_output_path else {
            return Ok(());
        };
        let parsed = pie::read_pie_bytes(pie_zip)
            .map_err(|e| JobError::fatal_with("the aggregator PIE does not parse", e))?;
        let full = pie::program_output(&parsed)
            .map_err(|e| JobError::fatal_with("the aggregator PIE has no usable output", e))?;
        let own = filter_aggregator_output(&full)
            .map_err(|e| JobError::fatal_with("the aggregator output is malformed", e))?;
        self.ctx.write(path, program_output_bincode(own)?, "the aggregator program output").await
    }

    async fn store_artifacts(&self, job: &JobItem, m: &AggregatorMetadata) -> Result<(), JobError> {
        let ext = job.external_id.to_string();
        let artifacts = self
            .ctx
            .prover
            .get_aggregation_artifacts(&ext, m.download_proof.is_some())
            .await
            .map_err(|e| JobError::client(format!("aggregation artifacts of {ext}"), e))?;
        if let Some(pie_zip) = &artifacts.cairo_pie {
            if let Some(path) = &m.cairo_pie_path {
                self.ctx.write(path, pie_zip.clone(), "the aggregator PIE").await?;
            }
            self.store_program_output(m, pie_zip).await?;
        }
        for (data, path, what) in [
            (&artifacts.da_segment, &m.da_segment_path, "the DA segment"),
            (&artifacts.snos_output, &m.snos_output_path, "the aggregator OS output"),
        ] {
            if let (Some(data), Some(path)) = (data, path) {
                self.ctx.write(path, data.clone(), what).await?;
            }
        }
        if let (Some(proof), Some(path)) = (&artifacts.proof, &m.download_proof) {
            self.ctx.write(path, proof.clone().into_bytes(), "the aggregation proof").await?;
        }
        Ok(())
    }
}

#[async_trait]
impl JobHandlerTrait for AggregatorHandler {
    fn job_type(&self) -> JobType {
        JobType::Aggregator
    }

    async fn process_job(&self, job: &mut JobItem) -> Result<String, JobError> {
        let mut m = metadata(job)?;
        let external_id = match self.ctx.kind {
            ProverKind::Atlantic => {
                let bucket = m.bucket_id.clone().ok_or_else(|| JobError::InvalidMetadata {
                    job_type: job.job_type,
                    internal_id: job.internal_id,
                    reason: "an Atlantic aggregation needs the batch's bucket id".into(),
                })?;
                self.ctx
                    .prover
                    .submit_task(Task::RunAggregation(bucket))
                    .await
                    .map_err(|e| JobError::client("closing the bucket", e))?
            }
            ProverKind::Sharp | ProverKind::Mock => self.process_local(job, &mut m).await?,
        };
        self.set_batch(m.batch_num, AggregatorBatchStatus::PendingAggregatorVerification).await?;
        Ok(external_id)
    }

    async fn verify_job(&self, job: &mut JobItem) -> Result<JobVerificationStatus, JobError> {
        let m = metadata(job)?;
        let ext = job.external_id.to_string();
        let status = match self
            .ctx
            .prover
            .get_task_status(TaskType::Aggregation, &ext, m.ensure_on_chain_registration.as_deref())
            .await
        {
            Ok(s) => s,
            Err(e) => {
                let out = verify_error(&format!("status of aggregation {ext}"), e);
                if matches!(out, Ok(JobVerificationStatus::Rejected(_))) {
                    self.set_batch(m.batch_num, AggregatorBatchStatus::VerificationFailed).await?;
                }
                return out;
            }
        };
        match status {
            TaskStatus::Processing => Ok(JobVerificationStatus::Pending),
            TaskStatus::Failed(reason) => {
                self.set_batch(m.batch_num, AggregatorBatchStatus::VerificationFailed).await?;
                Ok(JobVerificationStatus::Rejected(format!("aggregation {ext} failed: {reason}")))
            }
            TaskStatus::Succeeded => {
                if self.ctx.kind == ProverKind::Atlantic {
                    if let Err(e) = self.store_artifacts(job, &m).await {
                        if e.is_retryable() || e.operator_action().is_some() {
                            return Err(e);
                        }
                        self.set_batch(m.batch_num, AggregatorBatchStatus::VerificationFailed)
                            .await?;
                        return Ok(JobVerificationStatus::Rejected(e.to_string()));
                    }
                }
                self.set_batch(m.batch_num, AggregatorBatchStatus::ReadyForStateUpdate).await?;
                Ok(JobVerificationStatus::Verified)
            }
        }
    }

    fn attempts(&self) -> Attempts {
        Attempts::new(1, 900, Duration::from_secs(30)).polling(self.ctx.polling_override)
    }
}

// -- The trigger --

/// Creates Aggregator jobs, at most `buffer` incomplete ones at a time.
#[derive(Debug, Clone)]
pub struct AggregatorTrigger {
    /// The aggregator job buffer (`--aggregator-job-buffer-size`).
    pub buffer: u64,
    /// Whether the aggregation proof is downloaded for audit.
    pub store_audit_artifacts: bool,
}

/// Whether `snos` (any order) covers `batch`'s blocks exactly, without gap or overlap, and
/// every SNOS batch is closed.
pub fn tiles_exactly(batch: &AggregatorBatch, snos: &[SnosBatch]) -> bool {
    let mut sorted: Vec<&SnosBatch> = snos.iter().collect();
    sorted.sort_by_key(|b| b.start_block);
    let (Some(first), Some(last)) = (sorted.first(), sorted.last()) else {
        return false;
    };
    first.start_block == batch.start_block
        && last.end_block == batch.end_block
        && sorted.windows(2).all(|w| w[1].start_block == w[0].end_block + 1)
        && sorted.iter().all(|b| b.status != SnosBatchStatus::Open)
}

/// The Aggregator job metadata of `batch`.
pub fn aggregator_metadata(
    batch: &AggregatorBatch,
    store_audit_artifacts: bool,
) -> AggregatorMetadata {
    let dir = format!("artifacts/batch/{}", batch.index);
    AggregatorMetadata {
        batch_num: batch.index,
        bucket_id: batch.bucket_id.clone(),
        ensure_on_chain_registration: None,
        download_proof: store_audit_artifacts.then(|| format!("{dir}/proof.json")),
        blob_data_path: Some(format!("blob/batch/{}", batch.index)),
        da_segment_path: Some(format!("{dir}/da_blob.json")),
        cairo_pie_path: Some(format!("{dir}/cairo_pie.zip")),
        snos_output_path: Some(format!("{dir}/snos_output.json")),
        program_output_path: Some(format!("{dir}/program_output.txt")),
        aggregator_query_id: None,
    }
}

#[async_trait]
impl JobTrigger for AggregatorTrigger {
    fn trigger_type(&self) -> WorkerTriggerType {
        WorkerTriggerType::Stage(JobType::Aggregator)
    }

    async fn run(&self, config: Arc<Config>) -> Result<(), TriggerError> {
        let slots = available_slots(&config, JobType::Aggregator, self.buffer).await?;
        if slots == 0 {
            return Ok(());
        }
        let db = config.database();
        let batches = db
            .get_aggregator_batches(AggregatorBatchQuery {
                statuses: vec![AggregatorBatchStatus::Closed],
                limit: Some(slots),
                ..Default::default()
            })
            .await?;
        for batch in batches {
            let snos = db.get_snos_batches_by_aggregator_index(batch.index).await?;
            if !tiles_exactly(&batch, &snos) {
                tracing::debug!(
                    aggregator_batch = batch.index,
                    "SNOS batches do not tile the batch yet"
                );
                continue;
            }
            let (lo, hi) =
                snos.iter().fold((u64::MAX, 0), |(lo, hi), b| (lo.min(b.index), hi.max(b.index)));
            let proven = db
                .get_jobs_between_internal_ids(JobType::ProofCreation, JobStatus::Completed, lo, hi)
                .await?;
            if proven.len() != snos.len() {
                continue;
            }
            let m = aggregator_metadata(&batch, self.store_audit_artifacts);
            create_once(
                &config,
                JobType::Aggregator,
                batch.index,
                JobSpecificMetadata::Aggregator(m),
            )
            .await?;
            db.update_aggregator_batch_status_by_index(
                batch.index,
                AggregatorBatchStatus::PendingAggregatorRun,
            )
            .await?;
        }
        Ok(())
    }
}

// -- Building the stage --

/// The Aggregator handler (local aggregation unavailable: the prover aggregates) and trigger.
pub(crate) fn build(inputs: &StageInputs<'_>) -> StageWorkers {
    let ctx = ProverContext::from_inputs(inputs);
    let service = &inputs.params.service;
    let trigger = AggregatorTrigger {
        buffer: service.aggregator_job_buffer_size,
        store_audit_artifacts: service.store_audit_artifacts,
    };
    (Arc::new(AggregatorHandler::new(ctx, Arc::new(UnavailableAggregator))), Arc::new(trigger))
}

#[cfg(test)]
mod trigger_tests {
    use super::*;

    fn snos(index: u64, start: u64, end: u64, status: SnosBatchStatus) -> SnosBatch {
        let mut b = SnosBatch::new(index, Some(1), start, "0.14.1", Default::default());
        b.end_block = end;
        b.num_blocks = end - start + 1;
        b.status = status;
        b
    }

    #[test]
    fn tiling_needs_exact_contiguous_closed_cover() {
        let mut agg = AggregatorBatch::new(1, 10, "0.14.1");
        agg.end_block = 19;
        let c = SnosBatchStatus::Closed;
        assert!(tiles_exactly(&agg, &[snos(2, 15, 19, c), snos(1, 10, 14, c)]));
        assert!(!tiles_exactly(&agg, &[snos(1, 10, 14, c)]), "short");
        assert!(!tiles_exactly(&agg, &[snos(1, 10, 13, c), snos(2, 15, 19, c)]), "gap");
        assert!(!tiles_exactly(&agg, &[snos(1, 10, 15, c), snos(2, 15, 19, c)]), "overlap");
        assert!(
            !tiles_exactly(&agg, &[snos(1, 10, 14, c), snos(2, 15, 19, SnosBatchStatus::Open)]),
            "open"
        );
        assert!(!tiles_exactly(&agg, &[]));
    }
}
