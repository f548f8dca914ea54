//! What a test reads from a running orchestrator's HTTP API (black box: no database access).

use std::time::Duration;

use serde_json::Value;
use url::Url;

/// The `/metrics` helpers the workflow tests use.
pub use orchestrator_test_support::prometheus::{documented_families, sampled_families};

/// Every job status the API filters on.
pub const JOB_STATUSES: [&str; 8] = [
    "Created",
    "LockedForProcessing",
    "PendingVerification",
    "Completed",
    "VerificationTimeout",
    "VerificationFailed",
    "Failed",
    "PendingRetry",
];

/// A client of one orchestrator's API.
#[derive(Debug, Clone)]
pub struct Api {
    base: Url,
    http: reqwest::Client,
}

/// A job as `/jobs` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    /// `SnosRun`, `ProofCreation`, …
    pub job_type: String,
    /// Its id.
    pub id: String,
    /// Its status.
    pub status: String,
}

/// An aggregator batch as `/batches/aggregator` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregatorRow {
    /// Batch index.
    pub index: u64,
    /// First block.
    pub start_block: u64,
    /// Last block.
    pub end_block: u64,
    /// Status.
    pub status: String,
}

impl Api {
    /// A client of the API at `base`.
    pub fn new(base: Url) -> Self {
        Self {
            base,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
        }
    }

    /// `GET path` → the `data` of the answer.
    pub async fn get(&self, path: &str) -> Result<Value, String> {
        let url = self.base.join(path).map_err(|e| e.to_string())?;
        let answer = self.http.get(url).send().await.map_err(|e| format!("GET {path}: {e}"))?;
        let status = answer.status();
        let body: Value = answer.json().await.map_err(|e| format!("GET {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!("GET {path}: {status} {body}"));
        }
        Ok(body.get("data").cloned().unwrap_or(body))
    }

    /// Every aggregator batch, oldest first.
    pub async fn aggregator_batches(&self) -> Result<Vec<AggregatorRow>, String> {
        let data = self.get("batches/aggregator?limit=500&sort=asc").await?;
        let rows = data["batches"].as_array().ok_or_else(|| format!("no batches in {data}"))?;
        rows.iter()
            .map(|b| {
                Ok(AggregatorRow {
                    index: b["index"].as_u64().ok_or("index")?,
                    start_block: b["start_block"].as_u64().ok_or("start_block")?,
                    end_block: b["end_block"].as_u64().ok_or("end_block")?,
                    status: b["status"].as_str().ok_or("status")?.to_owned(),
                })
            })
            .collect::<Result<_, &str>>()
            .map_err(|f| format!("malformed aggregator batch ({f}) in {data}"))
    }

    /// Every SNOS batch as `(index, start, end, status)`, oldest first.
    pub async fn snos_batches(&self) -> Result<Vec<(u64, u64, u64, String)>, String> {
        let data = self.get("batches/snos?limit=500&sort=asc").await?;
        let rows = data["batches"].as_array().ok_or_else(|| format!("no batches in {data}"))?;
        Ok(rows
            .iter()
            .filter_map(|b| {
                Some((
                    b["index"].as_u64()?,
                    b["start_block"].as_u64()?,
                    b["end_block"].as_u64()?,
                    b["status"].as_str()?.to_owned(),
                ))
            })
            .collect())
    }

    /// Every job, whatever its status.
    pub async fn jobs(&self) -> Result<Vec<JobRow>, String> {
        let mut out = Vec::new();
        for status in JOB_STATUSES {
            let data = self.get(&format!("jobs?status={status}&limit=500")).await?;
            for j in data["jobs"].as_array().into_iter().flatten() {
                out.push(JobRow {
                    job_type: j["job_type"].as_str().unwrap_or_default().to_owned(),
                    id: j["id"].as_str().unwrap_or_default().to_owned(),
                    status: j["status"].as_str().unwrap_or_default().to_owned(),
                });
            }
        }
        Ok(out)
    }

    /// The whole record of job `id`.
    pub async fn job(&self, id: &str) -> Result<Value, String> {
        self.get(&format!("jobs/{id}")).await
    }

    /// `GET /metrics`: the Prometheus text.
    pub async fn metrics(&self) -> Result<String, String> {
        let url = self.base.join("metrics").map_err(|e| e.to_string())?;
        let answer = self.http.get(url).send().await.map_err(|e| format!("GET /metrics: {e}"))?;
        let status = answer.status();
        let text = answer.text().await.map_err(|e| format!("GET /metrics: {e}"))?;
        if !status.is_success() {
            return Err(format!("GET /metrics: {status} {text}"));
        }
        Ok(text)
    }

    /// `/blocks/settlement-status/{block}`.
    pub async fn settlement_status(&self, block: u64) -> Result<Value, String> {
        self.get(&format!("blocks/settlement-status/{block}")).await
    }
}
