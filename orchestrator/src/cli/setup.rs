//! `orchestrator setup`: provisions the resources `run` needs.

use eyre::WrapErr;

use super::args::infra::InfraArgs;
use crate::{config::SetupParams, types::Layer};

/// `orchestrator setup`: every flag of the reference's `setup`.
///
/// Unlike the reference, no group is required: with no AWS flags it provisions the embedded
/// tier (data directory, database tables, queues); `--aws-event-bridge` is optional.
/// `--mongodb` / `--postgres` (not in the reference's `setup`) create the collections/tables.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "setup", about = "Creates the queues, storage, alerts, cron and database tables")]
pub struct SetupCmd {
    /// The appchain's layer; selects the queues and triggers created.
    #[arg(long, env = "MADARA_ORCHESTRATOR_LAYER", value_enum, default_value = "l2")]
    pub layer: Layer,

    /// Storage, queues, alerts, database and cron (AWS, a database server or embedded).
    #[command(flatten)]
    pub infra: InfraArgs,

    /// Seconds to wait for the resources to become ready.
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_SETUP_TIMEOUT",
        default_value_t = 300,
        help_heading = "Setup"
    )]
    pub timeout: u64,

    /// Seconds between readiness polls.
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_SETUP_RESOURCE_POLL_INTERVAL",
        default_value_t = 5,
        help_heading = "Setup"
    )]
    pub poll_interval: u64,

    /// Print what would be created or updated (create / update / unchanged per resource)
    /// without changing anything; only read APIs are called.
    #[arg(long, help_heading = "Setup")]
    pub dry_run: bool,
}

impl SetupCmd {
    /// Validates the command line into [`SetupParams`].
    ///
    /// # Errors
    /// A [`crate::config::ConfigError`] naming the flag and the problem.
    pub fn params(self) -> crate::config::ConfigResult<SetupParams> {
        SetupParams::try_from(self)
    }

    /// Provisions the resources (or, with `--dry-run`, prints the plan), one line per resource.
    ///
    /// # Errors
    /// Invalid configuration, or a resource that could not be set up (named in the error).
    pub fn execute(self) -> eyre::Result<()> {
        let params = self.params().wrap_err("invalid `setup` configuration")?;
        crate::telemetry::init_tracing();
        let runtime = tokio::runtime::Runtime::new().wrap_err("cannot start the async runtime")?;
        let summary = runtime.block_on(crate::setup::run_setup(&params))?;
        for line in summary {
            println!("{line}");
        }
        Ok(())
    }
}
