//! The startup preflight of `orchestrator run` and `/health/ready`'s external dependencies
//! (issue 16, item 4): each check failing on purpose against a real service (Anvil,
//! starknet-devnet, the mock Atlantic server, the embedded tier, a closed port), the all-ok
//! case on the local services, the binary exiting non-zero with the fatal lines last,
//! `--skip-preflight`, and `/health/ready` degraded (200) when only an external dependency is
//! down, 503 when the database is.
//!
//! Needs Anvil and starknet-devnet (`ORCH_SKIP_ANVIL_TESTS=1` / `ORCH_SKIP_DEVNET_TESTS=1`
//! skip the tests that use them).

use std::{
    io::Read,
    path::Path,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use alloy::primitives::U256;
use async_trait::async_trait;
use axum::http::StatusCode;
use clap::Parser;
use orchestrator::{
    cli::RunCmd,
    config::{EngineParams, ServerSettings},
    core::client::embedded,
    preflight::{self, Check, Level, Report, RpcProbe, StorageCheck, CHECK_TIMEOUT},
    server::{
        self,
        health::{DependencyProbe, ExternalDependencies},
    },
    types::Layer,
    worker::{handler::JobHandlers, trigger::Triggers, Config},
};
use orchestrator_ethereum_settlement_client::testing::{deploy_contracts, ANVIL_KEY_0};
use orchestrator_mock_atlantic_server::{MockAtlanticConfig, MockAtlanticServer};
use orchestrator_test_support::{
    anvil::{Anvil, AnvilConfig},
    launch::{free_port, json_rpc},
};
use serde_json::{json, Value};

use crate::{api_support as s, support::devnet::Devnet};

const BIN: &str = env!("CARGO_BIN_EXE_orchestrator");
/// Nothing listens there: connection refused at once.
const CLOSED: &str = "http://127.0.0.1:1";
/// The address of `ANVIL_KEY_0`.
const SIGNER_0: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
/// An address with no code on a fresh Anvil.
const EMPTY: &str = "0x000000000000000000000000000000000000dEaD";
/// Runtime code answering every call with 32 zero bytes: `isOperator` is false.
const RETURNS_FALSE: &str = "0x60206000f3";
/// Runtime code answering every call with the word 1: `isOperator` is true.
const RETURNS_TRUE: &str = "0x600160005260206000f3";
const API_KEY: &str = "preflight-right-key";

/// A `run` command line: every dependency at a closed port (mock prover, embedded tier in
/// `dir`), with `over` replacing a flag's value or adding it (`""`: a switch).
fn command(dir: &Path, over: &[(&str, &str)]) -> Vec<String> {
    let data_dir = dir.display().to_string();
    let mut flags: Vec<(String, String)> = [
        ("--settle-on-ethereum", ""),
        ("--ethereum-rpc-url", CLOSED),
        ("--ethereum-private-key", ANVIL_KEY_0),
        ("--l1-core-contract-address", EMPTY),
        ("--starknet-operator-address", SIGNER_0),
        ("--da-on-ethereum", ""),
        ("--ethereum-da-rpc-url", CLOSED),
        ("--prover", "mock"),
        ("--madara-rpc-url", CLOSED),
        ("--rpc-for-snos", CLOSED),
        ("--max-batch-time-seconds", "60"),
        ("--data-dir", &data_dir),
    ]
    .iter()
    .map(|(f, v)| ((*f).to_owned(), (*v).to_owned()))
    .collect();
    for (flag, value) in over {
        match flags.iter_mut().find(|(f, _)| f == flag) {
            Some(entry) => entry.1 = (*value).to_owned(),
            None => flags.push(((*flag).to_owned(), (*value).to_owned())),
        }
    }
    let mut line = vec!["run".to_owned()];
    for (flag, value) in flags {
        line.push(flag);
        if !value.is_empty() {
            line.push(value);
        }
    }
    line
}

/// The Atlantic flags for the service at `url` with `key`.
fn atlantic<'a>(url: &'a str, key: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("--prover", "atlantic"),
        ("--atlantic-api-key", key),
        ("--atlantic-service-url", url),
        ("--atlantic-mock-fact-hash", "true"),
        ("--atlantic-settlement-layer", "ethereum"),
        ("--atlantic-verifier-contract-address", EMPTY),
        ("--atlantic-network", "TESTNET"),
    ]
}

/// The preflight of that command line.
async fn preflight(dir: &Path, over: &[(&str, &str)]) -> Report {
    let params = RunCmd::try_parse_from(command(dir, over)).unwrap().params().unwrap();
    preflight::run(&params).await
}

/// The level and line of `check`.
fn outcome(report: &Report, check: &str) -> (Level, String) {
    let o = report.get(check).unwrap_or_else(|| panic!("no {check} line: {:?}", report.lines()));
    (o.finding.level, o.to_string())
}

async fn anvil_rpc(anvil: &Anvil, method: &str, params: Value) -> Value {
    json_rpc(&reqwest::Client::new(), &anvil.url(), method, params)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

#[tokio::test]
async fn an_unreachable_node_is_fatal_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let report = preflight(dir.path(), &[]).await;
    let (level, line) = outcome(&report, "node");
    assert_eq!(level, Level::Fatal, "{line}");
    assert!(
        line.starts_with("preflight: fatal node: the Madara node at http://127.0.0.1:1")
            && line.contains("unreachable")
            && line.contains("fix: start the node, or point --madara-rpc-url"),
        "{line}"
    );
    // The infrastructure of the embedded tier is fine, and its lines come before the fatal ones.
    for check in ["storage", "queue", "database"] {
        assert_eq!(outcome(&report, check).0, Level::Ok, "{:?}", report.lines());
    }
    let levels: Vec<Level> = report.outcomes.iter().map(|o| o.finding.level).collect();
    assert!(levels.windows(2).all(|w| w[0] <= w[1]), "fatal lines last: {levels:?}");
}

#[tokio::test]
async fn a_node_of_another_chain_is_fatal() {
    let Some(devnet) = Devnet::start().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = devnet.url.to_string();
    let node = [("--madara-rpc-url", url.as_str()), ("--rpc-for-snos", url.as_str())];

    let mut wrong = node.to_vec();
    wrong.push(("--preflight-chain-id", "SN_MAIN"));
    let (level, line) = outcome(&preflight(dir.path(), &wrong).await, "node");
    assert_eq!(level, Level::Fatal, "{line}");
    assert!(
        line.contains(
            "is chain SN_SEPOLIA (0x534e5f5345504f4c4941), --preflight-chain-id is SN_MAIN"
        ),
        "{line}"
    );

    let mut right = node.to_vec();
    right.push(("--preflight-chain-id", "0x534e5f5345504f4c4941"));
    let (level, line) = outcome(&preflight(dir.path(), &right).await, "node");
    assert_eq!(level, Level::Ok, "{line}");
    assert!(line.contains("chain SN_SEPOLIA") && line.contains(", spec 0."), "{line}");

    // The SNOS RPC on another chain (an Ethereum node does not even answer starknet_chainId).
    let Some(anvil) = Anvil::start(AnvilConfig::new("cancun")).await else { return };
    let other = anvil.url().to_string();
    let split = [("--madara-rpc-url", url.as_str()), ("--rpc-for-snos", other.as_str())];
    let (level, line) = outcome(&preflight(dir.path(), &split).await, "node");
    assert_eq!(level, Level::Fatal, "{line}");
    assert!(line.contains("--rpc-for-snos") && line.contains("starknet_chainId"), "{line}");
}

#[tokio::test]
async fn no_code_at_the_core_contract_address_is_fatal() {
    let Some(anvil) = Anvil::start(AnvilConfig::new("cancun")).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = anvil.url().to_string();
    let report = preflight(dir.path(), &[("--ethereum-rpc-url", &url)]).await;
    let (level, line) = outcome(&report, "settlement");
    assert_eq!(level, Level::Fatal, "{line}");
    assert!(
        line.contains("chain 31337")
            && line.contains("no contract code at --l1-core-contract-address 0x000000000000000000000000000000000000dEaD")
            && line.contains("fix: deploy the Starknet core contract"),
        "{line}"
    );
}

#[tokio::test]
async fn a_signer_that_is_not_an_operator_is_fatal() {
    let Some(anvil) = Anvil::start(AnvilConfig::new("cancun")).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = anvil.url().to_string();
    let over = [("--ethereum-rpc-url", url.as_str())];

    anvil_rpc(&anvil, "anvil_setCode", json!([EMPTY, RETURNS_FALSE])).await;
    let (level, line) = outcome(&preflight(dir.path(), &over).await, "settlement");
    assert_eq!(level, Level::Fatal, "{line}");
    assert!(
        line.contains(&format!("signer {SIGNER_0} is not an operator"))
            && line.contains("registerOperator"),
        "{line}"
    );

    anvil_rpc(&anvil, "anvil_setCode", json!([EMPTY, RETURNS_TRUE])).await;
    let (level, line) = outcome(&preflight(dir.path(), &over).await, "settlement");
    assert_eq!(level, Level::Ok, "{line}");
    assert!(line.contains("(an operator)") && line.contains("balance 10000.000000 ETH"), "{line}");
}

#[tokio::test]
async fn a_low_balance_is_a_warning_not_fatal() {
    let Some(anvil) = Anvil::start(AnvilConfig::new("cancun")).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = anvil.url().to_string();
    anvil_rpc(&anvil, "anvil_setCode", json!([EMPTY, RETURNS_TRUE])).await;
    anvil_rpc(&anvil, "anvil_setBalance", json!([SIGNER_0, "0x3e8"])).await;
    let report = preflight(dir.path(), &[("--ethereum-rpc-url", &url)]).await;
    let (level, line) = outcome(&report, "settlement");
    assert_eq!(level, Level::Warning, "{line}");
    assert!(
        line.contains("balance 0.000000 ETH is below 5 state updates' worth")
            && line.contains(&format!("fix: fund {SIGNER_0} on chain 31337")),
        "{line}"
    );
    assert!(!report.fatal().contains(&"settlement"));

    // And an operator address that is not the signer's is a warning too, with the fix.
    anvil_rpc(&anvil, "anvil_setBalance", json!([SIGNER_0, "0x21e19e0c9bab2400000"])).await;
    let over = [("--ethereum-rpc-url", url.as_str()), ("--starknet-operator-address", EMPTY)];
    let (level, line) = outcome(&preflight(dir.path(), &over).await, "settlement");
    assert_eq!(level, Level::Warning, "{line}");
    assert!(line.contains(&format!("set --starknet-operator-address to {SIGNER_0}")), "{line}");
}

#[tokio::test]
async fn a_prover_refusing_the_api_key_is_fatal() {
    let server = MockAtlanticServer::start(MockAtlanticConfig {
        port: 0,
        api_key: Some(API_KEY.to_owned()),
        ..MockAtlanticConfig::default()
    })
    .await
    .unwrap();
    let url = server.url().to_string();
    let dir = tempfile::tempdir().unwrap();

    let (level, line) =
        outcome(&preflight(dir.path(), &atlantic(&url, "wrong-key-7c1f")).await, "prover");
    assert_eq!(level, Level::Fatal, "{line}");
    assert!(
        line.contains("refused the API key (HTTP 401)") && line.contains("--atlantic-api-key"),
        "{line}"
    );
    assert!(!line.contains("wrong-key-7c1f"), "the key never shows: {line}");

    let (level, line) = outcome(&preflight(dir.path(), &atlantic(&url, API_KEY)).await, "prover");
    assert_eq!(level, Level::Ok, "{line}");
    assert!(line.contains("is alive and accepts the API key"), "{line}");

    server.stop().await;
    let (level, line) = outcome(&preflight(dir.path(), &atlantic(&url, API_KEY)).await, "prover");
    assert_eq!(level, Level::Fatal, "{line}");
    assert!(line.contains("is-alive") && line.contains("--atlantic-service-url"), "{line}");
}

#[tokio::test]
async fn unwritable_storage_is_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let clients = embedded::open(dir.path(), &Default::default()).await.unwrap();
    let check = StorageCheck { storage: clients.storage.clone() };
    assert_eq!(check.run().await.level, Level::Ok);
    // The artifacts directory becomes a file: nothing can be created under it (not even by
    // root, which permissions would not stop).
    let artifacts = dir.path().join("artifacts");
    std::fs::remove_dir_all(&artifacts).unwrap();
    std::fs::write(&artifacts, b"not a directory").unwrap();
    let report = preflight::run_checks(vec![Box::new(check)], CHECK_TIMEOUT).await;
    let (level, line) = outcome(&report, "storage");
    assert_eq!(level, Level::Fatal, "{line}");
    assert!(
        line.contains("cannot write preflight/probe-")
            && line.contains("fix: make the storage writable"),
        "{line}"
    );
}

#[tokio::test]
async fn an_unreachable_database_is_fatal_and_keeps_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let report = preflight(
        dir.path(),
        &[("--postgres", ""), ("--postgres-url", "postgres://orch:pw-9a8b7c@127.0.0.1:1/orch")],
    )
    .await;
    let (level, line) = outcome(&report, "database");
    assert_eq!(level, Level::Fatal, "{line}");
    assert!(
        line.contains("127.0.0.1:1") && line.contains("fix: start the database server"),
        "{line}"
    );
    assert!(!line.contains("pw-9a8b7c"), "{line}");
    assert!(started.elapsed() < CHECK_TIMEOUT + Duration::from_secs(5), "bounded by the timeout");
    // The other infrastructure is fine.
    assert_eq!(outcome(&report, "storage").0, Level::Ok);
    assert_eq!(outcome(&report, "queue").0, Level::Ok);
}

#[tokio::test]
async fn every_check_passes_on_the_local_services() {
    let Some(devnet) = Devnet::start().await else { return };
    let Some(anvil) = Anvil::start(AnvilConfig::new("cancun")).await else { return };
    let contracts =
        deploy_contracts(&anvil.url(), ANVIL_KEY_0, U256::from(0x5eed_u64), U256::ZERO, -1, false)
            .await
            .unwrap();
    let server = MockAtlanticServer::start(MockAtlanticConfig {
        port: 0,
        api_key: Some(API_KEY.to_owned()),
        ..MockAtlanticConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (node, l1, prover) =
        (devnet.url.to_string(), anvil.url().to_string(), server.url().to_string());
    let core = format!("{:#x}", contracts.core_contract);
    // The settlement RPC's primary is down and its fallback answers: the check fails over as
    // the settlement client does.
    let settlement = format!("{CLOSED},{l1}");
    let mut over = vec![
        ("--madara-rpc-url", node.as_str()),
        ("--rpc-for-snos", node.as_str()),
        ("--preflight-chain-id", "SN_SEPOLIA"),
        ("--ethereum-rpc-url", settlement.as_str()),
        ("--ethereum-da-rpc-url", l1.as_str()),
        ("--l1-core-contract-address", core.as_str()),
    ];
    over.extend(atlantic(&prover, API_KEY));
    let report = preflight(dir.path(), &over).await;
    assert!(report.outcomes.iter().all(|o| o.finding.level == Level::Ok), "{:#?}", report.lines());
    let checks: Vec<&str> = report.outcomes.iter().map(|o| o.check).collect();
    assert_eq!(checks, ["node", "settlement", "prover", "da", "storage", "queue", "database"]);
    let (_, line) = outcome(&report, "settlement");
    // Our test core contract has no isOperator: said, not guessed.
    assert!(line.contains("operator not checked: the contract has no isOperator"), "{line}");
    let (_, line) = outcome(&report, "da");
    assert!(line.contains("chain 31337"), "{line}");
    let mut out = Vec::new();
    report.print(&mut out).expect("no fatal check");
    let out = String::from_utf8(out).unwrap();
    println!("{out}");
    assert_eq!(out.lines().count(), 7);
}

/// `orchestrator run` in `dir` with `args`, no `MADARA_ORCHESTRATOR_*` of the test's
/// environment, stderr to `dir/stderr.log`.
fn binary(dir: &Path, args: &[String]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(dir).env("NO_COLOR", "1");
    for (key, _) in std::env::vars() {
        if key.starts_with("MADARA_ORCHESTRATOR_") {
            cmd.env_remove(key);
        }
    }
    let stderr = std::fs::File::create(dir.join("stderr.log")).unwrap();
    cmd.stdout(Stdio::piped()).stderr(stderr);
    cmd
}

#[test]
fn the_binary_exits_non_zero_with_the_fatal_lines_last() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut args = command(&data, &[]);
    // Closed ports do not answer: the preflight waits for them (2 s here), then gives up.
    args.extend(
        ["--host", "127.0.0.1", "--port", "0", "--preflight-wait-seconds", "2"].map(String::from),
    );
    let started = std::time::Instant::now();
    let out = binary(dir.path(), &args).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "it waited for the window");
    let mut lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(
            "preflight: waiting for node, settlement, da (no answer); checking again for up to 2 s"
        ),
        "{stdout}"
    );
    lines.remove(0);
    assert_eq!(lines.len(), 7, "then one line per check: {stdout}");
    assert!(lines.iter().all(|l| l.starts_with("preflight: ")), "{stdout}");
    let first_fatal = lines.iter().position(|l| l.starts_with("preflight: fatal")).unwrap();
    assert!(lines[first_fatal..].iter().all(|l| l.starts_with("preflight: fatal")), "{stdout}");
    for check in ["node", "settlement", "da"] {
        assert!(
            lines[first_fatal..]
                .iter()
                .any(|l| l.starts_with(&format!("preflight: fatal {check}: "))),
            "{check}: {stdout}"
        );
    }
    assert!(lines.contains(&"preflight: ok prover: mock prover (nothing to reach)"), "{stdout}");
    assert!(stderr.contains("preflight failed: node, settlement, da"), "{stderr}");
    assert!(stderr.contains("--skip-preflight"), "{stderr}");
    assert!(!stderr.contains("Orchestrator started"), "no worker started: {stderr}");
}

#[tokio::test]
async fn skip_preflight_starts_and_ready_reports_degraded_dependencies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut over = atlantic(CLOSED, API_KEY);
    over.push(("--skip-preflight", ""));
    let mut args = command(&data, &over);
    args.extend(["--host", "127.0.0.1", "--port"].map(String::from));
    args.push(port.to_string());
    let mut child = binary(dir.path(), &args).spawn().unwrap();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        if let Some(status) = child.try_wait().unwrap() {
            let stderr = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
            panic!("run exited with {status}: {stderr}");
        }
        let got = http
            .get(format!("http://127.0.0.1:{port}/health/ready"))
            .timeout(Duration::from_secs(20))
            .send()
            .await;
        if let Ok(response) = got {
            break (response.status(), response.json::<Value>().await.unwrap());
        }
        assert!(Instant::now() < deadline, "not serving within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();

    assert_eq!(answer.0, StatusCode::OK.as_u16(), "{}", answer.1);
    let data = &answer.1["data"];
    assert_eq!(data["status"], "degraded", "{}", answer.1);
    assert_eq!(data["degraded"], json!(["node", "settlement", "prover"]), "{}", answer.1);
    assert!(data["checks"].as_array().unwrap().iter().all(|c| c["ok"] == true), "{}", answer.1);
    assert_eq!(answer.1["message"], "degraded: node, settlement, prover unreachable");
    assert!(!stdout.contains("preflight:"), "skipped: {stdout}");
    let stderr = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(stderr.contains("Preflight skipped (--skip-preflight)"), "{stderr}");
}

/// A context on the embedded tier of `dir` reporting `dependencies`.
async fn context(dir: &Path, dependencies: ExternalDependencies) -> Arc<Config> {
    let clients = embedded::open(dir, &Default::default()).await.unwrap();
    let server = ServerSettings { dependencies, ..ServerSettings::default() };
    Arc::new(
        Config::new(
            Layer::L2,
            clients,
            JobHandlers::new(),
            Triggers::new(),
            EngineParams::default(),
        )
        .with_server(server),
    )
}

#[tokio::test]
async fn ready_is_degraded_when_the_node_is_down_and_503_when_the_database_is() {
    let Some(anvil) = Anvil::start(AnvilConfig::new("cancun")).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let closed: url::Url = CLOSED.parse().unwrap();
    let probes: Vec<Arc<dyn DependencyProbe>> = vec![
        Arc::new(RpcProbe::new("node", &closed, "starknet_chainId")),
        Arc::new(RpcProbe::new("settlement", &anvil.url(), "eth_chainId")),
    ];
    let config = context(dir.path(), ExternalDependencies::new(probes)).await;
    let router = server::router(config.clone());

    let a = s::get(&router, "/health/ready").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let body = a.json();
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["status"], "degraded");
    assert_eq!(body["data"]["degraded"], json!(["node"]));
    assert_eq!(body["message"], "degraded: node unreachable");
    let deps = body["data"]["dependencies"].as_array().unwrap();
    assert_eq!(
        (deps[0]["component"].as_str(), deps[0]["ok"].as_bool()),
        (Some("node"), Some(false))
    );
    let error = deps[0]["error"].as_str().unwrap();
    assert!(
        error.contains("starknet_chainId at http://127.0.0.1:1") && error.contains("unreachable"),
        "{error}"
    );
    assert_eq!(
        (deps[1]["component"].as_str(), deps[1]["ok"].as_bool()),
        (Some("settlement"), Some(true))
    );
    assert_eq!(body["data"]["checks"].as_array().unwrap().len(), 3);

    config.database().disconnect().await.unwrap();
    let a = s::get(&router, "/health/ready").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text);
    let body = a.json();
    assert_eq!(body["data"]["status"], "not ready");
    assert!(a.message().contains("database"), "{}", a.text);
    // The dependencies are still listed, beside the internal failure.
    assert_eq!(body["data"]["dependencies"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn ready_is_ready_with_every_dependency_up_and_without_any() {
    let Some(anvil) = Anvil::start(AnvilConfig::new("cancun")).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let probe: Arc<dyn DependencyProbe> =
        Arc::new(RpcProbe::new("settlement", &anvil.url(), "eth_chainId"));
    let config = context(dir.path(), ExternalDependencies::new(vec![probe])).await;
    let a = s::get(&server::router(config), "/health/ready").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["data"]["status"], "ready");
    assert!(a.json()["message"].is_null());

    let dir = tempfile::tempdir().unwrap();
    let config = context(dir.path(), ExternalDependencies::default()).await;
    let a = s::get(&server::router(config), "/health/ready").await;
    assert_eq!((a.status, a.json()["data"]["status"].clone()), (StatusCode::OK, json!("ready")));
    assert_eq!(a.json()["data"]["dependencies"], json!([]));
}

/// A dependency that counts its probes and fails them.
#[derive(Debug, Default)]
struct Counting(AtomicUsize);

#[async_trait]
impl DependencyProbe for Counting {
    fn name(&self) -> &'static str {
        "prover"
    }

    async fn probe(&self) -> Result<(), String> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err("down".into())
    }
}

#[tokio::test]
async fn dependency_probes_are_cached() {
    let dir = tempfile::tempdir().unwrap();
    let counting = Arc::new(Counting::default());
    let deps = ExternalDependencies::new(vec![counting.clone() as Arc<dyn DependencyProbe>]);
    let router = server::router(context(dir.path(), deps).await);
    let answers = futures::future::join_all((0..5).map(|_| s::get(&router, "/health/ready"))).await;
    assert!(answers.iter().all(|a| a.json()["data"]["degraded"] == json!(["prover"])));
    assert_eq!(counting.0.load(Ordering::SeqCst), 1, "one probe for five requests");

    let counting = Arc::new(Counting::default());
    let deps = ExternalDependencies::with_ttl(
        vec![counting.clone() as Arc<dyn DependencyProbe>],
        Duration::ZERO,
    );
    let dir = tempfile::tempdir().unwrap();
    let router = server::router(context(dir.path(), deps).await);
    for _ in 0..3 {
        s::get(&router, "/health/ready").await;
    }
    assert_eq!(counting.0.load(Ordering::SeqCst), 3, "a zero cache period probes every time");
}

/// An L3 command line settling on (and publishing to) the Starknet node at `url`.
fn l3_command(dir: &Path, url: &str, account: &str, key: &str, core: &str) -> Vec<String> {
    let data_dir = dir.display().to_string();
    [
        "run",
        "--layer",
        "l3",
        "--settle-on-starknet",
        "--starknet-rpc-url",
        url,
        "--starknet-private-key",
        key,
        "--starknet-account-address",
        account,
        "--starknet-cairo-core-contract-address",
        core,
        "--da-on-starknet",
        "--starknet-da-rpc-url",
        url,
        "--prover",
        "mock",
        "--madara-rpc-url",
        CLOSED,
        "--rpc-for-snos",
        CLOSED,
        "--max-batch-time-seconds",
        "60",
        "--data-dir",
        &data_dir,
    ]
    .map(String::from)
    .to_vec()
}

#[tokio::test]
async fn l3_settlement_needs_a_core_contract_and_a_deployed_account() {
    let Some(devnet) = Devnet::start().await else { return };
    let accounts = devnet.rpc("devnet_getPredeployedAccounts", json!({})).await;
    let account = accounts[0]["address"].as_str().unwrap().to_owned();
    let key = accounts[0]["private_key"].as_str().unwrap().to_owned();
    let other = accounts[1]["address"].as_str().unwrap().to_owned();
    let url = devnet.url.to_string();
    let dir = tempfile::tempdir().unwrap();
    let run = |account: &str, core: &str| {
        let line = l3_command(dir.path(), &url, account, &key, core);
        async move {
            let params = RunCmd::try_parse_from(line).unwrap().params().unwrap();
            preflight::run(&params).await
        }
    };

    // Another account stands in for the core contract: a contract, without is_operator.
    let report = run(&account, &other).await;
    let (level, line) = outcome(&report, "settlement");
    assert_eq!(level, Level::Ok, "{line}");
    assert!(
        line.contains("chain SN_SEPOLIA")
            && line.contains("operator not checked")
            && line.contains("balance 1000.000000 STRK"),
        "{line}"
    );
    let (level, line) = outcome(&report, "da");
    assert_eq!(level, Level::Ok, "{line}");
    assert!(line.contains("Starknet DA RPC") && line.contains("SN_SEPOLIA"), "{line}");

    let (level, line) = outcome(&run(&account, "0xdead").await, "settlement");
    assert_eq!(level, Level::Fatal, "{line}");
    assert!(
        line.contains("no contract at --starknet-cairo-core-contract-address 0xdead"),
        "{line}"
    );

    let (level, line) = outcome(&run("0xbeef", &other).await, "settlement");
    assert_eq!(level, Level::Fatal, "{line}");
    assert!(
        line.contains("the account --starknet-account-address 0xbeef is not deployed"),
        "{line}"
    );
}
