//! ProofRegistration trigger (L3): a ProofRegistration job for every completed ProofCreation
//! job (reference §7).

use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    types::{
        jobs::{JobSpecificMetadata, JobStatus, JobType, ProvingInputType},
        queue::WorkerTriggerType,
    },
    worker::Config,
};

use super::{first_unsettled_snos_batch_index, proving::create_once, JobTrigger, TriggerError};

/// Creates ProofRegistration jobs from the metadata of the ProofCreation job: the proof it
/// downloaded is the input, and the L2 verification's proof goes to `proof_part2.json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProofRegistrationTrigger;

#[async_trait]
impl JobTrigger for ProofRegistrationTrigger {
    fn trigger_type(&self) -> WorkerTriggerType {
        WorkerTriggerType::ProofRegistration
    }

    fn creates(&self) -> Option<JobType> {
        Some(JobType::ProofRegistration)
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
