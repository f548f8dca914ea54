//! Test helpers for the AWS backends: the moto endpoint, unique names, fresh queues.
//!
//! Tests reach moto at `MADARA_ORCHESTRATOR_TEST_AWS_ENDPOINT` (default
//! `http://127.0.0.1:5000`, started by `scripts/moto.sh start`; read by
//! `orchestrator_test_support::moto`) with an explicit SDK configuration, so nothing mutates the
//! process environment. When moto does not answer the tests fail; `ORCH_SKIP_AWS_TESTS=1` turns
//! them into "skipped: no moto".

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use strum::IntoEnumIterator;

use super::{
    sqs::{QueueNaming, SqsQueue},
    AwsEnv,
};
use crate::types::queue::{QueueType, QUEUE_MAX_RECEIVE_COUNT};

/// An SDK configuration for moto, or `None` (after printing "skipped: no moto") when AWS tests
/// are skipped (`ORCH_SKIP_AWS_TESTS=1`).
///
/// # Panics
/// When moto does not answer (the message says how to start it).
pub(crate) async fn moto_or_skip() -> Option<AwsEnv> {
    let endpoint = orchestrator_test_support::moto::endpoint_or_skip().await?;
    Some(AwsEnv::explicit("test", "test", "us-east-1", Some(&endpoint)).await)
}

/// An SDK configuration pointing at a closed port on 127.0.0.1.
pub(crate) async fn closed_port_env() -> AwsEnv {
    let port = orchestrator_test_support::launch::free_port();
    AwsEnv::explicit("test", "test", "us-east-1", Some(&format!("http://127.0.0.1:{port}"))).await
}

/// A fresh name prefix: lowercase letter plus hex, valid in every AWS resource name.
pub(crate) fn unique_prefix() -> String {
    orchestrator_test_support::moto::fresh_prefix()
}

/// Every queue type created on moto under a fresh template, with one visibility timeout and
/// the production redrive policy.
pub(crate) struct MotoQueues {
    /// The client over them.
    pub client: SqsQueue,
}

impl MotoQueues {
    /// Creates the queues `{prefix}_{}` (the dead-letter queue first).
    pub(crate) async fn create(env: &AwsEnv, prefix: &str, visibility: Duration) -> Self {
        let naming = QueueNaming::new("{}", Some(prefix)).expect("template");
        let sqs = env.sqs();
        let vis = visibility.as_secs_f64().ceil().max(1.0).to_string();
        let dlq_url = sqs
            .create_queue()
            .queue_name(naming.name(QueueType::JobHandleFailure))
            .attributes(QueueAttributeName::VisibilityTimeout, &vis)
            .send()
            .await
            .expect("create the dead-letter queue")
            .queue_url
            .expect("queue url");
        let dlq_arn = sqs
            .get_queue_attributes()
            .queue_url(dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("dead-letter queue ARN")
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .expect("QueueArn");
        for queue in QueueType::iter().filter(|q| *q != QueueType::JobHandleFailure) {
            let mut request = sqs
                .create_queue()
                .queue_name(naming.name(queue))
                .attributes(QueueAttributeName::VisibilityTimeout, &vis);
            if queue.config(&Default::default()).dead_letter_queue.is_some() {
                let policy = serde_json::json!({
                    "deadLetterTargetArn": dlq_arn,
                    "maxReceiveCount": QUEUE_MAX_RECEIVE_COUNT.to_string(),
                });
                request = request.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
            }
            request.send().await.unwrap_or_else(|e| panic!("create {queue}: {e:?}"));
        }
        Self { client: SqsQueue::new(env, naming, QueueType::iter().collect()) }
    }
}
