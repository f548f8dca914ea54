//! The Atlantic client's L3 fact check against the mock Atlantic server and a real
//! starknet-devnet with the Cairo `FactRegistry` (the mock registers each L2 verification's
//! fact there, as Atlantic's verification on Starknet would), and the chain id and fee token
//! of new buckets. The devnet test is skipped with `ORCH_SKIP_DEVNET_TESTS=1`.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use async_trait::async_trait;
use orchestrator_atlantic_service::{
    types::{AtlanticAggregatorParams, AtlanticQueryStep},
    AtlanticConfig, AtlanticProverService, AtlanticSettlementLayer, ChainIdSource,
};
use orchestrator_gps_fact_checker::{fact::Felt, l3_fact, StarknetFactRegistry};
use orchestrator_mock_atlantic_server::{
    MockAtlanticConfig, MockAtlanticServer, StarknetFactRegistration,
};
use orchestrator_prover_client_interface::{
    public_output::proof_with_public_output, ProverClient, ProverError, RetryPolicy, Retryable,
    Task, TaskStatus, TaskType,
};
use orchestrator_starknet_settlement_client::testing::{
    deploy_core_contract, predeployed_accounts, InitialState,
};
use orchestrator_test_support::devnet::{Devnet, DevnetConfig};
use orchestrator_utils::Secret;

const KEY: &str = "test-api-key";
const VERIFIER_PROGRAM_HASH: &str = "0x1234";

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

fn config(server: &MockAtlanticServer, layer: AtlanticSettlementLayer) -> AtlanticConfig {
    AtlanticConfig {
        service_url: server.url(),
        api_key: Secret::new(KEY.into()),
        artifacts_base_url: server.url(),
        mock_fact_hash: false,
        network: "TESTNET".into(),
        cairo_vm: "rust".into(),
        result: AtlanticQueryStep::ProofGeneration,
        sharp_prover: "stone".into(),
        settlement_layer: layer,
        proof_layout: "dynamic".into(),
        cairo_verifier_program_hash: Some(VERIFIER_PROGRAM_HASH.into()),
        aggregator_params: AtlanticAggregatorParams {
            use_kzg_da: true,
            fee_token_address: Some("0x4718".into()),
            ..Default::default()
        },
        retry: RetryPolicy::new(Duration::from_millis(20), Duration::from_secs(2)),
        request_timeout: Duration::from_secs(5),
    }
}

async fn wait_status(s: &AtlanticProverService, id: &str, fact: Option<&str>) -> TaskStatus {
    for _ in 0..300 {
        match s.get_task_status(TaskType::Job, id, fact).await.unwrap() {
            TaskStatus::Processing => tokio::time::sleep(Duration::from_millis(50)).await,
            done => return done,
        }
    }
    panic!("{id} still processing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l2_verification_queries_are_done_once_their_fact_is_in_the_starknet_registry() {
    let Some(devnet) = Devnet::start_with(DevnetConfig::new().full_state_archive(false)).await
    else {
        return;
    };
    let accounts = predeployed_accounts(&devnet.url).await.unwrap();
    let registry = deploy_core_contract(
        &devnet.url,
        accounts[0].address,
        accounts[0].private_key,
        InitialState::default(),
        Felt::from_hex(VERIFIER_PROGRAM_HASH).unwrap(),
        true,
    )
    .await
    .unwrap()
    .fact_registry
    .expect("a fact registry");
    let s = server(|c| {
        c.starknet_fact_registration = Some(StarknetFactRegistration {
            rpc_url: devnet.url.clone(),
            account: accounts[1].address,
            private_key: accounts[1].private_key,
            registry,
        })
    })
    .await;
    let checked = |program_hash: &str| {
        let mut config = config(&s, AtlanticSettlementLayer::Starknet);
        config.cairo_verifier_program_hash = Some(program_hash.into());
        AtlanticProverService::new(
            config,
            Some(Arc::new(StarknetFactRegistry::new(devnet.url.clone(), registry))),
        )
        .unwrap()
    };
    let service = checked(VERIFIER_PROGRAM_HASH);

    // The proof to verify, whose public output the verification's proof exposes too.
    let output: Vec<Felt> = (1..=6u64).map(|i| Felt::from(i * 101)).collect();
    let proof = serde_json::json!({ "proof": proof_with_public_output("dynamic", 32768, &output) });
    let query = service.submit_l2_query("job-1", &proof.to_string(), None).await.unwrap();
    // The keccak fact the job carries is no Starknet fact: it is not what is checked.
    let keccak_fact = format!("0x{}", "ff".repeat(32));
    assert_eq!(wait_status(&service, &query, Some(&keccak_fact)).await, TaskStatus::Succeeded);

    // The fact the core contract will check is what was found registered.
    let fact = l3_fact(Felt::from_hex(VERIFIER_PROGRAM_HASH).unwrap(), &output);
    let reader = StarknetFactRegistry::new(devnet.url.clone(), registry);
    assert!(reader.is_registered(fact).await.unwrap());

    // The same done query checked with another verifier program hash: its fact is another
    // one, never registered. Rejected, naming it.
    let fact = l3_fact(Felt::from_hex("0x1235").unwrap(), &output);
    match wait_status(&checked("0x1235"), &query, Some(&keccak_fact)).await {
        TaskStatus::Failed(reason) => {
            assert!(reason.contains(&format!("{fact:#x}")), "{reason}");
            assert!(reason.contains("not registered in the Starknet fact registry"), "{reason}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }

    // A node that cannot be reached: a retryable error, never "not registered".
    let unreachable = AtlanticProverService::new(
        config(&s, AtlanticSettlementLayer::Starknet),
        Some(Arc::new(StarknetFactRegistry::new("http://127.0.0.1:9/".parse().unwrap(), registry))),
    )
    .unwrap();
    let err = unreachable.get_task_status(TaskType::Job, &query, None).await.unwrap_err();
    assert!(matches!(err, ProverError::FactCheck(_)) && err.is_retryable(), "{err}");

    // A proving query (`PROOF_GENERATION`) registers no fact on Starknet: done when Atlantic
    // says so, whatever fact the job carries.
    let pie = any_pie();
    let proving = service
        .submit_task(Task::CreateJob(orchestrator_prover_client_interface::CreateJobInfo {
            cairo_pie_zip: pie,
            bucket_id: None,
            bucket_job_index: None,
            num_steps: Some(1_000),
            dedup_id: "proving-1".into(),
        }))
        .await
        .unwrap();
    assert_eq!(wait_status(&service, &proving, Some(&keccak_fact)).await, TaskStatus::Succeeded);
}

/// Any zip is a PIE to the mock.
fn any_pie() -> Vec<u8> {
    let mut v = b"PK\x03\x04".to_vec();
    v.extend([0u8; 64]);
    v
}

/// A chain id source that counts its reads, or fails.
#[derive(Debug)]
struct CountingChainId {
    reads: AtomicUsize,
    answer: Result<Felt, String>,
}

#[async_trait]
impl ChainIdSource for CountingChainId {
    async fn chain_id(&self) -> Result<Felt, String> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.answer.clone()
    }
}

async fn bucket_params(s: &MockAtlanticServer, bucket: &str) -> serde_json::Value {
    let answer: serde_json::Value = reqwest::Client::new()
        .get(s.url().join(&format!("buckets/{bucket}")).unwrap())
        .header("api-key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["bucket"]["aggregatorParams"].clone()
}

#[tokio::test]
async fn buckets_carry_the_node_chain_id_read_once_and_the_fee_token() {
    let s = server(|_| {}).await;
    // SN_SEPOLIA.
    let chain_id = Felt::from_hex("0x534e5f5345504f4c4941").unwrap();
    let source = Arc::new(CountingChainId { reads: AtomicUsize::new(0), answer: Ok(chain_id) });
    let service = AtlanticProverService::new(config(&s, AtlanticSettlementLayer::Ethereum), None)
        .unwrap()
        .with_chain_id_source(source.clone());
    for _ in 0..2 {
        let bucket = service.submit_task(Task::CreateBucket).await.unwrap();
        let params = bucket_params(&s, &bucket).await;
        assert_eq!(params["chain_id_hex"], "0x534e5f5345504f4c4941", "{params}");
        assert_eq!(params["fee_token_address"], "0x4718", "{params}");
        assert_eq!(params["use_kzg_da"], true, "{params}");
    }
    assert_eq!(source.reads.load(Ordering::SeqCst), 1, "the chain id is read once");

    // A chain id given in the parameters wins; the source is not asked.
    let mut given = config(&s, AtlanticSettlementLayer::Ethereum);
    given.aggregator_params.chain_id_hex = Some("0x1".into());
    let unused = Arc::new(CountingChainId { reads: AtomicUsize::new(0), answer: Ok(chain_id) });
    let service =
        AtlanticProverService::new(given, None).unwrap().with_chain_id_source(unused.clone());
    let bucket = service.submit_task(Task::CreateBucket).await.unwrap();
    assert_eq!(bucket_params(&s, &bucket).await["chain_id_hex"], "0x1");
    assert_eq!(unused.reads.load(Ordering::SeqCst), 0);

    // A node that does not answer: no bucket, a retryable error that says what was read.
    let down = Arc::new(CountingChainId {
        reads: AtomicUsize::new(0),
        answer: Err("starknet_chainId on the Madara node: connection refused".into()),
    });
    let service = AtlanticProverService::new(config(&s, AtlanticSettlementLayer::Ethereum), None)
        .unwrap()
        .with_chain_id_source(down);
    let err = service.submit_task(Task::CreateBucket).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("chain id of a new bucket") && text.contains("connection refused"),
        "{text}"
    );
}
