//! Prover flags (reference §2.6): `--prover` selects SHARP, Atlantic or the mock prover.

pub use crate::config::choices::{
    AtlanticCairoVm, AtlanticNetwork, AtlanticQueryStep, AtlanticSharpProver, ProofSettlementLayer,
    ProverKind,
};

use std::path::PathBuf;

use orchestrator_utils::Secret;
use url::Url;

/// Prover selection and the settings of every prover; only the selected prover's are used.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Prover")]
pub struct ProverArgs {
    /// The prover: `sharp`, `atlantic` or `mock` (case-insensitive).
    #[arg(long, env = "MADARA_ORCHESTRATOR_PROVER", value_enum, ignore_case = true)]
    pub prover: ProverKind,

    /// Start the embedded mock Atlantic server on :4001 (Atlantic on TESTNET only).
    #[arg(long)]
    pub mock_atlantic_server: bool,

    /// SHARP settings.
    #[command(flatten)]
    pub sharp: SharpArgs,

    /// Atlantic settings.
    #[command(flatten)]
    pub atlantic: AtlanticArgs,

    /// Mock prover settings.
    #[command(flatten)]
    pub mock: MockProverArgs,

    /// Local aggregation (SHARP, mock prover).
    #[command(flatten)]
    pub aggregator: AggregatorArgs,
}

/// SHARP settings (`--prover sharp`).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Prover: SHARP")]
pub struct SharpArgs {
    /// SHARP customer id (sent as query parameter `customer_id`).
    #[arg(long, env = "MADARA_ORCHESTRATOR_SHARP_CUSTOMER_ID")]
    pub sharp_customer_id: Option<String>,

    /// SHARP gateway URL.
    #[arg(long, env = "MADARA_ORCHESTRATOR_SHARP_URL")]
    pub sharp_url: Option<Url>,

    /// PEM file of the client certificate (mTLS).
    #[arg(long, env = "MADARA_ORCHESTRATOR_SHARP_USER_CRT_FILE")]
    pub sharp_user_crt_file: Option<PathBuf>,

    /// PEM file of the client key (mTLS).
    #[arg(long, env = "MADARA_ORCHESTRATOR_SHARP_USER_KEY_FILE")]
    pub sharp_user_key_file: Option<PathBuf>,

    /// PEM file of the server CA certificate.
    #[arg(long, env = "MADARA_ORCHESTRATOR_SHARP_SERVER_CRT_FILE")]
    pub sharp_server_crt_file: Option<PathBuf>,

    /// L1 RPC used to check facts.
    #[arg(long, env = "MADARA_ORCHESTRATOR_SHARP_RPC_NODE_URL")]
    pub sharp_rpc_node_url: Option<Url>,

    /// GPS verifier (fact registry) contract address.
    #[arg(long, env = "MADARA_ORCHESTRATOR_GPS_VERIFIER_CONTRACT_ADDRESS")]
    pub gps_verifier_contract_address: Option<String>,

    /// Where SHARP registers facts.
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_SHARP_SETTLEMENT_LAYER",
        value_enum,
        ignore_case = true,
        default_value = "ethereum"
    )]
    pub sharp_settlement_layer: ProofSettlementLayer,
}

/// Atlantic settings (`--prover atlantic`).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Prover: Atlantic")]
pub struct AtlanticArgs {
    /// Atlantic API key, sent as header `api-key` (`_FILE` companion supported).
    #[arg(long, env = "MADARA_ORCHESTRATOR_ATLANTIC_API_KEY", hide_env_values = true)]
    pub atlantic_api_key: Option<Secret<String>>,

    /// Atlantic service URL, e.g. `https://atlantic.api.herodotus.cloud`.
    #[arg(long, env = "MADARA_ORCHESTRATOR_ATLANTIC_SERVICE_URL")]
    pub atlantic_service_url: Option<Url>,

    /// RPC used to check facts.
    #[arg(long, env = "MADARA_ORCHESTRATOR_ATLANTIC_RPC_NODE_URL")]
    pub atlantic_rpc_node_url: Option<Url>,

    /// `true` mocks the proof (bucket `mockProof`, form field `mockFactHash`) and disables the
    /// fact checker.
    #[arg(long, env = "MADARA_ORCHESTRATOR_ATLANTIC_MOCK_FACT_HASH")]
    pub atlantic_mock_fact_hash: Option<String>,

    /// Prover type, e.g. `herodotus` or `starkware`.
    #[arg(long, env = "MADARA_ORCHESTRATOR_ATLANTIC_PROVER_TYPE")]
    pub atlantic_prover_type: Option<String>,

    /// Where Atlantic registers facts.
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_ATLANTIC_SETTLEMENT_LAYER",
        value_enum,
        ignore_case = true
    )]
    pub atlantic_settlement_layer: Option<ProofSettlementLayer>,

    /// Verifier (fact registry) contract address.
    #[arg(long, env = "MADARA_ORCHESTRATOR_ATLANTIC_VERIFIER_CONTRACT_ADDRESS")]
    pub atlantic_verifier_contract_address: Option<String>,

    /// Program hash of the Cairo 0 verifier (required on L3).
    #[arg(long, env = "MADARA_ORCHESTRATOR_CAIRO_V0_VERIFIER_PROGRAM_HASH")]
    pub cairo_verifier_program_hash: Option<String>,

    /// Cairo VM Atlantic uses.
    #[arg(long, env = "MADARA_ORCHESTRATOR_ATLANTIC_CAIRO_VM", value_enum, default_value = "rust")]
    pub atlantic_verifier_cairo_vm: AtlanticCairoVm,

    /// The last step of an Atlantic query.
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_ATLANTIC_RESULT",
        value_enum,
        default_value = "proof-generation"
    )]
    pub atlantic_verifier_result: AtlanticQueryStep,

    /// Atlantic network: `MAINNET` or `TESTNET`.
    #[arg(long, env = "MADARA_ORCHESTRATOR_ATLANTIC_NETWORK", value_enum, ignore_case = true)]
    pub atlantic_network: Option<AtlanticNetwork>,

    /// SHARP prover behind Atlantic.
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_ATLANTIC_SHARP_PROVER",
        value_enum,
        default_value = "stone"
    )]
    pub atlantic_sharp_prover: AtlanticSharpProver,

    /// Base URL of Atlantic's artifacts.
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_ATLANTIC_ARTIFACTS_BASE_URL",
        default_value = "https://storage.googleapis.com/hero-atlantic-bucket"
    )]
    pub atlantic_artifacts_base_url: Url,
}

/// Mock prover settings (`--prover mock`).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Prover: mock")]
pub struct MockProverArgs {
    /// Mock GPS verifier to register facts in (L2 only; uses the Ethereum settlement RPC and
    /// key).
    #[arg(long, env = "MADARA_ORCHESTRATOR_MOCK_VERIFIER_ADDRESS")]
    pub mock_verifier_address: Option<String>,
}

/// Local aggregation settings (`--prover sharp` and `--prover mock` on L2; Atlantic aggregates
/// in its buckets).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Prover: local aggregation")]
pub struct AggregatorArgs {
    /// Runner of the aggregator program: `stand-in` (the SNOS stand-in in aggregator mode;
    /// proves nothing; the mock prover's default) or `external` (`--aggregator-command`;
    /// required with `--prover sharp`).
    #[arg(long, env = "MADARA_ORCHESTRATOR_AGGREGATOR_RUNNER", value_enum)]
    pub aggregator_runner: Option<crate::config::AggregatorRunnerKind>,

    /// Command line (run with `sh -c`) of the external aggregator: it gets the children (SNOS
    /// PIEs and outputs) in `$AGGREGATOR_INPUT_DIR` and writes the aggregator PIE to
    /// `$AGGREGATOR_OUTPUT` and the DA segment to `$AGGREGATOR_OUTPUT_DIR/da_segment.json`
    /// (see docs/provers.md).
    #[arg(long, env = "MADARA_ORCHESTRATOR_AGGREGATOR_COMMAND")]
    pub aggregator_command: Option<String>,

    /// Seconds the external aggregator command may run before it is killed (the job is
    /// retried).
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_AGGREGATOR_COMMAND_TIMEOUT_SECONDS",
        default_value_t = 3600
    )]
    pub aggregator_command_timeout_seconds: u64,
}
