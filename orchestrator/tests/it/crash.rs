//! Crash safety of the job engine on the embedded tier: SIGKILL while a job is processed, and
//! two worker processes on one SQLite file.

use std::{collections::HashMap, time::Duration};

use orchestrator::{
    types::{
        jobs::{JobStatus, JobType},
        queue::QueueType,
    },
    worker::service,
};
use strum::IntoEnumIterator;

use crate::support::{self, read_log, snos, status, wait_for, ChildWorker, VISIBILITY};

/// Every queue is empty, including messages in flight (waits out the visibility timeout so
/// un-acked messages would be visible again).
async fn assert_queues_empty(config: &orchestrator::worker::Config) {
    tokio::time::sleep(VISIBILITY + Duration::from_millis(500)).await;
    for queue in QueueType::iter() {
        let left = config.queue().approximate_len(queue).await.expect("len");
        assert_eq!(left, 0, "{left} message(s) left on {queue}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_slow_job_heals_it_and_it_completes_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("side-effects.log");
    let job_timeout = Duration::from_secs(1);
    let config = support::config(
        support::clients(dir.path()).await,
        log.clone(),
        Duration::ZERO,
        job_timeout,
    );
    let job = service::create_job(&config, JobType::SnosRun, 1, snos(1)).await.unwrap();

    // A worker starts the slow job and dies mid-way.
    let first = ChildWorker::spawn(dir.path(), Duration::from_secs(30), job_timeout);
    wait_for(Duration::from_secs(60), "the first worker to lock the job", async || {
        status(&config, job.id).await == JobStatus::LockedForProcessing
    })
    .await;
    first.kill();
    let events = read_log(&log);
    assert_eq!(events.iter().filter(|e| e.0 == "start").count(), 1);
    assert_eq!(
        events.iter().filter(|e| e.0 == "done").count(),
        0,
        "the killed worker must not finish"
    );
    assert_eq!(status(&config, job.id).await, JobStatus::LockedForProcessing, "orphaned");

    // A restarted worker heals the orphan and completes it.
    let second = ChildWorker::spawn(dir.path(), Duration::from_millis(100), job_timeout);
    wait_for(Duration::from_secs(60), "the job to complete after restart", async || {
        status(&config, job.id).await == JobStatus::Completed
    })
    .await;
    assert_queues_empty(&config).await;
    second.kill();

    let done: Vec<_> = read_log(&log).into_iter().filter(|e| e.0 == "done").collect();
    assert_eq!(done.len(), 1, "processing finished exactly once: {done:?}");
    let job = config.database().get_job_by_id(job.id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Completed);
    let reasons: Vec<&String> = job
        .metadata
        .common
        .previous_failure_reasons
        .iter()
        .chain(job.metadata.common.failure_reason.iter())
        .collect();
    assert!(reasons.iter().any(|r| r.starts_with("healed")), "healing is recorded: {reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_never_process_the_same_job_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("side-effects.log");
    let job_timeout = Duration::from_secs(300);
    let config = support::config(
        support::clients(dir.path()).await,
        log.clone(),
        Duration::ZERO,
        job_timeout,
    );
    let jobs = 40;
    let mut ids = Vec::new();
    for i in 1..=jobs {
        ids.push(service::create_job(&config, JobType::SnosRun, i, snos(i)).await.unwrap().id);
    }

    let a = ChildWorker::spawn(dir.path(), Duration::from_millis(150), job_timeout);
    let b = ChildWorker::spawn(dir.path(), Duration::from_millis(150), job_timeout);
    wait_for(Duration::from_secs(120), "every job to complete", async || {
        let done = config
            .database()
            .get_jobs_by_types_and_statuses(
                &[JobType::SnosRun],
                &[JobStatus::Completed],
                None,
                None,
            )
            .await
            .unwrap();
        done.len() == jobs as usize
    })
    .await;
    assert_queues_empty(&config).await;
    a.kill();
    b.kill();

    let events = read_log(&log);
    let mut per_job: HashMap<&str, Vec<&(String, String, u32, u128)>> = HashMap::new();
    for e in &events {
        per_job.entry(e.1.as_str()).or_default().push(e);
    }
    assert_eq!(per_job.len(), jobs as usize);
    for (id, evs) in &per_job {
        let starts: Vec<_> = evs.iter().filter(|e| e.0 == "start").collect();
        let dones: Vec<_> = evs.iter().filter(|e| e.0 == "done").collect();
        assert_eq!((starts.len(), dones.len()), (1, 1), "job {id} processed once: {evs:?}");
        assert_eq!(starts[0].2, dones[0].2, "job {id} started and finished by the same process");
    }
    let pids: std::collections::HashSet<u32> = events.iter().map(|e| e.2).collect();
    assert_eq!(pids.len(), 2, "both processes took work");
}
