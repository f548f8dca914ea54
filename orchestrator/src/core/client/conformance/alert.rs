//! The `AlertClient` conformance suite.
//!
//! Backends that can read back what they delivered (a JSON-lines file; an SQS queue
//! subscribed to the SNS topic) also get their deliveries checked; the others are checked for
//! accepting every alert.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;

use super::eventually;
use crate::core::client::alert::{Alert, AlertClient, AlertSeverity};

/// How long delivered alerts may take to become readable.
const SLACK: Duration = Duration::from_secs(10);

/// Makes a fresh alert backend for one check.
#[async_trait]
pub trait AlertFactory: Send + Sync {
    /// A client over a fresh destination (file, topic). Panics if it cannot be made.
    async fn alerts(&self) -> Arc<dyn AlertClient>;

    /// Every alert delivered so far by the client last returned by `alerts`, in any order,
    /// when the backend can read them back; `None` skips the read-back checks.
    async fn delivered(&self) -> Option<Vec<Alert>> {
        None
    }
}

/// Generates one `#[tokio::test]` per alert check, in a module `alert_conformance`, for the
/// factory expression (evaluated once per test).
#[macro_export]
macro_rules! alert_conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_tests!(
            alert_conformance, alert, $factory;
            health_check_passes,
            both_severities_are_delivered,
            text_is_kept_verbatim,
            concurrent_alerts_all_arrive,
        );
    };
}

/// The health check passes on a fresh backend.
pub async fn health_check_passes(f: &(impl AlertFactory + ?Sized)) {
    let a = f.alerts().await;
    a.health_check().await.expect("health_check on a fresh backend");
}

/// A warning and a critical alert are both accepted and delivered as sent.
pub async fn both_severities_are_delivered(f: &(impl AlertFactory + ?Sized)) {
    let a = f.alerts().await;
    let sent = vec![
        alert(
            AlertSeverity::Warning,
            "warning: job retried",
            "job 1 (SnosRun, internal id 7) retried",
        ),
        alert(
            AlertSeverity::Critical,
            "critical: job failed",
            "job 2 (StateTransition) failed: reverted",
        ),
    ];
    for x in &sent {
        a.send_alert(x).await.unwrap_or_else(|e| panic!("send {:?}: {e}", x.title));
    }
    assert_delivered(f, sent).await;
}

/// Unicode, quotes, new lines and long bodies are kept byte for byte.
pub async fn text_is_kept_verbatim(f: &(impl AlertFactory + ?Sized)) {
    let a = f.alerts().await;
    let body = format!("line 1\nline \"2\"\t✓ é 日本\n{}", "x".repeat(10_000));
    let sent = vec![alert(AlertSeverity::Critical, "title with \"quotes\" and ✓", &body)];
    a.send_alert(&sent[0]).await.expect("send");
    assert_delivered(f, sent).await;
}

/// Alerts sent concurrently all arrive, none mixed with another.
pub async fn concurrent_alerts_all_arrive(f: &(impl AlertFactory + ?Sized)) {
    const ALERTS: usize = 20;
    let a = f.alerts().await;
    let sent: Vec<Alert> = (0..ALERTS)
        .map(|i| {
            alert(
                AlertSeverity::Warning,
                &format!("alert {i}"),
                &format!("body {i}\n{}", "y".repeat(i * 500)),
            )
        })
        .collect();
    let tasks: Vec<_> = sent
        .iter()
        .cloned()
        .map(|x| {
            let a = Arc::clone(&a);
            tokio::spawn(async move { a.send_alert(&x).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("sender task").expect("send");
    }
    assert_delivered(f, sent).await;
}

/// An alert.
fn alert(severity: AlertSeverity, title: &str, body: &str) -> Alert {
    Alert { severity, title: title.to_owned(), body: body.to_owned() }
}

/// Waits until the backend reports exactly `sent` (order aside), if it can read back.
async fn assert_delivered(f: &(impl AlertFactory + ?Sized), mut sent: Vec<Alert>) {
    let Some(mut last) = f.delivered().await else { return };
    sent.sort_by(|a, b| a.title.cmp(&b.title));
    let want = &sent;
    let matched = eventually(SLACK, move || async move {
        let mut got = f.delivered().await.unwrap_or_default();
        got.sort_by(|a, b| a.title.cmp(&b.title));
        (got == *want).then_some(())
    })
    .await;
    if matched.is_none() {
        last = f.delivered().await.unwrap_or(last);
        panic!("delivered {} alerts, expected {}: {last:?}", last.len(), sent.len());
    }
}
