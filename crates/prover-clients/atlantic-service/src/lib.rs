//! The Herodotus Atlantic prover ([`AtlanticProverService`]).
//!
//! - Proving (`Task::CreateJob`): the dedup id is looked up first
//!   (`GET /atlantic-query-by-dedup-id`); a query that exists and has not failed is reused,
//!   so re-processing a job never proves its PIE twice. Otherwise the PIE is sent as a
//!   multipart query (`POST /atlantic-query`) with the bucket fields on L2.
//! - Aggregation (L2): a bucket per aggregator batch (`Task::CreateBucket`), closed by
//!   `Task::RunAggregation`; its aggregator query's artifacts (PIE, DA blob, OS output,
//!   proof) are downloaded from the artifacts host.
//! - Verification on L2 (L3): `submit_l2_query` sends a proof to be verified by the Cairo
//!   verifier program.
//! - A finished query counts as `Succeeded` only once its fact is valid on chain, unless facts
//!   are mocked (`mock_fact_hash`); the check goes through a [`FactRegistry`].
//!
//! Every request goes through the shared retry policy (transport errors, 429 and 5xx retried
//! with backoff and jitter, `--upstream-read-*`); the API key travels in the `api-key` header
//! and is never logged (the config's `Debug` redacts it). A 402 (the API key's account has no
//! credits left) is [`ProverError::InsufficientCredits`]: not retried, and the job it stops
//! fails with its own alert.

pub mod client;
pub mod types;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use orchestrator_gps_fact_checker::{onchain::parse_fact, FactRegistry};
use orchestrator_prover_client_interface::{
    validate_proof_json, AggregationArtifacts, CreateJobInfo, ProverClient, ProverError,
    ProverResult, RetryPolicy, Task, TaskStatus, TaskType,
};
use orchestrator_utils::Secret;
use url::Url;

pub use client::{AtlanticClient, FormField};
use types::{
    declared_job_size, AtlanticAggregatorParams, AtlanticBucketStatus, AtlanticCreateBucketRequest,
    AtlanticQuery, AtlanticQueryStatus, AtlanticQueryStep,
};

/// Aggregator version requested for new buckets.
pub const AGGREGATOR_VERSION: &str = "snos_aggregator_0.14.1";
/// Layout of the L2 verification query.
pub const L2_VERIFICATION_LAYOUT: &str = "recursive_with_poseidon";
/// Artifact names under `{artifacts}/queries/{id}/`.
pub mod artifacts {
    /// The proof.
    pub const PROOF: &str = "proof.json";
    /// The aggregator PIE.
    pub const PIE: &str = "pie.cairo0.zip";
    /// The DA segment.
    pub const DA_BLOB: &str = "da_blob.json";
    /// The raw OS output.
    pub const SNOS_OUTPUT: &str = "snos_output.json";
}

/// Where proofs are verified; decides the extra query fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtlanticSettlementLayer {
    /// Ethereum: the configured `result` step, no layout.
    Ethereum,
    /// Starknet: `result=PROOF_GENERATION` and the prover layout.
    Starknet,
}

/// Everything the Atlantic client needs.
#[derive(Debug, Clone)]
pub struct AtlanticConfig {
    /// Service URL.
    pub service_url: Url,
    /// API key (sent as the `api-key` header).
    pub api_key: Secret<String>,
    /// Base URL of the artifacts.
    pub artifacts_base_url: Url,
    /// Facts are mocked: no on-chain check, buckets with `mockProof`.
    pub mock_fact_hash: bool,
    /// `MAINNET` or `TESTNET`.
    pub network: String,
    /// `rust` or `python`.
    pub cairo_vm: String,
    /// Last step of a proving query.
    pub result: AtlanticQueryStep,
    /// `stone` or `stwo`.
    pub sharp_prover: String,
    /// Where proofs are verified.
    pub settlement_layer: AtlanticSettlementLayer,
    /// Layout of the proven PIEs (sent on the Starknet layer).
    pub proof_layout: String,
    /// Program hash of the Cairo verifier (L2 verification queries).
    pub cairo_verifier_program_hash: Option<String>,
    /// Aggregator parameters of new buckets.
    pub aggregator_params: AtlanticAggregatorParams,
    /// Retry policy of every request.
    pub retry: RetryPolicy,
    /// Timeout of one request.
    pub request_timeout: Duration,
}

/// The Atlantic [`ProverClient`].
#[derive(Debug, Clone)]
pub struct AtlanticProverService {
    client: AtlanticClient,
    config: AtlanticConfig,
    fact_checker: Option<Arc<dyn FactRegistry>>,
}

impl AtlanticProverService {
    /// A service over `config`; `fact_checker` is ignored when facts are mocked.
    ///
    /// # Errors
    /// `Config` when the HTTP client cannot be built.
    pub fn new(
        config: AtlanticConfig,
        fact_checker: Option<Arc<dyn FactRegistry>>,
    ) -> ProverResult<Self> {
        let client = AtlanticClient::new(
            config.service_url.clone(),
            config.artifacts_base_url.clone(),
            config.api_key.clone(),
            config.retry,
            config.request_timeout,
            config.mock_fact_hash,
        )?;
        let fact_checker = if config.mock_fact_hash { None } else { fact_checker };
        Ok(Self { client, config, fact_checker })
    }

    /// The low-level client.
    pub fn client(&self) -> &AtlanticClient {
        &self.client
    }

    async fn create_job(&self, info: CreateJobInfo) -> ProverResult<String> {
        if let Some(existing) = self.client.query_by_dedup_id(&info.dedup_id).await? {
            let q = existing.atlantic_query;
            if q.status != AtlanticQueryStatus::Failed {
                if q.bucket_id != info.bucket_id || q.bucket_job_index != info.bucket_job_index {
                    return Err(ProverError::invalid_response(
                        "dedup lookup",
                        format!(
                            "query {} with dedup id {} is in bucket {:?} at index {:?}, not {:?} at {:?}",
                            q.id, info.dedup_id, q.bucket_id, q.bucket_job_index, info.bucket_id, info.bucket_job_index
                        ),
                    ));
                }
                tracing::info!(target: "orch::prover", query_id = %q.id, dedup_id = %info.dedup_id, "Reusing the Atlantic query of this dedup id");
                return Ok(q.id);
            }
            tracing::warn!(target: "orch::prover", query_id = %q.id, dedup_id = %info.dedup_id, "The earlier query of this dedup id failed; submitting again");
        }
        let result = match self.config.settlement_layer {
            AtlanticSettlementLayer::Ethereum => self.config.result,
            AtlanticSettlementLayer::Starknet => AtlanticQueryStep::ProofGeneration,
        };
        let mut fields = vec![
            FormField::Text("declaredJobSize", declared_job_size(info.num_steps).to_owned()),
            FormField::Text("result", result.as_str().to_owned()),
            FormField::Text("network", self.config.network.clone()),
            FormField::Text("cairoVersion", "cairo0".to_owned()),
            FormField::Text("cairoVm", self.config.cairo_vm.clone()),
            FormField::Text("sharpProver", self.config.sharp_prover.clone()),
            FormField::Text("dedupId", info.dedup_id.clone()),
        ];
        if self.config.settlement_layer == AtlanticSettlementLayer::Starknet {
            fields.push(FormField::Text("layout", self.config.proof_layout.clone()));
        }
        if let Some(bucket) = &info.bucket_id {
            fields.push(FormField::Text("bucketId", bucket.clone()));
        }
        if let Some(index) = info.bucket_job_index {
            fields.push(FormField::Text("bucketJobIndex", index.to_string()));
        }
        fields.push(FormField::File("pieFile", "pie.zip", "application/zip", info.cairo_pie_zip));
        let id = self.client.add_query(&fields).await?.atlantic_query_id;
        tracing::info!(target: "orch::prover", query_id = %id, dedup_id = %info.dedup_id, "Atlantic query submitted");
        Ok(id)
    }

    async fn job_status(&self, query_id: &str, fact: Option<&str>) -> ProverResult<TaskStatus> {
        let q = self.client.get_query(query_id).await?.atlantic_query;
        Ok(match q.status {
            AtlanticQueryStatus::Received | AtlanticQueryStatus::InProgress => {
                TaskStatus::Processing
            }
            AtlanticQueryStatus::Failed => TaskStatus::Failed(failure_reason(&q)),
            AtlanticQueryStatus::Done => match (&self.fact_checker, fact) {
                (Some(checker), Some(fact)) => {
                    let parsed =
                        parse_fact(fact).map_err(|e| ProverError::Config(e.to_string()))?;
                    if checker
                        .is_valid(parsed)
                        .await
                        .map_err(|e| ProverError::FactCheck(e.to_string()))?
                    {
                        TaskStatus::Succeeded
                    } else {
                        TaskStatus::Failed(format!(
                            "query {query_id} is done but fact {fact} is not valid on chain"
                        ))
                    }
                }
                _ => TaskStatus::Succeeded,
            },
        })
    }

    async fn bucket_status(&self, bucket_id: &str) -> ProverResult<TaskStatus> {
        let r = self.client.get_bucket(bucket_id).await?;
        Ok(match r.bucket.status {
            AtlanticBucketStatus::Open | AtlanticBucketStatus::InProgress => TaskStatus::Processing,
            AtlanticBucketStatus::Done => TaskStatus::Succeeded,
            AtlanticBucketStatus::Failed => {
                let reason = r
                    .queries
                    .iter()
                    .find(|q| q.status == AtlanticQueryStatus::Failed)
                    .map(failure_reason)
                    .unwrap_or_else(|| "no failed query reported".to_owned());
                TaskStatus::Failed(format!("bucket {bucket_id} failed: {reason}"))
            }
        })
    }
}

fn failure_reason(q: &AtlanticQuery) -> String {
    format!("query {} failed: {}", q.id, q.error_reason.as_deref().unwrap_or("no reason given"))
}

#[async_trait]
impl ProverClient for AtlanticProverService {
    async fn submit_task(&self, task: Task) -> ProverResult<String> {
        match task {
            Task::CreateJob(info) => self.create_job(info).await,
            Task::CreateBucket => {
                let body = AtlanticCreateBucketRequest {
                    external_id: None,
                    node_width: None,
                    aggregator_version: AGGREGATOR_VERSION.to_owned(),
                    aggregator_params: self.config.aggregator_params.clone(),
                    mock_proof: self.config.mock_fact_hash,
                };
                let bucket = self.client.create_bucket(&body).await?.atlantic_bucket;
                tracing::info!(target: "orch::prover", bucket_id = %bucket.id, "Atlantic bucket created");
                Ok(bucket.id)
            }
            Task::RunAggregation(bucket_id) => {
                // Closing is not idempotent on Atlantic: close only a bucket that is still open.
                let bucket = self.client.get_bucket(&bucket_id).await?.bucket;
                if bucket.status == AtlanticBucketStatus::Open {
                    self.client.close_bucket(&bucket_id).await?;
                    tracing::info!(target: "orch::prover", %bucket_id, "Atlantic bucket closed");
                }
                Ok(bucket_id)
            }
            Task::RunAggregationWithPie(_) => Err(ProverError::Unsupported {
                prover: "atlantic",
                operation: "aggregation of a local PIE",
            }),
        }
    }

    async fn get_task_status(
        &self,
        task_type: TaskType,
        task_id: &str,
        fact: Option<&str>,
    ) -> ProverResult<TaskStatus> {
        match task_type {
            TaskType::Job => self.job_status(task_id, fact).await,
            TaskType::Aggregation => self.bucket_status(task_id).await,
        }
    }

    async fn get_proof(&self, task_id: &str) -> ProverResult<String> {
        let bytes =
            self.client.get_artifact(task_id, artifacts::PROOF).await?.ok_or_else(|| {
                ProverError::NotFound {
                    operation: "download proof".into(),
                    what: format!("proof of query {task_id}"),
                }
            })?;
        let proof =
            String::from_utf8(bytes).map_err(|_| ProverError::InvalidProof("not UTF-8".into()))?;
        validate_proof_json(&proof)?;
        Ok(proof)
    }

    async fn submit_l2_query(
        &self,
        task_id: &str,
        proof: &str,
        n_steps: Option<usize>,
    ) -> ProverResult<String> {
        let program_hash = self.config.cairo_verifier_program_hash.clone().ok_or_else(|| {
            ProverError::Config(
                "an L2 verification query needs the Cairo verifier program hash".into(),
            )
        })?;
        validate_proof_json(proof)?;
        if let Some(existing) = self.client.query_by_dedup_id(task_id).await? {
            if existing.atlantic_query.status != AtlanticQueryStatus::Failed {
                return Ok(existing.atlantic_query.id);
            }
        }
        let fields = vec![
            FormField::Text("programHash", program_hash),
            FormField::Text("layout", L2_VERIFICATION_LAYOUT.to_owned()),
            FormField::Text("declaredJobSize", declared_job_size(n_steps).to_owned()),
            FormField::Text("network", self.config.network.clone()),
            FormField::Text("result", AtlanticQueryStep::ProofVerificationOnL2.as_str().to_owned()),
            FormField::Text("cairoVm", "python".to_owned()),
            FormField::Text("cairoVersion", "cairo0".to_owned()),
            FormField::Text("sharpProver", self.config.sharp_prover.clone()),
            FormField::Text("dedupId", task_id.to_owned()),
            FormField::File(
                "inputFile",
                "proof.json",
                "application/json",
                proof.as_bytes().to_vec(),
            ),
        ];
        Ok(self.client.add_query(&fields).await?.atlantic_query_id)
    }

    async fn get_aggregation_artifacts(
        &self,
        external_id: &str,
        include_proof: bool,
    ) -> ProverResult<AggregationArtifacts> {
        let bucket = self.client.get_bucket(external_id).await?;
        let query = bucket
            .queries
            .iter()
            .find(|q| q.step.is_some_and(AtlanticQueryStep::is_aggregation))
            .ok_or_else(|| ProverError::NotFound {
                operation: "aggregation artifacts".into(),
                what: format!("aggregator query of bucket {external_id}"),
            })?;
        let required = |file: &'static str, got: Option<Vec<u8>>| {
            got.ok_or_else(|| ProverError::NotFound {
                operation: "aggregation artifacts".into(),
                what: format!("{file} of query {}", query.id),
            })
        };
        let cairo_pie =
            required(artifacts::PIE, self.client.get_artifact(&query.id, artifacts::PIE).await?)?;
        let da_segment = required(
            artifacts::DA_BLOB,
            self.client.get_artifact(&query.id, artifacts::DA_BLOB).await?,
        )?;
        let snos_output = self.client.get_artifact(&query.id, artifacts::SNOS_OUTPUT).await?;
        let proof = if include_proof {
            let bytes = required(
                artifacts::PROOF,
                self.client.get_artifact(&query.id, artifacts::PROOF).await?,
            )?;
            let proof = String::from_utf8(bytes)
                .map_err(|_| ProverError::InvalidProof("not UTF-8".into()))?;
            validate_proof_json(&proof)?;
            Some(proof)
        } else {
            None
        };
        Ok(AggregationArtifacts {
            cairo_pie: Some(cairo_pie),
            da_segment: Some(da_segment),
            snos_output,
            proof,
        })
    }
}
