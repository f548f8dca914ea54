//! Typed parameters of `run` and `setup`. The command line is turned into them (and validated)
//! in `cli::params`; nothing here knows about flags' parsing.
//!
//! Every flag lands in a field here, including flags whose backend is not built yet: the
//! caller decides what to do with them, nothing is silently dropped.

use std::{path::PathBuf, time::Duration};

use alloy::primitives::Address;
use orchestrator_utils::Secret;
use starknet_types_core::felt::Felt;
use url::Url;

use super::choices::{
    AtlanticCairoVm, AtlanticNetwork, AtlanticQueryStep, AtlanticSharpProver, CairoLayout,
    EventBridgeType, ProofSettlementLayer, ProverKind, SnosRunnerKind,
};
use crate::types::{batch::BouncerWeights, jobs::JobType, queue::QueueParams, Layer};

/// Felts per blob (EIP-4844).
pub const FELTS_PER_BLOB: usize = 4096;
/// Most blobs one transaction may carry.
pub const MAX_BLOBS_PER_TX: usize = 6;
/// Finality poll interval of Starknet settlement when none is given.
pub const DEFAULT_STARKNET_FINALITY_RETRY_WAIT_SECS: u64 = 6;

/// Everything `orchestrator run` needs.
#[derive(Debug, Clone)]
pub struct RunParams {
    /// The appchain's layer.
    pub layer: Layer,
    /// Backends of the infrastructure capabilities.
    pub infra: InfraParams,
    /// HTTP server.
    pub server: ServerParams,
    /// Block range, timeouts, buffers, shutdown.
    pub service: ServiceParams,
    /// Batching limits.
    pub batching: BatchingParams,
    /// Starknet OS run.
    pub snos: SnosParams,
    /// The prover.
    pub prover: ProverParams,
    /// The local aggregation of `--prover sharp` and `--prover mock` on L2.
    pub aggregator: AggregatorParams,
    /// The settlement layer.
    pub settlement: SettlementParams,
    /// The DA layer.
    pub da: DaParams,
    /// The Madara node.
    pub madara: MadaraParams,
    /// Retries of calls to the node (JSON-RPC, feeder gateway) and the prover
    /// (`--upstream-read-max-attempts`, `--upstream-read-timeout-secs`).
    pub upstream: orchestrator_utils::UpstreamRetry,
    /// Telemetry export.
    pub otel: OtelParams,
    /// Queue settings from the concurrency and timeout flags (the flags work, not only env).
    pub queue: QueueParams,
    /// Shadow mode (`--shadow`): compare with the live operator instead of sending.
    pub shadow: Option<crate::shadow::ShadowParams>,
}

/// Everything `orchestrator setup` needs.
#[derive(Debug, Clone)]
pub struct SetupParams {
    /// The appchain's layer (selects queues and triggers).
    pub layer: Layer,
    /// What to provision.
    pub infra: InfraParams,
    /// How long to wait for resources to become ready.
    pub timeout: Duration,
    /// Time between readiness polls.
    pub poll_interval: Duration,
    /// Print the plan without changing anything (`--dry-run`).
    pub dry_run: bool,
}

/// The backend of each infrastructure capability. Capabilities are chosen independently:
/// any of them may be embedded while others are distributed.
#[derive(Debug, Clone)]
pub struct InfraParams {
    /// Directory of the embedded tier (used by every embedded backend).
    pub data_dir: PathBuf,
    /// AWS provider settings, when `--aws` is given.
    pub aws: Option<AwsParams>,
    /// Job database and locks.
    pub database: DatabaseBackend,
    /// Job queues.
    pub queue: QueueBackend,
    /// Artifact storage.
    pub storage: StorageBackend,
    /// Alerts.
    pub alerts: AlertBackend,
    /// Worker-trigger cron.
    pub cron: CronBackend,
}

impl InfraParams {
    /// Whether every capability uses the embedded tier.
    pub fn is_fully_embedded(&self) -> bool {
        matches!(self.database, DatabaseBackend::Embedded)
            && matches!(self.queue, QueueBackend::Embedded)
            && matches!(self.storage, StorageBackend::Embedded { .. })
            && matches!(self.alerts, AlertBackend::Embedded { .. })
            && matches!(self.cron, CronBackend::Embedded { .. })
    }
}

/// AWS provider settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsParams {
    /// Prefix of resource names (`--aws-prefix`).
    pub prefix: Option<String>,
    /// Connect timeout of AWS calls (`--aws-connect-timeout-secs`); `None`: 5 s.
    pub connect_timeout: Option<Duration>,
    /// Credentials load timeout (`--aws-identity-load-timeout-secs`); `None`: the SDK's.
    pub identity_load_timeout: Option<Duration>,
}

/// Job database backend.
#[derive(Debug, Clone)]
pub enum DatabaseBackend {
    /// SQLite file under the data directory.
    Embedded,
    /// MongoDB (`--mongodb`).
    Mongo {
        /// Connection URL (may carry a password).
        url: Secret<String>,
        /// Database name.
        name: String,
    },
    /// PostgreSQL (`--postgres`, our addition).
    Postgres {
        /// Connection URL (may carry a password).
        url: Secret<String>,
    },
}

/// Queue backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueBackend {
    /// Durable SQLite-backed queue under the data directory.
    Embedded,
    /// AWS SQS (`--aws-sqs`).
    Sqs {
        /// Name template (`{}` = queue type) or ARN.
        identifier: String,
        /// Resource-name prefix (`--aws-prefix`).
        prefix: Option<String>,
    },
}

/// Artifact storage backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageBackend {
    /// Directory under the data directory.
    Embedded {
        /// Days after which artifacts tagged for cleanup expire (`--storage-expiration-days`).
        expiration_days: u32,
        /// Days StorageCleanup keeps tagged artifacts before deleting them
        /// (`--storage-retention-days`, default `expiration_days`).
        retention_days: u32,
    },
    /// AWS S3 (`--aws-s3`).
    S3 {
        /// Bucket name or ARN.
        bucket_identifier: String,
        /// Resource-name prefix (`--aws-prefix`).
        prefix: Option<String>,
        /// Lifecycle expiry of tagged objects.
        expiration_days: u32,
    },
}

/// Alert backend.
#[derive(Debug, Clone)]
pub enum AlertBackend {
    /// Log and alert file under the data directory, optionally posted to a webhook.
    Embedded {
        /// `--alert-webhook-url` (our addition).
        webhook_url: Option<Secret<Url>>,
    },
    /// AWS SNS (`--aws-sns`).
    Sns {
        /// Topic name or ARN.
        topic_identifier: String,
        /// Resource-name prefix (`--aws-prefix`).
        prefix: Option<String>,
    },
}

/// Worker-trigger cron backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CronBackend {
    /// In-process ticker sending the trigger messages.
    Embedded {
        /// Time between triggers.
        interval: Duration,
    },
    /// AWS EventBridge sends the triggers to the SQS worker-trigger queue. On `run` this is
    /// selected by `--aws-event-bridge` or implied by `--aws-sqs` (as in the reference, whose
    /// `run` relies on the EventBridge that `setup` created); `run` then starts no ticker.
    EventBridge {
        /// Rule or Scheduler; required on `setup`, informational on `run`.
        kind: Option<EventBridgeType>,
        /// Time between triggers.
        interval: Duration,
        /// Resource-name prefix (`--aws-prefix`).
        prefix: Option<String>,
    },
}

/// HTTP server settings.
#[derive(Debug, Clone)]
pub struct ServerParams {
    /// Bind address.
    pub host: String,
    /// Port (0 picks a free port).
    pub port: u16,
    /// Whether `/admin/*` is mounted.
    pub admin_enabled: bool,
    /// Bearer token of `/admin/*` and of the job routes that change state (our addition).
    pub admin_token: Option<Secret<String>>,
    /// Job routes that change state stay open even with a token (the reference's behaviour).
    pub open_job_actions: bool,
}

/// Service and scheduling limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceParams {
    /// Lowest block processed.
    pub min_block_to_process: u64,
    /// Highest block processed (inclusive), if bounded.
    pub max_block_to_process: Option<u64>,
    /// Cap on SNOS jobs in `Created` state (unused by the reference).
    pub max_concurrent_created_snos_jobs: u64,
    /// Staleness thresholds of jobs locked for processing.
    pub timeouts: JobTimeouts,
    /// Most SNOS jobs in the window [oldest incomplete, latest].
    pub snos_job_buffer_size: u64,
    /// Most aggregator jobs in that window.
    pub aggregator_job_buffer_size: u64,
    /// Admission cap of the priority queues (> 0).
    pub max_priority_queue_size: usize,
    /// Store proofs for audit.
    pub store_audit_artifacts: bool,
    /// Time given to in-flight work on shutdown.
    pub graceful_shutdown_timeout: Duration,
    /// Which failed jobs halt which triggers.
    pub failed_job_halt: crate::config::FailedJobHalt,
    /// Time between orphan scans.
    pub orphan_scan_interval: Duration,
    /// How long a waiting job may go without its message before the scanner sends it again.
    pub stale_message_after: Duration,
    /// Verification poll delay for every job type that polls an external service, when set.
    pub verification_poll: Option<Duration>,
    /// Start without the preflight checks (`--skip-preflight`).
    pub skip_preflight: bool,
    /// How long the preflight waits for an unreachable dependency (`--preflight-wait-seconds`).
    pub preflight_wait: Duration,
    /// The chain id the node must answer (`--preflight-chain-id`).
    pub preflight_chain_id: Option<Felt>,
    /// The watchdog (`--settlement-lag-alert-seconds`, `--settlement-min-balance-updates`,
    /// `--stall-alert-seconds`, `--watchdog-interval-seconds`).
    pub watch: crate::worker::watch::WatchParams,
}

/// Per-job-type staleness thresholds, from the `--*-timeout-seconds` flags. A job type without
/// an entry (a new type that has no flag of its own) gets the engine's default.
pub type JobTimeouts = std::collections::HashMap<JobType, Duration>;

/// Batching limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchingParams {
    /// Age limit of SNOS and aggregator batches.
    pub max_batch_time: Duration,
    /// Most blocks per aggregator batch.
    pub max_batch_size: u64,
    /// Blobs per state-update transaction (1..=6).
    pub max_num_blobs: usize,
    /// Felts kept free in the blobs.
    pub blob_size_buffer: usize,
    /// Lock TTL of the batching workers.
    pub batching_worker_lock_duration: Duration,
    /// Most blocks per SNOS batch.
    pub max_blocks_per_snos_batch: u64,
    /// Fixed SNOS batch size overriding every other close rule.
    pub fixed_blocks_per_snos_batch: Option<u64>,
    /// Most SNOS batches per aggregator batch (unused by the reference).
    pub max_snos_batches_per_aggregator_batch: u64,
    /// Bound in felts on the aggregator bootloader input.
    pub max_aggregator_input_size: u64,
    /// Proving gas assumed for a block that reports 0.
    pub default_empty_block_proving_gas: u64,
    /// Blocks examined per batching run.
    pub max_batch_processing_size: u64,
    /// Bouncer weight limits (from the file, or the built-in defaults).
    pub bouncer_weights_limit: BouncerWeights,
    /// The file the limits came from, if any.
    pub bouncer_weights_limit_file: Option<PathBuf>,
}

impl BatchingParams {
    /// Felts that fit in one state update: `max_num_blobs * 4096 - blob_size_buffer`
    /// (validation guarantees it is positive).
    pub fn max_blob_size(&self) -> usize {
        self.max_num_blobs * FELTS_PER_BLOB - self.blob_size_buffer
    }
}

/// Starknet OS run settings.
#[derive(Debug, Clone)]
pub struct SnosParams {
    /// RPC of the SNOS run.
    pub rpc_url: Url,
    /// RPC used on retries.
    pub backup_rpc_url: Option<Url>,
    /// `--snos-full-output`.
    pub full_output: bool,
    /// File overriding the versioned constants (absolute path), and its parsed JSON.
    pub versioned_constants: Option<VersionedConstants>,
    /// The chain's STRK fee token (`--snos-strk-fee-token-address`).
    pub strk_fee_token_address: Felt,
    /// The chain's ETH fee token (`--snos-eth-fee-token-address`).
    pub eth_fee_token_address: Felt,
    /// Layout of the SNOS run.
    pub layout: CairoLayout,
    /// Layout sent to the prover.
    pub prover_layout: CairoLayout,
    /// DA encryption public keys.
    pub da_public_keys: Vec<Felt>,
    /// Which runner runs the OS (`--snos-runner`).
    pub runner: SnosRunnerKind,
    /// Command line of the external runner (`--snos-command`); required with `external`.
    pub command: Option<String>,
    /// Longest run of the external command (`--snos-command-timeout-seconds`).
    pub command_timeout: Duration,
}

/// A versioned-constants override file.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedConstants {
    /// The file, absolute (the external SNOS command runs in a directory of its own).
    pub path: PathBuf,
    /// Its JSON content.
    pub json: serde_json::Value,
}

/// The prover and its settings.
#[derive(Debug, Clone)]
pub enum ProverParams {
    /// SHARP (L2 only).
    Sharp(SharpParams),
    /// Atlantic.
    Atlantic(AtlanticParams),
    /// The mock prover.
    Mock(MockProverParams),
}

impl ProverParams {
    /// Which prover this is.
    pub fn kind(&self) -> ProverKind {
        match self {
            Self::Sharp(_) => ProverKind::Sharp,
            Self::Atlantic(_) => ProverKind::Atlantic,
            Self::Mock(_) => ProverKind::Mock,
        }
    }
}

/// SHARP settings.
#[derive(Debug, Clone)]
pub struct SharpParams {
    /// Customer id.
    pub customer_id: String,
    /// Gateway URL.
    pub url: Url,
    /// mTLS material, read at start-up.
    pub certificates: SharpCertificates,
    /// L1 RPC for fact checks.
    pub rpc_node_url: Url,
    /// GPS verifier (fact registry).
    pub gps_verifier_contract_address: Address,
    /// Where facts are registered.
    pub settlement_layer: ProofSettlementLayer,
}

/// SHARP mTLS material (PEM).
#[derive(Debug, Clone)]
pub struct SharpCertificates {
    /// Client certificate file and content.
    pub user_crt_file: PathBuf,
    /// Client certificate.
    pub user_crt: String,
    /// Client key file.
    pub user_key_file: PathBuf,
    /// Client key.
    pub user_key: Secret<String>,
    /// Server CA certificate file.
    pub server_crt_file: PathBuf,
    /// Server CA certificate.
    pub server_crt: String,
}

/// Atlantic settings.
#[derive(Debug, Clone)]
pub struct AtlanticParams {
    /// API key (header `api-key`).
    pub api_key: Secret<String>,
    /// Service URL.
    pub service_url: Url,
    /// Fact-check RPC; `None` only with a mocked fact hash.
    pub rpc_node_url: Option<Url>,
    /// Mocked proofs (`--atlantic-mock-fact-hash true`): no fact checker.
    pub mock_fact_hash: bool,
    /// Prover type (validated by the reference but otherwise unused).
    pub prover_type: Option<String>,
    /// Where facts are registered.
    pub settlement_layer: ProofSettlementLayer,
    /// Verifier (fact registry) contract.
    pub verifier_contract_address: Felt,
    /// Program hash of the Cairo 0 verifier (required on L3).
    pub cairo_verifier_program_hash: Option<Felt>,
    /// Cairo VM.
    pub cairo_vm: AtlanticCairoVm,
    /// Last query step.
    pub result: AtlanticQueryStep,
    /// Network.
    pub network: AtlanticNetwork,
    /// SHARP prover behind Atlantic.
    pub sharp_prover: AtlanticSharpProver,
    /// Base URL of the artifacts.
    pub artifacts_base_url: Url,
    /// Start the embedded mock Atlantic server (`--mock-atlantic-server`).
    pub mock_server: bool,
}

/// Mock prover settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockProverParams {
    /// Mock GPS verifier to register facts in (L2 only).
    pub verifier_address: Option<Address>,
}

/// Settlement layer.
#[derive(Debug, Clone)]
pub enum SettlementParams {
    /// Starknet core contract on Ethereum.
    Ethereum(EthereumSettlementParams),
    /// Cairo core contract on Starknet.
    Starknet(StarknetSettlementParams),
}

/// Settlement on Ethereum.
#[derive(Debug, Clone)]
pub struct EthereumSettlementParams {
    /// RPC URL (may carry an API key).
    pub rpc_url: Secret<Url>,
    /// Endpoints of the same chain to fail over to (`--ethereum-rpc-url a,b,…` after the
    /// first).
    pub fallback_rpc_urls: Vec<Secret<Url>>,
    /// Who signs the state updates: the private key or an AWS KMS key.
    pub signer: EthereumSignerParams,
    /// Starknet core contract.
    pub l1_core_contract_address: Address,
    /// Operator address.
    pub starknet_operator_address: Address,
    /// Receipt poll interval.
    pub finality_retry_wait: Duration,
    /// Wait before a same-nonce fee bump.
    pub tx_confirmation_timeout: Duration,
    /// Most fee bumps.
    pub max_fee_bumps: u32,
    /// Cap on the fee liability of one state update, in wei.
    pub l2_state_update_max_fee_wei: u128,
    /// EIP-4844 blob proofs instead of EIP-7594 cell proofs.
    pub disable_peerdas: bool,
}

/// The signer of the Ethereum operator account: exactly one of `--ethereum-private-key` and
/// `--ethereum-kms-key-id`.
#[derive(Debug, Clone)]
pub enum EthereumSignerParams {
    /// `--ethereum-private-key` (32 bytes of hex).
    PrivateKey(Secret<String>),
    /// `--ethereum-kms-key-id`: an AWS KMS `ECC_SECG_P256K1` sign-only key (id, ARN or alias);
    /// region, credentials and endpoint come from the AWS environment.
    Kms {
        /// The key id, ARN or alias (not secret).
        key_id: String,
    },
}

impl EthereumSignerParams {
    /// The private key, when the operator signs with one (not with KMS).
    pub fn private_key(&self) -> Option<&Secret<String>> {
        match self {
            Self::PrivateKey(key) => Some(key),
            Self::Kms { .. } => None,
        }
    }
}

/// Settlement on Starknet.
#[derive(Debug, Clone)]
pub struct StarknetSettlementParams {
    /// RPC URL (may carry an API key).
    pub rpc_url: Secret<Url>,
    /// Endpoints of the same chain to fail over to (`--starknet-rpc-url a,b,…` after the
    /// first).
    pub fallback_rpc_urls: Vec<Secret<Url>>,
    /// Operator private key.
    pub private_key: Secret<String>,
    /// Operator account.
    pub account_address: Felt,
    /// Cairo core contract.
    pub cairo_core_contract_address: Felt,
    /// Finality poll interval.
    pub finality_retry_wait: Duration,
}

/// DA layer.
#[derive(Debug, Clone)]
pub enum DaParams {
    /// Blobs on Ethereum.
    Ethereum {
        /// RPC URL (may carry an API key).
        rpc_url: Secret<Url>,
    },
    /// Starknet.
    Starknet {
        /// RPC URL (may carry an API key).
        rpc_url: Secret<Url>,
    },
}

/// The Madara node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadaraParams {
    /// JSON-RPC URL.
    pub rpc_url: Url,
    /// Feeder gateway URL (defaults to the RPC URL).
    pub feeder_gateway_url: Url,
    /// Reference node for replay bounds.
    pub replay_bounds_rpc_url: Option<Url>,
}

/// Telemetry export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtelParams {
    /// Service name.
    pub service_name: String,
    /// OTLP gRPC endpoint; `None` disables export.
    pub collector_endpoint: Option<Url>,
}

/// Which local aggregator runs the aggregator program (`--aggregator-runner`; L2 with
/// `--prover sharp` or `--prover mock`: Atlantic aggregates in its buckets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, strum::Display)]
#[strum(serialize_all = "kebab-case")]
pub enum AggregatorRunnerKind {
    /// The SNOS stand-in in aggregator mode, in process (the mock prover's default). Proves
    /// nothing.
    #[default]
    StandIn,
    /// The command of `--aggregator-command` (`docs/provers.md`, "External aggregator").
    External,
}

/// The local aggregation (`--aggregator-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregatorParams {
    /// Which aggregator runs.
    pub runner: AggregatorRunnerKind,
    /// The command of the external aggregator (required with `external`).
    pub command: Option<String>,
    /// How long the command may run before it is killed (the job is retried).
    pub command_timeout: Duration,
}
