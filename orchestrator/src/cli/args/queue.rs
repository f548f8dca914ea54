//! Queue flags (`--aws-sqs`).

/// Job queues; without `--aws-sqs` the durable embedded queue under `--data-dir` is used.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Queue")]
pub struct QueueArgs {
    /// Use AWS SQS queues (requires `--aws`).
    #[arg(long, requires = "aws")]
    pub aws_sqs: bool,

    /// Queue name template or ARN; `{}` is replaced by the queue type name
    /// (e.g. `mo_worker_trigger_queue`).
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_AWS_SQS_QUEUE_IDENTIFIER",
        default_value = "mo_{}_queue"
    )]
    pub queue_identifier: String,
}
