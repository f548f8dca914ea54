//! `orchestrator run`: the daemon's command line.

use clap::ArgGroup;
use eyre::WrapErr;

use super::args::{
    batching::BatchingArgs,
    da::DaArgs,
    infra::InfraArgs,
    madara::MadaraArgs,
    otel::OtelArgs,
    prover::ProverArgs,
    server::ServerArgs,
    service::ServiceArgs,
    settlement::{EthereumSettlementArgs, StarknetSettlementArgs},
    snos::SnosArgs,
    upstream::UpstreamArgs,
};
use crate::{config::RunParams, types::Layer};

/// `orchestrator run`: every flag of the reference's `run`, plus the embedded tier.
///
/// Infrastructure flags are optional per capability (the embedded tier under `--data-dir`
/// fills the gaps); settlement, DA, `--prover`, `--madara-rpc-url`, `--rpc-for-snos` and
/// `--max-batch-time-seconds` stay required as in the reference.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "run", about = "Runs the orchestrator")]
#[command(group(
    ArgGroup::new("settlement_layer")
        .args(["settle_on_ethereum", "settle_on_starknet"])
        .required(true)
        .multiple(false)
))]
#[command(group(
    ArgGroup::new("da_layer").args(["da_on_ethereum", "da_on_starknet"]).required(true).multiple(false)
))]
pub struct RunCmd {
    /// The appchain's layer: `l2` settles on Ethereum, `l3` on Starknet.
    #[arg(long, env = "MADARA_ORCHESTRATOR_LAYER", value_enum, default_value = "l2")]
    pub layer: Layer,

    /// Storage, queues, alerts, database and cron (AWS, a database server or embedded).
    #[command(flatten)]
    pub infra: InfraArgs,
    /// HTTP server.
    #[command(flatten)]
    pub server: ServerArgs,
    /// The Madara node.
    #[command(flatten)]
    pub madara: MadaraArgs,
    /// Retries of calls to the node and the prover.
    #[command(flatten)]
    pub upstream: UpstreamArgs,
    /// Block range, concurrency, timeouts.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Batch limits.
    #[command(flatten)]
    pub batching: BatchingArgs,
    /// The Starknet OS run.
    #[command(flatten)]
    pub snos: SnosArgs,
    /// The prover and its settings.
    #[command(flatten)]
    pub prover: ProverArgs,
    /// Settlement on Ethereum.
    #[command(flatten)]
    pub ethereum_settlement: EthereumSettlementArgs,
    /// Settlement on Starknet.
    #[command(flatten)]
    pub starknet_settlement: StarknetSettlementArgs,
    /// Data availability layer.
    #[command(flatten)]
    pub da: DaArgs,
    /// OpenTelemetry export.
    #[command(flatten)]
    pub otel: OtelArgs,

    /// Before starting, rebuild the batches and jobs of every settled block from the core
    /// contract's `LogStateUpdate` events when the database lacks them (ours; an empty or lost
    /// database; a database that disagrees with the chain is refused). `docs/recovery.md`.
    #[arg(long, env = "MADARA_ORCHESTRATOR_RECOVER_FROM_SETTLEMENT", help_heading = "Recovery")]
    pub recover_from_settlement: bool,
    /// The settlement-layer block from which recovery reads the core contract's events (its
    /// deployment block; 0 reads the whole chain, page by page).
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_RECOVER_SCAN_FROM_BLOCK",
        default_value_t = 0,
        help_heading = "Recovery"
    )]
    pub recover_scan_from_block: u64,

    /// Shadow mode: run every stage beside the live operator but send no settlement
    /// transaction and submit nothing to the prover; each would-be state update is compared
    /// with the live operator's for the same blocks (`GET /shadow`, metric
    /// `shadow_comparisons_total`). L2 only. `docs/shadow.md`.
    #[arg(long, env = "MADARA_ORCHESTRATOR_SHADOW", help_heading = "Shadow mode")]
    pub shadow: bool,
    /// The settlement-layer block from which shadow mode reads the live operator's
    /// `LogStateUpdate` events (the core contract's deployment block; 0 reads the whole chain).
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_SHADOW_SCAN_FROM_BLOCK",
        default_value_t = 0,
        help_heading = "Shadow mode"
    )]
    pub shadow_scan_from_block: u64,
}

impl RunCmd {
    /// Validates the command line into [`RunParams`].
    ///
    /// # Errors
    /// A [`crate::config::ConfigError`] naming the flag and the problem.
    pub fn params(self) -> crate::config::ConfigResult<RunParams> {
        RunParams::try_from(self)
    }

    /// Runs the orchestrator: validates the parameters, runs the preflight (unless
    /// `--skip-preflight`; one `preflight:` line per check on stdout, fatal ones last), then
    /// starts the workers and the server and runs until SIGINT/SIGTERM.
    ///
    /// # Errors
    /// Invalid configuration, a fatal preflight check, or a failure while running.
    pub fn execute(self) -> eyre::Result<()> {
        let recovery = self.recover_from_settlement.then_some(self.recover_scan_from_block);
        let params = self.params().wrap_err("invalid `run` configuration")?;
        let runtime = tokio::runtime::Runtime::new().wrap_err("cannot start the async runtime")?;
        runtime.block_on(async move {
            // Inside the runtime: the OTLP gRPC client needs it. Dropped last: flushes exports.
            let _telemetry = crate::telemetry::init(&params.otel)?;
            if params.shadow.is_some() {
                println!("{}", crate::shadow::SHADOW_NEVER);
                tracing::warn!("{}", crate::shadow::SHADOW_NEVER);
            }
            preflight(&params).await?;
            if let Some(scan_from_block) = recovery {
                let report = crate::recover::recover_with(&params, scan_from_block).await?;
                println!("recover: {}", report.summary());
            }
            let orchestrator = crate::app::Orchestrator::start(params).await?;
            orchestrator.run_until_signal().await
        })
    }

    /// `orchestrator recover`: rebuilds the batches and jobs of every settled block from the
    /// core contract's events into the database (see [`crate::recover`]), prints what it did
    /// and exits. Takes the flags of `run`.
    ///
    /// # Errors
    /// Invalid configuration, or recovery refused or failed (the error says why).
    pub fn execute_recover(self) -> eyre::Result<()> {
        let scan_from_block = self.recover_scan_from_block;
        let params = self.params().wrap_err("invalid `recover` configuration")?;
        let runtime = tokio::runtime::Runtime::new().wrap_err("cannot start the async runtime")?;
        runtime.block_on(async move {
            let _telemetry = crate::telemetry::init(&params.otel)?;
            let report = crate::recover::recover_with(&params, scan_from_block).await?;
            println!("recover: {}", report.summary());
            Ok(())
        })
    }
}

/// The preflight of `run` (see [`crate::preflight`]): its lines on stdout; an error when a
/// check is fatal, so the workers never start.
async fn preflight(params: &RunParams) -> eyre::Result<()> {
    if params.service.skip_preflight {
        tracing::warn!("Preflight skipped (--skip-preflight): dependencies are not checked");
        return Ok(());
    }
    let report = crate::preflight::run(params).await;
    report.print(&mut std::io::stdout().lock())
}
