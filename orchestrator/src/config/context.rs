//! The runtime context every worker, trigger and route shares.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
    time::Duration,
};

use orchestrator_utils::Secret;
use tokio::sync::Notify;

use crate::{
    core::client::{AlertClient, DatabaseClient, LockClient, QueueClient, StorageClient},
    telemetry::metrics::Metrics,
    types::{
        jobs::JobType,
        queue::{QueueParams, QueueType, WorkerTriggerType},
        Layer,
    },
    worker::{event_handler::jobs::JobHandlers, triggers::Triggers},
};

/// What the HTTP server needs beyond the clients: admin access, limits.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Whether the `/admin/*` routes are mounted.
    pub admin_enabled: bool,
    /// Bearer token the `/admin/*` routes require; admin stays refused without one.
    pub admin_token: Option<Secret<String>>,
    /// Requests per second each client (peer IP) may make on average.
    pub rate_limit_per_second: u32,
    /// Requests a client may make in a burst above the average.
    pub rate_limit_burst: u32,
    /// Most messages waiting in a priority queue before `?priority=true` answers 429.
    pub max_priority_queue_size: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            admin_enabled: false,
            admin_token: None,
            rate_limit_per_second: 20,
            rate_limit_burst: 100,
            max_priority_queue_size: 20,
        }
    }
}

/// Operator control over job creation: triggers paused through the admin API, and the
/// triggers currently halted by failed jobs (so the halt alert is sent once per episode).
///
/// Process-local: each orchestrator process keeps its own set.
#[derive(Debug, Default)]
pub struct TriggerControl {
    paused: RwLock<HashSet<WorkerTriggerType>>,
    halted: RwLock<HashSet<WorkerTriggerType>>,
    failing: RwLock<HashSet<WorkerTriggerType>>,
}

impl TriggerControl {
    /// Stops `trigger` from creating jobs; returns whether it was running before.
    pub fn pause(&self, trigger: WorkerTriggerType) -> bool {
        write(&self.paused).insert(trigger)
    }

    /// Lets `trigger` create jobs again; returns whether it was paused.
    pub fn resume(&self, trigger: WorkerTriggerType) -> bool {
        write(&self.paused).remove(&trigger)
    }

    /// Whether `trigger` is paused.
    pub fn is_paused(&self, trigger: WorkerTriggerType) -> bool {
        read(&self.paused).contains(&trigger)
    }

    /// The paused triggers, sorted by name.
    pub fn paused(&self) -> Vec<WorkerTriggerType> {
        let mut v: Vec<_> = read(&self.paused).iter().copied().collect();
        v.sort_by_key(|t| t.to_string());
        v
    }

    /// Records whether `trigger` is halted by failed jobs; returns whether that changed (a
    /// halt episode starts or ends).
    pub fn set_halted(&self, trigger: WorkerTriggerType, halted: bool) -> bool {
        if halted {
            write(&self.halted).insert(trigger)
        } else {
            write(&self.halted).remove(&trigger)
        }
    }

    /// Records whether the last run of `trigger` failed; returns whether that changed (a
    /// failure streak starts or ends).
    pub fn set_failing(&self, trigger: WorkerTriggerType, failing: bool) -> bool {
        if failing {
            write(&self.failing).insert(trigger)
        } else {
            write(&self.failing).remove(&trigger)
        }
    }

    /// The triggers halted by failed jobs at their last run, sorted by name.
    pub fn halted(&self) -> Vec<WorkerTriggerType> {
        let mut v: Vec<_> = read(&self.halted).iter().copied().collect();
        v.sort_by_key(|t| t.to_string());
        v
    }
}

// A poisoned lock only means a panic while holding it; the set itself is always valid.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

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
    /// HTTP server settings (admin access, rate limits).
    pub server: ServerSettings,
    /// Paused and halted triggers.
    pub trigger_control: TriggerControl,
    /// Instruments every component records into; `/metrics` renders them.
    pub metrics: Arc<Metrics>,
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
        Self {
            layer,
            clients,
            handlers,
            triggers,
            engine,
            wakers: Wakers::new(),
            server: ServerSettings::default(),
            trigger_control: TriggerControl::default(),
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// The same context with these server settings.
    pub fn with_server(mut self, server: ServerSettings) -> Self {
        self.server = server;
        self
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
