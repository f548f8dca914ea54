//! One worker per queue: receives messages within its concurrency cap and hands them to the
//! state machine, the trigger runner or the dead-letter handler.

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use orchestrator_utils::Retryable;
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    core::client::{Alert, AlertSeverity, Delivery, OutgoingMessage},
    telemetry::metrics::TriggerOutcome,
    types::{
        queue::{JobAction, JobQueueMessage, QueueType, WorkerTriggerType, JOB_ACTION_ATTRIBUTE},
        ORCHESTRATOR_VERSION,
    },
    worker::{
        alerts::{self, RetriedJob},
        Config,
    },
    worker::{
        error::EngineError,
        service,
        trigger::{self, JobTrigger},
    },
};

/// Attribute naming why a message was dead-lettered by the orchestrator itself.
pub const DEAD_LETTER_REASON_ATTRIBUTE: &str = "DeadLetterReason";
/// Attribute naming the queue a dead-lettered message came from.
pub const SOURCE_QUEUE_ATTRIBUTE: &str = "SourceQueue";
/// How long a message of another orchestrator version is left for its own instances.
const FOREIGN_VERSION_DELAY: Duration = Duration::from_secs(30);

/// Consumes one queue.
#[derive(Debug)]
pub struct EventWorker {
    queue: QueueType,
    config: Arc<Config>,
}

impl EventWorker {
    /// A worker for `queue`.
    pub fn new(queue: QueueType, config: Arc<Config>) -> Self {
        Self { queue, config }
    }

    /// Receives and handles messages until `shutdown`, then waits for the messages in flight.
    ///
    /// A concurrency permit is taken before receiving, so messages this worker cannot handle
    /// yet stay in the queue for other workers.
    ///
    /// On `shutdown` the job handlers in flight are cut off and their jobs handed back (see
    /// [`service::process_job_until`]); their messages, and one received while stopping, are
    /// made visible again at once. The rest of the work in flight (recording an outcome, a
    /// trigger run, a dead letter) finishes normally.
    pub async fn run(self, shutdown: CancellationToken) {
        let slots = self.queue.config(&self.config.engine.queue).max_in_flight.max(1);
        let permits = Arc::new(Semaphore::new(slots));
        let tracker = TaskTracker::new();
        let waker = self.config.wakers.get(self.queue);
        let poll = self.config.engine.empty_poll_interval;
        tracing::debug!(queue = %self.queue, slots, "Worker started");
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            match self.config.queue().receive(self.queue).await {
                Ok(Some(delivery)) if shutdown.is_cancelled() => {
                    tracing::debug!(queue = %self.queue, "Stopping: a message received meanwhile is visible again at once");
                    nack(&self.config, self.queue, &delivery, Duration::ZERO).await;
                    drop(permit);
                    break;
                }
                Ok(Some(delivery)) => {
                    let config = self.config.clone();
                    let queue = self.queue;
                    let stop = shutdown.clone();
                    tracker.spawn(async move {
                        handle_delivery_until(&config, queue, delivery, &stop).await;
                        drop(permit);
                    });
                }
                Ok(None) => {
                    drop(permit);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(poll) => {}
                        _ = waker.notified() => {}
                    }
                }
                Err(e) => {
                    drop(permit);
                    tracing::warn!(queue = %self.queue, error = %e, "Receive failed; backing off");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(poll.max(Duration::from_secs(1))) => {}
                    }
                }
            }
        }
        tracker.close();
        tracker.wait().await;
        tracing::debug!(queue = %self.queue, "Worker stopped");
    }
}

/// Handles one delivery and acks, nacks or dead-letters it. Never panics; never drops a
/// message without either handling it or moving it to the dead-letter queue.
///
/// The same as [`handle_delivery_until`] with a stop that never comes.
pub async fn handle_delivery(config: &Arc<Config>, queue: QueueType, delivery: Delivery) {
    handle_delivery_until(config, queue, delivery, &CancellationToken::new()).await;
}

/// [`handle_delivery`]; when `stop` is cancelled while a job handler runs, the handler is cut
/// off, the job handed back and the message made visible again at once (`nack` with no delay).
pub async fn handle_delivery_until(
    config: &Arc<Config>,
    queue: QueueType,
    delivery: Delivery,
    stop: &CancellationToken,
) {
    if let Some(version) = delivery.orchestrator_version() {
        if version != ORCHESTRATOR_VERSION && queue != QueueType::JobHandleFailure {
            tracing::debug!(%queue, %version, "Message of another orchestrator version left for its instances");
            nack(config, queue, &delivery, FOREIGN_VERSION_DELAY).await;
            return;
        }
    }
    let outcome = match queue {
        QueueType::WorkerTrigger => match WorkerTriggerType::from_message_body(&delivery.body) {
            Some(kind) => {
                run_trigger(config, kind).await;
                Ok(())
            }
            None => Err(EngineError::MalformedMessage(format!(
                "unknown worker trigger {:?}",
                delivery.body
            ))),
        },
        QueueType::JobHandleFailure => {
            let reason = delivery.attributes.get(DEAD_LETTER_REASON_ATTRIBUTE).map(String::as_str);
            let action = delivery.attributes.get(JOB_ACTION_ATTRIBUTE).and_then(|a| a.parse().ok());
            service::handle_dead_letter(config, &delivery.body, action, reason).await
        }
        QueueType::PriorityProcessingQueue | QueueType::PriorityVerificationQueue => {
            match parse_job_message(&delivery.body) {
                Ok(id) if queue == QueueType::PriorityProcessingQueue => {
                    service::process_job_until(config, id, stop).await
                }
                Ok(id) => service::verify_job_until(config, id, stop).await,
                Err(e) => Err(e),
            }
        }
        job_queue => match (parse_job_message(&delivery.body), job_queue.job()) {
            (Ok(id), Some((_, JobAction::Process))) => {
                service::process_job_until(config, id, stop).await
            }
            (Ok(id), Some((_, JobAction::Verify))) => {
                service::verify_job_until(config, id, stop).await
            }
            (Err(e), _) => Err(e),
            (Ok(_), None) => {
                Err(EngineError::MalformedMessage(format!("queue {job_queue} carries no jobs")))
            }
        },
    };
    match outcome {
        Ok(()) => ack(config, queue, &delivery).await,
        Err(e) if e.is_interrupted() => {
            tracing::info!(%queue, error = %e, "Stopping: message visible again at once for another instance");
            nack(config, queue, &delivery, Duration::ZERO).await;
        }
        Err(e) if e.is_retryable() => {
            let delay = config.engine.retry_delay(delivery.receive_count);
            tracing::warn!(%queue, error = %e, retry_in_s = delay.as_secs(), "Message will be delivered again");
            nack(config, queue, &delivery, delay).await;
            // A handler's failure was alerted by the engine with the job; this covers the
            // engine's own (the database or the queue failing around the handler).
            let engine_failure =
                !matches!(e, EngineError::Handler { .. } | EngineError::Panicked { .. });
            if let (true, Some((job_type, action)), Ok(id)) =
                (engine_failure, queue.job(), parse_job_message(&delivery.body))
            {
                let attempt = u64::from(delivery.receive_count.max(1));
                let retried = RetriedJob { job_type, id, internal_id: None, action, attempt };
                alerts::job_retrying(config, retried, &e).await;
            }
        }
        Err(e) if queue == QueueType::JobHandleFailure => {
            tracing::error!(error = %e, body = %delivery.body, "Dead-letter message could not be handled; dropped");
            let alert = Alert {
                severity: AlertSeverity::Critical,
                title: "Dead-letter message could not be handled".to_owned(),
                body: format!("error: {e}\nbody: {}", delivery.body),
            };
            if let Err(e) = config.alerts().send_alert(&alert).await {
                tracing::error!(error = %e, "Could not send alert");
            }
            ack(config, queue, &delivery).await;
        }
        Err(e) => {
            tracing::warn!(%queue, error = %e, "Message cannot be handled; moving it to the dead-letter queue");
            dead_letter(config, queue, &delivery, &e.to_string()).await;
        }
    }
}

fn parse_job_message(body: &str) -> Result<uuid::Uuid, EngineError> {
    serde_json::from_str::<JobQueueMessage>(body).map(|m| m.id).map_err(|e| {
        EngineError::MalformedMessage(format!("expected {{\"id\": \"<uuid>\"}}, got {body:?}: {e}"))
    })
}

async fn ack(config: &Config, queue: QueueType, delivery: &Delivery) {
    if let Err(e) = config.queue().ack(queue, delivery).await {
        // The message will come back after its visibility timeout; handlers are idempotent.
        tracing::warn!(%queue, error = %e, "Ack failed; the message may be delivered again");
    }
}

async fn nack(config: &Config, queue: QueueType, delivery: &Delivery, delay: Duration) {
    if let Err(e) = config.queue().nack(queue, delivery, delay).await {
        tracing::warn!(%queue, error = %e, "Nack failed; the message returns after its visibility timeout");
    }
}

/// Moves a message the orchestrator cannot handle to the dead-letter queue with the reason,
/// then acks the original. If the move fails the original is nacked, so nothing is lost.
async fn dead_letter(config: &Config, queue: QueueType, delivery: &Delivery, reason: &str) {
    let mut message = OutgoingMessage::new(delivery.body.clone());
    message.attributes.extend(delivery.attributes.clone());
    message.attributes.insert(DEAD_LETTER_REASON_ATTRIBUTE.to_owned(), reason.to_owned());
    message.attributes.insert(SOURCE_QUEUE_ATTRIBUTE.to_owned(), queue.to_string());
    match config.queue().send(QueueType::JobHandleFailure, message).await {
        Ok(()) => {
            config.wakers.get(QueueType::JobHandleFailure).notify_one();
            ack(config, queue, delivery).await;
        }
        Err(e) => {
            tracing::warn!(%queue, error = %e, "Could not dead-letter the message; it will be delivered again");
            nack(config, queue, delivery, config.engine.retry_delay(delivery.receive_count)).await;
        }
    }
}

/// Runs one trigger unless it is not part of this layer, not built, already running in this
/// process, or halted by failed jobs. Errors are logged; the next tick runs it again.
pub async fn run_trigger(config: &Arc<Config>, kind: WorkerTriggerType) {
    if !config.runs_trigger(kind) {
        tracing::debug!(trigger = %kind, layer = %config.layer, "Trigger is not part of this layer");
        return;
    }
    let Some((trigger, guard)) = config.triggers.get_with_guard(kind) else {
        tracing::debug!(trigger = %kind, "Trigger not built in this version; skipped");
        return;
    };
    loop {
        let running = match guard.running.try_lock() {
            Ok(running) => running,
            Err(_) => {
                guard.pending.store(true, Ordering::SeqCst);
                // The run may have ended between the two looks: then this request runs it.
                match guard.running.try_lock() {
                    Ok(running) => running,
                    Err(_) => {
                        tracing::debug!(trigger = %kind, "Trigger already running; it runs once more when done");
                        return;
                    }
                }
            }
        };
        guard.pending.store(false, Ordering::SeqCst);
        run_trigger_once(config, kind, trigger.as_ref()).await;
        drop(running);
        if !guard.pending.load(Ordering::SeqCst) {
            return;
        }
        tracing::debug!(trigger = %kind, "Trigger asked for while it ran; running it again");
    }
}

/// One run of `trigger` unless paused or halted, with its metrics and alerts.
///
/// The pause is read from the database at every run (one read by key), so a pause written by
/// any process sharing the database stops this one's next run. When it (or the failed-job
/// halt) cannot be read, the run is skipped — a pause must not be overrun because the database
/// hiccuped — and counted and alerted as a failed run (`Trigger … failed`).
async fn run_trigger_once(config: &Arc<Config>, kind: WorkerTriggerType, trigger: &dyn JobTrigger) {
    match config.database().get_trigger_pause(kind).await {
        Ok(Some(pause)) => {
            tracing::debug!(
                trigger = %kind,
                paused_by = %pause.paused_by,
                paused_at = %pause.paused_at,
                "Trigger paused by an operator; skipped"
            );
            config.metrics.trigger_run(kind, TriggerOutcome::Paused);
            return;
        }
        Ok(None) => {}
        Err(e) => {
            // The run cannot go on without knowing: a failed run like any other (counted,
            // alerted once per streak), so a database outage is seen even when this read is
            // the first to hit it.
            config.metrics.trigger_run(kind, TriggerOutcome::Error);
            let error = format!("reading whether the trigger is paused: {e}");
            alerts::trigger_failed(config, kind, &error).await;
            return;
        }
    }
    match trigger::is_halted(config, trigger).await {
        Ok(true) => {
            tracing::info!(trigger = %kind, "Trigger halted by failed jobs; retry or fix them to resume");
            config.metrics.trigger_run(kind, TriggerOutcome::Halted);
            alerts::trigger_halted(config, kind, trigger).await;
            return;
        }
        Ok(false) => alerts::trigger_not_halted(config, kind),
        Err(e) => {
            config.metrics.trigger_run(kind, TriggerOutcome::Error);
            let error = format!("checking for failed jobs: {e}");
            alerts::trigger_failed(config, kind, &error).await;
            return;
        }
    }
    match trigger::run_timed(trigger, config.clone()).await {
        Ok(()) => {
            config.metrics.trigger_run(kind, TriggerOutcome::Ok);
            alerts::trigger_succeeded(config, kind);
        }
        Err(e) => {
            config.metrics.trigger_run(kind, TriggerOutcome::Error);
            alerts::trigger_failed(config, kind, &e.to_string()).await;
        }
    }
}
