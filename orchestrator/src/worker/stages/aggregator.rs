//! Aggregator (L2): aggregates the proofs of an aggregator batch (reference §6.6).
//!
//! - Atlantic: the batch's bucket is closed; Atlantic runs the aggregator and serves its
//!   artifacts once the bucket is done.
//! - SHARP and the mock prover: the aggregator runs locally ([`LocalAggregator`]) over the
//!   children (each SNOS batch's PIE and OS output, its prover task id) and its PIE is
//!   submitted as an applicative job with its fact. `--aggregator-runner` picks the local
//!   aggregator: [`StandInAggregator`] (the SNOS stand-in in aggregator mode, the same one the
//!   mock Atlantic server runs; the mock prover's default) or [`ExternalAggregatorRunner`]
//!   (`--aggregator-command`, required with SHARP; contract in `docs/provers.md`).
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
use cairo_vm::types::layout_name::LayoutName;
use orchestrator_gps_fact_checker::fact::{
    aggregator::filter_aggregator_output, keccak256_concat, pie, program_hash::program_hash,
};
use orchestrator_protocol::compression::io::parse_felt_list;
use orchestrator_prover_client_interface::{
    AggregationArtifacts, ApplicativeJobInfo, Task, TaskStatus, TaskType,
};
use orchestrator_snos_runner::{
    aggregator::aggregate_pies,
    external_aggregator::{
        AggregationChildInput, AggregationInput, ExternalAggregator, ExternalAggregatorConfig,
    },
    Felt, Retryable, SnosRunnerError,
};

use super::{
    proving::{created_once, variant, verify_error, ProverContext},
    StageInputs, StageWorkers,
};
use crate::{
    config::{choices::ProverKind, AggregatorParams, AggregatorRunnerKind},
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
        handler::{read_os_output, Attempts, JobError, JobHandlerTrait},
        service,
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
    /// The aggregator fact, `0x` hex: `keccak(program_hash, keccak(aggregated output words))`,
    /// the fact a core contract checks for the aggregated output.
    pub fact: String,
}

impl LocalAggregation {
    /// Checks an aggregator run (its PIE must parse and its output must have the aggregator
    /// layout) and computes its fact.
    ///
    /// # Errors
    /// Fatal, naming the problem: the same run fails the same way.
    pub fn from_run(cairo_pie_zip: Vec<u8>, da_segment: &[Felt]) -> Result<Self, JobError> {
        let parsed = pie::read_pie_bytes(&cairo_pie_zip)
            .map_err(|e| JobError::fatal_with("the aggregator PIE does not parse", e))?;
        let hash = program_hash(&parsed)
            .map_err(|e| JobError::fatal_with("the aggregator PIE has no program hash", e))?;
        let full = pie::program_output(&parsed)
            .map_err(|e| JobError::fatal_with("the aggregator PIE has no usable output", e))?;
        let own = filter_aggregator_output(&full).map_err(|e| {
            JobError::fatal_with("the aggregator PIE's output is not aggregator-shaped", e)
        })?;
        let words: Vec<[u8; 32]> = own.iter().map(|f| f.to_bytes_be()).collect();
        let output_hash = keccak256_concat(words.iter().map(|w| w.as_slice()));
        let fact =
            keccak256_concat([hash.to_bytes_be().as_slice(), output_hash.as_bytes().as_slice()]);
        let hex: Vec<String> = da_segment.iter().map(|f| format!("{f:#x}")).collect();
        let da_segment = serde_json::to_vec(&hex)
            .map_err(|e| JobError::fatal_with("cannot encode the DA segment", e))?;
        Ok(Self { cairo_pie_zip, da_segment, fact: fact.to_string() })
    }
}

/// Runs the aggregator program over the children of a batch (SHARP, mock prover).
#[async_trait]
pub trait LocalAggregator: Send + Sync + fmt::Debug {
    /// A short name for logs (`stand-in`, `external`, `unavailable`).
    fn name(&self) -> &'static str;

    /// Aggregates the children of `input` (aggregator batch `input.batch_index`).
    async fn aggregate(&self, input: &AggregationInput) -> Result<LocalAggregation, JobError>;
}

/// No local aggregator: every local aggregation fails (tests of the other paths).
#[derive(Debug, Clone, Copy, Default)]
pub struct UnavailableAggregator;

#[async_trait]
impl LocalAggregator for UnavailableAggregator {
    fn name(&self) -> &'static str {
        "unavailable"
    }

    async fn aggregate(&self, input: &AggregationInput) -> Result<LocalAggregation, JobError> {
        Err(JobError::fatal(format!(
            "aggregator batch {}: no local aggregator is configured; use --aggregator-runner \
             stand-in (mock prover) or --aggregator-runner external --aggregator-command <cmd>",
            input.batch_index
        )))
    }
}

fn runner_error(batch: u64, e: SnosRunnerError) -> JobError {
    let what = format!("aggregator batch {batch}: the aggregator");
    if e.is_retryable() {
        JobError::retryable_with(what, e)
    } else {
        JobError::fatal_with(what, e)
    }
}

/// The SNOS stand-in in aggregator mode, in process
/// ([`orchestrator_snos_runner::aggregator::aggregate_pies`], strict: a child PIE that is not
/// OS-shaped fails the job naming it). Proves nothing.
#[derive(Debug, Clone, Copy)]
pub struct StandInAggregator {
    /// The layout of the run (the stand-in cannot run `dynamic`).
    pub layout: LayoutName,
}

impl Default for StandInAggregator {
    fn default() -> Self {
        Self { layout: LayoutName::all_cairo }
    }
}

#[async_trait]
impl LocalAggregator for StandInAggregator {
    fn name(&self) -> &'static str {
        "stand-in"
    }

    async fn aggregate(&self, input: &AggregationInput) -> Result<LocalAggregation, JobError> {
        let (layout, batch, max) = (self.layout, input.batch_index, input.max_num_blobs);
        let children: Vec<(u64, Vec<u8>)> = input
            .children
            .iter()
            .enumerate()
            .map(|(i, c)| (i as u64 + 1, c.cairo_pie_zip.clone()))
            .collect();
        let run = tokio::task::spawn_blocking(move || {
            let refs: Vec<(u64, &[u8])> =
                children.iter().map(|(i, z)| (*i, z.as_slice())).collect();
            aggregate_pies(&refs, max, layout, false)
        })
        .await
        .map_err(|e| JobError::fatal_with("the stand-in aggregator panicked", e))?
        .map_err(|e| runner_error(batch, e))?;
        tracing::info!(target: "orch::prover", aggregator_batch = batch, n_steps = run.n_steps, "Stand-in aggregation done (proves nothing)");
        LocalAggregation::from_run(run.cairo_pie_zip, &run.da_segment)
    }
}

/// The external aggregator command (`--aggregator-runner external --aggregator-command`).
#[derive(Debug, Clone)]
pub struct ExternalAggregatorRunner(pub ExternalAggregator);

#[async_trait]
impl LocalAggregator for ExternalAggregatorRunner {
    fn name(&self) -> &'static str {
        "external"
    }

    async fn aggregate(&self, input: &AggregationInput) -> Result<LocalAggregation, JobError> {
        let out = self.0.run(input).await.map_err(|e| runner_error(input.batch_index, e))?;
        LocalAggregation::from_run(out.cairo_pie_zip, &out.da_segment)
    }
}

/// The local aggregator `params` select (`--aggregator-runner`).
pub fn local_aggregator(params: &AggregatorParams) -> Arc<dyn LocalAggregator> {
    match (params.runner, &params.command) {
        (AggregatorRunnerKind::External, Some(command)) => {
            tracing::info!(command = %command, "Aggregator: external command");
            Arc::new(ExternalAggregatorRunner(ExternalAggregator::new(ExternalAggregatorConfig {
                command: command.clone(),
                timeout: params.command_timeout,
            })))
        }
        // Validation requires a command with `external`.
        (AggregatorRunnerKind::External, None) => Arc::new(UnavailableAggregator),
        (AggregatorRunnerKind::StandIn, _) => Arc::new(StandInAggregator::default()),
    }
}

/// What a local aggregation is given besides the children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregationSettings {
    /// The Cairo layout named to the external command (`--snos-layout-name`).
    pub layout: String,
    /// Most blobs the DA segment may take (`--max-num-blobs`).
    pub max_num_blobs: usize,
    /// DA public keys (`--da-public-keys`).
    pub da_public_keys: Vec<Felt>,
}

impl Default for AggregationSettings {
    fn default() -> Self {
        Self { layout: "all_cairo".into(), max_num_blobs: 6, da_public_keys: Vec::new() }
    }
}

/// Aggregator (attempts 1, verification 900 × 30 s).
#[derive(Debug, Clone)]
pub struct AggregatorHandler {
    ctx: ProverContext,
    local: Arc<dyn LocalAggregator>,
    settings: AggregationSettings,
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
        Self { ctx, local, settings: AggregationSettings::default() }
    }

    /// The same handler giving `settings` to the local aggregator.
    pub fn with_settings(mut self, settings: AggregationSettings) -> Self {
        self.settings = settings;
        self
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

    /// The children of aggregator batch `batch`, in block order: each SNOS batch's PIE and OS
    /// output (from its SnosRun job's artifacts) and the prover's key of its proof.
    async fn children(&self, batch: u64) -> Result<Vec<AggregationChildInput>, JobError> {
        let db = &self.ctx.database;
        let mut snos = db.get_snos_batches_by_aggregator_index(batch).await.map_err(|e| {
            JobError::client(format!("cannot load the SNOS batches of aggregator batch {batch}"), e)
        })?;
        snos.sort_by_key(|b| b.start_block);
        let indexes: Vec<u64> = snos.iter().map(|b| b.index).collect();
        let proofs = db
            .get_jobs_by_internal_ids_and_type(&indexes, JobType::ProofCreation)
            .await
            .map_err(|e| JobError::client("cannot load the ProofCreation jobs", e))?;
        let runs = db
            .get_jobs_by_internal_ids_and_type(&indexes, JobType::SnosRun)
            .await
            .map_err(|e| JobError::client("cannot load the SnosRun jobs", e))?;
        let mut children = Vec::with_capacity(snos.len());
        for b in &snos {
            let missing = |what: &str| {
                JobError::fatal(format!(
                    "aggregator batch {batch}: SNOS batch {} has no {what}",
                    b.index
                ))
            };
            let run = runs.iter().find(|j| j.internal_id == b.index);
            let Some(JobSpecificMetadata::Snos(m)) = run.map(|j| &j.metadata.specific) else {
                return Err(missing("SnosRun job"));
            };
            let task_id = proofs
                .iter()
                .find(|j| j.internal_id == b.index)
                .map(|j| j.external_id.to_string())
                .ok_or_else(|| missing("ProofCreation job"))?;
            let pie_key =
                m.cairo_pie_path.clone().unwrap_or_else(|| super::snos::cairo_pie_path(b.index));
            let cairo_pie_zip = self.ctx.read(&pie_key, "a child's Cairo PIE").await?.to_vec();
            let os_output = match &m.snos_output_path {
                Some(key) => read_os_output(self.ctx.storage.as_ref(), key).await?,
                None => {
                    let parsed = pie::read_pie_bytes(&cairo_pie_zip).map_err(|e| {
                        JobError::fatal_with(format!("the PIE at {pie_key} does not parse"), e)
                    })?;
                    pie::program_output(&parsed).map_err(|e| {
                        JobError::fatal_with(format!("the PIE at {pie_key} has no output"), e)
                    })?
                }
            };
            children.push(AggregationChildInput {
                snos_batch: b.index,
                start_block: b.start_block,
                end_block: b.end_block,
                task_id,
                cairo_pie_zip,
                os_output,
            });
        }
        Ok(children)
    }

    async fn process_local(
        &self,
        job: &mut JobItem,
        m: &mut AggregatorMetadata,
    ) -> Result<String, JobError> {
        let children = self.children(m.batch_num).await?;
        let children_cairo_job_keys = children.iter().map(|c| c.task_id.clone()).collect();
        let input = AggregationInput {
            batch_index: m.batch_num,
            children,
            layout: self.settings.layout.clone(),
            max_num_blobs: self.settings.max_num_blobs,
            da_public_keys: self.settings.da_public_keys.clone(),
        };
        tracing::info!(target: "orch::prover", aggregator_batch = m.batch_num, n_children = input.children.len(), aggregator = self.local.name(), "Running the aggregator");
        let started = std::time::Instant::now();
        let run = self.local.aggregate(&input).await;
        let n_children = input.children.len() as u64;
        crate::worker::alerts::handler_metrics(|metrics| {
            metrics.aggregator_local_run(started.elapsed(), run.is_ok());
            if let Ok(run) = &run {
                let (pie, da) = (run.cairo_pie_zip.len(), run.da_segment.len());
                metrics.aggregator_artifacts(Some(n_children), Some(pie), Some(da), None);
            }
        });
        let run = run?;
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
            children_cairo_job_keys,
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
        let bytes = program_output_bincode(own)?;
        let len = bytes.len();
        self.ctx.write(path, bytes, "the aggregator program output").await?;
        crate::worker::alerts::handler_metrics(|metrics| {
            metrics.aggregator_artifacts(None, None, None, Some(len));
        });
        Ok(())
    }

    async fn store_artifacts(&self, job: &JobItem, m: &AggregatorMetadata) -> Result<(), JobError> {
        let ext = job.external_id.to_string();
        let artifacts = self
            .ctx
            .prover
            .get_aggregation_artifacts(&ext, m.download_proof.is_some())
            .await
            .map_err(|e| JobError::client(format!("aggregation artifacts of {ext}"), e))?;
        check_downloads(&artifacts)?;
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
        let children = match self
            .ctx
            .database
            .get_snos_batches_by_aggregator_index(m.batch_num)
            .await
        {
            Ok(snos) => Some(snos.len() as u64),
            Err(e) => {
                tracing::debug!(error = %e, batch = m.batch_num, "Could not count the children for aggregator_child_count");
                None
            }
        };
        crate::worker::alerts::handler_metrics(|metrics| {
            metrics.aggregator_artifacts(
                children,
                artifacts.cairo_pie.as_ref().map(Vec::len),
                artifacts.da_segment.as_ref().map(Vec::len),
                None,
            );
        });
        Ok(())
    }
}

/// Checks that the downloaded aggregation artifacts read as what they claim to be before any
/// is stored: a download cut short or replaced by a proxy's page (with a 200) must not become
/// the batch's PIE or DA segment, which later stages would reject for good. A failure is
/// retryable (the artifacts are downloaded again on the next verification); a prover that
/// keeps serving broken artifacts ends in the dead-letter path like any repeated failure.
fn check_downloads(artifacts: &AggregationArtifacts) -> Result<(), JobError> {
    let broken = |what: &str, e: &dyn fmt::Display| {
        JobError::retryable(format!(
            "the downloaded {what} does not read ({e}); a download cut short? downloading again"
        ))
    };
    if let Some(pie_zip) = &artifacts.cairo_pie {
        pie::read_pie_bytes(pie_zip).map_err(|e| broken("aggregator PIE", &e))?;
    }
    if let Some(segment) = &artifacts.da_segment {
        let text = std::str::from_utf8(segment).map_err(|e| broken("DA segment", &e))?;
        parse_felt_list(text).map_err(|e| broken("DA segment", &e))?;
    }
    if let Some(output) = &artifacts.snos_output {
        serde_json::from_slice::<serde_json::Value>(output)
            .map_err(|e| broken("aggregator OS output", &e))?;
    }
    Ok(())
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
            // The batch is marked before the job is queued: a handler that finished before the
            // mark would have its own batch status (ReadyForStateUpdate) overwritten by it.
            let created = created_once(
                service::create_job_unqueued(
                    &config,
                    JobType::Aggregator,
                    batch.index,
                    JobSpecificMetadata::Aggregator(m),
                )
                .await,
                JobType::Aggregator,
                batch.index,
            )?;
            db.update_aggregator_batch_status_by_index(
                batch.index,
                AggregatorBatchStatus::PendingAggregatorRun,
            )
            .await?;
            if let Some(job) = created {
                service::queue_created_job(&config, &job).await;
            }
        }
        Ok(())
    }
}

// -- Building the stage --

/// The Aggregator handler (Atlantic aggregates in its buckets; SHARP and the mock prover
/// through the local aggregator of `--aggregator-runner`) and trigger.
pub(crate) fn build(inputs: &StageInputs<'_>) -> StageWorkers {
    let ctx = ProverContext::from_inputs(inputs);
    let params = inputs.params;
    let service = &params.service;
    let trigger = AggregatorTrigger {
        buffer: service.aggregator_job_buffer_size,
        store_audit_artifacts: service.store_audit_artifacts,
    };
    let settings = AggregationSettings {
        layout: params.snos.layout.to_string(),
        max_num_blobs: params.batching.max_num_blobs,
        da_public_keys: params.snos.da_public_keys.clone(),
    };
    let handler =
        AggregatorHandler::new(ctx, local_aggregator(&params.aggregator)).with_settings(settings);
    (Arc::new(handler), Arc::new(trigger))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn artifacts(pie: Option<&[u8]>, segment: &[u8], output: &[u8]) -> AggregationArtifacts {
        AggregationArtifacts {
            cairo_pie: pie.map(<[u8]>::to_vec),
            da_segment: Some(segment.to_vec()),
            snos_output: Some(output.to_vec()),
            proof: None,
        }
    }

    #[test]
    fn downloads_that_do_not_read_are_retried_not_stored() {
        assert!(check_downloads(&artifacts(None, b"[\"0x1\", \"0x2\"]", b"[\"0x3\"]")).is_ok());
        // A 200 whose body was cut short, in place of each artifact in turn.
        let cut = b"{\"atlanticQuery\": {\"id\": \"01";
        for (broken, what) in [
            (artifacts(None, cut, b"[]"), "DA segment"),
            (artifacts(None, b"[\"0x1\"]", cut), "aggregator OS output"),
            (artifacts(Some(b"PK\x03\x04 cut"), b"[\"0x1\"]", b"[]"), "aggregator PIE"),
        ] {
            let e = check_downloads(&broken).unwrap_err();
            assert!(e.is_retryable(), "{e}");
            assert!(e.to_string().contains(&format!("the downloaded {what} does not read")), "{e}");
        }
    }
}
