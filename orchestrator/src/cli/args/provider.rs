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
}
