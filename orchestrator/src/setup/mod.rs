//! `orchestrator setup`: provisions the infrastructure `run` needs. Safe to run again: it
//! creates what is missing, reconciles what differs and leaves the rest (AWS: [`aws`]).

pub mod aws;

pub use aws::setup_aws;

use std::time::Duration;

use crate::{
    config::{
        AlertBackend, CronBackend, DatabaseBackend, InfraParams, QueueBackend, SetupParams,
        StorageBackend,
    },
    core::client::{
        aws::{AwsEnv, AwsError},
        embedded::{self, EmbeddedOptions},
        CronError,
    },
};

/// Why setup failed; names the resource.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The embedded tier could not be created.
    #[error(transparent)]
    Embedded(#[from] embedded::EmbeddedError),
    /// An AWS resource could not be inspected, created or updated.
    // The cause is the source: `{:#}` (how the binary prints errors) appends it.
    #[error("cannot set up {resource}")]
    Aws {
        /// The resource (`queue mo_snos_job_processing_queue`, `bucket mo-bucket` …).
        resource: String,
        /// Why.
        #[source]
        source: AwsError,
    },
    /// A resource did not become ready within `--timeout`.
    #[error("{resource} was not ready after {waited:?} (raise --timeout?)")]
    NotReady {
        /// The resource.
        resource: String,
        /// How long setup waited.
        waited: Duration,
    },
    /// The worker-trigger rules or schedules could not be set up.
    #[error(transparent)]
    Cron(#[from] CronError),
    /// The `--postgres` / `--mongodb` database could not be reached or provisioned.
    #[error(transparent)]
    Database(#[from] crate::core::client::database_backends::DatabaseBackendError),
}

/// Provisions what `params` selects and returns a summary of what exists now (with
/// `--dry-run`, of what would be done). AWS credentials, region and endpoint come from the
/// environment (`AWS_*`).
pub async fn run_setup(params: &SetupParams) -> Result<Vec<String>, SetupError> {
    run_setup_with(params, None).await
}

/// [`run_setup`] with an explicit AWS configuration (tests, emulators); `None` loads it from
/// the environment when an AWS backend is selected.
pub async fn run_setup_with(
    params: &SetupParams,
    aws: Option<&AwsEnv>,
) -> Result<Vec<String>, SetupError> {
    let mut lines = Vec::new();
    if uses_aws(&params.infra) {
        let env = match aws {
            Some(env) => env.clone(),
            None => AwsEnv::load(params.infra.aws.as_ref()).await.map_err(|source| {
                SetupError::Aws { resource: "the AWS client configuration".into(), source }
            })?,
        };
        lines.extend(aws::setup_aws(params, &env).await?.iter().map(ToString::to_string));
    }
    if !matches!(params.infra.database, DatabaseBackend::Embedded) {
        // `--postgres` / `--mongodb`: create the tables or indexes (idempotent).
        if params.dry_run {
            lines.push("would ensure the database schema / indexes".to_owned());
        } else if let Some(db) =
            crate::core::client::database_backends::open(&params.infra.database).await?
        {
            lines.push(db.summary);
        }
    }
    lines.extend(setup_embedded(params).await?);
    Ok(lines)
}

/// Whether any capability uses an AWS backend.
pub fn uses_aws(infra: &InfraParams) -> bool {
    matches!(infra.queue, QueueBackend::Sqs { .. })
        || matches!(infra.storage, StorageBackend::S3 { .. })
        || matches!(infra.alerts, AlertBackend::Sns { .. })
        || matches!(infra.cron, CronBackend::EventBridge { .. })
}

/// The embedded parts: the SQLite file (database, locks and — when they are embedded — the
/// queues), the artifact directory and the alert file.
async fn setup_embedded(params: &SetupParams) -> Result<Vec<String>, SetupError> {
    let infra = &params.infra;
    let dir = infra.data_dir.display();
    let mut lines = Vec::new();
    if matches!(infra.database, DatabaseBackend::Embedded) {
        lines.push(format!("database: {dir}/orchestrator.sqlite (jobs, batches, lookups, locks)"));
    }
    if matches!(infra.queue, QueueBackend::Embedded) {
        lines.push(format!(
            "queues: {} queues of layer {} in {dir}/orchestrator.sqlite",
            crate::types::queue::QueueType::for_layer(params.layer).len(),
            params.layer
        ));
    }
    if matches!(infra.storage, StorageBackend::Embedded { .. }) {
        lines.push(format!("artifacts: {dir}/artifacts"));
    }
    if matches!(infra.alerts, AlertBackend::Embedded { .. }) {
        lines.push(format!("alerts: {dir}/alerts.jsonl"));
    }
    if lines.is_empty() {
        return Ok(lines);
    }
    if params.dry_run {
        return Ok(lines.into_iter().map(|l| format!("would ensure {l}")).collect());
    }
    let clients = embedded::open(&infra.data_dir, &EmbeddedOptions::default()).await?;
    drop(clients);
    Ok(lines)
}
