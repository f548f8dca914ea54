//! The stages: one file per job type, holding its handler (process and verify) and the trigger
//! that creates its jobs, and the registry that builds them for the running layer.
//!
//! Which job types a layer runs, in which order, and the names of their queues and triggers
//! come from the stage table (`types/stage.rs`). Adding a job type is a new file here, one line
//! in [`BUILDERS`], its entry in the stage table and its variants in `types/jobs.rs`
//! (`docs/architecture.md` lists the places).

pub mod aggregator;
pub mod data_submission;
pub mod external;
pub mod proof_registration;
pub mod proving;
pub mod snos;
pub mod state_transition;

use std::sync::Arc;

use orchestrator_prover_client_interface::{ProverClient, Task};

use self::external::ExternalClients;
use crate::{
    config::{ProverParams, RunParams},
    core::client::Clients,
    types::{jobs::JobType, queue::WorkerTriggerType, stage, Layer},
    worker::{
        batching::{
            aggregator::{AggregatorBatchingTrigger, BucketCreator},
            snos::SnosBatchingTrigger,
            BatchingSettings,
        },
        handler::{JobHandlerTrait, JobHandlers},
        trigger::{JobTrigger, Triggers},
    },
};

/// What a stage's builder gets: the run parameters, the shared infrastructure clients and the
/// external clients, each built once.
#[derive(Debug, Clone, Copy)]
pub struct StageInputs<'a> {
    /// The run parameters.
    pub params: &'a RunParams,
    /// Database, queue, storage, alerts, locks.
    pub clients: &'a Clients,
    /// Node, prover, settlement, DA, SNOS runner.
    pub external: &'a ExternalClients,
}

/// The handler of a job type and the trigger that creates its jobs.
pub type StageWorkers = (Arc<dyn JobHandlerTrait>, Arc<dyn JobTrigger>);

/// Builds a job type's handler and trigger.
pub type Builder = fn(&StageInputs<'_>) -> StageWorkers;

/// The builder of each job type, in the file of the type. A new job type adds one line.
pub const BUILDERS: &[(JobType, Builder)] = &[
    (JobType::SnosRun, snos::build),
    (JobType::ProofCreation, proving::build),
    (JobType::Aggregator, aggregator::build),
    (JobType::ProofRegistration, proof_registration::build),
    (JobType::DataSubmission, data_submission::build),
    (JobType::StateTransition, state_transition::build),
];

/// The builder of `job_type`.
pub fn builder(job_type: JobType) -> Option<Builder> {
    BUILDERS.iter().find(|(t, _)| *t == job_type).map(|(_, b)| *b)
}

/// The handlers and triggers of the layer `params` selects, over `clients`: the external
/// clients are built once, then each stage of the layer's table adds its handler and trigger,
/// then the batching triggers.
pub async fn build(params: &RunParams, clients: &Clients) -> eyre::Result<(JobHandlers, Triggers)> {
    build_with(params, clients, &ExternalClients::new(params).await?)
}

/// [`build`] over external clients built by the caller (tests: in-process fakes of the node
/// and the settlement layer, [`ExternalClients::from_parts`]).
pub fn build_with(
    params: &RunParams,
    clients: &Clients,
    external: &ExternalClients,
) -> eyre::Result<(JobHandlers, Triggers)> {
    let inputs = StageInputs { params, clients, external };
    let (mut handlers, mut triggers) = (JobHandlers::new(), Triggers::new());
    for s in stage::stages(params.layer) {
        let build = builder(s.job_type).ok_or_else(|| {
            eyre::eyre!("job type {} has no builder in worker/stages/mod.rs", s.job_type)
        })?;
        let (handler, trigger) = build(&inputs);
        eyre::ensure!(
            handler.job_type() == s.job_type
                && trigger.trigger_type() == WorkerTriggerType::Stage(s.job_type),
            "the builder of {} returned the handler of {} and the trigger {}",
            s.job_type,
            handler.job_type(),
            trigger.trigger_type()
        );
        (handlers, triggers) = register((handler, trigger), handlers, triggers);
    }
    let cleanup = crate::worker::cleanup::StorageCleanupTrigger::from_params(params)
        .map_err(|e| eyre::eyre!("cannot open the artifact directory for StorageCleanup: {e}"))?;
    Ok((handlers, batching_triggers(&inputs, triggers).with(Arc::new(cleanup))))
}

/// Adds a stage's handler and trigger to the registries.
pub fn register(
    (handler, trigger): StageWorkers,
    handlers: JobHandlers,
    triggers: Triggers,
) -> (JobHandlers, Triggers) {
    (handlers.with(handler), triggers.with(trigger))
}

/// SnosBatching (L2, L3) and AggregatorBatching (L2) over the node of `--madara-rpc-url`, with
/// `--replay-bounds-rpc-url` as the reference node when given.
fn batching_triggers(inputs: &StageInputs<'_>, triggers: Triggers) -> Triggers {
    let StageInputs { params, external, .. } = *inputs;
    let settings = BatchingSettings::from_params(params);
    let mut triggers = triggers.with(Arc::new(SnosBatchingTrigger::new(
        external.node.clone(),
        external.replay.clone(),
        settings.clone(),
    )));
    if params.layer == Layer::L2 {
        let mut aggregator = AggregatorBatchingTrigger::new(
            external.node.clone(),
            external.replay.clone(),
            settings,
        );
        // Atlantic aggregates in buckets: each new aggregator batch opens one.
        if matches!(params.prover, ProverParams::Atlantic(_)) {
            aggregator =
                aggregator.with_bucket_creator(Arc::new(ProverBuckets(external.prover.clone())));
        }
        triggers = triggers.with(Arc::new(aggregator));
    }
    triggers
}

/// Opens an Atlantic bucket for each new aggregator batch through the prover client.
#[derive(Debug)]
struct ProverBuckets(Arc<dyn ProverClient>);

#[async_trait::async_trait]
impl BucketCreator for ProverBuckets {
    async fn create_bucket(&self, index: u64, start_block: u64) -> Result<String, String> {
        self.0.submit_task(Task::CreateBucket).await.map_err(|e| {
            format!(
                "cannot open a prover bucket for aggregator batch {index} (block {start_block}): {e}"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use strum::IntoEnumIterator;

    use super::*;

    #[test]
    fn every_job_type_has_exactly_one_builder() {
        for job_type in JobType::iter() {
            let count = BUILDERS.iter().filter(|(t, _)| *t == job_type).count();
            assert_eq!(count, 1, "{job_type}");
        }
    }
}
