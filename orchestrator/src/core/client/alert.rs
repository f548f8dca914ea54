//! Alerts to operators (SNS, or the log plus a JSON-lines file).

use async_trait::async_trait;
use orchestrator_utils::Retryable;
use serde::{Deserialize, Serialize};

use super::BoxError;

/// Why an alert could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The topic does not exist (run `orchestrator setup`).
    #[error("alert topic {0} does not exist")]
    TopicNotFound(String),
    /// The alert service is unreachable or timed out.
    #[error("alert service unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Anything else.
    #[error(transparent)]
    Other(BoxError),
}

impl AlertError {
    /// Wraps any error as `Other`.
    pub fn other(e: impl Into<BoxError>) -> Self {
        Self::Other(e.into())
    }
}

impl Retryable for AlertError {
    /// Whether the same operation may succeed later.
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::Display)]
pub enum AlertSeverity {
    /// An operator should look when convenient.
    Warning,
    /// An operator must act: work is stuck.
    Critical,
}

/// An alert with enough context to act on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Severity.
    pub severity: AlertSeverity,
    /// One line: what happened.
    pub title: String,
    /// Details: job id, type, batch, reasons.
    pub body: String,
}

impl Alert {
    /// The plain-text form sent to topics.
    pub fn text(&self) -> String {
        format!("[{}] {}\n{}", self.severity.to_string().to_uppercase(), self.title, self.body)
    }
}

/// Delivers alerts.
#[async_trait]
pub trait AlertClient: Send + Sync + std::fmt::Debug {
    /// Sends an alert.
    async fn send_alert(&self, alert: &Alert) -> Result<(), AlertError>;
    /// Checks alerts can be delivered.
    async fn health_check(&self) -> Result<(), AlertError>;
}
