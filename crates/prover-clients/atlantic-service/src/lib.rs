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
//!   are mocked (`mock_fact_hash`); the check goes through a [`FactRegistry`]. On a Starknet
//!   settlement layer (L3) that is the L2 verification query's fact,
//!   `poseidon([verifier program hash, poseidon(public output of its proof)])`, in the Starknet
//!   fact registry; proving queries register no fact there.
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
use orchestrator_gps_fact_checker::{
    fact::Felt, l3_fact, onchain::parse_fact, starknet_registry::felt_to_fact, FactRegistry,
};
use orchestrator_prover_client_interface::{
    public_output::public_output, validate_proof_json, AggregationArtifacts, CreateJobInfo,
    ProverClient, ProverError, ProverResult, RetryPolicy, Task, TaskStatus, TaskType,
};
use orchestrator_utils::{secret::without_userinfo, Secret};
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
    /// Service URL. Credentials in it (`http://user:password@host/`) are sent as an
    /// `Authorization: Basic` header to the service only; the service keeps the URL without them.
    pub service_url: Url,
    /// API key (sent as the `api-key` header).
    pub api_key: Secret<String>,
    /// Base URL of the artifacts (credentials in it go to the artifacts host only, as a header).
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

/// Reads the appchain's chain id, for new buckets whose aggregator parameters have none
/// (the orchestrator's: `starknet_chainId` on the Madara node).
#[async_trait]
pub trait ChainIdSource: Send + Sync + std::fmt::Debug {
    /// The chain id.
    ///
    /// # Errors
    /// Why it could not be read (the bucket is not created; the job retries).
    async fn chain_id(&self) -> Result<Felt, String>;
}

/// The Atlantic [`ProverClient`].
#[derive(Debug, Clone)]
pub struct AtlanticProverService {
    client: AtlanticClient,
    config: AtlanticConfig,
    fact_checker: Option<Arc<dyn FactRegistry>>,
    chain_id_source: Option<Arc<dyn ChainIdSource>>,
    /// The chain id read from `chain_id_source`, once.
    chain_id: Arc<tokio::sync::OnceCell<String>>,
}

impl AtlanticProverService {
    /// A service over `config`; `fact_checker` is ignored when facts are mocked.
    ///
    /// # Errors
    /// `Config` when the HTTP client cannot be built.
    pub fn new(
        mut config: AtlanticConfig,
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
        // The client holds the credentials; the kept settings (printed by `Debug`) do not.
        config.service_url = without_userinfo(&config.service_url);
        config.artifacts_base_url = without_userinfo(&config.artifacts_base_url);
        let fact_checker = if config.mock_fact_hash { None } else { fact_checker };
        Ok(Self { client, config, fact_checker, chain_id_source: None, chain_id: Arc::default() })
    }

    /// Reads the chain id of new buckets from `source` (once, on the first bucket) when the
    /// aggregator parameters have none.
    #[must_use]
    pub fn with_chain_id_source(mut self, source: Arc<dyn ChainIdSource>) -> Self {
        self.chain_id_source = Some(source);
        self
    }

    /// The aggregator parameters of a new bucket: the configured ones, with the chain id
    /// read from the chain id source when they have none.
    pub async fn bucket_params(&self) -> ProverResult<AtlanticAggregatorParams> {
        let mut params = self.config.aggregator_params.clone();
        if let (None, Some(source)) = (&params.chain_id_hex, &self.chain_id_source) {
            let chain_id = self
                .chain_id
                .get_or_try_init(|| async {
                    let id =
                        source.chain_id().await.map_err(|reason| ProverError::Unavailable {
                            operation: "chain id of a new bucket".into(),
                            reason,
                        })?;
                    Ok::<_, ProverError>(format!("{id:#x}"))
                })
                .await?;
            params.chain_id_hex = Some(chain_id.clone());
        }
        Ok(params)
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
            AtlanticQueryStatus::Done
                if self.config.settlement_layer == AtlanticSettlementLayer::Starknet =>
            {
                self.starknet_fact_status(&q).await?
            }
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

    /// A done query on a Starknet settlement layer (L3). The keccak fact of a proven PIE is
    /// registered nowhere there, so a proving query (`PROOF_GENERATION`) is done when Atlantic
    /// says so. An L2 verification query is done once the fact of its proof,
    /// `poseidon([verifier program hash, poseidon(public output)])` — the fact the core
    /// contract checks in `update_state` — is valid in the Starknet fact registry.
    async fn starknet_fact_status(&self, q: &AtlanticQuery) -> ProverResult<TaskStatus> {
        let Some(checker) = &self.fact_checker else {
            return Ok(TaskStatus::Succeeded);
        };
        if !q.is_l2_verification() {
            return Ok(TaskStatus::Succeeded);
        }
        let program_hash = self.config.cairo_verifier_program_hash.as_deref().ok_or_else(|| {
            ProverError::Config(
                "checking an L2 verification fact needs the Cairo verifier program hash".into(),
            )
        })?;
        let program_hash = Felt::from_hex(program_hash).map_err(|_| {
            ProverError::Config(format!(
                "Cairo verifier program hash {program_hash:?} is not a felt"
            ))
        })?;
        let bytes = self.client.get_artifact(&q.id, artifacts::PROOF).await?.ok_or_else(|| {
            ProverError::NotFound {
                operation: "L2 verification fact".into(),
                what: format!("proof of query {}", q.id),
            }
        })?;
        let proof: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            ProverError::InvalidProof(format!("the proof of query {} is not JSON: {e}", q.id))
        })?;
        let output = public_output(&proof)?;
        let fact = l3_fact(program_hash, &output);
        let valid = checker.is_valid(felt_to_fact(fact)).await.map_err(|e| {
            if e.is_retryable() {
                ProverError::FactCheck(e.to_string())
            } else {
                ProverError::Config(e.to_string())
            }
        })?;
        Ok(if valid {
            tracing::debug!(target: "orch::prover", query_id = %q.id, fact = %format!("{fact:#x}"), "L2 verification fact is registered");
            TaskStatus::Succeeded
        } else {
            TaskStatus::Failed(format!(
                "L2 verification query {} is done but its fact {fact:#x} \
                 (poseidon of the verifier program hash and of its proof's public output) is \
                 not registered in the Starknet fact registry",
                q.id
            ))
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
                    aggregator_params: self.bucket_params().await?,
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
