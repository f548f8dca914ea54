//! The job state machine (reference §3.1): every status transition happens here, through
//! versioned database updates, so concurrent workers and processes never both act on the same
//! version of a job.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use futures::FutureExt;
use orchestrator_utils::OperatorAction;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    core::client::{Alert, AlertSeverity, DatabaseError, OutgoingMessage},
    telemetry::metrics::Outcome,
    types::{
        jobs::{
            now_ms, JobItem, JobItemUpdates, JobMetadata, JobSpecificMetadata, JobStatus, JobType,
            JobVerificationStatus,
        },
        queue::{
            JobAction, JobQueueMessage, QueueType, WorkerTriggerType, JOB_ACTION_ATTRIBUTE,
            MAX_MESSAGE_DELAY,
        },
    },
    worker::Config,
    worker::{
        alerts::{self, AlertSink, RetriedJob},
        error::EngineError,
        handler::{JobError, JobHandlerTrait},
        trigger::next_stage,
    },
};

/// Creates a job through its handler, stores it and queues it for processing.
///
/// A job whose message cannot be sent stays `Created`; the orphan scanner sends it again.
pub async fn create_job(
    config: &Config,
    job_type: JobType,
    internal_id: u64,
    specific: JobSpecificMetadata,
) -> Result<JobItem, EngineError> {
    let job = create_job_unqueued(config, job_type, internal_id, specific).await?;
    queue_created_job(config, &job).await;
    Ok(job)
}

/// Queues a job [`create_job_unqueued`] created; a failed send is logged (the orphan scanner
/// sends the message of a job left `Created`).
pub async fn queue_created_job(config: &Config, job: &JobItem) {
    if let Err(e) = send_job_message(config, job, JobAction::Process, Duration::ZERO).await {
        tracing::warn!(job_id = %job.id, error = %e, "Job created but not queued; the orphan scanner will queue it");
    }
}

/// Creates a job through its handler and stores it, without queueing it: for a trigger that
/// records something about the new job (its batch's status) before any worker may pick it up,
/// then queues it with [`queue_created_job`]. A job never queued (the process died in
/// between) is queued by the orphan scanner.
pub async fn create_job_unqueued(
    config: &Config,
    job_type: JobType,
    internal_id: u64,
    specific: JobSpecificMetadata,
) -> Result<JobItem, EngineError> {
    let handler = handler(config, job_type)?;
    let job = handler
        .create_job(internal_id, specific)
        .await
        .map_err(|source| EngineError::Handler { id: Uuid::nil(), job_type, source })?;
    let job = match config.database().create_job(job).await {
        Ok(job) => job,
        Err(DatabaseError::ItemAlreadyExists { job_type, internal_id }) => {
            return Err(EngineError::AlreadyExists { job_type, internal_id })
        }
        Err(e) => {
            config.metrics.created(job_type, Outcome::Failure);
            return Err(e.into());
        }
    };
    config.metrics.created(job_type, Outcome::Success);
    record_transition(config, &job, None, JobStatus::Created);
    tracing::info!(job_id = %job.id, %job_type, internal_id, "Job created");
    Ok(job)
}

/// Sends a job message on the queue of its type and action and wakes the local worker.
pub async fn send_job_message(
    config: &Config,
    job: &JobItem,
    action: JobAction,
    delay: Duration,
) -> Result<(), EngineError> {
    send_to_queue(config, QueueType::for_job(job.job_type, action), job.id, delay).await
}

/// Sends `{"id": …}` to `queue`, with the action it asks for in [`JOB_ACTION_ATTRIBUTE`], and
/// wakes the local worker of that queue.
pub async fn send_to_queue(
    config: &Config,
    queue: QueueType,
    id: Uuid,
    delay: Duration,
) -> Result<(), EngineError> {
    let body = serde_json::to_string(&JobQueueMessage { id })
        .map_err(|e| EngineError::MalformedMessage(e.to_string()))?;
    let mut message = OutgoingMessage::new(body).with_delay(delay.min(MAX_MESSAGE_DELAY));
    if let Some(action) = queue.action() {
        message.attributes.insert(JOB_ACTION_ATTRIBUTE.to_owned(), action.to_string());
    }
    config.queue().send(queue, message).await?;
    if delay.is_zero() {
        config.wakers.get(queue).notify_one();
    }
    Ok(())
}

/// Sends a trigger message to the worker-trigger queue and wakes its local worker.
pub async fn send_trigger(config: &Config, trigger: WorkerTriggerType) -> Result<(), EngineError> {
    config
        .queue()
        .send(QueueType::WorkerTrigger, OutgoingMessage::new(trigger.to_string()))
        .await?;
    config.wakers.get(QueueType::WorkerTrigger).notify_one();
    Ok(())
}

fn handler(config: &Config, job_type: JobType) -> Result<Arc<dyn JobHandlerTrait>, EngineError> {
    config.handlers.get(job_type).cloned().ok_or(EngineError::NoHandler(job_type))
}

async fn load(config: &Config, id: Uuid) -> Result<JobItem, EngineError> {
    config.database().get_job_by_id(id).await?.ok_or(EngineError::JobNotFound(id))
}

/// Whether a `LockedForProcessing` job has been locked longer than its type's timeout (or
/// has no start time), i.e. the worker that locked it is presumed dead.
pub fn is_stale(config: &Config, job: &JobItem) -> bool {
    let timeout = config.engine.job_timeout(job.job_type);
    match job.metadata.common.process_started_at {
        None => true,
        Some(started) => (Utc::now() - started).to_std().is_ok_and(|age| age > timeout),
    }
}

/// Applies one change of `job` — status, external id, metadata — the only way the engine
/// changes a job: a versioned update (`WHERE id = ? AND version = ?`), then, when the status is
/// set, the transition metric and log line.
///
/// `Ok(None)` means another writer changed the job first (a duplicate message, a second worker
/// or process, an operator): losing that race is normal, the change is dropped and the caller
/// ends quietly.
async fn transition(
    config: &Config,
    job: &JobItem,
    updates: JobItemUpdates,
) -> Result<Option<JobItem>, EngineError> {
    let to = updates.status;
    match config.database().update_job(job, updates).await {
        Ok(updated) => {
            if let Some(to) = to {
                record_transition(config, &updated, Some(job.status), to);
            }
            Ok(Some(updated))
        }
        Err(DatabaseError::UpdateFailed { .. }) => {
            tracing::debug!(job_id = %job.id, version = job.version, status = %job.status, "The job changed first; this change is dropped");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Counts and logs a status change of `job` (`from` is `None` for a new job).
fn record_transition(config: &Config, job: &JobItem, from: Option<JobStatus>, to: JobStatus) {
    config.metrics.transition(job.job_type, from, to);
    tracing::debug!(job_id = %job.id, job_type = %job.job_type, internal_id = job.internal_id, from = ?from, %to, "Job transition");
}

/// The error of an operator action (or a scan) whose job another writer changed first: the
/// action did not happen and the caller reads the job again.
fn changed_first(job: &JobItem) -> EngineError {
    EngineError::Database(DatabaseError::UpdateFailed { id: job.id, version: job.version })
}

/// Processes a job: heal it if orphaned, check readiness, lock it, run the handler, and move
/// it to `PendingVerification` (or back, or to `Failed`).
///
/// Returns an error when the message should be delivered again (retryable) or dead-lettered
/// (not retryable); `Ok` means the message is done with, including for duplicates.
///
/// The same as [`process_job_until`] with a stop that never comes.
pub async fn process_job(config: &Config, id: Uuid) -> Result<(), EngineError> {
    process_job_until(config, id, &CancellationToken::new()).await
}

/// [`process_job`], handing the job back when `stop` is cancelled while it is processed (the
/// process is told to stop): the handler is cut off, the job returns to the status it had
/// before `LockedForProcessing` through a versioned update (see [`hand_back`]), and the
/// returned error ([`EngineError::is_interrupted`]) tells the caller to make the message
/// visible again at once.
/// A handler that finished before the cut is not undone: its outcome is recorded as usual.
pub async fn process_job_until(
    config: &Config,
    id: Uuid,
    stop: &CancellationToken,
) -> Result<(), EngineError> {
    let mut job = load(config, id).await?;
    if stop.is_cancelled() {
        return Err(EngineError::interrupted(id, job.job_type));
    }
    let handler = handler(config, job.job_type)?;

    if job.status == JobStatus::LockedForProcessing {
        if !is_stale(config, &job) {
            tracing::debug!(job_id = %id, "Job is being processed elsewhere; duplicate message dropped");
            return Ok(());
        }
        let Some(healed) = heal_orphan(config, &job).await? else { return Ok(()) };
        config.metrics.healed(healed.job_type, "redelivery");
        alerts::jobs_healed(config, std::slice::from_ref(&healed), "redelivery").await;
        job = healed;
    }
    if !JobStatus::PROCESSABLE.contains(&job.status) {
        tracing::debug!(job_id = %id, status = %job.status, "Job is not processable; message dropped");
        return Ok(());
    }
    let ready = tokio::select! {
        ready = handler.check_ready_to_process(&job) => ready,
        _ = stop.cancelled() => return Err(EngineError::interrupted(id, job.job_type)),
    };
    if let Err(delay) = ready {
        tracing::info!(job_id = %id, delay_s = delay.as_secs(), "Job not ready; queued again");
        send_job_message(config, &job, JobAction::Process, delay).await?;
        return Ok(());
    }
    if stop.is_cancelled() {
        return Err(EngineError::interrupted(id, job.job_type));
    }

    let prior_status = job.status;
    let mut metadata = job.metadata.clone();
    let locked_at = now_ms();
    metadata.common.process_started_at = Some(locked_at);
    let lock = JobItemUpdates::new().status(JobStatus::LockedForProcessing).metadata(metadata);
    let Some(locked) = transition(config, &job, lock).await? else { return Ok(()) };
    let first_attempt = job.metadata.common.process_started_at.is_none();
    config.metrics.job_picked_up(
        job.job_type,
        (locked_at - job.updated_at).to_std().unwrap_or_default(),
        first_attempt.then(|| (locked_at - job.created_at).to_std().unwrap_or_default()),
    );
    tracing::info!(job_id = %id, job_type = %locked.job_type, internal_id = locked.internal_id, "Processing job");
    super::handoff::record(config, &locked, prior_status).await;

    let started = std::time::Instant::now();
    let sink = AlertSink::of(config);
    let (outcome, worked) = run_handler(handler.clone(), locked.clone(), stop, sink, |h, job| {
        async move { h.process_job(job).await }.boxed()
    })
    .await;
    if let Err(HandlerFailure::Interrupted) = outcome {
        return hand_back(config, &locked, prior_status).await;
    }
    config.metrics.handler_call(
        locked.job_type,
        "process",
        Outcome::of(&outcome),
        started.elapsed(),
    );
    if outcome.is_ok() {
        alerts::job_succeeded(config, locked.job_type);
        if locked.job_type == JobType::SnosRun {
            config.metrics.snos_job_processed(started.elapsed());
        }
    }
    let mut metadata = worked.metadata.clone();
    match outcome {
        Ok(external_id) => {
            let now = now_ms();
            metadata.common.process_attempt_no += 1;
            metadata.common.process_completed_at = Some(now);
            metadata.common.verification_started_at = Some(now);
            metadata.common.verification_attempt_no = 0;
            let updates = JobItemUpdates::new()
                .status(JobStatus::PendingVerification)
                .external_id(external_id)
                .metadata(metadata);
            let Some(pending) = transition(config, &locked, updates).await? else {
                tracing::warn!(job_id = %id, "Job changed while it was processed; outcome dropped");
                return Ok(());
            };
            send_job_message(
                config,
                &pending,
                JobAction::Verify,
                handler.verification_polling_delay(),
            )
            .await
        }
        Err(HandlerFailure::Error(e)) if !e.is_retryable() => {
            let action = e.operator_action();
            fail_job_with(config, &locked, metadata, format!("processing failed: {e}"), action)
                .await
        }
        Err(failure) => {
            let error = failure.into_engine_error(&locked);
            metadata.common.record_failure(format!("{RETRIED_PROCESSING_REASON}: {error}"));
            metadata.common.process_started_at = None;
            let attempt = std::iter::once(&metadata.common.failure_reason)
                .flatten()
                .chain(&metadata.common.previous_failure_reasons)
                .filter(|r| r.starts_with(RETRIED_PROCESSING_REASON))
                .count() as u64;
            let retried = RetriedJob {
                job_type: locked.job_type,
                id,
                internal_id: Some(locked.internal_id),
                action: JobAction::Process,
                attempt,
            };
            let restore = JobItemUpdates::new().status(prior_status).metadata(metadata);
            match transition(config, &locked, restore).await {
                Ok(Some(restored)) => config.metrics.retry(restored.job_type, "automatic"),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(job_id = %id, error = %e, "Could not restore the job's status; the orphan scanner will heal it")
                }
            }
            tracing::warn!(job_id = %id, error = %error, "Processing failed; will retry");
            alerts::job_retrying(config, retried, &error).await;
            Err(error)
        }
    }
}

/// Hands back a job whose processing was cut off by a stop: the status it had before
/// `LockedForProcessing` (`prior`), `process_started_at` cleared and the reason recorded, in one
/// versioned update of the job as it was locked. Counted in `job_retry_count` with
/// `operation_type="shutdown"`.
///
/// Losing the race (another writer changed the job first: an operator, or an instance that
/// healed it) is harmless: the job stays as that writer left it. If the database cannot be
/// reached the job stays locked and the orphan scanner heals it after its lock timeout, as
/// after a crash. Always returns the interrupted error ([`EngineError::is_interrupted`]), so the
/// message is made visible again at once.
async fn hand_back(config: &Config, locked: &JobItem, prior: JobStatus) -> Result<(), EngineError> {
    let interrupted = EngineError::interrupted(locked.id, locked.job_type);
    let mut metadata = locked.metadata.clone();
    metadata.common.record_failure(HANDED_BACK_REASON.to_owned());
    metadata.common.process_started_at = None;
    let restore = JobItemUpdates::new().status(prior).metadata(metadata);
    match transition(config, locked, restore).await {
        Ok(Some(restored)) => {
            config.metrics.retry(restored.job_type, "shutdown");
            tracing::info!(job_id = %locked.id, job_type = %locked.job_type, internal_id = locked.internal_id, status = %prior, "Stopping: job handed back for another instance");
        }
        Ok(None) => {
            tracing::info!(job_id = %locked.id, job_type = %locked.job_type, "Stopping: the job changed meanwhile; left as it is");
        }
        Err(e) => {
            tracing::warn!(job_id = %locked.id, job_type = %locked.job_type, error = %e, "Stopping: could not hand the job back; the orphan scanner heals it after its lock timeout");
        }
    }
    Err(interrupted)
}

/// How the failure reason of a processing attempt that is retried starts.
const RETRIED_PROCESSING_REASON: &str = "processing attempt failed";

/// The failure reason recorded on a job handed back at shutdown.
pub const HANDED_BACK_REASON: &str =
    "handed back: processing interrupted because the orchestrator was stopping";

/// Verifies a job: `Completed` when verified, back to processing or `Failed` when rejected,
/// polled again or `VerificationTimeout` while pending.
///
/// The same as [`verify_job_until`] with a stop that never comes.
pub async fn verify_job(config: &Config, id: Uuid) -> Result<(), EngineError> {
    verify_job_until(config, id, &CancellationToken::new()).await
}

/// [`verify_job`], cut off when `stop` is cancelled during the handler's check: a verification
/// holds no lock and changes nothing until its outcome is known, so nothing is restored; the
/// caller gets the interrupted error ([`EngineError::is_interrupted`]) and makes the message
/// visible again at once; the next instance checks again (one poll earlier than the polling
/// delay, which is harmless).
pub async fn verify_job_until(
    config: &Config,
    id: Uuid,
    stop: &CancellationToken,
) -> Result<(), EngineError> {
    let job = load(config, id).await?;
    if !JobStatus::VERIFIABLE.contains(&job.status) {
        tracing::debug!(job_id = %id, status = %job.status, "Job is not verifiable; message dropped");
        return Ok(());
    }
    let interrupted = || {
        tracing::info!(job_id = %id, job_type = %job.job_type, internal_id = job.internal_id, "Stopping: verification cut off; its message is visible again at once");
        Err(EngineError::interrupted(id, job.job_type))
    };
    if stop.is_cancelled() {
        return interrupted();
    }
    let handler = handler(config, job.job_type)?;
    let started = std::time::Instant::now();
    let sink = AlertSink::of(config);
    let (outcome, worked) = run_handler(handler.clone(), job.clone(), stop, sink, |h, job| {
        async move { h.verify_job(job).await }.boxed()
    })
    .await;
    if let Err(HandlerFailure::Interrupted) = outcome {
        return interrupted();
    }
    config.metrics.handler_call(job.job_type, "verify", Outcome::of(&outcome), started.elapsed());
    if outcome.is_ok() {
        alerts::job_succeeded(config, job.job_type);
    }
    let mut metadata = worked.metadata.clone();
    match outcome {
        Ok(JobVerificationStatus::Verified) => {
            metadata.common.verification_completed_at = Some(now_ms());
            let updates = JobItemUpdates::new().status(JobStatus::Completed).metadata(metadata);
            let Some(done) = transition(config, &job, updates).await? else { return Ok(()) };
            tracing::info!(job_id = %id, job_type = %job.job_type, internal_id = job.internal_id, "Job completed");
            let e2e = (Utc::now() - done.created_at).to_std().ok();
            config.metrics.completed(job.job_type, stage_time(&done), e2e);
            config.metrics.job_done(job.job_type, work_time(&done), e2e);
            config.metrics.block_state(job.job_type, last_block(&done));
            if let Some(next) = next_stage(config.layer, job.job_type) {
                if let Err(e) = send_trigger(config, next).await {
                    tracing::warn!(error = %e, trigger = %next, "Could not chain the next stage; cron will run it");
                }
            }
            Ok(())
        }
        Ok(JobVerificationStatus::Rejected(reason))
            if metadata.common.process_attempt_no < handler.max_process_attempts() =>
        {
            metadata.common.record_failure(format!("verification rejected: {reason}"));
            let updates =
                JobItemUpdates::new().status(JobStatus::VerificationFailed).metadata(metadata);
            let Some(failed) = transition(config, &job, updates).await? else { return Ok(()) };
            tracing::warn!(job_id = %id, %reason, "Verification rejected; processing again");
            send_job_message(config, &failed, JobAction::Process, Duration::ZERO).await
        }
        Ok(JobVerificationStatus::Rejected(reason)) => {
            fail_job(config, &job, metadata, format!("verification rejected: {reason}")).await
        }
        Ok(JobVerificationStatus::Pending) => {
            metadata.common.verification_attempt_no += 1;
            if metadata.common.verification_attempt_no < handler.max_verification_attempts() {
                let poll = JobItemUpdates::new().metadata(metadata);
                let Some(pending) = transition(config, &job, poll).await? else { return Ok(()) };
                return send_job_message(
                    config,
                    &pending,
                    JobAction::Verify,
                    handler.verification_polling_delay(),
                )
                .await;
            }
            let reason = format!(
                "verification still pending after {} attempts",
                metadata.common.verification_attempt_no
            );
            metadata.common.record_failure(reason.clone());
            let updates =
                JobItemUpdates::new().status(JobStatus::VerificationTimeout).metadata(metadata);
            let Some(timed_out) = transition(config, &job, updates).await? else { return Ok(()) };
            alert(
                config,
                &timed_out,
                AlertSeverity::Critical,
                "Job verification timed out",
                &reason,
            )
            .await;
            Ok(())
        }
        Err(HandlerFailure::Error(e)) if !e.is_retryable() => {
            let action = e.operator_action();
            fail_job_with(config, &job, metadata, format!("verification failed: {e}"), action).await
        }
        Err(failure) => {
            let error = failure.into_engine_error(&job);
            let retried = RetriedJob {
                job_type: job.job_type,
                id,
                internal_id: Some(job.internal_id),
                action: JobAction::Verify,
                attempt: job.metadata.common.verification_attempt_no + 1,
            };
            alerts::job_retrying(config, retried, &error).await;
            Err(error)
        }
    }
}

/// Moves an orphaned `LockedForProcessing` job back to `Created`.
///
/// # Errors
/// `Database(UpdateFailed)` when another writer changed the job first (it is not orphaned).
pub async fn heal(config: &Config, job: &JobItem) -> Result<JobItem, EngineError> {
    heal_orphan(config, job).await?.ok_or_else(|| changed_first(job))
}

/// [`heal`]; `None` when another writer changed the job first.
async fn heal_orphan(config: &Config, job: &JobItem) -> Result<Option<JobItem>, EngineError> {
    let mut metadata = job.metadata.clone();
    let since =
        metadata.common.process_started_at.map_or("an unknown time".to_owned(), |t| t.to_rfc3339());
    metadata
        .common
        .record_failure(format!("healed: orphaned in LockedForProcessing since {since}"));
    metadata.common.process_started_at = None;
    let updates = JobItemUpdates::new().status(JobStatus::Created).metadata(metadata);
    let healed = transition(config, job, updates).await?;
    if healed.is_some() {
        tracing::warn!(job_id = %job.id, job_type = %job.job_type, internal_id = job.internal_id, "Healed an orphaned job");
    }
    Ok(healed)
}

/// Marks a job `Failed` with `reason` and alerts. When another writer changed the job first,
/// nothing happens: the job is as that writer left it.
pub async fn fail_job(
    config: &Config,
    job: &JobItem,
    metadata: JobMetadata,
    reason: String,
) -> Result<(), EngineError> {
    fail_job_with(config, job, metadata, reason, None).await
}

/// [`fail_job`]; with an operator `action` (a failure only an operator can fix, such as a
/// prover account out of credits) the alert is that action's own — its kind, title and what to
/// do — instead of the generic "Job failed".
async fn fail_job_with(
    config: &Config,
    job: &JobItem,
    mut metadata: JobMetadata,
    reason: String,
    action: Option<OperatorAction>,
) -> Result<(), EngineError> {
    metadata.common.record_failure(reason.clone());
    let updates = JobItemUpdates::new().status(JobStatus::Failed).metadata(metadata);
    let Some(failed) = transition(config, job, updates).await? else { return Ok(()) };
    match action {
        Some(action) => {
            tracing::error!(job_id = %job.id, job_type = %job.job_type, internal_id = job.internal_id, %reason, alert = action.alert, "Job failed; an operator must act: {}", action.action);
            crate::worker::alerts::operator_action(config, &failed, action, &reason).await;
        }
        None => {
            tracing::error!(job_id = %job.id, job_type = %job.job_type, internal_id = job.internal_id, %reason, "Job failed");
            alert(config, &failed, AlertSeverity::Critical, "Job failed", &reason).await;
        }
    }
    Ok(())
}

/// Sends an alert about a job with everything an operator needs to act.
pub async fn alert(
    config: &Config,
    job: &JobItem,
    severity: AlertSeverity,
    title: &str,
    reason: &str,
) {
    let alert = Alert {
        severity,
        title: format!("{title}: {} {} ({})", job.job_type, job.internal_id, job.id),
        body: job_alert_body(job, reason),
    };
    let sent = config.alerts().send_alert(&alert).await;
    config.metrics.alert("job", sent.is_ok());
    if let Err(e) = sent {
        tracing::error!(error = %e, job_id = %job.id, "Could not send alert");
    }
}

/// The body of an alert about `job`: its identity, status, `reason` and earlier failures.
pub fn job_alert_body(job: &JobItem, reason: &str) -> String {
    let common = &job.metadata.common;
    format!(
        "job_id: {}\njob_type: {}\ninternal_id: {}\nstatus: {}\nexternal_id: {}\nreason: {}\nprevious_failures: {}",
        job.id,
        job.job_type,
        job.internal_id,
        job.status,
        job.external_id,
        reason,
        if common.previous_failure_reasons.is_empty() {
            "none".to_owned()
        } else {
            common.previous_failure_reasons.join(" | ")
        },
    )
}

/// A dead-lettered job message: the job is marked `Failed` if the message still applies to it.
///
/// `action` is what the message asked for ([`JOB_ACTION_ATTRIBUTE`]). A job can have more than
/// one message in flight (the orphan scanner queues a healed or waiting job again while an
/// older message of it is still hidden or backing off), and one of them may run out of
/// receives after another already moved the job on. Such a stale message is dropped: a
/// `Process` message fails only a job that is still waiting to be processed, or locked by a
/// worker that died (the lock is stale); a `Verify` message only a job still waiting to be
/// verified. A message without the attribute (sent by an older version) fails any job not yet
/// `Completed` or `Failed`, as the reference does.
pub async fn handle_dead_letter(
    config: &Config,
    body: &str,
    action: Option<JobAction>,
    reason: Option<&str>,
) -> Result<(), EngineError> {
    let Ok(JobQueueMessage { id }) = serde_json::from_str::<JobQueueMessage>(body) else {
        let alert = Alert {
            severity: AlertSeverity::Warning,
            title: "Unreadable message in the dead-letter queue".to_owned(),
            body: format!("reason: {}\nbody: {body}", reason.unwrap_or("not a job message")),
        };
        if let Err(e) = config.alerts().send_alert(&alert).await {
            tracing::error!(error = %e, "Could not send alert");
        }
        return Ok(());
    };
    let Some(job) = config.database().get_job_by_id(id).await? else {
        let alert = Alert {
            severity: AlertSeverity::Warning,
            title: format!("Dead-lettered message for unknown job {id}"),
            body: format!("reason: {}\nbody: {body}", reason.unwrap_or("job not found")),
        };
        if let Err(e) = config.alerts().send_alert(&alert).await {
            tracing::error!(error = %e, "Could not send alert");
        }
        return Ok(());
    };
    if job.status.is_terminal() {
        return Ok(());
    }
    let applies = match action {
        Some(JobAction::Process) => {
            JobStatus::PROCESSABLE.contains(&job.status)
                || (job.status == JobStatus::LockedForProcessing && is_stale(config, &job))
        }
        Some(JobAction::Verify) => JobStatus::VERIFIABLE.contains(&job.status),
        None => true,
    };
    if !applies {
        tracing::info!(job_id = %id, job_type = %job.job_type, internal_id = job.internal_id, status = %job.status, action = ?action, "Dead-lettered message no longer applies to its job (a stale duplicate); dropped");
        config.metrics.stale_dead_letter(job.job_type);
        return Ok(());
    }
    let last =
        job.metadata.common.failure_reason.clone().unwrap_or_else(|| "none recorded".to_owned());
    let message = action.map_or_else(|| "message".to_owned(), |a| format!("{a} message"));
    let why = match reason {
        Some(r) => format!("{message} dead-lettered: {r}; last failure: {last}"),
        None => format!(
            "{message} dead-lettered after its redelivery limit of failed receives; last failure: {last}"
        ),
    };
    fail_job(config, &job, job.metadata.clone(), why).await
}

/// Operator retry of a `Failed` job: `PendingRetry` with the attempt counter reset, queued for
/// processing (on the priority queue when `priority`).
pub async fn retry_job(config: &Config, id: Uuid, priority: bool) -> Result<JobItem, EngineError> {
    let job = load(config, id).await?;
    if job.status != JobStatus::Failed {
        return Err(EngineError::InvalidStatus {
            id,
            status: job.status,
            action: "retry",
            expected: "Failed",
        });
    }
    let mut metadata = job.metadata.clone();
    metadata.common.process_attempt_no = 0;
    metadata.common.process_retry_attempt_no += 1;
    let updates = JobItemUpdates::new().status(JobStatus::PendingRetry).metadata(metadata);
    let retried = transition(config, &job, updates).await?.ok_or_else(|| changed_first(&job))?;
    config.metrics.retry(job.job_type, "operator");
    if priority {
        send_to_queue(config, QueueType::PriorityProcessingQueue, id, Duration::ZERO).await?;
    } else {
        send_job_message(config, &retried, JobAction::Process, Duration::ZERO).await?;
    }
    Ok(retried)
}

/// Forces a new verification round: `PendingVerification` with the counter reset.
pub async fn force_verify(
    config: &Config,
    id: Uuid,
    priority: bool,
) -> Result<JobItem, EngineError> {
    let job = load(config, id).await?;
    let handler = handler(config, job.job_type)?;
    let mut metadata = job.metadata.clone();
    metadata.common.verification_attempt_no = 0;
    metadata.common.verification_retry_attempt_no += 1;
    let updates = JobItemUpdates::new().status(JobStatus::PendingVerification).metadata(metadata);
    let pending = transition(config, &job, updates).await?.ok_or_else(|| changed_first(&job))?;
    if priority {
        send_to_queue(config, QueueType::PriorityVerificationQueue, id, Duration::ZERO).await?;
    } else {
        send_job_message(config, &pending, JobAction::Verify, handler.verification_polling_delay())
            .await?;
    }
    Ok(pending)
}

/// Queues a job for processing again without changing it (operator action).
pub async fn requeue_process(
    config: &Config,
    id: Uuid,
    priority: bool,
) -> Result<JobItem, EngineError> {
    let job = load(config, id).await?;
    let queue = if priority {
        QueueType::PriorityProcessingQueue
    } else {
        QueueType::for_job(job.job_type, JobAction::Process)
    };
    send_to_queue(config, queue, id, Duration::ZERO).await?;
    Ok(job)
}

/// Time from processing done to verification done, when both are recorded.
fn stage_time(job: &JobItem) -> Option<Duration> {
    let c = &job.metadata.common;
    (c.verification_completed_at? - c.verification_started_at?).to_std().ok()
}

/// Processing start to verification done of a completed job.
fn work_time(job: &JobItem) -> Option<Duration> {
    let c = &job.metadata.common;
    (c.verification_completed_at? - c.process_started_at?).to_std().ok()
}

/// The last block a completed job covers: a SnosRun's batch end block, else its internal id
/// (its block, or its batch for the batch-keyed types), as the reference's `block_state`.
fn last_block(job: &JobItem) -> u64 {
    match &job.metadata.specific {
        JobSpecificMetadata::Snos(m) => m.end_block,
        _ => job.internal_id,
    }
}

impl Outcome {
    fn of<T>(outcome: &Result<T, HandlerFailure>) -> Self {
        if outcome.is_ok() {
            Self::Success
        } else {
            Self::Failure
        }
    }
}

enum HandlerFailure {
    Error(JobError),
    Panic(String),
    /// Cut off by a stop (or by the runtime shutting down) before it finished.
    Interrupted,
}

impl HandlerFailure {
    fn into_engine_error(self, job: &JobItem) -> EngineError {
        match self {
            Self::Error(source) => {
                EngineError::Handler { id: job.id, job_type: job.job_type, source }
            }
            Self::Panic(message) => {
                EngineError::Panicked { id: job.id, job_type: job.job_type, message }
            }
            Self::Interrupted => EngineError::interrupted(job.id, job.job_type),
        }
    }
}

/// Runs a handler call in its own task so a panic becomes an error instead of killing the
/// worker; returns the outcome and the job as the handler left it.
///
/// When `stop` is cancelled first, the task is aborted and the outcome is
/// [`HandlerFailure::Interrupted`] with the job as it was given — unless the call had already
/// finished, whose outcome is then returned as usual.
///
/// The handler can raise alerts of its own through `alerts` ([`alerts::from_handler`]).
async fn run_handler<T, F>(
    handler: Arc<dyn JobHandlerTrait>,
    job: JobItem,
    stop: &CancellationToken,
    alerts: AlertSink,
    call: F,
) -> (Result<T, HandlerFailure>, JobItem)
where
    T: Send + 'static,
    F: for<'a> FnOnce(
            Arc<dyn JobHandlerTrait>,
            &'a mut JobItem,
        ) -> futures::future::BoxFuture<'a, Result<T, JobError>>
        + Send
        + 'static,
{
    let original = job.clone();
    let mut task = tokio::spawn(async move {
        let mut job = job;
        let outcome = alerts::with_handler_alerts(alerts, call(handler, &mut job)).await;
        (outcome, job)
    });
    let joined = tokio::select! {
        joined = &mut task => joined,
        _ = stop.cancelled() => {
            task.abort();
            task.await
        }
    };
    match joined {
        Ok((outcome, job)) => (outcome.map_err(HandlerFailure::Error), job),
        Err(join) if join.is_cancelled() => (Err(HandlerFailure::Interrupted), original),
        Err(join) => {
            let message = match join.try_into_panic() {
                Ok(payload) => payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_owned()),
                Err(_) => "task cancelled".to_owned(),
            };
            (Err(HandlerFailure::Panic(message)), original)
        }
    }
}
