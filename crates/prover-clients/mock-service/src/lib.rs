//! The mock prover ([`MockProverService`]): proves nothing, accepts everything.
//!
//! - `CreateJob` returns the dedup id (the SNOS fact) as the job key; job statuses are
//!   `Succeeded` at once.
//! - `RunAggregationWithPie` (local aggregation): with a `MockGpsVerifier` configured, the
//!   aggregator fact is registered on it (skipped when already valid; fees bumped when the
//!   node says underpriced) and the transaction hash is returned (the zero hash when it was
//!   already registered); without one, the fact itself is returned.
//! - Aggregation status: `isValid(fact)` on the verifier when configured, else `Succeeded`.
//! - Proofs (`get_proof`, the L3 path): a proof-shaped JSON that proves nothing but exposes
//!   what a real proof would, as the mock Atlantic server's do
//!   ([`public_output::proof_with_public_output`]): for a `CreateJob` task the output segment
//!   of its PIE, for an L2 verification query (`submit_l2_query`, `{"proof": …}`) the public
//!   output of the proof being verified. The outputs are kept in memory (at most
//!   [`MAX_REMEMBERED`] tasks, oldest forgotten first): a task submitted before a restart has
//!   no proof ([`ProverError::NotFound`]), and the job submits it again.
//! - Buckets are not supported; there are no artifacts.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Instant,
};

use async_trait::async_trait;
use orchestrator_gps_fact_checker::{
    onchain::{parse_fact, B256},
    FactRegistrar, FactRegistry,
};
use orchestrator_prover_client_interface::{
    observe::{self, FactRegistration, ProverEvent},
    public_output, validate_proof_json, AggregationArtifacts, ProverClient, ProverError,
    ProverResult, Task, TaskStatus, TaskType,
};

/// How many tasks' public outputs the mock prover remembers.
pub const MAX_REMEMBERED: usize = 4096;

/// The layout its proofs claim.
const PROOF_LAYOUT: &str = "recursive_with_poseidon";

/// Steps its proofs claim when the job gave none.
const DEFAULT_STEPS: u64 = 32768;

/// A task's proof (JSON), or why its input has none.
type Remembered = Result<String, String>;

#[derive(Debug, Default)]
struct Memory {
    outputs: HashMap<String, Remembered>,
    order: VecDeque<String>,
}

impl Memory {
    fn insert(&mut self, task_id: String, entry: Remembered) {
        if self.outputs.insert(task_id.clone(), entry).is_none() {
            self.order.push_back(task_id);
            while self.order.len() > MAX_REMEMBERED {
                if let Some(old) = self.order.pop_front() {
                    self.outputs.remove(&old);
                }
            }
        }
    }
}

/// The mock prover.
#[derive(Debug, Clone, Default)]
pub struct MockProverService {
    verifier: Option<Arc<FactRegistrar>>,
    memory: Arc<Mutex<Memory>>,
}

impl MockProverService {
    /// A mock prover that registers facts through `verifier`, if given.
    pub fn new(verifier: Option<Arc<FactRegistrar>>) -> Self {
        Self { verifier, memory: Arc::default() }
    }

    fn remember(&self, task_id: &str, proof: Remembered) {
        self.memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(task_id.to_owned(), proof);
    }
}

/// A proof (JSON) exposing the output segment of a zipped PIE.
fn pie_proof(zip: &[u8], n_steps: Option<usize>) -> Remembered {
    use orchestrator_gps_fact_checker::fact::pie;
    let parsed = pie::read_pie_bytes(zip).map_err(|e| format!("the PIE does not parse: {e}"))?;
    let output =
        pie::program_output(&parsed).map_err(|e| format!("the PIE has no readable output: {e}"))?;
    let steps = n_steps.map_or(DEFAULT_STEPS, |n| n as u64);
    Ok(public_output::proof_with_public_output(PROOF_LAYOUT, steps, &output).to_string())
}

/// A proof (JSON) exposing the public output of the proof an L2 verification query verifies
/// (`{"proof": …}`, or the bare proof).
fn verification_proof(proof: &str, n_steps: Option<usize>) -> Remembered {
    let json = validate_proof_json(proof).map_err(|e| format!("the proof to verify: {e}"))?;
    let inner = json.get("proof").unwrap_or(&json);
    let output =
        public_output::public_output(inner).map_err(|e| format!("the proof to verify: {e}"))?;
    let steps = n_steps.map_or(DEFAULT_STEPS, |n| n as u64);
    Ok(public_output::proof_with_public_output(PROOF_LAYOUT, steps, &output).to_string())
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
            Task::CreateJob(info) => {
                self.remember(&info.dedup_id, pie_proof(&info.cairo_pie_zip, info.num_steps));
                Ok(info.dedup_id)
            }
            Task::CreateBucket | Task::RunAggregation(_) => {
                Err(ProverError::Unsupported { prover: "mock", operation: "buckets" })
            }
            Task::RunAggregationWithPie(info) => match &self.verifier {
                None => Ok(info.fact_hash),
                Some(verifier) => {
                    let fact = fact_of(&info.fact_hash)?;
                    let started = Instant::now();
                    let registered = verifier.ensure_registered(fact).await;
                    let outcome = match &registered {
                        Ok(Some(_)) => FactRegistration::NewlyRegistered,
                        Ok(None) => FactRegistration::AlreadyRegistered,
                        Err(_) => FactRegistration::Error,
                    };
                    let elapsed = started.elapsed();
                    observe::event(ProverEvent::MockFactRegistration { outcome, elapsed });
                    let tx = registered.map_err(fact_error)?;
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
                let fact = fact_of(fact)?;
                let started = Instant::now();
                let valid = verifier.is_valid(fact).await;
                observe::event(ProverEvent::MockIsValidCheck { elapsed: started.elapsed() });
                let valid = valid.map_err(fact_error)?;
                Ok(if valid { TaskStatus::Succeeded } else { TaskStatus::Processing })
            }
            _ => Ok(TaskStatus::Succeeded),
        }
    }

    async fn get_proof(&self, task_id: &str) -> ProverResult<String> {
        let remembered = self
            .memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .outputs
            .get(task_id)
            .cloned();
        let proof = remembered.ok_or_else(|| ProverError::NotFound {
            operation: "mock proof".into(),
            what: format!(
                "task {task_id} (the mock prover keeps its proofs in memory: it was restarted since \
                 the task was submitted, or forgot it among more than {MAX_REMEMBERED} newer ones)"
            ),
        })?;
        proof.map_err(|reason| {
            ProverError::InvalidProof(format!("mock proof of task {task_id}: {reason}"))
        })
    }

    async fn submit_l2_query(
        &self,
        task_id: &str,
        proof: &str,
        n_steps: Option<usize>,
    ) -> ProverResult<String> {
        self.remember(task_id, verification_proof(proof, n_steps));
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
    use orchestrator_prover_client_interface::{ApplicativeJobInfo, CreateJobInfo, Retryable};

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

    fn create_job(pie: Vec<u8>, dedup_id: &str) -> Task {
        Task::CreateJob(CreateJobInfo {
            cairo_pie_zip: pie,
            bucket_id: None,
            bucket_job_index: None,
            num_steps: Some(1234),
            dedup_id: dedup_id.into(),
        })
    }

    /// The L3 path: the proof of a PIE exposes the PIE's output segment; the proof of its L2
    /// verification exposes the same output (what StateTransition compares and settles).
    #[tokio::test]
    async fn proofs_expose_the_pie_output_and_the_verified_output() {
        use orchestrator_gps_fact_checker::fact::pie;
        use orchestrator_prover_client_interface::public_output::public_output;
        let zip = orchestrator_test_support::vectors::bytes("pie/fibonacci.zip");
        let expected = pie::program_output(&pie::read_pie_bytes(&zip).unwrap()).unwrap();
        assert!(!expected.is_empty());
        let p = MockProverService::default();
        let key = p.submit_task(create_job(zip, "0xfact")).await.unwrap();
        assert_eq!(key, "0xfact");
        let proof = p.get_proof(&key).await.unwrap();
        let json = validate_proof_json(&proof).unwrap();
        assert_eq!(public_output(&json).unwrap(), expected);
        assert_eq!(json["public_input"]["n_steps"], 1234);

        // ProofRegistration wraps the stored proof and keys the query by the job id.
        let wrapped = format!("{{\"proof\": {proof}}}");
        let id = p.submit_l2_query("job-1", &wrapped, None).await.unwrap();
        assert_eq!(id, "job-1");
        assert_eq!(
            p.get_task_status(TaskType::Job, &id, None).await.unwrap(),
            TaskStatus::Succeeded
        );
        let part2 = validate_proof_json(&p.get_proof(&id).await.unwrap()).unwrap();
        assert_eq!(public_output(&part2).unwrap(), expected);
    }

    #[tokio::test]
    async fn unknown_tasks_and_unreadable_inputs_are_named_errors() {
        let p = MockProverService::default();
        let err = p.get_proof("0xnever").await.unwrap_err();
        assert!(matches!(err, ProverError::NotFound { .. }), "{err:?}");
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("task 0xnever") && err.to_string().contains("restarted"));
        // Any zip is accepted as a job (the mock accepts everything), but it has no proof.
        p.submit_task(create_job(b"PK\x03\x04junk".to_vec(), "0xjunk")).await.unwrap();
        let err = p.get_proof("0xjunk").await.unwrap_err();
        assert!(matches!(err, ProverError::InvalidProof(_)), "{err:?}");
        assert!(err.to_string().contains("the PIE does not parse"), "{err}");
        p.submit_l2_query("job-2", "{\"proof\": {}}", None).await.unwrap();
        let err = p.get_proof("job-2").await.unwrap_err();
        assert!(err.to_string().contains("no public_input"), "{err}");
    }

    #[tokio::test]
    async fn memory_is_bounded_oldest_first() {
        let p = MockProverService::default();
        let zip = orchestrator_test_support::vectors::bytes("pie/fibonacci.zip");
        p.submit_task(create_job(zip.clone(), "first")).await.unwrap();
        for i in 0..MAX_REMEMBERED {
            p.submit_l2_query(&format!("q{i}"), "{}", None).await.unwrap();
        }
        assert!(matches!(p.get_proof("first").await, Err(ProverError::NotFound { .. })));
        assert!(p.get_proof(&format!("q{}", MAX_REMEMBERED - 1)).await.is_err_and(|e| {
            // Remembered (its input had no public output), not forgotten.
            matches!(e, ProverError::InvalidProof(_))
        }));
    }
}
