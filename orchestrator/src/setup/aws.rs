//! `orchestrator setup` on AWS: creates or reconciles every resource the distributed tier
//! needs, in dependency order, and reports each one as created, updated or unchanged.
//!
//! | Resource | Name | Reconciled |
//! |---|---|---|
//! | S3 bucket | `{prefix-}{bucket}` or the ARN's | created if missing; lifecycle rule `expire-settled-artifacts` (objects tagged `expire-after-settlement=true` expire after N days) merged into the bucket's rules |
//! | SQS queues | the layer's, from the template | `job_handle_failure` first; VisibilityTimeout, MessageRetentionPeriod and RedrivePolicy (→ `job_handle_failure` after 5 receives) |
//! | SNS topic | `{prefix_}{topic}` or the ARN | created if missing |
//! | IAM role + inline policy | `{prefix-}mo-wt-role`, `{prefix-}mo-wt-policy` | one stable role, reused; trust and `sqs:SendMessage` on the worker-trigger queue reconciled |
//! | Rules or schedules | `{prefix-}mo-wt-rule-<trigger>` | see `core::client::aws::eventbridge` |
//!
//! With `--dry-run` only read APIs are called. Readiness is polled every `--poll-interval`
//! within `--timeout`; there are no fixed sleeps.

use std::{collections::HashMap, future::Future, time::Duration};

use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, CreateBucketConfiguration,
    ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, Tag,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{json, Value};

use super::SetupError;
use crate::{
    config::choices::EventBridgeType,
    config::{AlertBackend, CronBackend, QueueBackend, SetupParams, StorageBackend},
    core::client::aws::{
        eventbridge::{rate_expression, trigger_resource_name, EventBridgeCron, TriggerTarget},
        s3::{bucket_name, BUCKET_MISSING_CODES},
        sns::{find_topic_arn, TopicRef, TOPIC_MISSING_CODES},
        sqs::{validate_queue_name, QueueNaming, QUEUE_MISSING_CODES},
        Action, AwsEnv, AwsError, ResourceReport,
    },
    core::client::CronError,
    types::queue::{QueueParams, QueueType, WorkerTriggerType, QUEUE_MAX_RECEIVE_COUNT},
};

/// Id of the lifecycle rule that expires settled artifacts.
pub const LIFECYCLE_RULE_ID: &str = "expire-settled-artifacts";
/// Tag StorageCleanup puts on settled artifacts.
pub const EXPIRE_TAG: (&str, &str) = ("expire-after-settlement", "true");
/// Retention of the job queues and the dead-letter queue: SQS' maximum, 14 days, so work
/// survives a long outage.
pub const JOB_QUEUE_RETENTION_SECS: u64 = 14 * 24 * 3600;
/// Retention of the worker-trigger queue: a trigger older than a minute is stale (the next
/// one is on its way).
pub const TRIGGER_QUEUE_RETENTION_SECS: u64 = 60;
/// Error codes of a missing IAM entity.
const IAM_MISSING_CODES: &[&str] = &["NoSuchEntity", "NoSuchEntityException"];
/// Error code of a bucket without lifecycle configuration.
const NO_LIFECYCLE_CODES: &[&str] = &["NoSuchLifecycleConfiguration"];
/// Stand-in ARN of a queue a dry run would create.
const PLANNED_ARN: &str = "(ARN assigned on creation)";

/// Name of the IAM role EventBridge/Scheduler assume: `{prefix-}mo-wt-role`.
pub fn role_name(prefix: Option<&str>) -> String {
    prefixed(prefix, "mo-wt-role")
}

/// Name of the role's inline policy: `{prefix-}mo-wt-policy`.
pub fn role_policy_name(prefix: Option<&str>) -> String {
    prefixed(prefix, "mo-wt-policy")
}

fn prefixed(prefix: Option<&str>, name: &str) -> String {
    match prefix {
        Some(p) if !p.is_empty() => format!("{p}-{name}"),
        _ => name.to_owned(),
    }
}

/// The attributes setup gives `queue`: visibility from `QueueType::config`, retention, and
/// the redrive policy to `dlq_arn` when the queue has a dead-letter queue.
pub fn desired_queue_attributes(
    queue: QueueType,
    dlq_arn: &str,
) -> HashMap<QueueAttributeName, String> {
    let config = queue.config(&QueueParams::default());
    let retention = if queue == QueueType::WorkerTrigger {
        TRIGGER_QUEUE_RETENTION_SECS
    } else {
        JOB_QUEUE_RETENTION_SECS
    };
    let mut attributes = HashMap::from([
        (QueueAttributeName::VisibilityTimeout, config.visibility_timeout.as_secs().to_string()),
        (QueueAttributeName::MessageRetentionPeriod, retention.to_string()),
    ]);
    if config.dead_letter_queue.is_some() {
        let policy = json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": config.max_receive_count.max(QUEUE_MAX_RECEIVE_COUNT),
        });
        attributes.insert(QueueAttributeName::RedrivePolicy, policy.to_string());
    }
    attributes
}

/// Provisions the AWS resources `params` selects and reports each one.
///
/// # Errors
/// `SetupError::Aws` naming the resource and the cause (bad name, unreachable endpoint,
/// refused credentials), `SetupError::NotReady` when a resource does not become ready in time.
pub async fn setup_aws(
    params: &SetupParams,
    env: &AwsEnv,
) -> Result<Vec<ResourceReport>, SetupError> {
    let plan = Plan::new(params)?;
    let mut run = Run { params, env, dry_run: params.dry_run, reports: Vec::new() };
    if let Some((bucket, expiration_days)) = &plan.bucket {
        run.bucket(bucket, *expiration_days).await?;
    }
    let mut trigger_queue_arn = None;
    if let Some(naming) = &plan.queues {
        trigger_queue_arn = Some(run.queues(naming).await?);
    }
    if let Some(topic) = &plan.topic {
        run.topic(topic).await?;
    }
    if let CronBackend::EventBridge { kind, interval, prefix } = &params.infra.cron {
        let kind = kind.ok_or_else(|| {
            aws_err(
                "EventBridge",
                AwsError::invalid("--event-bridge-type is required (rule or schedule)"),
            )
        })?;
        let queue_arn = trigger_queue_arn.ok_or_else(|| {
            aws_err(
                "EventBridge",
                AwsError::invalid("the worker triggers go to an SQS queue: add --aws-sqs"),
            )
        })?;
        let role_arn = run.role(prefix.as_deref(), &queue_arn).await?;
        let cron = EventBridgeCron::new(
            env,
            kind,
            prefix.clone(),
            TriggerTarget { queue_arn, role_arn: Some(role_arn.arn) },
        );
        run.triggers(&cron, kind, *interval, role_arn.created).await?;
    }
    Ok(run.reports)
}

/// Every name setup will use, checked before anything is created: a bad identifier or
/// prefix creates nothing.
struct Plan {
    bucket: Option<(String, u32)>,
    queues: Option<QueueNaming>,
    topic: Option<TopicRef>,
}

impl Plan {
    fn new(params: &SetupParams) -> Result<Self, SetupError> {
        let infra = &params.infra;
        let bucket = match &infra.storage {
            StorageBackend::S3 { bucket_identifier, prefix, expiration_days } => Some((
                bucket_name(bucket_identifier, prefix.as_deref())
                    .map_err(|e| aws_err(format!("bucket {bucket_identifier}"), e))?,
                *expiration_days,
            )),
            StorageBackend::Embedded { .. } => None,
        };
        let queues = match &infra.queue {
            QueueBackend::Sqs { identifier, prefix } => {
                let naming = QueueNaming::new(identifier, prefix.as_deref())
                    .map_err(|e| aws_err(format!("queues {identifier}"), e))?;
                for queue in QueueType::for_layer(params.layer) {
                    let name = naming.name(queue);
                    validate_queue_name(&name).map_err(|e| aws_err(format!("queue {name}"), e))?;
                }
                Some(naming)
            }
            QueueBackend::Embedded => None,
        };
        let topic = match &infra.alerts {
            AlertBackend::Sns { topic_identifier, prefix } => Some(
                TopicRef::new(topic_identifier, prefix.as_deref())
                    .map_err(|e| aws_err(format!("topic {topic_identifier}"), e))?,
            ),
            AlertBackend::Embedded { .. } => None,
        };
        if let CronBackend::EventBridge { prefix, interval, .. } = &infra.cron {
            let role = role_name(prefix.as_deref());
            validate_iam_name(&role).map_err(|e| aws_err(format!("role {role}"), e))?;
            for trigger in WorkerTriggerType::for_layer(params.layer) {
                let name = trigger_resource_name(prefix.as_deref(), *trigger);
                validate_trigger_name(&name).map_err(|e| aws_err(format!("rule {name}"), e))?;
            }
            rate_expression(*interval)?;
        }
        Ok(Self { bucket, queues, topic })
    }
}

/// IAM role names: 1–64 of letters, digits and `+=,.@_-`.
fn validate_iam_name(name: &str) -> Result<(), AwsError> {
    if name.is_empty() || name.len() > 64 {
        return Err(AwsError::invalid(format!(
            "IAM name {name:?} must be 1 to 64 characters long"
        )));
    }
    match name.chars().find(|c| !(c.is_ascii_alphanumeric() || "+=,.@_-".contains(*c))) {
        Some(bad) => Err(AwsError::invalid(format!("IAM name {name:?} contains {bad:?}"))),
        None => Ok(()),
    }
}

/// Rule and schedule names: 1–64 of letters, digits and `._-`.
fn validate_trigger_name(name: &str) -> Result<(), AwsError> {
    if name.is_empty() || name.len() > 64 {
        return Err(AwsError::invalid(format!("name {name:?} must be 1 to 64 characters long")));
    }
    match name.chars().find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c))) {
        Some(bad) => Err(AwsError::invalid(format!("name {name:?} contains {bad:?}"))),
        None => Ok(()),
    }
}

/// One setup run.
struct Run<'a> {
    params: &'a SetupParams,
    env: &'a AwsEnv,
    dry_run: bool,
    reports: Vec<ResourceReport>,
}

/// The role's ARN and whether this run created it.
struct RoleArn {
    arn: String,
    created: bool,
}

fn aws_err(resource: impl Into<String>, source: AwsError) -> SetupError {
    SetupError::Aws { resource: resource.into(), source }
}

impl Run<'_> {
    fn report(&mut self, kind: &'static str, name: &str, action: Action) -> Action {
        let report = ResourceReport::new(kind, name, action.clone(), self.dry_run);
        tracing::debug!(target: "orch::setup", "{report}");
        self.reports.push(report);
        action
    }

    /// Polls `probe` every `--poll-interval` until it answers `true`, within `--timeout`.
    async fn wait_ready<F, Fut>(&self, resource: &str, mut probe: F) -> Result<(), SetupError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<bool, AwsError>>,
    {
        let deadline = tokio::time::Instant::now() + self.params.timeout;
        loop {
            match probe().await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) if e.retryable => {
                    tracing::debug!(target: "orch::setup", resource, error = %e, "Not ready yet")
                }
                Err(e) => return Err(aws_err(resource, e)),
            }
            if tokio::time::Instant::now() + self.params.poll_interval > deadline {
                return Err(SetupError::NotReady {
                    resource: resource.to_owned(),
                    waited: self.params.timeout,
                });
            }
            tokio::time::sleep(self.params.poll_interval).await;
        }
    }

    async fn bucket(&mut self, bucket: &str, expiration_days: u32) -> Result<(), SetupError> {
        let s3 = self.env.s3();
        let resource = format!("bucket {bucket}");
        let exists = bucket_exists(&s3, bucket).await.map_err(|e| aws_err(&resource, e))?;
        if exists {
            self.report("bucket", bucket, Action::Unchanged);
        } else {
            self.report("bucket", bucket, Action::Create);
            if !self.dry_run {
                let mut request = s3.create_bucket().bucket(bucket);
                if let Some(region) = self.env.region().filter(|r| *r != "us-east-1") {
                    let location = CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(region))
                        .build();
                    request = request.create_bucket_configuration(location);
                }
                request.send().await.map_err(|e| aws_err(&resource, AwsError::from_sdk(&e)))?;
                self.wait_ready(&resource, || bucket_exists(&s3, bucket)).await?;
            }
        }

        // The lifecycle rule, merged into whatever other rules the bucket has.
        let lifecycle = format!("{bucket}/{LIFECYCLE_RULE_ID}");
        let resource = format!("lifecycle rule {lifecycle}");
        let mut rules = if exists {
            match s3.get_bucket_lifecycle_configuration().bucket(bucket).send().await {
                Ok(out) => out.rules.unwrap_or_default(),
                Err(e) => {
                    let e = AwsError::from_sdk(&e);
                    if !e.is_code(NO_LIFECYCLE_CODES) {
                        return Err(aws_err(&resource, e));
                    }
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let wanted = lifecycle_rule(expiration_days).map_err(|e| aws_err(&resource, e))?;
        let position = rules.iter().position(|r| r.id.as_deref() == Some(LIFECYCLE_RULE_ID));
        let action = match position.map(|i| &rules[i]) {
            None => Action::Create,
            Some(current) => {
                let changes = lifecycle_changes(current, expiration_days);
                if changes.is_empty() {
                    Action::Unchanged
                } else {
                    Action::Update(changes)
                }
            }
        };
        if self.report("lifecycle rule", &lifecycle, action.clone()) != Action::Unchanged
            && !self.dry_run
        {
            match position {
                Some(i) => rules[i] = wanted,
                None => rules.push(wanted),
            }
            let configuration = BucketLifecycleConfiguration::builder()
                .set_rules(Some(rules))
                .build()
                .map_err(|e| aws_err(&resource, AwsError::invalid(e.to_string())))?;
            s3.put_bucket_lifecycle_configuration()
                .bucket(bucket)
                .lifecycle_configuration(configuration)
                .send()
                .await
                .map_err(|e| aws_err(&resource, AwsError::from_sdk(&e)))?;
        }
        Ok(())
    }

    /// Reconciles the layer's queues (dead-letter queue first) and returns the ARN of the
    /// worker-trigger queue.
    async fn queues(&mut self, naming: &QueueNaming) -> Result<String, SetupError> {
        let mut order = QueueType::for_layer(self.params.layer);
        order.sort_by_key(|q| *q != QueueType::JobHandleFailure);
        let mut dlq_arn = PLANNED_ARN.to_owned();
        let mut trigger_arn = PLANNED_ARN.to_owned();
        for queue in order {
            let arn = self.queue(naming, queue, &dlq_arn).await?;
            match queue {
                QueueType::JobHandleFailure => dlq_arn = arn,
                QueueType::WorkerTrigger => trigger_arn = arn,
                _ => {}
            }
        }
        if let CronBackend::EventBridge { kind: Some(EventBridgeType::Rule), prefix, .. } =
            &self.params.infra.cron
        {
            self.trigger_queue_policy(naming, &trigger_arn, prefix.as_deref()).await?;
        }
        Ok(trigger_arn)
    }

    /// Reconciles one queue; returns its ARN.
    async fn queue(
        &mut self,
        naming: &QueueNaming,
        queue: QueueType,
        dlq_arn: &str,
    ) -> Result<String, SetupError> {
        let sqs = self.env.sqs();
        let name = naming.name(queue);
        let resource = format!("queue {name}");
        let wanted = desired_queue_attributes(queue, dlq_arn);
        let url =
            queue_url(&sqs, &name, naming.account()).await.map_err(|e| aws_err(&resource, e))?;
        let Some(url) = url else {
            if naming.is_arn() {
                return Err(aws_err(
                    &resource,
                    AwsError::invalid("it does not exist; queues named by ARN are not created by setup (use a name template)"),
                ));
            }
            self.report("queue", &name, Action::Create);
            if self.dry_run {
                return Ok(PLANNED_ARN.to_owned());
            }
            sqs.create_queue()
                .queue_name(&name)
                .set_attributes(Some(wanted))
                .send()
                .await
                .map_err(|e| aws_err(&resource, AwsError::from_sdk(&e)))?;
            self.wait_ready(&resource, || async {
                Ok(queue_url(&sqs, &name, None).await?.is_some())
            })
            .await?;
            let url =
                queue_url(&sqs, &name, None).await.map_err(|e| aws_err(&resource, e))?.ok_or_else(
                    || aws_err(&resource, AwsError::invalid("vanished right after creation")),
                )?;
            return queue_arn(&sqs, &url).await.map_err(|e| aws_err(&resource, e));
        };
        let current = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .map_err(|e| aws_err(&resource, AwsError::from_sdk(&e)))?
            .attributes
            .unwrap_or_default();
        let arn = current
            .get(&QueueAttributeName::QueueArn)
            .cloned()
            .ok_or_else(|| aws_err(&resource, AwsError::invalid("SQS returned no QueueArn")))?;
        let mut changes = Vec::new();
        let mut update = HashMap::new();
        for (attribute, value) in wanted {
            let have = current.get(&attribute);
            let same = match attribute {
                QueueAttributeName::RedrivePolicy => have.is_some_and(|h| same_redrive(h, &value)),
                _ => have == Some(&value),
            };
            if !same {
                changes.push(format!(
                    "{} {} → {value}",
                    attribute.as_str(),
                    have.map_or("unset", String::as_str)
                ));
                update.insert(attribute, value);
            }
        }
        let action = if changes.is_empty() { Action::Unchanged } else { Action::Update(changes) };
        if self.report("queue", &name, action) != Action::Unchanged && !self.dry_run {
            sqs.set_queue_attributes()
                .queue_url(&url)
                .set_attributes(Some(update))
                .send()
                .await
                .map_err(|e| aws_err(&resource, AwsError::from_sdk(&e)))?;
        }
        Ok(arn)
    }

    /// Lets EventBridge rules of this deployment send to the worker-trigger queue (rules use
    /// the queue's resource policy, not a role).
    async fn trigger_queue_policy(
        &mut self,
        naming: &QueueNaming,
        queue_arn: &str,
        prefix: Option<&str>,
    ) -> Result<(), SetupError> {
        let sqs = self.env.sqs();
        let name = naming.name(QueueType::WorkerTrigger);
        let resource = format!("queue policy {name}");
        let wanted = trigger_queue_policy(queue_arn, prefix);
        let url =
            queue_url(&sqs, &name, naming.account()).await.map_err(|e| aws_err(&resource, e))?;
        let current = match &url {
            Some(url) => sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::Policy)
                .send()
                .await
                .map_err(|e| aws_err(&resource, AwsError::from_sdk(&e)))?
                .attributes
                .and_then(|mut a| a.remove(&QueueAttributeName::Policy)),
            None => None,
        };
        let current: Option<Value> = current.and_then(|p| serde_json::from_str(&p).ok());
        let action = match current {
            None => Action::Create,
            Some(c) if c == wanted => Action::Unchanged,
            Some(_) => Action::Update(vec!["allow the worker-trigger rules to send".to_owned()]),
        };
        if self.report("queue policy", &name, action) != Action::Unchanged && !self.dry_run {
            let url = url
                .ok_or_else(|| aws_err(&resource, AwsError::invalid("the queue does not exist")))?;
            sqs.set_queue_attributes()
                .queue_url(url)
                .attributes(QueueAttributeName::Policy, wanted.to_string())
                .send()
                .await
                .map_err(|e| aws_err(&resource, AwsError::from_sdk(&e)))?;
        }
        Ok(())
    }

    async fn topic(&mut self, topic: &TopicRef) -> Result<(), SetupError> {
        let sns = self.env.sns();
        let resource = format!("topic {}", topic.name());
        match topic {
            TopicRef::Arn(arn) => {
                match sns.get_topic_attributes().topic_arn(arn).send().await {
                    Ok(_) => {}
                    Err(e) => {
                        let e = AwsError::from_sdk(&e);
                        let e = if e.is_code(TOPIC_MISSING_CODES) {
                            AwsError::invalid(format!("{arn} does not exist; topics named by ARN are not created by setup"))
                        } else {
                            e
                        };
                        return Err(aws_err(&resource, e));
                    }
                }
                self.report("topic", topic.name(), Action::Unchanged);
            }
            TopicRef::Name(name) => {
                let existing =
                    find_topic_arn(&sns, name).await.map_err(|e| aws_err(&resource, e))?;
                if existing.is_some() {
                    self.report("topic", name, Action::Unchanged);
                } else {
                    self.report("topic", name, Action::Create);
                    if !self.dry_run {
                        sns.create_topic()
                            .name(name)
                            .send()
                            .await
                            .map_err(|e| aws_err(&resource, AwsError::from_sdk(&e)))?;
                        self.wait_ready(&resource, || async {
                            Ok(find_topic_arn(&sns, name).await?.is_some())
                        })
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Reconciles the one IAM role (and its inline policy) EventBridge and the Scheduler
    /// assume to send to the worker-trigger queue.
    async fn role(&mut self, prefix: Option<&str>, queue_arn: &str) -> Result<RoleArn, SetupError> {
        let iam = self.env.iam();
        let name = role_name(prefix);
        let resource = format!("role {name}");
        let trust = role_trust_policy();
        let existing = match iam.get_role().role_name(&name).send().await {
            Ok(out) => out.role,
            Err(e) => {
                let e = AwsError::from_sdk(&e);
                if !e.is_code(IAM_MISSING_CODES) {
                    return Err(aws_err(&resource, e));
                }
                None
            }
        };
        let mut created = false;
        let arn = match existing {
            Some(role) => {
                let current = role.assume_role_policy_document.as_deref().and_then(policy_json);
                if current.as_ref() == Some(&trust) {
                    self.report("role", &name, Action::Unchanged);
                } else {
                    self.report(
                        "role",
                        &name,
                        Action::Update(vec![
                            "trust events.amazonaws.com and scheduler.amazonaws.com".to_owned(),
                        ]),
                    );
                    if !self.dry_run {
                        iam.update_assume_role_policy()
                            .role_name(&name)
                            .policy_document(trust.to_string())
                            .send()
                            .await
                            .map_err(|e| aws_err(&resource, AwsError::from_sdk(&e)))?;
                    }
                }
                role.arn
            }
            None => {
                self.report("role", &name, Action::Create);
                if self.dry_run {
                    PLANNED_ARN.to_owned()
                } else {
                    let out = iam
                        .create_role()
                        .role_name(&name)
                        .assume_role_policy_document(trust.to_string())
                        .description("Lets EventBridge and the Scheduler send worker triggers to the orchestrator's queue")
                        .send()
                        .await
                        .map_err(|e| aws_err(&resource, AwsError::from_sdk(&e)))?;
                    created = true;
                    self.wait_ready(&resource, || async {
                        match iam.get_role().role_name(&name).send().await {
                            Ok(_) => Ok(true),
                            Err(e) => {
                                let e = AwsError::from_sdk(&e);
                                if e.is_code(IAM_MISSING_CODES) {
                                    Ok(false)
                                } else {
                                    Err(e)
                                }
                            }
                        }
                    })
                    .await?;
                    out.role.map(|r| r.arn).ok_or_else(|| {
                        aws_err(&resource, AwsError::invalid("IAM returned no role"))
                    })?
                }
            }
        };

        let policy_name = role_policy_name(prefix);
        let policy_resource = format!("role policy {policy_name}");
        let wanted = send_policy(queue_arn);
        let current = if created || arn == PLANNED_ARN {
            None
        } else {
            match iam.get_role_policy().role_name(&name).policy_name(&policy_name).send().await {
                Ok(out) => policy_json(&out.policy_document),
                Err(e) => {
                    let e = AwsError::from_sdk(&e);
                    if !e.is_code(IAM_MISSING_CODES) {
                        return Err(aws_err(&policy_resource, e));
                    }
                    None
                }
            }
        };
        let action = match current {
            None => Action::Create,
            Some(c) if c == wanted => Action::Unchanged,
            Some(_) => Action::Update(vec![format!("allow sqs:SendMessage on {queue_arn}")]),
        };
        if self.report("role policy", &policy_name, action) != Action::Unchanged && !self.dry_run {
            iam.put_role_policy()
                .role_name(&name)
                .policy_name(&policy_name)
                .policy_document(wanted.to_string())
                .send()
                .await
                .map_err(|e| aws_err(&policy_resource, AwsError::from_sdk(&e)))?;
        }
        Ok(RoleArn { arn, created })
    }

    async fn triggers(
        &mut self,
        cron: &EventBridgeCron,
        kind: EventBridgeType,
        interval: Duration,
        role_created: bool,
    ) -> Result<(), SetupError> {
        let triggers = WorkerTriggerType::for_layer(self.params.layer);
        let what = match kind {
            EventBridgeType::Rule => "EventBridge rules",
            EventBridgeType::Schedule => "EventBridge schedules",
        };
        let deadline = tokio::time::Instant::now() + self.params.timeout;
        let reports = loop {
            match cron.reconcile(triggers, interval, self.dry_run).await {
                Ok(reports) => break reports,
                // A new role takes a while to become assumable by the Scheduler on AWS.
                Err(e)
                    if role_created
                        && kind == EventBridgeType::Schedule
                        && tokio::time::Instant::now() + self.params.poll_interval <= deadline =>
                {
                    tracing::info!(target: "orch::setup", error = %e, "The new role is not usable yet; retrying");
                    tokio::time::sleep(self.params.poll_interval).await;
                }
                Err(CronError::Create { name, source }) => {
                    let source = match source.downcast::<AwsError>() {
                        Ok(e) => *e,
                        Err(other) => AwsError::invalid(other.to_string()),
                    };
                    let kind = if kind == EventBridgeType::Rule { "rule" } else { "schedule" };
                    return Err(aws_err(format!("{kind} {name}"), source));
                }
                Err(e) => return Err(SetupError::Cron(e)),
            }
        };
        for report in reports {
            tracing::debug!(target: "orch::setup", "{report}");
            self.reports.push(report);
        }
        if !self.dry_run {
            self.wait_ready(what, || cron.ready(triggers)).await?;
        }
        Ok(())
    }
}

async fn bucket_exists(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<bool, AwsError> {
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(true),
        Err(e) => {
            let e = AwsError::from_sdk(&e);
            if e.status == Some(404) || e.is_code(BUCKET_MISSING_CODES) || e.is_code(&["NotFound"])
            {
                Ok(false)
            } else if e.status == Some(403) {
                Err(AwsError {
                    message: format!(
                        "access denied (the name may be taken by another account): {e}"
                    ),
                    ..e
                })
            } else {
                Err(e)
            }
        }
    }
}

/// The URL of the queue `name`, `None` if it does not exist.
async fn queue_url(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    owner: Option<&str>,
) -> Result<Option<String>, AwsError> {
    match sqs
        .get_queue_url()
        .queue_name(name)
        .set_queue_owner_aws_account_id(owner.map(str::to_owned))
        .send()
        .await
    {
        Ok(out) => Ok(out.queue_url),
        Err(e) => {
            let e = AwsError::from_sdk(&e);
            if e.is_code(QUEUE_MISSING_CODES) {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, AwsError> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(&e))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| AwsError::invalid("SQS returned no QueueArn"))
}

/// Whether two redrive policies name the same queue and count (SQS may return the count as
/// a number or a string).
fn same_redrive(a: &str, b: &str) -> bool {
    let parse = |s: &str| -> Option<(String, String)> {
        let v: Value = serde_json::from_str(s).ok()?;
        let target = v.get("deadLetterTargetArn")?.as_str()?.to_owned();
        let count = match v.get("maxReceiveCount")? {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Some((target, count))
    };
    matches!((parse(a), parse(b)), (Some(x), Some(y)) if x == y)
}

fn lifecycle_rule(expiration_days: u32) -> Result<LifecycleRule, AwsError> {
    let tag = Tag::builder()
        .key(EXPIRE_TAG.0)
        .value(EXPIRE_TAG.1)
        .build()
        .map_err(|e| AwsError::invalid(e.to_string()))?;
    LifecycleRule::builder()
        .id(LIFECYCLE_RULE_ID)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().tag(tag).build())
        .expiration(
            LifecycleExpiration::builder()
                .days(i32::try_from(expiration_days).unwrap_or(i32::MAX))
                .build(),
        )
        .build()
        .map_err(|e| AwsError::invalid(e.to_string()))
}

/// What differs between `rule` and the wanted expiry rule.
fn lifecycle_changes(rule: &LifecycleRule, expiration_days: u32) -> Vec<String> {
    let mut changes = Vec::new();
    if rule.status != ExpirationStatus::Enabled {
        changes.push("enable".to_owned());
    }
    let tag = rule
        .filter
        .as_ref()
        .and_then(|f| f.tag.as_ref())
        .map(|t| (t.key.as_str(), t.value.as_str()));
    if tag != Some(EXPIRE_TAG) {
        changes.push(format!("filter → tag {}={}", EXPIRE_TAG.0, EXPIRE_TAG.1));
    }
    let days = rule.expiration.as_ref().and_then(|e| e.days);
    if days != i32::try_from(expiration_days).ok() {
        changes.push(format!(
            "expiration {} → {expiration_days} days",
            days.map_or("unset".to_owned(), |d| d.to_string())
        ));
    }
    changes
}

fn role_trust_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": ["events.amazonaws.com", "scheduler.amazonaws.com"]},
            "Action": "sts:AssumeRole",
        }],
    })
}

fn send_policy(queue_arn: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn}],
    })
}

/// The worker-trigger queue's resource policy: EventBridge may send, from this deployment's
/// rules only.
fn trigger_queue_policy(queue_arn: &str, prefix: Option<&str>) -> Value {
    // arn:aws:sqs:<region>:<account>:<name> → the rules live in the same region and account.
    let parts: Vec<&str> = queue_arn.split(':').collect();
    let (partition, region, account) = match parts.as_slice() {
        [_, partition, _, region, account, _] => (*partition, *region, *account),
        _ => ("aws", "*", "*"),
    };
    let rules = format!(
        "arn:{partition}:events:{region}:{account}:rule/{}*",
        prefixed(prefix, "mo-wt-rule-")
    );
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "orchestrator-worker-triggers",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnLike": {"aws:SourceArn": rules}},
        }],
    })
}

/// Parses a policy document as IAM returns it (URL-encoded JSON on AWS, plain on emulators).
fn policy_json(document: &str) -> Option<Value> {
    serde_json::from_str(document)
        .ok()
        .or_else(|| serde_json::from_str(&percent_decode(document)).ok())
}

/// Decodes `%XX` escapes (and `+` as a space, as IAM's form encoding does).
fn percent_decode(s: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?))
            .flatten();
        match (escaped, bytes[i]) {
            // Two hex digits make a value below 256.
            (Some(b), _) => {
                out.push(u8::try_from(b).unwrap_or(b'?'));
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, b) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::jobs::JobType;

    #[test]
    fn url_encoded_policies_parse() {
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%7D";
        assert_eq!(policy_json(encoded), Some(json!({"Version": "2012-10-17"})));
        assert_eq!(policy_json("{\"a\":1}"), Some(json!({"a": 1})));
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%41%é"), "A%é");
        assert_eq!(percent_decode("a+b%2"), "a b%2");
    }

    #[test]
    fn redrive_policies_compare_by_content() {
        assert!(same_redrive(
            r#"{"deadLetterTargetArn":"arn:x","maxReceiveCount":5}"#,
            r#"{"maxReceiveCount":"5","deadLetterTargetArn":"arn:x"}"#
        ));
        assert!(!same_redrive(
            r#"{"deadLetterTargetArn":"arn:x","maxReceiveCount":5}"#,
            r#"{"deadLetterTargetArn":"arn:x","maxReceiveCount":6}"#
        ));
    }

    #[test]
    fn queue_attributes_follow_the_queue_table() {
        let trigger = desired_queue_attributes(QueueType::WorkerTrigger, "arn:dlq");
        assert_eq!(trigger[&QueueAttributeName::MessageRetentionPeriod], "60");
        assert!(!trigger.contains_key(&QueueAttributeName::RedrivePolicy));
        let update =
            desired_queue_attributes(QueueType::JobProcessing(JobType::StateTransition), "arn:dlq");
        assert_eq!(update[&QueueAttributeName::VisibilityTimeout], "1080");
        assert!(same_redrive(
            &update[&QueueAttributeName::RedrivePolicy],
            r#"{"deadLetterTargetArn":"arn:dlq","maxReceiveCount":"5"}"#
        ));
    }

    #[test]
    fn names_are_stable() {
        assert_eq!(role_name(None), "mo-wt-role");
        assert_eq!(role_name(Some("dev")), "dev-mo-wt-role");
        assert_eq!(role_policy_name(Some("dev")), "dev-mo-wt-policy");
    }
}
