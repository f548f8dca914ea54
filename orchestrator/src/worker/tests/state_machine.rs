//! Every transition of the job state machine (reference §3.1), one table row each.

// The rstest case table passes one argument per column.
#![allow(clippy::too_many_arguments)]

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use orchestrator_utils::Retryable;
use rstest::rstest;

use super::{ids, snos_metadata, Check, Harness, Step, TestHandler};
use crate::{
    types::{
        jobs::{JobItem, JobItemUpdates, JobStatus, JobType},
        queue::{
            JobAction, QueueType, WorkerTriggerType, JOB_ACTION_ATTRIBUTE, QUEUE_MAX_RECEIVE_COUNT,
        },
    },
    worker::{error::EngineError, event_worker, service},
};

#[derive(Debug, Clone, Copy)]
enum Action {
    Process,
    Verify,
    /// The failure queue handles a dead-lettered message that asked for this action (`None`:
    /// a message of an older version, without the action attribute).
    DeadLetter(Option<JobAction>),
    Retry,
    ForceVerify,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Ok,
    Retryable,
    Refused,
}

/// Puts a fresh job into `status` (and for `LockedForProcessing`, started `locked_age` ago).
async fn job_in(h: &Harness, status: JobStatus, locked_age: Option<Duration>) -> JobItem {
    let job = service::create_job(&h.config, JobType::SnosRun, 1, snos_metadata(1))
        .await
        .expect("create");
    h.drain(QueueType::JobProcessing(JobType::SnosRun)).await;
    if status == JobStatus::Created {
        return job;
    }
    let mut metadata = job.metadata.clone();
    if let Some(age) = locked_age {
        metadata.common.process_started_at =
            Some(Utc::now() - chrono::Duration::from_std(age).unwrap());
    }
    if matches!(
        status,
        JobStatus::PendingVerification
            | JobStatus::VerificationTimeout
            | JobStatus::VerificationFailed
    ) {
        metadata.common.process_attempt_no = 1;
    }
    h.config
        .database()
        .update_job(&job, JobItemUpdates::new().status(status).metadata(metadata))
        .await
        .expect("set status")
}

#[rstest]
#[case::created_processed(JobStatus::Created, None, Action::Process, vec![Step::Ok("ext-1")], vec![], JobStatus::PendingVerification, Some(QueueType::JobVerification(JobType::SnosRun)), 0, Outcome::Ok)]
#[case::created_retryable_error(JobStatus::Created, None, Action::Process, vec![Step::Retry], vec![], JobStatus::Created, None, 1, Outcome::Retryable)]
#[case::created_fatal_error(JobStatus::Created, None, Action::Process, vec![Step::Fatal], vec![], JobStatus::Failed, None, 1, Outcome::Ok)]
#[case::created_panic(JobStatus::Created, None, Action::Process, vec![Step::Panic], vec![], JobStatus::Created, None, 1, Outcome::Retryable)]
#[case::verification_failed_processed(JobStatus::VerificationFailed, None, Action::Process, vec![Step::Ok("ext-2")], vec![], JobStatus::PendingVerification, Some(QueueType::JobVerification(JobType::SnosRun)), 0, Outcome::Ok)]
#[case::verification_failed_retryable_restores(JobStatus::VerificationFailed, None, Action::Process, vec![Step::Retry], vec![], JobStatus::VerificationFailed, None, 1, Outcome::Retryable)]
#[case::pending_retry_processed(JobStatus::PendingRetry, None, Action::Process, vec![Step::Ok("ext-3")], vec![], JobStatus::PendingVerification, Some(QueueType::JobVerification(JobType::SnosRun)), 0, Outcome::Ok)]
#[case::locked_fresh_is_a_duplicate(JobStatus::LockedForProcessing, Some(Duration::from_secs(1)), Action::Process, vec![], vec![], JobStatus::LockedForProcessing, None, 0, Outcome::Ok)]
#[case::locked_stale_is_healed_and_processed(JobStatus::LockedForProcessing, Some(Duration::from_secs(3600)), Action::Process, vec![Step::Ok("ext-4")], vec![], JobStatus::PendingVerification, Some(QueueType::JobVerification(JobType::SnosRun)), 1, Outcome::Ok)]
#[case::completed_is_not_processed(JobStatus::Completed, None, Action::Process, vec![], vec![], JobStatus::Completed, None, 0, Outcome::Ok)]
#[case::pending_verification_is_not_processed(JobStatus::PendingVerification, None, Action::Process, vec![], vec![], JobStatus::PendingVerification, None, 0, Outcome::Ok)]
#[case::verified(JobStatus::PendingVerification, None, Action::Verify, vec![], vec![Check::Verified], JobStatus::Completed, Some(QueueType::WorkerTrigger), 0, Outcome::Ok)]
#[case::rejected_with_attempts_left(JobStatus::PendingVerification, None, Action::Verify, vec![], vec![Check::Rejected], JobStatus::VerificationFailed, Some(QueueType::JobProcessing(JobType::SnosRun)), 0, Outcome::Ok)]
#[case::pending_polls_again(JobStatus::PendingVerification, None, Action::Verify, vec![], vec![Check::Pending], JobStatus::PendingVerification, Some(QueueType::JobVerification(JobType::SnosRun)), 0, Outcome::Ok)]
#[case::verify_retryable_error(JobStatus::PendingVerification, None, Action::Verify, vec![], vec![Check::Retry], JobStatus::PendingVerification, None, 1, Outcome::Retryable)]
#[case::timeout_verified_later(JobStatus::VerificationTimeout, None, Action::Verify, vec![], vec![Check::Verified], JobStatus::Completed, Some(QueueType::WorkerTrigger), 0, Outcome::Ok)]
#[case::created_is_not_verified(JobStatus::Created, None, Action::Verify, vec![], vec![], JobStatus::Created, None, 0, Outcome::Ok)]
#[case::dead_letter_fails_a_waiting_job(JobStatus::Created, None, Action::DeadLetter(None), vec![], vec![], JobStatus::Failed, None, 1, Outcome::Ok)]
#[case::dead_letter_fails_a_locked_job(JobStatus::LockedForProcessing, Some(Duration::from_secs(1)), Action::DeadLetter(None), vec![], vec![], JobStatus::Failed, None, 1, Outcome::Ok)]
#[case::dead_letter_ignores_completed(JobStatus::Completed, None, Action::DeadLetter(None), vec![], vec![], JobStatus::Completed, None, 0, Outcome::Ok)]
#[case::dead_process_fails_a_waiting_job(JobStatus::PendingRetry, None, Action::DeadLetter(Some(JobAction::Process)), vec![], vec![], JobStatus::Failed, None, 1, Outcome::Ok)]
#[case::dead_process_fails_an_orphan(JobStatus::LockedForProcessing, Some(Duration::from_secs(3600)), Action::DeadLetter(Some(JobAction::Process)), vec![], vec![], JobStatus::Failed, None, 1, Outcome::Ok)]
#[case::dead_process_spares_a_live_lock(JobStatus::LockedForProcessing, Some(Duration::from_secs(1)), Action::DeadLetter(Some(JobAction::Process)), vec![], vec![], JobStatus::LockedForProcessing, None, 0, Outcome::Ok)]
#[case::dead_process_spares_a_verifying_job(JobStatus::PendingVerification, None, Action::DeadLetter(Some(JobAction::Process)), vec![], vec![], JobStatus::PendingVerification, None, 0, Outcome::Ok)]
#[case::dead_verify_fails_a_verifying_job(JobStatus::PendingVerification, None, Action::DeadLetter(Some(JobAction::Verify)), vec![], vec![], JobStatus::Failed, None, 1, Outcome::Ok)]
#[case::dead_verify_spares_a_waiting_job(JobStatus::Created, None, Action::DeadLetter(Some(JobAction::Verify)), vec![], vec![], JobStatus::Created, None, 0, Outcome::Ok)]
#[case::retry_of_failed(JobStatus::Failed, None, Action::Retry, vec![], vec![], JobStatus::PendingRetry, Some(QueueType::JobProcessing(JobType::SnosRun)), 0, Outcome::Ok)]
#[case::retry_refused_unless_failed(JobStatus::Created, None, Action::Retry, vec![], vec![], JobStatus::Created, None, 0, Outcome::Refused)]
#[case::force_verify(JobStatus::Failed, None, Action::ForceVerify, vec![], vec![], JobStatus::PendingVerification, Some(QueueType::JobVerification(JobType::SnosRun)), 0, Outcome::Ok)]
#[tokio::test]
#[allow(clippy::too_many_arguments)]
async fn transition(
    #[case] start: JobStatus,
    #[case] locked_age: Option<Duration>,
    #[case] action: Action,
    #[case] process: Vec<Step>,
    #[case] verify: Vec<Check>,
    #[case] want_status: JobStatus,
    #[case] want_queued: Option<QueueType>,
    #[case] want_alerts: usize,
    #[case] want_outcome: Outcome,
) {
    let panics = matches!(process.first(), Some(Step::Panic));
    let handler = Arc::new(TestHandler::new(JobType::SnosRun, process, verify));
    let h = Harness::new(vec![handler.clone()]).await;
    let job = job_in(&h, start, locked_age).await;

    let result = match action {
        Action::Process => service::process_job(&h.config, job.id).await,
        Action::Verify => service::verify_job(&h.config, job.id).await,
        Action::DeadLetter(action) => {
            let body = format!("{{\"id\":\"{}\"}}", job.id);
            service::handle_dead_letter(&h.config, &body, action, None).await
        }
        Action::Retry => service::retry_job(&h.config, job.id, false).await.map(|_| ()),
        Action::ForceVerify => service::force_verify(&h.config, job.id, false).await.map(|_| ()),
    };
    let outcome = match &result {
        Ok(()) => Outcome::Ok,
        Err(e) if e.is_retryable() => Outcome::Retryable,
        Err(EngineError::InvalidStatus { .. }) => Outcome::Refused,
        Err(e) => panic!("unexpected error {e}"),
    };
    assert_eq!(outcome, want_outcome, "{result:?}");

    let after = h.job(job.id).await;
    assert_eq!(after.status, want_status);
    assert!(after.version >= job.version);
    let titles: Vec<String> = h.alerts.0.lock().unwrap().iter().map(|a| a.title.clone()).collect();
    assert_eq!(titles.len(), want_alerts, "alerts: {:?}", h.alerts.0.lock().unwrap());
    // A retried failure is the start of a retry streak (the scripted errors name no upstream;
    // a panic says so); a stale lock healed on redelivery is a healed orphan.
    match (outcome, panics) {
        (Outcome::Retryable, true) => {
            assert_eq!(titles, ["SnosRun jobs retrying: handler panic"])
        }
        (Outcome::Retryable, _) => assert_eq!(titles, ["SnosRun jobs retrying"]),
        _ if matches!(action, Action::Process) && locked_age == Some(Duration::from_secs(3600)) => {
            assert_eq!(titles, ["Healed 1 orphaned job(s): SnosRun"])
        }
        _ => {}
    }

    // Exactly the expected follow-up message, nothing else on the job queues.
    for queue in [
        QueueType::JobProcessing(JobType::SnosRun),
        QueueType::JobVerification(JobType::SnosRun),
        QueueType::WorkerTrigger,
    ] {
        let sent = h.drain(queue).await;
        if Some(queue) == want_queued {
            assert_eq!(sent.len(), 1, "one message on {queue}");
            if queue == QueueType::WorkerTrigger {
                assert_eq!(
                    sent[0].body,
                    WorkerTriggerType::Stage(JobType::ProofCreation).to_string()
                );
            } else {
                assert_eq!(ids(&sent), vec![job.id]);
            }
        } else {
            assert!(sent.is_empty(), "unexpected message on {queue}: {sent:?}");
        }
    }

    // Bookkeeping that goes with each outcome.
    let common = &after.metadata.common;
    match (action, want_status) {
        (Action::Process, JobStatus::PendingVerification)
            if start != JobStatus::PendingVerification =>
        {
            assert!(after.external_id.to_string().starts_with("ext-"));
            assert!(common.process_completed_at.is_some());
            assert_eq!(common.verification_attempt_no, 0);
            assert_eq!(handler.calls.lock().unwrap().as_slice(), ["process"]);
        }
        (Action::Process, _) if outcome == Outcome::Retryable => {
            assert!(common
                .failure_reason
                .as_deref()
                .unwrap_or_default()
                .contains("processing attempt failed"));
            assert!(common.process_started_at.is_none());
        }
        (Action::Verify, JobStatus::PendingVerification) if outcome == Outcome::Ok => {
            assert_eq!(common.verification_attempt_no, 1)
        }
        (Action::Retry, JobStatus::PendingRetry) => {
            assert_eq!(common.process_attempt_no, 0);
            assert_eq!(common.process_retry_attempt_no, 1);
        }
        (Action::ForceVerify, _) => assert_eq!(common.verification_retry_attempt_no, 1),
        (_, JobStatus::Failed) => assert!(common.failure_reason.is_some()),
        _ => {}
    }
    // An orphan is healed on redelivery; a dead letter fails it as it is.
    if locked_age == Some(Duration::from_secs(3600)) && !matches!(action, Action::DeadLetter(_)) {
        assert!(common
            .previous_failure_reasons
            .iter()
            .chain(common.failure_reason.iter())
            .any(|r| r.starts_with("healed")));
    }
}

#[tokio::test]
async fn rejection_after_the_last_attempt_fails_the_job() {
    let handler = Arc::new(TestHandler::new(
        JobType::SnosRun,
        vec![Step::Ok("a"), Step::Ok("b")],
        vec![Check::Rejected, Check::Rejected],
    ));
    let h = Harness::new(vec![handler.clone()]).await;
    let job = service::create_job(&h.config, JobType::SnosRun, 1, snos_metadata(1)).await.unwrap();
    service::process_job(&h.config, job.id).await.unwrap();
    service::verify_job(&h.config, job.id).await.unwrap();
    assert_eq!(h.job(job.id).await.status, JobStatus::VerificationFailed);
    service::process_job(&h.config, job.id).await.unwrap();
    service::verify_job(&h.config, job.id).await.unwrap();
    let after = h.job(job.id).await;
    assert_eq!(after.status, JobStatus::Failed);
    assert_eq!(after.metadata.common.process_attempt_no, 2);
    assert_eq!(after.metadata.common.previous_failure_reasons.len(), 1);
    let alerts = h.alerts.0.lock().unwrap();
    assert_eq!(alerts.len(), 1);
    assert!(
        alerts[0].body.contains(&job.id.to_string()) && alerts[0].body.contains("proof invalid")
    );
}

#[tokio::test]
async fn pending_until_the_last_attempt_times_out() {
    let handler =
        Arc::new(TestHandler::new(JobType::SnosRun, vec![Step::Ok("a")], vec![Check::Pending; 3]));
    let h = Harness::new(vec![handler]).await;
    let job = service::create_job(&h.config, JobType::SnosRun, 1, snos_metadata(1)).await.unwrap();
    service::process_job(&h.config, job.id).await.unwrap();
    for _ in 0..3 {
        service::verify_job(&h.config, job.id).await.unwrap();
    }
    let after = h.job(job.id).await;
    assert_eq!(after.status, JobStatus::VerificationTimeout);
    assert_eq!(after.metadata.common.verification_attempt_no, 3);
    assert_eq!(h.alerts.0.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn not_ready_requeues_with_the_handler_delay_without_locking() {
    let handler = Arc::new(TestHandler::new(JobType::SnosRun, vec![], vec![]));
    *handler.not_ready_for.lock().unwrap() = Some(Duration::from_secs(60));
    let h = Harness::new(vec![handler.clone()]).await;
    let job = service::create_job(&h.config, JobType::SnosRun, 1, snos_metadata(1)).await.unwrap();
    h.drain(QueueType::JobProcessing(JobType::SnosRun)).await;
    service::process_job(&h.config, job.id).await.unwrap();
    let after = h.job(job.id).await;
    assert_eq!((after.status, after.version), (JobStatus::Created, job.version));
    // The message is delayed: not visible now.
    assert!(h.drain(QueueType::JobProcessing(JobType::SnosRun)).await.is_empty());
    assert_eq!(
        h.config.queue().approximate_len(QueueType::JobProcessing(JobType::SnosRun)).await.unwrap(),
        0
    );
    assert!(handler.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn duplicate_create_is_refused_and_changes_nothing() {
    let h = Harness::new(vec![Arc::new(TestHandler::new(JobType::SnosRun, vec![], vec![]))]).await;
    let job = service::create_job(&h.config, JobType::SnosRun, 1, snos_metadata(1)).await.unwrap();
    let err =
        service::create_job(&h.config, JobType::SnosRun, 1, snos_metadata(1)).await.unwrap_err();
    assert!(matches!(err, EngineError::AlreadyExists { internal_id: 1, .. }), "{err}");
    assert_eq!(h.drain(QueueType::JobProcessing(JobType::SnosRun)).await.len(), 1);
    assert_eq!(h.job(job.id).await, job);
}

#[tokio::test]
async fn unknown_job_is_not_retryable_and_missing_handler_is_named() {
    let h = Harness::new(vec![]).await;
    let err = service::process_job(&h.config, uuid::Uuid::new_v4()).await.unwrap_err();
    assert!(matches!(err, EngineError::JobNotFound(_)) && !err.is_retryable());
    let err =
        service::create_job(&h.config, JobType::Aggregator, 1, snos_metadata(1)).await.unwrap_err();
    assert!(err.to_string().contains("no handler for Aggregator"), "{err}");
}

#[tokio::test]
async fn a_retry_streak_alerts_once_until_a_job_of_the_type_succeeds() {
    // Three retried failures (two jobs), a success, a retried failure again.
    let handler = Arc::new(TestHandler::new(
        JobType::SnosRun,
        vec![Step::Retry, Step::Retry, Step::Retry, Step::Ok("a"), Step::Retry],
        vec![],
    ));
    let h = Harness::new(vec![handler]).await;
    let first =
        service::create_job(&h.config, JobType::SnosRun, 1, snos_metadata(1)).await.unwrap();
    let second =
        service::create_job(&h.config, JobType::SnosRun, 2, snos_metadata(2)).await.unwrap();
    for id in [first.id, second.id, first.id] {
        let e = service::process_job(&h.config, id).await.expect_err("retried");
        assert!(e.is_retryable(), "{e}");
    }
    let alerts = h.alerts.0.lock().unwrap().clone();
    assert_eq!(alerts.len(), 1, "one alert for the streak: {alerts:?}");
    assert_eq!(alerts[0].title, "SnosRun jobs retrying");
    assert_eq!(alerts[0].severity, crate::core::client::AlertSeverity::Warning);
    for line in [
        format!("job_id: {}", first.id),
        "internal_id: 1".to_owned(),
        "operation: processing".to_owned(),
        "attempt: 1".to_owned(),
        "error: SnosRun job".to_owned(),
        "rpc down".to_owned(),
    ] {
        assert!(alerts[0].body.contains(&line), "{line:?} missing from {}", alerts[0].body);
    }

    // The second job succeeds: the streak ends; the next failure starts a new one, and the
    // alert counts that job's own attempts (its second failed one).
    service::process_job(&h.config, second.id).await.expect("processed");
    assert_eq!(h.alerts.0.lock().unwrap().len(), 1);
    service::process_job(&h.config, first.id).await.expect_err("retried");
    let alerts = h.alerts.0.lock().unwrap().clone();
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert_eq!(alerts[1].title, "SnosRun jobs retrying");
    assert!(alerts[1].body.contains("attempt: 3"), "{}", alerts[1].body);
    let metrics = orchestrator_test_support::prometheus::Exposition::parse(
        &h.config.metrics.render_prometheus(),
    )
    .unwrap();
    assert_eq!(
        metrics.get("alerts_sent_total", &[("kind", "job_retrying"), ("delivered", "true")]),
        Some(2.0)
    );
}

#[tokio::test]
async fn healed_orphans_alert_once_per_scan_and_at_most_once_a_minute_on_redelivery() {
    let handler = Arc::new(TestHandler::new(JobType::SnosRun, vec![Step::Ok("a"); 2], vec![]));
    let h = Harness::new(vec![handler]).await;
    let stale = Some(Duration::from_secs(3600));
    let mut orphans = Vec::new();
    for index in 1..=2 {
        let job = service::create_job(&h.config, JobType::SnosRun, index, snos_metadata(index))
            .await
            .unwrap();
        orphans.push(lock(&h, job, stale).await);
    }
    // A job locked a moment ago belongs to a live worker: not healed, not listed.
    let live = service::create_job(&h.config, JobType::SnosRun, 3, snos_metadata(3)).await.unwrap();
    let live = lock(&h, live, Some(Duration::from_secs(1))).await;
    h.drain(QueueType::JobProcessing(JobType::SnosRun)).await;

    let report = crate::worker::orphan::scan(&h.config).await.expect("scan");
    assert_eq!(report.healed, 2);
    let alerts = h.alerts.0.lock().unwrap().clone();
    assert_eq!(alerts.len(), 1, "one alert per scan: {alerts:?}");
    assert_eq!(alerts[0].title, "Healed 2 orphaned job(s): SnosRun");
    assert_eq!(alerts[0].severity, crate::core::client::AlertSeverity::Warning);
    for job in &orphans {
        assert!(alerts[0].body.contains(&job.id.to_string()), "{}", alerts[0].body);
    }
    assert!(!alerts[0].body.contains(&live.id.to_string()), "{}", alerts[0].body);
    assert!(alerts[0].body.contains("found by: scanner"), "{}", alerts[0].body);
    assert!(alerts[0].body.contains("healed: orphaned in LockedForProcessing since"));

    // Two more orphans healed on redelivery within the minute: healed and counted, not alerted
    // again.
    for index in 4..=5 {
        let job = service::create_job(&h.config, JobType::SnosRun, index, snos_metadata(index))
            .await
            .unwrap();
        let job = lock(&h, job, stale).await;
        service::process_job(&h.config, job.id).await.expect("healed and processed");
        assert_eq!(h.job(job.id).await.status, JobStatus::PendingVerification);
    }
    assert_eq!(h.alerts.0.lock().unwrap().len(), 1);
    let metrics = orchestrator_test_support::prometheus::Exposition::parse(
        &h.config.metrics.render_prometheus(),
    )
    .unwrap();
    assert_eq!(
        metrics.get("alerts_sent_total", &[("kind", "job_healed"), ("delivered", "true")]),
        Some(1.0)
    );
    assert_eq!(
        metrics.get(
            "healed_jobs_total",
            &[("operation_job_type", "SnosRun"), ("source", "redelivery")]
        ),
        Some(2.0)
    );
}

/// Puts `job` in `LockedForProcessing`, started `age` ago.
async fn lock(h: &Harness, job: JobItem, age: Option<Duration>) -> JobItem {
    let mut metadata = job.metadata.clone();
    metadata.common.process_started_at =
        age.map(|age| Utc::now() - chrono::Duration::from_std(age).unwrap());
    h.config
        .database()
        .update_job(
            &job,
            JobItemUpdates::new().status(JobStatus::LockedForProcessing).metadata(metadata),
        )
        .await
        .expect("lock")
}

/// A job can have two process messages in flight: the orphan scanner queues a healed job again
/// while the message of its dead worker still backs off. When the new message moves the job on
/// and the old one then runs out of receives, the dead-lettered duplicate must not fail the job
/// (chaos seed 16008042805367969561 failed a StateTransition job this way). On the real
/// embedded queue, through the failure queue's worker.
#[tokio::test]
async fn a_dead_lettered_duplicate_fails_no_job_that_moved_on() {
    let handler = Arc::new(TestHandler::new(JobType::SnosRun, vec![Step::Ok("ext")], vec![]));
    let h = Harness::new(vec![handler]).await;
    let queue = QueueType::JobProcessing(JobType::SnosRun);
    let job = service::create_job(&h.config, JobType::SnosRun, 1, snos_metadata(1)).await.unwrap();

    // The first message fails all its receives; the last failure backs it off for a moment.
    let backoff = Duration::from_millis(300);
    for n in 1..=QUEUE_MAX_RECEIVE_COUNT {
        let old = h.config.queue().receive(queue).await.unwrap().expect("the first message");
        assert_eq!(old.receive_count, n);
        let delay = if n == QUEUE_MAX_RECEIVE_COUNT { backoff } else { Duration::ZERO };
        h.config.queue().nack(queue, &old, delay).await.unwrap();
    }
    // Meanwhile a second message is sent and processed: the job waits for verification.
    service::send_job_message(&h.config, &job, JobAction::Process, Duration::ZERO).await.unwrap();
    let new = h.config.queue().receive(queue).await.unwrap().expect("the second message");
    assert_eq!(new.receive_count, 1, "the second message, not the backed-off first");
    assert_eq!(new.attributes.get(JOB_ACTION_ATTRIBUTE).map(String::as_str), Some("Process"));
    event_worker::handle_delivery(&h.config, queue, new).await;
    assert_eq!(h.job(job.id).await.status, JobStatus::PendingVerification);

    // The first message's next receive moves it to the failure queue, action attribute kept.
    tokio::time::sleep(backoff + Duration::from_millis(100)).await;
    assert!(h.config.queue().receive(queue).await.unwrap().is_none(), "dead-lettered instead");
    let dead = h
        .config
        .queue()
        .receive(QueueType::JobHandleFailure)
        .await
        .unwrap()
        .expect("the first message in the failure queue");
    assert_eq!(dead.attributes.get(JOB_ACTION_ATTRIBUTE).map(String::as_str), Some("Process"));
    event_worker::handle_delivery(&h.config, QueueType::JobHandleFailure, dead).await;

    let after = h.job(job.id).await;
    assert_eq!(after.status, JobStatus::PendingVerification, "{:?}", after.metadata.common);
    let alerts = h.alerts.0.lock().unwrap().clone();
    assert!(alerts.iter().all(|a| !a.title.starts_with("Job failed")), "{alerts:?}");
    let metrics = orchestrator_test_support::prometheus::Exposition::parse(
        &h.config.metrics.render_prometheus(),
    )
    .unwrap();
    assert_eq!(
        metrics.get("stale_dead_letters_total", &[("operation_job_type", "SnosRun")]),
        Some(1.0)
    );
    assert!(
        h.config.queue().receive(QueueType::JobHandleFailure).await.unwrap().is_none(),
        "the failure queue is empty: the stale message was acked"
    );

    // The same dead letter while the job still waits to be processed fails it, naming why.
    let waiting =
        service::create_job(&h.config, JobType::SnosRun, 2, snos_metadata(2)).await.unwrap();
    let body = format!("{{\"id\":\"{}\"}}", waiting.id);
    service::handle_dead_letter(&h.config, &body, Some(JobAction::Process), None).await.unwrap();
    let failed = h.job(waiting.id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    let reason = failed.metadata.common.failure_reason.unwrap_or_default();
    assert!(
        reason.starts_with("Process message dead-lettered after its redelivery limit"),
        "{reason}"
    );
}
