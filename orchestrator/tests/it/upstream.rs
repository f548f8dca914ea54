//! Upstream failures seen from a job (issue 17, item 4): an Atlantic 402 (the account has no
//! credits left) fails the job with its own alert kind, not the generic "Job failed"; a 5xx is retried within the call and, when the attempts are spent, the job
//! goes back for a later try instead of failing. The real handler, engine and Atlantic client,
//! against the mock Atlantic server over HTTP.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use orchestrator::{
    config::{choices::ProverKind, EngineParams},
    core::client::{embedded, Alert, AlertClient, AlertError},
    types::{
        jobs::{JobSpecificMetadata, JobStatus, JobType, ProvingInputType, ProvingMetadata},
        Layer,
    },
    worker::{
        handler::JobHandlers,
        service,
        stages::proving::{ProofCreationHandler, ProverContext},
        trigger::Triggers,
        Config,
    },
};
use orchestrator_atlantic_service::{
    types::{AtlanticAggregatorParams, AtlanticQueryStep},
    AtlanticConfig, AtlanticProverService, AtlanticSettlementLayer,
};
use orchestrator_mock_atlantic_server::{
    Fault, FaultRoute, MockAtlanticConfig, MockAtlanticServer,
};
use orchestrator_prover_client_interface::RetryPolicy;
use orchestrator_utils::{Secret, UpstreamRetry};

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
    config: Arc<Config>,
    alerts: Arc<Alerts>,
    server: MockAtlanticServer,
    _dir: tempfile::TempDir,
}

/// A ProofCreation handler over the Atlantic client of a fresh mock server, retrying as the
/// upstream defaults say (3 attempts) with short waits.
async fn env() -> Env {
    let server = MockAtlanticServer::start(MockAtlanticConfig {
        port: 0,
        processing_delay: Duration::from_millis(50),
        completion_delay: Duration::from_millis(100),
        ..MockAtlanticConfig::default()
    })
    .await
    .unwrap();
    let retry = RetryPolicy {
        base: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        budget: Duration::from_secs(5),
        ..RetryPolicy::upstream(UpstreamRetry::default())
    };
    let atlantic = AtlanticConfig {
        service_url: server.url(),
        api_key: Secret::new("k".into()),
        artifacts_base_url: server.url(),
        mock_fact_hash: true,
        network: "TESTNET".into(),
        cairo_vm: "rust".into(),
        result: AtlanticQueryStep::ProofGeneration,
        sharp_prover: "stone".into(),
        settlement_layer: AtlanticSettlementLayer::Ethereum,
        proof_layout: "dynamic".into(),
        cairo_verifier_program_hash: Some("0x1".into()),
        aggregator_params: AtlanticAggregatorParams { use_kzg_da: true, ..Default::default() },
        retry,
        request_timeout: Duration::from_secs(5),
    };
    let dir = tempfile::tempdir().unwrap();
    let mut clients =
        embedded::open(dir.path(), &embedded::EmbeddedOptions::default()).await.unwrap();
    let alerts = Arc::new(Alerts::default());
    clients.alerts = alerts.clone();
    let ctx = ProverContext {
        prover: Arc::new(AtlanticProverService::new(atlantic, None).unwrap()),
        kind: ProverKind::Atlantic,
        layer: Layer::L2,
        storage: clients.storage.clone(),
        database: clients.database.clone(),
        polling_override: Some(Duration::from_millis(50)),
    };
    let handlers = JobHandlers::new().with(Arc::new(ProofCreationHandler::new(ctx)));
    let config = Arc::new(Config::new(
        Layer::L2,
        clients,
        handlers,
        Triggers::new(),
        EngineParams::default(),
    ));
    Env { config, alerts, server, _dir: dir }
}

/// A ProofCreation job whose PIE is stored.
async fn proving_job(env: &Env) -> uuid::Uuid {
    let pie_path = "1/cairo_pie.zip".to_owned();
    let mut pie = b"PK\x03\x04".to_vec();
    pie.extend([7u8; 32]);
    env.config.storage().put_data(pie.into(), &pie_path).await.unwrap();
    let metadata = JobSpecificMetadata::Proving(ProvingMetadata {
        block_number: 1,
        input_path: Some(ProvingInputType::CairoPie(pie_path)),
        n_steps: Some(1000),
        ..Default::default()
    });
    service::create_job(&env.config, JobType::ProofCreation, 1, metadata).await.unwrap().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_atlantic_402_fails_the_job_with_its_own_alert() {
    let env = env().await;
    let id = proving_job(&env).await;
    // As many 402s as attempts: the mock answers before reading the upload, and a connection
    // reset can hide that answer, which the client then retries as a transport error (an
    // empty account stays empty too). No-retry of a 402 itself is checked in the prover
    // client's tests.
    env.server.inject(Fault::status(FaultRoute::SubmitQuery, 402, 3));

    service::process_job(&env.config, id).await.expect("the message is done with");

    let job = env.config.database().get_job_by_id(id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Failed, "{job:?}\n{:?}", env.server.submissions());
    let reason = job.metadata.common.failure_reason.clone().unwrap_or_default();
    assert!(reason.contains("insufficient credits") && reason.contains("402"), "{reason}");
    assert!(env.server.submissions().is_empty(), "nothing was submitted");

    let alerts = env.alerts.0.lock().unwrap().clone();
    assert_eq!(alerts.len(), 1, "one alert, not the generic one as well: {alerts:?}");
    assert!(alerts[0].title.starts_with("Prover account out of credits"), "{:?}", alerts[0]);
    assert!(!alerts[0].title.starts_with("Job failed"), "{:?}", alerts[0]);
    assert!(alerts[0].body.contains("top up") && alerts[0].body.contains(&id.to_string()));
    let metrics = env.config.metrics.render_prometheus();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("alerts_sent")
                && l.contains("kind=\"prover_insufficient_credits\"")),
        "its own alert kind in alerts_sent:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_5xx_is_retried_then_left_for_a_later_try() {
    let env = env().await;
    let id = proving_job(&env).await;
    // Three attempts, three 500s: the call gives up; the job is not failed.
    env.server.inject(Fault::status(FaultRoute::SubmitQuery, 500, 3));

    let err = service::process_job(&env.config, id).await.expect_err("a retryable failure");
    assert!(orchestrator_utils::Retryable::is_retryable(&err), "{err}");
    let job = env.config.database().get_job_by_id(id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Created, "back to its status for a later try");
    let titles: Vec<String> =
        env.alerts.0.lock().unwrap().iter().map(|a| a.title.clone()).collect();
    assert_eq!(titles, ["ProofCreation jobs retrying: prover"], "a warning, not a failure alert");

    // The next delivery goes through: exactly three attempts were spent on the faults.
    service::process_job(&env.config, id).await.expect("submitted");
    let job = env.config.database().get_job_by_id(id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::PendingVerification);
    assert_eq!(env.server.submissions().len(), 1);
}
