//! What a test reads from a running orchestrator's HTTP API (black box: no database access).

use std::time::Duration;

use serde_json::Value;
use url::Url;

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

/// The metric families `docs/operations.md` documents between the marker comment
/// `<!-- metrics:{part} -->` and the next marker (or the end of the section): the first
/// backticked name of each table row, without its labels (`job_queue_depth{queue}` →
/// `job_queue_depth`).
pub fn documented_families(doc: &str, part: &str) -> Vec<String> {
    let marker = format!("<!-- metrics:{part} -->");
    let Some(start) = doc.find(&marker) else { return Vec::new() };
    let mut out = Vec::new();
    for line in doc[start + marker.len()..].lines() {
        if line.starts_with("<!-- metrics:") || line.starts_with("## ") {
            break;
        }
        let Some(cell) = line.strip_prefix("| `") else { continue };
        let name = cell.split(['`', '{']).next().unwrap_or_default();
        if !name.is_empty() {
            out.push(name.to_owned());
        }
    }
    out
}

/// The families of a Prometheus text exposition that have at least one sample (a histogram
/// `x_seconds` counts through its `x_seconds_bucket`, `_sum` and `_count` lines).
pub fn sampled_families(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        out.insert(name.to_owned());
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                out.insert(base.to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_families_are_read_from_the_marked_table_rows() {
        let doc = "## Metrics\n<!-- metrics:always -->\n| Name | Type |\n|---|---|\n| `a_total{x, y}` | counter |\n| `b_seconds` | histogram |\n<!-- metrics:conditional -->\n| `c` | gauge |\n## Next\n| `d` | gauge |\n";
        assert_eq!(documented_families(doc, "always"), ["a_total", "b_seconds"]);
        assert_eq!(documented_families(doc, "conditional"), ["c"]);
        assert!(documented_families(doc, "missing").is_empty());
    }

    #[test]
    fn histograms_count_as_sampled_through_their_series() {
        let text = "# TYPE h_seconds histogram\nh_seconds_bucket{le=\"1\"} 0\nh_seconds_count 0\n# TYPE g gauge\ng{a=\"b\"} 1\n# TYPE empty_total counter\n";
        let got = sampled_families(text);
        assert!(got.contains("h_seconds") && got.contains("g"), "{got:?}");
        assert!(!got.contains("empty_total"), "{got:?}");
    }
}
