//! Proving → Aggregator on the embedded tier with the mock Atlantic server over HTTP: the
//! real handlers, triggers and engine; failures end in the documented states with alerts.

use orchestrator::worker::Config;
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use orchestrator::{
    app::Orchestrator,
    cli::args::prover::ProverKind,
    core::client::{embedded, Alert, AlertClient, AlertError},
    types::{
        batch::{AggregatorBatch, AggregatorBatchStatus, SnosBatch, SnosBatchStatus},
        jobs::{
            JobItem, JobSpecificMetadata, JobStatus, JobType, ProvingInputType, ProvingMetadata,
            SnosMetadata,
        },
        queue::{JobAction, WorkerTriggerType},
        Layer,
    },
    worker::{
        handler::JobHandlers, service, stages::proving::with_stage, stages::proving::ProverContext,
        trigger::Triggers,
    },
};
use orchestrator_atlantic_service::{
    types::{AtlanticAggregatorParams, AtlanticQueryStep},
    AtlanticConfig, AtlanticProverService, AtlanticSettlementLayer,
};
use orchestrator_mock_atlantic_server::{MockAtlanticConfig, MockAtlanticServer};
use orchestrator_prover_client_interface::{ProverClient, RetryPolicy, Task};
use orchestrator_utils::Secret;
use url::Url;

use crate::support::wait_for;

#[derive(Debug, Default)]
struct Alerts(Mutex<Vec<Alert>>);

#[async_trait]
impl AlertClient for Alerts {
    async fn send_alert(&self, alert: &Alert) -> Result<(), AlertError> {
        self.0.lock().unwrap().push(alert.clone());
        Ok(())
    }
    async fn health_check(&self) -> Result<(), AlertError> {
        Ok(())
    }
}

struct Env {
    orch: Orchestrator,
    config: Arc<Config>,
    alerts: Arc<Alerts>,
    prover: Arc<AtlanticProverService>,
    _dir: tempfile::TempDir,
}

fn atlantic_config(service: Url, artifacts: Url, timeout: Duration) -> AtlanticConfig {
    AtlanticConfig {
        service_url: service,
        api_key: Secret::new("k".into()),
        artifacts_base_url: artifacts,
        mock_fact_hash: true,
        network: "TESTNET".into(),
        cairo_vm: "rust".into(),
        result: AtlanticQueryStep::ProofGeneration,
        sharp_prover: "stone".into(),
        settlement_layer: AtlanticSettlementLayer::Ethereum,
        proof_layout: "dynamic".into(),
        cairo_verifier_program_hash: Some("0x1".into()),
        aggregator_params: AtlanticAggregatorParams { use_kzg_da: true, ..Default::default() },
        retry: RetryPolicy::new(Duration::from_millis(20), Duration::from_millis(500)),
        request_timeout: timeout,
    }
}

async fn env(layer: Layer, service: Url, artifacts: Url, timeout: Duration) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut clients =
        embedded::open(dir.path(), &embedded::EmbeddedOptions::default()).await.unwrap();
    let alerts = Arc::new(Alerts::default());
    clients.alerts = alerts.clone();
    let prover = Arc::new(
        AtlanticProverService::new(atlantic_config(service, artifacts, timeout), None).unwrap(),
    );
    let ctx = ProverContext {
        prover: prover.clone(),
        kind: ProverKind::Atlantic,
        layer,
        storage: clients.storage.clone(),
        database: clients.database.clone(),
        polling_override: Some(Duration::from_millis(100)),
    };
    let (handlers, triggers) = with_stage(ctx, 5, true, JobHandlers::new(), Triggers::new());
    let engine = crate::support::fast_engine();
    let config = Arc::new(Config::new(layer, clients, handlers, triggers, engine));
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let orch = Orchestrator::start_with(config.clone(), addr, None).await.unwrap();
    Env { orch, config, alerts, prover, _dir: dir }
}

fn mock(f: impl FnOnce(&mut MockAtlanticConfig)) -> MockAtlanticConfig {
    let mut c = MockAtlanticConfig {
        port: 0,
        processing_delay: Duration::from_millis(100),
        completion_delay: Duration::from_millis(200),
        ..MockAtlanticConfig::default()
    };
    f(&mut c);
    c
}

fn pie_bytes() -> Vec<u8> {
    let mut v = b"PK\x03\x04".to_vec();
    v.extend([7u8; 32]);
    v
}

/// One aggregator batch (blocks 1..=2, closed, with a bucket) made of two closed SNOS batches
/// whose SnosRun jobs completed and whose PIEs are stored.
async fn seed_l2(env: &Env) {
    let db = env.config.database();
    let bucket = env.prover.submit_task(Task::CreateBucket).await.unwrap();
    let mut agg = AggregatorBatch::new(1, 1, "0.14.1");
    agg.end_block = 2;
    agg.num_blocks = 2;
    agg.bucket_id = Some(bucket);
    agg.status = AggregatorBatchStatus::Closed;
    db.create_aggregator_batch(agg).await.unwrap();
    for i in 1..=2u64 {
        let mut b = SnosBatch::new(i, Some(1), i, "0.14.1", Default::default());
        b.status = SnosBatchStatus::Closed;
        db.create_snos_batch(b).await.unwrap();
        seed_snos_job(env, i).await;
    }
}

async fn seed_snos_job(env: &Env, i: u64) {
    let pie_path = format!("{i}/cairo_pie.zip");
    env.config.storage().put_data(pie_bytes().into(), &pie_path).await.unwrap();
    let meta = SnosMetadata {
        snos_batch_index: i,
        start_block: i,
        end_block: i,
        num_blocks: 1,
        cairo_pie_path: Some(pie_path),
        snos_fact: Some(format!("0x{i:064x}")),
        snos_n_steps: Some(1000),
        ..Default::default()
    };
    let mut job = JobItem::new(JobType::SnosRun, i, JobSpecificMetadata::Snos(meta));
    job.status = JobStatus::Completed;
    env.config.database().create_job(job).await.unwrap();
}

async fn job(env: &Env, t: JobType, i: u64) -> Option<JobItem> {
    env.config.database().get_job_by_internal_id_and_type(i, t).await.unwrap()
}

async fn wait_status(env: &Env, t: JobType, i: u64, want: JobStatus, within: Duration) -> JobItem {
    let mut kick = 0u32;
    wait_for(within, &format!("{t} {i} to be {want}"), async || {
        // Cron stand-in: nudge the triggers now and then.
        kick += 1;
        if kick % 5 == 1 {
            for tr in [
                WorkerTriggerType::Stage(JobType::ProofCreation),
                WorkerTriggerType::Stage(JobType::Aggregator),
                WorkerTriggerType::Stage(JobType::ProofRegistration),
            ] {
                let _ = service::send_trigger(&env.config, tr).await;
            }
        }
        job(env, t, i).await.is_some_and(|j| j.status == want)
    })
    .await;
    job(env, t, i).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proving_then_aggregation_complete_and_store_the_artifacts() {
    let server = MockAtlanticServer::start(mock(|_| {})).await.unwrap();
    let env = env(Layer::L2, server.url(), server.url(), Duration::from_secs(5)).await;
    seed_l2(&env).await;

    for i in 1..=2 {
        let j = wait_status(
            &env,
            JobType::ProofCreation,
            i,
            JobStatus::Completed,
            Duration::from_secs(30),
        )
        .await;
        let JobSpecificMetadata::Proving(m) = &j.metadata.specific else { panic!() };
        assert_eq!(m.bucket_job_index, Some(i), "index inside the bucket");
        assert!(m.bucket_id.is_some());
        // store_audit_artifacts: the proof was downloaded.
        let proof = env.config.storage().get_data(&format!("{i}/proof.json")).await.unwrap();
        assert!(String::from_utf8_lossy(&proof).contains(&j.external_id.to_string()));
    }
    let agg =
        wait_status(&env, JobType::Aggregator, 1, JobStatus::Completed, Duration::from_secs(30))
            .await;
    let batch =
        env.config.database().get_aggregator_batches(Default::default()).await.unwrap().remove(0);
    assert_eq!(batch.status, AggregatorBatchStatus::ReadyForStateUpdate);
    assert_eq!(agg.external_id.to_string(), batch.bucket_id.clone().unwrap());
    let storage = env.config.storage();
    for file in ["cairo_pie.zip", "da_blob.json", "snos_output.json", "proof.json"] {
        storage
            .get_data(&format!("artifacts/batch/1/{file}"))
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    let output: Vec<[u8; 32]> = bincode::deserialize(
        &storage.get_data("artifacts/batch/1/program_output.txt").await.unwrap(),
    )
    .unwrap();
    // The aggregator's own output (the OS output part) is the stand-in's snos_output.json.
    let snos: Vec<String> = serde_json::from_slice(
        &storage.get_data("artifacts/batch/1/snos_output.json").await.unwrap(),
    )
    .unwrap();
    let snos: Vec<[u8; 32]> = snos
        .iter()
        .map(|h| starknet_types_core::felt::Felt::from_hex(h).unwrap().to_bytes_be())
        .collect();
    assert_eq!(output, snos, "the aggregator's own output (OS output part)");
    assert!(env.alerts.0.lock().unwrap().is_empty());
    env.orch.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prover_failures_fail_the_job_with_an_alert() {
    let server = MockAtlanticServer::start(mock(|c| c.failure_rate = 1.0)).await.unwrap();
    let env = env(Layer::L2, server.url(), server.url(), Duration::from_secs(5)).await;
    seed_l2(&env).await;
    let j =
        wait_status(&env, JobType::ProofCreation, 1, JobStatus::Failed, Duration::from_secs(30))
            .await;
    let reason = j.metadata.common.failure_reason.clone().unwrap_or_default();
    assert!(reason.contains("injected failure"), "{reason}");
    let alerts = env.alerts.0.lock().unwrap().clone();
    assert!(
        alerts
            .iter()
            .any(|a| a.body.contains(&j.id.to_string()) || a.title.contains("ProofCreation")),
        "{alerts:?}"
    );
    assert!(
        job(&env, JobType::Aggregator, 1).await.is_none(),
        "no aggregation of unproven batches"
    );
    env.orch.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_query_id_rejects_with_a_clear_reason() {
    let server = MockAtlanticServer::start(mock(|_| {})).await.unwrap();
    let env = env(Layer::L2, server.url(), server.url(), Duration::from_secs(5)).await;
    let meta = ProvingMetadata {
        block_number: 9,
        input_path: Some(ProvingInputType::CairoPie("9/cairo_pie.zip".into())),
        ..Default::default()
    };
    let mut j = JobItem::new(JobType::ProofCreation, 9, JobSpecificMetadata::Proving(meta));
    j.status = JobStatus::PendingVerification;
    j.external_id = "01NOSUCHQUERY".into();
    // As after its one processing attempt.
    j.metadata.common.process_attempt_no = 1;
    let j = env.config.database().create_job(j).await.unwrap();
    service::send_job_message(&env.config, &j, JobAction::Verify, Duration::ZERO).await.unwrap();
    let j =
        wait_status(&env, JobType::ProofCreation, 9, JobStatus::Failed, Duration::from_secs(20))
            .await;
    let reason = j.metadata.common.failure_reason.unwrap_or_default();
    assert!(reason.contains("01NOSUCHQUERY") && reason.contains("unknown"), "{reason}");
    env.orch.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_that_does_not_parse_fails_registration() {
    let server = MockAtlanticServer::start(mock(|_| {})).await.unwrap();
    let env = env(Layer::L3, server.url(), server.url(), Duration::from_secs(5)).await;
    env.config
        .storage()
        .put_data(b"{\"proof\": [1, 2".to_vec().into(), "3/proof.json")
        .await
        .unwrap();
    let meta = ProvingMetadata {
        block_number: 3,
        input_path: Some(ProvingInputType::Proof("3/proof.json".into())),
        download_proof: Some("3/proof_part2.json".into()),
        ..Default::default()
    };
    service::create_job(
        &env.config,
        JobType::ProofRegistration,
        3,
        JobSpecificMetadata::Proving(meta),
    )
    .await
    .unwrap();
    let j = wait_status(
        &env,
        JobType::ProofRegistration,
        3,
        JobStatus::Failed,
        Duration::from_secs(20),
    )
    .await;
    let reason = j.metadata.common.failure_reason.unwrap_or_default();
    assert!(reason.contains("3/proof.json does not parse"), "{reason}");
    assert_eq!(server.submissions().len(), 0, "nothing was sent to the prover");
    env.orch.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prover_timeout_keeps_the_job_for_a_retry() {
    // A server that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url: Url = format!("http://{}/", silent.local_addr().unwrap()).parse().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let env = env(Layer::L2, url.clone(), url, Duration::from_millis(200)).await;
    seed_snos_job(&env, 1).await;
    let meta = ProvingMetadata {
        block_number: 1,
        input_path: Some(ProvingInputType::CairoPie("1/cairo_pie.zip".into())),
        ..Default::default()
    };
    let created = service::create_job(
        &env.config,
        JobType::ProofCreation,
        1,
        JobSpecificMetadata::Proving(meta),
    )
    .await
    .unwrap();
    wait_for(Duration::from_secs(20), "a recorded timeout", async || {
        job(&env, JobType::ProofCreation, 1)
            .await
            .and_then(|j| j.metadata.common.failure_reason)
            .is_some_and(|r| r.contains("timed out"))
    })
    .await;
    let j = job(&env, JobType::ProofCreation, 1).await.unwrap();
    assert_eq!(j.id, created.id);
    assert!(!j.status.is_terminal(), "retryable: the job waits for another try, {:?}", j.status);
    // Sent right after the failure is recorded.
    wait_for(Duration::from_secs(5), "the retry-streak alert", async || {
        !env.alerts.0.lock().unwrap().is_empty()
    })
    .await;
    let titles: Vec<String> =
        env.alerts.0.lock().unwrap().iter().map(|a| a.title.clone()).collect();
    assert_eq!(titles, ["ProofCreation jobs retrying: prover"], "only the retry-streak alert");
    env.orch.stop().await.unwrap();
}
