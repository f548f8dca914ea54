//! The runtime context every worker, trigger and route shares ([`Config`]): the layer, the
//! clients, the handlers and triggers, the engine settings, local wake-ups, the halted and
//! failing triggers, and the metrics.

use crate::core::client::Clients;
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
};

use tokio::sync::Notify;

use crate::{
    config::{EngineParams, ServerSettings},
    core::client::{AlertClient, DatabaseClient, LockClient, QueueClient, StorageClient},
    telemetry::metrics::Metrics,
    types::{
        queue::{QueueType, WorkerTriggerType},
        Layer,
    },
    worker::{handler::JobHandlers, trigger::Triggers},
};

/// The triggers currently halted by failed jobs (so the halt alert is sent once per episode)
/// and those whose last run failed (one failure alert per streak).
///
/// Process-local: each orchestrator process keeps its own sets, recomputed at every trigger
/// run. Operator pauses are not here: they live in the database
/// ([`DatabaseClient::get_trigger_pause`] and its siblings), so every process sharing it
/// honours them and they survive restarts.
#[derive(Debug, Default)]
pub struct TriggerControl {
    halted: RwLock<HashSet<WorkerTriggerType>>,
    failing: RwLock<HashSet<WorkerTriggerType>>,
}

impl TriggerControl {
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
    /// Halted and failing triggers of this process (pauses are in the database).
    pub trigger_control: TriggerControl,
    /// Instruments every component records into; `/metrics` renders them.
    pub metrics: Arc<Metrics>,
    /// Episodes of the job alerts (retry streaks, healed-job throttle) of this process.
    pub job_alerts: crate::worker::alerts::JobAlertState,
    /// The watchdog of settlement lag, signer balance and stalls, when the process runs one.
    pub watchdog: Option<Arc<crate::worker::watch::Watchdog>>,
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
            job_alerts: Default::default(),
            watchdog: None,
        }
    }

    /// The same context with this watchdog (started with the workers).
    pub fn with_watchdog(mut self, watchdog: crate::worker::watch::Watchdog) -> Self {
        self.watchdog = Some(Arc::new(watchdog));
        self
    }

    /// The same context with these instruments (the app's: with the OTLP reader when
    /// configured, see [`Metrics::with_otlp`]).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Arc::new(metrics);
        self
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
