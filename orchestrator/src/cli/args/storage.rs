//! Artifact storage flags (`--aws-s3`).

/// Artifact storage; without `--aws-s3` artifacts live under `--data-dir`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Storage")]
pub struct StorageArgs {
    /// Store artifacts in AWS S3 (requires `--aws`).
    #[arg(long, requires = "aws")]
    pub aws_s3: bool,

    /// The S3 bucket name or ARN.
    #[arg(long, env = "MADARA_ORCHESTRATOR_AWS_S3_BUCKET_IDENTIFIER", default_value = "mo-bucket")]
    pub bucket_identifier: String,

    /// Days after which artifacts tagged for cleanup expire.
    #[arg(long, env = "MADARA_ORCHESTRATOR_STORAGE_EXPIRATION_DAYS", default_value_t = 14)]
    pub storage_expiration_days: u32,

    /// Directory store (no `--aws-s3`): days a settled batch's artifacts are kept after
    /// StorageCleanup tagged them, then deleted (0: at the next cleanup run). Default: the
    /// value of `--storage-expiration-days`. On S3 the bucket's lifecycle rule expires them.
    #[arg(long, env = "MADARA_ORCHESTRATOR_STORAGE_RETENTION_DAYS")]
    pub storage_retention_days: Option<u32>,
}
