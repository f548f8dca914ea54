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
    let triggers = batching_triggers(params, triggers)?;

    // -- Proving (Proving, ProofRegistration, Aggregator; ProofCreation, ProofRegistration, Aggregator) --

    // -- Settlement (DataSubmission, UpdateState; DataSubmission, StateTransition) --

    Ok((handlers, triggers))
}

/// SnosBatching (L2, L3) and AggregatorBatching (L2) over the node of `--madara-rpc-url`, with
/// `--replay-bounds-rpc-url` as the reference node when given.
fn batching_triggers(params: &RunParams, triggers: Triggers) -> eyre::Result<Triggers> {
    use std::sync::Arc;

    use crate::{
        core::client::madara::{
            rpc::{MadaraRpcClient, MadaraRpcConfig},
            MadaraClient,
        },
        types::Layer,
        worker::triggers::{
            aggregator_batching::AggregatorBatchingTrigger, batching::BatchingSettings,
            snos_batching::SnosBatchingTrigger,
        },
    };

    let node: Arc<dyn MadaraClient> = Arc::new(
        MadaraRpcClient::new(MadaraRpcConfig::from_params(&params.madara))
            .map_err(|e| eyre::eyre!("Madara node client: {e}"))?,
    );
    let replay: Option<Arc<dyn MadaraClient>> = match &params.madara.replay_bounds_rpc_url {
        Some(url) => Some(Arc::new(
            MadaraRpcClient::new(MadaraRpcConfig::new(url.clone()))
                .map_err(|e| eyre::eyre!("replay-bounds node client: {e}"))?,
        )),
        None => None,
    };
    let settings = BatchingSettings::from_params(params);
    let mut triggers =
        triggers.with(Arc::new(SnosBatchingTrigger::new(node.clone(), replay.clone(), settings.clone())));
    if params.layer == Layer::L2 {
        // No prover bucket hook yet: the Atlantic client plugs in with `with_bucket_creator`.
        triggers = triggers.with(Arc::new(AggregatorBatchingTrigger::new(node, replay, settings)));
    }
    Ok(triggers)
}
