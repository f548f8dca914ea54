//! Every route of reference §11 and its error cases, through the router in-process (`oneshot`):
//! envelope, query parameters, `/api/v1` aliases, trace ids, admin auth, rate limiting.

use orchestrator::worker::Config;
use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::http::{Method, StatusCode};
use orchestrator::{
    app::Orchestrator,
    core::client::OutgoingMessage,
    server,
    types::{
        batch::{AggregatorBatchStatus, SnosBatchStatus},
        jobs::{JobItem, JobSpecificMetadata, JobStatus, JobType, ProvingMetadata},
        queue::{QueueType, WorkerTriggerType},
    },
};

use crate::api_support::{self as s, admin_post, get, send, TOKEN};

/// Batches and jobs of a small L2 pipeline:
/// aggregator 1 = blocks 0..=9 (Closed), 2 = 10..=14 (Open);
/// SNOS 1 = 0..=4, 2 = 5..=9 (Closed, in aggregator 1), 3 = 10..=14 (Open, in aggregator 2);
/// SnosRun 1 Completed, 2 Failed, 3 Created; ProofCreation 1 Completed.
struct Fixture {
    _dir: tempfile::TempDir,
    config: Arc<Config>,
    snos: Vec<JobItem>,
    proof: JobItem,
}

async fn fixture(admin: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = s::config(dir.path(), s::settings(admin), Duration::ZERO).await;
    let db = config.database();
    db.create_aggregator_batch(s::aggregator_batch(1, 0, 9, AggregatorBatchStatus::Closed))
        .await
        .unwrap();
    db.create_aggregator_batch(s::aggregator_batch(2, 10, 14, AggregatorBatchStatus::Open))
        .await
        .unwrap();
    db.create_snos_batch(s::snos_batch(1, 1, 0, 4, SnosBatchStatus::Closed)).await.unwrap();
    db.create_snos_batch(s::snos_batch(2, 1, 5, 9, SnosBatchStatus::Closed)).await.unwrap();
    db.create_snos_batch(s::snos_batch(3, 2, 10, 14, SnosBatchStatus::Open)).await.unwrap();
    let snos = vec![
        s::snos_job(&config, 1, 0, 4, JobStatus::Completed).await,
        s::snos_job(&config, 2, 5, 9, JobStatus::Failed).await,
        s::snos_job(&config, 3, 10, 14, JobStatus::Created).await,
    ];
    let proving =
        JobSpecificMetadata::Proving(ProvingMetadata { block_number: 0, ..Default::default() });
    let proof = db.create_job(JobItem::new(JobType::ProofCreation, 1, proving)).await.unwrap();
    let proof = s::set_status(&config, proof, JobStatus::Completed).await;
    Fixture { _dir: dir, config, snos, proof }
}

fn assert_error(a: &s::Answer, status: StatusCode, needle: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    let body = a.json();
    assert_eq!(body["success"], false, "{}", a.text);
    assert!(a.message().contains(needle), "message {:?} lacks {needle:?}", a.message());
}

#[tokio::test]
async fn health_metrics_and_unknown_routes() {
    let f = fixture(false).await;
    let router = server::router(f.config.clone());
    let a = get(&router, "/health").await;
    assert_eq!((a.status, a.text.as_str()), (StatusCode::OK, "UP"));
    assert_eq!(get(&router, "/health/ready").await.status, StatusCode::OK);
    let a = get(&router, "/nope").await;
    assert_eq!(
        (a.status, a.text.as_str()),
        (StatusCode::NOT_FOUND, "The requested resource was not found")
    );
    let a = get(&router, "/metrics").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.headers["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let m = orchestrator_test_support::prometheus::Exposition::parse(&a.text).unwrap();
    assert_eq!(
        m.get(
            "job_status_current",
            &[("operation_job_type", "SnosRun"), ("operation_job_status", "Failed")]
        ),
        Some(1.0),
        "{}",
        a.text
    );
    assert_eq!(m.get("job_queue_depth", &[("queue", "snos_job_processing")]), Some(0.0));
}

#[tokio::test]
async fn jobs_by_status_with_validation() {
    let f = fixture(false).await;
    let router = server::router(f.config.clone());
    for prefix in ["", "/api/v1"] {
        let a = get(&router, &format!("{prefix}/jobs?status=Failed")).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let body = a.json();
        assert_eq!(body["success"], true);
        let jobs = body["data"]["jobs"].as_array().unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0]["id"], f.snos[1].id.to_string());
        assert_eq!(jobs[0]["job_type"], "SnosRun");
        assert_eq!(jobs[0]["status"], "Failed");
    }
    let a = get(&router, "/jobs?status=Completed&job_type=ProofCreation").await;
    assert_eq!(a.json()["data"]["jobs"][0]["id"], f.proof.id.to_string());

    assert_error(&get(&router, "/jobs").await, StatusCode::BAD_REQUEST, "status is required");
    let a = get(&router, "/jobs?status=Bogus").await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid status \"Bogus\"");
    assert!(
        a.message().contains("Created, LockedForProcessing, PendingVerification"),
        "{}",
        a.message()
    );
    assert_error(
        &get(&router, "/jobs?status=Failed&limit=501").await,
        StatusCode::BAD_REQUEST,
        "invalid limit \"501\"",
    );
    assert_error(
        &get(&router, "/jobs?status=Failed&limit=ten").await,
        StatusCode::BAD_REQUEST,
        "invalid limit",
    );
    assert_error(
        &get(&router, "/jobs?status=Failed&job_type=Nope").await,
        StatusCode::BAD_REQUEST,
        "invalid job_type",
    );
}

#[tokio::test]
async fn one_job_and_its_errors() {
    let f = fixture(false).await;
    let router = server::router(f.config.clone());
    let id = f.snos[0].id;
    let a = get(&router, &format!("/api/v1/jobs/{id}")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["data"]["id"], id.to_string());
    assert_eq!(a.json()["data"]["metadata"]["specific"]["type"], "Snos");
    assert_error(
        &get(&router, "/jobs/not-a-uuid").await,
        StatusCode::BAD_REQUEST,
        "invalid job id \"not-a-uuid\"",
    );
    let unknown = uuid::Uuid::new_v4();
    assert_error(
        &get(&router, &format!("/jobs/{unknown}")).await,
        StatusCode::NOT_FOUND,
        &unknown.to_string(),
    );
}

#[tokio::test]
async fn process_verify_retry() {
    let f = fixture(false).await;
    let router = server::router(f.config.clone());
    let queue = f.config.queue();
    let (completed, failed, created) = (f.snos[0].id, f.snos[1].id, f.snos[2].id);

    // process: queues a message on the job's processing queue.
    let a = get(&router, &format!("/jobs/{created}/process")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(queue.approximate_len(QueueType::JobProcessing(JobType::SnosRun)).await.unwrap(), 1);
    let a = get(&router, &format!("/api/v1/jobs/{created}/process?priority=true")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(queue.approximate_len(QueueType::PriorityProcessingQueue).await.unwrap(), 1);
    assert_error(
        &get(&router, &format!("/jobs/{created}/process?priority=maybe")).await,
        StatusCode::BAD_REQUEST,
        "invalid priority",
    );
    assert_error(
        &get(&router, "/jobs/123/process").await,
        StatusCode::BAD_REQUEST,
        "invalid job id \"123\"",
    );
    let unknown = uuid::Uuid::new_v4();
    assert_error(
        &get(&router, &format!("/jobs/{unknown}/process")).await,
        StatusCode::NOT_FOUND,
        "no job",
    );

    // retry: only Failed jobs.
    assert_error(
        &get(&router, &format!("/jobs/{created}/retry")).await,
        StatusCode::BAD_REQUEST,
        "retry needs Failed",
    );
    let a = get(&router, &format!("/jobs/{failed}/retry")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["data"]["status"], "PendingRetry");

    // verify: forced back to PendingVerification.
    let a = get(&router, &format!("/jobs/{completed}/verify")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["data"]["status"], "PendingVerification");
    assert_error(
        &get(&router, &format!("/jobs/{unknown}/verify")).await,
        StatusCode::NOT_FOUND,
        "no job",
    );
}

#[tokio::test]
async fn job_actions_take_post_and_need_the_admin_token_when_one_is_set() {
    let f = fixture(true).await;
    let router = server::router(f.config.clone());
    let queue = f.config.queue();
    let created = f.snos[2].id;
    let bearer = format!("Bearer {TOKEN}");
    for method in [Method::GET, Method::POST] {
        for action in ["process", "verify", "retry"] {
            for prefix in ["", "/api/v1"] {
                let uri = format!("{prefix}/jobs/{created}/{action}");
                let a = send(&router, method.clone(), &uri, &[], None).await;
                assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{method} {uri}: {}", a.text);
                let wrong = [("authorization", "Bearer not-the-token")];
                let a = send(&router, method.clone(), &uri, &wrong, None).await;
                assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{method} {uri}: {}", a.text);
            }
        }
    }
    // Refused requests changed nothing.
    let processing = QueueType::JobProcessing(JobType::SnosRun);
    assert_eq!(queue.approximate_len(processing).await.unwrap(), 0);
    // With the token, POST does what GET does.
    let uri = format!("/jobs/{created}/process");
    let a = send(&router, Method::POST, &uri, &[("authorization", &bearer)], None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(queue.approximate_len(processing).await.unwrap(), 1);
    // Reading stays open.
    assert_eq!(get(&router, &format!("/jobs/{created}")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn open_job_actions_restores_the_reference_routes_and_no_token_means_open() {
    for settings in [
        orchestrator::config::ServerSettings { open_job_actions: true, ..s::settings(true) },
        s::settings(false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = s::config(dir.path(), settings, Duration::ZERO).await;
        let job = s::snos_job(&config, 1, 0, 4, JobStatus::Created).await;
        let router = server::router(config.clone());
        for method in [Method::POST, Method::GET] {
            let a = send(&router, method, &format!("/jobs/{}/process", job.id), &[], None).await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        }
        let processing = QueueType::JobProcessing(JobType::SnosRun);
        assert_eq!(config.queue().approximate_len(processing).await.unwrap(), 2);
    }
}

#[tokio::test]
async fn a_full_priority_queue_answers_429() {
    let f = fixture(false).await;
    let router = server::router(f.config.clone());
    for _ in 0..5 {
        let body = format!(r#"{{"id": "{}"}}"#, uuid::Uuid::new_v4());
        f.config
            .queue()
            .send(QueueType::PriorityProcessingQueue, OutgoingMessage::new(body))
            .await
            .unwrap();
    }
    let a = get(&router, &format!("/jobs/{}/process?priority=true", f.snos[2].id)).await;
    assert_error(
        &a,
        StatusCode::TOO_MANY_REQUESTS,
        "priority queue priority_processing_queue is full",
    );
    // Without priority the job is still accepted.
    assert_eq!(
        get(&router, &format!("/jobs/{}/process", f.snos[2].id)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn jobs_of_a_block() {
    let f = fixture(false).await;
    let router = server::router(f.config.clone());
    let a = get(&router, "/jobs/block/7/status").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let jobs = a.json()["data"]["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["id"], f.snos[1].id.to_string());
    assert_error(
        &get(&router, "/jobs/block/-1/status").await,
        StatusCode::BAD_REQUEST,
        "invalid block_number \"-1\"",
    );
}

#[tokio::test]
async fn batch_listings() {
    let f = fixture(false).await;
    let router = server::router(f.config.clone());
    let a = get(&router, "/batches/snos").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let batches = a.json()["data"]["batches"].as_array().unwrap().clone();
    let indexes: Vec<u64> = batches.iter().map(|b| b["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, vec![3, 2, 1], "newest first by default");
    assert_eq!(batches[0]["aggregator_batch_index"], 2);
    assert!(batches[0]["metrics"]["proving_gas"].is_u64());

    let a = get(&router, "/api/v1/batches/snos?status=closed&sort=asc&limit=1").await;
    let batches = a.json()["data"]["batches"].as_array().unwrap().clone();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0]["index"], 1);
    let a = get(&router, "/batches/snos?index=2").await;
    assert_eq!(a.json()["data"]["batches"][0]["end_block"], 9);

    let a = get(&router, "/batches/snos?status=Bogus").await;
    assert_error(
        &a,
        StatusCode::BAD_REQUEST,
        "expected one of Open, Closed, SnosJobCreated, Completed",
    );
    assert_error(
        &get(&router, "/batches/snos?limit=501").await,
        StatusCode::BAD_REQUEST,
        "between 1 and 500",
    );
    assert_error(
        &get(&router, "/batches/snos?sort=sideways").await,
        StatusCode::BAD_REQUEST,
        "invalid sort",
    );
    assert_error(
        &get(&router, "/batches/snos?index=x").await,
        StatusCode::BAD_REQUEST,
        "invalid index",
    );

    let a = get(&router, "/batches/aggregator?status=Open").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let batches = a.json()["data"]["batches"].as_array().unwrap().clone();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0]["index"], 2);
    assert!(batches[0]["blob_len"].is_u64());
    assert!(batches[0]["aggregator_input_size_upper_bound"].is_u64());
    assert_error(
        &get(&router, "/batches/aggregator?status=Closedish").await,
        StatusCode::BAD_REQUEST,
        "PendingAggregatorRun",
    );
}

#[tokio::test]
async fn block_routes() {
    let f = fixture(false).await;
    let router = server::router(f.config.clone());
    let a = get(&router, "/blocks/batch-for-block/12").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["data"]["batch_number"], 2);
    assert_error(
        &get(&router, "/blocks/batch-for-block/999").await,
        StatusCode::NOT_FOUND,
        "block 999",
    );
    assert_error(
        &get(&router, "/blocks/batch-for-block/x").await,
        StatusCode::BAD_REQUEST,
        "invalid block_number",
    );

    let a = get(&router, "/api/v1/blocks/settlement-status/3").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let d = a.json()["data"].clone();
    assert_eq!(d["block_number"], 3);
    assert_eq!(d["snos_batch"]["index"], 1);
    assert_eq!(d["aggregator_batch"]["index"], 1);
    let block_jobs = d["block_jobs"].as_array().unwrap();
    assert!(block_jobs.iter().any(|j| j["id"] == f.snos[0].id.to_string()), "{d}");
    let proofs = d["aggregator_proof_jobs"].as_array().unwrap();
    assert_eq!(proofs.len(), 1, "{d}");
    assert_eq!(proofs[0]["id"], f.proof.id.to_string());
    assert!(proofs[0]["timestamps"].is_object());
    assert!(proofs[0]["created_at"].is_i64());
    assert_error(
        &get(&router, "/blocks/settlement-status/999").await,
        StatusCode::NOT_FOUND,
        "block 999",
    );
    assert_error(
        &get(&router, "/blocks/settlement-status/1e3").await,
        StatusCode::BAD_REQUEST,
        "invalid block_number",
    );
}

#[tokio::test]
async fn admin_routes_do_not_exist_when_disabled() {
    let f = fixture(false).await;
    let router = server::router(f.config.clone());
    for uri in [
        "/admin/jobs/retry/failed",
        "/admin/batches/close-open",
        "/api/v1/admin/jobs/requeue/created",
    ] {
        let a = admin_post(&router, uri).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{uri}: {}", a.text);
    }
    assert_eq!(get(&router, "/admin/triggers").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn admin_routes_need_the_bearer_token() {
    let f = fixture(true).await;
    let router = server::router(f.config.clone());
    let routes = [
        (Method::POST, "/admin/jobs/retry/failed"),
        (Method::POST, "/admin/jobs/reverify/verification-timeout"),
        (Method::POST, "/admin/jobs/requeue/pending-verification"),
        (Method::POST, "/admin/jobs/requeue/created"),
        (Method::POST, "/admin/batches/close-open"),
        (Method::GET, "/admin/triggers"),
        (Method::POST, "/admin/triggers/Snos/pause"),
        (Method::POST, "/api/v1/admin/triggers/Snos/resume"),
    ];
    for (method, uri) in routes {
        for headers in
            [vec![], vec![("authorization", "Bearer wrong-token")], vec![("authorization", TOKEN)]]
        {
            let a = send(&router, method.clone(), uri, &headers, None).await;
            assert_error(&a, StatusCode::UNAUTHORIZED, "bearer token");
            assert_eq!(a.headers["www-authenticate"], "Bearer");
            assert!(!a.text.contains(TOKEN));
        }
    }
    // Nothing changed.
    assert_eq!(crate::support::status(&f.config, f.snos[1].id).await, JobStatus::Failed);
}

#[tokio::test]
async fn admin_bulk_operations() {
    let f = fixture(true).await;
    let router = server::router(f.config.clone());
    let queue = f.config.queue();

    let a = admin_post(&router, "/admin/jobs/retry/failed?job_type=SnosRun").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let d = a.json()["data"].clone();
    assert_eq!(d["success_count"], 1);
    assert_eq!(d["successful_job_ids"][0], f.snos[1].id.to_string());
    assert_eq!(d["failed_count"], 0);
    assert_eq!(crate::support::status(&f.config, f.snos[1].id).await, JobStatus::PendingRetry);
    assert_error(
        &admin_post(&router, "/admin/jobs/retry/failed?job_type=Nope").await,
        StatusCode::BAD_REQUEST,
        "invalid job_type",
    );

    let timed_out = s::set_status(
        &f.config,
        f.config.database().get_job_by_id(f.snos[0].id).await.unwrap().unwrap(),
        JobStatus::VerificationTimeout,
    )
    .await;
    let a = admin_post(&router, "/api/v1/admin/jobs/reverify/verification-timeout").await;
    assert_eq!(a.json()["data"]["success_count"], 1, "{}", a.text);
    assert_eq!(
        crate::support::status(&f.config, timed_out.id).await,
        JobStatus::PendingVerification
    );

    let before = queue.approximate_len(QueueType::JobVerification(JobType::SnosRun)).await.unwrap();
    let a = admin_post(&router, "/admin/jobs/requeue/pending-verification").await;
    assert_eq!(a.json()["data"]["success_count"], 1, "{}", a.text);
    assert_eq!(
        queue.approximate_len(QueueType::JobVerification(JobType::SnosRun)).await.unwrap(),
        before + 1
    );

    let before = queue.approximate_len(QueueType::JobProcessing(JobType::SnosRun)).await.unwrap();
    let a = admin_post(&router, "/admin/jobs/requeue/created").await;
    assert_eq!(a.json()["data"]["success_count"], 1, "{}", a.text);
    assert_eq!(
        queue.approximate_len(QueueType::JobProcessing(JobType::SnosRun)).await.unwrap(),
        before + 1
    );

    let a = admin_post(&router, "/admin/batches/close-open").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["data"]["snos_batches_closed"], 1);
    assert_eq!(a.json()["data"]["aggregator_batches_closed"], 1);
    let a = get(&router, "/batches/aggregator?status=Open").await;
    assert_eq!(a.json()["data"]["batches"].as_array().unwrap().len(), 0);
    let a = admin_post(&router, "/admin/batches/close-open").await;
    assert_eq!(a.json()["data"]["snos_batches_closed"], 0, "idempotent");
}

#[tokio::test]
async fn admin_pauses_and_resumes_triggers() {
    let f = fixture(true).await;
    let router = server::router(f.config.clone());
    let a = admin_post(&router, "/admin/triggers/snos/pause").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["data"]["paused"][0], "Snos");
    let snos = WorkerTriggerType::Stage(JobType::SnosRun);
    let stored = f.config.database().get_trigger_pause(snos).await.unwrap().expect("paused");
    assert_eq!(stored.paused_by, "admin", "the default actor");
    let a = admin_post(&router, "/admin/triggers/Snos/pause").await;
    assert!(a.message().contains("already paused"), "{}", a.text);
    let listed = send(
        &router,
        Method::GET,
        "/admin/triggers",
        &[("authorization", &format!("Bearer {TOKEN}"))],
        None,
    )
    .await;
    assert_eq!(listed.json()["data"]["paused"][0], "Snos");
    assert_eq!(admin_post(&router, "/admin/triggers/Snos/resume").await.status, StatusCode::OK);
    assert_eq!(f.config.database().get_trigger_pause(snos).await.unwrap(), None);

    let a = admin_post(&router, "/admin/triggers/Bogus/pause").await;
    assert_error(&a, StatusCode::BAD_REQUEST, "expected one of Snos, Proving");
    let a = admin_post(&router, "/admin/triggers/ProofRegistration/pause").await;
    assert_error(&a, StatusCode::BAD_REQUEST, "not a trigger of layer");
}

#[tokio::test]
async fn trace_ids_are_accepted_or_generated_and_echoed() {
    let f = fixture(false).await;
    let router = server::router(f.config.clone());
    let id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let a = send(&router, Method::GET, "/batches/snos", &[("x-trace-id", id)], None).await;
    assert_eq!(a.headers["x-trace-id"], id);
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let a = send(&router, Method::GET, "/jobs?status=Bogus", &[("traceparent", tp)], None).await;
    assert_eq!(a.headers["x-trace-id"], "0af7651916cd43dd8448eb211c80319c", "errors carry it too");
    for bad in [None, Some("not-hex"), Some("00000000000000000000000000000000")] {
        let headers: Vec<(&str, &str)> = bad.map(|b| ("x-trace-id", b)).into_iter().collect();
        let a = send(&router, Method::GET, "/nope", &headers, None).await;
        let got = a.headers["x-trace-id"].to_str().unwrap();
        assert_eq!(got.len(), 32, "{got}");
        assert!(got.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(Some(got), bad);
    }
}

#[tokio::test]
async fn clients_over_their_rate_get_429_and_probes_never_do() {
    let dir = tempfile::tempdir().unwrap();
    let settings = orchestrator::config::ServerSettings {
        rate_limit_per_second: 1,
        rate_limit_burst: 3,
        ..s::settings(false)
    };
    let config = s::config(dir.path(), settings, Duration::ZERO).await;
    let router = server::router(config);
    let a: SocketAddr = "127.0.0.2:40000".parse().unwrap();
    let b: SocketAddr = "127.0.0.3:40000".parse().unwrap();
    for _ in 0..3 {
        assert_eq!(
            send(&router, Method::GET, "/batches/snos", &[], Some(a)).await.status,
            StatusCode::OK
        );
    }
    let refused = send(&router, Method::GET, "/batches/snos", &[], Some(a)).await;
    assert_error(&refused, StatusCode::TOO_MANY_REQUESTS, "too many requests from 127.0.0.2");
    assert!(refused.headers.contains_key("retry-after"));
    assert_eq!(
        send(&router, Method::GET, "/batches/snos", &[], Some(b)).await.status,
        StatusCode::OK,
        "per client"
    );
    for _ in 0..10 {
        assert_eq!(
            send(&router, Method::GET, "/health", &[], Some(a)).await.status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn database_failures_answer_500_without_details() {
    let f = fixture(false).await;
    let router = server::router(f.config.clone());
    f.config.database().disconnect().await.unwrap();
    let a = get(&router, "/jobs?status=Failed").await;
    assert_error(&a, StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
    assert!(!a.text.to_lowercase().contains("sqlite"), "{}", a.text);
}

#[tokio::test]
async fn admin_without_a_token_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let settings = orchestrator::config::ServerSettings { admin_token: None, ..s::settings(true) };
    let config = s::config(dir.path(), settings, Duration::ZERO).await;
    let err =
        Orchestrator::start_with(config, "127.0.0.1:0".parse().unwrap(), None).await.unwrap_err();
    assert!(err.to_string().contains("MADARA_ORCHESTRATOR_ADMIN_TOKEN"), "{err}");
}
