//! Starts the workers of the layer: one event worker per queue of the layer (job queues,
//! priority queues, worker triggers, dead letters) and the orphan scanner.

use std::sync::Arc;

use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{config::Config, types::queue::QueueType, worker::{event_worker::EventWorker, orphan}};

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
        tracing::info!(layer = %self.config.layer, queues = self.queues().len(), "Workers started");
    }
}
