//! The StarkWare SHARP gateway ([`SharpProverService`]) over mutual TLS.
//!
//! The client authenticates with a certificate and key (PEM, PKCS#8) and trusts only the
//! pinned server certificate (no system roots). Every request carries `customer_id`.
//!
//! - `add_job` proves a SNOS PIE keyed by its fact (`cairo_job_key`), as an applicative
//!   child (`offchain_proof=true`, `for_applicative=true`);
//! - `add_applicative_job` proves the aggregator PIE keyed by the aggregator fact, with the
//!   children's keys;
//! - submissions are idempotent: the key's status is asked first and anything but `UNKNOWN`
//!   means the job exists, so the key is reused;
//! - status mapping: job `PROCESSED` (or `IN_PROGRESS` with `validation_done`) → succeeded;
//!   aggregation `PROCESSED` → succeeded only once the fact is valid on the GPS verifier;
//!   `FAILED`/`INVALID`/`UNKNOWN` → failed; the rest → processing.

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use base64::Engine;
use orchestrator_gps_fact_checker::{onchain::parse_fact, FactRegistry};
use orchestrator_prover_client_interface::{
    observe::{self, ProverEvent},
    retry::{send_observed, transport_error},
    validate_proof_json, AggregationArtifacts, ProverClient, ProverError, ProverResult,
    RetryPolicy, Task, TaskStatus, TaskType,
};
use orchestrator_utils::{secret::credentials_headers, upstream::CONNECT_TIMEOUT, Secret};
use serde::{Deserialize, Serialize};
use url::Url;

/// The prover name the API call metrics carry.
const PROVER: &str = "sharp";

/// Settings of the SHARP client.
#[derive(Debug, Clone)]
pub struct SharpConfig {
    /// Gateway URL. Credentials in it (`https://user:password@host/`) are sent as an
    /// `Authorization: Basic` header; the client keeps the URL without them.
    pub url: Url,
    /// Customer id (query parameter of every call).
    pub customer_id: String,
    /// Client certificate (PEM).
    pub user_crt_pem: String,
    /// Client key (PEM, PKCS#8).
    pub user_key_pem: Secret<String>,
    /// The server certificate to trust (PEM); nothing else is trusted.
    pub server_crt_pem: String,
    /// Retry policy of every request.
    pub retry: RetryPolicy,
    /// Timeout of one request.
    pub request_timeout: Duration,
}

/// SHARP job statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SharpJobStatus {
    /// The key is not known.
    Unknown,
    /// Accepted, not created yet.
    NotCreated,
    /// Running.
    InProgress,
    /// Proven.
    Processed,
    /// Rejected input.
    Invalid,
    /// Failed.
    Failed,
}

impl SharpJobStatus {
    /// The status as SHARP spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "UNKNOWN",
            Self::NotCreated => "NOT_CREATED",
            Self::InProgress => "IN_PROGRESS",
            Self::Processed => "PROCESSED",
            Self::Invalid => "INVALID",
            Self::Failed => "FAILED",
        }
    }
}

/// `GET get_status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharpStatusResponse {
    /// Status.
    pub status: SharpJobStatus,
    /// Why it is invalid (e.g. `INVALID_CAIRO_PIE_FILE_FORMAT`).
    #[serde(default)]
    pub invalid_reason: Option<String>,
    /// Error log of a failed job.
    #[serde(default)]
    pub error_log: Option<String>,
    /// Whether the PIE was validated (the applicative job may then be sent).
    #[serde(default)]
    pub validation_done: Option<bool>,
}

/// `POST add_job` / `add_applicative_job`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharpAddJobResponse {
    /// Result code.
    #[serde(default)]
    pub code: Option<String>,
    /// Message.
    #[serde(default)]
    pub message: Option<String>,
}

/// The SHARP [`ProverClient`].
#[derive(Clone)]
pub struct SharpProverService {
    http: reqwest::Client,
    config: SharpConfig,
    fact_checker: Arc<dyn FactRegistry>,
}

impl fmt::Debug for SharpProverService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharpProverService").field("url", &self.config.url).finish_non_exhaustive()
    }
}

fn failed_reason(s: &SharpStatusResponse) -> String {
    let detail =
        s.invalid_reason.as_deref().or(s.error_log.as_deref()).unwrap_or("no reason given");
    format!("SHARP status {:?}: {detail}", s.status)
}

impl SharpProverService {
    /// A client with the mTLS identity and pinned server certificate of `config`.
    ///
    /// # Errors
    /// `Config` when a PEM does not parse or the TLS client cannot be built (the key is never
    /// printed).
    pub fn new(mut config: SharpConfig, fact_checker: Arc<dyn FactRegistry>) -> ProverResult<Self> {
        let (url, headers) = credentials_headers(&config.url);
        config.url = url;
        let mut identity_pem = config.user_crt_pem.clone().into_bytes();
        identity_pem.push(b'\n');
        identity_pem.extend_from_slice(config.user_key_pem.expose().as_bytes());
        let identity = reqwest::Identity::from_pem(&identity_pem).map_err(|_| {
            ProverError::Config(
                "the SHARP client certificate or key is not valid PEM (PKCS#8)".into(),
            )
        })?;
        let server =
            reqwest::Certificate::from_pem(config.server_crt_pem.as_bytes()).map_err(|_| {
                ProverError::Config("the SHARP server certificate is not valid PEM".into())
            })?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(server)
            .identity(identity)
            .default_headers(headers)
            .timeout(config.request_timeout)
            .connect_timeout(
                config.retry.read_timeout.map_or(CONNECT_TIMEOUT, |t| t.min(CONNECT_TIMEOUT)),
            )
            .build()
            .map_err(|e| ProverError::Config(format!("cannot build the SHARP TLS client: {e}")))?;
        Ok(Self { http, config, fact_checker })
    }

    fn url(&self, route: &str, params: &[(&str, &str)]) -> ProverResult<Url> {
        let mut url = self.config.url.clone();
        url.path_segments_mut()
            .map_err(|()| ProverError::Config("the SHARP URL cannot be a base".into()))?
            .pop_if_empty()
            .push(route);
        url.query_pairs_mut()
            .append_pair("customer_id", &self.config.customer_id)
            .extend_pairs(params);
        Ok(url)
    }

    /// `GET is_alive`.
    ///
    /// # Errors
    /// Transport or HTTP errors.
    pub async fn is_alive(&self) -> ProverResult<()> {
        let url = self.url("is_alive", &[])?;
        send_observed(PROVER, &self.config.retry, "is_alive", || self.http.get(url.clone()))
            .await?;
        Ok(())
    }

    /// `GET get_status?cairo_job_key=`.
    ///
    /// # Errors
    /// Transport, HTTP or decoding errors.
    pub async fn get_status(&self, key: &str) -> ProverResult<SharpStatusResponse> {
        const OP: &str = "get_status";
        let url = self.url("get_status", &[("cairo_job_key", key)])?;
        let r =
            send_observed(PROVER, &self.config.retry, OP, || self.http.get(url.clone())).await?;
        let bytes = r.bytes().await.map_err(|e| transport_error(OP, &e))?;
        let answer: SharpStatusResponse =
            serde_json::from_slice(&bytes).map_err(|e| ProverError::from_body(OP, &e))?;
        observe::event(ProverEvent::SharpJobStatus(answer.status.name()));
        Ok(answer)
    }

    async fn post_job(
        &self,
        route: &'static str,
        key: &str,
        params: &[(&str, &str)],
        body: serde_json::Value,
    ) -> ProverResult<()> {
        let mut all = vec![("cairo_job_key", key)];
        all.extend_from_slice(params);
        let url = self.url(route, &all)?;
        let r = send_observed(PROVER, &self.config.retry, route, || {
            self.http.post(url.clone()).json(&body)
        })
        .await?;
        let bytes = r.bytes().await.map_err(|e| transport_error(route, &e))?;
        let answer: SharpAddJobResponse = serde_json::from_slice(&bytes).unwrap_or_default();
        tracing::info!(target: "orch::prover", key, route, code = ?answer.code, message = ?answer.message, "SHARP job submitted");
        Ok(())
    }

    /// `POST add_job`: a child job; returns the key. Re-submitting a known key is a no-op.
    ///
    /// # Errors
    /// Transport, HTTP or decoding errors.
    pub async fn add_job(&self, key: &str, pie_zip: &[u8]) -> ProverResult<String> {
        if self.get_status(key).await?.status != SharpJobStatus::Unknown {
            observe::event(ProverEvent::SharpIdempotencyHit);
            return Ok(key.to_owned());
        }
        let body = serde_json::json!({ "cairo_pie_encoded": base64::engine::general_purpose::STANDARD.encode(pie_zip) });
        let params = [
            ("offchain_proof", "true"),
            ("for_applicative", "true"),
            ("program_hash_function", "PEDERSEN"),
        ];
        self.post_job("add_job", key, &params, body).await?;
        Ok(key.to_owned())
    }

    /// `POST add_applicative_job`: the aggregation; returns the key. Idempotent like `add_job`.
    ///
    /// # Errors
    /// Transport, HTTP or decoding errors.
    pub async fn add_applicative_job(
        &self,
        key: &str,
        pie_zip: &[u8],
        children: &[String],
    ) -> ProverResult<String> {
        if self.get_status(key).await?.status != SharpJobStatus::Unknown {
            observe::event(ProverEvent::SharpIdempotencyHit);
            return Ok(key.to_owned());
        }
        let body = serde_json::json!({
            "cairo_pie_encoded": base64::engine::general_purpose::STANDARD.encode(pie_zip),
            "children_cairo_job_keys": children,
        });
        let params = [("offchain_proof", "false"), ("program_hash_function", "PEDERSEN")];
        self.post_job("add_applicative_job", key, &params, body).await?;
        Ok(key.to_owned())
    }
}

#[async_trait]
impl ProverClient for SharpProverService {
    async fn submit_task(&self, task: Task) -> ProverResult<String> {
        match task {
            Task::CreateJob(info) => self.add_job(&info.dedup_id, &info.cairo_pie_zip).await,
            Task::RunAggregationWithPie(info) => {
                self.add_applicative_job(
                    &info.fact_hash,
                    &info.cairo_pie_zip,
                    &info.children_cairo_job_keys,
                )
                .await
            }
            Task::CreateBucket | Task::RunAggregation(_) => {
                Err(ProverError::Unsupported { prover: "sharp", operation: "buckets" })
            }
        }
    }

    async fn get_task_status(
        &self,
        task_type: TaskType,
        task_id: &str,
        fact: Option<&str>,
    ) -> ProverResult<TaskStatus> {
        let s = self.get_status(task_id).await?;
        Ok(match (task_type, s.status) {
            (_, SharpJobStatus::Failed | SharpJobStatus::Invalid | SharpJobStatus::Unknown) => {
                TaskStatus::Failed(failed_reason(&s))
            }
            (TaskType::Job, SharpJobStatus::Processed) => TaskStatus::Succeeded,
            (TaskType::Job, SharpJobStatus::InProgress) if s.validation_done == Some(true) => {
                TaskStatus::Succeeded
            }
            (TaskType::Aggregation, SharpJobStatus::Processed) => {
                let fact = fact.ok_or_else(|| {
                    ProverError::Config("an aggregation status needs its fact".into())
                })?;
                let fact = parse_fact(fact).map_err(|e| ProverError::Config(e.to_string()))?;
                if self
                    .fact_checker
                    .is_valid(fact)
                    .await
                    .map_err(|e| ProverError::FactCheck(e.to_string()))?
                {
                    TaskStatus::Succeeded
                } else {
                    TaskStatus::Processing
                }
            }
            _ => TaskStatus::Processing,
        })
    }

    async fn get_proof(&self, task_id: &str) -> ProverResult<String> {
        const OP: &str = "get_proof";
        let url = self.url("get_proof", &[("cairo_job_key", task_id)])?;
        let r =
            send_observed(PROVER, &self.config.retry, OP, || self.http.get(url.clone())).await?;
        let proof = r.text().await.map_err(|e| transport_error(OP, &e))?;
        validate_proof_json(&proof)?;
        Ok(proof)
    }

    async fn submit_l2_query(
        &self,
        _task_id: &str,
        _proof: &str,
        _n_steps: Option<usize>,
    ) -> ProverResult<String> {
        Err(ProverError::Unsupported { prover: "sharp", operation: "L2 verification" })
    }

    async fn get_aggregation_artifacts(
        &self,
        external_id: &str,
        include_proof: bool,
    ) -> ProverResult<AggregationArtifacts> {
        let proof = if include_proof { Some(self.get_proof(external_id).await?) } else { None };
        Ok(AggregationArtifacts { proof, ..AggregationArtifacts::default() })
    }
}
