//! Flags of the retries of upstream calls (the reference's PR #1245).

/// How calls to the Madara node (JSON-RPC and feeder gateway) and to the prover are retried
/// when the path to them fails: transport errors, 429 and 5xx, with exponential backoff and
/// jitter. JSON-RPC errors and the prover's 4xx answers are not retried.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Upstream retries")]
pub struct UpstreamArgs {
    /// Attempts of each upstream call, the first included (1 = no retry).
    #[arg(long, env = "MADARA_ORCHESTRATOR_UPSTREAM_READ_MAX_ATTEMPTS", default_value_t = 3)]
    pub upstream_read_max_attempts: u32,

    /// Total time of one upstream read, in seconds, attempts and waits included (uploads to
    /// the prover keep their own timeout).
    #[arg(long, env = "MADARA_ORCHESTRATOR_UPSTREAM_READ_TIMEOUT_SECS", default_value_t = 30)]
    pub upstream_read_timeout_secs: u64,
}
