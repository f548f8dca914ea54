//! Test helpers for the AWS backends: the moto endpoint, unique names, fresh queues.
//!
//! Tests reach moto at `MADARA_ORCHESTRATOR_TEST_AWS_ENDPOINT` (default
//! `http://127.0.0.1:5000`, started by `scripts/moto.sh start`) with an explicit SDK
//! configuration, so nothing mutates the process environment. When moto does not answer the
//! tests fail, unless `ORCH_SKIP_AWS_TESTS=1`, which turns them into "skipped: no moto".

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use strum::IntoEnumIterator;

use super::{
    sqs::{QueueNaming, SqsQueue},
    AwsEnv,
};
use crate::types::queue::{QueueType, QUEUE_MAX_RECEIVE_COUNT};

/// The moto endpoint the tests use.
pub(crate) fn endpoint() -> String {
    std::env::var("MADARA_ORCHESTRATOR_TEST_AWS_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:5000".to_owned())
}

/// An SDK configuration for moto, or `None` (after printing "skipped: no moto") when moto
/// does not answer and `ORCH_SKIP_AWS_TESTS=1`.
///
/// # Panics
/// When moto does not answer and skipping was not asked for.
pub(crate) async fn moto_or_skip() -> Option<AwsEnv> {
    let endpoint = endpoint();
    let addr = endpoint
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned();
    let reachable = matches!(
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(&addr)).await,
        Ok(Ok(_))
    );
    if !reachable {
        if std::env::var("ORCH_SKIP_AWS_TESTS").is_ok_and(|v| v == "1") {
            eprintln!("skipped: no moto");
            return None;
        }
        panic!(
            "moto is not reachable at {endpoint}: start it with `scripts/moto.sh start` \
             (or point MADARA_ORCHESTRATOR_TEST_AWS_ENDPOINT at one), or set ORCH_SKIP_AWS_TESTS=1 to skip"
        );
    }
    Some(AwsEnv::explicit("test", "test", "us-east-1", Some(&endpoint)).await)
}

/// An SDK configuration pointing at a closed port on 127.0.0.1.
pub(crate) async fn closed_port_env() -> AwsEnv {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        listener.local_addr().expect("local addr").port()
    };
    AwsEnv::explicit("test", "test", "us-east-1", Some(&format!("http://127.0.0.1:{port}"))).await
}

/// A fresh name prefix: lowercase letter plus hex, valid in every AWS resource name.
pub(crate) fn unique_prefix() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
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
