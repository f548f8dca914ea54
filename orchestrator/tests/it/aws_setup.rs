//! `orchestrator setup` against moto: what it creates for L2 and L3 (rules and schedules),
//! that a second run changes nothing, that `--dry-run` creates nothing, and that bad input
//! fails naming the resource.
//!
//! moto: `scripts/moto.sh start` (endpoint `MADARA_ORCHESTRATOR_TEST_AWS_ENDPOINT`, default
//! `http://127.0.0.1:5000`). Each test uses a fresh resource prefix, so tests run in
//! parallel on one moto without resets. Without moto the tests fail, unless
//! `ORCH_SKIP_AWS_TESTS=1` ("skipped: no moto").

use std::collections::BTreeMap;

use aws_sdk_sqs::types::QueueAttributeName;
use clap::Parser;
use orchestrator::{
    cli::setup::SetupCmd,
    config::SetupParams,
    core::client::aws::{Action, AwsEnv},
    setup::{run_setup_with, setup_aws, SetupError},
    types::{
        jobs::JobType,
        queue::{QueueParams, QueueType, WorkerTriggerType},
        Layer,
    },
};
use orchestrator_test_support::moto;

/// moto's SDK configuration, or `None` when AWS tests are skipped (`ORCH_SKIP_AWS_TESTS=1`).
async fn moto_or_skip() -> Option<AwsEnv> {
    let endpoint = moto::endpoint_or_skip().await?;
    Some(AwsEnv::explicit("test", "test", "us-east-1", Some(&endpoint)).await)
}

/// A policy document as IAM returns it (URL-encoded), decoded.
fn decode(document: &str) -> String {
    url::form_urlencoded::parse(format!("d={document}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `setup` parameters for every AWS service, with `extra` flags.
pub(crate) fn params(
    prefix: &str,
    layer: &str,
    kind: &str,
    data_dir: &std::path::Path,
    extra: &[&str],
) -> SetupParams {
    let data_dir = data_dir.display().to_string();
    let mut args = vec![
        "setup",
        "--layer",
        layer,
        "--data-dir",
        &data_dir,
        "--aws",
        "--aws-prefix",
        prefix,
        "--aws-s3",
        "--aws-sqs",
        "--aws-sns",
        "--aws-event-bridge",
        "--event-bridge-type",
        kind,
        "--timeout",
        "20",
        "--poll-interval",
        "1",
    ];
    args.extend_from_slice(extra);
    SetupCmd::try_parse_from(args).expect("setup flags").params().expect("setup params")
}

/// Everything under `prefix` on moto (or LocalStack), with the settings that matter, for
/// before/after comparisons (volatile counters left out; creation dates and ids kept, so a
/// recreated resource shows).
pub(crate) async fn snapshot(env: &AwsEnv, prefix: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let sqs = env.sqs();
    let urls = sqs
        .list_queues()
        .queue_name_prefix(prefix)
        .send()
        .await
        .expect("list queues")
        .queue_urls
        .unwrap_or_default();
    for url in urls {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .unwrap_or_default();
        let kept: BTreeMap<String, String> = attrs
            .into_iter()
            .filter(|(k, _)| {
                !k.as_str().starts_with("Approximate")
                    && *k != QueueAttributeName::LastModifiedTimestamp
            })
            .map(|(k, v)| (k.as_str().to_owned(), v))
            .collect();
        out.insert(
            format!("queue {}", url.rsplit('/').next().unwrap_or_default()),
            format!("{kept:?}"),
        );
    }
    let s3 = env.s3();
    for bucket in s3.list_buckets().send().await.expect("list buckets").buckets.unwrap_or_default()
    {
        let name = bucket.name.unwrap_or_default();
        if name.starts_with(prefix) {
            let rules = s3
                .get_bucket_lifecycle_configuration()
                .bucket(&name)
                .send()
                .await
                .ok()
                .and_then(|o| o.rules);
            out.insert(format!("bucket {name}"), format!("{:?} {rules:?}", bucket.creation_date));
        }
    }
    let sns = env.sns();
    for topic in sns.list_topics().send().await.expect("list topics").topics.unwrap_or_default() {
        let arn = topic.topic_arn.unwrap_or_default();
        if arn.rsplit(':').next().is_some_and(|n| n.starts_with(prefix)) {
            out.insert(format!("topic {arn}"), String::new());
        }
    }
    let iam = env.iam();
    for role in iam.list_roles().send().await.expect("list roles").roles {
        if role.role_name.starts_with(prefix) {
            let policies = iam
                .list_role_policies()
                .role_name(&role.role_name)
                .send()
                .await
                .expect("role policies")
                .policy_names;
            let mut documents = Vec::new();
            for p in &policies {
                let doc = iam
                    .get_role_policy()
                    .role_name(&role.role_name)
                    .policy_name(p)
                    .send()
                    .await
                    .expect("policy");
                documents.push(doc.policy_document);
            }
            out.insert(
                format!("role {}", role.role_name),
                format!(
                    "{} {} {:?} {policies:?} {documents:?}",
                    role.role_id, role.create_date, role.assume_role_policy_document
                ),
            );
        }
    }
    let events = env.eventbridge();
    for rule in events
        .list_rules()
        .name_prefix(prefix)
        .send()
        .await
        .expect("list rules")
        .rules
        .unwrap_or_default()
    {
        let name = rule.name.clone().unwrap_or_default();
        let targets = events
            .list_targets_by_rule()
            .rule(&name)
            .send()
            .await
            .expect("targets")
            .targets
            .unwrap_or_default();
        out.insert(
            format!("rule {name}"),
            format!("{:?} {:?} {targets:?}", rule.schedule_expression, rule.state),
        );
    }
    let scheduler = env.scheduler();
    let schedules = scheduler
        .list_schedules()
        .name_prefix(prefix)
        .send()
        .await
        .expect("list schedules")
        .schedules;
    for s in schedules {
        let name = s.name.unwrap_or_default();
        let full = scheduler.get_schedule().name(&name).send().await.expect("schedule");
        out.insert(
            format!("schedule {name}"),
            format!(
                "{:?} {:?} {:?} {:?}",
                full.schedule_expression,
                full.target,
                full.flexible_time_window,
                full.creation_date
            ),
        );
    }
    out
}

async fn queue_attributes(
    env: &AwsEnv,
    name: &str,
) -> std::collections::HashMap<QueueAttributeName, String> {
    let sqs = env.sqs();
    let url = sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("queue {name}: {e:?}"))
        .queue_url
        .expect("url");
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("attributes")
        .attributes
        .unwrap_or_default()
}

/// Checks what setup created for `layer` under `prefix`.
pub(crate) async fn check_created(env: &AwsEnv, prefix: &str, layer: Layer, kind: &str) {
    let snap = snapshot(env, prefix).await;
    let queue = |q: QueueType| format!("{prefix}_mo_{q}_queue");

    // Queues: exactly the layer's, with visibility, retention and redrive.
    let queues: Vec<&String> = snap.keys().filter(|k| k.starts_with("queue ")).collect();
    assert_eq!(queues.len(), QueueType::for_layer(layer).len(), "{queues:?}");
    let dlq_arn = queue_attributes(env, &queue(QueueType::JobHandleFailure)).await
        [&QueueAttributeName::QueueArn]
        .clone();
    for q in QueueType::for_layer(layer) {
        let attrs = queue_attributes(env, &queue(q)).await;
        let config = q.config(&QueueParams::default());
        assert_eq!(
            attrs[&QueueAttributeName::VisibilityTimeout],
            config.visibility_timeout.as_secs().to_string(),
            "{q}"
        );
        let retention = if q == QueueType::WorkerTrigger { "60" } else { "1209600" };
        assert_eq!(attrs[&QueueAttributeName::MessageRetentionPeriod], retention, "{q}");
        match attrs.get(&QueueAttributeName::RedrivePolicy) {
            Some(policy) => {
                assert!(
                    config.dead_letter_queue.is_some(),
                    "{q} has no DLQ in the table but a redrive policy"
                );
                let v: serde_json::Value = serde_json::from_str(policy).expect("redrive JSON");
                assert_eq!(v["deadLetterTargetArn"], dlq_arn.as_str(), "{q}");
                assert_eq!(v["maxReceiveCount"].to_string().trim_matches('"'), "5", "{q}");
            }
            None => assert!(config.dead_letter_queue.is_none(), "{q} lacks its redrive policy"),
        }
    }
    for q in [
        QueueType::JobProcessing(JobType::Aggregator),
        QueueType::JobProcessing(JobType::ProofRegistration),
    ] {
        let want = q.layers().contains(&layer);
        assert_eq!(snap.contains_key(&format!("queue {}", queue(q))), want, "{q} on {layer}");
    }

    // Bucket and its lifecycle rule.
    let s3 = env.s3();
    let bucket = format!("{prefix}-mo-bucket");
    s3.head_bucket().bucket(&bucket).send().await.expect("bucket exists");
    let rules = s3
        .get_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .send()
        .await
        .expect("lifecycle")
        .rules
        .unwrap_or_default();
    let rule = rules
        .iter()
        .find(|r| r.id.as_deref() == Some("expire-settled-artifacts"))
        .expect("lifecycle rule");
    let tag = rule.filter.as_ref().and_then(|f| f.tag.as_ref()).expect("tag filter");
    assert_eq!((tag.key.as_str(), tag.value.as_str()), ("expire-after-settlement", "true"));
    assert_eq!(rule.expiration.as_ref().and_then(|e| e.days), Some(14));

    // Topic and the one role.
    assert!(
        snap.keys().any(|k| k.starts_with("topic ") && k.ends_with(&format!(":{prefix}_alerts"))),
        "{snap:#?}"
    );
    let roles: Vec<&String> = snap.keys().filter(|k| k.starts_with("role ")).collect();
    assert_eq!(roles, [&format!("role {prefix}-mo-wt-role")]);
    let trigger_arn = queue_attributes(env, &queue(QueueType::WorkerTrigger)).await
        [&QueueAttributeName::QueueArn]
        .clone();
    let policy = env
        .iam()
        .get_role_policy()
        .role_name(format!("{prefix}-mo-wt-role"))
        .policy_name(format!("{prefix}-mo-wt-policy"))
        .send()
        .await
        .expect("role policy")
        .policy_document;
    let policy = decode(&policy);
    assert!(policy.contains("sqs:SendMessage") && policy.contains(&trigger_arn), "{policy}");

    // One rule or schedule per trigger of the layer, sending its name to the trigger queue.
    let triggers = WorkerTriggerType::for_layer(layer);
    match kind {
        "rule" => {
            let events = env.eventbridge();
            for t in triggers {
                let name = format!("{prefix}-mo-wt-rule-{}", t.as_ref().to_lowercase());
                let rule = events
                    .describe_rule()
                    .name(&name)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("rule {name}: {e:?}"));
                assert_eq!(rule.schedule_expression.as_deref(), Some("rate(1 minute)"));
                let targets = events
                    .list_targets_by_rule()
                    .rule(&name)
                    .send()
                    .await
                    .expect("targets")
                    .targets
                    .unwrap_or_default();
                assert_eq!(targets.len(), 1, "{name}");
                assert_eq!(targets[0].arn, trigger_arn);
                assert_eq!(
                    targets[0].input_transformer.as_ref().map(|i| i.input_template.as_str()),
                    Some(format!("\"{}\"", t.as_ref()).as_str())
                );
            }
            assert_eq!(snap.keys().filter(|k| k.starts_with("rule ")).count(), triggers.len());
            assert!(!snap.keys().any(|k| k.starts_with("schedule ")));
            let attrs = queue_attributes(env, &queue(QueueType::WorkerTrigger)).await;
            let policy =
                attrs.get(&QueueAttributeName::Policy).expect("trigger queue policy for rules");
            assert!(policy.contains("events.amazonaws.com"), "{policy}");
        }
        _ => {
            let scheduler = env.scheduler();
            let role_arn = env
                .iam()
                .get_role()
                .role_name(format!("{prefix}-mo-wt-role"))
                .send()
                .await
                .expect("role")
                .role
                .expect("role")
                .arn;
            for t in triggers {
                let name = format!("{prefix}-mo-wt-rule-{}", t.as_ref().to_lowercase());
                let s = scheduler
                    .get_schedule()
                    .name(&name)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("schedule {name}: {e:?}"));
                assert_eq!(s.schedule_expression.as_deref(), Some("rate(1 minute)"));
                let target = s.target.expect("target");
                assert_eq!(target.arn, trigger_arn);
                assert_eq!(target.role_arn, role_arn);
                assert_eq!(target.input.as_deref(), Some(t.as_ref()));
                assert_eq!(
                    s.flexible_time_window.map(|w| w.mode),
                    Some(aws_sdk_scheduler::types::FlexibleTimeWindowMode::Off)
                );
            }
            assert_eq!(snap.keys().filter(|k| k.starts_with("schedule ")).count(), triggers.len());
            assert!(!snap.keys().any(|k| k.starts_with("rule ")));
        }
    }
}

/// First run creates everything; the second changes nothing (reports and listing).
async fn setup_twice(layer: Layer, kind: &str) {
    let Some(env) = moto_or_skip().await else {
        return;
    };
    let prefix = moto::fresh_prefix();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = params(&prefix, &layer.to_string().to_lowercase(), kind, dir.path(), &[]);

    let first = setup_aws(&p, &env).await.expect("first setup");
    assert!(first.iter().all(|r| r.action == Action::Create), "a fresh prefix: {first:#?}");
    check_created(&env, &prefix, layer, kind).await;

    let before = snapshot(&env, &prefix).await;
    let second = setup_aws(&p, &env).await.expect("second setup");
    let changed: Vec<String> =
        second.iter().filter(|r| r.action != Action::Unchanged).map(ToString::to_string).collect();
    assert!(changed.is_empty(), "the second run changed: {changed:#?}");
    assert_eq!(second.len(), first.len(), "the same resources are reported");
    assert_eq!(
        snapshot(&env, &prefix).await,
        before,
        "nothing changed on the second run (no new role either)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l2_with_rules_is_created_then_left_alone() {
    setup_twice(Layer::L2, "rule").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l3_with_rules_is_created_then_left_alone() {
    setup_twice(Layer::L3, "rule").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l2_with_schedules_is_created_then_left_alone() {
    setup_twice(Layer::L2, "schedule").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l3_with_schedules_is_created_then_left_alone() {
    setup_twice(Layer::L3, "schedule").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_creates_nothing_and_plans_everything() {
    let Some(env) = moto_or_skip().await else {
        return;
    };
    let prefix = moto::fresh_prefix();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = params(&prefix, "l2", "schedule", dir.path(), &["--dry-run"]);
    let plan = setup_aws(&p, &env).await.expect("dry run");
    assert!(snapshot(&env, &prefix).await.is_empty(), "a dry run created something");
    assert!(plan.iter().all(|r| r.dry_run && r.action == Action::Create), "{plan:#?}");
    // bucket + lifecycle + 12 queues + topic + role + policy + 7 schedules
    assert_eq!(plan.len(), 2 + 12 + 1 + 2 + 7, "{plan:#?}");

    // Through the whole command: nothing on moto and nothing on disk either.
    let lines = run_setup_with(&p, Some(&env)).await.expect("dry run");
    assert!(lines.iter().any(|l| l.starts_with("create") && l.contains("queue")), "{lines:#?}");
    assert!(
        std::fs::read_dir(dir.path()).expect("data dir").next().is_none(),
        "the dry run wrote to the data dir"
    );
    assert!(snapshot(&env, &prefix).await.is_empty());

    // After a real run, a dry run plans no change.
    setup_aws(&params(&prefix, "l2", "schedule", dir.path(), &[]), &env).await.expect("setup");
    let before = snapshot(&env, &prefix).await;
    let plan = setup_aws(&p, &env).await.expect("dry run after setup");
    assert!(plan.iter().all(|r| r.action == Action::Unchanged), "{plan:#?}");
    assert_eq!(snapshot(&env, &prefix).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drifted_attributes_are_reconciled() {
    let Some(env) = moto_or_skip().await else {
        return;
    };
    let prefix = moto::fresh_prefix();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = params(&prefix, "l2", "rule", dir.path(), &[]);
    setup_aws(&p, &env).await.expect("setup");
    let name = format!("{prefix}_mo_snos_job_processing_queue");
    let sqs = env.sqs();
    let url =
        sqs.get_queue_url().queue_name(&name).send().await.expect("url").queue_url.expect("url");
    sqs.set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .send()
        .await
        .expect("drift");

    let again = setup_aws(&p, &env).await.expect("reconcile");
    let updated: Vec<_> = again.iter().filter(|r| matches!(r.action, Action::Update(_))).collect();
    assert_eq!(updated.len(), 1, "{again:#?}");
    assert_eq!(updated[0].name, name);
    assert!(updated[0].to_string().contains("VisibilityTimeout 30 → 360"), "{}", updated[0]);
    assert_eq!(queue_attributes(&env, &name).await[&QueueAttributeName::VisibilityTimeout], "360");
}

#[tokio::test]
async fn an_unreachable_endpoint_fails_naming_the_resource() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let env =
        AwsEnv::explicit("test", "test", "us-east-1", Some(&format!("http://127.0.0.1:{port}")))
            .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = params("tunreachable", "l2", "rule", dir.path(), &[]);
    let err = setup_aws(&p, &env).await.expect_err("closed port");
    let msg = format!("{err}");
    assert!(matches!(err, SetupError::Aws { .. }), "{err:?}");
    assert!(msg.contains("bucket tunreachable-mo-bucket"), "names the resource: {msg}");
    let source = std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default();
    assert!(!source.is_empty(), "gives the cause: {msg}");
}

#[tokio::test]
async fn a_queue_name_that_is_not_allowed_fails_before_anything_is_created() {
    let Some(env) = moto_or_skip().await else {
        return;
    };
    let prefix = moto::fresh_prefix();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = params(&prefix, "l2", "rule", dir.path(), &["--queue-identifier", "mo.{}.queue"]);
    let err = setup_aws(&p, &env).await.expect_err("dots are not allowed in SQS names");
    let msg = format!(
        "{err}: {}",
        std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default()
    );
    assert!(msg.contains(&format!("queue {prefix}_mo.")) && msg.contains("'.'"), "{msg}");
    assert!(snapshot(&env, &prefix).await.is_empty(), "nothing half-created");
}

#[tokio::test]
async fn the_cli_exits_non_zero_naming_the_queue_and_dry_runs_cleanly() {
    let Some(_env) = moto_or_skip().await else {
        return;
    };
    let prefix = moto::fresh_prefix();
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "setup",
            "--aws",
            "--aws-prefix",
            &prefix,
            "--aws-s3",
            "--aws-sqs",
            "--aws-sns",
            "--aws-event-bridge",
            "--event-bridge-type",
            "rule",
        ];
        args.extend_from_slice(extra);
        std::process::Command::new(env!("CARGO_BIN_EXE_orchestrator"))
            .args(&args)
            .arg("--data-dir")
            .arg(dir.path())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", moto::endpoint())
            .current_dir(dir.path())
            .output()
            .expect("run the orchestrator binary")
    };
    let bad = run(&["--queue-identifier", "mo {}"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success(), "exit code of a bad queue name");
    assert!(stderr.contains(&format!("queue {prefix}_mo ")), "{stderr}");

    let dry = run(&["--dry-run"]);
    let stdout = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    assert!(
        stdout.contains(&format!("create     queue {prefix}_mo_worker_trigger_queue")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("create     rule {prefix}-mo-wt-rule-snos")), "{stdout}");
}
