//! Two worker processes on one PostgreSQL database and one set of SQS queues (moto): every
//! job is processed exactly once, no versioned update is lost.

use std::{collections::HashMap, time::Duration};

use orchestrator::{
    types::jobs::{JobStatus, JobType},
    worker::service,
};

use crate::support::{self, distributed, read_log, snos, wait_for, ChildWorker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_postgres_and_sqs_process_every_job_exactly_once() {
    if !distributed::services_or_skip().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("side-effects.log");
    let prefix = format!("mi{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    distributed::create_queues(dir.path(), &prefix).await;
    let pg = distributed::fresh_database().await;
    let endpoint = distributed::aws_endpoint();
    let clients = distributed::clients(dir.path(), &pg, &endpoint, &prefix).await;
    let job_timeout = Duration::from_secs(300);
    let config = support::config(clients, log.clone(), Duration::ZERO, job_timeout);

    let jobs = 30u64;
    for i in 1..=jobs {
        service::create_job(&config, JobType::SnosRun, i, snos(i)).await.unwrap();
    }
    let env = [
        ("ORCH_TEST_PG_URL", pg.clone()),
        ("ORCH_TEST_AWS_ENDPOINT", endpoint.clone()),
        ("ORCH_TEST_QUEUE_PREFIX", prefix.clone()),
    ];
    let a = ChildWorker::spawn_with(dir.path(), Duration::from_millis(150), job_timeout, &env);
    let b = ChildWorker::spawn_with(dir.path(), Duration::from_millis(150), job_timeout, &env);
    wait_for(Duration::from_secs(180), "every job to complete", async || {
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
    a.kill();
    b.kill();

    let events = read_log(&log);
    let mut per_job: HashMap<&str, (usize, usize)> = HashMap::new();
    for e in &events {
        let entry = per_job.entry(e.1.as_str()).or_default();
        match e.0.as_str() {
            "start" => entry.0 += 1,
            _ => entry.1 += 1,
        }
    }
    assert_eq!(per_job.len(), jobs as usize);
    assert!(per_job.values().all(|&c| c == (1, 1)), "each job processed exactly once: {per_job:?}");
    let pids: std::collections::HashSet<u32> = events.iter().map(|e| e.2).collect();
    assert_eq!(pids.len(), 2, "both processes took work");
    for job in config
        .database()
        .get_jobs_by_types_and_statuses(&[JobType::SnosRun], &[], None, None)
        .await
        .unwrap()
    {
        assert_eq!(job.status, JobStatus::Completed);
        // created → locked → pending verification → completed: no update lost or doubled.
        assert_eq!(job.version, 3, "job {} has version {}", job.internal_id, job.version);
    }
}

#[tokio::test]
async fn wrong_postgres_credentials_name_the_database_and_the_cause_without_the_password() {
    if !distributed::services_or_skip().await {
        return;
    }
    let url = distributed::postgres_url();
    let rest = url
        .split_once('@')
        .map(|(_, host)| host)
        .unwrap_or_else(|| panic!("test URL has no credentials: {url}"));
    let wrong = format!("postgres://orchestrator:not-the-password-42@{rest}");
    let Err(err) = orchestrator::core::client::database_backends::open(
        &orchestrator::config::DatabaseBackend::Postgres { url: wrong.clone().into() },
    )
    .await
    else {
        panic!("wrong credentials must fail");
    };
    let msg = format!("{err:#}");
    assert!(msg.contains("password authentication failed"), "{msg}");
    assert!(msg.contains("127.0.0.1"), "names the server: {msg}");
    assert!(!msg.contains("not-the-password-42"), "never prints the password: {msg}");
}
