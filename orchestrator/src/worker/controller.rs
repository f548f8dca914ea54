//! Starts the workers of the layer: one event worker per queue of the layer (job queues,
//! priority queues, worker triggers, dead letters), the orphan scanner and, when a settlement
//! client is configured, the settlement sampler.

use std::{sync::Arc, time::Duration};

use orchestrator_settlement_client_interface::SettlementClient;

use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::Config,
    types::queue::QueueType,
    worker::{event_worker::EventWorker, orphan},
};

/// Runs the layer's workers until `shutdown`, then waits for them to drain.
#[derive(Debug)]
pub struct WorkerController {
    config: Arc<Config>,
}

impl WorkerController {
    /// A controller over `config`.
    pub fn new(config: Arc<Config>) -> Self {
        Self { config }
    }

    /// The queues this controller consumes.
    pub fn queues(&self) -> Vec<QueueType> {
        QueueType::for_layer(self.config.layer)
    }

    /// Spawns every worker on `tracker`; they stop when `shutdown` is cancelled.
    pub fn spawn(&self, tracker: &TaskTracker, shutdown: &CancellationToken) {
        for queue in self.queues() {
            let worker = EventWorker::new(queue, self.config.clone());
            tracker.spawn(worker.run(shutdown.child_token()));
        }
        tracker.spawn(orphan::run(self.config.clone(), shutdown.child_token()));
        if let Some(client) = self.config.handlers.settlement_client() {
            tracker.spawn(sample_settlement(
                self.config.clone(),
                client,
                SETTLEMENT_SAMPLE_INTERVAL,
                shutdown.child_token(),
            ));
        }
        tracing::info!(layer = %self.config.layer, queues = self.queues().len(), "Workers started");
    }
}

/// How often the settlement sampler reads fees and the signer balance.
pub const SETTLEMENT_SAMPLE_INTERVAL: Duration = Duration::from_secs(60);

/// Every `interval` until `shutdown`: reads the settlement layer's fees and the signer balance
/// and copies them, with the client's fee and transaction counts, into the metrics. A failed
/// read is logged; the previous values stay.
pub async fn sample_settlement(
    config: Arc<Config>,
    client: Arc<dyn SettlementClient>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match client.refresh_metrics().await {
            Ok(m) => config.metrics.settlement(client.layer_name(), &m),
            Err(e) => {
                tracing::warn!(target: "orch::settlement", error = %e, "Could not sample the settlement fees and signer balance")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
