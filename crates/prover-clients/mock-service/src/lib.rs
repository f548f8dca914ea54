//! The mock prover ([`MockProverService`]): proves nothing, accepts everything.
//!
//! - `CreateJob` returns the dedup id (the SNOS fact) as the job key; job statuses are
//!   `Succeeded` at once.
//! - `RunAggregationWithPie` (local aggregation): with a `MockGpsVerifier` configured, the
//!   aggregator fact is registered on it (skipped when already valid; fees bumped when the
//!   node says underpriced) and the transaction hash is returned (the zero hash when it was
//!   already registered); without one, the fact itself is returned.
//! - Aggregation status: `isValid(fact)` on the verifier when configured, else `Succeeded`.
//! - Buckets are not supported; there are no proofs and no artifacts.

use std::sync::Arc;

use async_trait::async_trait;
use orchestrator_gps_fact_checker::{
    onchain::{parse_fact, B256},
    FactRegistrar, FactRegistry,
};
use orchestrator_prover_client_interface::{
    AggregationArtifacts, ProverClient, ProverError, ProverResult, Task, TaskStatus, TaskType,
};

/// The mock prover.
#[derive(Debug, Clone, Default)]
pub struct MockProverService {
    verifier: Option<Arc<FactRegistrar>>,
}

impl MockProverService {
    /// A mock prover that registers facts through `verifier`, if given.
    pub fn new(verifier: Option<Arc<FactRegistrar>>) -> Self {
        Self { verifier }
    }
}

fn fact_of(fact: &str) -> ProverResult<B256> {
    parse_fact(fact).map_err(|e| ProverError::invalid_response("mock prover", e))
}

fn fact_error(e: orchestrator_gps_fact_checker::FactCheckError) -> ProverError {
    if e.is_retryable() {
        ProverError::FactCheck(e.to_string())
    } else {
        ProverError::other(e)
    }
}

#[async_trait]
impl ProverClient for MockProverService {
    async fn submit_task(&self, task: Task) -> ProverResult<String> {
        match task {
            Task::CreateJob(info) => Ok(info.dedup_id),
            Task::CreateBucket | Task::RunAggregation(_) => {
                Err(ProverError::Unsupported { prover: "mock", operation: "buckets" })
            }
            Task::RunAggregationWithPie(info) => match &self.verifier {
                None => Ok(info.fact_hash),
                Some(verifier) => {
                    let fact = fact_of(&info.fact_hash)?;
                    let tx = verifier.ensure_registered(fact).await.map_err(fact_error)?;
                    Ok(tx.unwrap_or(B256::ZERO).to_string())
                }
            },
        }
    }

    async fn get_task_status(
        &self,
        task_type: TaskType,
        _task_id: &str,
        fact: Option<&str>,
    ) -> ProverResult<TaskStatus> {
        match (task_type, &self.verifier, fact) {
            (TaskType::Aggregation, Some(verifier), Some(fact)) => {
                let valid = verifier.is_valid(fact_of(fact)?).await.map_err(fact_error)?;
                Ok(if valid { TaskStatus::Succeeded } else { TaskStatus::Processing })
            }
            _ => Ok(TaskStatus::Succeeded),
        }
    }

    async fn get_proof(&self, _task_id: &str) -> ProverResult<String> {
        Err(ProverError::Unsupported { prover: "mock", operation: "proof download" })
    }

    async fn submit_l2_query(
        &self,
        task_id: &str,
        _proof: &str,
        _n_steps: Option<usize>,
    ) -> ProverResult<String> {
        Ok(task_id.to_owned())
    }

    async fn get_aggregation_artifacts(
        &self,
        _external_id: &str,
        _include_proof: bool,
    ) -> ProverResult<AggregationArtifacts> {
        Ok(AggregationArtifacts::default())
    }
}

#[cfg(test)]
mod tests {
    use orchestrator_prover_client_interface::{ApplicativeJobInfo, CreateJobInfo};

    use super::*;

    #[tokio::test]
    async fn without_a_verifier_everything_succeeds_and_ids_echo() {
        let p = MockProverService::default();
        let job = CreateJobInfo {
            cairo_pie_zip: vec![],
            bucket_id: None,
            bucket_job_index: None,
            num_steps: None,
            dedup_id: "0xfact".into(),
        };
        assert_eq!(p.submit_task(Task::CreateJob(job)).await.unwrap(), "0xfact");
        let agg = ApplicativeJobInfo {
            cairo_pie_zip: vec![],
            children_cairo_job_keys: vec![],
            fact_hash: "0xagg".into(),
        };
        assert_eq!(p.submit_task(Task::RunAggregationWithPie(agg)).await.unwrap(), "0xagg");
        assert_eq!(
            p.get_task_status(TaskType::Aggregation, "x", Some("0x1")).await.unwrap(),
            TaskStatus::Succeeded
        );
        assert!(p.submit_task(Task::CreateBucket).await.is_err());
        assert_eq!(
            p.get_aggregation_artifacts("x", true).await.unwrap(),
            AggregationArtifacts::default()
        );
    }
}
