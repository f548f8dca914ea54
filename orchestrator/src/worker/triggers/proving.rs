//! Proving trigger: a ProofCreation job for every completed SnosRun job (reference §7).

use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    config::choices::ProverKind,
    types::{
        jobs::{
            JobItem, JobSpecificMetadata, JobStatus, JobType, ProvingInputType, ProvingMetadata,
        },
        queue::WorkerTriggerType,
        Layer,
    },
    worker::Config,
    worker::{error::EngineError, service},
};

use super::{first_unsettled_snos_batch_index, JobTrigger, TriggerError};

/// Creates ProofCreation jobs.
#[derive(Debug, Clone)]
pub struct ProvingTrigger {
    /// Which prover runs (Atlantic needs bucket fields).
    pub prover: ProverKind,
    /// Whether L2 proofs are downloaded for audit.
    pub store_audit_artifacts: bool,
}

/// Creates a job, treating "already exists" (another run got there first) as done.
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
        WorkerTriggerType::Proving
    }

    fn creates(&self) -> Option<JobType> {
        Some(JobType::ProofCreation)
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
