//! UpdateState trigger: at most one StateTransition at a time, strictly in order (reference
//! §7). Its parent is the Aggregator job on L2 (aggregator batches) and the DataSubmission job
//! on L3 (SNOS batches).
//!
//! One run: if the latest StateTransition is not `Completed`, nothing happens. Otherwise the
//! completed parents after the last settled index are listed; the smallest must be the next
//! index (last + 1, or 1 when nothing is settled), and exactly one StateTransition is created
//! for it with `Batch { to_settle }` and the parent's artifact paths. On L2 the aggregator
//! batch must also be `ReadyForStateUpdate`.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    types::{
        batch::{AggregatorBatchQuery, AggregatorBatchStatus},
        jobs::{
            JobItem, JobSpecificMetadata, JobStatus, JobType, SettlementContext,
            SettlementContextData, StateUpdateMetadata,
        },
        queue::WorkerTriggerType,
        Layer,
    },
    worker::Config,
};

use super::{proving::create_once, JobTrigger, TriggerError};

/// Creates StateTransition jobs, one at a time.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpdateStateTrigger;

/// The job type a StateTransition follows on `layer`.
pub fn parent_job_type(layer: Layer) -> JobType {
    match layer {
        Layer::L2 => JobType::Aggregator,
        Layer::L3 => JobType::DataSubmission,
    }
}

/// The index the last StateTransition settled (its context's `to_settle`).
fn settled_index(job: &JobItem) -> u64 {
    match &job.metadata.specific {
        JobSpecificMetadata::StateUpdate(m) => m.context.to_settle(),
        _ => job.internal_id,
    }
}

/// The StateTransition metadata settling the batch of `parent` (its artifact paths).
pub fn state_update_metadata(layer: Layer, parent: &JobItem) -> StateUpdateMetadata {
    let index = parent.internal_id;
    let mut m = StateUpdateMetadata {
        snos_output_path: None,
        program_output_path: None,
        blob_data_path: None,
        da_segment_path: None,
        tx_hash: None,
        tx_nonce: None,
        tx_attempts: Vec::new(),
        context: SettlementContext::Batch(SettlementContextData {
            to_settle: index,
            last_failed: None,
        }),
        storage_artifacts_tagged_at: None,
    };
    match (layer, &parent.metadata.specific) {
        (Layer::L2, JobSpecificMetadata::Aggregator(a)) => {
            m.snos_output_path = a.snos_output_path.clone();
            m.program_output_path = a.program_output_path.clone();
            m.da_segment_path = a.da_segment_path.clone();
            m.blob_data_path = a.blob_data_path.clone();
        }
        (Layer::L3, JobSpecificMetadata::Da(d)) => {
            m.snos_output_path = Some(format!("{index}/snos_output.json"));
            m.program_output_path = Some(format!("{index}/program_output.txt"));
            m.blob_data_path = d.blob_data_path.clone();
        }
        _ => {
            m.snos_output_path = Some(format!("{index}/snos_output.json"));
            m.program_output_path = Some(format!("{index}/program_output.txt"));
        }
    }
    m
}

/// What the trigger should do given the latest StateTransition and the completed parents
/// after it (ascending): `Some(parent)` to settle it next, `None` to wait.
pub fn next_to_settle<'a>(latest: Option<&JobItem>, parents: &'a [JobItem]) -> Option<&'a JobItem> {
    let expected = match latest {
        Some(j) if j.status != JobStatus::Completed => return None,
        Some(j) => settled_index(j) + 1,
        None => 1,
    };
    let first = parents.iter().min_by_key(|j| j.internal_id)?;
    (first.internal_id == expected).then_some(first)
}

#[async_trait]
impl JobTrigger for UpdateStateTrigger {
    fn trigger_type(&self) -> WorkerTriggerType {
        WorkerTriggerType::UpdateState
    }

    fn creates(&self) -> Option<JobType> {
        Some(JobType::StateTransition)
    }

    async fn run(&self, config: Arc<Config>) -> Result<(), TriggerError> {
        let db = config.database();
        let latest = db.get_latest_job_by_type(JobType::StateTransition, None).await?;
        if latest.as_ref().is_some_and(|j| j.status != JobStatus::Completed) {
            tracing::debug!("A StateTransition is in flight; waiting");
            return Ok(());
        }
        let last = latest.as_ref().map_or(0, settled_index);
        let parents = db
            .get_jobs_after_internal_id_by_job_type(
                parent_job_type(config.layer),
                JobStatus::Completed,
                last,
                None,
            )
            .await?;
        let Some(parent) = next_to_settle(latest.as_ref(), &parents) else {
            if let Some(first) = parents.first() {
                tracing::debug!(
                    last_settled = last,
                    next_candidate = first.internal_id,
                    "The next batch to settle is not ready; waiting"
                );
            }
            return Ok(());
        };
        if config.layer == Layer::L2 {
            let batch = db
                .get_aggregator_batches(AggregatorBatchQuery {
                    indexes: vec![parent.internal_id],
                    ..Default::default()
                })
                .await?
                .into_iter()
                .find(|b| b.index == parent.internal_id);
            match batch {
                Some(b) if b.status == AggregatorBatchStatus::ReadyForStateUpdate => {}
                other => {
                    tracing::debug!(
                        aggregator_batch = parent.internal_id,
                        status = ?other.map(|b| b.status),
                        "Aggregator batch not ReadyForStateUpdate; waiting"
                    );
                    return Ok(());
                }
            }
        }
        let m = state_update_metadata(config.layer, parent);
        create_once(
            &config,
            JobType::StateTransition,
            parent.internal_id,
            JobSpecificMetadata::StateUpdate(m),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::jobs::AggregatorMetadata;

    fn agg(i: u64) -> JobItem {
        let mut j = JobItem::new(
            JobType::Aggregator,
            i,
            JobSpecificMetadata::Aggregator(AggregatorMetadata {
                batch_num: i,
                program_output_path: Some(format!("artifacts/batch/{i}/program_output.txt")),
                da_segment_path: Some(format!("artifacts/batch/{i}/da_blob.json")),
                ..Default::default()
            }),
        );
        j.status = JobStatus::Completed;
        j
    }

    fn st(i: u64, status: JobStatus) -> JobItem {
        let mut j = JobItem::new(
            JobType::StateTransition,
            i,
            JobSpecificMetadata::StateUpdate(state_update_metadata(Layer::L2, &agg(i))),
        );
        j.status = status;
        j
    }

    #[test]
    fn strictly_sequential() {
        let parents = [agg(2), agg(3)];
        assert!(next_to_settle(None, &parents).is_none(), "1 is missing");
        assert_eq!(next_to_settle(None, &[agg(1), agg(2)]).unwrap().internal_id, 1);
        let done = st(1, JobStatus::Completed);
        assert_eq!(next_to_settle(Some(&done), &parents).unwrap().internal_id, 2);
        let busy = st(1, JobStatus::PendingVerification);
        assert!(next_to_settle(Some(&busy), &parents).is_none());
        assert!(next_to_settle(Some(&done), &[agg(3)]).is_none(), "gap");
        assert!(next_to_settle(Some(&done), &[]).is_none());
    }

    #[test]
    fn paths_come_from_the_aggregator_job() {
        let m = state_update_metadata(Layer::L2, &agg(4));
        assert_eq!(m.context.to_settle(), 4);
        assert!(matches!(m.context, SettlementContext::Batch(_)));
        assert_eq!(m.program_output_path.as_deref(), Some("artifacts/batch/4/program_output.txt"));
        assert_eq!(m.da_segment_path.as_deref(), Some("artifacts/batch/4/da_blob.json"));
    }
}
