//! The `QueueClient` conformance suite (the contract in `core::client::queue`).
//!
//! Checks wait with deadlines instead of exact sleeps, so a backend with whole-second
//! visibility timeouts and eventually consistent receives (SQS, also on moto/localstack)
//! passes the same checks as the SQLite queue.

use orchestrator_utils::Retryable;
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use uuid::Uuid;

use super::eventually;
use crate::{
    core::client::queue::{Delivery, OutgoingMessage, QueueClient, QueueError},
    types::{
        jobs::JobType,
        queue::{
            JobQueueMessage, QueueType, MAX_MESSAGE_DELAY, ORCHESTRATOR_VERSION_ATTRIBUTE,
            QUEUE_MAX_RECEIVE_COUNT,
        },
        ORCHESTRATOR_VERSION,
    },
};

/// The short visibility timeout suites use unless the factory picks another.
pub const DEFAULT_SHORT_VISIBILITY: Duration = Duration::from_secs(1);
/// A visibility timeout no check outlives: messages received under it stay hidden.
const LONG_VISIBILITY: Duration = Duration::from_secs(120);
/// The delay used by the delay checks: whole seconds, as SQS counts them.
const DELAY: Duration = Duration::from_secs(2);
/// Extra time granted to anything that should happen "soon" (a redelivery, a count update).
const SLACK: Duration = Duration::from_secs(10);

/// A job queue with a dead-letter queue.
const JOBS: QueueType = QueueType::JobProcessing(JobType::SnosRun);
/// Another job queue.
const OTHER: QueueType = QueueType::JobVerification(JobType::ProofCreation);
/// The dead-letter queue of the job queues.
const DLQ: QueueType = QueueType::JobHandleFailure;

/// Makes fresh, empty queues for one check.
#[async_trait]
pub trait QueueFactory: Send + Sync {
    /// A client over fresh, empty queues (every `QueueType`) where every queue's visibility
    /// timeout is `visibility_timeout` (a backend may round it up to its granularity: whole
    /// seconds on SQS), and where queues with a dead-letter queue in production
    /// (`QueueType::config`) move a message to `job_handle_failure` after
    /// `QUEUE_MAX_RECEIVE_COUNT` receives. Panics if the queues cannot be made.
    async fn queues(&self, visibility_timeout: Duration) -> Arc<dyn QueueClient>;

    /// A visibility timeout short enough for redelivery checks to be quick.
    fn short_visibility(&self) -> Duration {
        DEFAULT_SHORT_VISIBILITY
    }

    /// Whether acking an already-acked message fails with `StaleReceipt`. SQS'
    /// `DeleteMessage` succeeds silently on a stale receipt handle, so an SQS backend may
    /// answer `false`; the check then only requires that the message stays deleted.
    fn detects_double_ack(&self) -> bool {
        true
    }
}

/// Generates one `#[tokio::test]` per queue check, in a module `queue_conformance`, for the
/// factory expression (evaluated once per test).
#[macro_export]
macro_rules! queue_conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_tests!(
            queue_conformance, queue, $factory;
            health_check_passes,
            an_empty_queue_receives_nothing,
            send_receive_ack,
            attributes_are_kept,
            queues_are_independent,
            in_flight_messages_are_invisible,
            unacked_messages_are_redelivered,
            nack_without_delay_redelivers_at_once,
            nack_with_delay_hides_the_message,
            a_per_message_delay_postpones_delivery,
            delays_longer_than_the_maximum_are_rejected,
            dead_letter_after_max_receives_keeps_the_body,
            stale_receipts_are_rejected,
            concurrent_receivers_process_each_message_once,
            approximate_len_counts_visible_messages,
        );
    };
}

/// The health check passes on fresh queues.
pub async fn health_check_passes(f: &(impl QueueFactory + ?Sized)) {
    let q = f.queues(LONG_VISIBILITY).await;
    q.health_check().await.expect("health_check on fresh queues");
}

/// Nothing to receive from a fresh queue.
pub async fn an_empty_queue_receives_nothing(f: &(impl QueueFactory + ?Sized)) {
    let q = f.queues(LONG_VISIBILITY).await;
    assert!(q.receive(JOBS).await.expect("receive").is_none(), "a fresh queue delivered a message");
    assert_eq!(q.approximate_len(JOBS).await.expect("approximate_len"), 0);
}

/// A sent message is received once, with its body, and is gone after the ack.
pub async fn send_receive_ack(f: &(impl QueueFactory + ?Sized)) {
    let q = f.queues(LONG_VISIBILITY).await;
    let body = job_body();
    q.send(JOBS, OutgoingMessage::new(body.clone())).await.expect("send");
    let d = receive_soon(&*q, JOBS).await.expect("the sent message is delivered");
    assert_eq!(d.body, body);
    assert_eq!(d.receive_count, 1, "first delivery");
    assert!(!d.message_id.is_empty() && !d.receipt.is_empty(), "delivery has an id and a receipt");
    q.ack(JOBS, &d).await.expect("ack");
    assert_nothing_for(&*q, JOBS, Duration::from_millis(500)).await;
}

/// Attributes, `OrchestratorVersion` included, survive the trip.
pub async fn attributes_are_kept(f: &(impl QueueFactory + ?Sized)) {
    let q = f.queues(LONG_VISIBILITY).await;
    let mut message = OutgoingMessage::new(job_body());
    message.attributes.insert("Custom".to_owned(), "value with spaces ✓".to_owned());
    let sent = message.attributes.clone();
    q.send(JOBS, message).await.expect("send");
    let d = receive_soon(&*q, JOBS).await.expect("delivered");
    assert_eq!(d.attributes, sent);
    assert_eq!(
        d.attributes.get(ORCHESTRATOR_VERSION_ATTRIBUTE).map(String::as_str),
        Some(ORCHESTRATOR_VERSION)
    );
    q.ack(JOBS, &d).await.expect("ack");
}

/// A message sent to one queue is not delivered from another.
pub async fn queues_are_independent(f: &(impl QueueFactory + ?Sized)) {
    let q = f.queues(LONG_VISIBILITY).await;
    q.send(JOBS, OutgoingMessage::new(job_body())).await.expect("send");
    assert!(receive_soon(&*q, JOBS).await.is_some(), "delivered on its own queue");
    q.send(JOBS, OutgoingMessage::new(job_body())).await.expect("send");
    assert_nothing_for(&*q, OTHER, Duration::from_millis(500)).await;
}

/// A received message is hidden from other receivers and not counted while in flight.
pub async fn in_flight_messages_are_invisible(f: &(impl QueueFactory + ?Sized)) {
    let q = f.queues(LONG_VISIBILITY).await;
    q.send(JOBS, OutgoingMessage::new(job_body())).await.expect("send");
    let d = receive_soon(&*q, JOBS).await.expect("delivered");
    assert_nothing_for(&*q, JOBS, Duration::from_secs(1)).await;
    assert_len_becomes(&*q, JOBS, 0).await;
    q.ack(JOBS, &d).await.expect("ack");
}

/// An unacked message comes back after the visibility timeout, with a new receipt.
pub async fn unacked_messages_are_redelivered(f: &(impl QueueFactory + ?Sized)) {
    let v = f.short_visibility();
    let q = f.queues(v).await;
    let body = job_body();
    q.send(JOBS, OutgoingMessage::new(body.clone())).await.expect("send");
    let first = receive_soon(&*q, JOBS).await.expect("delivered");
    let again = receive_within(&*q, JOBS, v + SLACK)
        .await
        .expect("redelivered after the visibility timeout");
    assert_eq!(again.message_id, first.message_id);
    assert_eq!(again.body, body);
    assert_eq!(again.receive_count, 2);
    assert_ne!(again.receipt, first.receipt, "each receive has its own receipt");
    q.ack(JOBS, &again).await.expect("ack the latest delivery");
}

/// `nack` with no delay makes the message visible again at once.
pub async fn nack_without_delay_redelivers_at_once(f: &(impl QueueFactory + ?Sized)) {
    let q = f.queues(LONG_VISIBILITY).await;
    q.send(JOBS, OutgoingMessage::new(job_body())).await.expect("send");
    let d = receive_soon(&*q, JOBS).await.expect("delivered");
    q.nack(JOBS, &d, Duration::ZERO).await.expect("nack");
    let again = receive_soon(&*q, JOBS)
        .await
        .expect("redelivered after nack, long before the visibility timeout");
    assert_eq!(again.message_id, d.message_id);
    assert_eq!(again.receive_count, 2);
    q.ack(JOBS, &again).await.expect("ack");
}

/// `nack` with a delay hides the message for that long, then delivers it.
pub async fn nack_with_delay_hides_the_message(f: &(impl QueueFactory + ?Sized)) {
    let q = f.queues(LONG_VISIBILITY).await;
    q.send(JOBS, OutgoingMessage::new(job_body())).await.expect("send");
    let d = receive_soon(&*q, JOBS).await.expect("delivered");
    let nacked_at = tokio::time::Instant::now();
    q.nack(JOBS, &d, DELAY).await.expect("nack");
    assert_nothing_for(&*q, JOBS, DELAY / 2).await;
    let again =
        receive_within(&*q, JOBS, DELAY + SLACK).await.expect("delivered after the nack delay");
    assert!(
        nacked_at.elapsed() >= DELAY - Duration::from_millis(100),
        "delivered before the delay passed"
    );
    assert_eq!(again.message_id, d.message_id);
    q.ack(JOBS, &again).await.expect("ack");
}

/// A message sent with a delay is not delivered before it.
pub async fn a_per_message_delay_postpones_delivery(f: &(impl QueueFactory + ?Sized)) {
    let q = f.queues(LONG_VISIBILITY).await;
    let sent_at = tokio::time::Instant::now();
    q.send(JOBS, OutgoingMessage::new(job_body()).with_delay(DELAY)).await.expect("send");
    assert_nothing_for(&*q, JOBS, DELAY / 2).await;
    assert_eq!(
        q.approximate_len(JOBS).await.expect("approximate_len"),
        0,
        "a delayed message is not visible"
    );
    let d = receive_within(&*q, JOBS, DELAY + SLACK).await.expect("delivered after the delay");
    assert!(
        sent_at.elapsed() >= DELAY - Duration::from_millis(100),
        "delivered before the delay passed"
    );
    q.ack(JOBS, &d).await.expect("ack");
}

/// Delays over 900 s are refused, on send and on nack.
pub async fn delays_longer_than_the_maximum_are_rejected(f: &(impl QueueFactory + ?Sized)) {
    let q = f.queues(LONG_VISIBILITY).await;
    let too_long = MAX_MESSAGE_DELAY + Duration::from_secs(1);
    let err = q
        .send(JOBS, OutgoingMessage::new(job_body()).with_delay(too_long))
        .await
        .expect_err("send delay > 900 s");
    assert!(matches!(err, QueueError::DelayTooLong { .. }), "send: {err:?}");
    assert!(!err.is_retryable());
    q.send(JOBS, OutgoingMessage::new(job_body()).with_delay(MAX_MESSAGE_DELAY))
        .await
        .expect("900 s is allowed");

    q.send(OTHER, OutgoingMessage::new(job_body())).await.expect("send");
    let d = receive_soon(&*q, OTHER).await.expect("delivered");
    let err = q.nack(OTHER, &d, too_long).await.expect_err("nack delay > 900 s");
    assert!(matches!(err, QueueError::DelayTooLong { .. }), "nack: {err:?}");
    q.ack(OTHER, &d).await.expect("the refused nack left the delivery valid");
}

/// After `QUEUE_MAX_RECEIVE_COUNT` receives, the message moves to `job_handle_failure` with
/// its body and attributes intact, so the failure handler can parse the job id.
pub async fn dead_letter_after_max_receives_keeps_the_body(f: &(impl QueueFactory + ?Sized)) {
    let v = f.short_visibility();
    let q = f.queues(v).await;
    let id = Uuid::new_v4();
    let body = serde_json::to_string(&JobQueueMessage { id }).expect("serialise a job message");
    q.send(JOBS, OutgoingMessage::new(body.clone())).await.expect("send");
    for n in 1..=QUEUE_MAX_RECEIVE_COUNT {
        let d = receive_within(&*q, JOBS, v + SLACK)
            .await
            .unwrap_or_else(|| panic!("receive #{n} before dead-lettering"));
        assert_eq!(d.receive_count, n);
        q.nack(JOBS, &d, Duration::ZERO).await.expect("nack");
    }
    // The move happens when the next receive would exceed the count, so keep receiving
    // from the source: it must never deliver the message again.
    let src: &dyn QueueClient = &*q;
    let dead = eventually(v + SLACK, move || async move {
        if let Some(d) = src.receive(JOBS).await.expect("receive from the source queue") {
            panic!(
                "delivered {} times, more than the maximum {QUEUE_MAX_RECEIVE_COUNT}",
                d.receive_count
            );
        }
        src.receive(DLQ).await.expect("receive from the dead-letter queue")
    })
    .await
    .expect("the message reaches job_handle_failure");
    assert_eq!(dead.body, body, "body kept byte for byte");
    let parsed: JobQueueMessage =
        serde_json::from_str(&dead.body).expect("the failure handler can parse the body");
    assert_eq!(parsed.id, id);
    assert_eq!(dead.orchestrator_version(), Some(ORCHESTRATOR_VERSION), "attributes kept");
    q.ack(DLQ, &dead).await.expect("ack on the dead-letter queue");
    assert_nothing_for(&*q, JOBS, Duration::from_millis(500)).await;
}

/// Receipts stop working once the message is deleted, and an old receipt never deletes a
/// redelivered message.
pub async fn stale_receipts_are_rejected(f: &(impl QueueFactory + ?Sized)) {
    let v = f.short_visibility();
    let q = f.queues(v).await;

    q.send(JOBS, OutgoingMessage::new(job_body())).await.expect("send");
    let d = receive_soon(&*q, JOBS).await.expect("delivered");
    q.ack(JOBS, &d).await.expect("ack");
    let err = q.nack(JOBS, &d, Duration::ZERO).await.expect_err("nack after ack");
    assert!(matches!(err, QueueError::StaleReceipt(_)), "nack after ack: {err:?}");
    match q.ack(JOBS, &d).await {
        Err(QueueError::StaleReceipt(_)) => {}
        Ok(()) if !f.detects_double_ack() => {}
        other => panic!("second ack: {other:?}"),
    }

    // The first receipt of a redelivered message must not delete it.
    q.send(OTHER, OutgoingMessage::new(job_body())).await.expect("send");
    let first = receive_soon(&*q, OTHER).await.expect("delivered");
    let second = receive_within(&*q, OTHER, v + SLACK).await.expect("redelivered");
    match q.ack(OTHER, &first).await {
        Err(QueueError::StaleReceipt(_)) => {}
        Ok(()) if !f.detects_double_ack() => {}
        other => panic!("ack with the superseded receipt: {other:?}"),
    }
    q.nack(OTHER, &second, Duration::ZERO).await.expect("the latest receipt still works");
    let third = receive_soon(&*q, OTHER).await.expect("still queued after the stale ack");
    assert_eq!(third.message_id, first.message_id);
    q.ack(OTHER, &third).await.expect("ack");
}

/// Several concurrent receivers: every message is processed exactly once.
pub async fn concurrent_receivers_process_each_message_once(f: &(impl QueueFactory + ?Sized)) {
    const MESSAGES: usize = 40;
    const RECEIVERS: usize = 4;
    let q = f.queues(LONG_VISIBILITY).await;
    for i in 0..MESSAGES {
        q.send(JOBS, OutgoingMessage::new(format!("message-{i}"))).await.expect("send");
    }
    let processed: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let tasks: Vec<_> = (0..RECEIVERS)
        .map(|_| {
            let (q, processed) = (Arc::clone(&q), Arc::clone(&processed));
            tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + SLACK * 3;
                while tokio::time::Instant::now() < deadline {
                    let done = processed.lock().expect("processed").len() >= MESSAGES;
                    if done {
                        return;
                    }
                    match q.receive(JOBS).await.expect("receive") {
                        Some(d) => {
                            *processed
                                .lock()
                                .expect("processed")
                                .entry(d.body.clone())
                                .or_default() += 1;
                            q.ack(JOBS, &d).await.expect("ack of a message this receiver holds");
                        }
                        None => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("receiver task");
    }
    let processed = processed.lock().expect("processed").clone();
    let duplicated: Vec<_> = processed.iter().filter(|(_, &n)| n > 1).collect();
    assert!(duplicated.is_empty(), "processed more than once: {duplicated:?}");
    let expected: HashSet<String> = (0..MESSAGES).map(|i| format!("message-{i}")).collect();
    let got: HashSet<String> = processed.into_keys().collect();
    assert_eq!(got, expected, "every message processed");
    assert_nothing_for(&*q, JOBS, Duration::from_millis(500)).await;
}

/// `approximate_len` counts visible messages, not in-flight ones.
pub async fn approximate_len_counts_visible_messages(f: &(impl QueueFactory + ?Sized)) {
    let q = f.queues(LONG_VISIBILITY).await;
    for _ in 0..3 {
        q.send(JOBS, OutgoingMessage::new(job_body())).await.expect("send");
    }
    assert_len_becomes(&*q, JOBS, 3).await;
    assert_eq!(q.approximate_len(OTHER).await.expect("approximate_len"), 0);
    let d = receive_soon(&*q, JOBS).await.expect("delivered");
    assert_len_becomes(&*q, JOBS, 2).await;
    q.ack(JOBS, &d).await.expect("ack");
    assert_len_becomes(&*q, JOBS, 2).await;
}

/// A `{"id": …}` body with a fresh id.
fn job_body() -> String {
    format!("{{\"id\":\"{}\"}}", Uuid::new_v4())
}

/// Receives a message that should be visible now (allowing for eventual consistency).
async fn receive_soon(q: &dyn QueueClient, queue: QueueType) -> Option<Delivery> {
    receive_within(q, queue, SLACK).await
}

/// Receives a message, polling for up to `within`.
async fn receive_within(
    q: &dyn QueueClient,
    queue: QueueType,
    within: Duration,
) -> Option<Delivery> {
    eventually(within, move || async move { q.receive(queue).await.expect("receive") }).await
}

/// Panics if `queue` delivers anything during `period`.
async fn assert_nothing_for(q: &dyn QueueClient, queue: QueueType, period: Duration) {
    if let Some(d) = receive_within(q, queue, period).await {
        panic!(
            "{queue} delivered {:?} (receive #{}) when it should be empty",
            d.body, d.receive_count
        );
    }
}

/// Waits for `approximate_len` to reach `want`.
async fn assert_len_becomes(q: &dyn QueueClient, queue: QueueType, want: u64) {
    let deadline = tokio::time::Instant::now() + SLACK;
    loop {
        let len = q.approximate_len(queue).await.expect("approximate_len");
        if len == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "approximate_len of {queue} is {len}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
