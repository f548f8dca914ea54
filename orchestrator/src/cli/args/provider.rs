//! `--aws` provider flags.

/// The AWS provider: credentials and region come from the standard `AWS_*` variables.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Provider (AWS)")]
pub struct AwsProviderArgs {
    /// Use AWS as the provider of the distributed services (S3, SQS, SNS, EventBridge).
    #[arg(long)]
    pub aws: bool,

    /// Prefix of every AWS resource name: bucket `{prefix}-{name}`, queues `{prefix}_{template}`,
    /// topic `{prefix}_{name}`. ARNs are used verbatim.
    #[arg(long, env = "MADARA_ORCHESTRATOR_AWS_PREFIX")]
    pub aws_prefix: Option<String>,

    /// Seconds to wait for a connection to an AWS endpoint (default: 5). Retries of AWS calls
    /// follow the SDK's `AWS_MAX_ATTEMPTS` and `AWS_RETRY_MODE`.
    #[arg(long, env = "MADARA_ORCHESTRATOR_AWS_CONNECT_TIMEOUT_SECS")]
    pub aws_connect_timeout_secs: Option<u64>,

    /// Seconds to wait for AWS credentials to load (instance role, web identity, SSO; default:
    /// the SDK's 5 s).
    #[arg(long, env = "MADARA_ORCHESTRATOR_AWS_IDENTITY_LOAD_TIMEOUT_SECS")]
    pub aws_identity_load_timeout_secs: Option<u64>,
}
