//! Every `settles` row of the configuration matrix (`docs/configuration.md`, "Supported
//! configurations"), driven end to end in process: the row's command line is parsed as
//! `prover_matrix` parses it, the engine is built from those `RunParams`
//! (`stages::build_with`) with in-process fakes of what needs a network — the Madara node (an
//! [`InMemoryMadara`], also served over JSON-RPC for the SNOS run) and the settlement layer (a
//! recording fake) — and the real prover (the mock prover; Atlantic against the in-process
//! mock Atlantic server), DA client and SNOS runner the row selects. The embedded cron runs
//! the triggers until every batch of blocks 0..=3 is settled: every job must be `Completed`
//! and the settlement fake must have received exactly one state update per batch, of the kind
//! the layer sends (L2: blobs after Aggregator; L3: after SnosRun → ProofCreation →
//! ProofRegistration → DataSubmission, calldata on Starknet, blobs on Ethereum).
//!
//! The SHARP rows run the mock prover in place of the SHARP client (SHARP is an mTLS service;
//! `crates/prover-clients/sharp-service/tests` covers its client), with the rest of the row as
//! is: the SHARP proving stage and the external aggregator (`--aggregator-command`: the
//! `stand-in-aggregator` binary the workspace builds).
//!
//! The external SNOS runner rows run a script that copies, per batch, the PIE the stand-in
//! produced for the same blocks in the row before (the table lists the stand-in row of a
//! combination first): the external runner's contract (a command writing `cairo_pie.zip`) is
//! exercised with a PIE the rest of the pipeline accepts.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use axum::{extract::State, routing::post, Json, Router};
use orchestrator::{
    app::Orchestrator,
    config::{ProverParams, RunParams},
    core::client::{
        embedded,
        local_cron::LocalCron,
        madara::{memory::InMemoryMadara, MadaraClient},
        CronClient,
    },
    types::{
        batch::SnosBatchQuery,
        jobs::{JobStatus, JobType},
        stage, Layer,
    },
    worker::{
        stages::{build_with, external::ExternalClients},
        Config,
    },
};
use orchestrator_mock_atlantic_server::{MockAtlanticConfig, MockAtlanticServer};
use orchestrator_settlement_client_interface::{
    BlobStateUpdate, SettlementClient, SettlementResult, SettlementVerificationStatus,
    StateUpdateOutcome, StateUpdateTxError, Word,
};
use serde_json::{json, Value};
use starknet::core::types::Felt;

use crate::{
    prover_matrix::{command_line, params, table, Row},
    support::wait_for,
};

/// The blocks every row settles.
const LAST_BLOCK: u64 = 3;
/// Blocks per SNOS (and, on L2, aggregator) batch: two batches.
const BATCH_BLOCKS: u64 = 2;
const BATCHES: usize = ((LAST_BLOCK + 1) / BATCH_BLOCKS) as usize;
const VERSION: &str = "0.13.3";

/// One state update the settlement fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Update {
    /// `update_state_with_blobs`: the new block of the program output, the number of blobs.
    Blobs { new_block: u64, blobs: usize },
    /// `update_state_calldata`: the new block of the OS output.
    Calldata { new_block: u64 },
}

/// A settlement layer in memory: each update moves the last settled block to the update's
/// new block (felt 3 of the output header) and is recorded.
#[derive(Debug, Default)]
struct FakeSettlement {
    inner: Mutex<(Option<u64>, Vec<Update>)>,
}

fn new_block(output: &[Word]) -> SettlementResult<u64> {
    output.get(3).map(|w| u64::from_be_bytes(w[24..].try_into().unwrap())).ok_or_else(|| {
        orchestrator_settlement_client_interface::SettlementError::InvalidInput(format!(
            "output of {} words has no header",
            output.len()
        ))
    })
}

impl FakeSettlement {
    fn settle(&self, update: Update) -> String {
        let mut inner = self.inner.lock().unwrap();
        let block = match update {
            Update::Blobs { new_block, .. } | Update::Calldata { new_block } => new_block,
        };
        inner.0 = Some(block);
        inner.1.push(update);
        format!("{:#x}", inner.1.len())
    }

    fn updates(&self) -> Vec<Update> {
        self.inner.lock().unwrap().1.clone()
    }
}

#[async_trait]
impl SettlementClient for FakeSettlement {
    async fn update_state_calldata(
        &self,
        snos_output: Vec<Word>,
        _program_output: Vec<Word>,
        _onchain_data_hash: Word,
        _onchain_data_size: Word,
    ) -> SettlementResult<String> {
        Ok(self.settle(Update::Calldata { new_block: new_block(&snos_output)? }))
    }

    async fn update_state_with_blobs(
        &self,
        update: BlobStateUpdate,
    ) -> Result<StateUpdateOutcome, StateUpdateTxError> {
        let new_block = new_block(&update.program_output)
            .map_err(|error| StateUpdateTxError { error, attempts: vec![] })?;
        let tx = self.settle(Update::Blobs { new_block, blobs: update.blobs.len() });
        Ok(StateUpdateOutcome { tx_hash: Some(tx), block_number: Some(1), attempts: vec![] })
    }

    async fn verify_tx_inclusion(
        &self,
        _tx_hash: &str,
    ) -> SettlementResult<SettlementVerificationStatus> {
        Ok(SettlementVerificationStatus::Verified)
    }

    async fn wait_for_tx_finality(&self, _tx_hash: &str) -> SettlementResult<Option<u64>> {
        Ok(Some(1))
    }

    async fn get_last_settled_block(&self) -> SettlementResult<Option<u64>> {
        Ok(self.inner.lock().unwrap().0)
    }

    async fn get_nonce(&self) -> SettlementResult<u64> {
        Ok(self.inner.lock().unwrap().1.len() as u64)
    }
}

/// A JSON-RPC error answer.
fn rpc_error(code: i64, message: &str) -> Json<Value> {
    Json(json!({"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": message}}))
}

fn felt(v: &Value) -> Felt {
    Felt::from_hex(v.as_str().unwrap_or_default()).unwrap_or_default()
}

/// The block number of the `block_id` among `params` (by position or by name).
fn block_id(params: &Value) -> Option<u64> {
    let ids: Vec<&Value> = match params {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) => o.get("block_id").into_iter().collect(),
        _ => vec![],
    };
    ids.iter().find_map(|v| v["block_number"].as_u64())
}

/// The `--rpc-for-snos` node: the SNOS run's calls answered from the in-memory node.
async fn rpc(State(node): State<Arc<InMemoryMadara>>, Json(req): Json<Value>) -> Json<Value> {
    let p = &req["params"];
    let by = |pos: usize, name: &str| match p {
        Value::Array(a) => a.get(pos).cloned().unwrap_or_default(),
        _ => p[name].clone(),
    };
    let block = block_id(p);
    let result = match (req["method"].as_str().unwrap_or_default(), block) {
        ("starknet_chainId", _) => node.chain_id().await.map(|c| json!(format!("{c:#x}"))),
        ("starknet_getStateUpdate", Some(b)) => {
            node.state_update(b).await.map(|u| serde_json::to_value(u).unwrap())
        }
        ("starknet_getStorageAt", Some(b)) => node
            .storage_at(b, &[(felt(&by(0, "contract_address")), felt(&by(1, "key")))])
            .await
            .map(|v| json!(format!("{:#x}", v[0]))),
        ("starknet_getNonce", Some(b)) => node
            .nonce_at(b, &[felt(&by(1, "contract_address"))])
            .await
            .map(|v| json!(format!("{:#x}", v[0]))),
        ("starknet_getClassHashAt", Some(b)) => {
            match node.class_hash_at(b, &[felt(&by(1, "contract_address"))]).await {
                Ok(v) => match v.first().copied().flatten() {
                    Some(c) => Ok(json!(format!("{c:#x}"))),
                    None => return rpc_error(20, "Contract not found"),
                },
                Err(e) => Err(e),
            }
        }
        (m, _) => return rpc_error(-32601, &format!("{m} is not served by the fake node")),
    };
    match result {
        Ok(r) => Json(json!({"jsonrpc": "2.0", "id": 1, "result": r})),
        Err(e) => rpc_error(24, &e.to_string()),
    }
}

/// Serves `node` over JSON-RPC on a free port.
async fn serve(node: Arc<InMemoryMadara>) -> url::Url {
    let app = Router::new().route("/", post(rpc)).with_state(node);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/").parse().unwrap()
}

fn name(row: &Row) -> String {
    format!("{} × {} × {} × {}", row.layer, row.prover, row.settle, row.snos)
}

/// The PIEs of the stand-in runs, by (layer, prover, settle) and start block.
type Pies = HashMap<(String, String, String), HashMap<u64, Vec<u8>>>;

/// Drives `row` to the settlement of blocks 0..=LAST_BLOCK; returns the updates received.
async fn drive(row: &Row, p: RunParams, pies: &mut Pies, work: &std::path::Path) -> Vec<Update> {
    let mut p = p;
    let key = (row.layer.clone(), row.prover.clone(), row.settle.clone());
    let node = Arc::new(InMemoryMadara::new());
    node.push_blocks(LAST_BLOCK + 1, VERSION);
    let rpc_url = serve(node.clone()).await;
    p.snos.rpc_url = rpc_url.clone();
    p.service.max_block_to_process = Some(LAST_BLOCK);
    p.service.verification_poll = Some(Duration::from_millis(100));
    p.batching.fixed_blocks_per_snos_batch = Some(BATCH_BLOCKS);
    p.batching.max_batch_size = BATCH_BLOCKS;
    p.batching.max_batch_time = Duration::from_secs(1);
    if row.snos == "external" {
        let dir = work.join(format!("pies-{}", name(row).replace(" × ", "-")));
        std::fs::create_dir_all(&dir).unwrap();
        let stand_in = pies.get(&key).unwrap_or_else(|| {
            panic!("{}: the stand-in row of the combination runs first", name(row))
        });
        for (start, pie) in stand_in {
            std::fs::write(dir.join(format!("{start}.zip")), pie).unwrap();
        }
        p.snos.command =
            Some(format!("cp {}/$SNOS_START_BLOCK.zip \"$SNOS_OUTPUT\"", dir.display()));
    }
    let mut atlantic = None;
    if let ProverParams::Atlantic(a) = &mut p.prover {
        let server = MockAtlanticServer::start(MockAtlanticConfig {
            port: 0,
            processing_delay: Duration::from_millis(20),
            completion_delay: Duration::from_millis(20),
            ..MockAtlanticConfig::default()
        })
        .await
        .unwrap();
        a.service_url = server.url();
        a.artifacts_base_url = server.url();
        // No fact registry runs here: the proofs' facts are not checked on chain.
        a.mock_fact_hash = true;
        atlantic = Some(server);
    }
    let settlement = Arc::new(FakeSettlement::default());
    // SHARP needs its mTLS service: the mock prover stands in for the SHARP client, the rest
    // of the row (proving for SHARP, the external aggregator command) is the row's own.
    let mut client_params = p.clone();
    if let ProverParams::Sharp(_) = p.prover {
        let mock = Row { prover: "mock".into(), refused: None, ..row.clone() };
        client_params.prover = params(command_line(&mock, work, false)).unwrap().prover;
        let exe = std::env::current_exe().unwrap();
        let bin = exe.parent().and_then(|d| d.parent()).unwrap().join("stand-in-aggregator");
        assert!(bin.exists(), "{} is not built (cargo test --workspace builds it)", bin.display());
        p.aggregator.command = Some(bin.display().to_string());
    }
    let external =
        ExternalClients::from_parts(&client_params, node.clone(), settlement.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clients = embedded::open(dir.path(), &embedded::EmbeddedOptions::default()).await.unwrap();
    let (handlers, triggers) = build_with(&p, &clients, &external).unwrap();
    let config =
        Arc::new(Config::new(p.layer, clients, handlers, triggers, crate::support::fast_engine()));
    let cron: Arc<dyn CronClient> = Arc::new(LocalCron::new(config.queue().clone()));
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let orch =
        Orchestrator::start_with(config.clone(), addr, Some((cron, Duration::from_millis(200))))
            .await
            .unwrap();
    let db = config.database().clone();
    let job_types: Vec<JobType> = stage::stages(p.layer).iter().map(|s| s.job_type).collect();
    let what = format!("{}: every job of {BATCHES} batches Completed", name(row));
    wait_for(Duration::from_secs(40), &what, async || {
        let mut done = 0;
        for t in &job_types {
            for id in 1..=BATCHES as u64 {
                if let Some(j) = db.get_job_by_internal_id_and_type(id, *t).await.unwrap() {
                    assert!(
                        !matches!(j.status, JobStatus::Failed | JobStatus::VerificationFailed),
                        "{}: {t} {id} is {}: {:?}",
                        name(row),
                        j.status,
                        j.metadata.common.failure_reason
                    );
                    done += usize::from(j.status == JobStatus::Completed);
                }
            }
        }
        done == job_types.len() * BATCHES
    })
    .await;
    // Nothing more to do: no job beyond the batches, no second update.
    tokio::time::sleep(Duration::from_millis(500)).await;
    orch.stop().await.unwrap();
    for t in &job_types {
        assert!(
            db.get_job_by_internal_id_and_type(BATCHES as u64 + 1, *t).await.unwrap().is_none(),
            "{}: a {t} job beyond batch {BATCHES}",
            name(row)
        );
    }
    if row.snos == "stand-in" {
        let batches = db.get_snos_batches(SnosBatchQuery::default()).await.unwrap();
        let mut by_start = HashMap::new();
        for b in batches {
            let pie =
                config.storage().get_data(&format!("{}/cairo_pie.zip", b.index)).await.unwrap();
            by_start.insert(b.start_block, pie.to_vec());
        }
        pies.insert(key, by_start);
    }
    if let Some(server) = atlantic {
        server.stop().await;
    }
    settlement.updates()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_configuration_settles_its_batches_in_process() {
    let certs = tempfile::tempdir().unwrap();
    for n in ["u.crt", "u.key", "s.crt"] {
        std::fs::write(certs.path().join(n), "PEM").unwrap();
    }
    let work = tempfile::tempdir().unwrap();
    let mut pies = Pies::new();
    let mut driven = 0;
    for row in table().iter().filter(|r| r.refused.is_none()) {
        let p = params(command_line(row, certs.path(), true)).unwrap();
        let layer = p.layer;
        let calldata = layer == Layer::L3 && row.settle == "starknet";
        let started = Instant::now();
        let updates = drive(row, p, &mut pies, work.path()).await;
        let ends: Vec<u64> = (1..=BATCHES as u64).map(|i| i * BATCH_BLOCKS - 1).collect();
        let want: Vec<Update> = ends
            .iter()
            .map(|&new_block| match calldata {
                true => Update::Calldata { new_block },
                false => Update::Blobs { new_block, blobs: 1 },
            })
            .collect();
        assert_eq!(updates, want, "{}: one state update per batch", name(row));
        eprintln!(
            "{}: settled {} batch(es) in {} ms",
            name(row),
            updates.len(),
            started.elapsed().as_millis()
        );
        driven += 1;
    }
    assert_eq!(driven, 14, "the settling rows of the doc");
}
