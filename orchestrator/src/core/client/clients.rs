//! The set of infrastructure clients of the chosen tier.

use std::sync::Arc;

use super::{AlertClient, DatabaseClient, LockClient, QueueClient, StorageClient};

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
