//! The stage table: one declaration per job type of each layer, from which the engine derives
//! which queues carry the type's messages, which trigger creates its jobs, which trigger runs at
//! once when one of its jobs completes (event-driven chaining), which queues and triggers a
//! layer runs, and where the dashboard shows the type.
//!
//! Adding a job type to a layer is one [`Stage`] entry here (plus the type itself, its queues
//! and its handler and trigger); the lookups below need no change.

use super::{
    jobs::JobType,
    queue::{JobAction, QueueType, WorkerTriggerType},
    Layer,
};

/// Which batch a stage's jobs belong to (the dashboard's row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    /// A SNOS batch (its index is the job's internal id).
    Snos,
    /// An aggregator batch.
    Aggregator,
}

/// One job type in a layer's pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    /// The job type.
    pub job_type: JobType,
    /// The queue of its processing messages.
    pub processing: QueueType,
    /// The queue of its verification messages.
    pub verification: QueueType,
    /// The trigger that creates its jobs.
    pub trigger: WorkerTriggerType,
    /// The trigger run at once when one of its jobs completes.
    pub next: WorkerTriggerType,
    /// The batch its jobs belong to.
    pub batch: BatchKind,
}

use BatchKind as B;
use JobType as J;
use QueueType as Q;
use WorkerTriggerType as T;

const SNOS: Stage = Stage {
    job_type: J::SnosRun,
    processing: Q::SnosJobProcessing,
    verification: Q::SnosJobVerification,
    trigger: T::Snos,
    next: T::Proving,
    batch: B::Snos,
};

const PROVING: Stage = Stage {
    job_type: J::ProofCreation,
    processing: Q::ProvingJobProcessing,
    verification: Q::ProvingJobVerification,
    trigger: T::Proving,
    next: T::Aggregator,
    batch: B::Snos,
};

const STATE_TRANSITION: Stage = Stage {
    job_type: J::StateTransition,
    processing: Q::UpdateStateJobProcessing,
    verification: Q::UpdateStateJobVerification,
    trigger: T::UpdateState,
    next: T::UpdateState,
    batch: B::Aggregator,
};

/// The L2 pipeline: SNOS batches are proven, their proofs aggregated, and each aggregator batch
/// settled on Ethereum with blobs.
pub const L2_STAGES: &[Stage] = &[
    SNOS,
    PROVING,
    Stage {
        job_type: J::Aggregator,
        processing: Q::AggregatorJobProcessing,
        verification: Q::AggregatorJobVerification,
        trigger: T::Aggregator,
        next: T::UpdateState,
        batch: B::Aggregator,
    },
    STATE_TRANSITION,
];

/// The L3 pipeline: each SNOS batch is proven, its proof registered, its data published and
/// its state settled on Starknet.
pub const L3_STAGES: &[Stage] = &[
    SNOS,
    Stage { next: T::ProofRegistration, ..PROVING },
    Stage {
        job_type: J::ProofRegistration,
        processing: Q::ProofRegistrationJobProcessing,
        verification: Q::ProofRegistrationJobVerification,
        trigger: T::ProofRegistration,
        next: T::DataSubmission,
        batch: B::Snos,
    },
    Stage {
        job_type: J::DataSubmission,
        processing: Q::DataSubmissionJobProcessing,
        verification: Q::DataSubmissionJobVerification,
        trigger: T::DataSubmission,
        next: T::UpdateState,
        batch: B::Snos,
    },
    Stage { batch: B::Snos, ..STATE_TRANSITION },
];

/// The stages of `layer`, in pipeline order.
pub fn stages(layer: Layer) -> &'static [Stage] {
    match layer {
        Layer::L2 => L2_STAGES,
        Layer::L3 => L3_STAGES,
    }
}

/// The stage of `job_type` in `layer`, if the layer runs it.
pub fn stage(layer: Layer, job_type: JobType) -> Option<&'static Stage> {
    stages(layer).iter().find(|s| s.job_type == job_type)
}

/// Every stage of every layer.
fn all_stages() -> impl Iterator<Item = &'static Stage> {
    L2_STAGES.iter().chain(L3_STAGES)
}

/// The queue carrying `action` messages of `job_type` (the same in every layer).
pub fn queue_for(job_type: JobType, action: JobAction) -> Option<QueueType> {
    all_stages().find(|s| s.job_type == job_type).map(|s| match action {
        JobAction::Process => s.processing,
        JobAction::Verify => s.verification,
    })
}

/// The job type and action of a job queue; `None` for the other queues.
pub fn job_of_queue(queue: QueueType) -> Option<(JobType, JobAction)> {
    all_stages().find_map(|s| {
        if s.processing == queue {
            Some((s.job_type, JobAction::Process))
        } else if s.verification == queue {
            Some((s.job_type, JobAction::Verify))
        } else {
            None
        }
    })
}

/// Whether `layer` runs the job queue `queue` (a queue of no stage belongs to every layer).
pub fn layer_has_queue(layer: Layer, queue: QueueType) -> bool {
    match job_of_queue(queue) {
        Some((job_type, _)) => stage(layer, job_type).is_some(),
        None => true,
    }
}

/// The batch-building triggers of `layer`, which run before the stages' triggers.
pub fn batching_triggers(layer: Layer) -> &'static [WorkerTriggerType] {
    match layer {
        Layer::L2 => &[T::AggregatorBatching, T::SnosBatching],
        Layer::L3 => &[T::SnosBatching],
    }
}

/// The job types of `layer` shown on the dashboard for `batch`, in pipeline order.
pub fn dashboard_columns(layer: Layer, batch: BatchKind) -> Vec<JobType> {
    stages(layer).iter().filter(|s| s.batch == batch).map(|s| s.job_type).collect()
}

#[cfg(test)]
mod tests {
    use strum::IntoEnumIterator;

    use super::*;

    #[test]
    fn every_job_type_is_a_stage_of_some_layer_with_one_pair_of_queues() {
        for job_type in JobType::iter() {
            let process = queue_for(job_type, JobAction::Process).expect("a stage");
            let verify = queue_for(job_type, JobAction::Verify).expect("a stage");
            assert_eq!(job_of_queue(process), Some((job_type, JobAction::Process)));
            assert_eq!(job_of_queue(verify), Some((job_type, JobAction::Verify)));
            // Both layers that run it use the same queues.
            for layer in [Layer::L2, Layer::L3] {
                if let Some(s) = stage(layer, job_type) {
                    assert_eq!((s.processing, s.verification), (process, verify));
                }
            }
        }
    }

    #[test]
    fn no_queue_serves_two_stages_and_no_trigger_creates_two_job_types() {
        for layer in [Layer::L2, Layer::L3] {
            let s = stages(layer);
            for (i, a) in s.iter().enumerate() {
                for b in &s[i + 1..] {
                    assert_ne!(a.job_type, b.job_type, "{layer}");
                    assert_ne!(a.trigger, b.trigger, "{layer}");
                    for q in [a.processing, a.verification] {
                        assert!(q != b.processing && q != b.verification, "{layer}: {q}");
                    }
                }
            }
        }
    }

    #[test]
    fn each_stage_chains_to_a_trigger_of_its_layer() {
        for layer in [Layer::L2, Layer::L3] {
            let triggers: Vec<_> = stages(layer).iter().map(|s| s.trigger).collect();
            for s in stages(layer) {
                assert!(triggers.contains(&s.next), "{layer}: {} → {}", s.job_type, s.next);
            }
        }
    }

    #[test]
    fn the_dashboard_rows_follow_the_pipelines() {
        assert_eq!(
            dashboard_columns(Layer::L2, BatchKind::Snos),
            [JobType::SnosRun, JobType::ProofCreation]
        );
        assert_eq!(
            dashboard_columns(Layer::L2, BatchKind::Aggregator),
            [JobType::Aggregator, JobType::StateTransition]
        );
        assert_eq!(dashboard_columns(Layer::L3, BatchKind::Snos).len(), 5);
        assert!(dashboard_columns(Layer::L3, BatchKind::Aggregator).is_empty());
    }
}
