//! Shared test support: a scripted job handler whose side effects land in a file, and child
//! worker processes (this test binary re-run with `ORCH_TEST_ROLE=worker`) that can be killed
//! with SIGKILL.

pub mod devnet;
pub mod distributed;

use orchestrator::core::client::Clients;
use orchestrator::worker::Config;
use std::{
    fs::OpenOptions,
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use orchestrator::{
    app::Orchestrator,
    config::EngineParams,
    core::client::embedded::{self, EmbeddedOptions},
    types::{
        jobs::{
            JobItem, JobSpecificMetadata, JobStatus, JobType, JobVerificationStatus, SnosMetadata,
        },
        Layer,
    },
    worker::{
        handler::{Attempts, JobError, JobHandlerTrait, JobHandlers},
        trigger::Triggers,
    },
};

/// Visibility timeout of every queue in these tests.
pub const VISIBILITY: Duration = Duration::from_secs(2);

/// A SnosRun handler that sleeps `work` while processing and appends `start`/`done` lines to
/// `log` (`<event> <job id> <pid> <unix ms>`); verification always succeeds.
#[derive(Debug)]
pub struct RecordingHandler {
    pub log: PathBuf,
    pub work: Duration,
}

pub fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default()
}

fn record(log: &Path, event: &str, job: &JobItem) {
    // One short O_APPEND write per line: lines from several processes do not interleave.
    let line = format!("{event} {} {} {}\n", job.id, std::process::id(), now_ms());
    let mut f =
        OpenOptions::new().create(true).append(true).open(log).expect("open side-effect log");
    f.write_all(line.as_bytes()).expect("append side-effect log");
}

#[async_trait]
impl JobHandlerTrait for RecordingHandler {
    fn job_type(&self) -> JobType {
        JobType::SnosRun
    }

    async fn process_job(&self, job: &mut JobItem) -> Result<String, JobError> {
        record(&self.log, "start", job);
        tokio::time::sleep(self.work).await;
        record(&self.log, "done", job);
        Ok(format!("ext-{}", job.internal_id))
    }

    async fn verify_job(&self, _job: &mut JobItem) -> Result<JobVerificationStatus, JobError> {
        Ok(JobVerificationStatus::Verified)
    }

    fn attempts(&self) -> Attempts {
        Attempts::new(1, 3, Duration::ZERO)
    }
}

/// Parsed side-effect log lines: `(event, job id, pid, unix ms)`.
pub fn read_log(log: &Path) -> Vec<(String, String, u32, u128)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .map(|l| {
            let p: Vec<&str> = l.split(' ').collect();
            (p[0].to_owned(), p[1].to_owned(), p[2].parse().unwrap(), p[3].parse().unwrap())
        })
        .collect()
}

pub fn snos(index: u64) -> JobSpecificMetadata {
    JobSpecificMetadata::Snos(SnosMetadata {
        snos_batch_index: index,
        start_block: index,
        end_block: index,
        num_blocks: 1,
        ..Default::default()
    })
}

/// The embedded tier of `dir` with the test visibility timeout.
pub async fn clients(dir: &Path) -> Clients {
    let options = EmbeddedOptions { visibility_timeout: Some(VISIBILITY), ..Default::default() };
    embedded::open(dir, &options).await.expect("embedded tier")
}

/// A context over `clients` with one recording handler.
pub fn config(
    clients: Clients,
    log: PathBuf,
    work: Duration,
    job_timeout: Duration,
) -> Arc<Config> {
    let handlers = JobHandlers::new().with(Arc::new(RecordingHandler { log, work }));
    let engine = EngineParams {
        job_timeouts: [(JobType::SnosRun, job_timeout)].into(),
        orphan_scan_interval: Duration::from_millis(500),
        empty_poll_interval: Duration::from_millis(50),
        retry_backoff_base: Duration::from_millis(100),
        retry_backoff_max: Duration::from_secs(1),
        graceful_shutdown_timeout: Duration::from_secs(5),
        ..EngineParams::default()
    };
    Arc::new(Config::new(Layer::L2, clients, handlers, Triggers::new(), engine))
}

/// A worker process over `dir`: this test binary re-run as `support::child_worker`.
pub struct ChildWorker(Child);

impl ChildWorker {
    pub fn spawn(dir: &Path, work: Duration, job_timeout: Duration) -> Self {
        Self::spawn_with(dir, work, job_timeout, &[])
    }

    /// A worker with extra environment (e.g. the distributed backends of `distributed`).
    pub fn spawn_with(
        dir: &Path,
        work: Duration,
        job_timeout: Duration,
        env: &[(&str, String)],
    ) -> Self {
        let exe = std::env::current_exe().expect("test binary path");
        let child = Command::new(exe)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .args(["support::child_worker", "--exact", "--nocapture", "--test-threads", "1"])
            .env("ORCH_TEST_ROLE", "worker")
            .env("ORCH_TEST_DIR", dir)
            .env("ORCH_TEST_WORK_MS", work.as_millis().to_string())
            .env("ORCH_TEST_JOB_TIMEOUT_MS", job_timeout.as_millis().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child worker");
        Self(child)
    }

    /// SIGKILL: no shutdown, no cleanup.
    pub fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ChildWorker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Entry point of a child worker; a no-op unless run by `ChildWorker::spawn`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_worker() {
    if std::env::var("ORCH_TEST_ROLE").as_deref() != Ok("worker") {
        return;
    }
    let dir = PathBuf::from(std::env::var("ORCH_TEST_DIR").expect("ORCH_TEST_DIR"));
    let ms = |var: &str| Duration::from_millis(std::env::var(var).expect(var).parse().expect("ms"));
    let clients = match (std::env::var("ORCH_TEST_PG_URL"), std::env::var("ORCH_TEST_QUEUE_PREFIX"))
    {
        (Ok(pg), Ok(prefix)) => {
            let endpoint = std::env::var("ORCH_TEST_AWS_ENDPOINT").expect("ORCH_TEST_AWS_ENDPOINT");
            distributed::clients(&dir, &pg, &endpoint, &prefix).await
        }
        _ => clients(&dir).await,
    };
    let config = config(
        clients,
        dir.join("side-effects.log"),
        ms("ORCH_TEST_WORK_MS"),
        ms("ORCH_TEST_JOB_TIMEOUT_MS"),
    );
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let _running = Orchestrator::start_with(config, addr, None).await.expect("start");
    // Run until killed.
    std::future::pending::<()>().await;
}

/// Polls `probe` every 100 ms until it is true or `within` passes.
pub async fn wait_for(within: Duration, what: &str, mut probe: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !probe().await {
        assert!(start.elapsed() < within, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Status of a job, read fresh.
pub async fn status(config: &Config, id: uuid::Uuid) -> JobStatus {
    config.database().get_job_by_id(id).await.expect("db").expect("job").status
}

/// Engine timings for tests: quick empty polls and retry backoffs, a 5 s graceful shutdown.
pub fn fast_engine() -> EngineParams {
    EngineParams {
        empty_poll_interval: Duration::from_millis(20),
        retry_backoff_base: Duration::from_millis(50),
        retry_backoff_max: Duration::from_millis(200),
        graceful_shutdown_timeout: Duration::from_secs(5),
        ..EngineParams::default()
    }
}

/// Sends UpdateState triggers until StateTransition `internal_id` is `want` (within `within`),
/// then returns the job.
pub async fn wait_state_transition(
    config: &Config,
    internal_id: u64,
    want: JobStatus,
    within: Duration,
) -> JobItem {
    let db = config.database();
    wait_for(within, &format!("StateTransition {internal_id} to be {want}"), async || {
        let _ = orchestrator::worker::service::send_trigger(
            config,
            orchestrator::types::queue::WorkerTriggerType::Stage(JobType::StateTransition),
        )
        .await;
        db.get_job_by_internal_id_and_type(internal_id, JobType::StateTransition)
            .await
            .unwrap()
            .is_some_and(|j| j.status == want)
    })
    .await;
    db.get_job_by_internal_id_and_type(internal_id, JobType::StateTransition)
        .await
        .unwrap()
        .unwrap()
}
