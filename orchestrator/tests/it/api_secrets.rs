//! Secrets never reach logs, errors or `Debug`: a whole orchestrator started in-process from a
//! command line carrying a private key, an API key and an admin token, run at DEBUG with every
//! log line captured, serving requests (admin ones included); then the logs, the `Debug` forms
//! and the error messages are searched for the secrets.

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
