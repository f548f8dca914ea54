//! L3 settlement on a real starknet-devnet with our Cairo core contract: a completed
//! DataSubmission job of SNOS batch 1 whose OS output and both proofs are stored → the
//! UpdateState trigger creates the StateTransition → the engine sends `update_state` and
//! verifies it → the contract's block number is the batch's end, the job and the SNOS batch
//! are Completed. And the failures an operator meets: a batch that does not follow the
//! contract's state, an account that is not a registered operator, and a proof of something
//! else end `Failed` with the reason, without a retry storm (one process attempt, no second
//! transaction).
//!
//! Needs starknet-devnet (`scripts/devnet.sh install`); `ORCH_SKIP_DEVNET_TESTS=1` skips.

use orchestrator::worker::Config;
use std::{net::SocketAddr, sync::Arc, time::Duration};

use orchestrator::{
    app::Orchestrator,
    core::client::embedded,
    types::{
        batch::{BouncerWeights, SnosBatch, SnosBatchQuery, SnosBatchStatus},
        jobs::{DaMetadata, JobItem, JobSpecificMetadata, JobStatus, JobType},
        Layer,
    },
    worker::{
        handler::JobHandlers,
        stages::{
            data_submission::blob_data_path,
            state_transition::{l3_proof_paths, SettlementJobContext},
        },
        stages::{register, state_transition::workers},
        trigger::Triggers,
    },
};
use orchestrator_protocol::compression::io::felt_hex;
use orchestrator_prover_client_interface::public_output::proof_with_public_output;
use orchestrator_settlement_client_interface::SettlementClient;
use orchestrator_starknet_settlement_client::{
    testing::{deploy_core_contract, predeployed_accounts, InitialState},
    StarknetSettlementClient, StarknetSettlementConfig,
};
use orchestrator_test_support::devnet::{Devnet, DevnetConfig};
use starknet::core::types::Felt;

/// An OS output (calldata DA: KZG flag 0, full output) settling blocks `prev + 1 ..= new`,
/// with a small state diff after the header.
fn os_output(prev: Felt, new: u64) -> Vec<Felt> {
    let f = Felt::from;
    let mut out = vec![f(0), f(0x77), prev, f(new), f(0xa), f(0xb), f(0x5eed), f(0), f(0), f(1)];
    out.extend([f(0), f(0)]); // no messages
    out.extend([f(1), f(0x1234), f(0), f(0), f(0), f(0), f(1), f(5), f(0), f(6)]); // one write
    out.push(f(0)); // no classes
    out
}

struct Env {
    _orch: Orchestrator,
    config: Arc<Config>,
    client: Arc<StarknetSettlementClient>,
    _devnet: Devnet,
    _dir: tempfile::TempDir,
}

/// A devnet with the core contract (nothing settled, no fact registry), and the settlement
/// stage of an L3 over it, signing with predeployed account `signer` (account 0 owns the
/// contract and is its only operator).
async fn env(signer: usize) -> Option<Env> {
    let devnet = Devnet::start_with(DevnetConfig::new().full_state_archive(false)).await?;
    let accounts = predeployed_accounts(&devnet.url).await.unwrap();
    let owner = accounts[0];
    let deployed = deploy_core_contract(
        &devnet.url,
        owner.address,
        owner.private_key,
        InitialState::default(),
        Felt::from(0x5eed),
        false,
    )
    .await
    .unwrap();
    let account = accounts[signer];
    let mut sc = StarknetSettlementConfig::new(
        devnet.url.clone(),
        account.address,
        account.private_key,
        deployed.core,
    );
    sc.finality_retry_wait = Duration::from_millis(200);
    let client = Arc::new(StarknetSettlementClient::new(sc));
    let dir = tempfile::tempdir().unwrap();
    let clients = embedded::open(dir.path(), &embedded::EmbeddedOptions::default()).await.unwrap();
    let mut ctx = SettlementJobContext::new(
        client.clone(),
        clients.storage.clone(),
        clients.database.clone(),
        Layer::L3,
    );
    ctx.polling_override = Some(Duration::from_millis(200));
    let (handlers, triggers) = register(workers(ctx), JobHandlers::new(), Triggers::new());
    let engine = crate::support::fast_engine();
    let config = Arc::new(Config::new(Layer::L3, clients, handlers, triggers, engine));
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let orch = Orchestrator::start_with(config.clone(), addr, None).await.unwrap();
    Some(Env { _orch: orch, config, client, _devnet: devnet, _dir: dir })
}

impl Env {
    /// SNOS batch 1 (blocks 0..=2) with a Completed DataSubmission job, the OS output and the
    /// two proofs stored (the SNOS proof's output is `proven`).
    async fn seed(&self, os: &[Felt], proven: &[Felt]) {
        let db = self.config.database();
        let mut batch = SnosBatch::new(1, None, 0, "0.14.1", BouncerWeights::ZERO);
        batch.end_block = 2;
        batch.num_blocks = 3;
        batch.status = SnosBatchStatus::SnosJobCreated;
        db.create_snos_batch(batch).await.unwrap();
        let storage = self.config.storage();
        let hex: Vec<String> = os.iter().map(felt_hex).collect();
        storage
            .put_data(serde_json::to_vec(&hex).unwrap().into(), "1/snos_output.json")
            .await
            .unwrap();
        let (snos_proof, bridge_proof) = l3_proof_paths(1);
        let p1 = proof_with_public_output("dynamic", 1 << 16, proven);
        storage.put_data(p1.to_string().into_bytes().into(), &snos_proof).await.unwrap();
        // The L2 verifier's output: what the contract checks the fact of.
        let p2 = proof_with_public_output(
            "recursive_with_poseidon",
            1 << 20,
            &[Felt::from(0x5eed), Felt::from(3)],
        );
        storage.put_data(p2.to_string().into_bytes().into(), &bridge_proof).await.unwrap();
        let m = DaMetadata {
            block_number: 0,
            blob_data_path: Some(blob_data_path(1)),
            tx_hash: Some("calldata".into()),
        };
        let mut job = JobItem::new(JobType::DataSubmission, 1, JobSpecificMetadata::Da(m));
        job.status = JobStatus::Completed;
        db.create_job(job).await.unwrap();
    }

    async fn wait_job(&self, want: JobStatus, within: Duration) -> JobItem {
        crate::support::wait_state_transition(&self.config, 1, want, within).await
    }

    async fn snos_batch_status(&self) -> SnosBatchStatus {
        self.config
            .database()
            .get_snos_batches(SnosBatchQuery { indexes: vec![1], ..Default::default() })
            .await
            .unwrap()[0]
            .status
    }

    /// Every failure reason of `job`, the latest last.
    fn reasons(job: &JobItem) -> String {
        let c = &job.metadata.common;
        c.previous_failure_reasons
            .iter()
            .chain(&c.failure_reason)
            .cloned()
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_state_settles_the_snos_batch_and_completes_it() {
    let Some(env) = env(0).await else { return };
    let os = os_output(Felt::MAX, 2);
    env.seed(&os, &os).await;
    assert_eq!(env.client.get_last_settled_block().await.unwrap(), None);
    let nonce = env.client.get_nonce().await.unwrap();
    let job = env.wait_job(JobStatus::Completed, Duration::from_secs(60)).await;
    assert_eq!(env.client.get_last_settled_block().await.unwrap(), Some(2));
    let state = env.client.core_contract_state().await.unwrap();
    assert_eq!((state.state_root, state.block_hash), (Felt::from(0x77), Felt::from(0xb)));
    assert_eq!(env.snos_batch_status().await, SnosBatchStatus::Completed);
    assert_eq!(env.client.get_nonce().await.unwrap(), nonce + 1, "one transaction");
    let tx = job.external_id.to_string();
    let JobSpecificMetadata::StateUpdate(m) = &job.metadata.specific else { panic!("{job:?}") };
    assert_eq!(m.tx_hash.as_deref(), Some(tx.as_str()));
    assert_eq!(
        env.client.verify_tx_inclusion(&tx).await.unwrap(),
        orchestrator_settlement_client_interface::SettlementVerificationStatus::Verified
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_does_not_follow_the_contract_fails_with_the_contracts_reason() {
    let Some(env) = env(0).await else { return };
    // The contract has settled nothing (-1); this batch claims to follow block 5.
    let os = os_output(Felt::from(5), 8);
    env.seed(&os, &os).await;
    let nonce = env.client.get_nonce().await.unwrap();
    let job = env.wait_job(JobStatus::Failed, Duration::from_secs(60)).await;
    let reasons = Env::reasons(&job);
    assert!(reasons.contains("wrong prev block number"), "{reasons}");
    assert!(
        job.metadata.common.previous_failure_reasons.is_empty(),
        "no retry storm: the first failure is final: {reasons}"
    );
    assert_eq!(
        env.client.get_nonce().await.unwrap(),
        nonce,
        "a reverting simulation sends nothing"
    );
    assert_eq!(env.client.get_last_settled_block().await.unwrap(), None);
    assert_ne!(env.snos_batch_status().await, SnosBatchStatus::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_that_is_not_an_operator_fails_with_the_contracts_reason() {
    let Some(env) = env(1).await else { return };
    let os = os_output(Felt::MAX, 2);
    env.seed(&os, &os).await;
    let job = env.wait_job(JobStatus::Failed, Duration::from_secs(60)).await;
    let reasons = Env::reasons(&job);
    assert!(reasons.contains("caller is not an operator"), "{reasons}");
    assert!(
        job.metadata.common.previous_failure_reasons.is_empty(),
        "the first failure is final: {reasons}"
    );
    assert_eq!(env.client.get_last_settled_block().await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_of_another_output_is_never_settled() {
    let Some(env) = env(0).await else { return };
    let os = os_output(Felt::MAX, 2);
    let other = os_output(Felt::MAX, 3);
    env.seed(&os, &other).await;
    let nonce = env.client.get_nonce().await.unwrap();
    let job = env.wait_job(JobStatus::Failed, Duration::from_secs(60)).await;
    let reasons = Env::reasons(&job);
    assert!(reasons.contains("is not the OS output"), "{reasons}");
    assert_eq!(env.client.get_nonce().await.unwrap(), nonce, "nothing sent");
}
