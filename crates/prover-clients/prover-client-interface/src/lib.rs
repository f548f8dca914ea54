//! The prover capability: the [`ProverClient`] trait every prover backend implements (SHARP,
//! Atlantic, the mock prover), the tasks it accepts ([`Task`]), the statuses it reports
//! ([`TaskStatus`]), its error ([`ProverError`]) and the HTTP retry policy the HTTP backends
//! share ([`retry`]), and how backends report their calls to the metrics ([`observe`]).
//!
//! Contract of every backend:
//! - `submit_task` is idempotent for a `CreateJob` with the same dedup id: a second call
//!   returns the id of the work already submitted (Atlantic looks the dedup id up, SHARP asks
//!   the status of the job key, the mock prover echoes it);
//! - "not ready yet" is `Ok(TaskStatus::Processing)`, a prover-side failure is
//!   `Ok(TaskStatus::Failed(reason))`, and `Err` means the prover could not be asked;
//! - an `Err` answers [`Retryable::is_retryable`]: only transport and infrastructure
//!   failures (timeouts, 5xx, HTML error pages from a proxy, 429) are retryable; a 402
//!   (no credits left) is [`ProverError::InsufficientCredits`], not retryable, and names its
//!   [`OperatorAction`].

pub mod observe;
pub mod public_output;
pub mod retry;

use std::{fmt, time::Duration};

use async_trait::async_trait;
pub use orchestrator_utils::{OperatorAction, Retryable};

pub use retry::{classify_http_failure, HttpFailureKind, RetryPolicy};

/// A boxed error for the `Other` escape hatch.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Result of a prover operation.
pub type ProverResult<T> = Result<T, ProverError>;

/// What a proving job sends: a Cairo PIE to prove, optionally inside an Atlantic bucket.
#[derive(Clone, PartialEq, Eq)]
pub struct CreateJobInfo {
    /// The Cairo PIE, zipped.
    pub cairo_pie_zip: Vec<u8>,
    /// Atlantic bucket of the aggregator batch (L2 with Atlantic).
    pub bucket_id: Option<String>,
    /// 1-based position of the job in its bucket.
    pub bucket_job_index: Option<u64>,
    /// Steps of the run (sizes the Atlantic job).
    pub num_steps: Option<usize>,
    /// Idempotency key: the job id (Atlantic) or the SNOS fact hex (SHARP, mock prover).
    pub dedup_id: String,
}

impl fmt::Debug for CreateJobInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateJobInfo")
            .field("cairo_pie_zip", &format_args!("<{} bytes>", self.cairo_pie_zip.len()))
            .field("bucket_id", &self.bucket_id)
            .field("bucket_job_index", &self.bucket_job_index)
            .field("num_steps", &self.num_steps)
            .field("dedup_id", &self.dedup_id)
            .finish()
    }
}

/// What a locally run aggregation sends (SHARP applicative job, mock prover).
#[derive(Clone, PartialEq, Eq)]
pub struct ApplicativeJobInfo {
    /// The aggregator PIE, zipped.
    pub cairo_pie_zip: Vec<u8>,
    /// Job keys of the children (the ProofCreation external ids).
    pub children_cairo_job_keys: Vec<String>,
    /// The aggregator fact, `0x` hex; also the job key.
    pub fact_hash: String,
}

impl fmt::Debug for ApplicativeJobInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplicativeJobInfo")
            .field("cairo_pie_zip", &format_args!("<{} bytes>", self.cairo_pie_zip.len()))
            .field("children_cairo_job_keys", &self.children_cairo_job_keys)
            .field("fact_hash", &self.fact_hash)
            .finish()
    }
}

/// Work submitted to a prover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// Prove a PIE; returns the prover's job key.
    CreateJob(CreateJobInfo),
    /// Open an aggregation bucket (Atlantic); returns the bucket id.
    CreateBucket,
    /// Close a bucket so the prover aggregates it (Atlantic); returns the bucket id.
    RunAggregation(String),
    /// Prove a locally run aggregation (SHARP, mock prover); returns the job key or tx hash.
    RunAggregationWithPie(ApplicativeJobInfo),
}

/// Which kind of task a status is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskType {
    /// A proving job (`CreateJob`, L2 verification query).
    Job,
    /// An aggregation (bucket or applicative job).
    Aggregation,
}

/// Where a task is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskStatus {
    /// Still running (or the fact is not registered yet).
    Processing,
    /// Done.
    Succeeded,
    /// The prover gave up, with its reason.
    Failed(String),
}

/// What an aggregation produced; every field is optional because provers differ (SHARP returns
/// only the proof, the mock prover nothing).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AggregationArtifacts {
    /// The aggregator PIE, zipped.
    pub cairo_pie: Option<Vec<u8>>,
    /// The DA segment (JSON array of hex felts).
    pub da_segment: Option<Vec<u8>>,
    /// The aggregator's raw OS output (JSON array of hex felts), when the prover serves it.
    pub snos_output: Option<Vec<u8>>,
    /// The aggregation proof (JSON).
    pub proof: Option<String>,
}

impl fmt::Debug for AggregationArtifacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = |v: &Option<Vec<u8>>| v.as_ref().map(Vec::len);
        f.debug_struct("AggregationArtifacts")
            .field("cairo_pie_len", &len(&self.cairo_pie))
            .field("da_segment_len", &len(&self.da_segment))
            .field("snos_output_len", &len(&self.snos_output))
            .field("proof_len", &self.proof.as_ref().map(String::len))
            .finish()
    }
}

/// Why a prover operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProverError {
    /// The request did not get an answer: connection refused or reset, timeout, TLS failure.
    #[error("{operation}: prover unreachable: {reason}")]
    Unavailable {
        /// What was attempted.
        operation: String,
        /// The transport error.
        reason: String,
    },
    /// The prover answered with an error status.
    #[error("{operation}: HTTP {status}: {body}")]
    Http {
        /// What was attempted.
        operation: String,
        /// HTTP status code.
        status: u16,
        /// The body, truncated.
        body: String,
        /// How the failure was classified.
        kind: HttpFailureKind,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// The prover refused the request because the account has no credits left (HTTP 402
    /// Payment Required). Not retried: nothing changes until an operator tops the account
    /// up; the job fails with its own alert (`prover_insufficient_credits`).
    #[error("{operation}: the prover account has insufficient credits (HTTP 402 Payment Required): {body}")]
    InsufficientCredits {
        /// What was attempted.
        operation: String,
        /// The prover's answer, truncated.
        body: String,
    },
    /// The prover does not know this task (an unknown query id or job key).
    #[error("{operation}: {what} is unknown to the prover")]
    NotFound {
        /// What was attempted.
        operation: String,
        /// The id that was not found.
        what: String,
    },
    /// The answer was cut short or is not JSON at all (a connection closed mid-body, a proxy's
    /// page with a 200): retryable, as a transport failure is.
    #[error("{operation}: unreadable answer (cut short or not JSON): {reason}")]
    UnreadableResponse {
        /// What was attempted.
        operation: String,
        /// The parser's report.
        reason: String,
    },
    /// The prover answered something this client cannot understand.
    #[error("{operation}: unexpected answer: {reason}")]
    InvalidResponse {
        /// What was attempted.
        operation: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A proof that is not valid JSON (or not a proof).
    #[error("invalid proof: {0}")]
    InvalidProof(String),
    /// The operation is not supported by this prover.
    #[error("{operation} is not supported by the {prover} prover")]
    Unsupported {
        /// The prover.
        prover: &'static str,
        /// The operation.
        operation: &'static str,
    },
    /// The on-chain fact check failed to run (an RPC error, not an invalid fact).
    #[error("fact check failed: {0}")]
    FactCheck(String),
    /// The client is misconfigured (bad certificate, missing program hash).
    #[error("prover configuration: {0}")]
    Config(String),
    /// Anything else.
    #[error(transparent)]
    Other(BoxError),
}

/// What an operator must do when the prover account is out of credits.
pub const INSUFFICIENT_CREDITS: OperatorAction = OperatorAction {
    alert: "prover_insufficient_credits",
    title: "Prover account out of credits",
    action: "top up the prover account (Atlantic: the API key's credits), then retry the failed \
             jobs (POST /admin/jobs/retry/failed or GET /jobs/<id>/retry)",
};

impl Retryable for ProverError {
    /// Transport failures, 429, 5xx answers, proxy pages, answers cut short and fact-check
    /// RPC errors are retryable; the prover's own 4xx answers are not, and a 402 needs an operator.
    fn is_retryable(&self) -> bool {
        match self {
            Self::Unavailable { .. } | Self::UnreadableResponse { .. } | Self::FactCheck(_) => true,
            Self::Http { kind, .. } => kind.is_retryable(),
            _ => false,
        }
    }

    /// [`INSUFFICIENT_CREDITS`] for a 402; `None` otherwise.
    fn operator_action(&self) -> Option<OperatorAction> {
        matches!(self, Self::InsufficientCredits { .. }).then_some(INSUFFICIENT_CREDITS)
    }
}

impl ProverError {
    /// The delay the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Wraps any error as `Other`.
    pub fn other(e: impl Into<BoxError>) -> Self {
        Self::Other(e.into())
    }

    /// The error of a JSON body that does not decode: `UnreadableResponse` (retryable) when
    /// it is cut short or not JSON, `InvalidResponse` (not retryable) when it is JSON of
    /// another shape.
    pub fn from_body(operation: impl Into<String>, e: &serde_json::Error) -> Self {
        let operation = operation.into();
        if e.is_eof() || e.is_syntax() {
            Self::UnreadableResponse { operation, reason: e.to_string() }
        } else {
            Self::InvalidResponse { operation, reason: e.to_string() }
        }
    }

    /// An `InvalidResponse` for `operation`.
    pub fn invalid_response(operation: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self::InvalidResponse { operation: operation.into(), reason: reason.to_string() }
    }
}

/// A prover backend.
///
/// Backends are shared as `Arc<dyn ProverClient>`; every method is safe to call again after an
/// error (see the crate docs for idempotency).
#[cfg_attr(any(test, feature = "testing"), mockall::automock)]
#[async_trait]
pub trait ProverClient: Send + Sync + fmt::Debug {
    /// Submits a task and returns its id (job key, query id, bucket id or tx hash).
    async fn submit_task(&self, task: Task) -> ProverResult<String>;

    /// The status of a task. `fact`, when given, must also be registered on chain before the
    /// task counts as `Succeeded` (backends without a fact checker ignore it).
    ///
    /// The lifetimes are named for the mock (mockall needs a name for the one inside the
    /// `Option`): all of them, in the order `#[async_trait]` names elided ones, so that
    /// implementations can leave them elided.
    async fn get_task_status<'s, 'i, 'f>(
        &'s self,
        task_type: TaskType,
        task_id: &'i str,
        fact: Option<&'f str>,
    ) -> ProverResult<TaskStatus>;

    /// The proof of a finished task, validated as JSON.
    async fn get_proof(&self, task_id: &str) -> ProverResult<String>;

    /// Submits a proof for verification on L2 (Atlantic, L3); returns the query id.
    /// `task_id` is the idempotency key of the submission.
    async fn submit_l2_query(
        &self,
        task_id: &str,
        proof: &str,
        n_steps: Option<usize>,
    ) -> ProverResult<String>;

    /// The artifacts of a finished aggregation.
    async fn get_aggregation_artifacts(
        &self,
        external_id: &str,
        include_proof: bool,
    ) -> ProverResult<AggregationArtifacts>;
}

/// Checks that `proof` is a JSON object, the shape every prover returns proofs in.
///
/// # Errors
/// `InvalidProof` with the parse error or the JSON type found.
pub fn validate_proof_json(proof: &str) -> ProverResult<serde_json::Value> {
    let value: serde_json::Value = serde_json::from_str(proof)
        .map_err(|e| ProverError::InvalidProof(format!("not JSON: {e}")))?;
    if !value.is_object() {
        return Err(ProverError::InvalidProof("a proof is a JSON object".into()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_cut_short_or_not_json_is_retryable_json_of_another_shape_is_not() {
        // A list of ids is expected.
        let decode = |body: &str| {
            ProverError::from_body("op", &serde_json::from_str::<Vec<String>>(body).unwrap_err())
        };
        let cut = decode(r#"["01"#);
        assert!(
            matches!(cut, ProverError::UnreadableResponse { .. }) && cut.is_retryable(),
            "{cut}"
        );
        let page = decode("<html>Bad Gateway</html>");
        assert!(page.is_retryable(), "{page}");
        let shape = decode(r#"{"id": 7}"#);
        assert!(
            matches!(shape, ProverError::InvalidResponse { .. }) && !shape.is_retryable(),
            "{shape}"
        );
        assert!(cut.to_string().starts_with("op: unreadable answer"), "{cut}");
    }

    #[test]
    fn retryable_errors_are_transport_and_infrastructure_only() {
        let http = |status, body: &str| ProverError::Http {
            operation: "x".into(),
            status,
            body: body.into(),
            kind: classify_http_failure(status, body),
            retry_after: None,
        };
        assert!(ProverError::Unavailable { operation: "x".into(), reason: "refused".into() }
            .is_retryable());
        assert!(http(503, "").is_retryable());
        assert!(http(500, "<html>oops</html>").is_retryable());
        assert!(!http(400, "{\"message\":\"bad pie\"}").is_retryable());
        assert!(http(500, "{\"message\":\"prover hiccup\"}").is_retryable());
        assert!(!ProverError::NotFound { operation: "x".into(), what: "q".into() }.is_retryable());
        assert!(!ProverError::InvalidProof("x".into()).is_retryable());
    }

    #[test]
    fn insufficient_credits_is_not_retried_and_names_its_alert() {
        let e = ProverError::InsufficientCredits {
            operation: "submit query".into(),
            body: "{}".into(),
        };
        assert!(!e.is_retryable());
        assert_eq!(e.operator_action().map(|a| a.alert), Some("prover_insufficient_credits"));
        assert!(e.to_string().contains("insufficient credits"), "{e}");
        let other = ProverError::Unavailable { operation: "x".into(), reason: "reset".into() };
        assert_eq!(other.operator_action(), None);
    }

    #[test]
    fn debug_of_large_payloads_prints_sizes_only() {
        let info = CreateJobInfo {
            cairo_pie_zip: vec![0; 1000],
            bucket_id: None,
            bucket_job_index: None,
            num_steps: None,
            dedup_id: "d".into(),
        };
        assert!(format!("{info:?}").contains("<1000 bytes>"));
    }

    #[test]
    fn proofs_must_be_json_objects() {
        assert!(validate_proof_json("{\"a\":1}").is_ok());
        assert!(matches!(validate_proof_json("{not json"), Err(ProverError::InvalidProof(_))));
        assert!(matches!(validate_proof_json("[1]"), Err(ProverError::InvalidProof(_))));
    }
}
