//! A transition that loses the versioned-update race to another writer ends quietly: the job
//! stays as that writer left it, nothing is queued and nobody is alerted.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use async_trait::async_trait;
use rstest::rstest;

use super::{snos_metadata, Harness};
use crate::{
    core::client::DatabaseClient,
    types::{
        jobs::{JobItem, JobItemUpdates, JobStatus, JobType, JobVerificationStatus},
        queue::QueueType,
    },
    worker::{
        handler::{Attempts, JobError, JobHandlerTrait},
        service,
    },
};

/// A handler that, while it works, has someone else change the job (as an operator or a
/// second worker would), then succeeds or fails for good.
#[derive(Debug)]
struct ChangedUnderfoot {
    database: OnceLock<Arc<dyn DatabaseClient>>,
    fatal: bool,
}

#[async_trait]
impl JobHandlerTrait for ChangedUnderfoot {
    fn job_type(&self) -> JobType {
        JobType::SnosRun
    }

    async fn process_job(&self, job: &mut JobItem) -> Result<String, JobError> {
        let database = self.database.get().expect("database set");
        let touch = JobItemUpdates::new().metadata(job.metadata.clone());
        database.update_job(job, touch).await.expect("the other writer's update");
        if self.fatal {
            Err(JobError::fatal("bad input"))
        } else {
            Ok("ext".to_owned())
        }
    }

    async fn verify_job(&self, _job: &mut JobItem) -> Result<JobVerificationStatus, JobError> {
        Ok(JobVerificationStatus::Verified)
    }

    fn attempts(&self) -> Attempts {
        Attempts::new(1, 1, Duration::ZERO)
    }
}

#[rstest]
#[case::outcome_of_a_success(false)]
#[case::failure_of_a_fatal_error(true)]
#[tokio::test]
async fn a_lost_race_drops_the_change_quietly(#[case] fatal: bool) {
    let handler = Arc::new(ChangedUnderfoot { database: OnceLock::new(), fatal });
    let h = Harness::new(vec![handler.clone()]).await;
    handler.database.set(h.config.database().clone()).expect("set once");
    let job = service::create_job(&h.config, JobType::SnosRun, 1, snos_metadata(1)).await.unwrap();
    h.drain(QueueType::JobProcessing(JobType::SnosRun)).await;

    service::process_job(&h.config, job.id).await.expect("a lost race is not an error");

    let after = h.job(job.id).await;
    assert_eq!(after.status, JobStatus::LockedForProcessing, "as the other writer left it");
    assert!(h.drain(QueueType::JobVerification(JobType::SnosRun)).await.is_empty());
    assert!(h.alerts.0.lock().unwrap().is_empty());
}
