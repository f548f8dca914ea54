//! ProofRegistration (L3): has the proof of a SNOS batch verified on L2 (reference §6.3).
//!
//! ProofRegistration trigger (L3): a ProofRegistration job for every completed ProofCreation
//! job (reference §7).

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use orchestrator_prover_client_interface::validate_proof_json;

use super::{
    proving::{create_once, proving_metadata, verify_proving_job, ProverContext},
    StageInputs, StageWorkers,
};
use crate::{
    types::{
        jobs::{
            JobItem, JobSpecificMetadata, JobStatus, JobType, JobVerificationStatus,
            ProvingInputType,
        },
        queue::WorkerTriggerType,
    },
    worker::{
        handler::{Attempts, JobError, JobHandlerTrait},
        trigger::{first_unsettled_snos_batch_index, JobTrigger, TriggerError},
        Config,
    },
};

/// ProofRegistration (attempts 2, verification 300 × 300 s).
#[derive(Debug, Clone)]
pub struct ProofRegistrationHandler {
    ctx: ProverContext,
}

impl ProofRegistrationHandler {
    /// A handler over `ctx`.
    pub fn new(ctx: ProverContext) -> Self {
        Self { ctx }
    }
}

#[async_trait]
impl JobHandlerTrait for ProofRegistrationHandler {
    fn job_type(&self) -> JobType {
        JobType::ProofRegistration
    }

    async fn process_job(&self, job: &mut JobItem) -> Result<String, JobError> {
        let m = proving_metadata(job)?.clone();
        let Some(ProvingInputType::Proof(proof_path)) = &m.input_path else {
            return Err(JobError::InvalidMetadata {
                job_type: job.job_type,
                internal_id: job.internal_id,
                reason: "input_path must be a proof".into(),
            });
        };
        let bytes = self.ctx.read(proof_path, "the proof").await?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            JobError::fatal_with(format!("the proof at {proof_path} is not UTF-8"), e)
        })?;
        let proof = validate_proof_json(text).map_err(|e| {
            JobError::fatal_with(format!("the proof at {proof_path} does not parse"), e)
        })?;
        let wrapped = serde_json::json!({ "proof": proof }).to_string();
        // The job id keys the query, so a re-processed job finds its earlier query.
        let key = self
            .ctx
            .prover
            .submit_l2_query(&job.id.to_string(), &wrapped, m.n_steps)
            .await
            .map_err(|e| JobError::client("submitting the L2 verification", e))?;
        Ok(key)
    }

    async fn verify_job(&self, job: &mut JobItem) -> Result<JobVerificationStatus, JobError> {
        verify_proving_job(&self.ctx, job).await
    }

    fn attempts(&self) -> Attempts {
        Attempts::new(2, 300, Duration::from_secs(300)).polling(self.ctx.polling_override)
    }
}

// -- The trigger --

/// Creates ProofRegistration jobs from the metadata of the ProofCreation job: the proof it
/// downloaded is the input, and the L2 verification's proof goes to `proof_part2.json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProofRegistrationTrigger;

#[async_trait]
impl JobTrigger for ProofRegistrationTrigger {
    fn trigger_type(&self) -> WorkerTriggerType {
        WorkerTriggerType::Stage(JobType::ProofRegistration)
    }

    async fn run(&self, config: Arc<Config>) -> Result<(), TriggerError> {
        let watermark = first_unsettled_snos_batch_index(&config).await?;
        let done = config
            .database()
            .get_jobs_without_successor(
                JobType::ProofCreation,
                JobStatus::Completed,
                JobType::ProofRegistration,
                None,
                watermark,
            )
            .await?;
        for job in done {
            let JobSpecificMetadata::Proving(mut m) = job.metadata.specific.clone() else {
                return Err(TriggerError::Other(format!(
                    "ProofCreation job {} has no Proving metadata",
                    job.id
                )));
            };
            let index = job.internal_id;
            m.input_path = Some(ProvingInputType::Proof(
                m.download_proof.clone().unwrap_or_else(|| format!("{index}/proof.json")),
            ));
            m.download_proof = Some(format!("{index}/proof_part2.json"));
            create_once(
                &config,
                JobType::ProofRegistration,
                index,
                JobSpecificMetadata::Proving(m),
            )
            .await?;
        }
        Ok(())
    }
}

// -- Building the stage --

/// The ProofRegistration handler and trigger.
pub(crate) fn build(inputs: &StageInputs<'_>) -> StageWorkers {
    let ctx = ProverContext::from_inputs(inputs);
    (Arc::new(ProofRegistrationHandler::new(ctx)), Arc::new(ProofRegistrationTrigger))
}
