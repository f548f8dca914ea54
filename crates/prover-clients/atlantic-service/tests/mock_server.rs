//! The Atlantic client against the mock Atlantic server over real HTTP.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use orchestrator_atlantic_service::types::AtlanticQueryStep;
use orchestrator_atlantic_service::{
    types::AtlanticAggregatorParams, AtlanticConfig, AtlanticProverService, AtlanticSettlementLayer,
};
use orchestrator_gps_fact_checker::{
    onchain::{FactCheckError, B256},
    FactRegistry,
};
use orchestrator_mock_atlantic_server::{
    Chaos, ChaosKind, Fault, FaultRoute, MockAtlanticConfig, MockAtlanticServer,
};
use orchestrator_prover_client_interface::{
    CreateJobInfo, ProverClient, ProverError, RetryPolicy, Retryable, Task, TaskStatus, TaskType,
};
use orchestrator_utils::Secret;

const KEY: &str = "test-api-key";

fn pie() -> Vec<u8> {
    // Any zip is a PIE to the mock; a real one is not needed here.
    let mut v = b"PK\x03\x04".to_vec();
    v.extend([0u8; 64]);
    v
}

async fn server(f: impl FnOnce(&mut MockAtlanticConfig)) -> MockAtlanticServer {
    let mut config = MockAtlanticConfig {
        port: 0,
        processing_delay: Duration::from_millis(50),
        completion_delay: Duration::from_millis(100),
        api_key: Some(KEY.into()),
        ..MockAtlanticConfig::default()
    };
    f(&mut config);
    MockAtlanticServer::start(config).await.unwrap()
}

fn config(server: &MockAtlanticServer) -> AtlanticConfig {
    AtlanticConfig {
        service_url: server.url(),
        api_key: Secret::new(KEY.into()),
        artifacts_base_url: server.url(),
        mock_fact_hash: true,
        network: "TESTNET".into(),
        cairo_vm: "rust".into(),
        result: AtlanticQueryStep::ProofGeneration,
        sharp_prover: "stone".into(),
        settlement_layer: AtlanticSettlementLayer::Ethereum,
        proof_layout: "dynamic".into(),
        cairo_verifier_program_hash: Some("0x1234".into()),
        aggregator_params: AtlanticAggregatorParams { use_kzg_da: true, ..Default::default() },
        retry: RetryPolicy::new(Duration::from_millis(20), Duration::from_secs(2)),
        request_timeout: Duration::from_secs(5),
    }
}

fn service(server: &MockAtlanticServer) -> AtlanticProverService {
    AtlanticProverService::new(config(server), None).unwrap()
}

fn job(dedup: &str, bucket: Option<(&str, u64)>) -> Task {
    Task::CreateJob(CreateJobInfo {
        cairo_pie_zip: pie(),
        bucket_id: bucket.map(|b| b.0.to_owned()),
        bucket_job_index: bucket.map(|b| b.1),
        num_steps: Some(1_000_000),
        dedup_id: dedup.to_owned(),
    })
}

async fn wait_status(
    s: &AtlanticProverService,
    t: TaskType,
    id: &str,
    fact: Option<&str>,
) -> TaskStatus {
    for _ in 0..100 {
        match s.get_task_status(t, id, fact).await.unwrap() {
            TaskStatus::Processing => tokio::time::sleep(Duration::from_millis(20)).await,
            done => return done,
        }
    }
    panic!("{id} still processing");
}

#[tokio::test]
async fn submit_sends_every_field_and_the_query_completes() {
    let server = server(|_| {}).await;
    let s = service(&server);
    let id = s.submit_task(job("job-1", None)).await.unwrap();
    assert_eq!(s.get_task_status(TaskType::Job, &id, None).await.unwrap(), TaskStatus::Processing);
    assert_eq!(wait_status(&s, TaskType::Job, &id, None).await, TaskStatus::Succeeded);
    let fields = &server.submissions()[0];
    for (k, v) in [
        ("declaredJobSize", "S"),
        ("result", "PROOF_GENERATION"),
        ("network", "TESTNET"),
        ("cairoVersion", "cairo0"),
        ("cairoVm", "rust"),
        ("sharpProver", "stone"),
        ("dedupId", "job-1"),
        ("mockFactHash", "true"),
        ("file:pieFile", "pie.zip"),
    ] {
        assert_eq!(fields.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert!(!fields.contains_key("layout"), "Ethereum layer sends no layout");
    let proof = s.get_proof(&id).await.unwrap();
    assert!(proof.contains(&id));
}

#[tokio::test]
async fn a_dedup_hit_reuses_the_query() {
    let server = server(|_| {}).await;
    let s = service(&server);
    let first = s.submit_task(job("same", None)).await.unwrap();
    let second = s.submit_task(job("same", None)).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(server.submissions().len(), 1, "the second submit was a lookup only");
}

#[tokio::test]
async fn a_failed_dedup_query_is_submitted_again() {
    let server = server(|_| {}).await;
    let s = service(&server);
    let first = s.submit_task(job("again", None)).await.unwrap();
    server.complete_query(&first, Some("prover crashed"));
    let status = s.get_task_status(TaskType::Job, &first, None).await.unwrap();
    assert_eq!(status, TaskStatus::Failed(format!("query {first} failed: prover crashed")));
    let second = s.submit_task(job("again", None)).await.unwrap();
    assert_ne!(first, second);
}

#[tokio::test]
async fn a_dedup_hit_in_another_bucket_is_an_error() {
    let server = server(|_| {}).await;
    let s = service(&server);
    let bucket = s.submit_task(Task::CreateBucket).await.unwrap();
    s.submit_task(job("dup", Some((&bucket, 1)))).await.unwrap();
    let err = s.submit_task(job("dup", Some((&bucket, 2)))).await.unwrap_err();
    assert!(!err.is_retryable() && err.to_string().contains("index"), "{err}");
}

#[tokio::test]
async fn bucket_lifecycle_ends_with_aggregation_artifacts() {
    let server = server(|_| {}).await;
    let s = service(&server);
    let bucket = s.submit_task(Task::CreateBucket).await.unwrap();
    assert_eq!(
        s.get_task_status(TaskType::Aggregation, &bucket, None).await.unwrap(),
        TaskStatus::Processing
    );
    for i in 1..=3 {
        s.submit_task(job(&format!("child-{i}"), Some((&bucket, i)))).await.unwrap();
    }
    assert_eq!(s.submit_task(Task::RunAggregation(bucket.clone())).await.unwrap(), bucket);
    // Closing again is a no-op: the bucket is no longer open.
    assert_eq!(s.submit_task(Task::RunAggregation(bucket.clone())).await.unwrap(), bucket);
    assert_eq!(wait_status(&s, TaskType::Aggregation, &bucket, None).await, TaskStatus::Succeeded);
    let artifacts = s.get_aggregation_artifacts(&bucket, true).await.unwrap();
    assert!(artifacts.cairo_pie.unwrap().starts_with(b"PK"));
    let da: Vec<String> = serde_json::from_slice(&artifacts.da_segment.unwrap()).unwrap();
    assert!(!da.is_empty());
    assert!(artifacts.snos_output.is_some());
    assert!(artifacts.proof.is_some());
    // Children cannot join a closed bucket.
    let err = s.submit_task(job("late", Some((&bucket, 4)))).await.unwrap_err();
    assert!(matches!(err, ProverError::Http { status: 400, .. }), "{err}");
}

#[tokio::test]
async fn a_failed_child_fails_the_bucket() {
    let server = server(|_| {}).await;
    let s = service(&server);
    let bucket = s.submit_task(Task::CreateBucket).await.unwrap();
    let child = s.submit_task(job("c1", Some((&bucket, 1)))).await.unwrap();
    server.complete_query(&child, Some("out of memory"));
    s.submit_task(Task::RunAggregation(bucket.clone())).await.unwrap();
    match wait_status(&s, TaskType::Aggregation, &bucket, None).await {
        TaskStatus::Failed(reason) => assert!(reason.contains("out of memory"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn gateway_errors_and_html_pages_are_retried() {
    let server = server(|_| {}).await;
    let s = service(&server);
    server.inject(Fault::status(FaultRoute::SubmitQuery, 503, 2));
    server.inject(Fault::html(FaultRoute::DedupLookup, 500, 1));
    let id = s.submit_task(job("retry", None)).await.unwrap();
    server.inject(Fault::status(FaultRoute::QueryStatus, 502, 1));
    server.inject(Fault::html(FaultRoute::QueryStatus, 404, 1));
    assert_eq!(wait_status(&s, TaskType::Job, &id, None).await, TaskStatus::Succeeded);
    assert_eq!(server.submissions().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_up_to_the_attempts() {
    let server = server(|_| {}).await;
    let s = service(&server);
    // Three attempts (the default): two 500s then the query is accepted.
    server.inject(Fault::status(FaultRoute::SubmitQuery, 500, 2));
    s.submit_task(job("five-hundred", None)).await.unwrap();
    assert_eq!(server.submissions().len(), 1);
    // Three 500s spend the three attempts: a retryable error for the job level, and the next
    // call (no fault left) goes through, so exactly three attempts were made.
    server.inject(Fault::status(FaultRoute::SubmitQuery, 500, 3));
    let err = s.submit_task(job("spent", None)).await.unwrap_err();
    assert!(matches!(err, ProverError::Http { status: 500, .. }) && err.is_retryable(), "{err}");
    s.submit_task(job("spent", None)).await.unwrap();
}

#[tokio::test]
async fn a_402_is_insufficient_credits_not_retried_and_needs_an_operator() {
    let server = server(|_| {}).await;
    let s = service(&server);
    // As many 402s as attempts: the mock answers before reading the upload, and a connection
    // reset can hide that answer from the client, which then retries as for any transport
    // error (a real account stays empty too). That no 402 is retried is checked against a
    // server that reads every request (`prover-client-interface`, `retry::tests`).
    server.inject(Fault::status(FaultRoute::SubmitQuery, 402, 3));
    let err = s.submit_task(job("broke", None)).await.unwrap_err();
    assert!(matches!(err, ProverError::InsufficientCredits { .. }), "{err:?}");
    assert!(!err.is_retryable(), "{err}");
    assert_eq!(
        err.operator_action().map(|a| a.alert),
        Some("prover_insufficient_credits"),
        "its own alert kind"
    );
    assert!(err.to_string().contains("402"), "{err}");
    assert!(server.submissions().is_empty());
}

/// A prover answering a seeded 40 % of calls with 500, 503, 429, a hang past the client's
/// timeout or a cut body: every call either succeeds or fails retryably (the job level tries
/// again later), nothing is ever a fatal error, and a query submitted through it is taken once
/// and completes.
#[tokio::test]
async fn chaos_answers_are_retryable_and_never_fatal() {
    let server = server(|_| {}).await;
    let mut cfg = config(&server);
    cfg.request_timeout = Duration::from_millis(300);
    let s = AtlanticProverService::new(cfg, None).unwrap();
    server.set_chaos(Some(Chaos { rate: 0.4, seed: 7, hang: Duration::from_millis(600) }));
    let mut submitted = None;
    let mut retryable_errors = 0;
    for _ in 0..40 {
        let result = match &submitted {
            None => s.submit_task(job("chaos", None)).await.map(|id| {
                submitted = Some(id);
            }),
            Some(id) => match s.get_task_status(TaskType::Job, id, None).await {
                Ok(TaskStatus::Succeeded) => break,
                Ok(TaskStatus::Processing) => Ok(()),
                Ok(other) => panic!("chaos turned a query into {other:?}"),
                Err(e) => Err(e),
            },
        };
        if let Err(e) = result {
            assert!(e.is_retryable(), "a chaos answer must be retryable: {e}");
            retryable_errors += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counts = server.chaos_counts();
    server.set_chaos(None);
    let id = submitted.expect("a submission got through the chaos");
    assert_eq!(wait_status(&s, TaskType::Job, &id, None).await, TaskStatus::Succeeded);
    assert_eq!(server.submissions().len(), 1, "the dedup id keeps it to one query");
    let faults: u64 = counts.values().sum();
    assert!(faults >= 5, "chaos answered {faults} calls: {counts:?}");
    assert!(counts.len() >= 3, "several kinds were drawn: {counts:?}");
    println!("chaos faults {counts:?}; {retryable_errors} call(s) gave up retryably");
    // The same seed draws the same schedule.
    let again = server_with_chaos_draws(7, 30).await;
    assert_eq!(again, server_with_chaos_draws(7, 30).await);
}

/// The kinds a fresh server with chaos `seed` (rate 0.5) answers to `calls` liveness-free
/// status calls, in order.
async fn server_with_chaos_draws(seed: u64, calls: usize) -> Vec<Option<ChaosKind>> {
    let server = server(|_| {}).await;
    server.set_chaos(Some(Chaos { rate: 0.5, seed, hang: Duration::from_millis(1) }));
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    for _ in 0..calls {
        let before = server.chaos_counts();
        let _ = http
            .get(server.url().join("atlantic-query/01X").unwrap())
            .header("api-key", KEY)
            .send()
            .await;
        let after = server.chaos_counts();
        out.push(after.iter().find(|(k, n)| before.get(k) != Some(n)).map(|(k, _)| *k));
    }
    out
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = server(|_| {}).await;
    let s = service(&server);
    server.inject(Fault::status(FaultRoute::SubmitQuery, 400, 1));
    let err = s.submit_task(job("bad", None)).await.unwrap_err();
    assert!(matches!(err, ProverError::Http { status: 400, .. }) && !err.is_retryable(), "{err}");
    // The fault was used once: a second try succeeds, so the first was not retried.
    s.submit_task(job("bad", None)).await.unwrap();
}

#[tokio::test]
async fn a_persistent_gateway_error_gives_up_after_the_budget() {
    let server = server(|_| {}).await;
    let s = service(&server);
    server.inject(Fault::status(FaultRoute::QueryStatus, 504, 1000));
    let started = std::time::Instant::now();
    let err = s.get_task_status(TaskType::Job, "01ANY", None).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn an_unknown_query_id_is_not_found() {
    let server = server(|_| {}).await;
    let s = service(&server);
    let err = s.get_task_status(TaskType::Job, "01UNKNOWN", None).await.unwrap_err();
    assert!(matches!(err, ProverError::NotFound { .. }) && !err.is_retryable(), "{err}");
}

#[tokio::test]
async fn a_wrong_api_key_is_refused_and_not_retried() {
    let server = server(|_| {}).await;
    let mut c = config(&server);
    c.api_key = Secret::new("wrong".into());
    assert!(!format!("{c:?}").contains("wrong"), "the key never prints");
    let s = AtlanticProverService::new(c, None).unwrap();
    let err = s.submit_task(Task::CreateBucket).await.unwrap_err();
    assert!(matches!(err, ProverError::Http { status: 401, .. }), "{err}");
}

#[tokio::test]
async fn the_concurrency_limit_answers_429_and_the_client_waits() {
    let server = server(|c| {
        c.max_concurrent_jobs = 1;
        c.processing_delay = Duration::from_millis(300);
        c.completion_delay = Duration::ZERO;
    })
    .await;
    let mut c = config(&server);
    c.retry = RetryPolicy::new(Duration::from_millis(50), Duration::from_secs(5));
    let s = AtlanticProverService::new(c, None).unwrap();
    s.submit_task(job("a", None)).await.unwrap();
    let started = std::time::Instant::now();
    s.submit_task(job("b", None)).await.unwrap();
    // Retry-After: 1 s.
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn seeded_failure_rate_fails_queries() {
    let server = server(|c| c.failure_rate = 1.0).await;
    let s = service(&server);
    let id = s.submit_task(job("f", None)).await.unwrap();
    assert!(matches!(wait_status(&s, TaskType::Job, &id, None).await, TaskStatus::Failed(_)));
}

#[derive(Debug)]
struct Facts(bool);

#[async_trait]
impl FactRegistry for Facts {
    async fn is_valid(&self, _fact: B256) -> Result<bool, FactCheckError> {
        Ok(self.0)
    }
}

#[tokio::test]
async fn done_needs_the_fact_on_chain_unless_facts_are_mocked() {
    let server = server(|_| {}).await;
    let fact = "0x01";
    for (valid, want_ok) in [(true, true), (false, false)] {
        let mut c = config(&server);
        c.mock_fact_hash = false;
        let s = AtlanticProverService::new(c, Some(Arc::new(Facts(valid)))).unwrap();
        let id = s.submit_task(job(&format!("fact-{valid}"), None)).await.unwrap();
        let status = wait_status(&s, TaskType::Job, &id, Some(fact)).await;
        assert_eq!(status == TaskStatus::Succeeded, want_ok, "{status:?}");
    }
}

#[tokio::test]
async fn l2_verification_query_sends_the_proof() {
    let server = server(|_| {}).await;
    let s = service(&server);
    let err = s.submit_l2_query("t1", "{not json", None).await.unwrap_err();
    assert!(matches!(err, ProverError::InvalidProof(_)));
    let id = s.submit_l2_query("t1", "{\"proof\":{}}", Some(5)).await.unwrap();
    assert_eq!(
        s.submit_l2_query("t1", "{\"proof\":{}}", Some(5)).await.unwrap(),
        id,
        "dedup by task id"
    );
    let fields = server.submissions().pop().unwrap();
    assert_eq!(fields["result"], "PROOF_VERIFICATION_ON_L2");
    assert_eq!(fields["layout"], "recursive_with_poseidon");
    assert_eq!(fields["cairoVm"], "python");
    assert_eq!(fields["programHash"], "0x1234");
    assert_eq!(fields["file:inputFile"], "proof.json");
}

/// The mock's proofs expose what a real proof would: a PIE query's proof has the PIE's output
/// segment as its public output, and an L2 verification query over that proof outputs it
/// again (what the L3 state update reads from `proof.json` and `proof_part2.json`).
#[tokio::test]
async fn proofs_carry_the_public_output_of_their_input() {
    use cairo_vm::{types::layout_name::LayoutName, Felt252 as Felt};
    use orchestrator_prover_client_interface::public_output::public_output;

    let server = server(|_| {}).await;
    let s = service(&server);
    let os_output: Vec<Felt> = [5u64, 6, 9, 12, 1, 2, 0, 7, 0, 1, 0, 0].map(Felt::from).to_vec();
    let (pie_zip, _) =
        orchestrator_snos_runner::stand_in::run_program(os_output.clone(), LayoutName::all_cairo)
            .unwrap();
    let id = s
        .submit_task(Task::CreateJob(CreateJobInfo {
            cairo_pie_zip: pie_zip,
            bucket_id: None,
            bucket_job_index: None,
            num_steps: Some(1000),
            dedup_id: "with-output".into(),
        }))
        .await
        .unwrap();
    assert_eq!(wait_status(&s, TaskType::Job, &id, None).await, TaskStatus::Succeeded);
    let proof = s.get_proof(&id).await.unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&proof).unwrap();
    assert_eq!(public_output(&parsed).unwrap(), os_output, "the PIE's output segment");

    let wrapped = serde_json::json!({ "proof": parsed }).to_string();
    let l2 = s.submit_l2_query("verify-with-output", &wrapped, Some(1000)).await.unwrap();
    assert_eq!(wait_status(&s, TaskType::Job, &l2, None).await, TaskStatus::Succeeded);
    let bridge: serde_json::Value = serde_json::from_str(&s.get_proof(&l2).await.unwrap()).unwrap();
    assert_eq!(public_output(&bridge).unwrap(), os_output, "the verified proof's output");

    // A zip that is no PIE has no output to expose: an empty one, not an error.
    let plain = s.submit_task(job("no-output", None)).await.unwrap();
    assert_eq!(wait_status(&s, TaskType::Job, &plain, None).await, TaskStatus::Succeeded);
    let empty: serde_json::Value =
        serde_json::from_str(&s.get_proof(&plain).await.unwrap()).unwrap();
    assert!(public_output(&empty).unwrap().is_empty());
}
