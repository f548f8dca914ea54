//! The queues, their settings (reference §5) and the messages sent on them.

use std::{fmt, str::FromStr, sync::LazyLock, time::Duration};

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
/// Name of the message attribute carrying what a job message asks for (`Process` or `Verify`).
/// It survives a move to the dead-letter queue, so the failure handler can tell a message that
/// still applies to its job from a stale duplicate.
pub const JOB_ACTION_ATTRIBUTE: &str = "JobAction";

/// The queues: the failure and trigger queues, a processing and a verification queue per job
/// type (named in the stage table, `types/stage.rs`), and the two priority queues. The string
/// form is the name used in the queue template (`mo_{}_queue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueueType {
    /// Dead-letter queue: its consumer marks jobs `Failed`.
    JobHandleFailure,
    /// Cron trigger messages.
    WorkerTrigger,
    /// Processing messages of a job type.
    JobProcessing(JobType),
    /// Verification messages of a job type.
    JobVerification(JobType),
    /// Operator-requested priority processing.
    PriorityProcessingQueue,
    /// Operator-requested priority verification.
    PriorityVerificationQueue,
}

/// What a job message asks for.
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
    strum::EnumString
)]
pub enum JobAction {
    /// Process the job.
    Process,
    /// Verify the job.
    Verify,
}

impl QueueType {
    /// Every queue, in a stable order.
    pub fn all() -> Vec<Self> {
        let mut queues = vec![Self::JobHandleFailure, Self::WorkerTrigger];
        for job_type in super::stage::job_types() {
            queues.extend([Self::JobProcessing(job_type), Self::JobVerification(job_type)]);
        }
        queues.extend([Self::PriorityProcessingQueue, Self::PriorityVerificationQueue]);
        queues
    }

    /// The name of the queue (`snos_job_processing`, `worker_trigger`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::JobHandleFailure => "job_handle_failure",
            Self::WorkerTrigger => "worker_trigger",
            Self::JobProcessing(job_type) => super::stage::names(job_type).processing,
            Self::JobVerification(job_type) => super::stage::names(job_type).verification,
            Self::PriorityProcessingQueue => "priority_processing_queue",
            Self::PriorityVerificationQueue => "priority_verification_queue",
        }
    }

    /// The queues of `layer`, in a stable order.
    pub fn for_layer(layer: Layer) -> Vec<Self> {
        Self::all().into_iter().filter(|q| q.in_layer(layer)).collect()
    }

    /// Layers that use this queue (a job queue belongs to the layers whose stage table runs its
    /// job type, every other queue to both).
    pub fn layers(self) -> Vec<Layer> {
        [Layer::L2, Layer::L3].into_iter().filter(|l| self.in_layer(*l)).collect()
    }

    fn in_layer(self, layer: Layer) -> bool {
        match self.job() {
            Some((job_type, _)) => super::stage::stage(layer, job_type).is_some(),
            None => true,
        }
    }

    /// The queue carrying `action` messages for `job_type`.
    pub fn for_job(job_type: JobType, action: JobAction) -> Self {
        match action {
            JobAction::Process => Self::JobProcessing(job_type),
            JobAction::Verify => Self::JobVerification(job_type),
        }
    }

    /// The job type and action of a job queue; `None` for the trigger, failure and priority
    /// queues.
    pub fn job(self) -> Option<(JobType, JobAction)> {
        match self {
            Self::JobProcessing(job_type) => Some((job_type, JobAction::Process)),
            Self::JobVerification(job_type) => Some((job_type, JobAction::Verify)),
            _ => None,
        }
    }

    /// What the job messages of this queue ask for, priority queues included; `None` for the
    /// trigger and failure queues.
    pub fn action(self) -> Option<JobAction> {
        match self {
            Self::PriorityProcessingQueue => Some(JobAction::Process),
            Self::PriorityVerificationQueue => Some(JobAction::Verify),
            queue => queue.job().map(|(_, action)| action),
        }
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
            JobProcessing(JobType::SnosRun) => (base, params.max_concurrent_snos_jobs),
            JobVerification(JobType::SnosRun) => (base, 5),
            JobProcessing(JobType::ProofCreation) => (base, params.max_concurrent_proving_jobs),
            JobProcessing(JobType::Aggregator) => (base, params.max_concurrent_aggregator_jobs),
            JobProcessing(JobType::StateTransition) => (update_state, 10),
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
    triggers
        .extend(super::stage::stages(layer).iter().map(|s| WorkerTriggerType::Stage(s.job_type)));
    triggers.push(WorkerTriggerType::StorageCleanup);
    triggers
}

/// What a cron message asks the worker-trigger queue to run. The string form is the message
/// body (`Snos`, `UpdateState`, `SnosBatching`, ...); a stage's name is in its stage table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkerTriggerType {
    /// Create the jobs of a job type (the trigger of its stage).
    Stage(JobType),
    /// Build aggregator batches (L2).
    AggregatorBatching,
    /// Build SNOS batches.
    SnosBatching,
    /// Tag settled artifacts for expiry.
    StorageCleanup,
}

impl WorkerTriggerType {
    /// Every trigger, in a stable order.
    pub fn all() -> Vec<Self> {
        let mut triggers: Vec<Self> =
            super::stage::job_types().into_iter().map(Self::Stage).collect();
        triggers.extend([Self::AggregatorBatching, Self::SnosBatching, Self::StorageCleanup]);
        triggers
    }

    /// The name of the trigger, as cron messages carry it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stage(job_type) => super::stage::names(job_type).trigger,
            Self::AggregatorBatching => "AggregatorBatching",
            Self::SnosBatching => "SnosBatching",
            Self::StorageCleanup => "StorageCleanup",
        }
    }

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

/// The string forms of the queue and trigger names: `Display`, `FromStr`, `AsRef<str>`, serde
/// and strum's iteration, all through `name()` and `all()`.
macro_rules! named {
    ($ty:ident, $what:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.name()
            }
        }

        impl FromStr for $ty {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::all()
                    .into_iter()
                    .find(|v| v.name() == s)
                    .ok_or_else(|| UnknownName { what: $what, name: s.to_owned() })
            }
        }

        impl strum::IntoEnumIterator for $ty {
            type Iterator = std::vec::IntoIter<Self>;

            fn iter() -> Self::Iterator {
                Self::all().into_iter()
            }
        }

        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                name.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

named!(QueueType, "queue");
named!(WorkerTriggerType, "worker trigger");

/// A name that is no queue or trigger.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {name:?}")]
pub struct UnknownName {
    /// What was looked up (queue, worker trigger).
    pub what: &'static str,
    /// The name given.
    pub name: String,
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
            Some(QueueType::JobVerification(JobType::StateTransition))
        );
    }

    #[rstest]
    #[case(Layer::L2, 12)]
    #[case(Layer::L3, 14)]
    fn layer_sets(#[case] layer: Layer, #[case] count: usize) {
        assert_eq!(QueueType::for_layer(layer).len(), count);
    }

    #[rstest]
    #[case(QueueType::JobProcessing(JobType::SnosRun), 360, 5, true)]
    #[case(QueueType::JobProcessing(JobType::StateTransition), 1080, 10, true)]
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
            QueueType::JobProcessing(JobType::StateTransition)
                .config(&params)
                .visibility_timeout
                .as_secs(),
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
    #[case("Snos", Some(WorkerTriggerType::Stage(JobType::SnosRun)))]
    #[case("\"SnosBatching\"", Some(WorkerTriggerType::SnosBatching))]
    #[case(" UpdateState\n", Some(WorkerTriggerType::Stage(JobType::StateTransition)))]
    #[case("Nope", None)]
    fn trigger_bodies(#[case] body: &str, #[case] want: Option<WorkerTriggerType>) {
        assert_eq!(WorkerTriggerType::from_message_body(body), want);
    }
}
