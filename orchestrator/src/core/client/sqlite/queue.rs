//! `SqliteQueue`: the embedded tier's durable queues, with SQS semantics, in the shared
//! SQLite file.
//!
//! All queues share one table, `queue_messages`; a message is a row until it is acked. Times
//! are wall-clock milliseconds since the Unix epoch, so several processes on the same file
//! agree on them.
//!
//! - `receive` claims the oldest visible message with a single `UPDATE … RETURNING` on a
//!   sub-select. SQLite takes the write lock before the statement reads, so two receivers —
//!   in this process or another one on the same file — never claim the same message.
//! - The claim bumps `receive_count`, hides the message for the queue's visibility timeout
//!   and stores a fresh random receipt; only that receipt acks or nacks the message.
//! - A message claimed for the `max_receive_count + 1`-th time on a queue with a dead-letter
//!   queue is moved there (body and attributes unchanged, receive count reset, the source
//!   queue recorded in the `dead_lettered_from` column, which consumers do not see) instead
//!   of being delivered.
//! - Nothing is ever deleted except by `ack`: a message whose consumer crashes, fails or
//!   cannot parse the body comes back after the visibility timeout, and ends in the
//!   dead-letter queue after `max_receive_count` tries. The one exception is the
//!   `worker_trigger` queue, which has no dead-letter queue: as in the reference's SQS setup,
//!   its messages expire [`WORKER_TRIGGER_RETENTION`] after they were sent (a newer tick
//!   carries the same trigger), so a trigger that keeps failing does not pile up.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use sqlx::{Row, SqlitePool};
use strum::IntoEnumIterator;
use uuid::Uuid;

use crate::{
    core::client::{
        queue::{Delivery, OutgoingMessage, QueueClient, QueueError},
        sqlite::is_transient,
    },
    types::queue::{QueueConfig, QueueParams, QueueType, MAX_MESSAGE_DELAY},
};

/// How long a `worker_trigger` message lives (the reference's SQS retention period).
pub const WORKER_TRIGGER_RETENTION: Duration = Duration::from_secs(60);

/// Tracing target of this backend.
const TARGET: &str = "orch::queue";

/// Durable queues with SQS semantics on the shared SQLite pool.
///
/// Call [`SqliteQueue::init`] once (it is idempotent) before using the queues.
#[derive(Debug, Clone)]
pub struct SqliteQueue {
    pool: SqlitePool,
    configs: HashMap<QueueType, QueueConfig>,
}

impl SqliteQueue {
    /// Queues configured as in production: `QueueType::config(&params)`.
    pub fn new(pool: SqlitePool, params: &QueueParams) -> Self {
        Self::with_configs(pool, |q| q.config(params))
    }

    /// Queues with settings chosen per queue type (tests shorten the visibility timeouts).
    pub fn with_configs(pool: SqlitePool, config: impl Fn(QueueType) -> QueueConfig) -> Self {
        let configs = QueueType::iter().map(|q| (q, config(q))).collect();
        Self { pool, configs }
    }

    /// Creates the message table and its index if missing.
    ///
    /// # Errors
    /// `Unavailable` when the database is busy or unreachable, `Other` otherwise.
    pub async fn init(&self) -> Result<(), QueueError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS queue_messages (
                id                 INTEGER PRIMARY KEY AUTOINCREMENT,
                message_id         TEXT    NOT NULL UNIQUE,
                queue              TEXT    NOT NULL,
                body               TEXT    NOT NULL,
                attributes         TEXT    NOT NULL,
                visible_at         INTEGER NOT NULL,
                receive_count      INTEGER NOT NULL DEFAULT 0,
                receipt            TEXT,
                sent_at            INTEGER NOT NULL,
                dead_lettered_from TEXT
            )",
        )
        .execute(&self.pool)
        .await
        .map_err(|e| map_err(e, "queue_messages"))?;
        sqlx::query(
            "CREATE INDEX IF NOT EXISTS queue_messages_by_visibility
                ON queue_messages (queue, visible_at, id)",
        )
        .execute(&self.pool)
        .await
        .map_err(|e| map_err(e, "queue_messages"))?;
        sqlx::query(
            "CREATE INDEX IF NOT EXISTS queue_messages_by_receipt ON queue_messages (receipt)",
        )
        .execute(&self.pool)
        .await
        .map_err(|e| map_err(e, "queue_messages"))?;
        Ok(())
    }

    /// The settings of `queue`.
    pub fn config(&self, queue: QueueType) -> &QueueConfig {
        // Invariant: `with_configs` filled the map from `QueueType::iter()`, so every queue
        // type has an entry.
        &self.configs[&queue]
    }

    /// Claims the oldest visible message of `queue`, whatever its receive count.
    async fn claim(&self, queue: QueueType, now: i64) -> Result<Option<Claimed>, QueueError> {
        let hidden_until = now.saturating_add(millis(self.config(queue).visibility_timeout));
        let receipt = Uuid::new_v4().to_string();
        let row = sqlx::query(
            "UPDATE queue_messages
                SET receive_count = receive_count + 1, visible_at = ?1, receipt = ?2
              WHERE id = (SELECT id FROM queue_messages
                           WHERE queue = ?3 AND visible_at <= ?4
                           ORDER BY visible_at, id LIMIT 1)
          RETURNING id, message_id, body, attributes, receive_count",
        )
        .bind(hidden_until)
        .bind(&receipt)
        .bind(queue.as_ref())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| map_err(e, queue.as_ref()))?;
        let Some(row) = row else { return Ok(None) };
        let get = |e: sqlx::Error| QueueError::other(e);
        let attributes: String = row.try_get("attributes").map_err(get)?;
        let receive_count: i64 = row.try_get("receive_count").map_err(get)?;
        Ok(Some(Claimed {
            row_id: row.try_get("id").map_err(get)?,
            delivery: Delivery {
                message_id: row.try_get("message_id").map_err(get)?,
                receipt,
                body: row.try_get("body").map_err(get)?,
                attributes: serde_json::from_str(&attributes).map_err(QueueError::other)?,
                receive_count: u32::try_from(receive_count).unwrap_or(u32::MAX),
            },
        }))
    }

    /// Moves a claimed message to `dlq`, visible at once, with its receive count reset.
    async fn dead_letter(
        &self,
        queue: QueueType,
        dlq: QueueType,
        claimed: &Claimed,
        now: i64,
    ) -> Result<(), QueueError> {
        sqlx::query(
            "UPDATE queue_messages
                SET queue = ?1, visible_at = ?2, receive_count = 0, receipt = NULL,
                    dead_lettered_from = ?3
              WHERE id = ?4 AND receipt = ?5",
        )
        .bind(dlq.as_ref())
        .bind(now)
        .bind(queue.as_ref())
        .bind(claimed.row_id)
        .bind(&claimed.delivery.receipt)
        .execute(&self.pool)
        .await
        .map_err(|e| map_err(e, queue.as_ref()))?;
        Ok(())
    }

    /// Deletes the messages of `queue` sent more than `retention` ago.
    async fn expire(&self, queue: QueueType, retention: Duration) -> Result<(), QueueError> {
        let expired = sqlx::query("DELETE FROM queue_messages WHERE queue = ?1 AND sent_at < ?2")
            .bind(queue.as_ref())
            .bind(now_millis().saturating_sub(millis(retention)))
            .execute(&self.pool)
            .await
            .map_err(|e| map_err(e, queue.as_ref()))?;
        if expired.rows_affected() > 0 {
            tracing::debug!(target: TARGET, %queue, expired = expired.rows_affected(), "Expired messages deleted");
        }
        Ok(())
    }

    /// Rejects delays longer than SQS allows.
    fn check_delay(queue: QueueType, delay: Duration) -> Result<(), QueueError> {
        if delay > MAX_MESSAGE_DELAY {
            return Err(QueueError::DelayTooLong { queue, delay, max: MAX_MESSAGE_DELAY });
        }
        Ok(())
    }
}

/// A message this receiver just claimed.
#[derive(Debug)]
struct Claimed {
    row_id: i64,
    delivery: Delivery,
}

#[async_trait]
impl QueueClient for SqliteQueue {
    async fn send(&self, queue: QueueType, message: OutgoingMessage) -> Result<(), QueueError> {
        let delay = message.delay.unwrap_or_default();
        Self::check_delay(queue, delay)?;
        let attributes = serde_json::to_string(&message.attributes).map_err(QueueError::other)?;
        let now = now_millis();
        sqlx::query(
            "INSERT INTO queue_messages (message_id, queue, body, attributes, visible_at, sent_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(queue.as_ref())
        .bind(&message.body)
        .bind(attributes)
        .bind(now.saturating_add(millis(delay)))
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| map_err(e, queue.as_ref()))?;
        Ok(())
    }

    async fn receive(&self, queue: QueueType) -> Result<Option<Delivery>, QueueError> {
        let config = self.config(queue);
        if queue == QueueType::WorkerTrigger {
            self.expire(queue, WORKER_TRIGGER_RETENTION).await?;
        }
        // Each pass either delivers a message or moves one to the dead-letter queue, so the
        // loop ends once the visible messages run out.
        loop {
            let now = now_millis();
            let Some(claimed) = self.claim(queue, now).await? else { return Ok(None) };
            match config.dead_letter_queue {
                Some(dlq) if claimed.delivery.receive_count > config.max_receive_count => {
                    tracing::warn!(
                        target: TARGET,
                        %queue,
                        %dlq,
                        message_id = %claimed.delivery.message_id,
                        receives = config.max_receive_count,
                        "Message moved to the dead-letter queue"
                    );
                    self.dead_letter(queue, dlq, &claimed, now).await?;
                }
                _ => return Ok(Some(claimed.delivery)),
            }
        }
    }

    async fn ack(&self, queue: QueueType, delivery: &Delivery) -> Result<(), QueueError> {
        let deleted = sqlx::query("DELETE FROM queue_messages WHERE queue = ?1 AND receipt = ?2")
            .bind(queue.as_ref())
            .bind(&delivery.receipt)
            .execute(&self.pool)
            .await
            .map_err(|e| map_err(e, queue.as_ref()))?;
        if deleted.rows_affected() == 0 {
            return Err(QueueError::StaleReceipt(delivery.message_id.clone()));
        }
        Ok(())
    }

    /// Makes the message visible again after `delay` (at most 900 s, like a send delay).
    /// The receipt stays valid until the message is received again, as in SQS.
    async fn nack(
        &self,
        queue: QueueType,
        delivery: &Delivery,
        delay: Duration,
    ) -> Result<(), QueueError> {
        Self::check_delay(queue, delay)?;
        let updated = sqlx::query(
            "UPDATE queue_messages SET visible_at = ?1 WHERE queue = ?2 AND receipt = ?3",
        )
        .bind(now_millis().saturating_add(millis(delay)))
        .bind(queue.as_ref())
        .bind(&delivery.receipt)
        .execute(&self.pool)
        .await
        .map_err(|e| map_err(e, queue.as_ref()))?;
        if updated.rows_affected() == 0 {
            return Err(QueueError::StaleReceipt(delivery.message_id.clone()));
        }
        Ok(())
    }

    /// Counts the visible messages, including any that the next `receive` will move to the
    /// dead-letter queue instead of delivering.
    async fn approximate_len(&self, queue: QueueType) -> Result<u64, QueueError> {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM queue_messages WHERE queue = ?1 AND visible_at <= ?2",
        )
        .bind(queue.as_ref())
        .bind(now_millis())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| map_err(e, queue.as_ref()))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn health_check(&self) -> Result<(), QueueError> {
        sqlx::query("SELECT 1 FROM queue_messages LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| map_err(e, "queue_messages"))?;
        Ok(())
    }
}

/// Wall-clock milliseconds since the Unix epoch.
fn now_millis() -> i64 {
    // A clock before 1970 would be a broken host; treat it as the epoch.
    SystemTime::now().duration_since(UNIX_EPOCH).map(millis).unwrap_or(0)
}

/// A duration in whole milliseconds, saturating.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Maps a sqlx error: busy/locked/pool/I-O → `Unavailable`; a missing table → the queues
/// were never set up (`QueueNotFound`); anything else → `Other`.
fn map_err(e: sqlx::Error, queue: &str) -> QueueError {
    if is_transient(&e) {
        return QueueError::Unavailable(Box::new(e));
    }
    if let sqlx::Error::Database(db) = &e {
        if db.message().contains("no such table") {
            return QueueError::QueueNotFound(queue.to_owned());
        }
    }
    QueueError::other(e)
}

#[cfg(test)]
mod tests {
    use std::{collections::HashSet, path::Path, sync::Arc};

    use orchestrator_utils::Retryable;

    use super::*;
    use crate::types::jobs::JobType;
    use crate::{
        core::client::{
            conformance::queue::{QueueFactory, DEFAULT_SHORT_VISIBILITY},
            sqlite::open_pool,
        },
        types::queue::{JobQueueMessage, QUEUE_MAX_RECEIVE_COUNT},
    };

    /// Fresh SQLite queues in a temp dir per call; the dirs live as long as the factory.
    #[derive(Debug, Default)]
    struct SqliteQueueFactory {
        dirs: std::sync::Mutex<Vec<tempfile::TempDir>>,
    }

    #[async_trait]
    impl QueueFactory for SqliteQueueFactory {
        async fn queues(&self, visibility_timeout: Duration) -> Arc<dyn QueueClient> {
            let dir = tempfile::tempdir().expect("tempdir");
            let queue = open_queue(dir.path(), visibility_timeout).await;
            self.dirs.lock().expect("dirs").push(dir);
            Arc::new(queue)
        }

        fn short_visibility(&self) -> Duration {
            Duration::from_millis(300)
        }
    }

    crate::queue_conformance_tests!(SqliteQueueFactory::default());

    async fn open_queue(dir: &Path, visibility_timeout: Duration) -> SqliteQueue {
        let pool = open_pool(dir).await.expect("open pool");
        let queue = SqliteQueue::with_configs(pool, |q| QueueConfig {
            visibility_timeout,
            ..q.config(&QueueParams::default())
        });
        queue.init().await.expect("init");
        queue
    }

    #[test]
    fn the_short_visibility_is_shorter_than_the_default() {
        assert!(SqliteQueueFactory::default().short_visibility() < DEFAULT_SHORT_VISIBILITY);
    }

    #[tokio::test]
    async fn init_is_idempotent_and_production_settings_apply() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = open_pool(dir.path()).await.expect("open pool");
        let queue = SqliteQueue::new(pool, &QueueParams::default());
        queue.init().await.expect("init");
        queue.init().await.expect("init again");
        assert_eq!(
            queue
                .config(QueueType::JobProcessing(JobType::StateTransition))
                .visibility_timeout
                .as_secs(),
            1080
        );
        queue.health_check().await.expect("health");
    }

    #[tokio::test]
    async fn queues_before_init_are_not_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = open_pool(dir.path()).await.expect("open pool");
        let queue = SqliteQueue::new(pool, &QueueParams::default());
        let err = queue
            .send(QueueType::WorkerTrigger, OutgoingMessage::new("Snos"))
            .await
            .expect_err("no table");
        assert!(matches!(err, QueueError::QueueNotFound(_)), "{err:?}");
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn an_unacked_garbage_message_comes_back_and_is_never_lost() {
        let dir = tempfile::tempdir().expect("tempdir");
        let queue = open_queue(dir.path(), Duration::from_millis(100)).await;
        let q = QueueType::JobProcessing(JobType::SnosRun);
        queue.send(q, OutgoingMessage::new("not json at all")).await.expect("send");
        // The consumer cannot parse the body and drops the delivery without acking.
        let first = queue.receive(q).await.expect("receive").expect("a message");
        assert!(serde_json::from_str::<JobQueueMessage>(&first.body).is_err());
        drop(first);
        tokio::time::sleep(Duration::from_millis(150)).await;
        let again = queue.receive(q).await.expect("receive").expect("redelivered");
        assert_eq!(again.body, "not json at all");
        assert_eq!(again.receive_count, 2);
    }

    #[tokio::test]
    async fn the_dead_lettered_row_records_its_source_queue() {
        let dir = tempfile::tempdir().expect("tempdir");
        let queue = open_queue(dir.path(), Duration::from_millis(1)).await;
        let q = QueueType::JobVerification(JobType::ProofCreation);
        queue.send(q, OutgoingMessage::new("{\"id\":\"x\"}")).await.expect("send");
        for _ in 0..QUEUE_MAX_RECEIVE_COUNT {
            let d = queue.receive(q).await.expect("receive").expect("a message");
            queue.nack(q, &d, Duration::ZERO).await.expect("nack");
        }
        assert!(queue.receive(q).await.expect("receive").is_none());
        let (from,): (String,) = sqlx::query_as("SELECT dead_lettered_from FROM queue_messages")
            .fetch_one(&queue.pool)
            .await
            .expect("row");
        assert_eq!(from, "proving_job_verification");
    }

    #[tokio::test]
    async fn queues_without_a_dead_letter_queue_redeliver_forever() {
        let dir = tempfile::tempdir().expect("tempdir");
        let queue = open_queue(dir.path(), Duration::from_millis(1)).await;
        let q = QueueType::WorkerTrigger;
        queue.send(q, OutgoingMessage::new("Snos")).await.expect("send");
        for n in 1..=8 {
            let d = queue.receive(q).await.expect("receive").expect("a message");
            assert_eq!(d.receive_count, n);
            queue.nack(q, &d, Duration::ZERO).await.expect("nack");
        }
    }

    #[tokio::test]
    async fn worker_triggers_expire_and_job_messages_do_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let queue = open_queue(dir.path(), Duration::from_secs(60)).await;
        for q in [QueueType::WorkerTrigger, QueueType::JobProcessing(JobType::SnosRun)] {
            queue.send(q, OutgoingMessage::new("old")).await.expect("send");
        }
        // Age both messages past the retention.
        sqlx::query("UPDATE queue_messages SET sent_at = sent_at - ?1")
            .bind(millis(WORKER_TRIGGER_RETENTION) + 1)
            .execute(&queue.pool)
            .await
            .expect("age");
        queue.send(QueueType::WorkerTrigger, OutgoingMessage::new("Snos")).await.expect("send");
        let d = queue.receive(QueueType::WorkerTrigger).await.expect("receive").expect("fresh");
        assert_eq!(d.body, "Snos");
        assert!(queue.receive(QueueType::WorkerTrigger).await.expect("receive").is_none());
        let job = queue.receive(QueueType::JobProcessing(JobType::SnosRun)).await.expect("receive");
        assert_eq!(job.expect("job messages never expire").body, "old");
    }

    #[tokio::test]
    async fn nack_rejects_delays_longer_than_sqs_allows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let queue = open_queue(dir.path(), Duration::from_secs(60)).await;
        let q = QueueType::JobProcessing(JobType::SnosRun);
        queue.send(q, OutgoingMessage::new("a")).await.expect("send");
        let d = queue.receive(q).await.expect("receive").expect("a message");
        let err = queue.nack(q, &d, Duration::from_secs(901)).await.expect_err("too long");
        assert!(matches!(err, QueueError::DelayTooLong { .. }), "{err:?}");
    }

    /// Two pools on one file stand for two processes: each message goes to exactly one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_processes_on_one_file_share_the_messages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = open_queue(dir.path(), Duration::from_secs(300)).await;
        let b = open_queue(dir.path(), Duration::from_secs(300)).await;
        let q = QueueType::JobProcessing(JobType::SnosRun);
        const N: usize = 200;
        for i in 0..N {
            a.send(q, OutgoingMessage::new(i.to_string())).await.expect("send");
        }
        let mut tasks = Vec::new();
        for (name, queue) in
            [("a", a.clone()), ("b", b.clone()), ("a", a.clone()), ("b", b.clone())]
        {
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(d) = queue.receive(q).await.expect("receive") {
                    queue.ack(q, &d).await.expect("ack");
                    got.push((name, d.body));
                }
                got
            }));
        }
        let mut seen = HashSet::new();
        let mut per_process: HashMap<&str, usize> = HashMap::new();
        for t in tasks {
            for (name, body) in t.await.expect("join") {
                assert!(seen.insert(body.clone()), "message {body} delivered twice");
                *per_process.entry(name).or_default() += 1;
            }
        }
        assert_eq!(seen.len(), N);
        assert!(per_process.values().all(|&n| n > 0), "both processes received: {per_process:?}");
        assert_eq!(b.approximate_len(q).await.expect("len"), 0);
    }

    /// Throughput of send + receive + ack, one message at a time, on one connection pool.
    /// Run with `cargo test -p orchestrator --lib --release -- --ignored --nocapture throughput`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark"]
    async fn throughput() {
        let dir = tempfile::tempdir().expect("tempdir");
        let queue = open_queue(dir.path(), Duration::from_secs(300)).await;
        let q = QueueType::JobProcessing(JobType::SnosRun);
        let n = 2_000;
        let start = std::time::Instant::now();
        for i in 0..n {
            queue.send(q, OutgoingMessage::new(i.to_string())).await.expect("send");
            let d = queue.receive(q).await.expect("receive").expect("a message");
            queue.ack(q, &d).await.expect("ack");
        }
        let sequential = f64::from(n) / start.elapsed().as_secs_f64();

        // Four concurrent producer/consumer pairs.
        let start = std::time::Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let queue = queue.clone();
                tokio::spawn(async move {
                    for i in 0..n / 4 {
                        queue.send(q, OutgoingMessage::new(i.to_string())).await.expect("send");
                        if let Some(d) = queue.receive(q).await.expect("receive") {
                            queue.ack(q, &d).await.expect("ack");
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("join");
        }
        let concurrent = f64::from(n) / start.elapsed().as_secs_f64();
        println!("sqlite queue: {sequential:.0} msg/s sequential, {concurrent:.0} msg/s with 4 tasks (send+receive+ack)");
    }
}
