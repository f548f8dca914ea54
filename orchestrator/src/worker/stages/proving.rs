//! ProofCreation: has the SNOS PIE of a batch proven (reference §6.2), plus the pieces the
//! other proving handlers share ([`ProverContext`], error mapping, proof download).
//!
//! Proving trigger: a ProofCreation job for every completed SnosRun job (reference §7).

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use orchestrator_prover_client_interface::{
    CreateJobInfo, ProverClient, ProverError, Task, TaskStatus, TaskType,
};

use super::{
    aggregator::{AggregatorHandler, AggregatorTrigger, StandInAggregator, UnavailableAggregator},
    proof_registration::{ProofRegistrationHandler, ProofRegistrationTrigger},
    StageInputs, StageWorkers,
};
use crate::{
    config::choices::ProverKind,
    core::client::{DatabaseClient, StorageClient},
    types::{
        jobs::{
            JobItem, JobSpecificMetadata, JobStatus, JobType, JobVerificationStatus,
            ProvingInputType, ProvingMetadata,
        },
        queue::WorkerTriggerType,
        Layer,
    },
    worker::{
        error::EngineError,
        handler::{
            read_artifact, write_artifact, Attempts, JobError, JobHandlerTrait, JobHandlers,
        },
        service,
        trigger::{first_unsettled_snos_batch_index, JobTrigger, TriggerError, Triggers},
        Config,
    },
};

/// What the proving handlers share: the prover and the stores.
#[derive(Clone)]
pub struct ProverContext {
    /// The prover.
    pub prover: Arc<dyn ProverClient>,
    /// Which prover it is (decides dedup ids and the aggregation path).
    pub kind: ProverKind,
    /// The appchain's layer.
    pub layer: Layer,
    /// Artifacts.
    pub storage: Arc<dyn StorageClient>,
    /// Jobs and batches.
    pub database: Arc<dyn DatabaseClient>,
    /// Replaces the reference's verification polling delays (tests, local runs).
    pub polling_override: Option<Duration>,
}

impl fmt::Debug for ProverContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProverContext")
            .field("prover", &self.prover)
            .field("kind", &self.kind)
            .field("layer", &self.layer)
            .field("polling_override", &self.polling_override)
            .finish_non_exhaustive()
    }
}

impl ProverContext {
    /// Reads an artifact (see [`read_artifact`]).
    pub(crate) async fn read(&self, key: &str, what: &str) -> Result<Bytes, JobError> {
        read_artifact(self.storage.as_ref(), key, what).await
    }

    /// Writes an artifact (see [`write_artifact`]).
    pub(crate) async fn write(
        &self,
        key: &str,
        data: impl Into<Bytes>,
        what: &str,
    ) -> Result<(), JobError> {
        write_artifact(self.storage.as_ref(), key, data.into(), what).await
    }
}

/// A prover error while verifying: retryable ones are tried again; one that needs an operator
/// (no credits left) fails the job with its own alert; anything else (an unknown query id, an
/// invalid proof) rejects the job with the reason.
pub(crate) fn verify_error(what: &str, e: ProverError) -> Result<JobVerificationStatus, JobError> {
    let e = JobError::client(what, e);
    if e.is_retryable() || e.operator_action().is_some() {
        Err(e)
    } else {
        Ok(JobVerificationStatus::Rejected(e.to_string()))
    }
}

pub(crate) fn proving_metadata(job: &JobItem) -> Result<&ProvingMetadata, JobError> {
    match &job.metadata.specific {
        JobSpecificMetadata::Proving(m) => Ok(m),
        other => Err(JobError::InvalidMetadata {
            job_type: job.job_type,
            internal_id: job.internal_id,
            reason: format!("expected Proving metadata, found {}", variant(other)),
        }),
    }
}

pub(crate) fn variant(m: &JobSpecificMetadata) -> &'static str {
    match m {
        JobSpecificMetadata::Snos(_) => "Snos",
        JobSpecificMetadata::Proving(_) => "Proving",
        JobSpecificMetadata::Da(_) => "Da",
        JobSpecificMetadata::StateUpdate(_) => "StateUpdate",
        JobSpecificMetadata::Aggregator(_) => "Aggregator",
    }
}

/// Verification shared by ProofCreation and ProofRegistration: the task status, then the
/// proof download when `download_proof` is set.
pub(crate) async fn verify_proving_job(
    ctx: &ProverContext,
    job: &JobItem,
) -> Result<JobVerificationStatus, JobError> {
    let m = proving_metadata(job)?;
    let task_id = job.external_id.to_string();
    if task_id.is_empty() {
        return Ok(JobVerificationStatus::Rejected("the job has no prover task id".into()));
    }
    let status = match ctx
        .prover
        .get_task_status(TaskType::Job, &task_id, m.ensure_on_chain_registration.as_deref())
        .await
    {
        Ok(s) => s,
        Err(e) => return verify_error(&format!("status of prover task {task_id}"), e),
    };
    match status {
        TaskStatus::Processing => Ok(JobVerificationStatus::Pending),
        TaskStatus::Failed(reason) => {
            Ok(JobVerificationStatus::Rejected(format!("prover task {task_id} failed: {reason}")))
        }
        TaskStatus::Succeeded => {
            if let Some(path) = &m.download_proof {
                let proof = match ctx.prover.get_proof(&task_id).await {
                    Ok(p) => p,
                    Err(e) => return verify_error(&format!("proof of prover task {task_id}"), e),
                };
                ctx.write(path, proof.into_bytes(), "proof").await?;
            }
            Ok(JobVerificationStatus::Verified)
        }
    }
}

/// ProofCreation (attempts 1, verification 900 × 30 s; the mock prover: attempts 2, so that a
/// proof it lost to a restart is submitted again).
#[derive(Debug, Clone)]
pub struct ProofCreationHandler {
    ctx: ProverContext,
}

impl ProofCreationHandler {
    /// A handler over `ctx`.
    pub fn new(ctx: ProverContext) -> Self {
        Self { ctx }
    }

    /// The idempotency key: the job id on Atlantic, the SNOS fact elsewhere (SHARP keys jobs
    /// by it; the mock prover echoes it).
    async fn dedup_id(&self, job: &JobItem, m: &ProvingMetadata) -> Result<String, JobError> {
        if self.ctx.kind == ProverKind::Atlantic {
            return Ok(job.id.to_string());
        }
        if let Some(fact) = &m.ensure_on_chain_registration {
            return Ok(fact.clone());
        }
        let snos = self
            .ctx
            .database
            .get_job_by_internal_id_and_type(job.internal_id, JobType::SnosRun)
            .await
            .map_err(|e| {
                JobError::client(format!("cannot load SnosRun job {}", job.internal_id), e)
            })?;
        match snos.map(|j| j.metadata.specific) {
            Some(JobSpecificMetadata::Snos(s)) => s.snos_fact.ok_or_else(|| {
                JobError::fatal(format!("SnosRun job {} has no fact", job.internal_id))
            }),
            _ => Err(JobError::fatal(format!(
                "no SnosRun job {} to take the fact from",
                job.internal_id
            ))),
        }
    }
}

#[async_trait]
impl JobHandlerTrait for ProofCreationHandler {
    fn job_type(&self) -> JobType {
        JobType::ProofCreation
    }

    async fn process_job(&self, job: &mut JobItem) -> Result<String, JobError> {
        let m = proving_metadata(job)?.clone();
        let Some(ProvingInputType::CairoPie(pie_path)) = &m.input_path else {
            return Err(JobError::InvalidMetadata {
                job_type: job.job_type,
                internal_id: job.internal_id,
                reason: "input_path must be a Cairo PIE".into(),
            });
        };
        let dedup_id = self.dedup_id(job, &m).await?;
        let pie = self.ctx.read(pie_path, "the Cairo PIE").await?;
        let task = Task::CreateJob(CreateJobInfo {
            cairo_pie_zip: pie.to_vec(),
            bucket_id: m.bucket_id.clone(),
            bucket_job_index: m.bucket_job_index,
            num_steps: m.n_steps,
            dedup_id,
        });
        let key = self
            .ctx
            .prover
            .submit_task(task)
            .await
            .map_err(|e| JobError::client("submitting the PIE", e))?;
        tracing::info!(target: "orch::prover", job_id = %job.id, internal_id = job.internal_id, task_id = %key, "PIE submitted for proving");
        Ok(key)
    }

    async fn verify_job(&self, job: &mut JobItem) -> Result<JobVerificationStatus, JobError> {
        verify_proving_job(&self.ctx, job).await
    }

    fn attempts(&self) -> Attempts {
        // The mock prover keeps its proofs in memory: after a restart the proof download
        // (L3) is rejected, and processing again gives it the PIE again.
        let process = if self.ctx.kind == ProverKind::Mock { 2 } else { 1 };
        Attempts::new(process, 900, Duration::from_secs(30)).polling(self.ctx.polling_override)
    }
}

// -- The trigger --

/// Creates ProofCreation jobs.
#[derive(Debug, Clone)]
pub struct ProvingTrigger {
    /// Which prover runs (Atlantic needs bucket fields).
    pub prover: ProverKind,
    /// Whether L2 proofs are downloaded for audit.
    pub store_audit_artifacts: bool,
}

/// Creates a job, treating "already exists" (another run got there first) as done.
/// The job a `create_job_unqueued` call created, `None` when it existed already.
pub(crate) fn created_once(
    result: Result<JobItem, EngineError>,
    job_type: JobType,
    internal_id: u64,
) -> Result<Option<JobItem>, TriggerError> {
    match result {
        Ok(job) => Ok(Some(job)),
        Err(EngineError::AlreadyExists { .. }) => Ok(None),
        Err(e) => {
            Err(TriggerError::client(format!("cannot create {job_type} job {internal_id}"), e))
        }
    }
}

pub(crate) async fn create_once(
    config: &Config,
    job_type: JobType,
    internal_id: u64,
    specific: JobSpecificMetadata,
) -> Result<(), TriggerError> {
    match service::create_job(config, job_type, internal_id, specific).await {
        Ok(_) | Err(EngineError::AlreadyExists { .. }) => Ok(()),
        Err(e) => {
            Err(TriggerError::client(format!("cannot create {job_type} job {internal_id}"), e))
        }
    }
}

impl ProvingTrigger {
    /// The ProofCreation metadata for a completed SnosRun job, or `None` when it must wait
    /// (Atlantic: the aggregator batch has no bucket yet).
    async fn metadata(
        &self,
        config: &Config,
        snos_job: &JobItem,
    ) -> Result<Option<ProvingMetadata>, TriggerError> {
        let JobSpecificMetadata::Snos(s) = &snos_job.metadata.specific else {
            return Err(TriggerError::Other(format!(
                "SnosRun job {} has no Snos metadata",
                snos_job.id
            )));
        };
        let index = snos_job.internal_id;
        let mut m = ProvingMetadata {
            block_number: s.start_block,
            input_path: Some(ProvingInputType::CairoPie(
                s.cairo_pie_path.clone().unwrap_or_else(|| format!("{index}/cairo_pie.zip")),
            )),
            n_steps: s.snos_n_steps,
            ..ProvingMetadata::default()
        };
        match config.layer {
            Layer::L3 => {
                m.download_proof = Some(format!("{index}/proof.json"));
                m.ensure_on_chain_registration = s.snos_fact.clone();
            }
            Layer::L2 => {
                if self.store_audit_artifacts {
                    m.download_proof = Some(format!("{index}/proof.json"));
                }
                if self.prover == ProverKind::Atlantic {
                    let db = config.database();
                    let Some(batch) = db.get_aggregator_batch_for_block(s.start_block).await?
                    else {
                        return Ok(None);
                    };
                    let Some(bucket) = batch.bucket_id.clone() else {
                        tracing::debug!(
                            snos_batch = index,
                            aggregator_batch = batch.index,
                            "No Atlantic bucket yet; waiting"
                        );
                        return Ok(None);
                    };
                    let first = db
                        .get_start_snos_batch_for_aggregator(batch.index)
                        .await?
                        .map_or(index, |b| b.index);
                    m.bucket_id = Some(bucket);
                    m.bucket_job_index = Some(index.saturating_sub(first) + 1);
                }
            }
        }
        Ok(Some(m))
    }
}

#[async_trait]
impl JobTrigger for ProvingTrigger {
    fn trigger_type(&self) -> WorkerTriggerType {
        WorkerTriggerType::Stage(JobType::ProofCreation)
    }

    async fn run(&self, config: Arc<Config>) -> Result<(), TriggerError> {
        let watermark = first_unsettled_snos_batch_index(&config).await?;
        let done = config
            .database()
            .get_jobs_without_successor(
                JobType::SnosRun,
                JobStatus::Completed,
                JobType::ProofCreation,
                None,
                watermark,
            )
            .await?;
        for snos_job in done {
            if let Some(m) = self.metadata(&config, &snos_job).await? {
                create_once(
                    &config,
                    JobType::ProofCreation,
                    snos_job.internal_id,
                    JobSpecificMetadata::Proving(m),
                )
                .await?;
            }
        }
        Ok(())
    }
}

// -- Building the stage --

impl ProverContext {
    /// The prover context of the running pipeline.
    pub(crate) fn from_inputs(inputs: &StageInputs<'_>) -> Self {
        Self {
            prover: inputs.external.prover.clone(),
            kind: inputs.params.prover.kind(),
            layer: inputs.params.layer,
            storage: inputs.clients.storage.clone(),
            database: inputs.clients.database.clone(),
            polling_override: inputs.params.service.verification_poll,
        }
    }
}

/// The ProofCreation handler and the Proving trigger.
pub(crate) fn build(inputs: &StageInputs<'_>) -> StageWorkers {
    let ctx = ProverContext::from_inputs(inputs);
    let trigger = ProvingTrigger {
        prover: ctx.kind,
        store_audit_artifacts: inputs.params.service.store_audit_artifacts,
    };
    (Arc::new(ProofCreationHandler::new(ctx)), Arc::new(trigger))
}

/// Adds the proving stages of `ctx.layer` over an existing prover context: ProofCreation, then
/// Aggregator (L2; the mock prover aggregates with the stand-in, SHARP has no local aggregator
/// here) or ProofRegistration (L3). Tests use this with their own prover and polling delay.
pub fn with_stage(
    ctx: ProverContext,
    aggregator_buffer: u64,
    store_audit_artifacts: bool,
    handlers: JobHandlers,
    triggers: Triggers,
) -> (JobHandlers, Triggers) {
    let handlers = handlers.with(Arc::new(ProofCreationHandler::new(ctx.clone())));
    let triggers =
        triggers.with(Arc::new(ProvingTrigger { prover: ctx.kind, store_audit_artifacts }));
    match ctx.layer {
        Layer::L2 => (
            handlers.with(Arc::new(AggregatorHandler::new(
                ctx.clone(),
                match ctx.kind {
                    ProverKind::Mock => Arc::new(StandInAggregator::default()),
                    _ => Arc::new(UnavailableAggregator),
                },
            ))),
            triggers.with(Arc::new(AggregatorTrigger {
                buffer: aggregator_buffer,
                store_audit_artifacts,
            })),
        ),
        Layer::L3 => (
            handlers.with(Arc::new(ProofRegistrationHandler::new(ctx))),
            triggers.with(Arc::new(ProofRegistrationTrigger)),
        ),
    }
}
