//! Aggregator trigger (L2): an Aggregator job for every closed aggregator batch whose SNOS
//! batches tile it exactly and are all proven (reference §7).

use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    types::{
        batch::{
            AggregatorBatch, AggregatorBatchQuery, AggregatorBatchStatus, SnosBatch,
            SnosBatchStatus,
        },
        jobs::{AggregatorMetadata, JobSpecificMetadata, JobStatus, JobType},
        queue::WorkerTriggerType,
    },
    worker::Config,
};

use super::{available_slots, proving::create_once, JobTrigger, TriggerError};

/// Creates Aggregator jobs, at most `buffer` incomplete ones at a time.
#[derive(Debug, Clone)]
pub struct AggregatorTrigger {
    /// The aggregator job buffer (`--aggregator-job-buffer-size`).
    pub buffer: u64,
    /// Whether the aggregation proof is downloaded for audit.
    pub store_audit_artifacts: bool,
}

/// Whether `snos` (any order) covers `batch`'s blocks exactly, without gap or overlap, and
/// every SNOS batch is closed.
pub fn tiles_exactly(batch: &AggregatorBatch, snos: &[SnosBatch]) -> bool {
    let mut sorted: Vec<&SnosBatch> = snos.iter().collect();
    sorted.sort_by_key(|b| b.start_block);
    let (Some(first), Some(last)) = (sorted.first(), sorted.last()) else {
        return false;
    };
    first.start_block == batch.start_block
        && last.end_block == batch.end_block
        && sorted.windows(2).all(|w| w[1].start_block == w[0].end_block + 1)
        && sorted.iter().all(|b| b.status != SnosBatchStatus::Open)
}

/// The Aggregator job metadata of `batch`.
pub fn aggregator_metadata(
    batch: &AggregatorBatch,
    store_audit_artifacts: bool,
) -> AggregatorMetadata {
    let dir = format!("artifacts/batch/{}", batch.index);
    AggregatorMetadata {
        batch_num: batch.index,
        bucket_id: batch.bucket_id.clone(),
        ensure_on_chain_registration: None,
        download_proof: store_audit_artifacts.then(|| format!("{dir}/proof.json")),
        blob_data_path: Some(format!("blob/batch/{}", batch.index)),
        da_segment_path: Some(format!("{dir}/da_blob.json")),
        cairo_pie_path: Some(format!("{dir}/cairo_pie.zip")),
        snos_output_path: Some(format!("{dir}/snos_output.json")),
        program_output_path: Some(format!("{dir}/program_output.txt")),
        aggregator_query_id: None,
    }
}

#[async_trait]
impl JobTrigger for AggregatorTrigger {
    fn trigger_type(&self) -> WorkerTriggerType {
        WorkerTriggerType::Aggregator
    }

    fn creates(&self) -> Option<JobType> {
        Some(JobType::Aggregator)
    }

    async fn run(&self, config: Arc<Config>) -> Result<(), TriggerError> {
        let slots = available_slots(&config, JobType::Aggregator, self.buffer).await?;
        if slots == 0 {
            return Ok(());
        }
        let db = config.database();
        let batches = db
            .get_aggregator_batches(AggregatorBatchQuery {
                statuses: vec![AggregatorBatchStatus::Closed],
                limit: Some(slots),
                ..Default::default()
            })
            .await?;
        for batch in batches {
            let snos = db.get_snos_batches_by_aggregator_index(batch.index).await?;
            if !tiles_exactly(&batch, &snos) {
                tracing::debug!(
                    aggregator_batch = batch.index,
                    "SNOS batches do not tile the batch yet"
                );
                continue;
            }
            let (lo, hi) =
                snos.iter().fold((u64::MAX, 0), |(lo, hi), b| (lo.min(b.index), hi.max(b.index)));
            let proven = db
                .get_jobs_between_internal_ids(JobType::ProofCreation, JobStatus::Completed, lo, hi)
                .await?;
            if proven.len() != snos.len() {
                continue;
            }
            let m = aggregator_metadata(&batch, self.store_audit_artifacts);
            create_once(
                &config,
                JobType::Aggregator,
                batch.index,
                JobSpecificMetadata::Aggregator(m),
            )
            .await?;
            db.update_aggregator_batch_status_by_index(
                batch.index,
                AggregatorBatchStatus::PendingAggregatorRun,
            )
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snos(index: u64, start: u64, end: u64, status: SnosBatchStatus) -> SnosBatch {
        let mut b = SnosBatch::new(index, Some(1), start, "0.14.1", Default::default());
        b.end_block = end;
        b.num_blocks = end - start + 1;
        b.status = status;
        b
    }

    #[test]
    fn tiling_needs_exact_contiguous_closed_cover() {
        let mut agg = AggregatorBatch::new(1, 10, "0.14.1");
        agg.end_block = 19;
        let c = SnosBatchStatus::Closed;
        assert!(tiles_exactly(&agg, &[snos(2, 15, 19, c), snos(1, 10, 14, c)]));
        assert!(!tiles_exactly(&agg, &[snos(1, 10, 14, c)]), "short");
        assert!(!tiles_exactly(&agg, &[snos(1, 10, 13, c), snos(2, 15, 19, c)]), "gap");
        assert!(!tiles_exactly(&agg, &[snos(1, 10, 15, c), snos(2, 15, 19, c)]), "overlap");
        assert!(
            !tiles_exactly(&agg, &[snos(1, 10, 14, c), snos(2, 15, 19, SnosBatchStatus::Open)]),
            "open"
        );
        assert!(!tiles_exactly(&agg, &[]));
    }
}
