//! SNOS against a real starknet-devnet: minted blocks are SNOS-batched by SnosBatching (over
//! the real `MadaraRpcClient`), the Snos trigger creates SnosRun jobs, the job engine of the
//! embedded tier runs them with the cairo-vm stand-in until `Completed`, and the stored
//! artifacts are checked against the devnet's blocks and state. Bad input on the devnet: a
//! pending block, the node killed mid-test, a reorganised chain (`devnet_abortBlocks`).

use orchestrator::worker::Config;
use std::{collections::BTreeSet, net::SocketAddr, sync::Arc, time::Duration};

use cairo_vm::vm::runners::cairo_pie::CairoPie;
use orchestrator::{
    app::Orchestrator,
    config::{BatchingParams, EngineParams},
    core::client::{
        log_alert::LogAlert,
        madara::{
            rpc::{MadaraRpcClient, MadaraRpcConfig},
            MadaraClient, RetryPolicy,
        },
        AlertSeverity,
    },
    types::{
        batch::{AggregatorBatchStatus, BouncerWeights, SnosBatchStatus},
        jobs::{JobItem, JobSpecificMetadata, JobStatus, JobType, SnosMetadata},
        queue::WorkerTriggerType,
        Layer,
    },
    worker::{
        batching::{
            aggregator::AggregatorBatchingTrigger, snos::SnosBatchingTrigger, BatchingSettings,
        },
        handler::{JobHandlerTrait, JobHandlers},
        stages::snos::SnosJobHandler,
        stages::snos::SnosTrigger,
        trigger::{JobTrigger, Triggers},
    },
};
use orchestrator_gps_fact_checker::fact::{self as facts, pie};
use orchestrator_snos_runner::StandInRunner;
use serde_json::{json, Value};
use starknet::core::types::Felt;
use tempfile::TempDir;

use crate::support::{
    self,
    devnet::{BlockHashes, Devnet, DevnetConfig},
    wait_for,
};

/// The limits of the batching tests, with aggregator batches of 4 blocks.
fn batching_params() -> BatchingParams {
    BatchingParams { max_batch_size: 4, ..crate::batching_devnet::params() }
}

/// Batching from block 1 (genesis left out), limits of [`batching_params`].
fn settings() -> BatchingSettings {
    BatchingSettings { params: batching_params(), min_block: 1, max_block: None }
}

/// The real node client, with short retries.
fn rpc_node(url: &url::Url) -> Arc<dyn MadaraClient> {
    let mut c = MadaraRpcConfig::new(url.clone());
    c.retry = RetryPolicy {
        attempts: 2,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(50),
    };
    Arc::new(MadaraRpcClient::new(c).expect("client"))
}

/// The embedded tier in a temp dir with the SnosRun handler (stand-in runner, SNOS RPC = the
/// devnet) and the Snos trigger; fast engine polling.
async fn context(layer: Layer, rpc_url: &url::Url) -> (Arc<Config>, SnosJobHandler, TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clients = support::clients(dir.path()).await;
    let handler = || {
        SnosJobHandler::new(
            layer,
            crate::snos_run::snos_params(rpc_url.clone()),
            clients.clone(),
            Arc::new(StandInRunner::new()),
        )
    };
    let handlers = JobHandlers::new().with(Arc::new(handler()));
    let triggers = Triggers::new().with(Arc::new(SnosTrigger { buffer: 50, full_output: false }));
    let engine = EngineParams {
        empty_poll_interval: Duration::from_millis(50),
        retry_backoff_base: Duration::from_millis(100),
        retry_backoff_max: Duration::from_secs(1),
        graceful_shutdown_timeout: Duration::from_secs(5),
        ..EngineParams::default()
    };
    (Arc::new(Config::new(layer, clients.clone(), handlers, triggers, engine)), handler(), dir)
}

async fn snos_ranges(config: &Config) -> Vec<(u64, u64, u64, SnosBatchStatus)> {
    let batches = config.database().get_snos_batches(Default::default()).await.expect("batches");
    batches.into_iter().map(|b| (b.index, b.start_block, b.end_block, b.status)).collect()
}

/// Starts the job engine, runs the Snos trigger once and waits until the SnosRun jobs of
/// `indexes` are `Completed` or `Failed`; answers them in that order.
async fn run_snos_jobs(config: &Arc<Config>, indexes: &[u64]) -> Vec<JobItem> {
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let running = Orchestrator::start_with(Arc::clone(config), addr, None).await.expect("engine");
    let trigger = config
        .triggers
        .get(WorkerTriggerType::Stage(JobType::SnosRun))
        .expect("Snos trigger")
        .clone();
    trigger.run(Arc::clone(config)).await.expect("Snos trigger");
    let db = Arc::clone(config.database());
    wait_for(Duration::from_secs(120), "the SnosRun jobs to finish", async || {
        for &i in indexes {
            let job = db.get_job_by_internal_id_and_type(i, JobType::SnosRun).await.expect("db");
            if !job.is_some_and(|j| matches!(j.status, JobStatus::Completed | JobStatus::Failed)) {
                return false;
            }
        }
        true
    })
    .await;
    running.stop().await.expect("stop");
    let mut jobs = Vec::new();
    for &i in indexes {
        jobs.push(
            db.get_job_by_internal_id_and_type(i, JobType::SnosRun)
                .await
                .expect("db")
                .expect("job"),
        );
    }
    jobs
}

fn snos_meta(job: &JobItem) -> &SnosMetadata {
    match &job.metadata.specific {
        JobSpecificMetadata::Snos(m) => m,
        other => panic!("not Snos metadata: {other:?}"),
    }
}

fn felt(v: &Value) -> Felt {
    v.as_str().and_then(|s| Felt::from_hex(s).ok()).unwrap_or_else(|| panic!("not a felt: {v}"))
}

/// What one completed SnosRun job stored, read back and cross-checked.
struct Stored {
    os_output: Vec<Felt>,
    pie_zip: Vec<u8>,
}

/// Checks the artifacts of a completed job: the reference's paths, the PIE read back by
/// cairo-vm itself (and valid), the OS output equal to the PIE's output segment and to the
/// program output, `snos_fact` equal to what `orchestrator fact --pie` prints for the stored
/// PIE, and the OS header equal to the devnet's blocks (numbers, `starknet_getBlockWithTxHashes`
/// hashes, `starknet_getStateUpdate` roots).
async fn check_job(
    config: &Config,
    devnet: &Devnet,
    job: &JobItem,
    start: u64,
    end: u64,
) -> Stored {
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.metadata.common.failure_reason);
    let m = snos_meta(job);
    let idx = m.snos_batch_index;
    assert_eq!((m.start_block, m.end_block), (start, end));
    assert_eq!(job.external_id.to_string(), idx.to_string());
    assert_eq!(m.cairo_pie_path.as_deref(), Some(format!("{idx}/cairo_pie.zip").as_str()));
    assert_eq!(m.snos_output_path.as_deref(), Some(format!("{idx}/snos_output.json").as_str()));
    assert_eq!(
        m.program_output_path.as_deref(),
        Some(format!("{idx}/program_output.txt").as_str())
    );
    let storage = config.storage();
    let pie_zip =
        storage.get_data(&format!("{idx}/cairo_pie.zip")).await.expect("PIE stored").to_vec();

    // cairo-vm's own reader accepts the stored zip.
    let read = CairoPie::from_bytes(&pie_zip).expect("cairo-vm reads the stored PIE");
    read.run_validity_checks().expect("a valid PIE");
    assert_eq!(m.snos_n_steps, Some(read.execution_resources.n_steps));
    assert!(read.execution_resources.n_steps > 0);
    let segment = pie::program_output(&read).expect("output segment");

    let os_output: Vec<String> = serde_json::from_slice(
        &storage.get_data(&format!("{idx}/snos_output.json")).await.expect("OS output"),
    )
    .expect("a JSON array");
    let os_output: Vec<Felt> =
        os_output.iter().map(|s| Felt::from_hex(s).expect("0x felt")).collect();
    assert_eq!(os_output, segment, "snos_output.json is the PIE's output segment");
    let words: Vec<[u8; 32]> = bincode::deserialize(
        &storage.get_data(&format!("{idx}/program_output.txt")).await.expect("program output"),
    )
    .expect("bincode words");
    assert_eq!(words, segment.iter().map(Felt::to_bytes_be).collect::<Vec<_>>());

    // The CLI computes the fact from the stored file on its own.
    let file = tempfile::Builder::new().suffix(".zip").tempfile().expect("temp file");
    std::fs::write(file.path(), &pie_zip).expect("write PIE");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_orchestrator"));
    cmd.arg("fact").arg("--pie").arg(file.path());
    if os_output[8] == Felt::ZERO {
        cmd.arg("--l2");
    }
    let out = cmd.output().expect("run orchestrator fact");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(printed.starts_with("0x") && printed.len() > 2, "{printed}");
    assert_eq!(
        m.snos_fact.as_deref(),
        Some(printed.as_str()),
        "recorded fact vs orchestrator fact"
    );

    // The OS header describes the devnet's blocks.
    let prev_hash = devnet.block_hash(start - 1).await;
    let end_hash = devnet.block_hash(end).await;
    assert_ne!(prev_hash, end_hash);
    let first_update = devnet.state_update(start).await;
    let last_update = devnet.state_update(end).await;
    assert_eq!(os_output[0], felt(&first_update["old_root"]), "old root");
    assert_eq!(os_output[1], felt(&last_update["new_root"]), "new root");
    assert_eq!(os_output[2], Felt::from(start - 1), "previous block number");
    assert_eq!(os_output[3], Felt::from(end), "end block number");
    assert_eq!(os_output[4], prev_hash, "hash of block {}", start - 1);
    assert_eq!(os_output[5], end_hash, "hash of block {end}");
    assert_eq!(felt(&last_update["block_hash"]), end_hash);
    Stored { os_output, pie_zip }
}

/// L3 (KZG DA) on devnet: the stand-in's KZG segment commits to the batch's blob, whose
/// stateful compression (Starknet ≥ 0.13.4) needs the node's alias table (storage of contract
/// 0x2), which devnet does not keep. The SnosRun job is retried — never failed, never
/// completed, nothing stored — with the missing alias as the recorded reason, as DataSubmission
/// does for the same blob (docs/snos.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devnet_l3_snos_run_without_an_alias_table_is_retried_not_failed() {
    let Some(devnet) = Devnet::start().await else {
        return;
    };
    for i in 0..2u64 {
        devnet.mint(&format!("{:#x}", 0x7000 + i), 10_000 + u128::from(i)).await;
    }
    let (config, _handler, _dir) = context(Layer::L3, &devnet.url).await;
    let node = rpc_node(&devnet.url);
    SnosBatchingTrigger::new(node.clone(), None, settings())
        .run(config.clone())
        .await
        .expect("SNOS batching");
    use SnosBatchStatus as S;
    assert_eq!(snos_ranges(&config).await, vec![(1, 1, 2, S::Closed)]);
    // Devnet's alias contract is empty.
    let alias_counter = devnet
        .try_rpc(
            "starknet_getStorageAt",
            json!({"contract_address": "0x2", "key": "0x0", "block_id": "latest"}),
        )
        .await;
    assert!(
        alias_counter.as_ref().is_err() || alias_counter == Ok(json!("0x0")),
        "{alias_counter:?}"
    );

    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let running = Orchestrator::start_with(Arc::clone(&config), addr, None).await.expect("engine");
    config
        .triggers
        .get(WorkerTriggerType::Stage(JobType::SnosRun))
        .expect("trigger")
        .run(config.clone())
        .await
        .expect("Snos trigger");
    let db = Arc::clone(config.database());
    wait_for(Duration::from_secs(60), "two attempts to fail retryably", async || {
        let job = db.get_job_by_internal_id_and_type(1, JobType::SnosRun).await.expect("db");
        job.is_some_and(|j| !j.metadata.common.previous_failure_reasons.is_empty())
    })
    .await;
    running.stop().await.expect("stop");
    let job =
        db.get_job_by_internal_id_and_type(1, JobType::SnosRun).await.expect("db").expect("job");
    assert!(!matches!(job.status, JobStatus::Failed | JobStatus::Completed), "{}", job.status);
    let reason = job.metadata.common.failure_reason.clone().unwrap_or_default();
    assert!(reason.contains("no alias for"), "{reason}");
    assert!(config.storage().get_data("1/cairo_pie.zip").await.is_err(), "nothing stored");
    assert_eq!(snos_meta(&job).snos_fact, None);
}

/// One contract of the OS full-output state diff.
#[derive(Debug)]
struct ContractDiff {
    address: Felt,
    prev_nonce: Felt,
    new_nonce: Felt,
    prev_class: Felt,
    new_class: Felt,
    storage: Vec<(Felt, Felt, Felt)>,
}

/// Parses `n_contracts, (addr, prev_nonce, new_nonce, prev_class, new_class, n_changes,
/// (key, prev, new)*)*, n_classes, (class_hash, prev_compiled, compiled)*` to the end.
fn parse_full_output_diff(felts: &[Felt]) -> (Vec<ContractDiff>, Vec<(Felt, Felt, Felt)>) {
    let n = |f: Felt| usize::try_from(f.to_biguint()).expect("a count");
    let mut it = felts.iter().copied();
    let mut next = || it.next().expect("diff ends early");
    let mut contracts = Vec::new();
    for _ in 0..n(next()) {
        let (address, prev_nonce, new_nonce, prev_class, new_class) =
            (next(), next(), next(), next(), next());
        let storage = (0..n(next())).map(|_| (next(), next(), next())).collect();
        contracts.push(ContractDiff {
            address,
            prev_nonce,
            new_nonce,
            prev_class,
            new_class,
            storage,
        });
    }
    let classes = (0..n(next())).map(|_| (next(), next(), next())).collect();
    assert!(it.next().is_none(), "felts after the state diff");
    (contracts, classes)
}

/// A value at a block, 0 when devnet says the contract does not exist (code 20).
async fn read_or_zero(devnet: &Devnet, method: &str, params: Value) -> Felt {
    match devnet.try_rpc(method, params).await {
        Ok(v) => felt(&v),
        Err(e) if e.contains("\"code\":20") => Felt::ZERO,
        Err(e) => panic!("{method}: {e}"),
    }
}

/// L2 (full output, no KZG): AggregatorBatching and SnosBatching over three minted blocks, both
/// SnosRun jobs `Completed`; every entry of the full-output state diff (previous and new nonce,
/// class hash, storage value) equals what the devnet answers at the block before the batch and
/// at its last block, and the diff names exactly the contracts of the devnet's state updates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devnet_blocks_run_through_snos_batching_and_snos_run_l2_full_output() {
    let Some(devnet) = Devnet::start().await else {
        return;
    };
    for i in 0..3u64 {
        devnet.mint(&format!("{:#x}", 0x7100 + i % 2), 500 + u128::from(i)).await;
    }
    let (config, _handler, _dir) = context(Layer::L2, &devnet.url).await;
    let node = rpc_node(&devnet.url);
    let mut s = settings();
    s.params.max_batch_size = 3;
    AggregatorBatchingTrigger::new(node.clone(), None, s.clone())
        .run(config.clone())
        .await
        .expect("aggregator batching");
    SnosBatchingTrigger::new(node.clone(), None, s)
        .run(config.clone())
        .await
        .expect("SNOS batching");
    let agg = config.database().get_aggregator_batches(Default::default()).await.expect("batches");
    assert_eq!(
        agg.iter().map(|b| (b.start_block, b.end_block, b.status)).collect::<Vec<_>>(),
        vec![(1, 3, AggregatorBatchStatus::Closed)]
    );
    use SnosBatchStatus as S;
    assert_eq!(snos_ranges(&config).await, vec![(1, 1, 2, S::Closed), (2, 3, 3, S::Closed)]);

    let jobs = run_snos_jobs(&config, &[1, 2]).await;
    for (job, (start, end)) in jobs.iter().zip([(1u64, 2u64), (3, 3)]) {
        let stored = check_job(&config, &devnet, job, start, end).await;
        let os_output = &stored.os_output;
        assert_eq!((os_output[8], os_output[9]), (Felt::ZERO, Felt::ONE), "L2 flags");
        let read = pie::read_pie_bytes(&stored.pie_zip).expect("PIE");
        assert_eq!(
            snos_meta(job).snos_fact,
            Some(facts::l2_fact(&read).expect("L2 fact").to_string())
        );
        // No messages (the stand-in reads none), then the diff.
        assert_eq!((os_output[10], os_output[11]), (Felt::ZERO, Felt::ZERO));
        let (contracts, classes) = parse_full_output_diff(&os_output[12..]);

        let mut touched = BTreeSet::new();
        let mut declared = 0;
        for b in start..=end {
            let diff = &devnet.state_update(b).await["state_diff"];
            for d in diff["storage_diffs"].as_array().expect("storage diffs") {
                touched.insert(felt(&d["address"]));
            }
            for d in diff["nonces"].as_array().expect("nonces") {
                touched.insert(felt(&d["contract_address"]));
            }
            for d in diff["deployed_contracts"].as_array().expect("deployed") {
                touched.insert(felt(&d["address"]));
            }
            declared += diff["declared_classes"].as_array().expect("declared").len();
        }
        let named: BTreeSet<Felt> = contracts.iter().map(|c| c.address).collect();
        assert_eq!(named, touched, "batch {start}..={end}");
        assert!(contracts.windows(2).all(|w| w[0].address < w[1].address), "contracts ascending");
        assert_eq!(classes.len(), declared);
        assert!(contracts.iter().any(|c| !c.storage.is_empty()), "mint writes balances");

        let at = |b: u64| json!({"block_number": b});
        let (prev, last) = (start - 1, end);
        for c in &contracts {
            let a = format!("{:#x}", c.address);
            for (block, want) in [(prev, c.prev_nonce), (last, c.new_nonce)] {
                let got = read_or_zero(&devnet, "starknet_getNonce", json!([at(block), a])).await;
                assert_eq!(got, want, "nonce of {a} at {block}");
            }
            for (block, want) in [(prev, c.prev_class), (last, c.new_class)] {
                let got =
                    read_or_zero(&devnet, "starknet_getClassHashAt", json!([at(block), a])).await;
                assert_eq!(got, want, "class of {a} at {block}");
            }
            assert!(c.storage.windows(2).all(|w| w[0].0 < w[1].0), "keys ascending");
            for &(key, before, after) in &c.storage {
                let k = format!("{key:#x}");
                for (block, want) in [(prev, before), (last, after)] {
                    let got = read_or_zero(
                        &devnet,
                        "starknet_getStorageAt",
                        json!({"contract_address": a, "key": k, "block_id": at(block)}),
                    )
                    .await;
                    assert_eq!(got, want, "storage {a}/{k} at {block}");
                }
            }
        }
        // Something really changed in each batch.
        assert!(contracts
            .iter()
            .flat_map(|c| &c.storage)
            .any(|(_, before, after)| before != after));
    }
}

async fn alerts(dir: &TempDir) -> Vec<orchestrator::core::client::log_alert::AlertRecord> {
    LogAlert::read_records(&dir.path().join("alerts.jsonl")).await.unwrap_or_default()
}

/// A pending (pre-confirmed) block on devnet (`--block-generation-on demand`: transactions wait
/// in the pre-confirmed block until `devnet_createBlock`): the node client says "wait", SNOS
/// batching stops before it without an error, and a SnosRun over it fails *retryably* and
/// stores nothing; once devnet closes the block both go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devnet_pending_block_is_waited_for_by_batching_and_snos_run() {
    let on_demand = DevnetConfig::new().block_generation_on_demand();
    let Some(devnet) = Devnet::start_with(on_demand).await else {
        return;
    };
    devnet.mint("0x7200", 1).await;
    devnet.create_block().await;
    devnet.mint("0x7200", 2).await;
    devnet.mint("0x7201", 3).await;
    assert_eq!(devnet.block_number().await, 1);
    let pending = devnet.rpc("starknet_getBlockWithTxHashes", json!(["pre_confirmed"])).await;
    assert_eq!(pending["transactions"].as_array().map(Vec::len), Some(2), "{pending}");

    let node = rpc_node(&devnet.url);
    for e in [
        node.block(2).await.expect_err("pending"),
        node.state_update(2).await.expect_err("pending"),
    ] {
        assert!(e.is_wait(), "{e:?}");
    }
    let (config, _, dir) = context(Layer::L3, &devnet.url).await;
    let snos = SnosBatchingTrigger::new(node.clone(), None, settings());
    for _ in 0..2 {
        snos.run(config.clone()).await.expect("a pending block is not an error");
    }
    use SnosBatchStatus as S;
    assert_eq!(snos_ranges(&config).await, vec![(1, 1, 1, S::Open)]);
    assert!(alerts(&dir).await.is_empty());

    // A SnosRun job over the pending block, on its own tier.
    // L2 (full output): the L3 KZG segment needs an alias table devnet lacks (see above).
    let (config2, handler, _dir2) = context(Layer::L2, &devnet.url).await;
    let mut batch =
        orchestrator::types::batch::SnosBatch::new(1, None, 2, "0.14.4", BouncerWeights::ZERO);
    batch.status = S::Closed;
    config2.database().create_snos_batch(batch).await.expect("batch");
    let metadata = orchestrator::worker::stages::snos::snos_metadata(1, 2, 2, false);
    let mut job = handler.create_job(1, JobSpecificMetadata::Snos(metadata)).await.expect("job");
    assert_eq!(handler.check_ready_to_process(&job).await, Ok(()), "the node is up");
    let e = handler.process_job(&mut job).await.expect_err("block 2 is pending");
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("starknet_getStateUpdate"), "{e}");
    assert!(config2.storage().get_data("1/cairo_pie.zip").await.is_err(), "nothing stored");

    // Devnet closes block 2: batching takes it (the batch is then full) and the job runs.
    devnet.create_block().await;
    snos.run(config.clone()).await.expect("SNOS batching");
    assert_eq!(snos_ranges(&config).await, vec![(1, 1, 2, S::Closed)]);
    assert_eq!(handler.process_job(&mut job).await.expect("block 2 closed"), "1");
    assert!(config2.storage().get_data("1/cairo_pie.zip").await.is_ok());
}

/// The devnet is killed after batching recorded blocks: both batching triggers fail their run
/// with "node unreachable", leave every batch as it was and free their lock; the SnosRun job
/// the Snos trigger then creates is not failed but put back (not ready: the SNOS RPC is down),
/// and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devnet_killed_mid_test_keeps_batches_and_requeues_snos_run() {
    let Some(mut devnet) = Devnet::start().await else {
        return;
    };
    for i in 0..3u64 {
        devnet.mint("0x7300", 1 + u128::from(i)).await;
    }
    let node = rpc_node(&devnet.url);
    let (l3, handler, _dir3) = context(Layer::L3, &devnet.url).await;
    let (l2, _, _dir2) = context(Layer::L2, &devnet.url).await;
    let snos = SnosBatchingTrigger::new(node.clone(), None, settings());
    let agg = AggregatorBatchingTrigger::new(node.clone(), None, settings());
    snos.run(l3.clone()).await.expect("SNOS batching");
    agg.run(l2.clone()).await.expect("aggregator batching");
    use SnosBatchStatus as S;
    let snos_before = vec![(1, 1, 2, S::Closed), (2, 3, 3, S::Open)];
    assert_eq!(snos_ranges(&l3).await, snos_before);
    let agg_ranges = async |c: &Config| {
        let batches =
            c.database().get_aggregator_batches(Default::default()).await.expect("batches");
        batches
            .into_iter()
            .map(|b| (b.index, b.start_block, b.end_block, b.status))
            .collect::<Vec<_>>()
    };
    let agg_before = agg_ranges(&l2).await;
    assert_eq!(agg_before, vec![(1, 1, 3, AggregatorBatchStatus::Open)]);

    devnet.kill();
    devnet.try_rpc("starknet_blockNumber", json!([])).await.expect_err("devnet is gone");
    let e = snos.run(l3.clone()).await.expect_err("node down");
    assert!(e.to_string().contains("node unreachable"), "{e}");
    let e = agg.run(l2.clone()).await.expect_err("node down");
    assert!(e.to_string().contains("node unreachable"), "{e}");
    assert_eq!(snos_ranges(&l3).await, snos_before);
    assert_eq!(agg_ranges(&l2).await, agg_before);
    for (c, key) in [(&l3, "SnosBatchingWorker"), (&l2, "AggregatorBatchingWorker")] {
        assert!(!c.lock().is_locked(key).await.expect("lock"), "{key}");
    }

    // The closed batch gets its job; the engine finds the RPC down and queues it again.
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let running = Orchestrator::start_with(Arc::clone(&l3), addr, None).await.expect("engine");
    l3.triggers
        .get(WorkerTriggerType::Stage(JobType::SnosRun))
        .expect("trigger")
        .run(l3.clone())
        .await
        .expect("Snos trigger");
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.stop().await.expect("stop");
    let job = l3
        .database()
        .get_job_by_internal_id_and_type(1, JobType::SnosRun)
        .await
        .expect("db")
        .expect("job");
    assert_eq!(job.status, JobStatus::Created, "{:?}", job.metadata.common.failure_reason);
    assert_eq!(job.metadata.common.process_attempt_no, 0);
    assert!(l3
        .database()
        .get_job_by_internal_id_and_type(2, JobType::SnosRun)
        .await
        .expect("db")
        .is_none());
    assert_eq!(snos_ranges(&l3).await[0], (1, 1, 2, S::SnosJobCreated));
    assert_eq!(
        handler.check_ready_to_process(&job).await,
        Err(orchestrator::worker::stages::snos::RPC_DOWN_RETRY_DELAY)
    );
    let mut job = job;
    assert!(handler.process_job(&mut job).await.expect_err("node down").is_retryable());
    assert!(l3.storage().get_data("1/cairo_pie.zip").await.is_err(), "nothing stored");
}

/// A chain reorganised on devnet. Two devnets build the same blocks 1..=3 (same hashes: devnet
/// is deterministic); batching reads the first as the Madara node and the second as the
/// replay-bounds node, and records blocks 1..=2. Then block 3 of the node is aborted
/// (`devnet_abortBlocks`) and replaced by an empty block 3, whose hash differs (devnet hashes
/// the transaction count, see docs/batching.md). The next runs send one critical alert naming
/// block 3 and both hashes, batch nothing more and leave the batches untouched (SNOS on L3,
/// aggregator on L2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devnet_reorganised_block_halts_batching_with_a_critical_alert() {
    let (Some(chain), Some(reference)) = (Devnet::start().await, Devnet::start().await) else {
        return;
    };
    for d in [&chain, &reference] {
        for i in 0..3u64 {
            d.mint(&format!("{:#x}", 0x7400 + i), 100 + u128::from(i)).await;
        }
    }
    for b in 0..=3 {
        assert_eq!(
            chain.block_hash(b).await,
            reference.block_hash(b).await,
            "block {b} before the reorg"
        );
    }
    let mut s = settings();
    s.params.max_batch_processing_size = 2;
    let (l3, _, dir3) = context(Layer::L3, &chain.url).await;
    let (l2, _, dir2) = context(Layer::L2, &chain.url).await;
    let node = rpc_node(&chain.url);
    let replay = Some(rpc_node(&reference.url));
    let snos = SnosBatchingTrigger::new(node.clone(), replay.clone(), s.clone());
    let agg = AggregatorBatchingTrigger::new(node.clone(), replay, s);
    snos.run(l3.clone()).await.expect("SNOS batching");
    agg.run(l2.clone()).await.expect("aggregator batching");
    use SnosBatchStatus as S;
    assert_eq!(snos_ranges(&l3).await, vec![(1, 1, 2, S::Closed)]);
    let agg_ranges = async |c: &Config| {
        let batches =
            c.database().get_aggregator_batches(Default::default()).await.expect("batches");
        batches
            .into_iter()
            .map(|b| (b.index, b.start_block, b.end_block, b.status))
            .collect::<Vec<_>>()
    };
    assert_eq!(agg_ranges(&l2).await, vec![(1, 1, 2, AggregatorBatchStatus::Open)]);
    assert!(alerts(&dir3).await.is_empty() && alerts(&dir2).await.is_empty());

    // Reorganise block 3 on the node.
    let old3 = chain.block_hash(3).await;
    let aborted = chain.abort_blocks(3).await;
    assert_eq!(
        aborted.iter().map(|h| Felt::from_hex(h).expect("hash")).collect::<Vec<_>>(),
        vec![old3]
    );
    assert_eq!(chain.block_number().await, 2);
    chain.create_block().await;
    assert_eq!(chain.block_number().await, 3);
    let new3 = chain.block_hash(3).await;
    assert_ne!(new3, old3, "the replacement block 3 has another hash");
    assert_eq!(reference.block_hash(3).await, old3);
    assert_eq!(chain.block(3).await["parent_hash"], reference.block(3).await["parent_hash"]);

    for _ in 0..3 {
        snos.run(l3.clone()).await.expect("a halt is not an error");
        agg.run(l2.clone()).await.expect("a halt is not an error");
    }
    assert_eq!(snos_ranges(&l3).await, vec![(1, 1, 2, S::Closed)], "SNOS batches untouched");
    assert_eq!(
        agg_ranges(&l2).await,
        vec![(1, 1, 2, AggregatorBatchStatus::Open)],
        "aggregator batches untouched"
    );
    for dir in [&dir3, &dir2] {
        let alerts = alerts(dir).await;
        assert_eq!(alerts.len(), 1, "one alert per condition: {alerts:?}");
        let a = &alerts[0];
        assert_eq!(a.severity, AlertSeverity::Critical);
        assert!(a.title.contains("block 3 differs from the replay-bounds node"), "{}", a.title);
        assert!(
            a.body.contains(&format!("{new3:#x}")) && a.body.contains(&format!("{old3:#x}")),
            "{}",
            a.body
        );
    }
}
