//! Helpers of the API tests: a context with server settings on the embedded tier, in-process
//! requests through the router (`oneshot`), batches and jobs to look at.

use orchestrator::worker::Config;
use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{HeaderMap, Method, Request, StatusCode},
    Router,
};
use orchestrator::{
    config::{EngineParams, ServerSettings},
    types::{
        batch::{
            AggregatorBatch, AggregatorBatchStatus, BouncerWeights, SnosBatch, SnosBatchStatus,
        },
        jobs::{JobItem, JobStatus, JobType},
        Layer,
    },
    worker::{handler::JobHandlers, trigger::Triggers},
};
use orchestrator_utils::Secret;
use tower::ServiceExt;

use crate::support::{self, RecordingHandler};

pub const TOKEN: &str = "test-admin-token-5b1d0c";

/// Server settings with admin on (and this token) or off, and a generous rate limit.
pub fn settings(admin: bool) -> ServerSettings {
    ServerSettings {
        admin_enabled: admin,
        admin_token: admin.then(|| Secret::new(TOKEN.to_owned())),
        open_job_actions: false,
        rate_limit_per_second: 1000,
        rate_limit_burst: 1000,
        max_priority_queue_size: 5,
        ..ServerSettings::default()
    }
}

/// An L2 context on the embedded tier of `dir` with a SnosRun handler and these settings.
pub async fn config(dir: &Path, server: ServerSettings, work: Duration) -> Arc<Config> {
    config_with(dir, server, work, Triggers::new()).await
}

/// [`config`] with these triggers.
pub async fn config_with(
    dir: &Path,
    server: ServerSettings,
    work: Duration,
    triggers: Triggers,
) -> Arc<Config> {
    let clients = support::clients(dir).await;
    let handlers = JobHandlers::new()
        .with(Arc::new(RecordingHandler { log: dir.join("side-effects.log"), work }));
    let engine = EngineParams {
        job_timeouts: [(JobType::SnosRun, Duration::from_secs(60))].into(),
        orphan_scan_interval: Duration::from_secs(3600),
        empty_poll_interval: Duration::from_millis(50),
        retry_backoff_base: Duration::from_millis(100),
        retry_backoff_max: Duration::from_secs(1),
        graceful_shutdown_timeout: Duration::from_secs(5),
        ..EngineParams::default()
    };
    Arc::new(Config::new(Layer::L2, clients, handlers, triggers, engine).with_server(server))
}

/// A response, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    /// The body as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The envelope's message.
    pub fn message(&self) -> String {
        self.json()["message"].as_str().unwrap_or_default().to_owned()
    }
}

/// Sends one request through `router` in-process, from client `peer`.
pub async fn send(
    router: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    peer: Option<SocketAddr>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(Body::empty()).unwrap();
    if let Some(peer) = peer {
        req.extensions_mut().insert(ConnectInfo(peer));
    }
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 16 << 20).await.unwrap();
    Answer { status, headers, text: String::from_utf8_lossy(&bytes).into_owned() }
}

pub async fn get(router: &Router, uri: &str) -> Answer {
    send(router, Method::GET, uri, &[], None).await
}

/// POST with the admin token.
pub async fn admin_post(router: &Router, uri: &str) -> Answer {
    send(router, Method::POST, uri, &[("authorization", &format!("Bearer {TOKEN}"))], None).await
}

/// A SNOS batch `index` over `start..=end` in aggregator batch `agg`.
pub fn snos_batch(
    index: u64,
    agg: u64,
    start: u64,
    end: u64,
    status: SnosBatchStatus,
) -> SnosBatch {
    let mut b = SnosBatch::new(index, Some(agg), start, "0.14.2", BouncerWeights::ZERO);
    b.end_block = end;
    b.num_blocks = end - start + 1;
    b.status = status;
    b
}

/// An aggregator batch `index` over `start..=end`.
pub fn aggregator_batch(
    index: u64,
    start: u64,
    end: u64,
    status: AggregatorBatchStatus,
) -> AggregatorBatch {
    let mut b = AggregatorBatch::new(index, start, "0.14.2");
    b.end_block = end;
    b.num_blocks = end - start + 1;
    b.status = status;
    b
}

/// Stores a SnosRun job for SNOS batch `index` (blocks `start..=end`) in `status`.
pub async fn snos_job(
    config: &Config,
    index: u64,
    start: u64,
    end: u64,
    status: JobStatus,
) -> JobItem {
    let mut specific = support::snos(index);
    if let orchestrator::types::jobs::JobSpecificMetadata::Snos(m) = &mut specific {
        m.start_block = start;
        m.end_block = end;
        m.num_blocks = end - start + 1;
    }
    let job = config
        .database()
        .create_job(JobItem::new(JobType::SnosRun, index, specific))
        .await
        .unwrap();
    set_status(config, job, status).await
}

/// Moves a stored job to `status` directly in the database.
pub async fn set_status(config: &Config, job: JobItem, status: JobStatus) -> JobItem {
    if job.status == status {
        return job;
    }
    let updates = orchestrator::types::jobs::JobItemUpdates::new().status(status);
    config.database().update_job(&job, updates).await.unwrap()
}
