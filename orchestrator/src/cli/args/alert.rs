//! Alert flags (`--aws-sns`, `--alert-webhook-url`).

use orchestrator_utils::Secret;
use url::Url;

/// Alerts; without `--aws-sns` alerts are logged, written under `--data-dir` and optionally
/// posted to `--alert-webhook-url`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Alerts")]
pub struct AlertArgs {
    /// Publish alerts to AWS SNS (requires `--aws`).
    #[arg(long, requires = "aws")]
    pub aws_sns: bool,

    /// The SNS topic name or ARN.
    #[arg(long, env = "MADARA_ORCHESTRATOR_AWS_SNS_TOPIC_IDENTIFIER", default_value = "alerts")]
    pub topic_identifier: String,

    /// Embedded alerts: also POST each alert as JSON to this URL (not in the reference).
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_ALERT_WEBHOOK_URL",
        hide_env_values = true,
        conflicts_with = "aws_sns"
    )]
    pub alert_webhook_url: Option<Secret<Url>>,
}
