//! Bookkeeping throughput of the whole L2 pipeline on the embedded tier: `N` closed SNOS
//! batches (two per aggregator batch) go through SnosRun → ProofCreation → Aggregator →
//! StateTransition with the real stage triggers (`SnosTrigger`, `ProvingTrigger`,
//! `AggregatorTrigger`, `UpdateStateTrigger`), the real engine (SQLite database and queue in a
//! temp dir, event workers, chaining of the next stage's trigger on completion) and instant
//! handlers in place of the node, the prover and the settlement layer: what is measured is the
//! orchestrator's own bookkeeping (triggers, job records, messages, batch statuses).
//!
//! Prints the batches per second end to end, where the time goes per stage (from the jobs'
//! millisecond timestamps: queue wait, processing, verification, hand-off to the next stage)
//! and the cost of the database calls each batch makes. The last line is
//! `throughput: <n> batches/s`.
//!
//! `cargo bench -p orchestrator --bench throughput` (`THROUGHPUT_BATCHES` sets `N`, default
//! 400).

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator::{
    app::Orchestrator,
    config::{choices::ProverKind, EngineParams},
    core::client::{embedded, local_cron::LocalCron, CronClient, DatabaseClient, OutgoingMessage},
    types::{
        batch::{AggregatorBatch, AggregatorBatchStatus, SnosBatch, SnosBatchStatus},
        jobs::{JobItem, JobItemUpdates, JobStatus, JobType, JobVerificationStatus},
        queue::{QueueParams, QueueType},
        Layer,
    },
    worker::{
        handler::{Attempts, JobError, JobHandlerTrait, JobHandlers},
        stages::{
            aggregator::AggregatorTrigger, proving::ProvingTrigger, snos::SnosTrigger,
            state_transition::UpdateStateTrigger,
        },
        trigger::Triggers,
        Config,
    },
};

/// Blocks per SNOS batch, SNOS batches per aggregator batch.
const BLOCKS: u64 = 2;
const SNOS_PER_AGGREGATOR: u64 = 2;
const STAGES: [JobType; 4] =
    [JobType::SnosRun, JobType::ProofCreation, JobType::Aggregator, JobType::StateTransition];

/// A handler that answers at once; the Aggregator one marks its batch ready for the state
/// update on verification, as the real one does (the UpdateState trigger waits for it).
#[derive(Debug)]
struct InstantStage {
    job_type: JobType,
    db: Arc<dyn DatabaseClient>,
}

#[async_trait]
impl JobHandlerTrait for InstantStage {
    fn job_type(&self) -> JobType {
        self.job_type
    }
    async fn process_job(&self, job: &mut JobItem) -> Result<String, JobError> {
        Ok(format!("0x{:x}", job.internal_id))
    }
    async fn verify_job(&self, job: &mut JobItem) -> Result<JobVerificationStatus, JobError> {
        if self.job_type == JobType::Aggregator {
            self.db
                .update_aggregator_batch_status_by_index(
                    job.internal_id,
                    AggregatorBatchStatus::ReadyForStateUpdate,
                )
                .await
                .map_err(|e| JobError::retryable_with("marking the batch ready", e))?;
        }
        Ok(JobVerificationStatus::Verified)
    }
    fn attempts(&self) -> Attempts {
        Attempts::new(1, 1, Duration::ZERO)
    }
}

fn ms(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_microseconds().unwrap_or(0) as f64 / 1000.0
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Closed SNOS batches `1..=n` and closed aggregator batches over them.
async fn seed(db: &dyn DatabaseClient, n: u64) {
    for a in 1..=n.div_ceil(SNOS_PER_AGGREGATOR) {
        let first = (a - 1) * SNOS_PER_AGGREGATOR + 1;
        let last = (a * SNOS_PER_AGGREGATOR).min(n);
        let mut batch = AggregatorBatch::new(a, (first - 1) * BLOCKS, "0.14.2");
        batch.end_block = last * BLOCKS - 1;
        batch.num_blocks = batch.end_block - batch.start_block + 1;
        batch.status = AggregatorBatchStatus::Closed;
        db.create_aggregator_batch(batch).await.expect("aggregator batch");
        for s in first..=last {
            let mut snos =
                SnosBatch::new(s, Some(a), (s - 1) * BLOCKS, "0.14.2", Default::default());
            snos.end_block = s * BLOCKS - 1;
            snos.num_blocks = BLOCKS;
            snos.status = SnosBatchStatus::Closed;
            db.create_snos_batch(snos).await.expect("snos batch");
        }
    }
}

/// Mean time of `f` over `n` calls, in ms.
async fn time_calls<F: AsyncFnMut(u64)>(n: u64, mut f: F) -> f64 {
    let started = Instant::now();
    for i in 0..n {
        f(i).await;
    }
    started.elapsed().as_secs_f64() * 1000.0 / n as f64
}

fn main() {
    let n: u64 =
        std::env::var("THROUGHPUT_BATCHES").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let queue = QueueParams {
            max_concurrent_snos_jobs: 10,
            max_concurrent_proving_jobs: 10,
            max_concurrent_aggregator_jobs: 10,
            ..QueueParams::default()
        };
        let options = embedded::EmbeddedOptions { queue: queue.clone(), ..Default::default() };
        let clients = embedded::open(dir.path(), &options).await.expect("embedded tier");
        let db = clients.database.clone();
        seed(db.as_ref(), n).await;
        let mut handlers = JobHandlers::new();
        for job_type in STAGES {
            handlers = handlers.with(Arc::new(InstantStage { job_type, db: db.clone() }));
        }
        let triggers = Triggers::new()
            .with(Arc::new(SnosTrigger { buffer: n + 1, full_output: false }))
            .with(Arc::new(ProvingTrigger { prover: ProverKind::Mock, store_audit_artifacts: false }))
            .with(Arc::new(AggregatorTrigger { buffer: n + 1, store_audit_artifacts: false }))
            .with(Arc::new(UpdateStateTrigger));
        let engine = EngineParams {
            queue,
            empty_poll_interval: Duration::from_millis(50),
            ..EngineParams::default()
        };
        let config = Arc::new(Config::new(Layer::L2, clients, handlers, triggers, engine));
        let cron: Arc<dyn CronClient> = Arc::new(LocalCron::new(config.queue().clone()));
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let started = Instant::now();
        let running = Orchestrator::start_with(config.clone(), addr, Some((cron, Duration::from_secs(1))))
            .await
            .expect("start");
        let aggregator_batches = n.div_ceil(SNOS_PER_AGGREGATOR);
        loop {
            let settled = db
                .get_latest_job_by_type_and_status(JobType::StateTransition, JobStatus::Completed, None)
                .await
                .expect("db")
                .map_or(0, |j| j.internal_id);
            if settled >= aggregator_batches {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(600), "not settled after 600 s ({settled} of {aggregator_batches})");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let total = started.elapsed();
        running.stop().await.expect("stop");

        let jobs = db.get_jobs_by_types_and_statuses(&STAGES, &[], None, None).await.expect("jobs");
        assert!(jobs.iter().all(|j| j.status == JobStatus::Completed), "a job is not Completed");
        let rate = n as f64 / total.as_secs_f64();
        println!("pipeline bookkeeping, embedded tier (SQLite), L2, {n} SNOS batches in {aggregator_batches} aggregator batches, instant node/prover/settlement");
        println!("  end to end: {total:.2?} from start to the last StateTransition Completed");
        println!("  per stage (p50 / p95 ms; created→locked = queue wait, locked→pending = processing + 2 writes, pending→completed = verification):");
        let completed_at = |j: &JobItem| j.metadata.common.verification_completed_at.unwrap_or(j.updated_at);
        for t in STAGES {
            let of: Vec<&JobItem> = jobs.iter().filter(|j| j.job_type == t).collect();
            let mut wait: Vec<f64> = of.iter().filter_map(|j| Some(ms(j.created_at, j.metadata.common.process_started_at?))).collect();
            let mut work: Vec<f64> = of.iter().filter_map(|j| Some(ms(j.metadata.common.process_started_at?, j.metadata.common.process_completed_at?))).collect();
            let mut verify: Vec<f64> = of.iter().filter_map(|j| Some(ms(j.metadata.common.verification_started_at?, completed_at(j)))).collect();
            println!(
                "    {:<16} {:>5} jobs  created→locked {:>7.1} / {:>7.1}  locked→pending {:>6.1} / {:>6.1}  pending→completed {:>6.1} / {:>6.1}",
                t.to_string(), of.len(),
                percentile(&mut wait.clone(), 0.5), percentile(&mut wait, 0.95),
                percentile(&mut work.clone(), 0.5), percentile(&mut work, 0.95),
                percentile(&mut verify.clone(), 0.5), percentile(&mut verify, 0.95),
            );
        }
        // Hand-offs: predecessor Completed → successor created (trigger) and → locked.
        let find = |t: JobType, id: u64| jobs.iter().find(|j| j.job_type == t && j.internal_id == id);
        let mut edges: Vec<(&str, Vec<f64>, Vec<f64>)> = Vec::new();
        let mut push = |name: &'static str, from: Option<&JobItem>, to: Option<&JobItem>| {
            let (Some(from), Some(to)) = (from, to) else { return };
            let done = completed_at(from);
            let entry = match edges.iter_mut().position(|e| e.0 == name) {
                Some(i) => &mut edges[i],
                None => { edges.push((name, Vec::new(), Vec::new())); edges.last_mut().expect("pushed") }
            };
            entry.1.push(ms(done, to.created_at));
            if let Some(locked) = to.metadata.common.process_started_at {
                entry.2.push(ms(done, locked));
            }
        };
        for s in 1..=n {
            push("SnosRun→ProofCreation", find(JobType::SnosRun, s), find(JobType::ProofCreation, s));
        }
        for a in 1..=aggregator_batches {
            let last_proof = (((a - 1) * SNOS_PER_AGGREGATOR + 1)..=(a * SNOS_PER_AGGREGATOR).min(n))
                .filter_map(|s| find(JobType::ProofCreation, s))
                .max_by_key(|j| completed_at(j));
            push("ProofCreation→Aggregator", last_proof, find(JobType::Aggregator, a));
            let agg = find(JobType::Aggregator, a);
            let prev = a.checked_sub(1).and_then(|p| find(JobType::StateTransition, p));
            let from = match (agg, prev) {
                (Some(x), Some(y)) => Some(if completed_at(x) >= completed_at(y) { x } else { y }),
                (x, y) => x.or(y),
            };
            push("→StateTransition", from, find(JobType::StateTransition, a));
        }
        println!("  hand-offs (p50 / p95 ms; from the predecessor Completed: → successor created, → locked):");
        for (name, mut created, mut locked) in edges {
            println!(
                "    {name:<26} created {:>7.1} / {:>7.1}  locked {:>7.1} / {:>7.1}",
                percentile(&mut created.clone(), 0.5), percentile(&mut created, 0.95),
                percentile(&mut locked.clone(), 0.5), percentile(&mut locked, 0.95),
            );
        }

        // The cost of the database calls the pipeline makes, on the same (now full) database.
        let probe = db.get_job_by_internal_id_and_type(1, JobType::SnosRun).await.expect("db").expect("job");
        let get = time_calls(200, async |_| { db.get_job_by_id(probe.id).await.expect("get"); }).await;
        let mut current = probe.clone();
        let update = time_calls(200, async |_| {
            let mut m = current.metadata.clone();
            m.common.verification_retry_attempt_no += 1;
            current = db.update_job(&current, JobItemUpdates::new().metadata(m)).await.expect("update");
        }).await;
        let latest = time_calls(200, async |_| {
            db.get_latest_job_by_type_and_status(JobType::StateTransition, JobStatus::Completed, None).await.expect("latest");
        }).await;
        let without = time_calls(50, async |_| {
            db.get_snos_batches_without_jobs(SnosBatchStatus::Closed, 10, None, 0).await.expect("without jobs");
        }).await;
        let queue = config.queue().clone();
        let message = time_calls(200, async |_| {
            let q = QueueType::JobProcessing(JobType::SnosRun);
            queue.send(q, OutgoingMessage::new("{}")).await.expect("send");
            let delivery = queue.receive(q).await.expect("receive").expect("a message");
            queue.ack(q, &delivery).await.expect("ack");
        })
        .await;
        println!("  database calls (SQLite, mean ms): get_job_by_id {get:.3}, update_job {update:.3}, latest_job_by_type_and_status {latest:.3}, snos_batches_without_jobs {without:.3}");
        println!("  queue (SQLite queue, mean ms): one message sent, received and acknowledged {message:.3}");
        // Per SNOS batch: 3 jobs (SnosRun, ProofCreation, ½ Aggregator, ½ StateTransition),
        // each created and updated 3 times, each with a processing and a verification message,
        // and one chained trigger message per completion.
        println!(
            "  per SNOS batch: 12 job writes + 6 job messages + 3 trigger messages ≈ {:.1} ms of database and queue work at the costs above ({:.0} batches/s if that were all, on one core)",
            12.0 * update + 9.0 * message,
            1000.0 / (12.0 * update + 9.0 * message)
        );
        println!("throughput: {rate:.0} batches/s");
    });
}
