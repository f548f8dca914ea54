//! `LocalCron`: the embedded tier's EventBridge — an in-process ticker that sends each
//! trigger's name to the `worker_trigger` queue every interval.
//!
//! Several processes on one data dir each run their own ticker, so triggers fire once per
//! process per interval; the trigger handlers take locks where running twice would hurt
//! (batching, storage cleanup) and are otherwise idempotent.

use orchestrator_utils::Retryable;
use std::{collections::HashSet, sync::Arc, time::Duration};

use async_trait::async_trait;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::{
    cron::{CronClient, CronError},
    queue::{OutgoingMessage, QueueClient},
};
use crate::types::queue::{QueueType, WorkerTriggerType};

/// Tracing target of the cron.
const TARGET: &str = "orch::cron";

/// How long one trigger's send may take before the cron gives up on it for this tick. A queue
/// that never answers (an overloaded or half-open connection) would otherwise hold every later
/// tick; a trigger sent twice is harmless, one never sent again stalls the pipeline.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Fires worker triggers from inside the process.
#[derive(Debug, Clone)]
pub struct LocalCron {
    queue: Arc<dyn QueueClient>,
}

impl LocalCron {
    /// A cron sending to `queue`'s `worker_trigger` queue.
    pub fn new(queue: Arc<dyn QueueClient>) -> Self {
        Self { queue }
    }

    /// Sends one round of triggers; failures, and sends not answered within [`SEND_TIMEOUT`],
    /// are logged and left for the next tick. Returns early when `shutdown` fires, even in the
    /// middle of a hanging send.
    async fn fire(&self, triggers: &[WorkerTriggerType], shutdown: &CancellationToken) {
        for &trigger in triggers {
            let send = tokio::time::timeout(
                SEND_TIMEOUT,
                self.queue
                    .send(QueueType::WorkerTrigger, OutgoingMessage::new(trigger.to_string())),
            );
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                sent = send => match sent {
                    Ok(Ok(())) => tracing::debug!(target: TARGET, %trigger, "Trigger sent"),
                    Ok(Err(e)) => tracing::warn!(
                        target: TARGET,
                        %trigger,
                        error = %e,
                        retryable = e.is_retryable(),
                        "Trigger not sent; it fires again next tick"
                    ),
                    Err(_) => tracing::warn!(
                        target: TARGET,
                        %trigger,
                        timeout = ?SEND_TIMEOUT,
                        "Trigger send not answered in time; given up, it fires again next tick"
                    ),
                },
            }
        }
    }
}

#[async_trait]
impl CronClient for LocalCron {
    /// Nothing to create in process; checks the interval is positive and no trigger is
    /// listed twice.
    async fn setup_triggers(
        &self,
        triggers: &[WorkerTriggerType],
        interval: Duration,
    ) -> Result<(), CronError> {
        validate(triggers, interval)
    }

    /// Sends every trigger at once, then every `interval` (a late tick is not made up for:
    /// the next one comes `interval` after it), until `shutdown` is cancelled.
    async fn run(
        &self,
        triggers: &[WorkerTriggerType],
        interval: Duration,
        shutdown: CancellationToken,
    ) -> Result<(), CronError> {
        validate(triggers, interval)?;
        tracing::info!(target: TARGET, ?interval, ?triggers, "Local cron started");
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                _ = ticker.tick() => self.fire(triggers, &shutdown).await,
            }
        }
        tracing::info!(target: TARGET, "Local cron stopped");
        Ok(())
    }
}

/// Checks the interval is positive and no trigger is listed twice.
fn validate(triggers: &[WorkerTriggerType], interval: Duration) -> Result<(), CronError> {
    if interval.is_zero() {
        return Err(CronError::other("the trigger interval must be longer than zero"));
    }
    let mut seen = HashSet::new();
    for trigger in triggers {
        if !seen.insert(trigger) {
            return Err(CronError::Create {
                name: trigger.to_string(),
                source: "listed twice".into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    };

    use super::*;
    use crate::types::jobs::JobType;
    use crate::{
        core::client::queue::{Delivery, QueueError},
        types::{queue::QueueParams, ORCHESTRATOR_VERSION},
    };

    /// Records sends; the first `hang_first` never return, the next `fail_first` fail.
    #[derive(Debug, Default)]
    struct RecordingQueue {
        sent: Mutex<Vec<(QueueType, OutgoingMessage)>>,
        fail_first: AtomicUsize,
        hang_first: AtomicUsize,
    }

    impl RecordingQueue {
        fn bodies(&self) -> Vec<String> {
            self.sent.lock().expect("sent").iter().map(|(_, m)| m.body.clone()).collect()
        }
    }

    #[async_trait]
    impl QueueClient for RecordingQueue {
        async fn send(&self, queue: QueueType, message: OutgoingMessage) -> Result<(), QueueError> {
            if self
                .hang_first
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                std::future::pending::<()>().await;
            }
            let failing = self
                .fail_first
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                return Err(QueueError::Unavailable("queue down".into()));
            }
            self.sent.lock().expect("sent").push((queue, message));
            Ok(())
        }
        async fn receive(&self, _: QueueType) -> Result<Option<Delivery>, QueueError> {
            Ok(None)
        }
        async fn ack(&self, _: QueueType, _: &Delivery) -> Result<(), QueueError> {
            Ok(())
        }
        async fn nack(&self, _: QueueType, _: &Delivery, _: Duration) -> Result<(), QueueError> {
            Ok(())
        }
        async fn approximate_len(&self, _: QueueType) -> Result<u64, QueueError> {
            Ok(0)
        }
        async fn health_check(&self) -> Result<(), QueueError> {
            Ok(())
        }
    }

    const MINUTE: Duration = Duration::from_secs(60);

    /// Runs the cron on `queue` for `period` of (paused) time.
    async fn run_for(
        queue: Arc<RecordingQueue>,
        triggers: &'static [WorkerTriggerType],
        period: Duration,
    ) {
        let cron = LocalCron::new(queue);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { cron.run(triggers, MINUTE, shutdown).await }
        });
        tokio::time::sleep(period).await;
        shutdown.cancel();
        task.await.expect("join").expect("run");
    }

    #[tokio::test(start_paused = true)]
    async fn fires_every_trigger_at_once_then_every_interval() {
        let queue = Arc::new(RecordingQueue::default());
        let triggers =
            &[WorkerTriggerType::Stage(JobType::SnosRun), WorkerTriggerType::StorageCleanup];
        run_for(Arc::clone(&queue), triggers, MINUTE * 2 + MINUTE / 2).await;
        // Ticks at 0, 60 and 120 s.
        assert_eq!(queue.bodies(), ["Snos", "StorageCleanup"].repeat(3));
        for (q, m) in queue.sent.lock().expect("sent").iter() {
            assert_eq!(*q, QueueType::WorkerTrigger);
            assert!(m.delay.is_none());
            assert_eq!(
                m.attributes.get("OrchestratorVersion").map(String::as_str),
                Some(ORCHESTRATOR_VERSION)
            );
            assert!(WorkerTriggerType::from_message_body(&m.body).is_some(), "{}", m.body);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn send_failures_are_retried_next_tick() {
        let queue =
            Arc::new(RecordingQueue { fail_first: AtomicUsize::new(3), ..Default::default() });
        let triggers = &[
            WorkerTriggerType::Stage(JobType::SnosRun),
            WorkerTriggerType::Stage(JobType::ProofCreation),
        ];
        run_for(Arc::clone(&queue), triggers, MINUTE * 2 + MINUTE / 2).await;
        // Tick 0: both fail; tick 60: Snos fails, Proving sent; tick 120: both sent.
        assert_eq!(queue.bodies(), ["Proving", "Snos", "Proving"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_that_never_returns_is_given_up_and_the_cron_goes_on() {
        let queue =
            Arc::new(RecordingQueue { hang_first: AtomicUsize::new(1), ..Default::default() });
        let triggers = &[
            WorkerTriggerType::Stage(JobType::SnosRun),
            WorkerTriggerType::Stage(JobType::ProofCreation),
        ];
        // Tick 0: Snos hangs until SEND_TIMEOUT (30 s), then Proving is sent; ticks 60 and 120
        // send both.
        run_for(Arc::clone(&queue), triggers, MINUTE * 2 + MINUTE / 2).await;
        assert_eq!(queue.bodies(), ["Proving", "Snos", "Proving", "Snos", "Proving"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_send_does_not_delay_shutdown() {
        let queue = Arc::new(RecordingQueue {
            hang_first: AtomicUsize::new(usize::MAX),
            ..Default::default()
        });
        let cron = LocalCron::new(queue);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                cron.run(&[WorkerTriggerType::Stage(JobType::SnosRun)], MINUTE, shutdown).await
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("stops promptly")
            .expect("join")
            .expect("run");
    }

    #[tokio::test]
    async fn setup_validates_the_interval_and_the_triggers() {
        let cron = LocalCron::new(Arc::new(RecordingQueue::default()));
        let layer = WorkerTriggerType::for_layer(crate::types::Layer::L2);
        cron.setup_triggers(layer, MINUTE).await.expect("valid");
        cron.setup_triggers(layer, MINUTE).await.expect("idempotent");
        assert!(cron.setup_triggers(layer, Duration::ZERO).await.is_err());
        let err = cron
            .setup_triggers(
                &[
                    WorkerTriggerType::Stage(JobType::SnosRun),
                    WorkerTriggerType::Stage(JobType::SnosRun),
                ],
                MINUTE,
            )
            .await
            .expect_err("duplicate");
        assert!(err.to_string().contains("Snos"), "{err}");
        assert!(
            cron.run(layer, Duration::ZERO, CancellationToken::new()).await.is_err(),
            "run validates too"
        );
    }

    #[tokio::test]
    async fn triggers_reach_the_sqlite_worker_trigger_queue() {
        use crate::core::client::sqlite::{open_pool, queue::SqliteQueue};
        let dir = tempfile::tempdir().expect("tempdir");
        let queue =
            SqliteQueue::new(open_pool(dir.path()).await.expect("pool"), &QueueParams::default());
        queue.init().await.expect("init");
        let queue: Arc<dyn QueueClient> = Arc::new(queue);
        let cron = LocalCron::new(Arc::clone(&queue));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                cron.run(&[WorkerTriggerType::SnosBatching], Duration::from_millis(50), shutdown)
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(120)).await;
        shutdown.cancel();
        task.await.expect("join").expect("run");
        let d = queue.receive(QueueType::WorkerTrigger).await.expect("receive").expect("a trigger");
        assert_eq!(
            WorkerTriggerType::from_message_body(&d.body),
            Some(WorkerTriggerType::SnosBatching)
        );
        assert!(
            queue.approximate_len(QueueType::WorkerTrigger).await.expect("len") >= 1,
            "more ticks fired"
        );
    }
}
