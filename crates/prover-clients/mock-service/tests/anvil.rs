//! The mock prover against a real Anvil with the `MockGpsVerifier` deployed: the aggregation
//! registers its fact on chain and is `Succeeded` only once `isValid(fact)` is true; without a
//! verifier the fact is echoed.
//!
//! Needs Anvil (`scripts/anvil.sh`); `ORCH_SKIP_ANVIL_TESTS=1` skips.

use std::sync::Arc;

use alloy::{
    primitives::{B256, U256},
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use orchestrator_ethereum_settlement_client::testing::{
    deploy_contracts, register_fact, ANVIL_KEY_0, ANVIL_KEY_1,
};
use orchestrator_gps_fact_checker::{FactRegistrar, FactRegistry, GpsFactChecker};
use orchestrator_mock_service::MockProverService;
use orchestrator_prover_client_interface::{
    ApplicativeJobInfo, ProverClient, ProverError, Retryable, Task, TaskStatus, TaskType,
};
use orchestrator_test_support::anvil::{Anvil, AnvilConfig};

fn aggregation(fact: &str) -> Task {
    Task::RunAggregationWithPie(ApplicativeJobInfo {
        cairo_pie_zip: vec![],
        children_cairo_job_keys: vec!["0x1".into(), "0x2".into()],
        fact_hash: fact.into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregation_registers_the_fact_and_succeeds_once_valid() {
    let Some(anvil) = Anvil::start(AnvilConfig::new("cancun")).await else {
        return;
    };
    let url = anvil.url();
    let verifier = deploy_contracts(&url, ANVIL_KEY_0, U256::from(7), U256::ZERO, -1, false)
        .await
        .expect("deploy")
        .verifier;
    let registrar = Arc::new(FactRegistrar::new(url.clone(), ANVIL_KEY_1, verifier).unwrap());
    let prover = MockProverService::new(Some(registrar));
    let checker = GpsFactChecker::new(url.clone(), verifier);
    let from = ANVIL_KEY_1.parse::<PrivateKeySigner>().unwrap().address();
    let node = ProviderBuilder::new().connect_http(url.clone());

    // Not yet registered: the aggregation is still processing.
    let fact = B256::repeat_byte(0x5a);
    let fact_hex = fact.to_string();
    assert_eq!(
        prover.get_task_status(TaskType::Aggregation, "agg-1", Some(&fact_hex)).await.unwrap(),
        TaskStatus::Processing
    );

    let before = node.get_transaction_count(from).await.unwrap();
    let external_id = prover.submit_task(aggregation(&fact_hex)).await.unwrap();
    let tx: B256 = external_id.parse().expect("a transaction hash");
    assert_ne!(tx, B256::ZERO);
    let receipt = node
        .get_transaction_receipt(tx)
        .await
        .unwrap()
        .expect("the registration is mined before submit returns");
    assert!(receipt.status());
    assert_eq!(receipt.to, Some(verifier));
    assert!(checker.is_valid(fact).await.unwrap());
    assert_eq!(
        prover.get_task_status(TaskType::Aggregation, &external_id, Some(&fact_hex)).await.unwrap(),
        TaskStatus::Succeeded
    );
    assert_eq!(node.get_transaction_count(from).await.unwrap(), before + 1);

    // Submitting again (a retried job): no transaction, the zero hash.
    assert_eq!(prover.submit_task(aggregation(&fact_hex)).await.unwrap(), B256::ZERO.to_string());
    assert_eq!(node.get_transaction_count(from).await.unwrap(), before + 1);

    // A fact registered by someone else counts as well (status reads the chain).
    let other = B256::with_last_byte(0x77);
    assert_eq!(
        prover.get_task_status(TaskType::Aggregation, "agg-2", Some("0x77")).await.unwrap(),
        TaskStatus::Processing
    );
    register_fact(&url, ANVIL_KEY_0, verifier, other).await.unwrap();
    assert_eq!(
        prover.get_task_status(TaskType::Aggregation, "agg-2", Some("0x77")).await.unwrap(),
        TaskStatus::Succeeded
    );
    // Other task types never look at the chain.
    assert_eq!(
        prover
            .get_task_status(TaskType::Job, "job", Some(&B256::repeat_byte(9).to_string()))
            .await
            .unwrap(),
        TaskStatus::Succeeded
    );
    // A malformed fact is refused before anything is sent.
    assert!(prover.submit_task(aggregation("0xnot-a-fact")).await.is_err());
    assert_eq!(node.get_transaction_count(from).await.unwrap(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_verifier_the_fact_is_echoed() {
    let prover = MockProverService::new(None);
    let fact = B256::repeat_byte(0x5a).to_string();
    assert_eq!(prover.submit_task(aggregation(&fact)).await.unwrap(), fact);
    assert_eq!(
        prover.get_task_status(TaskType::Aggregation, &fact, Some(&fact)).await.unwrap(),
        TaskStatus::Succeeded
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_node_is_a_retryable_fact_check_error() {
    let port = orchestrator_test_support::launch::free_port();
    let url: url::Url = format!("http://127.0.0.1:{port}").parse().unwrap();
    let registrar =
        FactRegistrar::new(url, ANVIL_KEY_1, alloy::primitives::Address::repeat_byte(1)).unwrap();
    let prover = MockProverService::new(Some(Arc::new(registrar)));
    let fact = B256::repeat_byte(1).to_string();
    let err = prover.submit_task(aggregation(&fact)).await.unwrap_err();
    assert!(matches!(err, ProverError::FactCheck(_)), "{err:?}");
    assert!(err.is_retryable(), "{err}");
    let err = prover.get_task_status(TaskType::Aggregation, "x", Some(&fact)).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
}
