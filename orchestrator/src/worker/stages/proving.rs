//! ProofCreation: has the SNOS PIE of a batch proven (reference §6.2), plus the pieces the
//! other proving handlers share ([`ProverContext`], error mapping, proof download).

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use orchestrator_prover_client_interface::{
    CreateJobInfo, ProverClient, ProverError, Task, TaskStatus, TaskType,
};

use crate::{
    config::choices::ProverKind,
    core::client::{DatabaseClient, StorageClient},
    types::{
        jobs::{
            JobItem, JobSpecificMetadata, JobType, JobVerificationStatus, ProvingInputType,
            ProvingMetadata,
        },
        Layer,
    },
};

use super::{read_artifact, write_artifact, JobError, JobHandlerTrait};

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

/// A prover error while verifying: retryable ones are tried again; anything else (an unknown
/// query id, an invalid proof) rejects the job with the reason.
pub(crate) fn verify_error(what: &str, e: ProverError) -> Result<JobVerificationStatus, JobError> {
    let e = JobError::client(what, e);
    if e.is_retryable() {
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

/// ProofCreation (attempts 1, verification 900 × 30 s).
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

    fn max_process_attempts(&self) -> u64 {
        1
    }

    fn max_verification_attempts(&self) -> u64 {
        900
    }

    fn verification_polling_delay(&self) -> Duration {
        self.ctx.polling_override.unwrap_or(Duration::from_secs(30))
    }
}
