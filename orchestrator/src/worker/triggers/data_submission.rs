//! DataSubmission trigger (L3): a DataSubmission job for every completed ProofRegistration job
//! (reference §7), with `block_number` = the first block of the SNOS batch and the blobs at
//! `<idx>/blob_data.txt`.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    types::{
        batch::SnosBatchQuery,
        jobs::{DaMetadata, JobSpecificMetadata, JobStatus, JobType},
        queue::WorkerTriggerType,
    },
    worker::event_handler::jobs::data_submission::blob_data_path,
    worker::Config,
};

use super::{first_unsettled_snos_batch_index, proving::create_once, JobTrigger, TriggerError};

/// Creates DataSubmission jobs after ProofRegistration.
#[derive(Debug, Clone, Copy, Default)]
pub struct DataSubmissionTrigger;

#[async_trait]
impl JobTrigger for DataSubmissionTrigger {
    fn trigger_type(&self) -> WorkerTriggerType {
        WorkerTriggerType::DataSubmission
    }

    fn creates(&self) -> Option<JobType> {
        Some(JobType::DataSubmission)
    }

    async fn run(&self, config: Arc<Config>) -> Result<(), TriggerError> {
        let watermark = first_unsettled_snos_batch_index(&config).await?;
        let db = config.database();
        let done = db
            .get_jobs_without_successor(
                JobType::ProofRegistration,
                JobStatus::Completed,
                JobType::DataSubmission,
                None,
                watermark,
            )
            .await?;
        for job in done {
            let index = job.internal_id;
            let batch = db
                .get_snos_batches(SnosBatchQuery { indexes: vec![index], ..Default::default() })
                .await?
                .into_iter()
                .find(|b| b.index == index)
                .ok_or_else(|| {
                    TriggerError::Other(format!(
                        "SNOS batch {index} of ProofRegistration job {} does not exist",
                        job.id
                    ))
                })?;
            let m = DaMetadata {
                block_number: batch.start_block,
                blob_data_path: Some(blob_data_path(index)),
                tx_hash: None,
            };
            create_once(&config, JobType::DataSubmission, index, JobSpecificMetadata::Da(m))
                .await?;
        }
        Ok(())
    }
}
