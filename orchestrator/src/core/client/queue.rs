//! Durable message queues with SQS semantics (reference §5).

use orchestrator_utils::Retryable;
use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;

use crate::types::{
    queue::{QueueType, ORCHESTRATOR_VERSION_ATTRIBUTE},
    ORCHESTRATOR_VERSION,
};

use super::BoxError;

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue does not exist (run `orchestrator setup`).
    #[error("queue {0} does not exist")]
    QueueNotFound(String),
    /// The delay is longer than the queue allows.
    #[error("delay of {delay:?} on queue {queue} is longer than {max:?}")]
    DelayTooLong {
        /// The queue.
        queue: QueueType,
        /// The delay asked for.
        delay: Duration,
        /// The longest allowed.
        max: Duration,
    },
    /// The receipt no longer names an in-flight message (already deleted or redelivered).
    #[error("message {0} is no longer in flight")]
    StaleReceipt(String),
    /// The queue service is unreachable, throttling or timed out.
    #[error("queue service unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Anything else.
    #[error(transparent)]
    Other(BoxError),
}

impl QueueError {
    /// Wraps any error as `Other`.
    pub fn other(e: impl Into<BoxError>) -> Self {
        Self::Other(e.into())
    }
}

impl Retryable for QueueError {
    /// Whether the same operation may succeed later.
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The body: `{"id": …}` for job queues, the trigger name for the trigger queue.
    pub body: String,
    /// Message attributes; `new` adds `OrchestratorVersion`.
    pub attributes: HashMap<String, String>,
    /// Delivery delay (at most 900 s).
    pub delay: Option<Duration>,
}

impl OutgoingMessage {
    /// A message stamped with this build's `OrchestratorVersion`.
    pub fn new(body: impl Into<String>) -> Self {
        let attributes = HashMap::from([(
            ORCHESTRATOR_VERSION_ATTRIBUTE.to_owned(),
            ORCHESTRATOR_VERSION.to_owned(),
        )]);
        Self { body: body.into(), attributes, delay: None }
    }

    /// Delays delivery.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = (!delay.is_zero()).then_some(delay);
        self
    }
}

/// A received message, invisible to other receivers until acked, nacked or its visibility
/// timeout passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Backend message id.
    pub message_id: String,
    /// Handle that acks or nacks this delivery (SQS receipt handle).
    pub receipt: String,
    /// The body.
    pub body: String,
    /// Message attributes.
    pub attributes: HashMap<String, String>,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
}

impl Delivery {
    /// The sender's `OrchestratorVersion`, if it stamped one.
    pub fn orchestrator_version(&self) -> Option<&str> {
        self.attributes.get(ORCHESTRATOR_VERSION_ATTRIBUTE).map(String::as_str)
    }
}

/// A set of named queues with SQS semantics.
///
/// Contract shared by every backend (checked by the conformance suite):
/// - `receive` returns at most one visible message and hides it for the queue's visibility
///   timeout; it is delivered again unless acked;
/// - a message received more than `max_receive_count` times is moved to the queue's
///   dead-letter queue instead of being delivered (as SQS' redrive policy does);
/// - `nack` makes the message visible again after `delay`; `ack` deletes it. Both fail with
///   `StaleReceipt` when the delivery's receipt is no longer valid;
/// - messages keep their attributes.
#[async_trait]
pub trait QueueClient: Send + Sync + std::fmt::Debug {
    /// Sends a message.
    async fn send(&self, queue: QueueType, message: OutgoingMessage) -> Result<(), QueueError>;
    /// Receives one message, if one is visible now.
    async fn receive(&self, queue: QueueType) -> Result<Option<Delivery>, QueueError>;
    /// Deletes a received message.
    async fn ack(&self, queue: QueueType, delivery: &Delivery) -> Result<(), QueueError>;
    /// Returns a received message to the queue, visible again after `delay`.
    async fn nack(
        &self,
        queue: QueueType,
        delivery: &Delivery,
        delay: Duration,
    ) -> Result<(), QueueError>;
    /// Approximate number of visible messages.
    async fn approximate_len(&self, queue: QueueType) -> Result<u64, QueueError>;
    /// Checks the queue service answers and the queues exist.
    async fn health_check(&self) -> Result<(), QueueError>;
}
