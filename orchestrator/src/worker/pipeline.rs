//! Builds the job handlers and triggers of the layer from the run parameters. Each stage adds
//! its handlers and triggers in its own section below; handlers hold the clients they need.

use crate::{
    config::{Clients, RunParams},
    worker::{event_handler::jobs::JobHandlers, triggers::Triggers},
};

/// The handlers and triggers `params` selects, over `clients`.
pub async fn build(params: &RunParams, clients: &Clients) -> eyre::Result<(JobHandlers, Triggers)> {
    let handlers = JobHandlers::new();
    let triggers = Triggers::new();
    let _ = (params, clients);

    // -- Batching and SNOS (SnosBatching, AggregatorBatching, Snos; SnosRun) --

    // -- Proving (Proving, ProofRegistration, Aggregator; ProofCreation, ProofRegistration, Aggregator) --

    // -- Settlement (DataSubmission, UpdateState; DataSubmission, StateTransition) --

    Ok((handlers, triggers))
}
