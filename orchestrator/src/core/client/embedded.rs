//! The embedded tier: every capability on one machine under `--data-dir`, no services.
//!
//! ```text
//! <data-dir>/orchestrator.sqlite   jobs, batches, lookups, locks, queues (WAL)
//! <data-dir>/artifacts/            artifact storage
//! <data-dir>/alerts.jsonl          alerts (also logged)
//! ```

use std::{path::Path, sync::Arc, time::Duration};

use url::Url;

use crate::{
    core::client::Clients,
    types::queue::{QueueConfig, QueueParams, QueueType},
};

use super::{
    fs_storage::FsStorage,
    log_alert::LogAlert,
    sqlite::{self, database::SqliteDatabase, lock::SqliteLock, queue::SqliteQueue},
    BoxError,
};

/// Options of the embedded tier.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedOptions {
    /// Queue settings.
    pub queue: QueueParams,
    /// Replaces every queue's visibility timeout (tests use a few seconds).
    pub visibility_timeout: Option<Duration>,
    /// Where alerts are also POSTed as JSON.
    pub alert_webhook: Option<Url>,
}

/// Why the embedded tier could not be opened; names the part.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// The SQLite file.
    #[error(transparent)]
    Open(#[from] sqlite::OpenError),
    /// A table could not be created or read.
    #[error("cannot initialise the {part} in {data_dir}: {source}")]
    Init {
        /// Which part.
        part: &'static str,
        /// The data dir.
        data_dir: String,
        /// Why.
        #[source]
        source: BoxError,
    },
}

/// Opens (creating if needed) the embedded tier in `data_dir`.
pub async fn open(data_dir: &Path, options: &EmbeddedOptions) -> Result<Clients, EmbeddedError> {
    let pool = sqlite::open_pool(data_dir).await?;
    let init = |part: &'static str| {
        let data_dir = data_dir.display().to_string();
        move |e: BoxError| EmbeddedError::Init { part, data_dir, source: e }
    };
    let database =
        SqliteDatabase::open(pool.clone()).await.map_err(|e| init("database")(e.into()))?;
    let lock = SqliteLock::open(pool.clone()).await.map_err(|e| init("locks")(e.into()))?;
    let params = options.queue.clone();
    let visibility = options.visibility_timeout;
    let queue = SqliteQueue::with_configs(pool, move |q: QueueType| {
        let mut config: QueueConfig = q.config(&params);
        if let Some(v) = visibility {
            config.visibility_timeout = v;
        }
        config
    });
    queue.init().await.map_err(|e| init("queues")(e.into()))?;
    let storage = FsStorage::open(data_dir.join("artifacts"))
        .map_err(|e| init("artifact storage")(e.into()))?;
    let mut alerts = LogAlert::new(data_dir.join("alerts.jsonl"));
    if let Some(url) = &options.alert_webhook {
        alerts = alerts
            .with_webhook(url.clone(), Duration::from_secs(10))
            .map_err(|e| init("alert webhook")(e.into()))?;
    }
    Ok(Clients {
        database: Arc::new(database),
        queue: Arc::new(queue),
        storage: Arc::new(storage),
        alerts: Arc::new(alerts),
        lock: Arc::new(lock),
    })
}
