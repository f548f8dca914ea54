//! L2 settlement on a real Anvil: a completed Aggregator job whose DA segment is a real encoded
//! state diff → the UpdateState trigger creates the StateTransition → the engine sends
//! `updateStateKzgDA` with the blobs and verifies it → the core contract advanced, the job and
//! the aggregator batch are Completed. And bad input: the job fails with the reason and no
//! transaction is sent. After the settlement, `/metrics` shows the fee paid, the blob base fee
//! and the signer balance Anvil reports.
//!
//! Needs Anvil (`scripts/anvil.sh`); `ORCH_SKIP_ANVIL_TESTS=1` skips.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use alloy::{
    primitives::U256,
    providers::{Provider, RootProvider},
};
use orchestrator::{
    app::Orchestrator,
    compression::{
        encode::state_diff_to_felts, io::felt_hex, transform::felts_to_blobs, StarknetVersion,
    },
    config::{Config, EngineParams},
    core::client::embedded,
    types::{
        batch::{AggregatorBatch, AggregatorBatchQuery, AggregatorBatchStatus},
        jobs::{JobItem, JobSpecificMetadata, JobStatus, JobType},
        queue::WorkerTriggerType,
        Layer,
    },
    worker::{
        event_handler::jobs::{state_transition::SettlementJobContext, JobHandlers},
        pipeline::settlement::with_stage,
        service,
        triggers::{aggregator::aggregator_metadata, Triggers},
    },
};
use orchestrator_ethereum_settlement_client::{
    kzg::Kzg,
    signer::OperatorSigner,
    testing::{
        anvil_available, deploy_contracts, register_fact, state_transition_fact, AnvilGuard,
        DeployedContracts, ANVIL_KEY_0, ANVIL_KEY_1,
    },
    EthereumSettlementClient, EthereumSettlementConfig,
};
use starknet::core::types::{
    ContractStorageDiffItem, DeployedContractItem, Felt, NonceUpdate, StateDiff, StorageEntry,
};

use crate::support::wait_for;

const PROGRAM_HASH: u64 = 0x5eed;

type Word = [u8; 32];

fn word(v: u64) -> Word {
    Felt::from(v).to_bytes_be()
}

/// A real state diff of a few contracts, encoded with the 0.13.2 rules (no compression).
fn da_felts() -> Vec<Felt> {
    let f = Felt::from;
    let storage_diffs = (0..80u64)
        .map(|c| ContractStorageDiffItem {
            address: f(0x1000 + c),
            storage_entries: (0..30u64)
                .map(|k| StorageEntry { key: f(k + 1), value: f(c * 1000 + k + 7) })
                .collect(),
        })
        .collect();
    let diff = StateDiff {
        storage_diffs,
        deprecated_declared_classes: vec![],
        declared_classes: vec![],
        deployed_contracts: vec![DeployedContractItem { address: f(0x1000), class_hash: f(0xc1a55) }],
        replaced_classes: vec![],
        nonces: vec![NonceUpdate { contract_address: f(0x1001), nonce: f(3) }],
    };
    state_diff_to_felts(&diff, StarknetVersion::V0_13_2).unwrap()
}

/// A KZG-DA program output settling `..=new_block` from nothing (previous block felt −1) with
/// the blobs of `felts`, built the way the aggregator's output is laid out.
fn program_output(felts: &[Felt], new_block: u64) -> Vec<Word> {
    let blobs = felts_to_blobs(felts, 6).unwrap();
    let kzg = Kzg::ethereum();
    let x0 = word(0x1234_5678_9abc_def1);
    let minus_one = (Felt::ZERO - Felt::ONE).to_bytes_be();
    let mut out = vec![
        word(0),
        word(0xabc),
        minus_one,
        word(new_block),
        word(7),
        word(8),
        word(9),
        word(10),
        word(1),
        word(0),
        x0,
        word(blobs.len() as u64),
    ];
    let mut ys = Vec::new();
    for b in &blobs {
        let c = kzg.commitment(b).unwrap();
        let mut low = [0u8; 32];
        low[8..].copy_from_slice(&c[24..]);
        let mut high = [0u8; 32];
        high[8..].copy_from_slice(&c[..24]);
        out.push(low);
        out.push(high);
        ys.push(kzg.point_proof(b, &x0).unwrap().y);
    }
    for y in ys {
        let mut low = [0u8; 32];
        low[16..].copy_from_slice(&y[16..]);
        let mut high = [0u8; 32];
        high[16..].copy_from_slice(&y[..16]);
        out.push(low);
        out.push(high);
    }
    out.extend([word(0), word(0)]); // no messages
    out
}

struct Env {
    _orch: Orchestrator,
    config: Arc<Config>,
    anvil: AnvilGuard,
    contracts: DeployedContracts,
    operator: alloy::primitives::Address,
    _dir: tempfile::TempDir,
}

async fn env() -> Option<Env> {
    if !anvil_available() {
        return None;
    }
    let anvil = AnvilGuard::start("prague", &[]);
    let contracts =
        deploy_contracts(&anvil.url(), ANVIL_KEY_1, U256::from(PROGRAM_HASH), U256::ZERO, -1, true)
            .await
            .unwrap();
    let mut sc = EthereumSettlementConfig::new(anvil.url(), contracts.core_contract);
    sc.poll_interval = Duration::from_millis(100);
    sc.tx_confirmation_timeout = Duration::from_secs(5);
    sc.confirmations = 1;
    sc.peerdas = false;
    let client = EthereumSettlementClient::new(sc, OperatorSigner::local(ANVIL_KEY_0, Some(31337)).unwrap())
        .await
        .unwrap();
    let operator = client.address();
    let dir = tempfile::tempdir().unwrap();
    let clients = embedded::open(dir.path(), &embedded::EmbeddedOptions::default()).await.unwrap();
    let ctx = SettlementJobContext::new(
        Arc::new(client),
        clients.storage.clone(),
        clients.database.clone(),
        Layer::L2,
    );
    let (handlers, triggers) =
        with_stage(ctx, Some(Duration::from_millis(200)), JobHandlers::new(), Triggers::new());
    let engine = EngineParams {
        empty_poll_interval: Duration::from_millis(20),
        retry_backoff_base: Duration::from_millis(50),
        retry_backoff_max: Duration::from_millis(200),
        graceful_shutdown_timeout: Duration::from_secs(5),
        ..EngineParams::default()
    };
    let config = Arc::new(Config::new(Layer::L2, clients, handlers, triggers, engine));
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let orch = Orchestrator::start_with(config.clone(), addr, None).await.unwrap();
    Some(Env { _orch: orch, config, anvil, contracts, operator, _dir: dir })
}

impl Env {
    fn provider(&self) -> RootProvider {
        RootProvider::new_http(self.anvil.url())
    }

    /// Aggregator batch 1 (blocks 0..=2) ReadyForStateUpdate with a Completed Aggregator job
    /// whose program output and DA segment are stored.
    async fn seed(&self, po: &[Word], felts: &[Felt]) {
        let db = self.config.database();
        let mut batch = AggregatorBatch::new(1, 0, "0.13.2");
        batch.end_block = 2;
        batch.num_blocks = 3;
        batch.status = AggregatorBatchStatus::ReadyForStateUpdate;
        let m = aggregator_metadata(&batch, false);
        db.create_aggregator_batch(batch).await.unwrap();
        let storage = self.config.storage();
        storage
            .put_data(bincode::serialize(&po.to_vec()).unwrap().into(), m.program_output_path.as_deref().unwrap())
            .await
            .unwrap();
        let segment: Vec<String> = felts.iter().map(felt_hex).collect();
        storage
            .put_data(serde_json::to_vec(&segment).unwrap().into(), m.da_segment_path.as_deref().unwrap())
            .await
            .unwrap();
        let mut job = JobItem::new(JobType::Aggregator, 1, JobSpecificMetadata::Aggregator(m));
        job.status = JobStatus::Completed;
        db.create_job(job).await.unwrap();
    }

    async fn wait_job(&self, want: JobStatus, within: Duration) -> JobItem {
        let db = self.config.database();
        wait_for(within, &format!("StateTransition 1 to be {want}"), async || {
            let _ = service::send_trigger(&self.config, WorkerTriggerType::UpdateState).await;
            db.get_job_by_internal_id_and_type(1, JobType::StateTransition)
                .await
                .unwrap()
                .is_some_and(|j| j.status == want)
        })
        .await;
        db.get_job_by_internal_id_and_type(1, JobType::StateTransition).await.unwrap().unwrap()
    }

    async fn batch_status(&self) -> AggregatorBatchStatus {
        self.config
            .database()
            .get_aggregator_batches(AggregatorBatchQuery { indexes: vec![1], ..Default::default() })
            .await
            .unwrap()[0]
            .status
    }

    async fn state_block_number(&self) -> U256 {
        // stateBlockNumber() selector: keccak("stateBlockNumber()")[..4].
        let selector = &alloy::primitives::keccak256("stateBlockNumber()")[..4];
        let tx = alloy::rpc::types::TransactionRequest::default()
            .to(self.contracts.core_contract)
            .input(alloy::primitives::Bytes::copy_from_slice(selector).into());
        let out = self.provider().call(tx).await.unwrap();
        U256::from_be_slice(&out)
    }

    /// The `/metrics` sample `name{settlement_layer="ethereum"}`, if present.
    async fn settlement_sample(&self, name: &str) -> Option<f64> {
        let text = reqwest::get(format!("http://{}/metrics", self._orch.addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let key = format!(r#"{name}{{settlement_layer="ethereum"}} "#);
        text.lines().find_map(|l| l.strip_prefix(key.as_str())).map(|v| v.parse().unwrap())
    }

    async fn operator_nonce(&self) -> u64 {
        self.provider().get_transaction_count(self.operator).await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregator_batch_settles_with_blobs_on_anvil() {
    let Some(env) = env().await else { return };
    let felts = da_felts();
    assert!(felts.len() > 4096, "the diff spans two blobs ({} felts)", felts.len());
    let po = program_output(&felts, 2);
    register_fact(
        &env.anvil.url(),
        ANVIL_KEY_1,
        env.contracts.verifier,
        state_transition_fact(U256::from(PROGRAM_HASH), &po),
    )
    .await
    .unwrap();
    env.seed(&po, &felts).await;

    let job = env.wait_job(JobStatus::Completed, Duration::from_secs(60)).await;
    let JobSpecificMetadata::StateUpdate(m) = &job.metadata.specific else { panic!("metadata") };
    assert_eq!(m.context.to_settle(), 1);
    let hash = job.external_id.to_string();
    assert!(hash.starts_with("0x") && hash.len() == 66 && hash != format!("0x{}", "0".repeat(64)), "{hash}");
    assert_eq!(m.tx_hash.as_deref(), Some(hash.as_str()));
    assert!(!m.tx_attempts.is_empty());
    assert_eq!(env.state_block_number().await, U256::from(2));
    assert_eq!(env.batch_status().await, AggregatorBatchStatus::Completed);
    // The attempts were persisted as they happened.
    let recorded = env.config.storage().get_data("artifacts/batch/1/tx_attempts.json").await.unwrap();
    assert!(String::from_utf8_lossy(&recorded).contains(&hash));

    // The settlement metrics: the fee of the confirmed transaction, the sampled blob base fee
    // and the signer balance as Anvil reports it now.
    let receipt = env
        .provider()
        .get_transaction_receipt(hash.parse().unwrap())
        .await
        .unwrap()
        .expect("receipt");
    let fee = u128::from(receipt.gas_used) * receipt.effective_gas_price
        + u128::from(receipt.blob_gas_used.unwrap_or(0)) * receipt.blob_gas_price.unwrap_or(0);
    assert!(fee > 0);
    let fees_paid = env.settlement_sample("settlement_fees_paid_wei_total").await.expect("fees paid");
    assert_eq!(fees_paid, fee as f64, "fees paid = the receipt's gas and blob gas");
    let blob_base_fee = env.settlement_sample("settlement_blob_base_fee_wei").await.expect("blob base fee");
    assert!(blob_base_fee >= 1.0, "{blob_base_fee}");
    let attempts = env.settlement_sample("settlement_tx_attempts_total").await.expect("attempts");
    assert!(attempts >= 1.0, "{attempts}");
    let balance = env.provider().get_balance(env.operator).await.unwrap();
    let balance = u128::try_from(balance).unwrap() as f64;
    let exported = env.settlement_sample("settlement_signer_balance_wei").await.expect("signer balance");
    assert!(
        (exported - balance).abs() <= fee as f64,
        "exported signer balance {exported} vs Anvil {balance} (fee {fee})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_program_output_fails_the_job_without_a_transaction() {
    let Some(env) = env().await else { return };
    let felts = da_felts();
    let po = program_output(&felts, 2);
    let nonce_before = env.operator_nonce().await;
    let block_before = env.state_block_number().await;
    env.seed(&po[..11], &felts).await;

    let job = env.wait_job(JobStatus::Failed, Duration::from_secs(60)).await;
    let reason = job.metadata.common.failure_reason.clone().unwrap_or_default();
    assert!(reason.contains("program output"), "{reason}");
    assert_eq!(env.operator_nonce().await, nonce_before, "no transaction was sent");
    assert_eq!(env.state_block_number().await, block_before);
    assert_eq!(env.batch_status().await, AggregatorBatchStatus::StateUpdateFailed);
}
