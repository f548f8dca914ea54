//! Atlantic's wire format (camelCase JSON). Fields this client does not use are left out and
//! fields Atlantic may omit are optional, so a richer answer still parses.

use serde::{Deserialize, Serialize};

/// Status of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AtlanticQueryStatus {
    /// Accepted, not started.
    Received,
    /// Running.
    InProgress,
    /// Finished.
    Done,
    /// Gave up.
    Failed,
}

/// Status of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AtlanticBucketStatus {
    /// Accepting queries.
    Open,
    /// Closed; aggregation running.
    InProgress,
    /// Aggregated.
    Done,
    /// Aggregation failed.
    Failed,
}

/// Steps a query goes through; `result` names the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AtlanticQueryStep {
    /// Trace generation.
    TraceGeneration,
    /// Proof generation.
    ProofGeneration,
    /// Proof verification.
    ProofVerification,
    /// Verification on L1.
    ProofVerificationOnL1,
    /// Verification on L2.
    ProofVerificationOnL2,
    /// Proof generation and verification (an aggregator query).
    ProofGenerationAndVerification,
    /// Fact registration (an aggregator query).
    FactHashRegistration,
    /// Trace and metadata generation.
    TraceAndMetadataGeneration,
}

impl AtlanticQueryStep {
    /// The wire name, e.g. `PROOF_GENERATION`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TraceGeneration => "TRACE_GENERATION",
            Self::ProofGeneration => "PROOF_GENERATION",
            Self::ProofVerification => "PROOF_VERIFICATION",
            Self::ProofVerificationOnL1 => "PROOF_VERIFICATION_ON_L1",
            Self::ProofVerificationOnL2 => "PROOF_VERIFICATION_ON_L2",
            Self::ProofGenerationAndVerification => "PROOF_GENERATION_AND_VERIFICATION",
            Self::FactHashRegistration => "FACT_HASH_REGISTRATION",
            Self::TraceAndMetadataGeneration => "TRACE_AND_METADATA_GENERATION",
        }
    }

    /// Whether a query at this step is the aggregator query of a bucket.
    pub fn is_aggregation(self) -> bool {
        matches!(self, Self::FactHashRegistration | Self::ProofGenerationAndVerification)
    }
}

/// A query as Atlantic reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AtlanticQuery {
    /// Query id.
    pub id: String,
    /// Status.
    pub status: AtlanticQueryStatus,
    /// Current (or last) step.
    #[serde(default)]
    pub step: Option<AtlanticQueryStep>,
    /// The last step asked for (`PROOF_VERIFICATION_ON_L2` for an L2 verification); kept as
    /// text so that a step this client does not know still parses.
    #[serde(default)]
    pub result: Option<String>,
    /// Why it failed.
    #[serde(default)]
    pub error_reason: Option<String>,
    /// Fact registered by the integrity verifier.
    #[serde(default)]
    pub integrity_fact_hash: Option<String>,
    /// Fact registered by SHARP.
    #[serde(default)]
    pub sharp_fact_hash: Option<String>,
    /// The dedup id it was submitted with.
    #[serde(default)]
    pub dedup_id: Option<String>,
    /// Its bucket.
    #[serde(default)]
    pub bucket_id: Option<String>,
    /// Its position in the bucket.
    #[serde(default)]
    pub bucket_job_index: Option<u64>,
    /// Layout.
    #[serde(default)]
    pub layout: Option<String>,
}

impl AtlanticQuery {
    /// Whether this is an L2 verification query (`result` or its last step
    /// `PROOF_VERIFICATION_ON_L2`).
    pub fn is_l2_verification(&self) -> bool {
        self.result.as_deref() == Some(AtlanticQueryStep::ProofVerificationOnL2.as_str())
            || self.step == Some(AtlanticQueryStep::ProofVerificationOnL2)
    }
}

/// `GET /atlantic-query/{id}` and `GET /atlantic-query-by-dedup-id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AtlanticQueryResponse {
    /// The query.
    pub atlantic_query: AtlanticQuery,
    /// Links to its metadata.
    #[serde(default)]
    pub metadata_urls: Vec<String>,
}

/// `POST /atlantic-query`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AtlanticAddQueryResponse {
    /// Id of the new query.
    pub atlantic_query_id: String,
}

/// A bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AtlanticBucket {
    /// Bucket id.
    pub id: String,
    /// Status.
    pub status: AtlanticBucketStatus,
    /// Aggregator version.
    #[serde(default)]
    pub aggregator_version: Option<String>,
}

/// `POST /buckets` and `POST /buckets/close`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AtlanticBucketResponse {
    /// The bucket.
    pub atlantic_bucket: AtlanticBucket,
}

/// `GET /buckets/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AtlanticGetBucketResponse {
    /// The bucket.
    pub bucket: AtlanticBucket,
    /// Its queries (children and, once closed, the aggregator query).
    #[serde(default)]
    pub queries: Vec<AtlanticQuery>,
}

/// Aggregator parameters of a new bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtlanticAggregatorParams {
    /// KZG data availability (true for the L2 aggregator).
    pub use_kzg_da: bool,
    /// Full OS output (false for the aggregator).
    pub full_output: bool,
    /// Chain id, hex.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub chain_id_hex: Option<String>,
    /// Fee token, hex.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fee_token_address: Option<String>,
    /// DA public keys, hex.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub public_keys: Option<Vec<String>>,
}

/// `POST /buckets` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AtlanticCreateBucketRequest {
    /// Always null.
    pub external_id: Option<String>,
    /// Always null.
    pub node_width: Option<u64>,
    /// `snos_aggregator_0.14.1`.
    pub aggregator_version: String,
    /// Aggregator parameters.
    pub aggregator_params: AtlanticAggregatorParams,
    /// Mocked proofs.
    pub mock_proof: bool,
}

/// Declared size of a query from its step count: S up to 12M steps, M up to 29M, L above
/// (40M assumed when unknown).
pub fn declared_job_size(n_steps: Option<usize>) -> &'static str {
    match n_steps.unwrap_or(40_000_000) {
        0..=12_000_000 => "S",
        12_000_001..=29_000_000 => "M",
        _ => "L",
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case(Some(1), "S")]
    #[case(Some(12_000_000), "S")]
    #[case(Some(12_000_001), "M")]
    #[case(Some(29_000_000), "M")]
    #[case(Some(29_000_001), "L")]
    #[case(None, "L")]
    fn job_sizes(#[case] steps: Option<usize>, #[case] want: &str) {
        assert_eq!(declared_job_size(steps), want);
    }

    #[test]
    fn query_status_parses_with_unknown_fields() {
        let json = r#"{"atlanticQuery":{"id":"q1","status":"IN_PROGRESS","step":"PROOF_GENERATION","client":{"x":1}},"metadataUrls":[]}"#;
        let r: AtlanticQueryResponse = serde_json::from_str(json).unwrap();
        assert_eq!(r.atlantic_query.status, AtlanticQueryStatus::InProgress);
        assert_eq!(r.atlantic_query.step, Some(AtlanticQueryStep::ProofGeneration));
        assert_eq!(
            serde_json::to_string(&AtlanticQueryStep::ProofVerificationOnL2).unwrap(),
            "\"PROOF_VERIFICATION_ON_L2\""
        );
    }
}
