//! The stage table: one declaration per job type of each layer, from which the engine derives
//! the names of the type's queues and trigger, which trigger runs at once when one of its jobs
//! completes (event-driven chaining), which queues and triggers a layer runs, and where the
//! dashboard shows the type.
//!
//! Adding a job type to a layer is one [`Stage`] entry here (plus the type itself in
//! `types/jobs.rs` and its handler and trigger under `worker/stages/`); the lookups below need no
//! change. `docs/architecture.md` lists the places.

use super::{jobs::JobType, queue::WorkerTriggerType, Layer};

/// Which batch a stage's jobs belong to (the dashboard's row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    /// A SNOS batch (its index is the job's internal id).
    Snos,
    /// An aggregator batch.
    Aggregator,
}

/// The names a job type is known by outside the process: its two queues (reference §5) and
/// its trigger (the body of its cron message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Names {
    /// The queue of its processing messages.
    pub processing: &'static str,
    /// The queue of its verification messages.
    pub verification: &'static str,
    /// The trigger that creates its jobs.
    pub trigger: &'static str,
}

/// One job type in a layer's pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    /// The job type.
    pub job_type: JobType,
    /// Its queue and trigger names (the same in every layer).
    pub names: Names,
    /// The job type whose trigger runs at once when one of its jobs completes.
    pub next: JobType,
    /// The batch its jobs belong to.
    pub batch: BatchKind,
}

use BatchKind as B;
use JobType as J;

const SNOS: Stage = Stage {
    job_type: J::SnosRun,
    names: Names {
        processing: "snos_job_processing",
        verification: "snos_job_verification",
        trigger: "Snos",
    },
    next: J::ProofCreation,
    batch: B::Snos,
};

const PROVING: Stage = Stage {
    job_type: J::ProofCreation,
    names: Names {
        processing: "proving_job_processing",
        verification: "proving_job_verification",
        trigger: "Proving",
    },
    next: J::Aggregator,
    batch: B::Snos,
};

const STATE_TRANSITION: Stage = Stage {
    job_type: J::StateTransition,
    names: Names {
        processing: "update_state_job_processing",
        verification: "update_state_job_verification",
        trigger: "UpdateState",
    },
    // The next batch may be ready to settle as soon as this one is.
    next: J::StateTransition,
    batch: B::Aggregator,
};

/// The L2 pipeline: SNOS batches are proven, their proofs aggregated, and each aggregator batch
/// settled on Ethereum with blobs.
pub const L2_STAGES: &[Stage] = &[
    SNOS,
    PROVING,
    Stage {
        job_type: J::Aggregator,
        names: Names {
            processing: "aggregator_job_processing",
            verification: "aggregator_job_verification",
            trigger: "Aggregator",
        },
        next: J::StateTransition,
        batch: B::Aggregator,
    },
    STATE_TRANSITION,
];

/// The L3 pipeline: each SNOS batch is proven, its proof registered, its data published and
/// its state settled on Starknet.
pub const L3_STAGES: &[Stage] = &[
    SNOS,
    Stage { next: J::ProofRegistration, ..PROVING },
    Stage {
        job_type: J::ProofRegistration,
        names: Names {
            processing: "proof_registration_job_processing",
            verification: "proof_registration_job_verification",
            trigger: "ProofRegistration",
        },
        next: J::DataSubmission,
        batch: B::Snos,
    },
    Stage {
        job_type: J::DataSubmission,
        names: Names {
            processing: "data_submission_job_processing",
            verification: "data_submission_job_verification",
            trigger: "DataSubmission",
        },
        next: J::StateTransition,
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

/// Every job type once, in pipeline order (the L3 pipeline, then the types only L2 runs): the
/// order of the queues and triggers in listings.
pub fn job_types() -> Vec<JobType> {
    let mut types: Vec<JobType> = Vec::new();
    for s in L3_STAGES.iter().chain(L2_STAGES) {
        if !types.contains(&s.job_type) {
            types.push(s.job_type);
        }
    }
    types
}

/// The queue and trigger names of `job_type` (the same in every layer).
///
/// # Panics
/// When no layer runs `job_type` (a test checks that every job type has a stage).
pub fn names(job_type: JobType) -> &'static Names {
    all_stages()
        .find(|s| s.job_type == job_type)
        .map(|s| &s.names)
        .unwrap_or_else(|| panic!("{job_type} is in no stage table (types/stage.rs)"))
}

/// The trigger run at once when a `job_type` job completes in `layer`.
pub fn next_trigger(layer: Layer, job_type: JobType) -> Option<WorkerTriggerType> {
    stage(layer, job_type).map(|s| WorkerTriggerType::Stage(s.next))
}

/// The batch-building triggers of `layer`, which run before the stages' triggers.
pub fn batching_triggers(layer: Layer) -> &'static [WorkerTriggerType] {
    match layer {
        Layer::L2 => &[WorkerTriggerType::AggregatorBatching, WorkerTriggerType::SnosBatching],
        Layer::L3 => &[WorkerTriggerType::SnosBatching],
    }
}

/// The job types of `layer` shown on the dashboard for `batch`, in pipeline order.
pub fn dashboard_columns(layer: Layer, batch: BatchKind) -> Vec<JobType> {
    stages(layer).iter().filter(|s| s.batch == batch).map(|s| s.job_type).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use strum::IntoEnumIterator;

    use super::*;
    use crate::types::queue::{JobAction, QueueType};

    #[test]
    fn every_job_type_is_a_stage_with_the_same_names_in_every_layer() {
        for job_type in JobType::iter() {
            let names = names(job_type);
            for layer in [Layer::L2, Layer::L3] {
                if let Some(s) = stage(layer, job_type) {
                    assert_eq!(&s.names, names, "{layer} {job_type}");
                }
            }
        }
    }

    #[test]
    fn no_two_job_types_share_a_queue_or_a_trigger_name() {
        let mut seen = HashSet::new();
        for job_type in JobType::iter() {
            let n = names(job_type);
            for name in [n.processing, n.verification, n.trigger] {
                assert!(seen.insert(name), "{name} is used twice");
            }
        }
        for other in [
            WorkerTriggerType::AggregatorBatching,
            WorkerTriggerType::SnosBatching,
            WorkerTriggerType::StorageCleanup,
        ] {
            assert!(seen.insert(other.name()), "{other}");
        }
        for q in [
            QueueType::JobHandleFailure,
            QueueType::WorkerTrigger,
            QueueType::PriorityProcessingQueue,
            QueueType::PriorityVerificationQueue,
        ] {
            assert!(seen.insert(q.name()), "{q}");
        }
    }

    #[test]
    fn every_name_parses_back_to_its_queue_or_trigger() {
        for q in QueueType::all() {
            assert_eq!(q.name().parse::<QueueType>(), Ok(q));
            if let Some((job_type, action)) = q.job() {
                assert_eq!(QueueType::for_job(job_type, action), q);
            }
        }
        for t in WorkerTriggerType::all() {
            assert_eq!(WorkerTriggerType::from_message_body(&format!("\"{t}\"")), Some(t));
        }
        assert!("snos_job".parse::<QueueType>().is_err());
        assert_eq!(
            QueueType::for_job(JobType::Aggregator, JobAction::Verify).name(),
            "aggregator_job_verification"
        );
    }

    #[test]
    fn every_job_type_is_listed_once_in_pipeline_order() {
        let mut all: Vec<JobType> = JobType::iter().collect();
        let listed = job_types();
        assert_eq!(listed[..2], [JobType::SnosRun, JobType::ProofCreation]);
        assert_eq!(listed.last(), Some(&JobType::Aggregator));
        all.sort();
        let mut sorted = listed.clone();
        sorted.sort();
        assert_eq!(sorted, all);
    }

    #[test]
    fn each_stage_chains_to_a_stage_of_its_layer() {
        for layer in [Layer::L2, Layer::L3] {
            for s in stages(layer) {
                assert!(stage(layer, s.next).is_some(), "{layer}: {} → {}", s.job_type, s.next);
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
