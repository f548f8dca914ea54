//! Secrets never reach logs, errors or `Debug`: a whole orchestrator started in-process from a
//! command line carrying a private key, an API key and an admin token, run at DEBUG with every
//! log line captured, serving requests (admin ones included); then the logs, the `Debug` forms
//! and the error messages are searched for the secrets.
//!
//! And credentials in URLs (`http://user:password@host/`): the orchestrator re-run as a child
//! process with `RUST_LOG=debug`, in both `LOG_FORMAT`s, every client (node, replay node, SNOS
//! RPC and external runner, Ethereum settlement and DA, Atlantic API, artifacts and fact
//! checker, Starknet settlement) calling a local stub that records the `Authorization` header;
//! no password (nor its base64) may appear in the output, and every one must reach the stub.

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use clap::Parser;
use orchestrator::{app::Orchestrator, cli::run::RunCmd};
use tracing_subscriber::{fmt, prelude::*};

const PRIVATE_KEY: &str = "0x4c0883a69102937d6231471b5dbb6204fe512961708279f0f4ea6a3bc3a0e4f1";
const API_KEY: &str = "atlantic-api-key-93f1c0d8e27b";
const ADMIN_TOKEN: &str = "admin-token-77e2aa41b9c3";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn command_line(data_dir: &str, private_key: &str) -> Vec<String> {
    [
        "run",
        "--settle-on-ethereum",
        "--ethereum-rpc-url",
        "http://127.0.0.1:1",
        "--ethereum-private-key",
        private_key,
        "--l1-core-contract-address",
        "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "--starknet-operator-address",
        "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "--da-on-ethereum",
        "--ethereum-da-rpc-url",
        "http://127.0.0.1:1",
        "--prover",
        "atlantic",
        "--atlantic-api-key",
        API_KEY,
        "--atlantic-service-url",
        "http://127.0.0.1:1",
        "--atlantic-rpc-node-url",
        "http://127.0.0.1:1",
        "--atlantic-settlement-layer",
        "ethereum",
        "--atlantic-verifier-contract-address",
        "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "--atlantic-network",
        "TESTNET",
        "--madara-rpc-url",
        "http://127.0.0.1:1",
        "--rpc-for-snos",
        "http://127.0.0.1:1",
        "--max-batch-time-seconds",
        "60",
        "--data-dir",
        data_dir,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--interval-seconds",
        "1",
        "--admin-enabled",
        "--admin-token",
        ADMIN_TOKEN,
    ]
    .map(String::from)
    .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_at_debug_never_shows_a_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let json_writer = captured.clone();
    let subscriber = tracing_subscriber::registry()
        .with(fmt::layer().with_ansi(false).with_writer(move || writer.clone()))
        .with(fmt::layer().json().with_writer(move || json_writer.clone()))
        .with(tracing_subscriber::filter::LevelFilter::DEBUG);
    // Global, so the engine's tasks on every worker thread are captured.
    tracing::subscriber::set_global_default(subscriber)
        .expect("no other test installs a global subscriber");

    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let mut shown = Vec::new();

    let params =
        RunCmd::try_parse_from(command_line(&data_dir, PRIVATE_KEY)).unwrap().params().unwrap();
    shown.push(format!("{params:?}"));
    shown.push(format!("{params:#?}"));
    tracing::debug!(?params, "Parameters");

    // A rejected key: the error names the flag, not the value.
    let bad_key = format!("{PRIVATE_KEY}zz");
    match RunCmd::try_parse_from(command_line(&data_dir, &bad_key)).unwrap().params() {
        Ok(_) => panic!("a malformed key is rejected"),
        Err(e) => {
            shown.push(e.to_string());
            shown.push(format!("{e:?}"));
        }
    }

    let running = Orchestrator::start(params).await.unwrap();
    shown.push(format!("{:?}", running.config));
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::new();
    let admin =
        client.get(format!("{base}/admin/triggers")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(admin.status(), 200);
    shown.push(admin.text().await.unwrap());
    let refused = client
        .post(format!("{base}/admin/jobs/retry/failed"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    shown.push(refused.text().await.unwrap());
    for path in ["/health/ready", "/jobs?status=Bogus", "/metrics", "/dashboard/data", "/jobs/nope"]
    {
        shown.push(client.get(format!("{base}{path}")).send().await.unwrap().text().await.unwrap());
    }
    // Let the in-process cron tick a few times (triggers log at DEBUG).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    running.stop().await.unwrap();

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("Orchestrator started"), "the capture works:\n{logs}");
    assert!(
        logs.contains("DEBUG") || logs.contains("\"level\":\"DEBUG\""),
        "DEBUG lines are captured"
    );
    assert!(logs.contains("Admin request refused"), "the refused admin request is logged");
    let haystack = format!("{logs}\n{}", shown.join("\n"));
    for secret in [PRIVATE_KEY, PRIVATE_KEY.trim_start_matches("0x"), API_KEY, ADMIN_TOKEN] {
        assert!(!haystack.contains(secret), "secret {secret:?} leaked");
    }
    eprintln!(
        "searched {} bytes of logs and {} Debug/error/response texts",
        logs.len(),
        shown.len()
    );
}

/// One client's URL with credentials: the flag, the user and the password.
struct Credentialed {
    flag: &'static str,
    user: &'static str,
    password: &'static str,
    /// The `Authorization` value they must arrive as (RFC 7617): `Basic ` and the base64 of
    /// `user:password`, computed with Python's `base64.b64encode`.
    basic: &'static str,
    /// Whether a client sends requests to it (the Starknet DA has none: blobs travel in the
    /// settlement calldata).
    called: bool,
}

/// Every URL flag of the L2 run (Ethereum settlement and DA, Atlantic) and of the L3 run
/// (Starknet settlement and DA), each with its own credentials.
const CREDENTIALED: [Credentialed; 10] = [
    Credentialed {
        flag: "--madara-rpc-url",
        user: "node",
        password: "node-pw-41f7c2",
        basic: "Basic bm9kZTpub2RlLXB3LTQxZjdjMg==",
        called: true,
    },
    Credentialed {
        flag: "--replay-bounds-rpc-url",
        user: "replay",
        password: "replay-pw-8d03aa",
        basic: "Basic cmVwbGF5OnJlcGxheS1wdy04ZDAzYWE=",
        called: true,
    },
    Credentialed {
        flag: "--rpc-for-snos",
        user: "snos",
        password: "snos-pw-c6e51b",
        basic: "Basic c25vczpzbm9zLXB3LWM2ZTUxYg==",
        called: true,
    },
    Credentialed {
        flag: "--ethereum-rpc-url",
        user: "eth",
        password: "eth-pw-2b9f4e",
        basic: "Basic ZXRoOmV0aC1wdy0yYjlmNGU=",
        called: true,
    },
    Credentialed {
        flag: "--ethereum-da-rpc-url",
        user: "ethda",
        password: "ethda-pw-77a0d3",
        basic: "Basic ZXRoZGE6ZXRoZGEtcHctNzdhMGQz",
        called: true,
    },
    Credentialed {
        flag: "--atlantic-service-url",
        user: "atlantic",
        password: "atlantic-pw-e4c218",
        basic: "Basic YXRsYW50aWM6YXRsYW50aWMtcHctZTRjMjE4",
        called: true,
    },
    Credentialed {
        flag: "--atlantic-artifacts-base-url",
        user: "artifacts",
        password: "artifacts-pw-09bd6f",
        basic: "Basic YXJ0aWZhY3RzOmFydGlmYWN0cy1wdy0wOWJkNmY=",
        called: true,
    },
    Credentialed {
        flag: "--atlantic-rpc-node-url",
        user: "checker",
        password: "checker-pw-5a7e90",
        basic: "Basic Y2hlY2tlcjpjaGVja2VyLXB3LTVhN2U5MA==",
        called: true,
    },
    Credentialed {
        flag: "--starknet-rpc-url",
        user: "l3",
        password: "l3-pw-93cc15",
        basic: "Basic bDM6bDMtcHctOTNjYzE1",
        called: true,
    },
    Credentialed {
        flag: "--starknet-da-rpc-url",
        user: "snda",
        password: "snda-pw-1f2e3d",
        basic: "Basic c25kYTpzbmRhLXB3LTFmMmUzZA==",
        called: false,
    },
];

const STARKNET_KEY: &str = "0x36a1fd9c2f0e84b1e5d7c3a90b6e4f1d2c8a7b5e3f9d1c0a2b4e6f8d0c1a3b5";
/// `starknet_chainId` of the stub: `SN_SEPOLIA`.
const SN_CHAIN_ID: &str = "0x534e5f5345504f4c4941";
/// The file the external SNOS command writes `$SNOS_RPC_URL` into.
const SNOS_URL_FILE: &str = "snos-rpc-url";

fn credentialed(flag: &str) -> &'static Credentialed {
    CREDENTIALED.iter().find(|c| c.flag == flag).expect("a credentialed flag")
}

/// `http://user:password@<stub>/<path>` for `flag`.
fn url_with_credentials(stub: &str, flag: &str, path: &str) -> String {
    let c = credentialed(flag);
    format!("http://{}:{}@{stub}/{path}", c.user, c.password)
}

/// The L2 command line: Ethereum settlement and DA, Atlantic (fact checked on Ethereum), the
/// external SNOS runner; every URL carries credentials.
fn l2_command_line(stub: &str, data_dir: &str) -> Vec<String> {
    let u = |flag: &str, path: &str| url_with_credentials(stub, flag, path);
    vec![
        "run".into(),
        "--settle-on-ethereum".into(),
        "--ethereum-rpc-url".into(),
        u("--ethereum-rpc-url", ""),
        "--ethereum-private-key".into(),
        PRIVATE_KEY.into(),
        "--l1-core-contract-address".into(),
        "0x5FbDB2315678afecb367f032d93F642f64180aa3".into(),
        "--starknet-operator-address".into(),
        "0x5FbDB2315678afecb367f032d93F642f64180aa3".into(),
        "--da-on-ethereum".into(),
        "--ethereum-da-rpc-url".into(),
        u("--ethereum-da-rpc-url", ""),
        "--prover".into(),
        "atlantic".into(),
        "--atlantic-api-key".into(),
        API_KEY.into(),
        "--atlantic-service-url".into(),
        u("--atlantic-service-url", "atlantic/"),
        "--atlantic-artifacts-base-url".into(),
        u("--atlantic-artifacts-base-url", "artifacts/"),
        "--atlantic-rpc-node-url".into(),
        u("--atlantic-rpc-node-url", ""),
        "--atlantic-settlement-layer".into(),
        "ethereum".into(),
        "--atlantic-verifier-contract-address".into(),
        "0x5FbDB2315678afecb367f032d93F642f64180aa3".into(),
        "--atlantic-network".into(),
        "TESTNET".into(),
        "--madara-rpc-url".into(),
        u("--madara-rpc-url", ""),
        "--replay-bounds-rpc-url".into(),
        u("--replay-bounds-rpc-url", ""),
        "--rpc-for-snos".into(),
        u("--rpc-for-snos", ""),
        "--snos-runner".into(),
        "external".into(),
        "--snos-command".into(),
        format!("printf '%s' \"$SNOS_RPC_URL\" > \"$ORCH_TEST_DIR/{SNOS_URL_FILE}\"; exit 3"),
        "--max-batch-time-seconds".into(),
        "60".into(),
        "--upstream-read-max-attempts".into(),
        "1".into(),
        "--data-dir".into(),
        data_dir.into(),
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        "0".into(),
        "--interval-seconds".into(),
        "1".into(),
        "--admin-enabled".into(),
        "--admin-token".into(),
        ADMIN_TOKEN.into(),
    ]
}

/// The L3 command line: Starknet settlement and DA, mock prover.
fn l3_command_line(stub: &str, data_dir: &str) -> Vec<String> {
    let u = |flag: &str| url_with_credentials(stub, flag, "");
    vec![
        "run".into(),
        "--layer".into(),
        "l3".into(),
        "--settle-on-starknet".into(),
        "--starknet-rpc-url".into(),
        u("--starknet-rpc-url"),
        "--starknet-private-key".into(),
        STARKNET_KEY.into(),
        "--starknet-account-address".into(),
        "0x2".into(),
        "--starknet-cairo-core-contract-address".into(),
        "0x3".into(),
        "--da-on-starknet".into(),
        "--starknet-da-rpc-url".into(),
        u("--starknet-da-rpc-url"),
        "--prover".into(),
        "mock".into(),
        "--madara-rpc-url".into(),
        u("--madara-rpc-url"),
        "--rpc-for-snos".into(),
        u("--rpc-for-snos"),
        "--max-batch-time-seconds".into(),
        "60".into(),
        "--data-dir".into(),
        data_dir.into(),
    ]
}

/// One request the stub saw: method, path and `Authorization` header.
type Request = (String, String, Option<String>);

/// What the stub saw, in order.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Request>>>);

/// One JSON-RPC answer: chain ids, `true`/1 for every `eth_call` (the fact is registered, the
/// core contract is at block 1), no receipt yet; any other method is an error of the node.
fn rpc_answer(call: &serde_json::Value) -> serde_json::Value {
    use serde_json::{json, Value};
    let id = call.get("id").cloned().unwrap_or(Value::Null);
    let method = call.get("method").and_then(Value::as_str).unwrap_or_default();
    let result = match method {
        "eth_chainId" => json!("0x7a69"),
        "starknet_chainId" => json!(SN_CHAIN_ID),
        "eth_call" => json!(format!("0x{:064x}", 1)),
        "eth_getTransactionReceipt" => Value::Null,
        _ => {
            return json!({"jsonrpc": "2.0", "id": id, "error": {
                "code": -32601, "message": format!("{method} is not served by this stub")
            }})
        }
    };
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// The stub of every upstream: JSON-RPC on POST (single calls and batches), Atlantic's
/// `GET /atlantic/atlantic-query/q1` (done), 404 for anything else.
async fn stub(
    axum::extract::State(seen): axum::extract::State<Seen>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> (axum::http::StatusCode, [(&'static str, &'static str); 1], String) {
    use axum::http::StatusCode;
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    seen.0.lock().unwrap().push((method.to_string(), uri.path().to_owned(), auth));
    let json = [("content-type", "application/json")];
    if uri.path() == "/atlantic/atlantic-query/q1" {
        let done = serde_json::json!({"atlanticQuery": {"id": "q1", "status": "DONE"}});
        return (StatusCode::OK, json, done.to_string());
    }
    if method != axum::http::Method::POST {
        return (StatusCode::NOT_FOUND, json, r#"{"message":"not found"}"#.into());
    }
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Array(calls)) => {
            let answers: Vec<_> = calls.iter().map(rpc_answer).collect();
            (StatusCode::OK, json, serde_json::Value::Array(answers).to_string())
        }
        Ok(call) => (StatusCode::OK, json, rpc_answer(&call).to_string()),
        Err(_) => (StatusCode::BAD_REQUEST, json, r#"{"message":"not JSON"}"#.into()),
    }
}

/// `call`'s output; a panic naming `what` after 30 s without one.
async fn within<T>(what: &str, call: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(30), call).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: no answer within 30 s"),
    }
}

/// The orchestrator run as in production (`telemetry::init_tracing`, reading `RUST_LOG` and
/// `LOG_FORMAT`) with credentials in every URL, and every client made to call its upstream.
/// The child of `credentials_in_urls_never_reach_a_debug_log`; a no-op otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_child() {
    use orchestrator::{
        types::jobs::JobType,
        worker::{service, stages::external::ExternalClients},
    };
    use orchestrator_prover_client_interface::{TaskStatus, TaskType};

    if std::env::var("ORCH_TEST_ROLE").as_deref() != Ok("credentials") {
        return;
    }
    orchestrator::telemetry::init_tracing();
    let stub = std::env::var("ORCH_TEST_STUB").expect("ORCH_TEST_STUB");
    let dir = std::path::PathBuf::from(std::env::var("ORCH_TEST_DIR").expect("ORCH_TEST_DIR"));

    let l2_dir = dir.join("l2");
    let l2 = RunCmd::try_parse_from(l2_command_line(&stub, l2_dir.to_str().unwrap()))
        .unwrap()
        .params()
        .unwrap();
    let running = Orchestrator::start(l2.clone()).await.unwrap();
    // A SnosRun job: the stage asks the SNOS RPC for its chain id, then runs the command with
    // the whole URL in its environment.
    service::create_job(&running.config, JobType::SnosRun, 1, crate::support::snos(1))
        .await
        .unwrap();

    let clients = ExternalClients::new(&l2).await.unwrap();
    tracing::debug!(node = ?clients.node, replay = ?clients.replay, prover = ?clients.prover,
        settlement = ?clients.settlement, da = ?clients.da, "Clients built");
    let node = within("node", clients.node.block_number()).await;
    tracing::warn!(?node, "node block number");
    let weights = within("feeder gateway", clients.node.bouncer_weights(1)).await;
    tracing::warn!(?weights, "feeder gateway weights");
    let replay = clients.replay.as_ref().expect("replay client");
    let replayed = within("replay", replay.block_number()).await;
    tracing::warn!(?replayed, "replay node block number");
    let settled = within("settlement", clients.settlement.get_last_settled_block()).await;
    tracing::warn!(?settled, "last settled block");
    match within("nonce", clients.settlement.get_nonce()).await {
        Ok(n) => tracing::warn!(n, "settlement nonce"),
        Err(e) => tracing::warn!(error = %e, "settlement nonce failed"),
    }
    let included =
        within("DA", clients.da.verify_inclusion(&format!("0x{}", "11".repeat(32)))).await;
    tracing::warn!(?included, "DA inclusion");
    // Done on Atlantic, then the fact checked on the Ethereum verifier (the stub says valid).
    let fact = format!("0x{}", "22".repeat(32));
    let status =
        within("Atlantic", clients.prover.get_task_status(TaskType::Job, "q1", Some(&fact))).await;
    tracing::warn!(?status, "Atlantic query status");
    assert_eq!(status.unwrap(), TaskStatus::Succeeded, "the query is done and the fact valid");
    match within("artifacts", clients.prover.get_proof("q1")).await {
        Ok(_) => panic!("the stub has no proof"),
        Err(e) => tracing::warn!(error = %e, "Atlantic proof download failed"),
    }

    let written = dir.join(SNOS_URL_FILE);
    let started = std::time::Instant::now();
    while !written.exists() && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let the failed run be logged and the cron tick (the node is polled).
    tokio::time::sleep(Duration::from_millis(2000)).await;
    running.stop().await.unwrap();

    let l3_dir = dir.join("l3");
    let l3 = RunCmd::try_parse_from(l3_command_line(&stub, l3_dir.to_str().unwrap()))
        .unwrap()
        .params()
        .unwrap();
    let l3_clients = ExternalClients::new(&l3).await.unwrap();
    tracing::debug!(settlement = ?l3_clients.settlement, da = ?l3_clients.da, "L3 clients built");
    match within("L3 settlement", l3_clients.settlement.get_last_settled_block()).await {
        Ok(b) => tracing::warn!(?b, "L3 last settled block"),
        Err(e) => tracing::warn!(error = %e, "L3 last settled block failed"),
    }
    let included = within("Starknet DA", l3_clients.da.verify_inclusion("NA")).await;
    tracing::warn!(?included, "Starknet DA inclusion");
    tracing::info!("credentials child done");
}

/// Credentials in URLs (`http://user:password@host/`) on every client reach their server as an
/// `Authorization: Basic` header, and never a log line: the orchestrator runs as a child
/// process at `RUST_LOG=debug`, once with `LOG_FORMAT=json` and once with pretty logs, every
/// client calling the local stub, and its whole stderr and stdout are searched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_urls_never_reach_a_debug_log() {
    let seen = Seen::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stub_addr = listener.local_addr().unwrap().to_string();
    let app = axum::Router::new().fallback(stub).with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut secrets: Vec<String> =
        [PRIVATE_KEY, PRIVATE_KEY.trim_start_matches("0x"), API_KEY, ADMIN_TOKEN, STARKNET_KEY]
            .map(String::from)
            .to_vec();
    for c in &CREDENTIALED {
        secrets.push(c.password.to_owned());
        secrets.push(c.basic.trim_start_matches("Basic ").to_owned());
    }

    for format in ["json", "pretty"] {
        seen.0.lock().unwrap().clear();
        let dir = tempfile::tempdir().unwrap();
        let child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "api_secrets::credentials_child",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("ORCH_TEST_ROLE", "credentials")
            .env("ORCH_TEST_STUB", &stub_addr)
            .env("ORCH_TEST_DIR", dir.path())
            .env("RUST_LOG", "debug")
            .env("LOG_FORMAT", format)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(240), child)
            .await
            .expect("the child finishes within 240 s")
            .expect("the child runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let logs = String::from_utf8_lossy(&out.stderr);
        let tail = |s: &str| {
            s.chars().rev().take(4000).collect::<Vec<_>>().into_iter().rev().collect::<String>()
        };
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{format}: the child failed: {}\nstdout:\n{stdout}\nlogs (end):\n{}",
            out.status,
            tail(&logs)
        );

        // The capture is the real one: DEBUG lines in the format asked for, the alloy transport
        // span that printed the URL included, the run's own lines.
        assert!(logs.contains("credentials child done"), "{format}: the capture works");
        let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
        if format == "json" {
            let debug = lines
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| v["level"] == "DEBUG")
                .count();
            assert!(debug > 10, "json: {debug} DEBUG objects");
        } else {
            assert!(
                lines.iter().filter(|l| l.contains("DEBUG")).count() > 10,
                "pretty: DEBUG lines"
            );
            assert!(!logs.starts_with('{'), "pretty logs are not JSON");
        }
        assert!(logs.contains("ReqwestTransport"), "{format}: alloy's transport span is captured");
        assert!(logs.contains("Orchestrator started"), "{format}: the run's lines are captured");

        for secret in &secrets {
            let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(secret.as_str())).collect();
            assert!(leaks.is_empty(), "{format}: {secret:?} is in the logs:\n{}", leaks.join("\n"));
            assert!(!stdout.contains(secret.as_str()), "{format}: {secret:?} is on stdout");
        }
        assert!(
            !logs.contains(":password@") && !logs.contains("-pw-"),
            "{format}: userinfo in logs"
        );

        // ... and the credentials still reach the servers.
        let seen = seen.0.lock().unwrap().clone();
        for c in CREDENTIALED.iter().filter(|c| c.called) {
            let expected = c.basic;
            assert!(
                seen.iter().any(|(_, _, auth)| auth.as_deref() == Some(expected)),
                "{format}: no request with the credentials of {} (user {}); seen: {:?}",
                c.flag,
                c.user,
                seen.iter().map(|(m, p, a)| format!("{m} {p} {}", a.is_some())).collect::<Vec<_>>()
            );
        }
        let node = credentialed("--madara-rpc-url").basic;
        assert!(
            seen.iter().any(|(m, p, a)| m == "GET"
                && p.starts_with("/feeder_gateway/")
                && a.as_deref() == Some(node)),
            "{format}: the feeder gateway got the node's credentials"
        );
        let artifacts = credentialed("--atlantic-artifacts-base-url").basic;
        assert!(
            seen.iter().any(|(_, p, a)| p == "/artifacts/queries/q1/proof.json"
                && a.as_deref() == Some(artifacts)),
            "{format}: the proof download got the artifacts host's credentials"
        );
        assert!(
            seen.iter().all(|(_, _, a)| a.is_some()),
            "{format}: every request carried credentials"
        );
        // The external SNOS command got the whole URL, credentials included, in its environment.
        let snos_url = std::fs::read_to_string(dir.path().join(SNOS_URL_FILE))
            .expect("the SNOS command ran and wrote $SNOS_RPC_URL");
        assert_eq!(snos_url, url_with_credentials(&stub_addr, "--rpc-for-snos", ""));
        eprintln!(
            "{format}: searched {} bytes of logs ({} lines), {} requests to the stub",
            logs.len(),
            lines.len(),
            seen.len()
        );
    }
}
