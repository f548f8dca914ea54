//! Bookkeeping throughput of the job engine on the embedded tier: jobs go through
//! create → process → verify → complete with instant handlers, on real workers (SQLite
//! database and queue in a temp dir). Prints jobs/s and p50/p95 per-stage latencies.
//!
//! `cargo bench -p orchestrator --bench engine` (set `ENGINE_BENCH_JOBS` to change the size).

use orchestrator::worker::Config;
use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use orchestrator::{
    app::Orchestrator,
    config::EngineParams,
    core::client::embedded,
    types::{
        jobs::{
            JobItem, JobSpecificMetadata, JobStatus, JobType, JobVerificationStatus, SnosMetadata,
        },
        queue::QueueParams,
        Layer,
    },
    worker::{
        handler::{Attempts, JobError, JobHandlerTrait, JobHandlers},
        service,
        trigger::Triggers,
    },
};
use uuid::Uuid;

#[derive(Debug, Default)]
struct Stamps {
    created: HashMap<u64, Instant>,
    processed: HashMap<u64, Instant>,
    verified: HashMap<u64, Instant>,
}

#[derive(Debug)]
struct InstantHandler(Arc<Mutex<Stamps>>);

#[async_trait]
impl JobHandlerTrait for InstantHandler {
    fn job_type(&self) -> JobType {
        JobType::SnosRun
    }
    async fn process_job(&self, job: &mut JobItem) -> Result<String, JobError> {
        self.0.lock().unwrap().processed.insert(job.internal_id, Instant::now());
        Ok("x".to_owned())
    }
    async fn verify_job(&self, job: &mut JobItem) -> Result<JobVerificationStatus, JobError> {
        self.0.lock().unwrap().verified.insert(job.internal_id, Instant::now());
        Ok(JobVerificationStatus::Verified)
    }
    fn attempts(&self) -> Attempts {
        Attempts::new(1, 1, Duration::ZERO)
    }
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let jobs: u64 =
        std::env::var("ENGINE_BENCH_JOBS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let queue = QueueParams { max_concurrent_snos_jobs: 10, ..QueueParams::default() };
        let options = embedded::EmbeddedOptions { queue: queue.clone(), ..Default::default() };
        let clients = embedded::open(dir.path(), &options).await.expect("embedded tier");
        let stamps = Arc::new(Mutex::new(Stamps::default()));
        let handlers = JobHandlers::new().with(Arc::new(InstantHandler(stamps.clone())));
        let engine = EngineParams { queue, empty_poll_interval: Duration::from_millis(50), ..EngineParams::default() };
        let config = Arc::new(Config::new(Layer::L2, clients, handlers, Triggers::new(), engine));
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let running = Orchestrator::start_with(config.clone(), addr, None).await.expect("start");

        let started = Instant::now();
        let mut ids: Vec<Uuid> = Vec::new();
        for i in 1..=jobs {
            stamps.lock().unwrap().created.insert(i, Instant::now());
            let specific = JobSpecificMetadata::Snos(SnosMetadata { snos_batch_index: i, ..Default::default() });
            ids.push(service::create_job(&config, JobType::SnosRun, i, specific).await.expect("create").id);
        }
        let created = started.elapsed();
        loop {
            let done = config
                .database()
                .get_jobs_by_types_and_statuses(&[JobType::SnosRun], &[JobStatus::Completed], None, None)
                .await
                .expect("db")
                .len() as u64;
            if done == jobs {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let total = started.elapsed();
        running.stop().await.expect("stop");

        let s = stamps.lock().unwrap();
        let queue_wait: Vec<Duration> = (1..=jobs).map(|i| s.processed[&i] - s.created[&i]).collect();
        let to_verify: Vec<Duration> = (1..=jobs).map(|i| s.verified[&i] - s.processed[&i]).collect();
        println!("engine bookkeeping, embedded tier, {jobs} jobs, instant handlers");
        println!("  create only:      {:>8.0} jobs/s ({created:.2?})", jobs as f64 / created.as_secs_f64());
        println!("  end to end:       {:>8.0} jobs/s ({total:.2?} until all Completed)", jobs as f64 / total.as_secs_f64());
        println!(
            "  created→process:  p50 {:.2?}  p95 {:.2?}  (queue wait + lock)",
            percentile(queue_wait.clone(), 0.5),
            percentile(queue_wait, 0.95)
        );
        println!(
            "  process→verify:   p50 {:.2?}  p95 {:.2?}  (PendingVerification update + verify message)",
            percentile(to_verify.clone(), 0.5),
            percentile(to_verify, 0.95)
        );
    });
}
