//! Settings of the engine and the HTTP server.

use std::{collections::HashMap, time::Duration};

use orchestrator_utils::Secret;

use super::choices::FailedJobHalt;
use crate::types::{jobs::JobType, queue::QueueParams};

/// What the HTTP server needs beyond the clients: admin access, limits.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Whether the `/admin/*` routes are mounted.
    pub admin_enabled: bool,
    /// Bearer token the `/admin/*` routes require; admin stays refused without one. When set,
    /// the job routes that change state (`/jobs/{id}/process|verify|retry`) require it too.
    pub admin_token: Option<Secret<String>>,
    /// Serve the job routes that change state without the token even when one is set (the
    /// reference's open behaviour).
    pub open_job_actions: bool,
    /// Requests per second each client (peer IP) may make on average.
    pub rate_limit_per_second: u32,
    /// Requests a client may make in a burst above the average.
    pub rate_limit_burst: u32,
    /// Most messages waiting in a priority queue before `?priority=true` answers 429.
    pub max_priority_queue_size: usize,
    /// External dependencies `/health/ready` reports (none by default).
    pub dependencies: crate::server::health::ExternalDependencies,
    /// Whether the process runs in shadow mode (`--shadow`; `/shadow` serves its reports).
    pub shadow: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            admin_enabled: false,
            admin_token: None,
            open_job_actions: false,
            rate_limit_per_second: 20,
            rate_limit_burst: 100,
            max_priority_queue_size: 20,
            dependencies: Default::default(),
            shadow: false,
        }
    }
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
