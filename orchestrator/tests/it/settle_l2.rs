//! L2 settlement on a real Anvil: a completed Aggregator job whose DA segment is a real encoded
//! state diff → the UpdateState trigger creates the StateTransition → the engine sends
//! `updateStateKzgDA` with the blobs and verifies it → the core contract advanced, the job and
//! the aggregator batch are Completed. And bad input: the job fails with the reason and no
//! transaction is sent. And the transaction manager seen from the job: a restart mid-flight
//! (tx in the pool, job left locked) lands exactly one update; an RPC outage is retried
//! (the job goes back to its status, no tx) and then completes. After the settlement,
//! `/metrics` shows the fee paid, the blob base fee and the signer balance Anvil reports.
//!
//! Needs Anvil (`scripts/anvil.sh`); `ORCH_SKIP_ANVIL_TESTS=1` skips.

use orchestrator::worker::Config;
use std::{net::SocketAddr, sync::Arc, time::Duration};

use alloy::{
    primitives::U256,
    providers::{Provider, RootProvider},
};
use orchestrator::{
    app::Orchestrator,
    core::client::embedded,
    types::{
        batch::{AggregatorBatch, AggregatorBatchQuery, AggregatorBatchStatus},
        jobs::{now_secs, JobItem, JobItemUpdates, JobSpecificMetadata, JobStatus, JobType},
        Layer,
    },
    worker::{
        handler::JobHandlers,
        service,
        stages::state_transition::SettlementJobContext,
        stages::{aggregator::aggregator_metadata, state_transition::UpdateStateTrigger},
        stages::{register, state_transition::workers},
        trigger::{JobTrigger, Triggers},
    },
};
use orchestrator_ethereum_settlement_client::{
    signer::OperatorSigner,
    testing::{
        deploy_contracts, register_fact, state_transition_fact, DeployedContracts, ANVIL_KEY_0,
        ANVIL_KEY_1,
    },
    EthereumSettlementClient, EthereumSettlementConfig,
};
use orchestrator_protocol::{
    compression::{encode::state_diff_to_felts, io::felt_hex, StarknetVersion},
    kzg::Kzg,
    transform::felts_to_blobs,
};
use orchestrator_test_support::{
    anvil::{Anvil, AnvilConfig},
    proxy::TcpProxy,
};
use starknet::core::types::{
    ContractStorageDiffItem, DeployedContractItem, Felt, NonceUpdate, StateDiff, StorageEntry,
};

use orchestrator::{
    core::client::{log_alert::LogAlert, madara::memory::InMemoryMadara},
    worker::watch::{WatchParams, Watchdog},
};
use serde_json::json;

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
        deployed_contracts: vec![DeployedContractItem {
            address: f(0x1000),
            class_hash: f(0xc1a55),
        }],
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
    _orch: Option<Orchestrator>,
    config: Arc<Config>,
    anvil: Anvil,
    contracts: DeployedContracts,
    operator: alloy::primitives::Address,
    proxy: Option<TcpProxy>,
    _dir: tempfile::TempDir,
}

/// How a test drives the engine.
#[derive(Default)]
struct Options {
    /// Drive the engine by hand (`service::process_job` / `verify_job`) instead of workers.
    manual: bool,
    /// Reach Anvil through a [`TcpProxy`] (an RPC outage on demand).
    proxy: bool,
}

async fn env() -> Option<Env> {
    env_with(Options::default()).await
}

async fn env_with(options: Options) -> Option<Env> {
    let anvil = Anvil::start(AnvilConfig::new("prague")).await?;
    let contracts =
        deploy_contracts(&anvil.url(), ANVIL_KEY_1, U256::from(PROGRAM_HASH), U256::ZERO, -1, true)
            .await
            .unwrap();
    let proxy = if options.proxy { Some(TcpProxy::start(&anvil.url()).await) } else { None };
    let rpc = proxy.as_ref().map_or_else(|| anvil.url(), |p| p.url(&anvil.url()));
    let mut sc = EthereumSettlementConfig::new(rpc, contracts.core_contract);
    sc.poll_interval = Duration::from_millis(100);
    sc.tx_confirmation_timeout = Duration::from_secs(5);
    sc.confirmations = 1;
    sc.peerdas = false;
    let client =
        EthereumSettlementClient::new(sc, OperatorSigner::local(ANVIL_KEY_0, Some(31337)).unwrap())
            .await
            .unwrap();
    let operator = client.address();
    let dir = tempfile::tempdir().unwrap();
    let clients = embedded::open(dir.path(), &embedded::EmbeddedOptions::default()).await.unwrap();
    let mut ctx = SettlementJobContext::new(
        Arc::new(client),
        clients.storage.clone(),
        clients.database.clone(),
        Layer::L2,
    );
    ctx.polling_override = Some(Duration::from_millis(200));
    let (handlers, triggers) = register(workers(ctx), JobHandlers::new(), Triggers::new());
    let mut engine = crate::support::fast_engine();
    engine.job_timeouts.insert(JobType::StateTransition, JOB_TIMEOUT);
    let config = Arc::new(Config::new(Layer::L2, clients, handlers, triggers, engine));
    let orch = if options.manual {
        None
    } else {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        Some(Orchestrator::start_with(config.clone(), addr, None).await.unwrap())
    };
    Some(Env { _orch: orch, config, anvil, contracts, operator, proxy, _dir: dir })
}

/// How long a StateTransition may stay locked before the engine presumes its worker dead.
const JOB_TIMEOUT: Duration = Duration::from_secs(1);

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
            .put_data(
                bincode::serialize(&po.to_vec()).unwrap().into(),
                m.program_output_path.as_deref().unwrap(),
            )
            .await
            .unwrap();
        let segment: Vec<String> = felts.iter().map(felt_hex).collect();
        storage
            .put_data(
                serde_json::to_vec(&segment).unwrap().into(),
                m.da_segment_path.as_deref().unwrap(),
            )
            .await
            .unwrap();
        let mut job = JobItem::new(JobType::Aggregator, 1, JobSpecificMetadata::Aggregator(m));
        job.status = JobStatus::Completed;
        db.create_job(job).await.unwrap();
    }

    async fn wait_job(&self, want: JobStatus, within: Duration) -> JobItem {
        crate::support::wait_state_transition(&self.config, 1, want, within).await
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
        // Mined state only: with mining paused the pending block already carries the update.
        let out = self.provider().call(tx).block(alloy::eips::BlockId::latest()).await.unwrap();
        U256::from_be_slice(&out)
    }

    /// The `/metrics` sample `name{settlement_layer="ethereum"}`, if present.
    async fn settlement_sample(&self, name: &str) -> Option<f64> {
        let text = reqwest::get(format!(
            "http://{}/metrics",
            self._orch.as_ref().expect("a running orchestrator for /metrics").addr
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
        let key = format!(r#"{name}{{settlement_layer="ethereum"}} "#);
        text.lines().find_map(|l| l.strip_prefix(key.as_str())).map(|v| v.parse().unwrap())
    }

    async fn operator_nonce(&self) -> u64 {
        self.provider().get_transaction_count(self.operator).latest().await.unwrap()
    }

    async fn pending_nonce(&self) -> u64 {
        self.provider().get_transaction_count(self.operator).pending().await.unwrap()
    }

    async fn anvil(&self, method: &'static str, params: Vec<serde_json::Value>) {
        let _: serde_json::Value =
            self.provider().raw_request(method.into(), params).await.unwrap();
    }

    /// Runs the UpdateState trigger once and returns the StateTransition it created.
    async fn create_job(&self) -> JobItem {
        UpdateStateTrigger.run(self.config.clone()).await.unwrap();
        self.job().await
    }

    async fn job(&self) -> JobItem {
        self.config
            .database()
            .get_job_by_internal_id_and_type(1, JobType::StateTransition)
            .await
            .unwrap()
            .expect("StateTransition 1 exists")
    }

    /// Verifies by hand until the job is Completed.
    async fn verify_until_completed(&self) -> JobItem {
        let id = self.job().await.id;
        let start = std::time::Instant::now();
        loop {
            let _ = service::verify_job(&self.config, id).await;
            let job = self.job().await;
            if job.status == JobStatus::Completed {
                return job;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "StateTransition 1 did not complete within 30 s: {} ({:?}, earlier {:?})",
                job.status,
                job.metadata.common.failure_reason,
                job.metadata.common.previous_failure_reasons,
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The attempts recorded in storage so far.
    async fn recorded_attempts(&self) -> Vec<serde_json::Value> {
        match self.config.storage().get_data("artifacts/batch/1/tx_attempts.json").await {
            Ok(b) => serde_json::from_slice(&b).unwrap(),
            Err(_) => Vec::new(),
        }
    }

    /// Registers the fact of a valid update of blocks 0..=2 and seeds the batch.
    async fn seed_valid(&self) {
        let felts = da_felts();
        let po = program_output(&felts, 2);
        register_fact(
            &self.anvil.url(),
            ANVIL_KEY_1,
            self.contracts.verifier,
            state_transition_fact(U256::from(PROGRAM_HASH), &po),
        )
        .await
        .unwrap();
        self.seed(&po, &felts).await;
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
    assert!(
        hash.starts_with("0x") && hash.len() == 66 && hash != format!("0x{}", "0".repeat(64)),
        "{hash}"
    );
    assert_eq!(m.tx_hash.as_deref(), Some(hash.as_str()));
    assert!(!m.tx_attempts.is_empty());
    assert_eq!(env.state_block_number().await, U256::from(2));
    assert_eq!(env.batch_status().await, AggregatorBatchStatus::Completed);
    // The attempts were persisted as they happened.
    let recorded =
        env.config.storage().get_data("artifacts/batch/1/tx_attempts.json").await.unwrap();
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
    let fees_paid =
        env.settlement_sample("settlement_fees_paid_wei_total").await.expect("fees paid");
    assert_eq!(fees_paid, fee as f64, "fees paid = the receipt's gas and blob gas");
    let blob_base_fee =
        env.settlement_sample("settlement_blob_base_fee_wei").await.expect("blob base fee");
    assert!(blob_base_fee >= 1.0, "{blob_base_fee}");
    let attempts = env.settlement_sample("settlement_tx_attempts_total").await.expect("attempts");
    assert!(attempts >= 1.0, "{attempts}");
    let balance = env.provider().get_balance(env.operator).await.unwrap();
    let balance = u128::try_from(balance).unwrap() as f64;
    let exported =
        env.settlement_sample("settlement_signer_balance_wei").await.expect("signer balance");
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

/// A worker crashes while its update is in the pool (Anvil not mining): the job is left
/// `LockedForProcessing` with the attempt recorded in storage. After the lock went stale the
/// engine heals the job and processes it again once blocks are mined: exactly one update lands
/// (the contract advanced once, the operator's nonce by one) and the job completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_flight_neither_loses_nor_duplicates_the_update() {
    let Some(env) = env_with(Options { manual: true, proxy: false }).await else { return };
    env.seed_valid().await;
    let job = env.create_job().await;
    assert_eq!(job.status, JobStatus::Created);
    let nonce_before = env.operator_nonce().await;
    let block_before = env.state_block_number().await;

    env.anvil("evm_setAutomine", vec![serde_json::json!(false)]).await;
    // What the engine does before calling the handler: lock the job.
    let mut metadata = job.metadata.clone();
    metadata.common.process_started_at = Some(now_secs());
    let locked = env
        .config
        .database()
        .update_job(
            &job,
            JobItemUpdates::new().status(JobStatus::LockedForProcessing).metadata(metadata),
        )
        .await
        .unwrap();
    let handler = env.config.handlers.get(JobType::StateTransition).unwrap().clone();
    let mut working = locked.clone();
    tokio::select! {
        r = handler.process_job(&mut working) => panic!("processing finished although nothing is mined: {r:?}"),
        () = wait_for(Duration::from_secs(30), "a recorded, sent attempt", async || {
            env.recorded_attempts().await.iter().any(|a| {
                a["tx_hash"].as_str().is_some_and(|h| h.starts_with("0x") && h.len() == 66)
            })
        }) => {}
    }
    // The crash: the processing future is gone; the job stays locked, the tx is in the pool.
    assert_eq!(env.job().await.status, JobStatus::LockedForProcessing);
    assert_eq!(env.pending_nonce().await, nonce_before + 1, "the update is in the pool");
    assert_eq!(env.operator_nonce().await, nonce_before);
    assert_eq!(env.state_block_number().await, block_before);

    // Restart: the lock goes stale; processing resumes while mining comes back.
    tokio::time::sleep(JOB_TIMEOUT + Duration::from_millis(1500)).await;
    let config = env.config.clone();
    let id = job.id;
    let reprocess = tokio::spawn(async move { service::process_job(&config, id).await });
    // Mine only once the job is healed and locked again (the healing left its reason).
    wait_for(Duration::from_secs(30), "the job healed and locked again", async || {
        let job = env.job().await;
        job.status == JobStatus::LockedForProcessing
            && job.metadata.common.process_started_at.is_some()
            && job
                .metadata
                .common
                .failure_reason
                .iter()
                .chain(&job.metadata.common.previous_failure_reasons)
                .any(|r| r.contains("healed"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    env.anvil("evm_setAutomine", vec![serde_json::json!(true)]).await;
    env.anvil("evm_mine", vec![]).await;
    reprocess.await.unwrap().unwrap();

    let done = env.verify_until_completed().await;
    let reasons: Vec<String> = done
        .metadata
        .common
        .previous_failure_reasons
        .iter()
        .cloned()
        .chain(done.metadata.common.failure_reason.clone())
        .collect();
    assert!(reasons.iter().any(|r| r.contains("healed")), "the orphan was healed: {reasons:?}");
    assert_eq!(
        env.operator_nonce().await,
        nonce_before + 1,
        "exactly one transaction of the operator"
    );
    assert_eq!(env.pending_nonce().await, nonce_before + 1, "nothing else in the pool");
    assert_eq!(env.state_block_number().await, U256::from(2), "the update landed once");
    let JobSpecificMetadata::StateUpdate(m) = &done.metadata.specific else { panic!("metadata") };
    assert!(!m.tx_attempts.is_empty());
    assert!(
        m.tx_attempts.iter().all(|a| a.nonce == nonce_before),
        "every attempt used the same nonce"
    );
}

/// The settlement RPC is down for the first processing attempt: the job goes back to its
/// status with a retryable reason and nothing is sent; once the RPC is back it completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_outage_is_retried_without_failing_or_sending() {
    let Some(env) = env_with(Options { manual: true, proxy: true }).await else { return };
    env.seed_valid().await;
    let job = env.create_job().await;
    let nonce_before = env.operator_nonce().await;
    let block_before = env.state_block_number().await;

    env.proxy.as_ref().unwrap().cut();
    let err = service::process_job(&env.config, job.id).await.unwrap_err();
    let after = env.job().await;
    assert_eq!(after.status, JobStatus::Created, "back to its prior status, not Failed: {err}");
    let reason = after.metadata.common.failure_reason.clone().unwrap_or_default();
    assert!(reason.contains("processing attempt failed"), "{reason}");
    assert!(reason.to_lowercase().contains("rpc") || reason.contains("connect"), "{reason}");
    assert_eq!(env.pending_nonce().await, nonce_before, "no transaction");
    assert_eq!(env.state_block_number().await, block_before);
    assert!(env.recorded_attempts().await.is_empty(), "no attempt");

    env.proxy.as_ref().unwrap().restore();
    service::process_job(&env.config, job.id).await.unwrap();
    assert_eq!(env.job().await.status, JobStatus::PendingVerification);
    let done = env.verify_until_completed().await;
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(env.operator_nonce().await, nonce_before + 1);
    assert_eq!(env.state_block_number().await, U256::from(2));
}

/// The watchdog reads settlement from the chain, not the database: while no state update is
/// sent the lag (blocks the node produced that the core contract has not settled, and the age of
/// the oldest) grows and its alert fires once; once the batch settles the lag drops and the
/// alert clears. The signer's balance is priced at the fee the confirmed update paid: Anvil
/// emptying the signer raises the low-balance alert, funding it again clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_reads_the_lag_and_the_signer_balance_on_chain() {
    let Some(env) = env().await else { return };
    let node = Arc::new(InMemoryMadara::new());
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    node.push_blocks(3, "0.13.2");
    for b in 0..3 {
        node.set_timestamp(b, now - 120);
    }
    let settlement = env.config.handlers.settlement_client().expect("a settlement handler");
    let watchdog = Watchdog::new(
        node.clone(),
        settlement.clone(),
        WatchParams {
            interval: Duration::from_secs(1),
            settlement_lag_alert: Some(Duration::from_secs(60)),
            stall_alert: None,
            min_balance_updates: 10,
        },
    );
    let alerts = |prefix: &'static str| {
        let path = env._dir.path().join("alerts.jsonl");
        async move {
            LogAlert::read_records(&path)
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|a| a.title.starts_with(prefix))
                .count()
        }
    };
    let gauge = |name: &str| {
        let key = format!(r#"{name}{{settlement_layer="ethereum"}} "#);
        env.config
            .metrics
            .render_prometheus()
            .lines()
            .find_map(|l| l.strip_prefix(key.as_str()).map(|v| v.parse::<f64>().unwrap()))
    };

    // Nothing settled (the contract starts at block -1): blocks 0..=2 lag, 120 s old.
    let report = watchdog.check(&env.config).await;
    let lag = report.lag.expect("the lag was read");
    assert_eq!((lag.settled_block, lag.tip, lag.lag_blocks), (None, 2, 3));
    assert!((120..130).contains(&lag.lag_seconds), "{lag:?}");
    assert_eq!(alerts("Settlement is").await, 1);
    assert_eq!(gauge("settlement_lag_blocks"), Some(3.0));
    // The lag grows; the episode alerts once.
    node.push_blocks(2, "0.13.2");
    let lag = watchdog.check(&env.config).await.lag.expect("read");
    assert_eq!(lag.lag_blocks, 5);
    assert_eq!(alerts("Settlement is").await, 1);
    assert_eq!(watchdog.last_lag(), Some(lag));
    // No update confirmed yet: the balance is only read, nothing priced.
    let balance = watchdog.check(&env.config).await.balance.expect("the balance is read");
    assert_eq!((balance.fee_per_update, balance.threshold), (None, 0));

    // Settlement resumes: blocks 0..=2 settle on chain; 3 and 4 are fresh.
    for b in 3..5 {
        node.set_timestamp(b, now);
    }
    env.seed_valid().await;
    env.create_job().await;
    env.wait_job(JobStatus::Completed, Duration::from_secs(60)).await;
    let report = watchdog.check(&env.config).await;
    let lag = report.lag.expect("read");
    assert_eq!((lag.settled_block, lag.tip, lag.lag_blocks), (Some(2), 4, 2));
    assert!(lag.lag_seconds < 60, "{lag:?}");
    assert_eq!(alerts("Settlement lag back under 60 s").await, 1);
    assert_eq!(gauge("settlement_lag_blocks"), Some(2.0));

    // The update's fee prices the balance: 10 updates' worth.
    let balance = report.balance.expect("read");
    let fee = balance.fee_per_update.expect("one update confirmed");
    assert!(fee > 0);
    assert_eq!(balance.threshold, fee * 10);
    assert_eq!(alerts("Settlement signer balance low").await, 0);
    let set_balance = |wei: u128| {
        env.anvil(
            "anvil_setBalance",
            vec![json!(env.operator.to_string()), json!(format!("{:#x}", U256::from(wei)))],
        )
    };
    set_balance(fee * 3).await;
    let balance = watchdog.check(&env.config).await.balance.expect("read");
    assert_eq!(balance.balance, fee * 3);
    assert_eq!(alerts("Settlement signer balance low").await, 1);
    watchdog.check(&env.config).await;
    assert_eq!(alerts("Settlement signer balance low").await, 1, "once per episode");
    set_balance(fee * 100).await;
    watchdog.check(&env.config).await;
    assert_eq!(alerts("Settlement signer balance back above").await, 1);
    assert_eq!(gauge("settlement_signer_balance_wei"), Some((fee * 100) as f64));
}
