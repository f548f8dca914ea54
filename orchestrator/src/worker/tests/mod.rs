//! Engine tests on the real embedded tier (SQLite database and queue in a temp dir) with
//! scripted handlers, and with the real handlers over mocked clients (`mocked_clients`).

mod lost_race;
mod mocked_clients;
mod state_machine;
mod trigger_requests;

use crate::worker::Config;
use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use tempfile::TempDir;

use crate::{
    config::EngineParams,
    core::client::{embedded, Alert, AlertClient, AlertError, Delivery},
    types::{
        jobs::{JobItem, JobSpecificMetadata, JobType, JobVerificationStatus, SnosMetadata},
        queue::{JobQueueMessage, QueueType},
        Layer,
    },
    worker::{
        handler::{Attempts, JobError, JobHandlerTrait, JobHandlers},
        trigger::Triggers,
    },
};

/// One scripted outcome of `process_job`.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Returns this external id.
    Ok(&'static str),
    /// Fails retryably.
    Retry,
    /// Fails for good.
    Fatal,
    /// Panics.
    Panic,
}

/// One scripted outcome of `verify_job`.
#[derive(Debug, Clone)]
pub(crate) enum Check {
    Verified,
    Rejected,
    Pending,
    Retry,
}

/// A handler that plays a script and panics when the script runs out.
#[derive(Debug)]
pub(crate) struct TestHandler {
    pub job_type: JobType,
    pub process: Mutex<VecDeque<Step>>,
    pub verify: Mutex<VecDeque<Check>>,
    pub not_ready_for: Mutex<Option<Duration>>,
    pub max_process_attempts: u64,
    pub max_verification_attempts: u64,
    pub calls: Mutex<Vec<&'static str>>,
}

impl TestHandler {
    pub(crate) fn new(job_type: JobType, process: Vec<Step>, verify: Vec<Check>) -> Self {
        Self {
            job_type,
            process: Mutex::new(process.into()),
            verify: Mutex::new(verify.into()),
            not_ready_for: Mutex::new(None),
            max_process_attempts: 2,
            max_verification_attempts: 3,
            calls: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl JobHandlerTrait for TestHandler {
    fn job_type(&self) -> JobType {
        self.job_type
    }

    async fn process_job(&self, job: &mut JobItem) -> Result<String, JobError> {
        self.calls.lock().unwrap().push("process");
        let step = self.process.lock().unwrap().pop_front().expect("process script exhausted");
        if let JobSpecificMetadata::Snos(m) = &mut job.metadata.specific {
            m.snos_fact = Some("0xfact".to_owned());
        }
        match step {
            Step::Ok(id) => Ok(id.to_owned()),
            Step::Retry => Err(JobError::retryable("rpc down")),
            Step::Fatal => Err(JobError::fatal("bad input")),
            Step::Panic => panic!("handler bug"),
        }
    }

    async fn verify_job(&self, _job: &mut JobItem) -> Result<JobVerificationStatus, JobError> {
        self.calls.lock().unwrap().push("verify");
        match self.verify.lock().unwrap().pop_front().expect("verify script exhausted") {
            Check::Verified => Ok(JobVerificationStatus::Verified),
            Check::Rejected => Ok(JobVerificationStatus::Rejected("proof invalid".to_owned())),
            Check::Pending => Ok(JobVerificationStatus::Pending),
            Check::Retry => Err(JobError::retryable("prover unreachable")),
        }
    }

    fn attempts(&self) -> Attempts {
        // Polling delay zero so follow-up messages are visible at once; delays are tested on
        // their own.
        Attempts::new(self.max_process_attempts, self.max_verification_attempts, Duration::ZERO)
    }

    async fn check_ready_to_process(&self, _job: &JobItem) -> Result<(), Duration> {
        match *self.not_ready_for.lock().unwrap() {
            Some(delay) => Err(delay),
            None => Ok(()),
        }
    }
}

/// Alerts kept in memory for assertions.
#[derive(Debug, Default)]
pub(crate) struct RecordingAlerts(pub Mutex<Vec<Alert>>);

#[async_trait]
impl AlertClient for RecordingAlerts {
    async fn send_alert(&self, alert: &Alert) -> Result<(), AlertError> {
        self.0.lock().unwrap().push(alert.clone());
        Ok(())
    }

    async fn health_check(&self) -> Result<(), AlertError> {
        Ok(())
    }
}

/// An engine on a fresh embedded tier.
pub(crate) struct Harness {
    pub config: Arc<Config>,
    pub alerts: Arc<RecordingAlerts>,
    pub _dir: TempDir,
}

impl Harness {
    pub(crate) async fn new(handlers: Vec<Arc<dyn JobHandlerTrait>>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut clients = embedded::open(dir.path(), &embedded::EmbeddedOptions::default())
            .await
            .expect("embedded tier");
        let alerts = Arc::new(RecordingAlerts::default());
        clients.alerts = alerts.clone();
        let handlers = handlers.into_iter().fold(JobHandlers::new(), |h, x| h.with(x));
        let engine = EngineParams {
            empty_poll_interval: Duration::from_millis(20),
            retry_backoff_base: Duration::from_millis(10),
            retry_backoff_max: Duration::from_millis(50),
            ..EngineParams::default()
        };
        let config = Arc::new(Config::new(Layer::L2, clients, handlers, Triggers::new(), engine));
        Self { config, alerts, _dir: dir }
    }

    /// Receives every visible message of `queue` (acking them) and returns their job ids.
    pub(crate) async fn drain(&self, queue: QueueType) -> Vec<Delivery> {
        let mut out = Vec::new();
        while let Some(d) = self.config.queue().receive(queue).await.expect("receive") {
            self.config.queue().ack(queue, &d).await.expect("ack");
            out.push(d);
        }
        out
    }

    pub(crate) async fn job(&self, id: uuid::Uuid) -> JobItem {
        self.config.database().get_job_by_id(id).await.expect("db").expect("job exists")
    }
}

pub(crate) fn snos_metadata(index: u64) -> JobSpecificMetadata {
    JobSpecificMetadata::Snos(SnosMetadata {
        snos_batch_index: index,
        start_block: index,
        end_block: index,
        num_blocks: 1,
        ..Default::default()
    })
}

pub(crate) fn ids(deliveries: &[Delivery]) -> Vec<uuid::Uuid> {
    deliveries
        .iter()
        .map(|d| serde_json::from_str::<JobQueueMessage>(&d.body).expect("job message").id)
        .collect()
}
