//! Batching flags (reference §2.4).

use std::path::PathBuf;

/// How blocks are grouped into SNOS and aggregator batches.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Batching")]
pub struct BatchingArgs {
    /// Age limit in seconds of SNOS and aggregator batches.
    #[arg(long, env = "MADARA_ORCHESTRATOR_MAX_BATCH_TIME_SECONDS")]
    pub max_batch_time_seconds: u64,

    /// Most blocks per aggregator batch.
    #[arg(long, env = "MADARA_ORCHESTRATOR_MAX_BATCH_SIZE", default_value_t = 100)]
    pub max_batch_size: u64,

    /// Blobs per state-update transaction (1..=6).
    #[arg(long, env = "MADARA_ORCHESTRATOR_MAX_NUM_BLOBS", default_value_t = 6)]
    pub max_num_blobs: usize,

    /// Felts kept free in the blobs: `max_blob_size = max_num_blobs * 4096 - buffer`.
    #[arg(long, env = "MADARA_ORCHESTRATOR_BLOB_SIZE_BUFFER", default_value_t = 15)]
    pub blob_size_buffer: usize,

    /// Lock TTL in seconds of the batching workers.
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_BATCHING_LOCK_DURATION_SECONDS",
        default_value_t = 3600
    )]
    pub batching_worker_lock_duration: u64,

    /// Most blocks per SNOS batch.
    #[arg(long, env = "MADARA_ORCHESTRATOR_MAX_BLOCKS_PER_SNOS_BATCH", default_value_t = 10)]
    pub max_blocks_per_snos_batch: u64,

    /// Exactly this many blocks per SNOS batch, overriding every other close rule.
    #[arg(long, env = "MADARA_ORCHESTRATOR_FIXED_BLOCKS_PER_SNOS_BATCH")]
    pub fixed_blocks_per_snos_batch: Option<u64>,

    /// Most SNOS batches per aggregator batch (parsed but unused by the reference).
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_MAX_SNOS_BATCHES_PER_AGGREGATOR_BATCH",
        default_value_t = 50
    )]
    pub max_snos_batches_per_aggregator_batch: u64,

    /// Bound in felts on the aggregator bootloader input.
    #[arg(long, env = "MADARA_ORCHESTRATOR_MAX_AGGREGATOR_INPUT_SIZE", default_value_t = 750_000)]
    pub max_aggregator_input_size: u64,

    /// Proving gas assumed for a block that reports 0.
    #[arg(
        long,
        env = "MADARA_ORCHESTRATOR_DEFAULT_EMPTY_BLOCK_PROVING_GAS",
        default_value_t = 1_500_000
    )]
    pub default_empty_block_proving_gas: u64,

    /// Blocks examined per batching run.
    #[arg(long, env = "MADARA_ORCHESTRATOR_MAX_BATCH_PROCESSING_SIZE", default_value_t = 10)]
    pub max_batch_processing_size: u64,

    /// JSON file with the bouncer weight limits; without it the built-in limits apply. Unlike
    /// the reference, an unreadable or invalid file is an error.
    #[arg(long, env = "MADARA_ORCHESTRATOR_BOUNCER_WEIGHTS_LIMIT_FILE")]
    pub bouncer_weights_limit_file: Option<PathBuf>,
}
