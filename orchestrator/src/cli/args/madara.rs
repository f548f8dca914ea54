//! Flags naming the Madara node.

use url::Url;

/// The Madara node whose blocks are carried to settlement.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Madara")]
pub struct MadaraArgs {
    /// Madara JSON-RPC URL.
    #[arg(long, env = "MADARA_ORCHESTRATOR_MADARA_RPC_URL")]
    pub madara_rpc_url: Url,

    /// Madara feeder gateway URL (bouncer weights, contract addresses); defaults to the RPC URL.
    #[arg(long, env = "MADARA_ORCHESTRATOR_MADARA_FEEDER_GATEWAY_URL")]
    pub madara_feeder_gateway_url: Option<Url>,

    /// RPC of a reference node: batching halts when a block hash differs from it.
    #[arg(long, env = "MADARA_ORCHESTRATOR_REPLAY_BOUNDS_RPC_URL")]
    pub replay_bounds_rpc_url: Option<Url>,
}
