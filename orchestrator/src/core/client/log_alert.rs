//! `LogAlert`: the embedded tier's alerts — the log, a JSON-lines file
//! (`--data-dir/alerts.jsonl`) and, optionally, a webhook.
//!
//! The file is the record: an alert counts as sent once its line is appended. The webhook is
//! best effort — one POST with a timeout, no retries; a failure is logged at WARN and does
//! not fail `send_alert`, so callers never re-send (and duplicate) an alert already on file.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use url::Url;

use super::alert::{Alert, AlertClient, AlertError, AlertSeverity};

/// Tracing target of alerts.
const TARGET: &str = "orch::alert";
/// File name of the alert log inside `--data-dir`.
pub const ALERTS_FILE_NAME: &str = "alerts.jsonl";
/// Default time allowed for a webhook POST.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// One line of the alert file, and the webhook's JSON body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// When the alert was raised (RFC 3339, UTC).
    pub ts: String,
    /// `Warning` or `Critical`.
    pub severity: AlertSeverity,
    /// One line: what happened.
    pub title: String,
    /// Details.
    pub body: String,
}

impl AlertRecord {
    /// The alert this record holds.
    pub fn alert(&self) -> Alert {
        Alert { severity: self.severity, title: self.title.clone(), body: self.body.clone() }
    }
}

/// Alerts to the log, a JSON-lines file and an optional webhook.
#[derive(Debug, Clone)]
pub struct LogAlert {
    path: PathBuf,
    webhook: Option<Webhook>,
    /// Serialises appends from this process so long lines never interleave.
    append: Arc<Mutex<()>>,
}

impl LogAlert {
    /// Alerts appended to `path` (usually `data_dir/alerts.jsonl`).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), webhook: None, append: Arc::default() }
    }

    /// Also POSTs each alert's JSON to `url`, giving up after `timeout`.
    ///
    /// # Errors
    /// `Other` when the HTTP client cannot be built (no TLS backend).
    pub fn with_webhook(mut self, url: Url, timeout: Duration) -> Result<Self, AlertError> {
        let client =
            reqwest::Client::builder().timeout(timeout).build().map_err(AlertError::other)?;
        self.webhook = Some(Webhook { url, client });
        Ok(self)
    }

    /// The alert file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads every record of an alert file, skipping lines that do not parse (a line cut by
    /// a crash); a missing file holds none.
    ///
    /// # Errors
    /// `Other` when the file exists but cannot be read.
    pub async fn read_records(path: &Path) -> Result<Vec<AlertRecord>, AlertError> {
        match tokio::fs::read_to_string(path).await {
            Ok(text) => {
                Ok(text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(AlertError::other(e)),
        }
    }

    /// Appends one line to the alert file.
    async fn append_line(&self, line: String) -> Result<(), AlertError> {
        let (path, lock) = (self.path.clone(), Arc::clone(&self.append));
        tokio::task::spawn_blocking(move || {
            // A poisoned lock only means another append panicked; the file is still usable.
            let _guard = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let mut file = open_for_append(&path)?;
            // A line cut by a crash would swallow this one: start on a fresh line.
            let line = if ends_mid_line(&mut file).map_err(|e| file_err(&path, e))? {
                format!("\n{line}")
            } else {
                line
            };
            file.write_all(line.as_bytes()).map_err(|e| file_err(&path, e))
        })
        .await
        .map_err(AlertError::other)?
    }
}

#[async_trait]
impl AlertClient for LogAlert {
    /// Logs the alert (ERROR for critical, WARN for warning), appends it to the file, then
    /// POSTs it to the webhook if one is set.
    ///
    /// # Errors
    /// Only when the line cannot be appended: `Unavailable` for a full disk, else `Other`.
    async fn send_alert(&self, alert: &Alert) -> Result<(), AlertError> {
        match alert.severity {
            AlertSeverity::Critical => {
                tracing::error!(target: TARGET, severity = %alert.severity, title = %alert.title, body = %alert.body, "Alert raised")
            }
            AlertSeverity::Warning => {
                tracing::warn!(target: TARGET, severity = %alert.severity, title = %alert.title, body = %alert.body, "Alert raised")
            }
        }
        let record = AlertRecord {
            ts: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            severity: alert.severity,
            title: alert.title.clone(),
            body: alert.body.clone(),
        };
        let mut line = serde_json::to_string(&record).map_err(AlertError::other)?;
        line.push('\n');
        self.append_line(line).await?;
        if let Some(webhook) = &self.webhook {
            webhook.post(&record).await;
        }
        Ok(())
    }

    /// Checks the alert file can be opened for appending (creating it if missing). The
    /// webhook is not called: a probe would page someone.
    async fn health_check(&self) -> Result<(), AlertError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || open_for_append(&path).map(drop))
            .await
            .map_err(AlertError::other)?
    }
}

/// A webhook endpoint.
#[derive(Clone)]
struct Webhook {
    url: Url,
    client: reqwest::Client,
}

impl std::fmt::Debug for Webhook {
    /// Shows the host only: webhook paths and queries often carry a secret token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("host", &self.url.host_str()).finish_non_exhaustive()
    }
}

impl Webhook {
    /// POSTs the record once; failures are logged, never returned.
    async fn post(&self, record: &AlertRecord) {
        let host = self.url.host_str().unwrap_or_default();
        match self.client.post(self.url.clone()).json(record).send().await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => {
                tracing::warn!(target: TARGET, host, status = %response.status(), title = %record.title, "Alert webhook refused the alert; it is in the alert file")
            }
            Err(e) => {
                // Strip the URL from the error: it may hold the token.
                let e = e.without_url();
                tracing::warn!(target: TARGET, host, error = %e, title = %record.title, "Alert webhook unreachable; the alert is in the alert file")
            }
        }
    }
}

/// Opens the alert file for appending, creating it and its directory if needed.
fn open_for_append(path: &Path) -> Result<std::fs::File, AlertError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| file_err(path, e))
}

/// Whether the file's last byte is not a newline (a line cut by a crash).
fn ends_mid_line(file: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

/// Maps an I/O error on the alert file: a full disk may pass (`Unavailable`), the rest needs
/// an operator (`Other`).
fn file_err(path: &Path, e: std::io::Error) -> AlertError {
    let transient =
        matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::Interrupted);
    let e = std::io::Error::new(e.kind(), format!("alert file {}: {e}", path.display()));
    if transient {
        AlertError::Unavailable(Box::new(e))
    } else {
        AlertError::other(e)
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;
    use crate::core::client::conformance::alert::AlertFactory;

    /// A fresh alert file per call; the dirs live as long as the factory.
    #[derive(Debug, Default)]
    struct LogAlertFactory {
        dirs: Mutex<Vec<tempfile::TempDir>>,
        last: Mutex<Option<PathBuf>>,
    }

    #[async_trait]
    impl AlertFactory for LogAlertFactory {
        async fn alerts(&self) -> Arc<dyn AlertClient> {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("data").join(ALERTS_FILE_NAME);
            self.dirs.lock().expect("dirs").push(dir);
            *self.last.lock().expect("last") = Some(path.clone());
            Arc::new(LogAlert::new(path))
        }

        async fn delivered(&self) -> Option<Vec<Alert>> {
            let path = self.last.lock().expect("last").clone().expect("alerts were made");
            let records = LogAlert::read_records(&path).await.expect("read records");
            Some(records.iter().map(AlertRecord::alert).collect())
        }
    }

    crate::alert_conformance_tests!(LogAlertFactory::default());

    fn critical() -> Alert {
        Alert {
            severity: AlertSeverity::Critical,
            title: "job failed".into(),
            body: "job 42 failed".into(),
        }
    }

    #[tokio::test]
    async fn lines_have_the_documented_fields() {
        let dir = tempfile::tempdir().expect("tempdir");
        let alerts = LogAlert::new(dir.path().join(ALERTS_FILE_NAME));
        alerts.send_alert(&critical()).await.expect("send");
        let text = std::fs::read_to_string(alerts.path()).expect("read");
        let line: serde_json::Value = serde_json::from_str(text.trim_end()).expect("one JSON line");
        assert_eq!(line["severity"], "Critical");
        assert_eq!(line["title"], "job failed");
        assert_eq!(line["body"], "job 42 failed");
        let ts = line["ts"].as_str().expect("ts is a string");
        chrono::DateTime::parse_from_rfc3339(ts).expect("ts is RFC 3339");
        assert!(text.ends_with('\n') && text.lines().count() == 1);
    }

    #[tokio::test]
    async fn a_cut_line_does_not_hide_the_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(ALERTS_FILE_NAME);
        std::fs::write(&path, "{\"ts\":\"2024-01-01T00:00:00Z\",\"sev").expect("write");
        let alerts = LogAlert::new(&path);
        alerts.send_alert(&critical()).await.expect("send");
        alerts.send_alert(&critical()).await.expect("send");
        assert_eq!(LogAlert::read_records(&path).await.expect("read").len(), 2);
        assert_eq!(std::fs::read_to_string(&path).expect("read").lines().count(), 3);
    }

    #[tokio::test]
    async fn an_unwritable_file_fails_the_alert_and_the_health_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The "file" is a directory: it cannot be opened for appending.
        let alerts = LogAlert::new(dir.path());
        assert!(alerts.health_check().await.is_err());
        let err = alerts.send_alert(&critical()).await.expect_err("cannot append");
        assert!(err.to_string().contains("alert file"), "{err}");
    }

    /// Serves POST / and forwards each body.
    async fn webhook_server() -> (Url, mpsc::Receiver<serde_json::Value>) {
        let (tx, rx) = mpsc::channel(16);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(v).await;
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/hook?token=secret").parse().expect("url"), rx)
    }

    #[tokio::test]
    async fn the_webhook_gets_the_same_json() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (url, mut rx) = webhook_server().await;
        let alerts = LogAlert::new(dir.path().join(ALERTS_FILE_NAME))
            .with_webhook(url, DEFAULT_WEBHOOK_TIMEOUT)
            .expect("webhook");
        assert!(!format!("{alerts:?}").contains("secret"), "Debug hides the token");
        alerts.send_alert(&critical()).await.expect("send");
        let posted = rx.recv().await.expect("posted");
        let on_file = std::fs::read_to_string(alerts.path()).expect("read");
        assert_eq!(
            posted,
            serde_json::from_str::<serde_json::Value>(on_file.trim_end()).expect("json")
        );
    }

    #[tokio::test]
    async fn a_dead_or_hanging_webhook_does_not_fail_the_alert() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Nobody listens on a port that was just released.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let dead: Url =
            format!("http://{}/", closed.local_addr().expect("addr")).parse().expect("url");
        drop(closed);
        // This one accepts connections and never answers.
        let hanging = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let hang_url: Url =
            format!("http://{}/", hanging.local_addr().expect("addr")).parse().expect("url");
        let path = dir.path().join(ALERTS_FILE_NAME);
        for url in [dead, hang_url] {
            let alerts = LogAlert::new(&path)
                .with_webhook(url, Duration::from_millis(300))
                .expect("webhook");
            let started = std::time::Instant::now();
            alerts.send_alert(&critical()).await.expect("the alert is on file");
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the webhook timeout bounds the call"
            );
        }
        drop(hanging);
        assert_eq!(LogAlert::read_records(&path).await.expect("read").len(), 2);
    }
}
