//! `orchestrator setup`: provisions the infrastructure `run` needs. Safe to run again: it
//! creates what is missing and leaves what exists.

use crate::{
    config::{InfraParams, SetupParams},
    core::client::embedded::{self, EmbeddedOptions},
};

/// Why setup failed; names the resource.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The embedded tier could not be created.
    #[error(transparent)]
    Embedded(#[from] embedded::EmbeddedError),
    /// The `--postgres` / `--mongodb` database could not be reached or provisioned.
    #[error(transparent)]
    Database(#[from] crate::core::client::database_backends::DatabaseBackendError),
    /// A backend this build cannot provision yet.
    #[error("{what} is not built yet in this version; use the embedded tier (no provider flags) for now")]
    NotBuilt {
        /// The backend.
        what: &'static str,
    },
}

/// Provisions what `params` selects and returns a summary of what exists now.
pub async fn run_setup(params: &SetupParams) -> Result<Vec<String>, SetupError> {
    ensure_supported(&params.infra)?;
    let clients = embedded::open(&params.infra.data_dir, &EmbeddedOptions::default()).await?;
    let _ = clients;
    let dir = params.infra.data_dir.display();
    // `--postgres` / `--mongodb`: create the tables or indexes; the summary names the database.
    let database = crate::core::client::database_backends::open(&params.infra.database).await?;
    let mut summary = vec![
        format!("database: {dir}/orchestrator.sqlite (jobs, batches, lookups, locks)"),
        format!("queues: {} queues of layer {} in the same file", crate::types::queue::QueueType::for_layer(params.layer).len(), params.layer),
        format!("artifacts: {dir}/artifacts"),
        format!("alerts: {dir}/alerts.jsonl"),
    ];
    if let Some(db) = database {
        summary[0] = db.summary;
    }
    Ok(summary)
}

/// Fails with a clear message when `infra` selects a backend that is not built yet.
pub fn ensure_supported(infra: &InfraParams) -> Result<(), SetupError> {
    use crate::config::{AlertBackend, CronBackend, QueueBackend, StorageBackend};
    if !matches!(infra.queue, QueueBackend::Embedded) {
        return Err(SetupError::NotBuilt { what: "the SQS queue backend (--aws-sqs)" });
    }
    if !matches!(infra.storage, StorageBackend::Embedded { .. }) {
        return Err(SetupError::NotBuilt { what: "the S3 storage backend (--aws-s3)" });
    }
    if !matches!(infra.alerts, AlertBackend::Embedded { .. }) {
        return Err(SetupError::NotBuilt { what: "the SNS alert backend (--aws-sns)" });
    }
    if !matches!(infra.cron, CronBackend::Embedded { .. }) {
        return Err(SetupError::NotBuilt { what: "the EventBridge cron backend (--aws-event-bridge)" });
    }
    Ok(())
}
