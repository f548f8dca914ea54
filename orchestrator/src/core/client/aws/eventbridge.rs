//! `CronClient` on AWS EventBridge: per worker trigger of the layer, an EventBridge rule
//! (`rate(…)` plus a target on the worker-trigger queue) or a Scheduler schedule, each
//! sending the trigger's name to the `worker_trigger` SQS queue. The cloud fires them, so
//! `run` returns at once.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eventbridge::{
    config::http::HttpResponse,
    error::{ProvideErrorMetadata, SdkError},
    types::{InputTransformer, RuleState, Target as RuleTarget},
};
use aws_sdk_scheduler::types::{
    FlexibleTimeWindow, FlexibleTimeWindowMode, ScheduleState, Target as ScheduleTarget,
};
use tokio_util::sync::CancellationToken;

use super::{Action, AwsEnv, AwsError, ResourceReport};
use crate::{
    config::choices::EventBridgeType,
    core::client::cron::{CronClient, CronError},
    types::queue::WorkerTriggerType,
};

/// The id of the one target each rule has.
pub const RULE_TARGET_ID: &str = "mo-worker-trigger-queue";
/// The Scheduler group the schedules live in.
pub const SCHEDULE_GROUP: &str = "default";
/// Error codes of a missing rule or schedule.
const MISSING_CODES: &[&str] = &["ResourceNotFoundException", "ResourceNotFound"];

/// Name of the rule or schedule of `trigger`: `{prefix-}mo-wt-rule-<trigger lowercase>`.
pub fn trigger_resource_name(prefix: Option<&str>, trigger: WorkerTriggerType) -> String {
    let base = format!("mo-wt-rule-{}", trigger.as_ref().to_lowercase());
    match prefix {
        Some(p) if !p.is_empty() => format!("{p}-{base}"),
        _ => base,
    }
}

/// The `rate(…)` expression of an interval, in the largest whole unit (60 s →
/// `rate(1 minute)`, 7200 s → `rate(2 hours)`).
///
/// # Errors
/// When the interval is not a whole number of minutes: EventBridge fires at most once a
/// minute and only counts whole minutes, hours or days.
pub fn rate_expression(interval: Duration) -> Result<String, CronError> {
    let secs = interval.as_secs();
    if secs < 60 || !secs.is_multiple_of(60) || interval.subsec_nanos() != 0 {
        return Err(CronError::other(format!(
            "--interval-seconds {secs}: EventBridge needs a whole number of minutes (60, 120, …)"
        )));
    }
    let (n, unit) = if secs.is_multiple_of(86_400) {
        (secs / 86_400, "day")
    } else if secs.is_multiple_of(3_600) {
        (secs / 3_600, "hour")
    } else {
        (secs / 60, "minute")
    };
    Ok(format!("rate({n} {unit}{})", if n == 1 { "" } else { "s" }))
}

/// Where the triggers go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerTarget {
    /// ARN of the `worker_trigger` SQS queue.
    pub queue_arn: String,
    /// ARN of the role the Scheduler assumes to send (schedules only).
    pub role_arn: Option<String>,
}

/// The EventBridge cron.
#[derive(Clone)]
pub struct EventBridgeCron {
    kind: EventBridgeType,
    prefix: Option<String>,
    target: TriggerTarget,
    events: aws_sdk_eventbridge::Client,
    scheduler: aws_sdk_scheduler::Client,
}

impl std::fmt::Debug for EventBridgeCron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBridgeCron")
            .field("kind", &self.kind)
            .field("prefix", &self.prefix)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl EventBridgeCron {
    /// Triggers of `kind` named with `prefix`, sent to `target`.
    pub fn new(
        env: &AwsEnv,
        kind: EventBridgeType,
        prefix: Option<String>,
        target: TriggerTarget,
    ) -> Self {
        Self { kind, prefix, target, events: env.eventbridge(), scheduler: env.scheduler() }
    }

    /// Creates or updates the rule or schedule of each trigger (only inspects when
    /// `dry_run`), and reports what was done.
    ///
    /// # Errors
    /// `Create` naming the rule or schedule and the cause; `Unavailable` when EventBridge
    /// cannot be reached.
    pub async fn reconcile(
        &self,
        triggers: &[WorkerTriggerType],
        interval: Duration,
        dry_run: bool,
    ) -> Result<Vec<ResourceReport>, CronError> {
        let expression = rate_expression(interval)?;
        let mut reports = Vec::with_capacity(triggers.len());
        for trigger in triggers {
            let name = trigger_resource_name(self.prefix.as_deref(), *trigger);
            let report = match self.kind {
                EventBridgeType::Rule => {
                    self.reconcile_rule(&name, *trigger, &expression, dry_run).await
                }
                EventBridgeType::Schedule => {
                    self.reconcile_schedule(&name, *trigger, &expression, dry_run).await
                }
            }
            .map_err(|e| fail(&name, e))?;
            reports.push(report);
        }
        Ok(reports)
    }

    /// Whether the rule or schedule of every trigger exists (and, for rules, is enabled).
    ///
    /// # Errors
    /// When EventBridge cannot be asked.
    pub async fn ready(&self, triggers: &[WorkerTriggerType]) -> Result<bool, AwsError> {
        for trigger in triggers {
            let name = trigger_resource_name(self.prefix.as_deref(), *trigger);
            let ready = match self.kind {
                EventBridgeType::Rule => match self.events.describe_rule().name(&name).send().await
                {
                    Ok(rule) => rule.state == Some(RuleState::Enabled),
                    Err(e) => missing_or_err(AwsError::from_sdk(&e))?,
                },
                EventBridgeType::Schedule => {
                    match self
                        .scheduler
                        .get_schedule()
                        .name(&name)
                        .group_name(SCHEDULE_GROUP)
                        .send()
                        .await
                    {
                        Ok(s) => s.state != Some(ScheduleState::Disabled),
                        Err(e) => missing_or_err(AwsError::from_sdk(&e))?,
                    }
                }
            };
            if !ready {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn reconcile_rule(
        &self,
        name: &str,
        trigger: WorkerTriggerType,
        expression: &str,
        dry_run: bool,
    ) -> Result<ResourceReport, AwsError> {
        let mut changes = Vec::new();
        let existing = found(self.events.describe_rule().name(name).send().await)?;
        let exists = existing.is_some();
        if let Some(rule) = &existing {
            if rule.schedule_expression.as_deref() != Some(expression) {
                changes.push(format!(
                    "schedule {} → {expression}",
                    rule.schedule_expression.as_deref().unwrap_or("none")
                ));
            }
            if rule.state != Some(RuleState::Enabled) {
                changes.push("enable".to_owned());
            }
        }
        // A string template is written with its quotes, as in AWS's own examples
        // (`"<instance> is in state <status>"`), and sent as written; LocalStack strips the first
        // and last character of a template that is not JSON, so an unquoted one arrives cut.
        // `run` reads the name with or without quotes.
        let template = format!("\"{}\"", trigger.as_ref());
        if exists {
            let targets = self
                .events
                .list_targets_by_rule()
                .rule(name)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(&e))?
                .targets
                .unwrap_or_default();
            match targets.iter().find(|t| t.id == RULE_TARGET_ID) {
                None => changes.push(format!("add target {}", self.target.queue_arn)),
                Some(t) => {
                    if t.arn != self.target.queue_arn {
                        changes.push(format!("target {} → {}", t.arn, self.target.queue_arn));
                    }
                    let input = t.input_transformer.as_ref().map(|i| i.input_template.as_str());
                    if input != Some(template.as_str()) {
                        changes.push(format!("input {} → {template}", input.unwrap_or("none")));
                    }
                }
            }
        }
        let action = match (exists, changes.is_empty()) {
            (false, _) => Action::Create,
            (true, true) => Action::Unchanged,
            (true, false) => Action::Update(changes),
        };
        if !dry_run && action != Action::Unchanged {
            self.events
                .put_rule()
                .name(name)
                .schedule_expression(expression)
                .state(RuleState::Enabled)
                .description(format!("Sends {trigger} to the orchestrator's worker-trigger queue"))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(&e))?;
            let transformer = InputTransformer::builder()
                .input_template(template)
                .build()
                .map_err(|e| AwsError::invalid(e.to_string()))?;
            let target = RuleTarget::builder()
                .id(RULE_TARGET_ID)
                .arn(&self.target.queue_arn)
                .input_transformer(transformer)
                .build()
                .map_err(|e| AwsError::invalid(e.to_string()))?;
            let out = self
                .events
                .put_targets()
                .rule(name)
                .targets(target)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(&e))?;
            if out.failed_entry_count > 0 {
                let why = out
                    .failed_entries
                    .unwrap_or_default()
                    .into_iter()
                    .map(|f| {
                        format!(
                            "{}: {}",
                            f.error_code.unwrap_or_default(),
                            f.error_message.unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(AwsError::invalid(format!("target not accepted: {why}")));
            }
        }
        Ok(ResourceReport::new("rule", name, action, dry_run))
    }

    async fn reconcile_schedule(
        &self,
        name: &str,
        trigger: WorkerTriggerType,
        expression: &str,
        dry_run: bool,
    ) -> Result<ResourceReport, AwsError> {
        let role_arn = self.target.role_arn.clone().ok_or_else(|| {
            AwsError::invalid("a schedule needs the ARN of the role the Scheduler assumes")
        })?;
        let input = trigger.as_ref().to_owned();
        let existing = found(
            self.scheduler.get_schedule().name(name).group_name(SCHEDULE_GROUP).send().await,
        )?;
        let action = match &existing {
            None => Action::Create,
            Some(s) => {
                let mut changes = Vec::new();
                if s.schedule_expression.as_deref() != Some(expression) {
                    changes.push(format!(
                        "schedule {} → {expression}",
                        s.schedule_expression.as_deref().unwrap_or("none")
                    ));
                }
                if s.state == Some(ScheduleState::Disabled) {
                    changes.push("enable".to_owned());
                }
                if s.flexible_time_window.as_ref().map(|w| &w.mode)
                    != Some(&FlexibleTimeWindowMode::Off)
                {
                    changes.push("flexible time window → off".to_owned());
                }
                match &s.target {
                    None => changes.push(format!("add target {}", self.target.queue_arn)),
                    Some(t) => {
                        if t.arn != self.target.queue_arn {
                            changes.push(format!("target {} → {}", t.arn, self.target.queue_arn));
                        }
                        if t.role_arn != role_arn {
                            changes.push(format!("role {} → {role_arn}", t.role_arn));
                        }
                        if t.input.as_deref() != Some(input.as_str()) {
                            changes.push(format!(
                                "input {} → {input}",
                                t.input.as_deref().unwrap_or("none")
                            ));
                        }
                    }
                }
                if changes.is_empty() {
                    Action::Unchanged
                } else {
                    Action::Update(changes)
                }
            }
        };
        if !dry_run && action != Action::Unchanged {
            let window = FlexibleTimeWindow::builder()
                .mode(FlexibleTimeWindowMode::Off)
                .build()
                .map_err(|e| AwsError::invalid(e.to_string()))?;
            let target = ScheduleTarget::builder()
                .arn(&self.target.queue_arn)
                .role_arn(role_arn)
                .input(input)
                .build()
                .map_err(|e| AwsError::invalid(e.to_string()))?;
            let description = format!("Sends {trigger} to the orchestrator's worker-trigger queue");
            // `update_schedule` and `create_schedule` take the same fields, on builders of
            // different types.
            macro_rules! put_schedule {
                ($builder:expr) => {
                    $builder
                        .name(name)
                        .group_name(SCHEDULE_GROUP)
                        .schedule_expression(expression)
                        .schedule_expression_timezone("UTC")
                        .flexible_time_window(window)
                        .target(target)
                        .state(ScheduleState::Enabled)
                        .description(description)
                        .send()
                        .await
                        .map(drop)
                        .map_err(|e| AwsError::from_sdk(&e))
                };
            }
            let result = if existing.is_some() {
                put_schedule!(self.scheduler.update_schedule())
            } else {
                put_schedule!(self.scheduler.create_schedule())
            };
            result?;
        }
        Ok(ResourceReport::new("schedule", name, action, dry_run))
    }
}

/// The resource an SDK call read, `None` when the service says it does not exist.
fn found<T, E>(result: Result<T, SdkError<E, HttpResponse>>) -> Result<Option<T>, AwsError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) => missing_or_err(AwsError::from_sdk(&e)).map(|_| None),
    }
}

/// `Ok(false)` for a missing resource, the error otherwise.
fn missing_or_err(e: AwsError) -> Result<bool, AwsError> {
    if e.is_code(MISSING_CODES) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Maps an error on the rule or schedule `name`.
fn fail(name: &str, e: AwsError) -> CronError {
    if e.retryable {
        CronError::Unavailable(format!("{name}: {e}").into())
    } else {
        CronError::Create { name: name.to_owned(), source: e.into() }
    }
}

#[async_trait]
impl CronClient for EventBridgeCron {
    async fn setup_triggers(
        &self,
        triggers: &[WorkerTriggerType],
        interval: Duration,
    ) -> Result<(), CronError> {
        self.reconcile(triggers, interval, false).await.map(drop)
    }

    async fn run(
        &self,
        _triggers: &[WorkerTriggerType],
        _interval: Duration,
        _shutdown: CancellationToken,
    ) -> Result<(), CronError> {
        // EventBridge fires in the cloud; nothing runs in this process.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::types::jobs::JobType;

    #[rstest]
    #[case(60, "rate(1 minute)")]
    #[case(120, "rate(2 minutes)")]
    #[case(3600, "rate(1 hour)")]
    #[case(5400, "rate(90 minutes)")]
    #[case(7200, "rate(2 hours)")]
    #[case(86400, "rate(1 day)")]
    #[case(172800, "rate(2 days)")]
    fn rates(#[case] secs: u64, #[case] want: &str) {
        assert_eq!(rate_expression(Duration::from_secs(secs)).expect("rate"), want);
    }

    #[rstest]
    #[case(0)]
    #[case(30)]
    #[case(90)]
    fn sub_minute_rates_are_refused(#[case] secs: u64) {
        assert!(rate_expression(Duration::from_secs(secs)).is_err());
    }

    #[test]
    fn names_follow_the_reference() {
        assert_eq!(
            trigger_resource_name(None, WorkerTriggerType::AggregatorBatching),
            "mo-wt-rule-aggregatorbatching"
        );
        assert_eq!(
            trigger_resource_name(Some("dev"), WorkerTriggerType::Stage(JobType::SnosRun)),
            "dev-mo-wt-rule-snos"
        );
    }
}
