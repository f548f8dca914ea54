//! `/metrics` scraped over HTTP while a pipeline runs: job status gauges, transitions and
//! stage latencies move as the scripted jobs go through processing and verification.

use std::{net::SocketAddr, time::Duration};

use orchestrator::{
    app::Orchestrator,
    types::jobs::{JobStatus, JobType},
    worker::service,
};

use orchestrator_test_support::prometheus::Exposition;

use crate::{
    api_support as s,
    support::{self, wait_for},
};

async fn scrape(addr: SocketAddr) -> Exposition {
    let text = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
    Exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// `job_status_current` of SnosRun jobs in `status`.
fn snos_jobs(m: &Exposition, status: &str) -> f64 {
    m.value(
        "job_status_current",
        &[("operation_job_type", "SnosRun"), ("operation_job_status", status)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_pipeline_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = s::config(dir.path(), s::settings(false), Duration::from_secs(2)).await;
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let running = Orchestrator::start_with(config.clone(), addr, None).await.unwrap();

    let before = scrape(running.addr).await;
    assert_eq!(snos_jobs(&before, "Completed"), 0.0);
    assert_eq!(before.get("job_queue_depth", &[("queue", "snos_job_processing")]), Some(0.0));

    let mut ids = Vec::new();
    for i in 1..=3 {
        ids.push(
            service::create_job(&config, JobType::SnosRun, i, support::snos(i)).await.unwrap().id,
        );
    }

    // During: the handler sleeps 2 s, so the jobs are seen locked.
    let mut during = Exposition::default();
    wait_for(Duration::from_secs(20), "jobs seen LockedForProcessing in /metrics", async || {
        during = scrape(running.addr).await;
        snos_jobs(&during, "LockedForProcessing") >= 1.0
    })
    .await;
    let locked = [
        ("operation_job_type", "SnosRun"),
        ("from_state", "Created"),
        ("to_state", "LockedForProcessing"),
    ];
    assert!(during.value("job_state_transitions_total", &locked) >= 1.0, "{during:?}");
    assert_eq!(snos_jobs(&during, "Completed"), 0.0);

    for id in &ids {
        let config = config.clone();
        let id = *id;
        wait_for(Duration::from_secs(30), "job completed", async move || {
            support::status(&config, id).await == JobStatus::Completed
        })
        .await;
    }
    tokio::time::sleep(
        orchestrator::telemetry::metrics::GAUGE_MIN_REFRESH + Duration::from_millis(100),
    )
    .await;
    let after = scrape(running.addr).await;

    assert_eq!(snos_jobs(&after, "Completed"), 3.0, "{after:?}");
    assert_eq!(snos_jobs(&after, "LockedForProcessing"), 0.0);
    let t = |from: &str, to: &str| {
        after.value(
            "job_state_transitions_total",
            &[("operation_job_type", "SnosRun"), ("from_state", from), ("to_state", to)],
        )
    };
    assert_eq!(t("None", "Created"), 3.0);
    assert_eq!(t("Created", "LockedForProcessing"), 3.0);
    assert_eq!(t("LockedForProcessing", "PendingVerification"), 3.0);
    assert_eq!(t("PendingVerification", "Completed"), 3.0);
    let calls = |op: &str| {
        after.value(
            "jobs_response_time_seconds_count",
            &[("operation_job_type", "SnosRun"), ("operation_type", op), ("outcome", "success")],
        )
    };
    assert_eq!(calls("process"), 3.0);
    assert_eq!(calls("verify"), 3.0);
    // Each processing call slept 2 s: all three are in the 2.5 s bucket, none in the 1 s one.
    let bucket = |le: &str| {
        after.value(
            "jobs_response_time_seconds_bucket",
            &[
                ("operation_job_type", "SnosRun"),
                ("operation_type", "process"),
                ("outcome", "success"),
                ("le", le),
            ],
        )
    };
    assert_eq!((bucket("1"), bucket("2.5")), (0.0, 3.0));
    let snos = [("operation_job_type", "SnosRun")];
    assert_eq!(after.value("job_e2e_latency_seconds_count", &snos), 3.0);
    assert_eq!(after.value("verification_time_seconds_count", &snos), 3.0);
    assert_eq!(
        after.value(
            "successful_job_operations_total",
            &[("operation_job_type", "SnosRun"), ("operation_type", "create")]
        ),
        3.0
    );
    assert!(after.value("http_requests_total", &[("route", "/metrics"), ("status", "200")]) >= 2.0);
    running.stop().await.unwrap();
}
