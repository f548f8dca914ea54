//! The runtime context every worker, trigger and route shares.

use std::{collections::HashMap, sync::Arc, time::Duration};

use tokio::sync::Notify;

use crate::{
    core::client::{AlertClient, DatabaseClient, LockClient, QueueClient, StorageClient},
    types::{jobs::JobType, queue::{QueueParams, QueueType, WorkerTriggerType}, Layer},
    worker::{event_handler::jobs::JobHandlers, triggers::Triggers},
};

/// The infrastructure clients of the chosen tier.
#[derive(Debug, Clone)]
pub struct Clients {
    /// Jobs, batches, lookups.
    pub database: Arc<dyn DatabaseClient>,
    /// Job and trigger messages.
    pub queue: Arc<dyn QueueClient>,
    /// Artifacts.
    pub storage: Arc<dyn StorageClient>,
    /// Operator alerts.
    pub alerts: Arc<dyn AlertClient>,
    /// TTL locks.
    pub lock: Arc<dyn LockClient>,
}

/// Which failed jobs stop triggers from creating new jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FailedJobHalt {
    /// A `Failed`/`VerificationTimeout` job stops only the trigger creating jobs of its type;
    /// other stages go on (bounded by their buffers).
    #[default]
    Stage,
    /// Any `Failed`/`VerificationTimeout` job stops every trigger (the reference's behaviour).
    Global,
}

/// Knobs of the job engine.
#[derive(Debug, Clone)]
pub struct EngineParams {
    /// Queue settings (visibility, worker slots).
    pub queue: QueueParams,
    /// How long a job may stay `LockedForProcessing` before it counts as orphaned.
    pub job_timeouts: HashMap<JobType, Duration>,
    /// Which failed jobs halt which triggers.
    pub failed_job_halt: FailedJobHalt,
    /// How often the orphan scanner runs.
    pub orphan_scan_interval: Duration,
    /// A job untouched this long in a waiting status gets its message sent again.
    pub stale_message_after: Duration,
    /// Sleep between polls of an empty queue (a local send wakes the worker sooner).
    pub empty_poll_interval: Duration,
    /// First delay before a retryable processing error is retried; doubles per receive.
    pub retry_backoff_base: Duration,
    /// Longest delay between retries.
    pub retry_backoff_max: Duration,
    /// Interval of the in-process cron.
    pub trigger_interval: Duration,
    /// How long shutdown waits for in-flight work.
    pub graceful_shutdown_timeout: Duration,
}

impl Default for EngineParams {
    fn default() -> Self {
        Self {
            queue: QueueParams::default(),
            job_timeouts: HashMap::new(),
            failed_job_halt: FailedJobHalt::Stage,
            orphan_scan_interval: Duration::from_secs(60),
            stale_message_after: Duration::from_secs(600),
            empty_poll_interval: Duration::from_millis(500),
            retry_backoff_base: Duration::from_secs(5),
            retry_backoff_max: Duration::from_secs(300),
            trigger_interval: Duration::from_secs(60),
            graceful_shutdown_timeout: Duration::from_secs(120),
        }
    }
}

impl EngineParams {
    /// The orphan threshold of `job_type` (300 s unless configured).
    pub fn job_timeout(&self, job_type: JobType) -> Duration {
        self.job_timeouts.get(&job_type).copied().unwrap_or(Duration::from_secs(300))
    }

    /// Delay before the `receive_count`-th delivery of a failed message is retried.
    pub fn retry_delay(&self, receive_count: u32) -> Duration {
        let factor = 2u32.saturating_pow(receive_count.saturating_sub(1).min(16));
        self.retry_backoff_base.saturating_mul(factor).min(self.retry_backoff_max)
    }
}

/// Wakes a queue's local worker when this process sends to that queue, so a chained stage
/// starts at once instead of at the next poll.
#[derive(Debug, Default)]
pub struct Wakers {
    wakers: HashMap<QueueType, Arc<Notify>>,
}

impl Wakers {
    /// One waker per queue type.
    pub fn new() -> Self {
        use strum::IntoEnumIterator;
        Self { wakers: QueueType::iter().map(|q| (q, Arc::new(Notify::new()))).collect() }
    }

    /// The waker of `queue`.
    pub fn get(&self, queue: QueueType) -> Arc<Notify> {
        self.wakers.get(&queue).cloned().unwrap_or_default()
    }
}

/// Everything the engine needs: the layer, the clients, the handlers and triggers.
#[derive(Debug)]
pub struct Config {
    /// L2 or L3.
    pub layer: Layer,
    /// Infrastructure clients.
    pub clients: Clients,
    /// Job handlers by type.
    pub handlers: JobHandlers,
    /// Triggers by type.
    pub triggers: Triggers,
    /// Engine knobs.
    pub engine: EngineParams,
    /// Local wake-ups.
    pub wakers: Wakers,
}

impl Config {
    /// A context with the given parts and fresh wakers.
    pub fn new(
        layer: Layer,
        clients: Clients,
        handlers: JobHandlers,
        triggers: Triggers,
        engine: EngineParams,
    ) -> Self {
        Self { layer, clients, handlers, triggers, engine, wakers: Wakers::new() }
    }

    /// The database.
    pub fn database(&self) -> &Arc<dyn DatabaseClient> {
        &self.clients.database
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<dyn QueueClient> {
        &self.clients.queue
    }

    /// The artifact store.
    pub fn storage(&self) -> &Arc<dyn StorageClient> {
        &self.clients.storage
    }

    /// The alert sink.
    pub fn alerts(&self) -> &Arc<dyn AlertClient> {
        &self.clients.alerts
    }

    /// The lock store.
    pub fn lock(&self) -> &Arc<dyn LockClient> {
        &self.clients.lock
    }

    /// Whether `trigger` belongs to this layer.
    pub fn runs_trigger(&self, trigger: WorkerTriggerType) -> bool {
        WorkerTriggerType::for_layer(self.layer).contains(&trigger)
    }
}
