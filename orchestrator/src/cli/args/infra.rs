//! The infrastructure flag groups common to `run` and `setup`.

use super::{
    alert::AlertArgs, cron::CronArgs, database::DatabaseArgs, embedded::EmbeddedArgs,
    provider::AwsProviderArgs, queue::QueueArgs, storage::StorageArgs,
};

/// Where the orchestrator keeps its state and talks to: each capability on AWS (or a
/// database server) or, without its flag, in the embedded tier under `--data-dir`.
#[derive(Debug, Clone, clap::Args)]
pub struct InfraArgs {
    /// Embedded tier: the data directory.
    #[command(flatten)]
    pub embedded: EmbeddedArgs,
    /// AWS provider: `--aws` and the resource prefix.
    #[command(flatten)]
    pub provider: AwsProviderArgs,
    /// Artifact storage (S3 or the data directory).
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Queues (SQS or the embedded queue).
    #[command(flatten)]
    pub queue: QueueArgs,
    /// Alerts (SNS or the log and alert file).
    #[command(flatten)]
    pub alert: AlertArgs,
    /// Job database (MongoDB, PostgreSQL or SQLite).
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Worker-trigger cron (EventBridge or in process).
    #[command(flatten)]
    pub cron: CronArgs,
}
