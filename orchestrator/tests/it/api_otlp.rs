//! OTLP export: `orchestrator run --otel-collector-endpoint <url>` opens a gRPC (HTTP/2)
//! connection to the collector. The fake collector here only reads the HTTP/2 preface; the
//! exporters' payloads are the opentelemetry crates' business.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use tokio::{io::AsyncReadExt, net::TcpListener};

/// The first bytes of every HTTP/2 connection (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_exports_to_the_otlp_collector_over_grpc() {
    let collector = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", collector.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .args([
            "run",
            // Every dependency is a closed port: the run is about the OTLP export.
            "--skip-preflight",
            "--settle-on-ethereum",
            "--ethereum-rpc-url",
            "http://127.0.0.1:1",
            "--ethereum-private-key",
            "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
            "--l1-core-contract-address",
            "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            "--starknet-operator-address",
            "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            "--da-on-ethereum",
            "--ethereum-da-rpc-url",
            "http://127.0.0.1:1",
            "--prover",
            "mock",
            "--madara-rpc-url",
            "http://127.0.0.1:1",
            "--rpc-for-snos",
            "http://127.0.0.1:1",
            "--max-batch-time-seconds",
            "60",
            "--port",
            "0",
            "--otel-collector-endpoint",
            &endpoint,
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("LOG_FORMAT", "json")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the orchestrator binary");

    let accepted = tokio::time::timeout(Duration::from_secs(30), collector.accept()).await;
    let outcome = match accepted {
        Ok(Ok((mut conn, _))) => {
            let mut preface = vec![0u8; H2_PREFACE.len()];
            tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut preface))
                .await
                .map(|r| r.map(|_| preface))
        }
        Ok(Err(e)) => panic!("accept failed: {e}"),
        Err(_) => {
            let _ = child.kill();
            panic!("no OTLP connection within 30 s");
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let preface = outcome.expect("preface within 10 s").expect("read preface");
    assert_eq!(preface, H2_PREFACE, "the exporter speaks gRPC (HTTP/2)");
}
