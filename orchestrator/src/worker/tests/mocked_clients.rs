//! The job handlers on the error paths a real service cannot easily be made to take, with
//! mockall mocks of the prover, settlement, DA and node clients on the real embedded tier: a
//! settlement receipt that never comes, a reverted or unconfirmed state update, a prover that
//! answers garbage, a node failing in the middle of a batch, a DA layer failing. Every job
//! fails or is retried exactly as its client error's [`Retryable`] answer says, and
//! `.times(n)` holds the clients to what is sent.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use orchestrator_da_client_interface::{DaError, MockDaClient};
use orchestrator_protocol::compression::io::felt_hex;
use orchestrator_prover_client_interface::{
    classify_http_failure, AggregationArtifacts, MockProverClient, ProverError, Task, TaskStatus,
    TaskType,
};
use orchestrator_settlement_client_interface::{
    MockSettlementClient, SettlementError, SettlementMetrics, SettlementVerificationStatus,
    StateUpdateOutcome, StateUpdateTxError, TxAttempt, TxAttemptStatus,
};
use orchestrator_utils::Retryable;
use rstest::rstest;
use starknet::core::types::Felt;

use super::{Harness, RecordingAlerts};
use crate::{
    config::{choices::ProverKind, EngineParams},
    core::client::{
        embedded,
        madara::{memory::InMemoryMadara, MadaraClient, MadaraError, MockMadaraClient},
        AlertSeverity, Clients, StorageError,
    },
    types::{
        batch::{
            AggregatorBatch, AggregatorBatchQuery, AggregatorBatchStatus, BouncerWeights, SnosBatch,
        },
        jobs::{
            DaMetadata, JobItem, JobSpecificMetadata, JobStatus, JobType, ProvingInputType,
            ProvingMetadata,
        },
        Layer,
    },
    worker::{
        handler::{JobHandlerTrait, JobHandlers},
        service,
        stages::{
            aggregator::{aggregator_metadata, AggregatorHandler, UnavailableAggregator},
            data_submission::{blob_data_path, DataSubmissionContext, DataSubmissionHandler},
            proving::{ProofCreationHandler, ProverContext},
            state_transition::{
                state_update_metadata, tx_attempts_path, SettlementJobContext,
                StateTransitionHandler, ZERO_TX_HASH,
            },
        },
        trigger::Triggers,
        Config,
    },
};

/// A fresh embedded tier (alerts recorded) running the one handler `handler` builds over its
/// clients.
async fn harness(
    layer: Layer,
    handler: impl FnOnce(&Clients) -> Arc<dyn JobHandlerTrait>,
) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut clients = embedded::open(dir.path(), &embedded::EmbeddedOptions::default())
        .await
        .expect("embedded tier");
    let alerts = Arc::new(RecordingAlerts::default());
    clients.alerts = alerts.clone();
    let handlers = JobHandlers::new().with(handler(&clients));
    let config =
        Arc::new(Config::new(layer, clients, handlers, Triggers::new(), EngineParams::default()));
    Harness { config, alerts, _dir: dir }
}

fn failure_reason(job: &JobItem) -> &str {
    job.metadata.common.failure_reason.as_deref().unwrap_or_default()
}

fn alert_titles(h: &Harness) -> Vec<String> {
    h.alerts.0.lock().unwrap().iter().map(|a| a.title.clone()).collect()
}

// ---------------------------------------------------------------------------------------------
// StateTransition (L2): aggregator batch 1 covers blocks 3..=5; the contract is at block 2.

const SETTLED_BEFORE: u64 = 2;

/// A state update sent as `tx_hash`, one attempt, outcome not known yet.
fn sent(tx_hash: &str) -> StateUpdateOutcome {
    StateUpdateOutcome {
        tx_hash: Some(tx_hash.to_owned()),
        block_number: None,
        attempts: vec![TxAttempt {
            attempt_no: 1,
            tx_hash: tx_hash.to_owned(),
            nonce: 7,
            gas_multiplier_milli: 1100,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            max_fee_per_blob_gas: 1,
            status: TxAttemptStatus::Sent,
            error: None,
        }],
    }
}

/// A StateTransition handler settling with `settlement`, aggregator batch 1 ready for its
/// state update (program output and DA segment stored, as the Aggregator job left them), and
/// the StateTransition job of the batch, created through the engine.
async fn l2_settlement(settlement: MockSettlementClient) -> (Harness, JobItem) {
    let h = harness(Layer::L2, |c| {
        let mut ctx = SettlementJobContext::new(
            Arc::new(settlement),
            c.storage.clone(),
            c.database.clone(),
            Layer::L2,
        );
        ctx.polling_override = Some(std::time::Duration::ZERO);
        Arc::new(StateTransitionHandler::new(ctx))
    })
    .await;
    let mut batch = AggregatorBatch::new(1, SETTLED_BEFORE + 1, "0.13.2");
    batch.end_block = SETTLED_BEFORE + 3;
    batch.num_blocks = 3;
    batch.status = AggregatorBatchStatus::ReadyForStateUpdate;
    let aggregator = aggregator_metadata(&batch, false);
    h.config.database().create_aggregator_batch(batch).await.expect("batch");
    let storage = h.config.storage();
    let program_output = bincode::serialize(&vec![[1u8; 32], [2u8; 32]]).unwrap();
    storage
        .put_data(program_output.into(), aggregator.program_output_path.as_deref().unwrap())
        .await
        .expect("program output");
    let segment: Vec<String> = (1..=5u64).map(|v| felt_hex(&Felt::from(v))).collect();
    storage
        .put_data(
            serde_json::to_vec(&segment).unwrap().into(),
            aggregator.da_segment_path.as_deref().unwrap(),
        )
        .await
        .expect("DA segment");
    let mut parent =
        JobItem::new(JobType::Aggregator, 1, JobSpecificMetadata::Aggregator(aggregator));
    parent.status = JobStatus::Completed;
    let specific = JobSpecificMetadata::StateUpdate(state_update_metadata(Layer::L2, &parent));
    let job = service::create_job(&h.config, JobType::StateTransition, 1, specific)
        .await
        .expect("StateTransition job");
    (h, job)
}

async fn aggregator_batch_status(h: &Harness) -> AggregatorBatchStatus {
    let query = AggregatorBatchQuery { indexes: vec![1], ..Default::default() };
    h.config.database().get_aggregator_batches(query).await.expect("batches")[0].status
}

#[tokio::test]
async fn a_settlement_receipt_that_never_comes_times_out_and_nothing_is_sent_twice() {
    const TX: &str = "0x5e7";
    // StateTransition polls 10 times (verification 10 × 60 s).
    const POLLS: usize = 10;
    let mut settlement = MockSettlementClient::new();
    settlement.expect_get_last_settled_block().returning(|| Ok(Some(SETTLED_BEFORE)));
    settlement
        .expect_update_state_with_blobs()
        .withf(|update| update.blobs.len() == 1 && update.prior_attempts.is_empty())
        .times(1)
        .returning(|_| Ok(sent(TX)));
    settlement.expect_refresh_metrics().times(1).returning(|| Ok(SettlementMetrics::default()));
    settlement
        .expect_verify_tx_inclusion()
        .withf(|hash| hash == TX)
        .times(POLLS)
        .returning(|_| Ok(SettlementVerificationStatus::Pending));
    let (h, job) = l2_settlement(settlement).await;

    service::process_job(&h.config, job.id).await.expect("processed");
    for poll in 1..=POLLS {
        service::verify_job(&h.config, job.id).await.expect("polled");
        let polled = h.job(job.id).await;
        let want = if poll < POLLS {
            JobStatus::PendingVerification
        } else {
            JobStatus::VerificationTimeout
        };
        assert_eq!(polled.status, want, "after poll {poll}");
    }
    // A late processing message (a redelivery) does not send the update again: `times(1)`.
    service::process_job(&h.config, job.id).await.expect("dropped");

    let after = h.job(job.id).await;
    assert_eq!(after.status, JobStatus::VerificationTimeout);
    assert_eq!(after.external_id.to_string(), TX);
    assert_eq!(after.metadata.common.process_attempt_no, 1);
    assert_eq!(after.metadata.common.verification_attempt_no, POLLS as u64);
    assert_eq!(failure_reason(&after), "verification still pending after 10 attempts");
    let JobSpecificMetadata::StateUpdate(m) = &after.metadata.specific else {
        panic!("StateUpdate metadata")
    };
    assert_eq!(m.tx_hash.as_deref(), Some(TX));
    assert_eq!(m.tx_nonce, Some(7));
    assert_eq!(m.tx_attempts.len(), 1, "{:?}", m.tx_attempts);
    let titles = alert_titles(&h);
    assert_eq!(titles.len(), 1, "{titles:?}");
    assert!(titles[0].starts_with("Job verification timed out: StateTransition 1"), "{titles:?}");
    assert_eq!(aggregator_batch_status(&h).await, AggregatorBatchStatus::ReadyForStateUpdate);
}

#[tokio::test]
async fn a_reverted_settlement_is_processed_again_until_the_attempts_run_out() {
    // StateTransition: 3 processing attempts.
    const ATTEMPTS: usize = 3;
    const HASHES: [&str; ATTEMPTS] = ["0xa1", "0xa2", "0xa3"];
    let mut settlement = MockSettlementClient::new();
    settlement.expect_get_last_settled_block().returning(|| Ok(Some(SETTLED_BEFORE)));
    let sends = AtomicUsize::new(0);
    settlement
        .expect_update_state_with_blobs()
        .times(ATTEMPTS)
        .returning(move |_| Ok(sent(HASHES[sends.fetch_add(1, Ordering::SeqCst)])));
    settlement
        .expect_refresh_metrics()
        .times(ATTEMPTS)
        .returning(|| Ok(SettlementMetrics::default()));
    settlement.expect_verify_tx_inclusion().times(ATTEMPTS).returning(|hash| {
        Ok(SettlementVerificationStatus::Rejected(format!("{hash} reverted: INVALID_PREV_BLOCK")))
    });
    let (h, job) = l2_settlement(settlement).await;

    for (i, hash) in HASHES.iter().enumerate() {
        service::process_job(&h.config, job.id).await.expect("processed");
        let pending = h.job(job.id).await;
        assert_eq!(pending.status, JobStatus::PendingVerification);
        assert_eq!(pending.external_id.to_string(), *hash, "a new transaction per attempt");
        service::verify_job(&h.config, job.id).await.expect("verified");
        let after = h.job(job.id).await;
        assert_eq!(after.metadata.common.process_attempt_no, i as u64 + 1);
        let rejected = format!(
            "verification rejected: state update {hash} of aggregator batch 1: {hash} reverted: \
             INVALID_PREV_BLOCK"
        );
        assert_eq!(failure_reason(&after), rejected);
        if i + 1 < ATTEMPTS {
            assert_eq!(after.status, JobStatus::VerificationFailed, "attempt {}", i + 1);
            assert!(alert_titles(&h).is_empty());
        } else {
            assert_eq!(after.status, JobStatus::Failed);
            assert_eq!(after.metadata.common.previous_failure_reasons.len(), ATTEMPTS - 1);
        }
    }
    // A failed job is not processed again by a stray message: `times(ATTEMPTS)`.
    service::process_job(&h.config, job.id).await.expect("dropped");
    let titles = alert_titles(&h);
    assert_eq!(titles.len(), 1, "{titles:?}");
    assert!(titles[0].starts_with("Job failed: StateTransition 1"), "{titles:?}");
    assert_eq!(aggregator_batch_status(&h).await, AggregatorBatchStatus::ReadyForStateUpdate);
}

#[rstest]
#[case::reverted_in_simulation(SettlementError::Reverted {
    tx_hash: None,
    reason: "INVALID_BLOCK_NUMBER".into(),
})]
#[case::invalid_input(SettlementError::InvalidInput("y mismatch in blob 0".into()))]
#[case::not_confirmed(SettlementError::NotConfirmed { attempts: 3, bumps: 2 })]
#[case::fee_cap(SettlementError::FeeCapExceeded { needed_wei: 9, cap_wei: 1 })]
#[tokio::test]
async fn a_failed_state_update_fails_or_retries_as_the_error_says(#[case] error: SettlementError) {
    let retryable = Retryable::is_retryable(&error);
    let fee_cap = matches!(error, SettlementError::FeeCapExceeded { .. });
    let message = error.to_string();
    let mut settlement = MockSettlementClient::new();
    settlement.expect_get_last_settled_block().returning(|| Ok(Some(SETTLED_BEFORE)));
    settlement
        .expect_update_state_with_blobs()
        .times(1)
        .return_once(move |_| Err(StateUpdateTxError { error, attempts: Vec::new() }));
    settlement.expect_refresh_metrics().never();
    settlement.expect_verify_tx_inclusion().never();
    let (h, job) = l2_settlement(settlement).await;

    let result = service::process_job(&h.config, job.id).await;

    let after = h.job(job.id).await;
    let cause = format!("settling aggregator batch 1: {message}");
    assert!(after.external_id.to_string().is_empty());
    assert_eq!(after.metadata.common.process_attempt_no, 0);
    if retryable {
        let e = result.expect_err("a retryable error comes back to the queue");
        assert!(Retryable::is_retryable(&e), "{e}");
        assert_eq!(after.status, JobStatus::Created, "the prior status is restored");
        assert!(failure_reason(&after).starts_with("processing attempt failed"));
        assert!(failure_reason(&after).ends_with(&cause), "{}", failure_reason(&after));
        let upstream = if fee_cap { "settlement fee cap" } else { "settlement" };
        assert_eq!(alert_titles(&h), [format!("StateTransition jobs retrying: {upstream}")]);
        assert_eq!(aggregator_batch_status(&h).await, AggregatorBatchStatus::ReadyForStateUpdate);
    } else {
        result.expect("a fatal error is handled: the job fails");
        assert_eq!(after.status, JobStatus::Failed);
        assert_eq!(failure_reason(&after), format!("processing failed: {cause}"));
        assert_eq!(alert_titles(&h).len(), 1);
        assert_eq!(aggregator_batch_status(&h).await, AggregatorBatchStatus::StateUpdateFailed);
    }
}

#[tokio::test]
async fn a_state_update_that_needed_a_resend_alerts_with_every_attempt() {
    const DROPPED: &str = "0xd1";
    const LANDED: &str = "0xd2";
    let mut settlement = MockSettlementClient::new();
    settlement.expect_get_last_settled_block().returning(|| Ok(Some(SETTLED_BEFORE)));
    settlement.expect_update_state_with_blobs().times(1).returning(|_| {
        let mut out = sent(LANDED);
        out.block_number = Some(42);
        let mut dropped = out.attempts[0].clone();
        dropped.tx_hash = DROPPED.to_owned();
        dropped.status = TxAttemptStatus::Dropped;
        let mut landed = out.attempts[0].clone();
        landed.attempt_no = 2;
        landed.max_fee_per_gas = 3_000_000_000;
        landed.status = TxAttemptStatus::Finalized;
        out.attempts = vec![dropped, landed];
        Ok(out)
    });
    settlement.expect_refresh_metrics().times(1).returning(|| Ok(SettlementMetrics::default()));
    let (h, job) = l2_settlement(settlement).await;

    service::process_job(&h.config, job.id).await.expect("processed");

    let after = h.job(job.id).await;
    assert_eq!(after.status, JobStatus::PendingVerification);
    assert_eq!(after.external_id.to_string(), LANDED);
    let JobSpecificMetadata::StateUpdate(m) = &after.metadata.specific else {
        panic!("StateUpdate metadata")
    };
    assert_eq!(m.tx_attempts.len(), 2);
    assert_eq!(
        m.tx_attempts[0].error.as_deref(),
        Some("dropped from the pool unmined; sent again")
    );
    let alerts = h.alerts.0.lock().unwrap().clone();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].title, "State update of aggregator batch 1 needed 2 transactions");
    assert_eq!(alerts[0].severity, AlertSeverity::Warning);
    for line in [
        "batch: aggregator batch 1",
        "settled by: 0xd2 in block 42",
        "- #1 Dropped nonce 7 hash 0xd1 max_fee_per_gas 2000000000 wei, \
         max_priority_fee_per_gas 1000000000 wei, max_fee_per_blob_gas 1 wei (x1.10)",
        "- #2 Finalized nonce 7 hash 0xd2 max_fee_per_gas 3000000000 wei,",
    ] {
        assert!(alerts[0].body.contains(line), "{line:?} missing from {}", alerts[0].body);
    }
    let metrics = orchestrator_test_support::prometheus::Exposition::parse(
        &h.config.metrics.render_prometheus(),
    )
    .unwrap();
    assert_eq!(
        metrics.get("alerts_sent_total", &[("kind", "settlement_resent"), ("delivered", "true")]),
        Some(1.0)
    );
}

/// The batch is already settled when the job is processed (blocks 3..=5, the contract at 5).
/// With no attempt of ours recorded, nothing is asked of the client. With attempts recorded by
/// an earlier process that sent the update and died (the first dropped from the pool, the
/// second sent on the same nonce), the client is handed them to find the one that landed: the
/// job keeps that hash and the resend alert is raised, as if the process had lived.
#[rstest]
#[case::nothing_recorded(false)]
#[case::attempts_recorded_before_a_crash(true)]
#[tokio::test]
async fn an_already_settled_batch_reconciles_the_attempts_an_earlier_process_recorded(
    #[case] recorded: bool,
) {
    const DROPPED: &str = "0xd1";
    const LANDED: &str = "0xd2";
    let mut dropped = sent(DROPPED).attempts.remove(0);
    dropped.status = TxAttemptStatus::Dropped;
    let mut resent = sent(LANDED).attempts.remove(0);
    resent.attempt_no = 2;
    let prior = vec![dropped, resent];
    let mut settlement = MockSettlementClient::new();
    settlement.expect_get_last_settled_block().returning(|| Ok(Some(SETTLED_BEFORE + 3)));
    if recorded {
        let handed = prior.clone();
        settlement.expect_update_state_with_blobs().times(1).returning(move |update| {
            assert_eq!(update.prior_attempts, handed, "the recorded attempts are handed over");
            let mut attempts = update.prior_attempts;
            attempts[1].status = TxAttemptStatus::Finalized;
            Ok(StateUpdateOutcome {
                tx_hash: Some(LANDED.to_owned()),
                block_number: Some(42),
                attempts,
            })
        });
        settlement.expect_refresh_metrics().times(1).returning(|| Ok(SettlementMetrics::default()));
    } else {
        settlement.expect_update_state_with_blobs().never();
        settlement.expect_refresh_metrics().never();
    }
    let (h, job) = l2_settlement(settlement).await;
    if recorded {
        h.config
            .storage()
            .put_data(serde_json::to_vec(&prior).unwrap().into(), &tx_attempts_path(Layer::L2, 1))
            .await
            .expect("recorded attempts");
    }

    service::process_job(&h.config, job.id).await.expect("processed");

    let after = h.job(job.id).await;
    assert_eq!(after.status, JobStatus::PendingVerification);
    let JobSpecificMetadata::StateUpdate(m) = &after.metadata.specific else {
        panic!("StateUpdate metadata")
    };
    if recorded {
        assert_eq!(after.external_id.to_string(), LANDED);
        assert_eq!(m.tx_hash.as_deref(), Some(LANDED));
        assert_eq!(m.tx_attempts.len(), 2);
        assert_eq!(alert_titles(&h), ["State update of aggregator batch 1 needed 2 transactions"]);
        let body = h.alerts.0.lock().unwrap()[0].body.clone();
        assert!(body.contains("settled by: 0xd2 in block 42"), "{body}");
    } else {
        assert_eq!(after.external_id.to_string(), ZERO_TX_HASH);
        assert!(m.tx_attempts.is_empty());
        assert!(alert_titles(&h).is_empty(), "{:?}", alert_titles(&h));
    }
}

// ---------------------------------------------------------------------------------------------
// Proving: the prover answers garbage.

const TASK: &str = "task-1";
const PIE: &str = "1/cairo_pie.zip";
const PROOF: &str = "1/proof.json";

fn prover_context(prover: MockProverClient, c: &Clients) -> ProverContext {
    ProverContext {
        prover: Arc::new(prover),
        kind: ProverKind::Atlantic,
        layer: Layer::L2,
        storage: c.storage.clone(),
        database: c.database.clone(),
        polling_override: Some(std::time::Duration::ZERO),
    }
}

/// What the prover answers when the job is verified.
#[derive(Debug, Clone, Copy)]
enum Garbage {
    /// The status query answers something that is not a status.
    MalformedStatus,
    /// A proxy in front of the prover answers its HTML error page.
    ProxyErrorPage,
    /// The task succeeded, but its proof is not JSON.
    UnparsableProof,
}

#[rstest]
#[case::malformed_status(Garbage::MalformedStatus)]
#[case::proxy_error_page(Garbage::ProxyErrorPage)]
#[case::unparsable_proof(Garbage::UnparsableProof)]
#[tokio::test]
async fn a_prover_answering_garbage_fails_or_retries_as_the_error_says(#[case] garbage: Garbage) {
    let error = match garbage {
        Garbage::MalformedStatus => {
            ProverError::invalid_response("query status", "expected a JSON object, found `<<<`")
        }
        Garbage::ProxyErrorPage => {
            let body = "<html><body>502 Bad Gateway</body></html>";
            ProverError::Http {
                operation: "query status".into(),
                status: 502,
                body: body.into(),
                kind: classify_http_failure(502, body),
                retry_after: None,
            }
        }
        Garbage::UnparsableProof => {
            ProverError::InvalidProof("not JSON: expected value at line 1 column 1".into())
        }
    };
    let retryable = Retryable::is_retryable(&error);
    let message = error.to_string();
    let mut prover = MockProverClient::new();
    prover
        .expect_submit_task()
        .withf(|task| matches!(task, Task::CreateJob(info) if info.cairo_pie_zip == b"pie"))
        .times(1)
        .returning(|_| Ok(TASK.to_owned()));
    let status = prover
        .expect_get_task_status()
        .withf(|task_type, task_id, fact| {
            *task_type == TaskType::Job && task_id == TASK && fact.is_none()
        })
        .times(1);
    match garbage {
        Garbage::UnparsableProof => {
            status.returning(|_, _, _| Ok(TaskStatus::Succeeded));
            prover
                .expect_get_proof()
                .withf(|task_id| task_id == TASK)
                .times(1)
                .return_once(move |_| Err(error));
        }
        Garbage::MalformedStatus | Garbage::ProxyErrorPage => {
            status.return_once(move |_, _, _| Err(error));
            prover.expect_get_proof().never();
        }
    }
    let h = harness(Layer::L2, |c| {
        Arc::new(ProofCreationHandler::new(prover_context(prover, c))) as Arc<dyn JobHandlerTrait>
    })
    .await;
    h.config.storage().put_data(b"pie".to_vec().into(), PIE).await.expect("PIE");
    let specific = JobSpecificMetadata::Proving(ProvingMetadata {
        block_number: 1,
        input_path: Some(ProvingInputType::CairoPie(PIE.into())),
        download_proof: Some(PROOF.into()),
        ..Default::default()
    });
    let job = service::create_job(&h.config, JobType::ProofCreation, 1, specific).await.unwrap();
    service::process_job(&h.config, job.id).await.expect("submitted");
    assert_eq!(h.job(job.id).await.status, JobStatus::PendingVerification);

    let result = service::verify_job(&h.config, job.id).await;

    let after = h.job(job.id).await;
    assert_eq!(after.external_id.to_string(), TASK);
    assert!(
        matches!(h.config.storage().get_data(PROOF).await, Err(StorageError::NotFound(_))),
        "no proof is stored"
    );
    if retryable {
        let e = result.expect_err("a retryable error comes back to the queue");
        assert!(Retryable::is_retryable(&e), "{e}");
        assert!(e.to_string().ends_with(&message), "{e}");
        assert_eq!(after.status, JobStatus::PendingVerification);
        assert_eq!(after.metadata.common.verification_attempt_no, 0, "not counted as a poll");
        assert!(after.metadata.common.failure_reason.is_none());
        assert_eq!(alert_titles(&h), ["ProofCreation jobs retrying: prover"]);
    } else {
        result.expect("a rejection is handled: ProofCreation has one attempt");
        assert_eq!(after.status, JobStatus::Failed);
        assert!(failure_reason(&after).starts_with("verification rejected: "));
        assert!(failure_reason(&after).ends_with(&message), "{}", failure_reason(&after));
        let titles = alert_titles(&h);
        assert_eq!(titles.len(), 1, "{titles:?}");
        assert!(titles[0].starts_with("Job failed: ProofCreation 1"), "{titles:?}");
    }
}

/// The prover's HTTP 503.
fn unavailable(operation: &str) -> ProverError {
    let body = "Service Unavailable";
    ProverError::Http {
        operation: operation.into(),
        status: 503,
        body: body.into(),
        kind: classify_http_failure(503, body),
        retry_after: None,
    }
}

#[tokio::test]
async fn a_prover_outage_alerts_once_per_retry_streak() {
    // Submitting fails three times, then works; the first status query fails again.
    const FAILED_SUBMITS: usize = 3;
    let mut prover = MockProverClient::new();
    let submits = AtomicUsize::new(0);
    prover.expect_submit_task().times(FAILED_SUBMITS + 1).returning(move |_| {
        if submits.fetch_add(1, Ordering::SeqCst) < FAILED_SUBMITS {
            Err(unavailable("submit task"))
        } else {
            Ok(TASK.to_owned())
        }
    });
    prover.expect_get_task_status().times(1).returning(|_, _, _| Err(unavailable("query status")));
    prover.expect_get_proof().never();
    let h = harness(Layer::L2, |c| {
        Arc::new(ProofCreationHandler::new(prover_context(prover, c))) as Arc<dyn JobHandlerTrait>
    })
    .await;
    h.config.storage().put_data(b"pie".to_vec().into(), PIE).await.expect("PIE");
    let specific = JobSpecificMetadata::Proving(ProvingMetadata {
        block_number: 1,
        input_path: Some(ProvingInputType::CairoPie(PIE.into())),
        download_proof: Some(PROOF.into()),
        ..Default::default()
    });
    let job = service::create_job(&h.config, JobType::ProofCreation, 1, specific).await.unwrap();

    for _ in 0..FAILED_SUBMITS {
        let e = service::process_job(&h.config, job.id).await.expect_err("retried");
        assert!(Retryable::is_retryable(&e), "{e}");
    }
    let alerts = h.alerts.0.lock().unwrap().clone();
    assert_eq!(alerts.len(), 1, "one alert for the streak of {FAILED_SUBMITS}: {alerts:?}");
    assert_eq!(alerts[0].title, "ProofCreation jobs retrying: prover");
    assert_eq!(alerts[0].severity, AlertSeverity::Warning);
    for line in [
        format!("job_id: {}", job.id),
        "upstream: prover".to_owned(),
        "operation: processing".to_owned(),
        "attempt: 1".to_owned(),
        "503".to_owned(),
    ] {
        assert!(alerts[0].body.contains(&line), "{line:?} missing from {}", alerts[0].body);
    }

    // A success ends the streak; the next failure (of the verification) starts a new one.
    service::process_job(&h.config, job.id).await.expect("submitted");
    assert_eq!(h.job(job.id).await.status, JobStatus::PendingVerification);
    assert_eq!(alert_titles(&h).len(), 1);
    service::verify_job(&h.config, job.id).await.expect_err("retried");
    let alerts = h.alerts.0.lock().unwrap().clone();
    assert_eq!(
        alerts.iter().map(|a| a.title.as_str()).collect::<Vec<_>>(),
        ["ProofCreation jobs retrying: prover"; 2]
    );
    assert!(alerts[1].body.contains("operation: verification"), "{}", alerts[1].body);
    let metrics = orchestrator_test_support::prometheus::Exposition::parse(
        &h.config.metrics.render_prometheus(),
    )
    .unwrap();
    assert_eq!(
        metrics.get("alerts_sent_total", &[("kind", "job_retrying"), ("delivered", "true")]),
        Some(2.0)
    );
}

#[tokio::test]
/// A proxy's page (or a download cut short) in place of the aggregator PIE is not stored as
/// the batch's PIE: the verification fails retryably, the artifacts are downloaded again on the
/// next delivery, and the job and batch stay where they were.
async fn aggregation_artifacts_that_do_not_read_are_downloaded_again_not_stored() {
    const BUCKET: &str = "bucket-1";
    let mut prover = MockProverClient::new();
    prover
        .expect_submit_task()
        .withf(|task| matches!(task, Task::RunAggregation(bucket) if bucket == BUCKET))
        .times(1)
        .returning(|_| Ok(BUCKET.to_owned()));
    prover
        .expect_get_task_status()
        .withf(|task_type, id, _| *task_type == TaskType::Aggregation && id == BUCKET)
        .times(1)
        .returning(|_, _, _| Ok(TaskStatus::Succeeded));
    prover.expect_get_aggregation_artifacts().times(1).returning(|_, _| {
        Ok(AggregationArtifacts {
            cairo_pie: Some(b"<html>not a zip</html>".to_vec()),
            ..Default::default()
        })
    });
    let h = harness(Layer::L2, |c| {
        Arc::new(AggregatorHandler::new(prover_context(prover, c), Arc::new(UnavailableAggregator)))
            as Arc<dyn JobHandlerTrait>
    })
    .await;
    let mut batch = AggregatorBatch::new(1, 3, "0.13.2");
    batch.bucket_id = Some(BUCKET.into());
    batch.status = AggregatorBatchStatus::Closed;
    let specific = JobSpecificMetadata::Aggregator(aggregator_metadata(&batch, false));
    h.config.database().create_aggregator_batch(batch).await.expect("batch");
    let job = service::create_job(&h.config, JobType::Aggregator, 1, specific).await.unwrap();
    service::process_job(&h.config, job.id).await.expect("bucket closed");
    assert_eq!(
        aggregator_batch_status(&h).await,
        AggregatorBatchStatus::PendingAggregatorVerification
    );

    let e = service::verify_job(&h.config, job.id).await.expect_err("a broken download");
    assert!(Retryable::is_retryable(&e), "{e}");
    assert!(e.to_string().contains("the downloaded aggregator PIE does not read"), "{e}");

    let after = h.job(job.id).await;
    assert_eq!(after.status, JobStatus::PendingVerification, "tried again, not failed");
    assert_eq!(
        aggregator_batch_status(&h).await,
        AggregatorBatchStatus::PendingAggregatorVerification
    );
    let JobSpecificMetadata::Aggregator(m) = &after.metadata.specific else {
        panic!("aggregator metadata")
    };
    let pie_path = m.cairo_pie_path.clone().expect("a PIE path");
    assert!(h.config.storage().get_data(&pie_path).await.is_err(), "nothing was stored");
}

// ---------------------------------------------------------------------------------------------
// DataSubmission (L3): SNOS batch 1 covers blocks 1..=2.

const VERSION: &str = "0.13.2";

/// A node with blocks 0..=2, each of 1..=2 writing one storage slot.
fn node() -> InMemoryMadara {
    let node = InMemoryMadara::new();
    node.push_block(VERSION, None);
    node.push_blocks(2, VERSION);
    node
}

/// A DataSubmission handler over `node` and `da`, SNOS batch 1, and its DataSubmission job,
/// created through the engine.
async fn l3_data_submission(node: Arc<dyn MadaraClient>, da: MockDaClient) -> (Harness, JobItem) {
    let h = harness(Layer::L3, |c| {
        let mut ctx =
            DataSubmissionContext::new(node, Arc::new(da), c.storage.clone(), c.database.clone());
        ctx.polling_override = Some(std::time::Duration::ZERO);
        Arc::new(DataSubmissionHandler::new(ctx))
    })
    .await;
    let mut batch = SnosBatch::new(1, None, 1, VERSION, BouncerWeights::default());
    batch.end_block = 2;
    batch.num_blocks = 2;
    h.config.database().create_snos_batch(batch).await.expect("SNOS batch");
    let specific = JobSpecificMetadata::Da(DaMetadata {
        block_number: 1,
        blob_data_path: Some(blob_data_path(1)),
        tx_hash: None,
    });
    let job = service::create_job(&h.config, JobType::DataSubmission, 1, specific)
        .await
        .expect("DataSubmission job");
    (h, job)
}

#[rstest]
#[case::transport(MadaraError::Transport {
    what: "starknet_getStateUpdate".into(),
    reason: "connection reset by peer".into(),
})]
#[case::rate_limited(MadaraError::RateLimited("starknet_getStateUpdate".into()))]
#[case::malformed(MadaraError::Malformed {
    what: "starknet_getStateUpdate".into(),
    reason: "no state_diff".into(),
})]
#[tokio::test]
async fn a_node_error_mid_data_submission_fails_or_retries_as_the_error_says(
    #[case] error: MadaraError,
) {
    let retryable = Retryable::is_retryable(&error);
    let message = error.to_string();
    let first = node().state_update(1).await.expect("block 1");
    let mut node = MockMadaraClient::new();
    node.expect_state_update().withf(|block| *block == 1).times(1).return_const(Ok(first));
    node.expect_state_update().withf(|block| *block == 2).times(1).return_const(Err(error));
    let mut da = MockDaClient::new();
    da.expect_publish_state_diff().never();
    let (h, job) = l3_data_submission(Arc::new(node), da).await;

    let result = service::process_job(&h.config, job.id).await;

    let after = h.job(job.id).await;
    let cause = format!("state update of block 2: {message}");
    assert!(after.external_id.to_string().is_empty(), "nothing published");
    assert_eq!(after.metadata.specific, job.metadata.specific, "the job's data is unchanged");
    assert_eq!(after.metadata.common.process_attempt_no, 0);
    assert!(
        matches!(
            h.config.storage().get_data(&blob_data_path(1)).await,
            Err(StorageError::NotFound(_))
        ),
        "no blobs are stored"
    );
    if retryable {
        let e = result.expect_err("a retryable error comes back to the queue");
        assert!(Retryable::is_retryable(&e), "{e}");
        assert_eq!(after.status, JobStatus::Created, "the prior status is restored");
        assert!(after.metadata.common.process_started_at.is_none(), "not left locked");
        assert!(failure_reason(&after).starts_with("processing attempt failed"));
        assert!(failure_reason(&after).ends_with(&cause), "{}", failure_reason(&after));
        assert_eq!(alert_titles(&h), ["DataSubmission jobs retrying: node"]);
    } else {
        result.expect("a fatal error is handled: the job fails");
        assert_eq!(after.status, JobStatus::Failed);
        assert_eq!(failure_reason(&after), format!("processing failed: {cause}"));
        assert_eq!(alert_titles(&h).len(), 1);
    }
}

/// Where the DA layer fails.
#[derive(Debug, Clone, Copy, PartialEq)]
enum DaStage {
    Publish,
    Verify,
}

#[rstest]
#[case::publish_rpc(DaStage::Publish, DaError::Rpc("timed out".into()))]
#[case::publish_invalid(DaStage::Publish, DaError::InvalidInput("7 blobs; at most 6".into()))]
#[case::verify_rpc(DaStage::Verify, DaError::Rpc("503 Service Unavailable".into()))]
#[case::verify_invalid(DaStage::Verify, DaError::InvalidInput("not a transaction hash".into()))]
#[tokio::test]
async fn a_da_error_fails_or_retries_as_the_error_says(
    #[case] stage: DaStage,
    #[case] error: DaError,
) {
    const PUBLICATION: &str = "0xb10b";
    let retryable = Retryable::is_retryable(&error);
    let message = error.to_string();
    let mut da = MockDaClient::new();
    let publish = da
        .expect_publish_state_diff()
        .withf(|blobs, _to| blobs.len() == 1 && blobs.iter().all(|b| b.len() == 131_072))
        .times(1);
    match stage {
        DaStage::Publish => {
            publish.return_const(Err(error));
            da.expect_verify_inclusion().never();
        }
        DaStage::Verify => {
            publish.return_const(Ok(PUBLICATION.to_owned()));
            da.expect_verify_inclusion()
                .withf(|id| id == PUBLICATION)
                .times(1)
                .return_const(Err(error));
        }
    }
    let (h, job) = l3_data_submission(Arc::new(node()), da).await;

    let result = match stage {
        DaStage::Publish => service::process_job(&h.config, job.id).await,
        DaStage::Verify => {
            service::process_job(&h.config, job.id).await.expect("published");
            service::verify_job(&h.config, job.id).await
        }
    };

    let after = h.job(job.id).await;
    let JobSpecificMetadata::Da(m) = &after.metadata.specific else { panic!("Da metadata") };
    match (stage, retryable) {
        (DaStage::Publish, true) => {
            let e = result.expect_err("a retryable error comes back to the queue");
            assert!(Retryable::is_retryable(&e), "{e}");
            assert_eq!(after.status, JobStatus::Created, "the prior status is restored");
            assert!(after.external_id.to_string().is_empty());
            assert_eq!(m.tx_hash, None);
            assert!(failure_reason(&after).ends_with(&message), "{}", failure_reason(&after));
            assert_eq!(alert_titles(&h), ["DataSubmission jobs retrying: DA layer"]);
        }
        (DaStage::Publish, false) => {
            result.expect("a fatal error is handled: the job fails");
            assert_eq!(after.status, JobStatus::Failed);
            assert_eq!(
                failure_reason(&after),
                format!("processing failed: publishing the state diff of SNOS batch 1: {message}")
            );
            assert_eq!(alert_titles(&h).len(), 1);
        }
        (DaStage::Verify, true) => {
            let e = result.expect_err("a retryable error comes back to the queue");
            assert!(Retryable::is_retryable(&e), "{e}");
            assert_eq!(after.status, JobStatus::PendingVerification);
            assert_eq!(after.external_id.to_string(), PUBLICATION);
            assert_eq!(after.metadata.common.verification_attempt_no, 0, "not counted as a poll");
            assert_eq!(alert_titles(&h), ["DataSubmission jobs retrying: DA layer"]);
        }
        (DaStage::Verify, false) => {
            result.expect("a fatal error is handled: the job fails");
            assert_eq!(after.status, JobStatus::Failed);
            assert_eq!(
                failure_reason(&after),
                format!("verification failed: checking the publication {PUBLICATION}: {message}")
            );
            assert_eq!(alert_titles(&h).len(), 1);
        }
    }
}
