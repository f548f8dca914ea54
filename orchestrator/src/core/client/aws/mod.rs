//! The AWS backends of the distributed tier: SQS queues, S3 storage, SNS alerts and the
//! EventBridge cron (rules or Scheduler schedules).
//!
//! Every backend takes SDK clients built from one [`AwsEnv`]: credentials and region from the
//! standard `AWS_*` variables, and an optional endpoint override (`AWS_ENDPOINT_URL`) for an
//! emulator such as moto or LocalStack.
//!
//! Retries are the SDK's own: `AWS_MAX_ATTEMPTS` (default 3) and `AWS_RETRY_MODE` (`standard`
//! or `adaptive`) from the environment or the profile; [`AwsEnv::load`] refuses a malformed
//! value with an error naming the variable (the SDK would panic). Each attempt connects within
//! `--aws-connect-timeout-secs` (default 5 s) and ends after 30 s; credentials load within
//! `--aws-identity-load-timeout-secs` (default: the SDK's 5 s). Resource names follow the reference (§2.1): a name,
//! optionally prefixed (`--aws-prefix`), or an ARN used verbatim.

pub mod eventbridge;
pub mod s3;
pub mod sns;
pub mod sqs;
#[cfg(test)]
pub(crate) mod test_support;

use crate::core::client::Clients;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::{
    config::{http::HttpResponse, Credentials},
    error::{ProvideErrorMetadata, SdkError},
};

use crate::{
    config::{AlertBackend, AwsParams, InfraParams, QueueBackend, StorageBackend},
    types::{queue::QueueType, Layer},
};

pub use eventbridge::EventBridgeCron;
pub use s3::S3Storage;
pub use sns::SnsAlerts;
pub use sqs::SqsQueue;

/// The SDK configuration shared by every AWS client, plus the endpoint override.
///
/// `Debug` shows the region and endpoint only: the credentials never print.
#[derive(Clone)]
pub struct AwsEnv {
    config: SdkConfig,
}

impl std::fmt::Debug for AwsEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsEnv")
            .field("region", &self.region())
            .field("endpoint", &self.endpoint())
            .finish_non_exhaustive()
    }
}

impl AwsEnv {
    /// Loads credentials, region and endpoint from the environment (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, profiles, instance roles),
    /// with the default timeouts. Prefer [`AwsEnv::load`], which also checks the retry
    /// variables.
    pub async fn from_env() -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(timeouts(None))
            .load()
            .await;
        Self { config }
    }

    /// [`AwsEnv::from_env`] with the timeouts of `settings` (`--aws-connect-timeout-secs`,
    /// `--aws-identity-load-timeout-secs`; `None`: the defaults), after checking
    /// `AWS_MAX_ATTEMPTS` and `AWS_RETRY_MODE`. Logs the retry and timeout settings in effect.
    ///
    /// # Errors
    /// `AWS_MAX_ATTEMPTS` is not a positive integer, or `AWS_RETRY_MODE` is neither `standard`
    /// nor `adaptive`: the message names the variable and the value.
    pub async fn load(settings: Option<&AwsParams>) -> Result<Self, AwsError> {
        check_retry_env(|name| std::env::var(name).ok())?;
        let config = loader(settings).load().await;
        let retry = config.retry_config();
        tracing::info!(
            aws_max_attempts = retry.map(|r| r.max_attempts()),
            aws_retry_mode = ?retry.map(|r| r.mode()),
            aws_connect_timeout = ?config.timeout_config().and_then(|t| t.connect_timeout()),
            aws_identity_load_timeout = ?settings.and_then(|s| s.identity_load_timeout),
            "AWS clients: retries and timeouts"
        );
        Ok(Self { config })
    }

    /// An explicit configuration, independent of the process environment: static
    /// credentials, a region and an optional endpoint (tests and emulators).
    pub async fn explicit(
        access_key_id: &str,
        secret_access_key: &str,
        region: &str,
        endpoint: Option<&str>,
    ) -> Self {
        let credentials =
            Credentials::new(access_key_id, secret_access_key, None, None, "explicit");
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .credentials_provider(credentials)
            .timeout_config(timeouts(None));
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        Self { config: loader.load().await }
    }

    /// Wraps a configuration built by the caller.
    pub fn from_sdk_config(config: SdkConfig) -> Self {
        Self { config }
    }

    /// The endpoint override, if any (moto, LocalStack).
    pub fn endpoint(&self) -> Option<&str> {
        self.config.endpoint_url()
    }

    /// The configured region, if any.
    pub fn region(&self) -> Option<&str> {
        self.config.region().map(|r| r.as_ref())
    }

    /// The underlying SDK configuration.
    pub fn sdk_config(&self) -> &SdkConfig {
        &self.config
    }

    /// An SQS client.
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.config)
    }

    /// An S3 client; path-style addressing when an endpoint is configured (emulators do
    /// not serve virtual-host buckets on 127.0.0.1).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.config)
            .force_path_style(self.endpoint().is_some())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// An SNS client.
    pub fn sns(&self) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.config)
    }

    /// An EventBridge client.
    pub fn eventbridge(&self) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::new(&self.config)
    }

    /// An EventBridge Scheduler client.
    pub fn scheduler(&self) -> aws_sdk_scheduler::Client {
        aws_sdk_scheduler::Client::new(&self.config)
    }

    /// An IAM client.
    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.config)
    }
}

/// The SDK configuration loader with the timeouts of `settings`; retries are left to the SDK's
/// own sources (`AWS_MAX_ATTEMPTS`, `AWS_RETRY_MODE`, the profile).
fn loader(settings: Option<&AwsParams>) -> aws_config::ConfigLoader {
    let connect = settings.and_then(|s| s.connect_timeout);
    let loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts(connect));
    match settings.and_then(|s| s.identity_load_timeout) {
        Some(load_timeout) => loader.identity_cache(
            aws_config::identity::IdentityCache::lazy().load_timeout(load_timeout).build(),
        ),
        None => loader,
    }
}

/// Connect timeout of AWS calls when `--aws-connect-timeout-secs` is not given.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connect (`connect`, default 5 s) and per-attempt (30 s) timeouts: an unreachable endpoint
/// fails in seconds, not minutes, and the SDK's retries get their turn.
fn timeouts(connect: Option<Duration>) -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(connect.unwrap_or(DEFAULT_CONNECT_TIMEOUT))
        .operation_attempt_timeout(Duration::from_secs(30))
        .build()
}

/// Checks the SDK's retry variables as `get` reads them: `AWS_MAX_ATTEMPTS` a positive integer,
/// `AWS_RETRY_MODE` `standard` or `adaptive` (the SDK panics on anything else).
fn check_retry_env(get: impl Fn(&str) -> Option<String>) -> Result<(), AwsError> {
    if let Some(v) = get("AWS_MAX_ATTEMPTS") {
        if !v.trim().parse::<u32>().is_ok_and(|n| n > 0) {
            return Err(AwsError::invalid(format!(
                "AWS_MAX_ATTEMPTS={v:?}: must be a positive integer (attempts per AWS call, the \
                 first included)"
            )));
        }
    }
    if let Some(v) = get("AWS_RETRY_MODE") {
        if v.parse::<aws_config::retry::RetryMode>().is_err() {
            return Err(AwsError::invalid(format!(
                "AWS_RETRY_MODE={v:?}: must be `standard` or `adaptive`"
            )));
        }
    }
    Ok(())
}

/// Replaces the queue, storage and alert clients of `clients` with the AWS backends `infra`
/// selects; the others are left as they are.
///
/// # Errors
/// A message naming the backend and the resource when an identifier is malformed.
pub async fn apply_backends(
    clients: &mut Clients,
    infra: &InfraParams,
    layer: Layer,
) -> Result<(), AwsError> {
    let uses_aws = matches!(infra.queue, QueueBackend::Sqs { .. })
        || matches!(infra.storage, StorageBackend::S3 { .. })
        || matches!(infra.alerts, AlertBackend::Sns { .. });
    if !uses_aws {
        return Ok(());
    }
    let env = AwsEnv::load(infra.aws.as_ref()).await?;
    if let QueueBackend::Sqs { identifier, prefix } = &infra.queue {
        let naming = sqs::QueueNaming::new(identifier, prefix.as_deref())?;
        clients.queue =
            std::sync::Arc::new(SqsQueue::new(&env, naming, QueueType::for_layer(layer)));
    }
    if let StorageBackend::S3 { bucket_identifier, prefix, .. } = &infra.storage {
        let bucket = s3::bucket_name(bucket_identifier, prefix.as_deref())?;
        clients.storage = std::sync::Arc::new(S3Storage::new(&env, bucket));
    }
    if let AlertBackend::Sns { topic_identifier, prefix } = &infra.alerts {
        let topic = sns::TopicRef::new(topic_identifier, prefix.as_deref())?;
        clients.alerts = std::sync::Arc::new(SnsAlerts::new(&env, topic));
    }
    Ok(())
}

/// A failed AWS call or a malformed AWS identifier, with the service's error code when it
/// sent one.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct AwsError {
    /// The service's error code (`NoSuchKey`, `AWS.SimpleQueueService.NonExistentQueue` …).
    pub code: Option<String>,
    /// What went wrong, readable.
    pub message: String,
    /// Whether the call may succeed later (network, throttling, 5xx).
    pub retryable: bool,
    /// HTTP status of the answer, if one came back.
    pub status: Option<u16>,
}

impl AwsError {
    /// An error about bad input (never retryable).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self { code: None, message: message.into(), retryable: false, status: None }
    }

    /// Classifies an SDK error: no answer (network, timeout), throttling and 5xx answers are
    /// retryable; other service errors are not.
    pub fn from_sdk<E>(e: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let code = e.code().map(str::to_owned);
        let message = match (&code, e.message()) {
            (Some(code), Some(msg)) => format!("{code}: {msg}"),
            (Some(code), None) => code.clone(),
            _ => error_chain(e),
        };
        let retryable = match e {
            SdkError::DispatchFailure(_)
            | SdkError::TimeoutError(_)
            | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(_) => {
                status.is_some_and(|s| s >= 500 || s == 429)
                    || code.as_deref().is_some_and(|c| THROTTLING_CODES.contains(&c))
            }
            _ => false,
        };
        Self { code, message, retryable, status }
    }

    /// Whether the service answered with one of `codes`.
    pub fn is_code(&self, codes: &[&str]) -> bool {
        self.code.as_deref().is_some_and(|c| codes.contains(&c))
    }
}

/// The messages of an error and its sources, joined with `: ` (repeats left out), without
/// the Debug dumps `DisplayErrorContext` appends.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    parts.join(": ")
}

/// Error codes AWS services use for throttling and transient trouble.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "RequestTimeout",
    "RequestTimeoutException",
    "KMS.ThrottlingException",
];

/// What reconciling a resource does (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The resource is missing and is created.
    Create,
    /// The resource exists with other settings; each entry names one change.
    Update(Vec<String>),
    /// The resource exists as wanted.
    Unchanged,
}

/// One resource of a setup run and what was (or would be) done to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceReport {
    /// `bucket`, `queue`, `topic`, `role` …
    pub kind: &'static str,
    /// The resource's name.
    pub name: String,
    /// What reconciling it does.
    pub action: Action,
    /// Whether the action was only planned (`--dry-run`).
    pub dry_run: bool,
}

impl ResourceReport {
    /// A report line.
    pub fn new(kind: &'static str, name: impl Into<String>, action: Action, dry_run: bool) -> Self {
        Self { kind, name: name.into(), action, dry_run }
    }
}

impl std::fmt::Display for ResourceReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = format!("{} {}", self.kind, self.name);
        match (&self.action, self.dry_run) {
            (Action::Create, true) => write!(f, "create     {what}"),
            (Action::Create, false) => write!(f, "created    {what}"),
            (Action::Update(changes), true) => {
                write!(f, "update     {what}: {}", changes.join("; "))
            }
            (Action::Update(changes), false) => {
                write!(f, "updated    {what}: {}", changes.join("; "))
            }
            (Action::Unchanged, _) => write!(f, "unchanged  {what} (exists)"),
        }
    }
}

/// The parts of an ARN `arn:<partition>:<service>:<region>:<account>:<resource>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn {
    /// `aws`, `aws-cn`, `aws-us-gov`.
    pub partition: String,
    /// `sqs`, `s3`, `sns` …
    pub service: String,
    /// Empty for global resources (S3 buckets).
    pub region: String,
    /// Empty for S3 buckets.
    pub account: String,
    /// Everything after the fifth `:`.
    pub resource: String,
}

impl Arn {
    /// Parses an ARN of `service`.
    ///
    /// # Errors
    /// When `s` is not an ARN of that service or its resource is empty.
    pub fn parse(s: &str, service: &str) -> Result<Self, AwsError> {
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        let [arn, partition, svc, region, account, resource] = parts.as_slice() else {
            return Err(AwsError::invalid(format!(
                "{s:?} is not an ARN (arn:partition:{service}:region:account:resource)"
            )));
        };
        if *arn != "arn" || partition.is_empty() || *svc != service || resource.is_empty() {
            return Err(AwsError::invalid(format!(
                "{s:?} is not an {service} ARN (arn:partition:{service}:region:account:resource)"
            )));
        }
        Ok(Self {
            partition: (*partition).to_owned(),
            service: (*svc).to_owned(),
            region: (*region).to_owned(),
            account: (*account).to_owned(),
            resource: (*resource).to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_parse_and_reject() {
        let a =
            Arn::parse("arn:aws:sqs:eu-west-1:123456789012:mo_{}_queue", "sqs").expect("sqs arn");
        assert_eq!(
            (a.region.as_str(), a.account.as_str(), a.resource.as_str()),
            ("eu-west-1", "123456789012", "mo_{}_queue")
        );
        let b = Arn::parse("arn:aws:s3:::my-bucket", "s3").expect("s3 arn");
        assert_eq!(b.resource, "my-bucket");
        assert!(Arn::parse("arn:aws:sns:us-east-1:1:topic", "sqs").is_err());
        assert!(Arn::parse("my-bucket", "s3").is_err());
        assert!(Arn::parse("arn:aws:s3:::", "s3").is_err());
    }

    #[tokio::test]
    async fn the_timeout_flags_reach_the_sdk_configuration() {
        let settings = AwsParams {
            prefix: None,
            connect_timeout: Some(Duration::from_secs(8)),
            identity_load_timeout: Some(Duration::from_secs(21)),
        };
        // An explicit region and credentials: nothing is looked up on the network.
        let fixed = |l: aws_config::ConfigLoader| {
            l.region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("a", "b", None, None, "test"))
        };
        let config = fixed(loader(Some(&settings))).load().await;
        let timeouts = config.timeout_config().expect("timeouts");
        assert_eq!(timeouts.connect_timeout(), Some(Duration::from_secs(8)));
        assert_eq!(timeouts.operation_attempt_timeout(), Some(Duration::from_secs(30)));
        let config = fixed(loader(None)).load().await;
        let timeouts = config.timeout_config().expect("timeouts");
        assert_eq!(timeouts.connect_timeout(), Some(DEFAULT_CONNECT_TIMEOUT));
        // Retries stay the SDK's: AWS_MAX_ATTEMPTS / AWS_RETRY_MODE or its defaults.
        assert!(config.retry_config().is_some_and(|r| r.max_attempts() >= 1));
    }

    #[test]
    fn malformed_retry_variables_are_refused_with_their_name() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        assert!(check_retry_env(env(&[])).is_ok());
        assert!(check_retry_env(env(&[("AWS_MAX_ATTEMPTS", "5"), ("AWS_RETRY_MODE", "adaptive")]))
            .is_ok());
        for (pairs, name) in [
            (&[("AWS_MAX_ATTEMPTS", "0")][..], "AWS_MAX_ATTEMPTS"),
            (&[("AWS_MAX_ATTEMPTS", "lots")][..], "AWS_MAX_ATTEMPTS"),
            (&[("AWS_RETRY_MODE", "legacy-ish")][..], "AWS_RETRY_MODE"),
        ] {
            let pairs: &'static [(&'static str, &'static str)] = pairs;
            let err = check_retry_env(env(pairs)).unwrap_err();
            assert!(err.message.contains(name) && !err.retryable, "{err}");
        }
    }

    #[tokio::test]
    async fn debug_never_shows_the_secret() {
        let env = AwsEnv::explicit(
            "AKIDEXAMPLE",
            "very-secret-key",
            "us-east-1",
            Some("http://127.0.0.1:1"),
        )
        .await;
        let shown = format!("{env:?}");
        assert!(!shown.contains("very-secret-key") && !shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(shown.contains("us-east-1") && shown.contains("127.0.0.1:1"), "{shown}");
    }
}
