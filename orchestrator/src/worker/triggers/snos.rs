//! The Snos trigger (reference §7): creates SnosRun jobs for closed SNOS batches, oldest
//! first, within the SNOS job buffer and at or above the settlement watermark.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    types::{
        batch::SnosBatchStatus,
        jobs::{JobSpecificMetadata, JobType},
        queue::WorkerTriggerType,
        ORCHESTRATOR_VERSION,
    },
    worker::Config,
    worker::{
        event_handler::jobs::snos::snos_metadata,
        service::create_job,
        triggers::{available_slots, first_unsettled_snos_batch_index, JobTrigger, TriggerError},
        EngineError,
    },
};

/// Creates SnosRun jobs.
#[derive(Debug, Clone)]
pub struct SnosTrigger {
    /// Most SnosRun jobs in the window [oldest incomplete, latest] (`--snos-job-buffer-size`).
    pub buffer: u64,
    /// `--snos-full-output`, recorded in the job metadata.
    pub full_output: bool,
}

#[async_trait]
impl JobTrigger for SnosTrigger {
    fn trigger_type(&self) -> WorkerTriggerType {
        WorkerTriggerType::Snos
    }

    fn creates(&self) -> Option<JobType> {
        Some(JobType::SnosRun)
    }

    async fn run(&self, config: Arc<Config>) -> Result<(), TriggerError> {
        let slots = available_slots(&config, JobType::SnosRun, self.buffer).await?;
        if slots == 0 {
            return Ok(());
        }
        let watermark = first_unsettled_snos_batch_index(&config).await?;
        let batches = config
            .database()
            .get_snos_batches_without_jobs(
                SnosBatchStatus::Closed,
                slots,
                Some(ORCHESTRATOR_VERSION),
                watermark,
            )
            .await?;
        for batch in batches {
            let metadata =
                snos_metadata(batch.index, batch.start_block, batch.end_block, self.full_output);
            match create_job(
                &config,
                JobType::SnosRun,
                batch.index,
                JobSpecificMetadata::Snos(metadata),
            )
            .await
            {
                Ok(_) | Err(EngineError::AlreadyExists { .. }) => {}
                Err(e) => {
                    return Err(TriggerError::client(
                        format!("SnosRun job for batch {}", batch.index),
                        e,
                    ))
                }
            }
            config
                .database()
                .update_snos_batch_status_by_index(batch.index, SnosBatchStatus::SnosJobCreated)
                .await?;
        }
        Ok(())
    }
}
