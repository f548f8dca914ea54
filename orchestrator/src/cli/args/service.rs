//! Service and scheduling limits (reference §2.3) and run-wide switches.

/// Block range, concurrency, timeouts, buffers and shutdown.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Service")]
pub struct ServiceArgs {
    /// Highest block to process (inclusive); none processes every block.
    #[arg(long, env = "MADARA_ORCHESTRATOR_MAX_BLOCK_NO_TO_PROCESS")]
    pub max_block_to_process: Option<u64>,

    /// Lowest block to process.
    #[arg(long, env = "MADARA_ORCHESTRATOR_MIN_BLOCK_NO_TO_PROCESS", default_value_t = 0)]
    pub min_block_to_process: u64,

    /// Cap on SNOS jobs in `Created` state (parsed but unused by the reference).
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_MAX_CONCURRENT_CREATED_SNOS_JOBS",
        default_value_t = 200
    )]
    pub max_concurrent_created_snos_jobs: u64,

    /// SNOS processing worker slots (default 5). Unlike the reference, the flag works too.
    #[arg(long, env = "MADARA_ORCHESTRATOR_MAX_CONCURRENT_SNOS_JOBS")]
    pub max_concurrent_snos_jobs: Option<usize>,

    /// Proving processing worker slots (default 10). Unlike the reference, the flag works too.
    #[arg(long, env = "MADARA_ORCHESTRATOR_MAX_CONCURRENT_PROVING_JOBS")]
    pub max_concurrent_proving_jobs: Option<usize>,

    /// Aggregator processing worker slots (default 10). Unlike the reference, the flag works too.
    #[arg(long, env = "MADARA_ORCHESTRATOR_MAX_CONCURRENT_AGGREGATOR_JOBS")]
    pub max_concurrent_aggregator_jobs: Option<usize>,

    /// Seconds after which a SNOS job locked for processing counts as stale.
    #[arg(long, env = "MADARA_ORCHESTRATOR_SNOS_JOB_TIMEOUT_SECONDS", default_value_t = 300)]
    pub snos_job_timeout_seconds: u64,

    /// Seconds after which a proving job locked for processing counts as stale.
    #[arg(long, env = "MADARA_ORCHESTRATOR_PROVING_JOB_TIMEOUT_SECONDS", default_value_t = 300)]
    pub proving_job_timeout_seconds: u64,

    /// Seconds after which a proof-registration job locked for processing counts as stale.
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_PROOF_REGISTRATION_TIMEOUT_SECONDS",
        default_value_t = 300
    )]
    pub proof_registration_timeout_seconds: u64,

    /// Seconds after which a data-submission job locked for processing counts as stale.
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_DATA_SUBMISSION_TIMEOUT_SECONDS",
        default_value_t = 300
    )]
    pub data_submission_timeout_seconds: u64,

    /// Seconds after which a state-transition job locked for processing counts as stale; the
    /// update-state queue visibility covers it.
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_STATE_TRANSITION_TIMEOUT_SECONDS",
        default_value_t = 300
    )]
    pub state_transition_timeout_seconds: u64,

    /// Seconds after which an aggregator job locked for processing counts as stale.
    #[arg(long, env = "MADARA_ORCHESTRATOR_AGGREGATOR_JOB_TIMEOUT_SECONDS", default_value_t = 300)]
    pub aggregator_job_timeout_seconds: u64,

    /// Most SNOS jobs in the window [oldest incomplete, latest].
    #[arg(long, env = "MADARA_ORCHESTRATOR_SNOS_JOB_BUFFER_SIZE", default_value_t = 50)]
    pub snos_job_buffer_size: u64,

    /// Most aggregator jobs in the window [oldest incomplete, latest].
    #[arg(long, env = "MADARA_ORCHESTRATOR_AGGREGATOR_JOB_BUFFER_SIZE", default_value_t = 5)]
    pub aggregator_job_buffer_size: u64,

    /// Admission cap of the priority queues (> 0).
    #[arg(long, env = "MADARA_ORCHESTRATOR_MAX_PRIORITY_QUEUE_SIZE", default_value_t = 20)]
    pub max_priority_queue_size: usize,

    /// Download and store proofs for audit (rejected with the mock prover).
    #[arg(long, env = "MADARA_ORCHESTRATOR_STORE_AUDIT_ARTIFACTS")]
    pub store_audit_artifacts: bool,

    /// Seconds given to in-flight work on shutdown before it is abandoned.
    #[arg(long, env = "MADARA_ORCHESTRATOR_GRACEFUL_SHUTDOWN_TIMEOUT", default_value_t = 120)]
    pub graceful_shutdown_timeout: u64,

    /// Which failed jobs stop job creation: `stage` (ours: only the trigger creating jobs of
    /// the failed job's type) or `global` (the reference: any failed job stops every trigger).
    #[arg(long, env = "MADARA_ORCHESTRATOR_FAILED_JOB_HALT", value_enum, default_value_t = crate::config::FailedJobHalt::Stage)]
    pub failed_job_halt: crate::config::FailedJobHalt,

    /// Seconds between scans for orphaned jobs (locked by a dead worker, or whose message was
    /// lost).
    #[arg(long, env = "MADARA_ORCHESTRATOR_ORPHAN_SCAN_INTERVAL_SECONDS", default_value_t = 60)]
    pub orphan_scan_interval_seconds: u64,

    /// Seconds a job may wait in a status that needs a message (`Created`, `PendingRetry`,
    /// `VerificationFailed`, `PendingVerification`) before the orphan scanner sends its message
    /// again (ours): covers a message held by an instance that died until the queue's
    /// visibility timeout (6 to 18 minutes). Duplicates are harmless.
    #[arg(long, env = "MADARA_ORCHESTRATOR_STALE_MESSAGE_SECONDS", default_value_t = 600)]
    pub stale_message_seconds: u64,

    /// Seconds between verification polls of proving, aggregation, data-submission and
    /// state-transition jobs (ours). Unset keeps each job type's default (30 s for proofs and
    /// aggregations, 60 s for data submission and settlement); lower it on fast local chains.
    #[arg(long, env = "MADARA_ORCHESTRATOR_VERIFICATION_POLL_SECONDS")]
    pub verification_poll_seconds: Option<u64>,

    /// Start without the preflight (ours): `run` otherwise checks the node, the settlement
    /// layer, the prover, the DA RPC, storage, queues and database first, prints one
    /// `preflight:` line per check and exits non-zero on a fatal one.
    #[arg(long, env = "MADARA_ORCHESTRATOR_SKIP_PREFLIGHT", help_heading = "Preflight")]
    pub skip_preflight: bool,

    /// The appchain's chain id (ours), `0x` hex or a short string such as `MADARA_DEVNET`: the
    /// preflight fails when `--madara-rpc-url` answers another `starknet_chainId`.
    #[arg(long, env = "MADARA_ORCHESTRATOR_PREFLIGHT_CHAIN_ID", help_heading = "Preflight")]
    pub preflight_chain_id: Option<String>,

    /// Seconds the preflight keeps checking a dependency that does not answer (ours): a node,
    /// RPC or prover unreachable for a moment (a restart during an outage) is waited for
    /// instead of stopping `run`; a wrong answer is fatal at once. 0: no waiting.
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_PREFLIGHT_WAIT_SECONDS",
        default_value_t = 30,
        help_heading = "Preflight"
    )]
    pub preflight_wait_seconds: u64,

    /// Alert when the oldest block the core contract has not settled is older than this many
    /// seconds (ours; the watchdog reads the settled block on the settlement layer and the tip
    /// on the node, not the database). 0: no alert; the lag is still exported.
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_SETTLEMENT_LAG_ALERT_SECONDS",
        default_value_t = 3600,
        help_heading = "Watchdog"
    )]
    pub settlement_lag_alert_seconds: u64,

    /// Alert when the settlement signer holds less than this many state updates' worth, priced
    /// at the average fee of the updates this process confirmed (ours; an empty balance alerts
    /// before any is confirmed). 0: no alert.
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_SETTLEMENT_MIN_BALANCE_UPDATES",
        default_value_t = 10,
        help_heading = "Watchdog"
    )]
    pub settlement_min_balance_updates: u32,

    /// Alert when a job stays in one open status (Created, LockedForProcessing,
    /// PendingVerification, PendingRetry, VerificationFailed) longer than this many seconds
    /// (ours). 0: no alert.
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_STALL_ALERT_SECONDS",
        default_value_t = 3600,
        help_heading = "Watchdog"
    )]
    pub stall_alert_seconds: u64,

    /// Seconds between two checks of the watchdog (ours).
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_WATCHDOG_INTERVAL_SECONDS",
        default_value_t = 30,
        help_heading = "Watchdog"
    )]
    pub watchdog_interval_seconds: u64,
}
