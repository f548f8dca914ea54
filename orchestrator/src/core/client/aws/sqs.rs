//! `QueueClient` on AWS SQS.
//!
//! One standard SQS queue per [`QueueType`], named from the `--queue-identifier` template
//! (`{}` → the queue type, e.g. `mo_snos_job_processing_queue`), optionally prefixed
//! (`{prefix}_{template}`), or from an ARN whose resource is the template.
//!
//! Priority queues are ordinary SQS queues that every instance consumes: the engine processes
//! a priority message directly, so any instance may take it (the reference kept it in a
//! process-local slot, which only the receiving instance could serve).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};

use super::{Arn, AwsEnv, AwsError};
use crate::{
    core::client::queue::{Delivery, OutgoingMessage, QueueClient, QueueError},
    types::queue::{QueueType, MAX_MESSAGE_DELAY},
};

/// Error codes SQS answers for a queue that does not exist.
pub(crate) const QUEUE_MISSING_CODES: &[&str] =
    &["QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "NonExistentQueue"];
/// Error codes SQS answers for a receipt that no longer names an in-flight message.
const STALE_RECEIPT_CODES: &[&str] = &[
    "ReceiptHandleIsInvalid",
    "MessageNotInflight",
    "AWS.SimpleQueueService.MessageNotInflight",
    "InvalidReceiptHandle",
];
/// Receipts remembered for the stale-receipt guard before the memory is reset.
const MAX_TRACKED_RECEIPTS: usize = 10_000;
/// Longest SQS queue name.
const MAX_QUEUE_NAME_LEN: usize = 80;

/// How queue names are derived from `--queue-identifier` and `--aws-prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueNaming {
    /// A name template (prefix already applied).
    Template(String),
    /// An ARN whose resource is the template; queues live in that region and account.
    Arn {
        /// The region of the queues.
        region: String,
        /// The owning account.
        account: String,
        /// The name template.
        template: String,
    },
}

impl QueueNaming {
    /// Parses an identifier: an ARN (used verbatim, the prefix is ignored) or a template
    /// containing `{}`, prefixed as `{prefix}_{template}`.
    ///
    /// # Errors
    /// A malformed ARN, or a template without `{}`.
    pub fn new(identifier: &str, prefix: Option<&str>) -> Result<Self, AwsError> {
        if identifier.starts_with("arn:") {
            let arn = Arn::parse(identifier, "sqs")?;
            if arn.region.is_empty() || arn.account.is_empty() {
                return Err(AwsError::invalid(format!(
                    "queue ARN {identifier:?} must name a region and an account"
                )));
            }
            return Ok(Self::Arn {
                region: arn.region,
                account: arn.account,
                template: arn.resource,
            });
        }
        if !identifier.contains("{}") {
            return Err(AwsError::invalid(format!(
                "queue identifier {identifier:?} must contain `{{}}` (replaced by the queue type) or be an ARN"
            )));
        }
        Ok(Self::Template(match prefix {
            Some(p) if !p.is_empty() => format!("{p}_{identifier}"),
            _ => identifier.to_owned(),
        }))
    }

    /// The name of `queue`'s SQS queue.
    pub fn name(&self, queue: QueueType) -> String {
        let template = match self {
            Self::Template(t) | Self::Arn { template: t, .. } => t,
        };
        template.replace("{}", queue.as_ref())
    }

    /// Whether the queues were named by ARN (setup then never creates them).
    pub fn is_arn(&self) -> bool {
        matches!(self, Self::Arn { .. })
    }

    /// The owning account, when given by an ARN.
    pub fn account(&self) -> Option<&str> {
        match self {
            Self::Arn { account, .. } => Some(account),
            Self::Template(_) => None,
        }
    }
}

/// Checks an SQS queue name: 1–80 characters, ASCII letters, digits, `-` and `_` (a FIFO
/// queue ends in `.fifo`).
///
/// # Errors
/// A message naming the queue and what is wrong.
pub fn validate_queue_name(name: &str) -> Result<(), AwsError> {
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    if name.is_empty() || name.len() > MAX_QUEUE_NAME_LEN {
        return Err(AwsError::invalid(format!(
            "queue name {name:?} must be 1 to {MAX_QUEUE_NAME_LEN} characters long (it has {})",
            name.len()
        )));
    }
    if let Some(bad) = base.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(AwsError::invalid(format!(
            "queue name {name:?} contains {bad:?}: only ASCII letters, digits, `-` and `_` are allowed"
        )));
    }
    Ok(())
}

/// SQS queues of one orchestrator deployment.
#[derive(Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    naming: QueueNaming,
    /// Derive URLs from the ARN instead of asking SQS (real AWS, ARN naming, no endpoint).
    derive_urls: bool,
    /// The queues `health_check` requires (the layer's).
    expected: Vec<QueueType>,
    urls: Arc<Mutex<HashMap<QueueType, String>>>,
    /// The latest receipt this client received for each in-flight message id.
    receipts: Arc<Mutex<HashMap<String, String>>>,
}

impl std::fmt::Debug for SqsQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsQueue")
            .field("naming", &self.naming)
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

impl SqsQueue {
    /// Queues named by `naming`; `expected` are the queues the health check requires.
    pub fn new(env: &AwsEnv, naming: QueueNaming, expected: Vec<QueueType>) -> Self {
        let derive_urls = naming.is_arn() && env.endpoint().is_none();
        Self {
            client: env.sqs(),
            naming,
            derive_urls,
            expected,
            urls: Arc::default(),
            receipts: Arc::default(),
        }
    }

    /// The naming of the queues.
    pub fn naming(&self) -> &QueueNaming {
        &self.naming
    }

    /// The URL of `queue`'s SQS queue (cached after the first lookup).
    ///
    /// # Errors
    /// `QueueNotFound` naming the queue, `Unavailable` when SQS cannot be reached.
    pub async fn url(&self, queue: QueueType) -> Result<String, QueueError> {
        if let Some(url) = self.cached(queue) {
            return Ok(url);
        }
        let name = self.naming.name(queue);
        let url = match &self.naming {
            QueueNaming::Arn { region, account, .. } if self.derive_urls => {
                format!("https://sqs.{region}.amazonaws.com/{account}/{name}")
            }
            naming => {
                let out = self
                    .client
                    .get_queue_url()
                    .queue_name(&name)
                    .set_queue_owner_aws_account_id(naming.account().map(str::to_owned))
                    .send()
                    .await
                    .map_err(|e| queue_error(&name, AwsError::from_sdk(&e)))?;
                out.queue_url.ok_or_else(|| {
                    QueueError::other(format!("SQS returned no URL for queue {name}"))
                })?
            }
        };
        self.lock_urls().insert(queue, url.clone());
        Ok(url)
    }

    /// Remembers `delivery` as the latest receipt of its message.
    fn track(&self, delivery: &Delivery) {
        let mut receipts = self.lock_receipts();
        if receipts.len() >= MAX_TRACKED_RECEIPTS {
            // Messages acked by other processes are never forgotten otherwise; losing the
            // guard for a moment is harmless (SQS itself does not guard).
            receipts.clear();
        }
        receipts.insert(delivery.message_id.clone(), delivery.receipt.clone());
    }

    /// `StaleReceipt` when this client has since received `delivery`'s message again.
    ///
    /// SQS (and moto) let a superseded receipt delete or hide a redelivered message; this
    /// guard stops that within one process. Across processes the job database's versioned
    /// updates keep a redelivered job from being processed twice.
    fn check_current(&self, delivery: &Delivery) -> Result<(), QueueError> {
        match self.lock_receipts().get(&delivery.message_id) {
            Some(latest) if *latest != delivery.receipt => {
                Err(QueueError::StaleReceipt(delivery.message_id.clone()))
            }
            _ => Ok(()),
        }
    }

    fn lock_receipts(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // Holds plain strings: a panic while holding the lock cannot leave it torn.
        self.receipts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cached(&self, queue: QueueType) -> Option<String> {
        self.lock_urls().get(&queue).cloned()
    }

    fn lock_urls(&self) -> std::sync::MutexGuard<'_, HashMap<QueueType, String>> {
        // The map holds plain strings: a panic while holding the lock cannot leave it torn.
        self.urls.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Maps an SDK error of an operation on `queue`; forgets the cached URL when the queue
    /// is gone (it may be recreated with another URL).
    fn fail(&self, queue: QueueType, e: AwsError) -> QueueError {
        if e.is_code(QUEUE_MISSING_CODES) {
            self.lock_urls().remove(&queue);
        }
        queue_error(&self.naming.name(queue), e)
    }
}

/// Maps an SQS error on the queue `name` to a `QueueError`.
fn queue_error(name: &str, e: AwsError) -> QueueError {
    if e.is_code(QUEUE_MISSING_CODES) {
        QueueError::QueueNotFound(name.to_owned())
    } else if e.retryable {
        QueueError::Unavailable(format!("queue {name}: {e}").into())
    } else {
        QueueError::other(format!("queue {name}: {e}"))
    }
}

/// Whole seconds of a delay, rounded up (SQS counts seconds), after checking the maximum.
fn delay_secs(queue: QueueType, delay: Duration) -> Result<i32, QueueError> {
    if delay > MAX_MESSAGE_DELAY {
        return Err(QueueError::DelayTooLong { queue, delay, max: MAX_MESSAGE_DELAY });
    }
    let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    // ≤ 900 after the check above, so it fits an i32.
    Ok(i32::try_from(secs).unwrap_or(i32::MAX))
}

#[async_trait]
impl QueueClient for SqsQueue {
    async fn send(&self, queue: QueueType, message: OutgoingMessage) -> Result<(), QueueError> {
        let delay = delay_secs(queue, message.delay.unwrap_or_default())?;
        let url = self.url(queue).await?;
        let mut request = self.client.send_message().queue_url(url).message_body(message.body);
        if delay > 0 {
            request = request.delay_seconds(delay);
        }
        for (key, value) in message.attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(QueueError::other)?;
            request = request.message_attributes(key, value);
        }
        request.send().await.map_err(|e| self.fail(queue, AwsError::from_sdk(&e)))?;
        Ok(())
    }

    async fn receive(&self, queue: QueueType) -> Result<Option<Delivery>, QueueError> {
        let url = self.url(queue).await?;
        let out = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(1)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| self.fail(queue, AwsError::from_sdk(&e)))?;
        let Some(message) = out.messages.unwrap_or_default().into_iter().next() else {
            return Ok(None);
        };
        let receive_count = message
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let attributes = message
            .message_attributes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| v.string_value.map(|s| (k, s)))
            .collect();
        let delivery = Delivery {
            message_id: message.message_id.unwrap_or_default(),
            receipt: message.receipt_handle.ok_or_else(|| {
                QueueError::other(format!(
                    "SQS delivered a message without a receipt handle on {queue}"
                ))
            })?,
            body: message.body.unwrap_or_default(),
            attributes,
            receive_count,
        };
        self.track(&delivery);
        Ok(Some(delivery))
    }

    async fn ack(&self, queue: QueueType, delivery: &Delivery) -> Result<(), QueueError> {
        self.check_current(delivery)?;
        let url = self.url(queue).await?;
        self.client
            .delete_message()
            .queue_url(url)
            .receipt_handle(&delivery.receipt)
            .send()
            .await
            .map_err(|e| stale_or(self.fail(queue, AwsError::from_sdk(&e)), &e, delivery))?;
        self.lock_receipts().remove(&delivery.message_id);
        Ok(())
    }

    async fn nack(
        &self,
        queue: QueueType,
        delivery: &Delivery,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let secs = delay_secs(queue, delay)?;
        self.check_current(delivery)?;
        let url = self.url(queue).await?;
        self.client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(&delivery.receipt)
            .visibility_timeout(secs)
            .send()
            .await
            .map_err(|e| stale_or(self.fail(queue, AwsError::from_sdk(&e)), &e, delivery))?;
        Ok(())
    }

    async fn approximate_len(&self, queue: QueueType) -> Result<u64, QueueError> {
        let url = self.url(queue).await?;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|e| self.fail(queue, AwsError::from_sdk(&e)))?;
        Ok(out
            .attributes
            .and_then(|a| {
                a.get(&QueueAttributeName::ApproximateNumberOfMessages).and_then(|n| n.parse().ok())
            })
            .unwrap_or(0))
    }

    async fn health_check(&self) -> Result<(), QueueError> {
        for queue in &self.expected {
            self.url(*queue).await?;
        }
        // URLs may be cached or derived: one call proves SQS answers and the queue exists.
        if let Some(first) = self.expected.first() {
            self.approximate_len(*first).await?;
        }
        Ok(())
    }
}

/// `StaleReceipt` when SQS says the receipt no longer names an in-flight message.
fn stale_or<E>(
    mapped: QueueError,
    e: &aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
    delivery: &Delivery,
) -> QueueError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let e = AwsError::from_sdk(e);
    // Real SQS answers an expired handle with InvalidParameterValue "…receipt handle has expired".
    if e.is_code(STALE_RECEIPT_CODES) || e.message.contains("receipt handle has expired") {
        QueueError::StaleReceipt(delivery.message_id.clone())
    } else {
        mapped
    }
}

#[cfg(test)]
mod tests {
    use orchestrator_utils::Retryable;
    use std::sync::Arc;

    use async_trait::async_trait;
    use rstest::rstest;

    use super::*;
    use crate::core::client::{
        aws::test_support::{moto_or_skip, unique_prefix, MotoQueues},
        conformance::queue::QueueFactory,
    };
    use crate::types::jobs::JobType;

    #[rstest]
    #[case("mo_{}_queue", None, "mo_snos_job_processing_queue")]
    #[case("mo_{}_queue", Some("dev"), "dev_mo_snos_job_processing_queue")]
    #[case("arn:aws:sqs:eu-west-1:123456789012:x_{}", Some("ignored"), "x_snos_job_processing")]
    fn names(#[case] id: &str, #[case] prefix: Option<&str>, #[case] want: &str) {
        let n = QueueNaming::new(id, prefix).expect("naming");
        assert_eq!(n.name(QueueType::JobProcessing(JobType::SnosRun)), want);
    }

    #[test]
    fn bad_identifiers_are_refused() {
        assert!(QueueNaming::new("fixed", None).is_err());
        assert!(QueueNaming::new("arn:aws:sqs:::q_{}", None).is_err());
    }

    #[rstest]
    #[case("mo_worker_trigger_queue", true)]
    #[case("a-b_C9", true)]
    #[case("q.fifo", true)]
    #[case("", false)]
    #[case("mo queue", false)]
    #[case("mo.queue", false)]
    #[case("é", false)]
    fn queue_names(#[case] name: &str, #[case] ok: bool) {
        assert_eq!(validate_queue_name(name).is_ok(), ok, "{name}");
        assert!(validate_queue_name(&"x".repeat(81)).is_err());
    }

    #[test]
    fn delays_round_up_to_seconds_and_are_capped() {
        let q = QueueType::JobProcessing(JobType::SnosRun);
        assert_eq!(delay_secs(q, Duration::ZERO).ok(), Some(0));
        assert_eq!(delay_secs(q, Duration::from_millis(1500)).ok(), Some(2));
        assert_eq!(delay_secs(q, MAX_MESSAGE_DELAY).ok(), Some(900));
        assert!(matches!(
            delay_secs(q, Duration::from_secs(901)),
            Err(QueueError::DelayTooLong { .. })
        ));
    }

    #[tokio::test]
    async fn arn_naming_derives_urls_without_an_endpoint() {
        let env = AwsEnv::explicit("test", "test", "eu-west-1", None).await;
        let naming =
            QueueNaming::new("arn:aws:sqs:eu-west-1:111122223333:mo_{}_queue", None).expect("arn");
        let q = SqsQueue::new(&env, naming, vec![]);
        assert_eq!(
            q.url(QueueType::WorkerTrigger).await.expect("derived"),
            "https://sqs.eu-west-1.amazonaws.com/111122223333/mo_worker_trigger_queue"
        );
    }

    /// SQS queues on moto, fresh names per `queues()` call.
    #[derive(Debug, Default)]
    struct SqsFactory;

    #[async_trait]
    impl QueueFactory for SqsFactory {
        async fn queues(&self, visibility_timeout: Duration) -> Arc<dyn QueueClient> {
            let env = moto_or_skip().await.expect("moto checked by the test");
            let queues = MotoQueues::create(&env, &unique_prefix(), visibility_timeout).await;
            Arc::new(queues.client)
        }

        fn detects_double_ack(&self) -> bool {
            false
        }
    }

    crate::queue_conformance_tests!({
        if crate::core::client::aws::test_support::moto_or_skip().await.is_none() {
            return;
        }
        SqsFactory
    });

    #[tokio::test]
    async fn a_missing_queue_is_named() {
        let Some(env) = moto_or_skip().await else {
            return;
        };
        let naming =
            QueueNaming::new(&format!("{}_{{}}_nothing", unique_prefix()), None).expect("naming");
        let q = SqsQueue::new(&env, naming.clone(), vec![QueueType::WorkerTrigger]);
        let err = q
            .send(QueueType::WorkerTrigger, OutgoingMessage::new("Snos"))
            .await
            .expect_err("missing");
        match &err {
            QueueError::QueueNotFound(name) => {
                assert_eq!(name, &naming.name(QueueType::WorkerTrigger))
            }
            other => panic!("{other:?}"),
        }
        assert!(!err.is_retryable());
        assert!(matches!(q.health_check().await, Err(QueueError::QueueNotFound(_))));
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_unavailable() {
        let env = crate::core::client::aws::test_support::closed_port_env().await;
        let q = SqsQueue::new(&env, QueueNaming::new("mo_{}_queue", None).expect("naming"), vec![]);
        let err = q.receive(QueueType::WorkerTrigger).await.expect_err("closed port");
        assert!(matches!(err, QueueError::Unavailable(_)), "{err:?}");
        assert!(err.is_retryable());
    }
}
