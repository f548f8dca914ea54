//! SIGTERM hands the work in flight back (issue 17, item 3; the reference's PR #1221): a job
//! being processed when the orchestrator is told to stop returns to its pre-lock status and its
//! message is visible again at once, so an instance started right after continues it within
//! seconds — not after the 300 s lock timeout, nor after the queue's 300 s visibility timeout —
//! and the work completes once.
//!
//! The instances are this test binary re-run as `sigterm::sigterm_worker` (a real process with
//! the real signal handling of `orchestrator run`: `Orchestrator::run_until_signal`), killed
//! with a real SIGTERM. They share one embedded tier (SQLite database and queue) in a temporary
//! directory; the handlers are stand-ins whose side effects land in a log file.

use std::{
    fs::OpenOptions,
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use orchestrator::{
    app::Orchestrator,
    config::EngineParams,
    core::client::{
        embedded::{self, EmbeddedOptions},
        Clients,
    },
    types::{
        jobs::{
            JobItem, JobItemUpdates, JobSpecificMetadata, JobStatus, JobType,
            JobVerificationStatus, StateUpdateMetadata,
        },
        queue::{JobAction, QueueType},
        Layer,
    },
    worker::{
        handler::{Attempts, JobError, JobHandlerTrait, JobHandlers},
        service::{self, HANDED_BACK_REASON},
        trigger::Triggers,
        Config,
    },
};

use crate::support::{now_ms, read_log, snos, status, wait_for};

/// Role of the child processes.
const ROLE: &str = "sigterm-worker";
/// Lock timeout of every job type here: a job left locked would wait this long.
const LOCK_TIMEOUT: Duration = Duration::from_secs(300);
/// Visibility timeout of the queues here: a message left in flight would wait this long.
const VISIBILITY: Duration = Duration::from_secs(300);
/// Graceful shutdown timeout of the instances: far above how long a hand-back takes, far below
/// the handlers' work, so an instance that waited for its handler would exit late and non-zero.
const GRACEFUL: Duration = Duration::from_secs(60);
/// How long the first instance's handler would work if it were not cut off.
const LONG_WORK: Duration = Duration::from_secs(120);
/// The bound on "within seconds": generous for a loaded machine, far below the timeouts above.
const PROMPTLY: Duration = Duration::from_secs(45);

/// A handler of `job_type` that works `process` then `verify`, logging `start`/`done` and
/// `verify`/`verified` lines (`<event> <job id> <pid> <unix ms>`) to `log`.
#[derive(Debug)]
struct SlowHandler {
    job_type: JobType,
    log: PathBuf,
    process: Duration,
    verify: Duration,
}

fn record(log: &Path, event: &str, job: &JobItem) {
    let line = format!("{event} {} {} {}\n", job.id, std::process::id(), now_ms());
    let mut f = OpenOptions::new().create(true).append(true).open(log).expect("open the log");
    f.write_all(line.as_bytes()).expect("append to the log");
}

#[async_trait]
impl JobHandlerTrait for SlowHandler {
    fn job_type(&self) -> JobType {
        self.job_type
    }

    async fn process_job(&self, job: &mut JobItem) -> Result<String, JobError> {
        record(&self.log, "start", job);
        tokio::time::sleep(self.process).await;
        record(&self.log, "done", job);
        Ok(format!("ext-{}", job.internal_id))
    }

    async fn verify_job(&self, job: &mut JobItem) -> Result<JobVerificationStatus, JobError> {
        record(&self.log, "verify", job);
        tokio::time::sleep(self.verify).await;
        record(&self.log, "verified", job);
        Ok(JobVerificationStatus::Verified)
    }

    fn attempts(&self) -> Attempts {
        Attempts::new(1, 3, Duration::ZERO)
    }
}

/// The embedded tier of `dir`, with long visibility timeouts.
async fn clients(dir: &Path) -> Clients {
    let options = EmbeddedOptions { visibility_timeout: Some(VISIBILITY), ..Default::default() };
    embedded::open(dir, &options).await.expect("embedded tier")
}

/// A context with a SnosRun and a StateTransition [`SlowHandler`].
fn config(clients: Clients, log: &Path, process: Duration, verify: Duration) -> Arc<Config> {
    let handler = |job_type| {
        Arc::new(SlowHandler { job_type, log: log.to_owned(), process, verify })
            as Arc<dyn JobHandlerTrait>
    };
    let handlers =
        JobHandlers::new().with(handler(JobType::SnosRun)).with(handler(JobType::StateTransition));
    let engine = EngineParams {
        job_timeouts: [(JobType::SnosRun, LOCK_TIMEOUT), (JobType::StateTransition, LOCK_TIMEOUT)]
            .into(),
        orphan_scan_interval: Duration::from_millis(500),
        empty_poll_interval: Duration::from_millis(50),
        retry_backoff_base: Duration::from_millis(100),
        retry_backoff_max: Duration::from_secs(1),
        graceful_shutdown_timeout: GRACEFUL,
        ..EngineParams::default()
    };
    Arc::new(Config::new(Layer::L2, clients, handlers, Triggers::new(), engine))
}

fn metadata(job_type: JobType, index: u64) -> JobSpecificMetadata {
    match job_type {
        JobType::StateTransition => {
            JobSpecificMetadata::StateUpdate(StateUpdateMetadata::for_batch(index))
        }
        _ => snos(index),
    }
}

/// An orchestrator process over `dir` (this binary re-run as `sigterm::sigterm_worker`).
struct Instance(Child);

impl Instance {
    fn start(dir: &Path, process: Duration, verify: Duration) -> Self {
        let exe = std::env::current_exe().expect("test binary path");
        let child = Command::new(exe)
            .args(["sigterm::sigterm_worker", "--exact", "--nocapture", "--test-threads", "1"])
            .env("ORCH_TEST_ROLE", ROLE)
            .env("ORCH_TEST_DIR", dir)
            .env("ORCH_TEST_PROCESS_MS", process.as_millis().to_string())
            .env("ORCH_TEST_VERIFY_MS", verify.as_millis().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn an instance");
        Self(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Sends SIGTERM, as a container runtime stopping the process does.
    fn sigterm(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {}", self.pid());
    }

    /// Waits for the process to exit, at most `within`.
    async fn exit(&mut self, within: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().expect("wait for the instance") {
                return status;
            }
            assert!(started.elapsed() < within, "the instance did not exit within {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Entry point of an instance; a no-op unless run by [`Instance::start`]. Runs until SIGTERM,
/// then stops the way `orchestrator run` does, and fails (non-zero exit) if the stop did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_worker() {
    if std::env::var("ORCH_TEST_ROLE").as_deref() != Ok(ROLE) {
        return;
    }
    let dir = PathBuf::from(std::env::var("ORCH_TEST_DIR").expect("ORCH_TEST_DIR"));
    let ms = |var: &str| Duration::from_millis(std::env::var(var).expect(var).parse().expect("ms"));
    let config = config(
        clients(&dir).await,
        &dir.join("side-effects.log"),
        ms("ORCH_TEST_PROCESS_MS"),
        ms("ORCH_TEST_VERIFY_MS"),
    );
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let orchestrator = Orchestrator::start_with(config, addr, None).await.expect("start");
    orchestrator.run_until_signal().await.expect("a clean stop within the graceful timeout");
}

/// `(event, pid)` of the log lines of `job`.
fn events(log: &Path, job: &JobItem) -> Vec<(String, u32)> {
    let id = job.id.to_string();
    read_log(log).into_iter().filter(|e| e.1 == id).map(|e| (e.0, e.2)).collect()
}

fn count(events: &[(String, u32)], event: &str, pid: u32) -> usize {
    events.iter().filter(|e| e.0 == event && e.1 == pid).count()
}

/// SIGTERM while a `job_type` job is processed; a new instance started at once continues it.
async fn sigterm_while_processing(job_type: JobType) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("side-effects.log");
    let config = config(clients(dir.path()).await, &log, Duration::ZERO, Duration::ZERO);
    let job = service::create_job(&config, job_type, 1, metadata(job_type, 1)).await.unwrap();

    let mut first = Instance::start(dir.path(), LONG_WORK, Duration::ZERO);
    wait_for(Duration::from_secs(120), "the first instance to be processing the job", async || {
        status(&config, job.id).await == JobStatus::LockedForProcessing
            && count(&events(&log, &job), "start", first.pid()) == 1
    })
    .await;

    let stopped_at = Instant::now();
    first.sigterm();
    // Restarted at once: the new instance does not wait for the old one to be gone.
    let second = Instance::start(dir.path(), Duration::from_millis(200), Duration::ZERO);

    let exit = first.exit(PROMPTLY).await;
    assert!(exit.success(), "the stopped instance exits cleanly: {exit}");
    assert!(
        stopped_at.elapsed() < GRACEFUL,
        "its handler was cut off, not waited for ({:?})",
        stopped_at.elapsed()
    );
    wait_for(PROMPTLY, "the new instance to complete the job", async || {
        status(&config, job.id).await == JobStatus::Completed
    })
    .await;
    assert!(stopped_at.elapsed() < LOCK_TIMEOUT.min(VISIBILITY));
    drop(second);

    let seen = events(&log, &job);
    let second_pid = seen.iter().rev().find(|e| e.0 == "done").map(|e| e.1).expect("done");
    assert_ne!(second_pid, first.pid(), "{seen:?}");
    assert_eq!(
        (count(&seen, "start", first.pid()), count(&seen, "done", first.pid())),
        (1, 0),
        "the stopped instance started the work and never finished it: {seen:?}"
    );
    assert_eq!(seen.iter().filter(|e| e.0 == "done").count(), 1, "settled once: {seen:?}");
    assert_eq!(seen.iter().filter(|e| e.0 == "verified").count(), 1, "{seen:?}");

    let job = config.database().get_job_by_id(job.id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Completed);
    // created → locked → handed back → locked → pending verification → completed.
    assert_eq!(job.version, 5, "no update lost or doubled: {job:?}");
    let common = &job.metadata.common;
    let reasons: Vec<&String> =
        common.previous_failure_reasons.iter().chain(common.failure_reason.iter()).collect();
    assert!(reasons.iter().any(|r| r.as_str() == HANDED_BACK_REASON), "{reasons:?}");
    assert_eq!(common.process_attempt_no, 1, "the cut-off attempt is not counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_snos_run_hands_the_job_back_and_it_completes_once() {
    sigterm_while_processing(JobType::SnosRun).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_state_transition_hands_the_job_back_and_it_settles_once() {
    sigterm_while_processing(JobType::StateTransition).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_verification_makes_its_message_visible_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("side-effects.log");
    let config = config(clients(dir.path()).await, &log, Duration::ZERO, Duration::ZERO);
    let job = service::create_job(&config, JobType::SnosRun, 1, snos(1)).await.unwrap();

    let mut first = Instance::start(dir.path(), Duration::ZERO, LONG_WORK);
    wait_for(Duration::from_secs(120), "the first instance to be verifying the job", async || {
        count(&events(&log, &job), "verify", first.pid()) == 1
    })
    .await;
    let before = config.database().get_job_by_id(job.id).await.unwrap().unwrap();
    assert_eq!(before.status, JobStatus::PendingVerification);

    let stopped_at = Instant::now();
    first.sigterm();
    let second = Instance::start(dir.path(), Duration::ZERO, Duration::ZERO);
    let exit = first.exit(PROMPTLY).await;
    assert!(exit.success(), "the stopped instance exits cleanly: {exit}");
    wait_for(PROMPTLY, "the new instance to verify the job", async || {
        status(&config, job.id).await == JobStatus::Completed
    })
    .await;
    assert!(stopped_at.elapsed() < VISIBILITY, "not after the visibility timeout");
    drop(second);

    let seen = events(&log, &job);
    assert_eq!(count(&seen, "verified", first.pid()), 0, "{seen:?}");
    assert_eq!(seen.iter().filter(|e| e.0 == "verified").count(), 1, "{seen:?}");
    assert_eq!(seen.iter().filter(|e| e.0 == "done").count(), 1, "processed once: {seen:?}");
    let job = config.database().get_job_by_id(job.id).await.unwrap().unwrap();
    // created → locked → pending verification → completed: the cut verification changed nothing.
    assert_eq!(job.version, 3, "{job:?}");
}

/// In process: while the job is processed an operator changes it; the stop then loses the
/// race and leaves the job as the operator left it, and still makes the message visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_back_that_loses_the_race_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("side-effects.log");
    let config = config(clients(dir.path()).await, &log, LONG_WORK, Duration::ZERO);
    let job = service::create_job(&config, JobType::SnosRun, 1, snos(1)).await.unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let running = Orchestrator::start_with(config.clone(), addr, None).await.expect("start");
    wait_for(Duration::from_secs(60), "the job to be processed", async || {
        status(&config, job.id).await == JobStatus::LockedForProcessing
            && !events(&log, &job).is_empty()
    })
    .await;

    let locked = config.database().get_job_by_id(job.id).await.unwrap().unwrap();
    let operator = config
        .database()
        .update_job(&locked, JobItemUpdates::new().status(JobStatus::Failed))
        .await
        .expect("the operator's change");
    let started = Instant::now();
    running.stop().await.expect("a clean stop");
    assert!(started.elapsed() < GRACEFUL, "{:?}", started.elapsed());

    let after = config.database().get_job_by_id(job.id).await.unwrap().unwrap();
    assert_eq!((after.status, after.version), (JobStatus::Failed, operator.version));
    assert_eq!(after.metadata, operator.metadata, "the lost hand-back wrote nothing");
    let queue = QueueType::for_job(JobType::SnosRun, JobAction::Process);
    assert_eq!(
        config.queue().approximate_len(queue).await.unwrap(),
        1,
        "the message is visible again at once (not after the {VISIBILITY:?} visibility timeout)"
    );
}

/// In process: a job finished before the stop is left as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_finished_before_the_stop_is_not_touched() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("side-effects.log");
    let config = config(clients(dir.path()).await, &log, Duration::ZERO, Duration::ZERO);
    let job = service::create_job(&config, JobType::SnosRun, 1, snos(1)).await.unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let running = Orchestrator::start_with(config.clone(), addr, None).await.expect("start");
    wait_for(Duration::from_secs(60), "the job to complete", async || {
        status(&config, job.id).await == JobStatus::Completed
    })
    .await;
    running.stop().await.expect("a clean stop");
    let after = config.database().get_job_by_id(job.id).await.unwrap().unwrap();
    assert_eq!((after.status, after.version), (JobStatus::Completed, 3));
    assert_eq!(after.metadata.common.failure_reason, None, "nothing recorded");
}
