//! Starts the workers of the layer: one event worker per queue of the layer (job queues,
//! priority queues, worker triggers, dead letters), the orphan scanner, the watchdog when the
//! context has one, and, when a settlement client is configured and no watchdog reads its
//! balance, the settlement sampler.

use std::{sync::Arc, time::Duration};

use orchestrator_settlement_client_interface::SettlementClient;

use tokio_util::sync::CancellationToken;

use crate::{
    types::queue::QueueType,
    worker::Config,
    worker::{event_worker::EventWorker, orphan, supervisor::Supervisor},
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

    /// Starts every worker under `supervisor`, each named after what it does; a worker that
    /// panics is logged and restarted (see [`Supervisor`]). They stop with the supervisor's
    /// shutdown token.
    pub fn spawn(&self, supervisor: &Supervisor) {
        for queue in self.queues() {
            let config = self.config.clone();
            supervisor.spawn(format!("worker:{queue}"), move |token| {
                EventWorker::new(queue, config.clone()).run(token)
            });
        }
        let config = self.config.clone();
        supervisor.spawn("orphan-scanner", move |token| orphan::run(config.clone(), token));
        // A watchdog that checks the balance reads the same values every check: the sampler
        // would read them twice.
        let watchdog_samples =
            (self.config.watchdog.as_ref()).is_some_and(|w| w.params().min_balance_updates > 0);
        if let Some(client) = self.config.handlers.settlement_client().filter(|_| !watchdog_samples)
        {
            let config = self.config.clone();
            supervisor.spawn("settlement-sampler", move |token| {
                sample_settlement(config.clone(), client.clone(), SETTLEMENT_SAMPLE_INTERVAL, token)
            });
        }
        if let Some(watchdog) = self.config.watchdog.clone() {
            let config = self.config.clone();
            supervisor.spawn("watchdog", move |token| watchdog.clone().run(config.clone(), token));
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
