//! The queues, their settings (reference §5) and the messages sent on them.

use std::{sync::LazyLock, time::Duration};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{jobs::JobType, Layer};

/// Base visibility timeout of the queues: the 300 s job timeout plus a minute.
pub const QUEUE_VISIBILITY_TIMEOUT_SECS: u64 = 300 + 60;
/// Receives after which a message moves to the dead-letter queue.
pub const QUEUE_MAX_RECEIVE_COUNT: u32 = 5;
/// The longest delay a message may carry (SQS' limit).
pub const MAX_MESSAGE_DELAY: Duration = Duration::from_secs(900);
/// Name of the message attribute carrying the sender's version.
pub const ORCHESTRATOR_VERSION_ATTRIBUTE: &str = "OrchestratorVersion";

/// The 16 queues. The string form is the name used in the queue template (`mo_{}_queue`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::EnumIter,
    strum::AsRefStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum QueueType {
    /// Dead-letter queue: its consumer marks jobs `Failed`.
    JobHandleFailure,
    /// Cron trigger messages.
    WorkerTrigger,
    /// SnosRun processing.
    SnosJobProcessing,
    /// SnosRun verification.
    SnosJobVerification,
    /// ProofCreation processing.
    ProvingJobProcessing,
    /// ProofCreation verification.
    ProvingJobVerification,
    /// ProofRegistration processing (L3).
    ProofRegistrationJobProcessing,
    /// ProofRegistration verification (L3).
    ProofRegistrationJobVerification,
    /// DataSubmission processing (L3).
    DataSubmissionJobProcessing,
    /// DataSubmission verification (L3).
    DataSubmissionJobVerification,
    /// StateTransition processing.
    UpdateStateJobProcessing,
    /// StateTransition verification.
    UpdateStateJobVerification,
    /// Aggregator processing (L2).
    AggregatorJobProcessing,
    /// Aggregator verification (L2).
    AggregatorJobVerification,
    /// Operator-requested priority processing.
    #[strum(serialize = "priority_processing_queue")]
    #[serde(rename = "priority_processing_queue")]
    PriorityProcessingQueue,
    /// Operator-requested priority verification.
    #[strum(serialize = "priority_verification_queue")]
    #[serde(rename = "priority_verification_queue")]
    PriorityVerificationQueue,
}

/// What a job message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::Display)]
pub enum JobAction {
    /// Process the job.
    Process,
    /// Verify the job.
    Verify,
}

impl QueueType {
    /// The queues of `layer`, in a stable order.
    pub fn for_layer(layer: Layer) -> Vec<Self> {
        use strum::IntoEnumIterator;
        Self::iter().filter(|q| super::stage::layer_has_queue(layer, *q)).collect()
    }

    /// Layers that use this queue (from the stage table).
    pub fn layers(self) -> Vec<Layer> {
        [Layer::L2, Layer::L3]
            .into_iter()
            .filter(|l| super::stage::layer_has_queue(*l, self))
            .collect()
    }

    /// The queue carrying `action` messages for `job_type` (from the stage table).
    pub fn for_job(job_type: JobType, action: JobAction) -> Self {
        super::stage::queue_for(job_type, action)
            .unwrap_or_else(|| panic!("{job_type} is in no stage table (types/stage.rs)"))
    }

    /// The job type and action of a job queue; `None` for the trigger, failure and priority
    /// queues.
    pub fn job(self) -> Option<(JobType, JobAction)> {
        super::stage::job_of_queue(self)
    }

    /// The settings of this queue under `params`.
    pub fn config(self, params: &QueueParams) -> QueueConfig {
        use QueueType::*;
        let base = Duration::from_secs(QUEUE_VISIBILITY_TIMEOUT_SECS);
        let update_state = Duration::from_secs(
            (3 * QUEUE_VISIBILITY_TIMEOUT_SECS).max(params.state_transition_timeout_secs + 600),
        );
        let (visibility_timeout, max_in_flight) = match self {
            JobHandleFailure => (base, 10),
            WorkerTrigger => (base, 50),
            SnosJobProcessing => (base, params.max_concurrent_snos_jobs),
            SnosJobVerification => (base, 5),
            ProvingJobProcessing => (base, params.max_concurrent_proving_jobs),
            AggregatorJobProcessing => (base, params.max_concurrent_aggregator_jobs),
            UpdateStateJobProcessing => (update_state, 10),
            PriorityProcessingQueue => (update_state, 1),
            PriorityVerificationQueue => (2 * base, 1),
            _ => (base, 10),
        };
        let dead_letter_queue = match self {
            JobHandleFailure | WorkerTrigger => None,
            _ => Some(JobHandleFailure),
        };
        QueueConfig {
            visibility_timeout,
            dead_letter_queue,
            max_receive_count: QUEUE_MAX_RECEIVE_COUNT,
            max_in_flight,
        }
    }
}

/// Run-time values the queue settings depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueParams {
    /// Worker slots of the SNOS processing queue.
    pub max_concurrent_snos_jobs: usize,
    /// Worker slots of the proving processing queue.
    pub max_concurrent_proving_jobs: usize,
    /// Worker slots of the aggregator processing queue.
    pub max_concurrent_aggregator_jobs: usize,
    /// StateTransition timeout; the update-state visibility covers it.
    pub state_transition_timeout_secs: u64,
}

impl Default for QueueParams {
    fn default() -> Self {
        Self {
            max_concurrent_snos_jobs: 5,
            max_concurrent_proving_jobs: 10,
            max_concurrent_aggregator_jobs: 10,
            state_transition_timeout_secs: 300,
        }
    }
}

/// Settings of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// How long a received message stays invisible before it is delivered again.
    pub visibility_timeout: Duration,
    /// Where a message goes after `max_receive_count` receives.
    pub dead_letter_queue: Option<QueueType>,
    /// Receives before dead-lettering.
    pub max_receive_count: u32,
    /// Messages a worker handles at once.
    pub max_in_flight: usize,
}

/// Body of a job message: `{"id": "<uuid>"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobQueueMessage {
    /// The job.
    pub id: Uuid,
}

fn layer_triggers(layer: Layer) -> Vec<WorkerTriggerType> {
    let mut triggers = super::stage::batching_triggers(layer).to_vec();
    triggers.extend(super::stage::stages(layer).iter().map(|s| s.trigger));
    triggers.push(WorkerTriggerType::StorageCleanup);
    triggers
}

/// What a cron message asks the worker-trigger queue to run.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::EnumIter,
    strum::AsRefStr,
)]
pub enum WorkerTriggerType {
    /// Create SnosRun jobs.
    Snos,
    /// Create ProofCreation jobs.
    Proving,
    /// Create ProofRegistration jobs (L3).
    ProofRegistration,
    /// Create DataSubmission jobs (L3).
    DataSubmission,
    /// Create StateTransition jobs.
    UpdateState,
    /// Create Aggregator jobs (L2).
    Aggregator,
    /// Build aggregator batches (L2).
    AggregatorBatching,
    /// Build SNOS batches.
    SnosBatching,
    /// Tag settled artifacts for expiry.
    StorageCleanup,
}

impl WorkerTriggerType {
    /// The triggers of `layer`: batching, then each stage's in pipeline order, then storage
    /// cleanup (from the stage table).
    pub fn for_layer(layer: Layer) -> &'static [Self] {
        static L2: LazyLock<Vec<WorkerTriggerType>> = LazyLock::new(|| layer_triggers(Layer::L2));
        static L3: LazyLock<Vec<WorkerTriggerType>> = LazyLock::new(|| layer_triggers(Layer::L3));
        match layer {
            Layer::L2 => &L2,
            Layer::L3 => &L3,
        }
    }

    /// Parses a trigger message body: the name, with surrounding quotes and whitespace trimmed.
    pub fn from_message_body(body: &str) -> Option<Self> {
        body.trim().trim_matches('"').parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use strum::IntoEnumIterator;

    #[test]
    fn there_are_sixteen_queues_with_the_reference_names() {
        let names: Vec<String> = QueueType::iter().map(|q| q.to_string()).collect();
        assert_eq!(names.len(), 16);
        assert!(names.contains(&"snos_job_processing".to_owned()));
        assert!(names.contains(&"priority_processing_queue".to_owned()));
        assert_eq!(
            "update_state_job_verification".parse::<QueueType>().ok(),
            Some(QueueType::UpdateStateJobVerification)
        );
    }

    #[rstest]
    #[case(Layer::L2, 12)]
    #[case(Layer::L3, 14)]
    fn layer_sets(#[case] layer: Layer, #[case] count: usize) {
        assert_eq!(QueueType::for_layer(layer).len(), count);
    }

    #[rstest]
    #[case(QueueType::SnosJobProcessing, 360, 5, true)]
    #[case(QueueType::UpdateStateJobProcessing, 1080, 10, true)]
    #[case(QueueType::PriorityVerificationQueue, 720, 1, true)]
    #[case(QueueType::WorkerTrigger, 360, 50, false)]
    #[case(QueueType::JobHandleFailure, 360, 10, false)]
    fn queue_settings(
        #[case] q: QueueType,
        #[case] vis: u64,
        #[case] slots: usize,
        #[case] dlq: bool,
    ) {
        let c = q.config(&QueueParams::default());
        assert_eq!(c.visibility_timeout.as_secs(), vis);
        assert_eq!(c.max_in_flight, slots);
        assert_eq!(c.dead_letter_queue.is_some(), dlq);
    }

    #[test]
    fn update_state_visibility_covers_a_long_timeout() {
        let params = QueueParams { state_transition_timeout_secs: 3600, ..Default::default() };
        assert_eq!(
            QueueType::UpdateStateJobProcessing.config(&params).visibility_timeout.as_secs(),
            4200
        );
    }

    #[test]
    fn every_job_queue_maps_back_to_its_job() {
        for q in QueueType::iter() {
            if let Some((t, a)) = q.job() {
                assert_eq!(QueueType::for_job(t, a), q);
            }
        }
    }

    #[rstest]
    #[case("Snos", Some(WorkerTriggerType::Snos))]
    #[case("\"SnosBatching\"", Some(WorkerTriggerType::SnosBatching))]
    #[case(" UpdateState\n", Some(WorkerTriggerType::UpdateState))]
    #[case("Nope", None)]
    fn trigger_bodies(#[case] body: &str, #[case] want: Option<WorkerTriggerType>) {
        assert_eq!(WorkerTriggerType::from_message_body(body), want);
    }
}
