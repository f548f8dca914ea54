//! Client traits (`DatabaseClient`, `QueueClient`, `StorageClient`, `AlertClient`,
//! `LockClient`, `CronClient`), their errors, and the backends.
//!
//! Every error answers `is_retryable()`: whether trying the same operation again later may
//! succeed (a network blip, a busy database) or not (bad input, a missing resource).

pub mod alert;
pub mod aws;
pub mod clients;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
pub mod cron;
pub mod database;
pub mod database_backends;
pub(crate) mod db_common;
pub mod embedded;
pub mod fs_storage;
pub mod local_cron;
pub mod lock;
pub mod log_alert;
pub mod madara;
pub mod mongodb;
pub mod postgres;
pub mod queue;
pub mod sql;
pub mod sqlite;
pub mod storage;

pub use alert::{Alert, AlertClient, AlertError, AlertSeverity};
pub use clients::Clients;
pub use cron::{CronClient, CronError};
pub use database::{BatchWrite, DatabaseClient, DatabaseError, DatabaseResult, JobQuery};
pub use lock::{LockClient, LockError, LockInfo, LockValue};
pub use queue::{Delivery, OutgoingMessage, QueueClient, QueueError};
pub use storage::{StorageClient, StorageError};

/// A boxed error for the `Other` escape hatch of each client error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
