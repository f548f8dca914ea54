//! Worker triggers: periodic (cron) or chained (a job completed) runs that create jobs and
//! batches. Each trigger lives in one file next to this one; this module holds the trait, the
//! registry and the helpers every trigger shares (failed-job gate, buffer, watermark).

use std::{collections::HashMap, fmt, sync::Arc};

use async_trait::async_trait;

pub use crate::worker::error::TriggerError;
use crate::{
    config::FailedJobHalt,
    core::client::DatabaseError,
    types::{
        jobs::{JobSpecificMetadata, JobStatus, JobType, SettlementContext},
        queue::WorkerTriggerType,
        Layer, ORCHESTRATOR_VERSION,
    },
    worker::Config,
};

/// Statuses of a job that mean "an operator must look".
pub const HALTING_STATUSES: [JobStatus; 2] = [JobStatus::Failed, JobStatus::VerificationTimeout];

/// One worker trigger.
#[async_trait]
pub trait JobTrigger: Send + Sync + fmt::Debug {
    /// Which trigger this is.
    fn trigger_type(&self) -> WorkerTriggerType;

    /// The job type it creates, if any (a stage's trigger creates its stage's jobs); used by
    /// the failed-job gate.
    fn creates(&self) -> Option<JobType> {
        match self.trigger_type() {
            WorkerTriggerType::Stage(job_type) => Some(job_type),
            _ => None,
        }
    }

    /// Does one round of work. The failed-job gate ([`is_halted`]) is checked once, by the
    /// event worker before it calls this (`event_worker::run_trigger`), not here again.
    async fn run(&self, config: Arc<Config>) -> Result<(), TriggerError>;
}

/// Runs `trigger` once ([`JobTrigger::run`]) and records how long it took in
/// `worker_trigger_duration_seconds{trigger}`, whatever the outcome. The event worker runs
/// every trigger through this, after its pause and failed-job checks.
pub async fn run_timed(trigger: &dyn JobTrigger, config: Arc<Config>) -> Result<(), TriggerError> {
    let kind = trigger.trigger_type();
    let metrics = config.metrics.clone();
    let started = std::time::Instant::now();
    let result = trigger.run(config).await;
    metrics.trigger_duration(kind, started.elapsed());
    result
}

/// What keeps one run of a trigger at a time per process without losing a request: a request
/// that finds the trigger running marks it `pending`, and the running one runs once more when it
/// finishes (many requests during one run make one more run, not many).
#[derive(Debug, Default)]
pub struct TriggerGuard {
    /// Held while the trigger runs.
    pub running: tokio::sync::Mutex<()>,
    /// A run was asked for while it was running.
    pub pending: std::sync::atomic::AtomicBool,
}

/// A trigger and its guard.
pub type GuardedTrigger = (Arc<dyn JobTrigger>, Arc<TriggerGuard>);

/// The triggers of the running layer, by type.
#[derive(Clone, Default)]
pub struct Triggers {
    triggers: HashMap<WorkerTriggerType, GuardedTrigger>,
}

impl Triggers {
    /// No triggers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a trigger under its type.
    pub fn with(mut self, trigger: Arc<dyn JobTrigger>) -> Self {
        self.triggers.insert(trigger.trigger_type(), (trigger, Arc::default()));
        self
    }

    /// The trigger of `kind`.
    pub fn get(&self, kind: WorkerTriggerType) -> Option<&Arc<dyn JobTrigger>> {
        self.triggers.get(&kind).map(|(t, _)| t)
    }

    /// The trigger of `kind` and the guard that keeps one run of it at a time per process.
    pub fn get_with_guard(&self, kind: WorkerTriggerType) -> Option<GuardedTrigger> {
        self.triggers.get(&kind).cloned()
    }
}

impl fmt::Debug for Triggers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kinds: Vec<String> = self.triggers.keys().map(ToString::to_string).collect();
        kinds.sort();
        f.debug_struct("Triggers").field("kinds", &kinds).finish()
    }
}

/// Whether failed jobs stop `trigger` from creating new jobs now.
///
/// In `Stage` mode only a failed job of the type the trigger creates halts it; in `Global` mode
/// (the reference's behaviour) any failed job of this orchestrator version halts every trigger
/// that creates jobs. Batching and cleanup triggers are never halted here.
pub async fn is_halted(config: &Config, trigger: &dyn JobTrigger) -> Result<bool, DatabaseError> {
    let Some(creates) = trigger.creates() else { return Ok(false) };
    let types: Vec<JobType> = match config.engine.failed_job_halt {
        FailedJobHalt::Stage => vec![creates],
        FailedJobHalt::Global => Vec::new(),
    };
    let failed = config
        .database()
        .get_jobs_by_types_and_statuses(
            &types,
            &HALTING_STATUSES,
            Some(1),
            Some(ORCHESTRATOR_VERSION),
        )
        .await?;
    Ok(!failed.is_empty())
}

/// Free slots in a job buffer: `buffer − (latest − oldest_incomplete + 1)`, or the whole
/// buffer when no job of the type is incomplete.
pub fn buffer_slots(
    buffer: u64,
    latest_internal_id: Option<u64>,
    oldest_incomplete: Option<u64>,
) -> u64 {
    match (latest_internal_id, oldest_incomplete) {
        (Some(latest), Some(oldest)) if latest >= oldest => {
            buffer.saturating_sub(latest - oldest + 1)
        }
        _ => buffer,
    }
}

/// Free slots for new jobs of `job_type` in a buffer of `buffer` jobs.
pub async fn available_slots(
    config: &Config,
    job_type: JobType,
    buffer: u64,
) -> Result<u64, DatabaseError> {
    let db = config.database();
    let latest = db.get_latest_job_by_type(job_type, None).await?.map(|j| j.internal_id);
    let oldest = db
        .get_oldest_job_by_type_excluding_statuses(job_type, &[JobStatus::Completed], None)
        .await?
        .map(|j| j.internal_id);
    Ok(buffer_slots(buffer, latest, oldest))
}

/// The first SNOS batch index that is not settled yet, or 0 when nothing is settled.
///
/// L3 settles SNOS batches, so it is the settled index + 1. L2 settles aggregator batches: it
/// is the first SNOS batch of the next aggregator batch, or `u64::MAX` while that batch has no
/// SNOS batch yet (nothing after the settled range may be created).
pub async fn first_unsettled_snos_batch_index(config: &Config) -> Result<u64, DatabaseError> {
    let db = config.database();
    let Some(last) = db
        .get_latest_job_by_type_and_status(JobType::StateTransition, JobStatus::Completed, None)
        .await?
    else {
        return Ok(0);
    };
    let to_settle = match &last.metadata.specific {
        JobSpecificMetadata::StateUpdate(m) => match &m.context {
            SettlementContext::Batch(d) | SettlementContext::Block(d) => d.to_settle,
        },
        _ => last.internal_id,
    };
    Ok(match config.layer {
        Layer::L3 => to_settle + 1,
        Layer::L2 => db
            .get_start_snos_batch_for_aggregator(to_settle + 1)
            .await?
            .map_or(u64::MAX, |b| b.index),
    })
}

/// The trigger to run at once when a job of `job_type` completes (event-driven chaining), from
/// the stage table.
pub fn next_stage(layer: Layer, job_type: JobType) -> Option<WorkerTriggerType> {
    crate::types::stage::next_trigger(layer, job_type)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case(50, None, None, 50)]
    #[case(50, Some(10), None, 50)]
    #[case(50, Some(10), Some(10), 49)]
    #[case(50, Some(60), Some(1), 0)]
    #[case(5, Some(7), Some(4), 1)]
    fn buffer_math(
        #[case] buffer: u64,
        #[case] latest: Option<u64>,
        #[case] oldest: Option<u64>,
        #[case] want: u64,
    ) {
        assert_eq!(buffer_slots(buffer, latest, oldest), want);
    }

    /// A SnosBatching stand-in that takes 20 ms, then fails every other run.
    #[derive(Debug, Default)]
    struct Slow(std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl JobTrigger for Slow {
        fn trigger_type(&self) -> WorkerTriggerType {
            WorkerTriggerType::SnosBatching
        }

        async fn run(&self, _config: Arc<Config>) -> Result<(), TriggerError> {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            match self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 2 {
                0 => Ok(()),
                _ => Err(TriggerError::Other("the second run fails".to_owned())),
            }
        }
    }

    #[tokio::test]
    async fn every_trigger_run_records_its_duration() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clients = crate::core::client::embedded::open(dir.path(), &Default::default())
            .await
            .expect("embedded tier");
        let slow = Arc::new(Slow::default());
        let config = Arc::new(Config::new(
            Layer::L2,
            clients,
            crate::worker::handler::JobHandlers::new(),
            Triggers::new().with(slow.clone()),
            crate::config::EngineParams::default(),
        ));
        let kind = WorkerTriggerType::SnosBatching;
        assert_eq!(config.metrics.trigger_duration_observed(kind), (0, 0.0));

        // Through the event worker, as a trigger message runs it: one success, one failure.
        crate::worker::event_worker::run_trigger(&config, kind).await;
        crate::worker::event_worker::run_trigger(&config, kind).await;
        assert_eq!(slow.0.load(std::sync::atomic::Ordering::SeqCst), 2, "both runs happened");
        let (count, sum) = config.metrics.trigger_duration_observed(kind);
        assert_eq!(count, 2, "a failed run is timed too");
        assert!((0.04..5.0).contains(&sum), "two runs of 20 ms each took {sum} s in all");
        // A trigger that did not run records nothing.
        assert_eq!(
            config.metrics.trigger_duration_observed(WorkerTriggerType::AggregatorBatching),
            (0, 0.0)
        );

        let text = orchestrator_test_support::prometheus::Exposition::parse(
            &config.metrics.render_prometheus(),
        )
        .unwrap();
        assert_eq!(text.kind("worker_trigger_duration_seconds"), Some("histogram"));
        let trigger = ("trigger", "SnosBatching");
        assert_eq!(text.get("worker_trigger_duration_seconds_count", &[trigger]), Some(2.0));
        let bucket =
            |le| text.get("worker_trigger_duration_seconds_bucket", &[trigger, ("le", le)]);
        // Runs of 20 ms are above the 10 ms bucket.
        assert_eq!((bucket("0.01"), bucket("+Inf")), (Some(0.0), Some(2.0)));
    }

    #[rstest]
    #[case(Layer::L2, JobType::ProofCreation, WorkerTriggerType::Stage(JobType::Aggregator))]
    #[case(Layer::L3, JobType::ProofCreation, WorkerTriggerType::Stage(JobType::ProofRegistration))]
    #[case(Layer::L2, JobType::Aggregator, WorkerTriggerType::Stage(JobType::StateTransition))]
    #[case(Layer::L3, JobType::DataSubmission, WorkerTriggerType::Stage(JobType::StateTransition))]
    fn chaining(#[case] layer: Layer, #[case] done: JobType, #[case] next: WorkerTriggerType) {
        assert_eq!(next_stage(layer, done), Some(next));
    }
}
