//! Builds the job handlers and triggers of the layer from the run parameters. Each stage adds
//! its handlers and triggers in its own section below; handlers hold the clients they need.

use std::sync::Arc;

use orchestrator_snos_runner::{ExternalRunner, ExternalRunnerConfig, SnosRunner, StandInRunner};

use crate::{
    cli::args::snos::SnosRunnerKind,
    config::{Clients, RunParams, SnosParams},
    worker::{
        event_handler::jobs::{snos::SnosJobHandler, JobHandlers},
        triggers::{snos::SnosTrigger, Triggers},
    },
};

/// The handlers and triggers `params` selects, over `clients`.
pub async fn build(params: &RunParams, clients: &Clients) -> eyre::Result<(JobHandlers, Triggers)> {
    let handlers = JobHandlers::new();
    let triggers = Triggers::new();
    let _ = (params, clients);

    // -- Batching and SNOS (SnosBatching, AggregatorBatching, Snos; SnosRun) --
    let snos_runner = snos_runner(&params.snos);
    let handlers = handlers.with(Arc::new(
        SnosJobHandler::new(params.layer, params.snos.clone(), clients.clone(), snos_runner)
            .with_max_num_blobs(params.batching.max_num_blobs),
    ));
    let triggers = triggers.with(Arc::new(SnosTrigger {
        buffer: params.service.snos_job_buffer_size,
        full_output: params.snos.full_output,
    }));

    // -- Proving (Proving, ProofRegistration, Aggregator; ProofCreation, ProofRegistration, Aggregator) --

    // -- Settlement (DataSubmission, UpdateState; DataSubmission, StateTransition) --

    Ok((handlers, triggers))
}

/// The SNOS runner `params` selects; the stand-in is announced loudly.
fn snos_runner(params: &SnosParams) -> Arc<dyn SnosRunner> {
    match (params.runner, &params.command) {
        (SnosRunnerKind::External, Some(command)) => {
            tracing::info!(command = %command, timeout_s = params.command_timeout.as_secs(), "SNOS runner: external command");
            Arc::new(ExternalRunner::new(ExternalRunnerConfig {
                command: command.clone(),
                timeout: params.command_timeout,
            }))
        }
        // Validation requires a command with `external`; without one the stand-in is the only
        // runner there is.
        _ => {
            tracing::warn!(
                "SNOS runner: STAND-IN. SnosRun jobs run a small Cairo program of ours that writes an \
                 OS-shaped output (roots, block hashes, KZG values of the batch's blobs); the PIEs and \
                 facts PROVE NOTHING about the execution of the blocks. Use --snos-runner external with \
                 --snos-command for real Starknet OS runs."
            );
            Arc::new(StandInRunner::new())
        }
    }
}
