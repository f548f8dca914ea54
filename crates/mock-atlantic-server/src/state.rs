//! The server's in-memory model: queries, buckets, injected faults. Statuses are computed
//! lazily from the time elapsed since creation, so no background task is needed.

use std::{
    collections::{HashMap, VecDeque},
    time::Instant,
};

use cairo_vm::Felt252 as Felt;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};

use crate::{producer::ProducedArtifacts, MockAtlanticConfig};

/// Where a query is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Accepted.
    Received,
    /// Running.
    InProgress,
    /// Finished.
    Done,
    /// Failed, with the reason.
    Failed(String),
}

impl Phase {
    fn wire(&self) -> &'static str {
        match self {
            Self::Received => "RECEIVED",
            Self::InProgress => "IN_PROGRESS",
            Self::Done => "DONE",
            Self::Failed(_) => "FAILED",
        }
    }

    /// Whether the query is finished either way.
    pub fn is_finished(&self) -> bool {
        matches!(self, Self::Done | Self::Failed(_))
    }
}

/// A query as stored.
#[derive(Debug, Clone)]
pub struct Query {
    pub(crate) id: String,
    pub(crate) dedup_id: Option<String>,
    pub(crate) bucket_id: Option<String>,
    pub(crate) bucket_job_index: Option<u64>,
    pub(crate) layout: Option<String>,
    pub(crate) network: Option<String>,
    pub(crate) result: String,
    pub(crate) declared_job_size: Option<String>,
    pub(crate) created: Instant,
    pub(crate) seq: u64,
    /// Decided at submission from the failure rate.
    pub(crate) will_fail: bool,
    /// Set by a test or by the aggregation producer.
    pub(crate) forced: Option<Phase>,
    pub(crate) is_aggregator: bool,
    pub(crate) input: Vec<u8>,
    pub(crate) artifacts: HashMap<String, Vec<u8>>,
}

/// A bucket as stored.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub(crate) id: String,
    pub(crate) aggregator_params: Value,
    pub(crate) aggregator_version: String,
    pub(crate) mock_proof: bool,
    pub(crate) aggregator_query: Option<String>,
}

/// Which route a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultRoute {
    /// Every route.
    Any,
    /// `POST /atlantic-query`.
    SubmitQuery,
    /// `GET /atlantic-query/{id}`.
    QueryStatus,
    /// `GET /atlantic-query-by-dedup-id`.
    DedupLookup,
    /// `/buckets*`.
    Buckets,
    /// `GET /queries/{id}/{file}`.
    Artifacts,
}

/// An injected error answer.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Where it applies.
    pub route: FaultRoute,
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: String,
    /// `Content-Type` of the body.
    pub content_type: &'static str,
    /// How many requests it answers.
    pub times: usize,
}

impl Fault {
    /// `status` with a JSON message, `times` times.
    pub fn status(route: FaultRoute, status: u16, times: usize) -> Self {
        Self {
            route,
            status,
            body: json!({"message": format!("injected {status}")}).to_string(),
            content_type: "application/json",
            times,
        }
    }

    /// A proxy's HTML error page with `status`, `times` times.
    pub fn html(route: FaultRoute, status: u16, times: usize) -> Self {
        Self {
            route,
            status,
            body: "<html><head><title>Bad Gateway</title></head><body>nginx</body></html>".into(),
            content_type: "text/html",
            times,
        }
    }
}

/// Random error answers on a share of the calls (a chaos test's prover): each call is, with
/// probability `rate`, answered by one of the [`ChaosKind`]s instead of being handled. Draws
/// come from an RNG seeded with `seed`, so a schedule repeats.
#[derive(Debug, Clone, PartialEq)]
pub struct Chaos {
    /// Share of calls answered with a fault (0.0–1.0).
    pub rate: f64,
    /// Seed of the draws.
    pub seed: u64,
    /// How long a `Hang` holds the call before answering 504 (set it past the client's
    /// timeout).
    pub hang: std::time::Duration,
}

/// The faults of [`Chaos`], drawn with equal weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChaosKind {
    /// `500` with a JSON message.
    InternalError,
    /// `503` with a proxy's HTML page.
    Unavailable,
    /// `429` with `Retry-After: 1`.
    RateLimited,
    /// No answer until `hang` has passed, then `504`.
    Hang,
    /// `200` with a cut JSON body.
    Malformed,
}

impl ChaosKind {
    /// Every kind, in draw order.
    pub const ALL: [Self; 5] =
        [Self::InternalError, Self::Unavailable, Self::RateLimited, Self::Hang, Self::Malformed];

    /// A short name for reports: `500`, `503`, `429`, `hang`, `malformed`.
    pub fn name(self) -> &'static str {
        match self {
            Self::InternalError => "500",
            Self::Unavailable => "503",
            Self::RateLimited => "429",
            Self::Hang => "hang",
            Self::Malformed => "malformed",
        }
    }
}

/// Everything the server holds.
#[derive(Debug)]
pub struct State {
    pub(crate) config: MockAtlanticConfig,
    pub(crate) rng: StdRng,
    pub(crate) queries: HashMap<String, Query>,
    pub(crate) buckets: HashMap<String, Bucket>,
    pub(crate) faults: VecDeque<Fault>,
    pub(crate) seq: u64,
    /// Text fields and file names of every accepted submission, in order.
    pub(crate) submissions: Vec<HashMap<String, String>>,
    /// The chaos settings and their RNG, when on.
    pub(crate) chaos: Option<(Chaos, StdRng)>,
    /// Faults [`Chaos`] answered so far, by kind.
    pub(crate) chaos_counts: std::collections::BTreeMap<ChaosKind, u64>,
}

/// Crockford base32, as ULIDs use.
const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl State {
    pub(crate) fn new(config: MockAtlanticConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        Self {
            config,
            rng,
            queries: HashMap::new(),
            buckets: HashMap::new(),
            faults: VecDeque::new(),
            seq: 0,
            submissions: Vec::new(),
            chaos: None,
            chaos_counts: std::collections::BTreeMap::new(),
        }
    }

    /// A fresh ULID-shaped id.
    pub(crate) fn new_id(&mut self) -> String {
        let rng = &mut self.rng;
        "01".chars()
            .chain((0..24).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char))
            .collect()
    }

    /// Takes one use of the first fault matching `route`.
    pub(crate) fn take_fault(&mut self, route: FaultRoute) -> Option<Fault> {
        let pos =
            self.faults.iter().position(|f| f.route == route || f.route == FaultRoute::Any)?;
        let fault = self.faults.get_mut(pos)?;
        fault.times = fault.times.saturating_sub(1);
        let out = fault.clone();
        if fault.times == 0 {
            self.faults.remove(pos);
        }
        Some(out)
    }

    /// Draws whether this call gets a chaos fault, and which (counted).
    pub(crate) fn draw_chaos(&mut self) -> Option<(ChaosKind, std::time::Duration)> {
        let (chaos, rng) = self.chaos.as_mut()?;
        if !rng.gen_bool(chaos.rate.clamp(0.0, 1.0)) {
            return None;
        }
        let kind = ChaosKind::ALL[rng.gen_range(0..ChaosKind::ALL.len())];
        let hang = chaos.hang;
        *self.chaos_counts.entry(kind).or_default() += 1;
        Some((kind, hang))
    }

    /// The phase of a query now.
    pub(crate) fn phase(&self, q: &Query, now: Instant) -> Phase {
        if let Some(forced) = &q.forced {
            return forced.clone();
        }
        let elapsed = now.saturating_duration_since(q.created);
        if elapsed < self.config.processing_delay {
            return Phase::Received;
        }
        if !self.config.auto_complete
            || elapsed < self.config.processing_delay + self.config.completion_delay
        {
            return Phase::InProgress;
        }
        if q.will_fail {
            return Phase::Failed("injected failure (MOCK_ATLANTIC_FAILURE_RATE)".into());
        }
        if q.is_aggregator {
            // The aggregation finishes only after every child did.
            for child in self.children(q.bucket_id.as_deref().unwrap_or_default()) {
                match self.phase(child, now) {
                    Phase::Done => {}
                    Phase::Failed(reason) => {
                        return Phase::Failed(format!("child query {} failed: {reason}", child.id))
                    }
                    _ => return Phase::InProgress,
                }
            }
        }
        Phase::Done
    }

    /// The child queries of a bucket, by bucket index.
    pub(crate) fn children(&self, bucket_id: &str) -> Vec<&Query> {
        let mut out: Vec<&Query> = self
            .queries
            .values()
            .filter(|q| !q.is_aggregator && q.bucket_id.as_deref() == Some(bucket_id))
            .collect();
        out.sort_by_key(|q| (q.bucket_job_index, q.seq));
        out
    }

    /// Queries still running (the concurrency limit counts these).
    pub(crate) fn running(&self, now: Instant) -> usize {
        self.queries
            .values()
            .filter(|q| !q.is_aggregator && !self.phase(q, now).is_finished())
            .count()
    }

    /// Inserts a query, evicting the oldest finished ones above the memory limit.
    pub(crate) fn insert(&mut self, mut q: Query) {
        self.seq += 1;
        q.seq = self.seq;
        self.queries.insert(q.id.clone(), q);
        let now = Instant::now();
        while self.queries.len() > self.config.max_jobs_in_memory {
            let oldest = self
                .queries
                .values()
                .filter(|q| self.phase(q, now).is_finished())
                .min_by_key(|q| q.seq)
                .map(|q| q.id.clone());
            match oldest {
                Some(id) => {
                    self.queries.remove(&id);
                }
                None => break,
            }
        }
    }

    /// JSON of a query as Atlantic reports it.
    pub(crate) fn query_json(&self, q: &Query, now: Instant) -> Value {
        let phase = self.phase(q, now);
        let step = if phase == Phase::Done || matches!(phase, Phase::Failed(_)) {
            if q.is_aggregator {
                "PROOF_GENERATION_AND_VERIFICATION".to_owned()
            } else {
                q.result.clone()
            }
        } else if q.is_aggregator {
            "PROOF_GENERATION_AND_VERIFICATION".to_owned()
        } else {
            "TRACE_GENERATION".to_owned()
        };
        let error_reason = match &phase {
            Phase::Failed(reason) => Value::String(reason.clone()),
            _ => Value::Null,
        };
        json!({
            "id": q.id,
            "externalId": null,
            "dedupId": q.dedup_id,
            "status": phase.wire(),
            "step": step,
            "result": q.result,
            "layout": q.layout,
            "network": q.network,
            "declaredJobSize": q.declared_job_size,
            "bucketId": q.bucket_id,
            "bucketJobIndex": q.bucket_job_index,
            "errorReason": error_reason,
            "isFactMocked": true,
            "integrityFactHash": null,
            "sharpFactHash": null,
            "steps": [step],
            "createdAt": format!("{:?}", q.created),
        })
    }

    /// JSON of a bucket.
    pub(crate) fn bucket_json(&self, b: &Bucket, now: Instant) -> Value {
        let status = match b.aggregator_query.as_ref().and_then(|id| self.queries.get(id)) {
            None if b.aggregator_query.is_none() => "OPEN",
            None => "FAILED", // evicted aggregator query: should not happen below the memory limit
            Some(q) => match self.phase(q, now) {
                Phase::Done => "DONE",
                Phase::Failed(_) => "FAILED",
                _ => "IN_PROGRESS",
            },
        };
        json!({
            "id": b.id,
            "externalId": null,
            "status": status,
            "aggregatorVersion": b.aggregator_version,
            "aggregatorParams": b.aggregator_params,
            "mockProof": b.mock_proof,
            "nodeWidth": null,
            "leaves": self.children(&b.id).len(),
        })
    }

    /// A proof-shaped JSON for a query (it proves nothing) whose public output is what a real
    /// proof of the query's input would expose: the output segment of a PIE, or, for an L2
    /// verification query (the orchestrator sends `{"proof": …}`), the public output of the
    /// proof being verified. An input that yields no output gives an empty output.
    pub(crate) fn proof_for(q: &Query) -> Vec<u8> {
        let output = Self::public_output_of(q).unwrap_or_else(|reason| {
            tracing::warn!(target: "orch::mock_atlantic", query_id = %q.id, %reason, "The query's input has no readable output; its proof has an empty public output");
            Vec::new()
        });
        let layout = q.layout.clone().unwrap_or_else(|| "dynamic".into());
        let mut proof =
            orchestrator_prover_client_interface::public_output::proof_with_public_output(
                &layout, 32768, &output,
            );
        proof["query_id"] = Value::String(q.id.clone());
        proof.to_string().into_bytes()
    }

    fn public_output_of(q: &Query) -> Result<Vec<Felt>, String> {
        Self::public_output_of_input(&q.input)
    }

    /// The public output a proof of `input` (a PIE zip, or a proof JSON to verify) exposes.
    pub(crate) fn public_output_of_input(input: &[u8]) -> Result<Vec<Felt>, String> {
        use orchestrator_gps_fact_checker::fact::pie;
        if input.starts_with(b"PK") {
            let parsed = pie::read_pie_bytes(input).map_err(|e| e.to_string())?;
            return pie::program_output(&parsed).map_err(|e| e.to_string());
        }
        let json: Value = serde_json::from_slice(input)
            .map_err(|e| format!("input is neither a zip nor JSON: {e}"))?;
        let proof = json.get("proof").unwrap_or(&json);
        orchestrator_prover_client_interface::public_output::public_output(proof)
            .map_err(|e| e.to_string())
    }

    pub(crate) fn store_aggregation(
        &mut self,
        query_id: &str,
        produced: Result<ProducedArtifacts, String>,
    ) {
        let Some(q) = self.queries.get_mut(query_id) else {
            return;
        };
        match produced {
            Ok(p) => {
                // The query runs its delays from now on, like any other.
                q.forced = None;
                q.created = Instant::now();
                q.artifacts.insert("pie.cairo0.zip".into(), p.pie_zip);
                q.artifacts.insert("da_blob.json".into(), p.da_blob);
                q.artifacts.insert("snos_output.json".into(), p.snos_output);
            }
            Err(reason) => q.forced = Some(Phase::Failed(format!("aggregation failed: {reason}"))),
        }
    }
}
