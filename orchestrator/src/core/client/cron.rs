//! Periodic worker triggers (EventBridge in the cloud, a ticker in process).

use orchestrator_utils::Retryable;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::types::queue::WorkerTriggerType;

use super::BoxError;

/// Why a cron operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CronError {
    /// A trigger could not be created; names the resource.
    #[error("could not create trigger {name}: {source}")]
    Create {
        /// The rule or schedule.
        name: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The cron service is unreachable.
    #[error("cron service unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Anything else.
    #[error(transparent)]
    Other(BoxError),
}

impl CronError {
    /// Wraps any error as `Other`.
    pub fn other(e: impl Into<BoxError>) -> Self {
        Self::Other(e.into())
    }
}

impl Retryable for CronError {
    /// Whether the same operation may succeed later.
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Sends each trigger's name to the `worker_trigger` queue every interval.
#[async_trait]
pub trait CronClient: Send + Sync + std::fmt::Debug {
    /// Makes sure every trigger fires each `interval`; idempotent (`setup` calls it).
    async fn setup_triggers(
        &self,
        triggers: &[WorkerTriggerType],
        interval: Duration,
    ) -> Result<(), CronError>;
    /// Fires triggers until `shutdown` (in-process crons); cloud crons return at once.
    async fn run(
        &self,
        triggers: &[WorkerTriggerType],
        interval: Duration,
        shutdown: CancellationToken,
    ) -> Result<(), CronError>;
}
