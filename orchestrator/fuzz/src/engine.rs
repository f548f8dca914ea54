//! An embedded orchestrator (SQLite in a temporary directory) for the targets that drive the
//! engine: built once per fuzzing process, with a few jobs and batches to find.
//!
//! The state carries over from one input to the next (a job retried by one request is no longer
//! `Failed` for the next), so a crash may need the inputs before it; the targets drain the
//! queues they fill so that the database stays small.

use std::{path::PathBuf, sync::Arc, sync::OnceLock, time::Duration};

use axum::Router;
use orchestrator::{
    config::{EngineParams, ServerSettings},
    core::client::embedded::{self, EmbeddedOptions},
    server,
    types::{
        batch::{AggregatorBatch, BouncerWeights, SnosBatch, SnosBatchStatus},
        jobs::{JobItem, JobItemUpdates, JobSpecificMetadata, JobStatus, JobType, SnosMetadata},
        queue::QueueType,
        Layer,
    },
    worker::{handler::JobHandlers, trigger::Triggers, Config},
};
use orchestrator_utils::Secret;
use tokio::runtime::Runtime;
use uuid::Uuid;

/// The admin token of the fuzzed server (requests opt in to sending it).
pub const ADMIN_TOKEN: &str = "fuzz-admin-token";

/// The engine of a fuzzing process.
#[derive(Debug)]
pub struct Engine {
    /// Runs the engine's futures.
    pub runtime: Runtime,
    /// The context (embedded tier, no job handlers, no triggers).
    pub config: Arc<Config>,
    /// The HTTP router, admin routes included.
    pub router: Router,
    /// The data dir (its `alerts.jsonl` is truncated now and then).
    pub data_dir: PathBuf,
    /// The seeded jobs: `Created`, `Failed`, `PendingVerification`, `Completed`.
    pub jobs: Vec<Uuid>,
}

/// The engine of this process, built on first use.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(build)
}

fn build() -> Engine {
    let data_dir = std::env::temp_dir().join(format!("orchestrator-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir).expect("fuzz data dir");
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let (config, jobs) = runtime.block_on(async {
        let options = EmbeddedOptions {
            visibility_timeout: Some(Duration::from_secs(30)),
            ..Default::default()
        };
        let clients = embedded::open(&data_dir, &options).await.expect("embedded tier");
        let engine = EngineParams {
            retry_backoff_base: Duration::from_millis(10),
            retry_backoff_max: Duration::from_millis(100),
            ..EngineParams::default()
        };
        let server = ServerSettings {
            admin_enabled: true,
            admin_token: Some(Secret::new(ADMIN_TOKEN.to_owned())),
            rate_limit_per_second: 1_000_000,
            rate_limit_burst: 1_000_000,
            ..ServerSettings::default()
        };
        let config = Arc::new(
            Config::new(Layer::L2, clients, JobHandlers::new(), Triggers::new(), engine)
                .with_server(server),
        );
        let jobs = seed(&config).await;
        (config, jobs)
    });
    let router = server::router(config.clone());
    Engine { runtime, config, router, data_dir, jobs }
}

/// A few jobs (in several statuses) and batches for the routes to find.
async fn seed(config: &Config) -> Vec<Uuid> {
    let db = config.database();
    let mut jobs = Vec::new();
    let statuses = [
        JobStatus::Created,
        JobStatus::Failed,
        JobStatus::PendingVerification,
        JobStatus::Completed,
    ];
    for (index, status) in (1u64..).zip(statuses) {
        let specific = JobSpecificMetadata::Snos(SnosMetadata {
            snos_batch_index: index,
            start_block: index,
            end_block: index,
            num_blocks: 1,
            ..Default::default()
        });
        if let Ok(job) = db.create_job(JobItem::new(JobType::SnosRun, index, specific)).await {
            jobs.push(job.id);
            if status != JobStatus::Created {
                let _ = db.update_job(&job, JobItemUpdates::new().status(status)).await;
            }
        }
    }
    for (index, start, status) in
        [(1u64, 0u64, SnosBatchStatus::Closed), (2, 5, SnosBatchStatus::Open)]
    {
        let mut batch = SnosBatch::new(index, Some(1), start, "0.14.2", BouncerWeights::ZERO);
        batch.end_block = start + 4;
        batch.num_blocks = 5;
        batch.status = status;
        let _ = db.create_snos_batch(batch).await;
    }
    let mut aggregator = AggregatorBatch::new(1, 0, "0.14.2");
    aggregator.end_block = 9;
    aggregator.num_blocks = 10;
    let _ = db.create_aggregator_batch(aggregator).await;
    jobs
}

impl Engine {
    /// `text` with `$JOB1` … `$JOB4` replaced by the ids of the seeded jobs, so that inputs
    /// can name jobs that exist.
    pub fn with_job_ids(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (i, id) in self.jobs.iter().enumerate() {
            out = out.replace(&format!("$JOB{}", i + 1), &id.to_string());
        }
        out
    }

    /// Receives and acks what is visible in `queues` (at most 64 messages each), so the
    /// queues the targets fill stay small.
    pub async fn drain(&self, queues: &[QueueType]) {
        let queue = self.config.queue();
        for q in queues {
            for _ in 0..64 {
                match queue.receive(*q).await {
                    Ok(Some(delivery)) => {
                        let _ = queue.ack(*q, &delivery).await;
                    }
                    _ => break,
                }
            }
        }
    }

    /// Empties the alert file (every alert of every input would otherwise pile up).
    pub fn truncate_alerts(&self) {
        let path = self.data_dir.join("alerts.jsonl");
        if let Ok(file) = std::fs::OpenOptions::new().write(true).open(path) {
            let _ = file.set_len(0);
        }
    }
}
