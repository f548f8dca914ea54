//! ProofRegistration (L3): has the proof of a SNOS batch verified on L2 (reference §6.3).

use std::time::Duration;

use async_trait::async_trait;
use orchestrator_prover_client_interface::validate_proof_json;

use crate::types::jobs::{JobItem, JobType, JobVerificationStatus, ProvingInputType};

use super::{
    proving::{proving_metadata, verify_proving_job, ProverContext},
    JobError, JobHandlerTrait,
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

    fn max_process_attempts(&self) -> u64 {
        2
    }

    fn max_verification_attempts(&self) -> u64 {
        300
    }

    fn verification_polling_delay(&self) -> Duration {
        self.ctx.polling_override.unwrap_or(Duration::from_secs(300))
    }
}
