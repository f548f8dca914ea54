//! Cron flags (`--aws-event-bridge`).

pub use crate::config::choices::EventBridgeType;

/// Worker-trigger cron; without `--aws-event-bridge` an in-process ticker sends the triggers.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Cron")]
pub struct CronArgs {
    /// Send worker triggers with AWS EventBridge (requires `--aws` and `--aws-sqs`).
    #[arg(long, requires_all = ["aws", "aws_sqs"])]
    pub aws_event_bridge: bool,

    /// `rule` (EventBridge rules) or `schedule` (EventBridge Scheduler); required with
    /// `--aws-event-bridge` on `setup`.
    #[arg(long, env = "MADARA_ORCHESTRATOR_EVENT_BRIDGE_TYPE", value_enum)]
    pub event_bridge_type: Option<EventBridgeType>,

    /// Seconds between worker triggers (EventBridge or the in-process ticker).
    #[arg(long, env = "MADARA_ORCHESTRATOR_EVENT_BRIDGE_INTERVAL_SECONDS", default_value_t = 60)]
    pub interval_seconds: u64,
}
