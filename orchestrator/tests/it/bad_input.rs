//! Bad input reaching a running orchestrator: garbage queue messages, unknown job ids, unknown
//! triggers, a corrupt data dir. Each gets a clear error, nothing is lost silently, and the
//! process keeps serving.

use std::{net::SocketAddr, time::Duration};

use orchestrator::{
    app::Orchestrator,
    core::client::{log_alert::LogAlert, OutgoingMessage},
    types::{jobs::JobType, queue::QueueType},
};
use strum::IntoEnumIterator;

use crate::support::{self, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_messages_are_dead_lettered_with_an_alert_and_the_process_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let config = support::config(
        support::clients(dir.path()).await,
        dir.path().join("side-effects.log"),
        Duration::ZERO,
        Duration::from_secs(60),
    );
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let running = Orchestrator::start_with(config.clone(), addr, None).await.unwrap();
    let queue = config.queue();
    let unknown = uuid::Uuid::new_v4();
    queue
        .send(QueueType::JobProcessing(JobType::SnosRun), OutgoingMessage::new("not json at all"))
        .await
        .unwrap();
    queue
        .send(
            QueueType::JobVerification(JobType::SnosRun),
            OutgoingMessage::new(r#"{"id": "not-a-uuid"}"#),
        )
        .await
        .unwrap();
    queue
        .send(
            QueueType::JobProcessing(JobType::SnosRun),
            OutgoingMessage::new(format!(r#"{{"id": "{unknown}"}}"#)),
        )
        .await
        .unwrap();
    queue.send(QueueType::WorkerTrigger, OutgoingMessage::new("NotATrigger")).await.unwrap();

    let alerts_file = dir.path().join("alerts.jsonl");
    wait_for(Duration::from_secs(30), "four dead-letter alerts", async || {
        LogAlert::read_records(&alerts_file).await.map(|r| r.len() >= 4).unwrap_or(false)
    })
    .await;
    let alerts = LogAlert::read_records(&alerts_file).await.unwrap();
    let text: Vec<String> = alerts.iter().map(|r| r.alert().text()).collect();
    let all = text.join("\n");
    assert!(all.contains("not json at all"), "{all}");
    assert!(all.contains("not-a-uuid"), "{all}");
    assert!(all.contains(&unknown.to_string()), "{all}");
    assert!(all.contains("NotATrigger"), "{all}");
    for t in &text {
        assert!(t.contains("reason:"), "every alert names the problem: {t}");
    }

    // Nothing left behind, and the process still serves.
    tokio::time::sleep(support::VISIBILITY + Duration::from_millis(500)).await;
    for q in QueueType::iter() {
        assert_eq!(queue.approximate_len(q).await.unwrap(), 0, "{q} is empty");
    }
    let body = http_get(running.addr, "/health/ready").await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_corrupt_data_dir_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orchestrator.sqlite"), vec![7u8; 4096]).unwrap();
    let err = orchestrator::core::client::embedded::open(dir.path(), &Default::default())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("orchestrator.sqlite"), "{msg}");
}

/// A minimal HTTP/1.1 GET (keeps the test free of an HTTP client dependency).
async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}
