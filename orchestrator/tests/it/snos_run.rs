//! SnosRun on the embedded tier: the Snos trigger creates the job for a closed SNOS batch, the
//! handler runs the cairo-vm stand-in (or an external script) against a fake node, stores the
//! artifacts at the reference's paths and records a fact that gps-fact-checker reproduces from
//! the stored PIE.

use orchestrator::worker::Config;
use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{extract::State, routing::post, Json, Router};
use orchestrator::{
    app::Orchestrator,
    cli::args::snos::{CairoLayout, SnosRunnerKind},
    config::{EngineParams, SnosParams},
    types::{
        batch::{BouncerWeights, SnosBatch, SnosBatchStatus},
        jobs::{JobItem, JobSpecificMetadata, JobStatus, JobType, SnosMetadata},
        queue::WorkerTriggerType,
        Layer,
    },
    worker::{
        handler::{JobHandlerTrait, JobHandlers},
        stages::snos::SnosJobHandler,
        stages::snos::SnosTrigger,
        trigger::Triggers,
    },
};
use orchestrator_gps_fact_checker::fact::{self as facts, pie};
use orchestrator_protocol::{
    compression::{self, io::parse_state_update, MemoryState, StarknetVersion},
    kzg::Kzg,
};
use orchestrator_snos_runner::{ExternalRunner, ExternalRunnerConfig, SnosRunner, StandInRunner};
use serde_json::{json, Value};
use starknet::core::types::{Felt, StateUpdate};

use crate::support::{self, wait_for};

const CHAIN_ID: &str = "0x534e5f54455354";
const CONTRACT: &str = "0x123";
const EXISTING_CLASS: &str = "0x999";

/// State update JSON of block `n` (blocks 0..=3).
fn state_update_json(n: u64) -> Value {
    let diff = match n {
        1 => json!({
            "storage_diffs": [{"address": CONTRACT, "storage_entries": [{"key": "0x5", "value": "0x7"}]}],
            "deprecated_declared_classes": [], "declared_classes": [],
            "deployed_contracts": [{"address": "0x456", "class_hash": "0x789"}],
            "replaced_classes": [], "nonces": [{"contract_address": CONTRACT, "nonce": "0x1"}]
        }),
        2 => json!({
            "storage_diffs": [{"address": CONTRACT, "storage_entries": [{"key": "0x6", "value": "0x8"}]},
                              {"address": "0x456", "storage_entries": [{"key": "0x1", "value": "0x2"}]}],
            "deprecated_declared_classes": [],
            "declared_classes": [{"class_hash": "0xaaa", "compiled_class_hash": "0xbbb"}],
            "deployed_contracts": [], "replaced_classes": [],
            "nonces": [{"contract_address": CONTRACT, "nonce": "0x2"}]
        }),
        _ => json!({
            "storage_diffs": [], "deprecated_declared_classes": [], "declared_classes": [],
            "deployed_contracts": [], "replaced_classes": [], "nonces": []
        }),
    };
    json!({
        "block_hash": format!("{:#x}", 0x100 + n),
        "old_root": format!("{:#x}", 0x200 + n),
        "new_root": format!("{:#x}", 0x201 + n),
        "state_diff": diff
    })
}

fn state_update(n: u64) -> StateUpdate {
    parse_state_update(&state_update_json(n).to_string()).unwrap()
}

/// Answers the JSON-RPC calls SnosRun makes; the state before block 1 holds only `CONTRACT`
/// (class `EXISTING_CLASS`, nonce 0, empty storage).
async fn rpc(
    State(calls): State<Arc<std::sync::Mutex<Vec<String>>>>,
    Json(req): Json<Value>,
) -> Json<Value> {
    let method = req["method"].as_str().unwrap_or_default().to_owned();
    calls.lock().unwrap().push(method.clone());
    let p = &req["params"];
    let result = match method.as_str() {
        "starknet_chainId" => json!(CHAIN_ID),
        "starknet_getStateUpdate" => match p[0]["block_number"].as_u64() {
            Some(n) if n <= 3 => state_update_json(n),
            _ => {
                return Json(
                    json!({"jsonrpc": "2.0", "id": 1, "error": {"code": 24, "message": "Block not found"}}),
                )
            }
        },
        "starknet_getStorageAt" | "starknet_getNonce" => json!("0x0"),
        "starknet_getClassHashAt" if p[1] == json!(CONTRACT) => json!(EXISTING_CLASS),
        "starknet_getClassHashAt" => {
            return Json(
                json!({"jsonrpc": "2.0", "id": 1, "error": {"code": 20, "message": "Contract not found"}}),
            )
        }
        _ => {
            return Json(
                json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "no"}}),
            )
        }
    };
    Json(json!({"jsonrpc": "2.0", "id": 1, "result": result}))
}

struct FakeNode {
    url: url::Url,
    calls: Arc<std::sync::Mutex<Vec<String>>>,
}

async fn fake_node() -> FakeNode {
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = Router::new().route("/", post(rpc)).with_state(Arc::clone(&calls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeNode { url: format!("http://{addr}/").parse().unwrap(), calls }
}

/// SnosRun parameters with the in-process stand-in runner reading `rpc_url`.
pub(crate) fn snos_params(rpc_url: url::Url) -> SnosParams {
    SnosParams {
        rpc_url,
        backup_rpc_url: None,
        full_output: false,
        versioned_constants: None,
        strk_fee_token_address: orchestrator_snos_runner::MAINNET_STRK_FEE_TOKEN_ADDRESS,
        eth_fee_token_address: orchestrator_snos_runner::MAINNET_ETH_FEE_TOKEN_ADDRESS,
        layout: CairoLayout::AllCairo,
        prover_layout: CairoLayout::Dynamic,
        da_public_keys: vec![],
        runner: SnosRunnerKind::StandIn,
        command: None,
        command_timeout: Duration::from_secs(60),
    }
}

async fn context(
    dir: &std::path::Path,
    layer: Layer,
    rpc_url: url::Url,
    runner: Arc<dyn SnosRunner>,
) -> Arc<Config> {
    let clients = support::clients(dir).await;
    let handler = SnosJobHandler::new(layer, snos_params(rpc_url), clients.clone(), runner);
    let handlers = JobHandlers::new().with(Arc::new(handler));
    let triggers = Triggers::new().with(Arc::new(SnosTrigger { buffer: 50, full_output: false }));
    let engine = EngineParams {
        empty_poll_interval: Duration::from_millis(50),
        retry_backoff_base: Duration::from_millis(100),
        retry_backoff_max: Duration::from_secs(1),
        graceful_shutdown_timeout: Duration::from_secs(5),
        ..EngineParams::default()
    };
    Arc::new(Config::new(layer, clients, handlers, triggers, engine))
}

/// A closed SNOS batch 1 over blocks 1..=2.
async fn closed_batch(config: &Config) {
    let mut batch = SnosBatch::new(1, None, 1, "0.13.3", BouncerWeights::ZERO);
    batch.end_block = 2;
    batch.num_blocks = 2;
    batch.status = SnosBatchStatus::Closed;
    config.database().create_snos_batch(batch).await.unwrap();
}

/// Runs the Snos trigger and waits for job 1 to leave the in-flight statuses.
async fn run_to_end(config: &Arc<Config>) -> JobItem {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let running = Orchestrator::start_with(Arc::clone(config), addr, None).await.unwrap();
    let trigger = config.triggers.get(WorkerTriggerType::Stage(JobType::SnosRun)).unwrap().clone();
    trigger.run(Arc::clone(config)).await.unwrap();
    let db = Arc::clone(config.database());
    wait_for(Duration::from_secs(60), "the SnosRun job to finish", async || {
        let job = db.get_job_by_internal_id_and_type(1, JobType::SnosRun).await.unwrap();
        job.is_some_and(|j| matches!(j.status, JobStatus::Completed | JobStatus::Failed))
    })
    .await;
    running.stop().await.unwrap();
    db.get_job_by_internal_id_and_type(1, JobType::SnosRun).await.unwrap().unwrap()
}

fn snos_meta(job: &JobItem) -> &SnosMetadata {
    match &job.metadata.specific {
        JobSpecificMetadata::Snos(m) => m,
        other => panic!("not Snos metadata: {other:?}"),
    }
}

/// Checks the stored artifacts against each other and returns the OS output.
async fn check_artifacts(config: &Config, job: &JobItem) -> Vec<Felt> {
    let m = snos_meta(job);
    assert_eq!(job.external_id.to_string(), "1");
    let storage = config.storage();
    let pie_zip = storage.get_data("1/cairo_pie.zip").await.unwrap();
    let read = pie::read_pie_bytes(&pie_zip).unwrap();
    read.run_validity_checks().unwrap();
    let os_output: Vec<String> =
        serde_json::from_slice(&storage.get_data("1/snos_output.json").await.unwrap()).unwrap();
    let os_output: Vec<Felt> = os_output.iter().map(|s| Felt::from_hex(s).unwrap()).collect();
    let words: Vec<[u8; 32]> =
        bincode::deserialize(&storage.get_data("1/program_output.txt").await.unwrap()).unwrap();
    let segment = pie::program_output(&read).unwrap();
    assert_eq!(words, segment.iter().map(Felt::to_bytes_be).collect::<Vec<_>>());
    assert_eq!(os_output, segment);
    // The fact the handler recorded is the one gps-fact-checker computes from the stored PIE.
    assert_eq!(
        m.snos_fact.as_deref(),
        Some(facts::snos_fact(&read, &os_output).unwrap().to_string().as_str())
    );
    assert_eq!(m.snos_n_steps, Some(read.execution_resources.n_steps));
    // `orchestrator fact` on the stored PIE prints the same fact.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &pie_zip).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_orchestrator"));
    cmd.arg("fact").arg("--pie").arg(file.path());
    if os_output[8] == Felt::ZERO {
        cmd.arg("--l2");
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), m.snos_fact.as_deref().unwrap());
    // Header: roots, block numbers and hashes of blocks 1..=2.
    let f = |x: u64| Felt::from(x);
    assert_eq!(os_output[..6], [f(0x201), f(0x203), f(0), f(2), f(0x100), f(0x102)]);
    os_output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l3_stand_in_run_carries_the_kzg_values_of_the_batch_blob() {
    let dir = tempfile::tempdir().unwrap();
    let node = fake_node().await;
    let config =
        context(dir.path(), Layer::L3, node.url.clone(), Arc::new(StandInRunner::new())).await;
    closed_batch(&config).await;
    let started = std::time::Instant::now();
    let job = run_to_end(&config).await;
    eprintln!("L3 stand-in batch done in {:?}", started.elapsed());
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.metadata.common.failure_reason);
    let batch = config.database().get_latest_snos_batch().await.unwrap().unwrap();
    assert_eq!(batch.status, SnosBatchStatus::SnosJobCreated);
    let os_output = check_artifacts(&config, &job).await;
    assert_eq!(os_output[8], Felt::ONE, "KZG flag");
    assert_eq!(os_output[9], Felt::ZERO, "full output");
    // The batch's real blob, built independently from the same state updates, verifies
    // against x0 and y of the output: the settlement client's check passes.
    let mut state = MemoryState::new();
    state
        .classes
        .insert(Felt::from_hex(CONTRACT).unwrap(), Felt::from_hex(EXISTING_CLASS).unwrap());
    let blobs = compression::state_updates_to_blobs(
        &[state_update(1), state_update(2)],
        1,
        StarknetVersion::V0_13_3,
        6,
        &state,
    )
    .await
    .unwrap()
    .blobs;
    let words: Vec<[u8; 32]> = os_output.iter().map(Felt::to_bytes_be).collect();
    let proofs = Kzg::ethereum().prove_program_output(&words, &blobs).unwrap();
    assert_eq!(proofs.len(), 1);
    assert_eq!(os_output[11], Felt::ONE);
    // The PIE's fact is the keccak (GPS) fact.
    let read =
        pie::read_pie_bytes(&config.storage().get_data("1/cairo_pie.zip").await.unwrap()).unwrap();
    assert_eq!(
        snos_meta(&job).snos_fact.as_deref(),
        Some(facts::fact(&read).unwrap().to_string().as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l2_stand_in_run_writes_the_full_output_state_diff() {
    let dir = tempfile::tempdir().unwrap();
    let node = fake_node().await;
    let config =
        context(dir.path(), Layer::L2, node.url.clone(), Arc::new(StandInRunner::new())).await;
    closed_batch(&config).await;
    let job = run_to_end(&config).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.metadata.common.failure_reason);
    let os_output = check_artifacts(&config, &job).await;
    assert_eq!(os_output[8], Felt::ZERO, "KZG flag");
    assert_eq!(os_output[9], Felt::ONE, "full output");
    let h = |s: &str| Felt::from_hex(s).unwrap();
    let f = Felt::from;
    // Messages (empty), then the full-output diff with previous values read at block 0.
    let want = vec![
        f(0u8),
        f(0u8),
        f(2u8),
        h(CONTRACT),
        f(0u8),
        f(2u8),
        h(EXISTING_CLASS),
        h(EXISTING_CLASS),
        f(2u8),
        f(5u8),
        f(0u8),
        f(7u8),
        f(6u8),
        f(0u8),
        f(8u8),
        h("0x456"),
        f(0u8),
        f(0u8),
        f(0u8),
        h("0x789"),
        f(1u8),
        f(1u8),
        f(0u8),
        f(2u8),
        f(1u8),
        h("0xaaa"),
        f(0u8),
        h("0xbbb"),
    ];
    assert_eq!(os_output[10..], want[..]);
    let read =
        pie::read_pie_bytes(&config.storage().get_data("1/cairo_pie.zip").await.unwrap()).unwrap();
    assert_eq!(
        snos_meta(&job).snos_fact.as_deref(),
        Some(facts::l2_fact(&read).unwrap().to_string().as_str())
    );
    let calls = node.calls.lock().unwrap().clone();
    assert!(calls.iter().any(|c| c == "starknet_getStorageAt"), "{calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_external_command_fails_the_job_with_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let node = fake_node().await;
    let runner = ExternalRunner::new(ExternalRunnerConfig {
        command: "echo \"OS execution failed at block $SNOS_START_BLOCK\" >&2; exit 1".into(),
        timeout: Duration::from_secs(30),
    });
    let config = context(dir.path(), Layer::L3, node.url.clone(), Arc::new(runner)).await;
    closed_batch(&config).await;
    let job = run_to_end(&config).await;
    assert_eq!(job.status, JobStatus::Failed);
    let reason = job.metadata.common.failure_reason.clone().unwrap_or_default();
    assert!(reason.contains("OS execution failed at block 1"), "{reason}");
    // The external runner needs no batch data: only the chain id was read.
    let calls = node.calls.lock().unwrap().clone();
    assert!(calls.iter().all(|c| c == "starknet_chainId"), "{calls:?}");
}

#[tokio::test]
async fn node_down_requeues_after_a_minute_and_bad_metadata_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clients = support::clients(dir.path()).await;
    // Nothing listens on port 9 of loopback.
    let handler = SnosJobHandler::new(
        Layer::L3,
        snos_params("http://127.0.0.1:9/".parse().unwrap()),
        clients,
        Arc::new(StandInRunner::new()),
    );
    let job = handler.create_job(1, support::snos(1)).await.unwrap();
    assert_eq!(handler.check_ready_to_process(&job).await, Err(Duration::from_secs(60)));
    let mut job = job;
    assert!(handler.process_job(&mut job).await.unwrap_err().is_retryable());
    assert!(handler.create_job(2, support::snos(1)).await.is_err());
}
