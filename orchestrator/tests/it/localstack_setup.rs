//! `orchestrator setup` against LocalStack, the emulator whose EventBridge rules fire: the
//! resources are those `run` expects (the checks of `aws_setup`), a second run changes nothing,
//! `--dry-run` plans everything and creates nothing, and the rules deliver trigger messages
//! `run` understands into the worker-trigger queue.
//!
//! LocalStack: `scripts/localstack.sh start` (endpoint
//! `MADARA_ORCHESTRATOR_TEST_LOCALSTACK_ENDPOINT`, default `http://127.0.0.1:4566`). Each test
//! uses a fresh resource prefix. Without LocalStack the tests fail, unless
//! `ORCH_SKIP_LOCALSTACK_TESTS=1` ("skipped: no LocalStack").

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use orchestrator::{
    core::client::aws::{Action, AwsEnv},
    setup::{run_setup_with, setup_aws},
    types::{queue::WorkerTriggerType, Layer},
};

use super::aws_setup::{check_created, params, snapshot};

/// How long a new `rate(1 minute)` rule may take to deliver its first message: LocalStack fires
/// it within a minute of its creation; the rest is margin for a loaded machine.
const FIRST_FIRING: Duration = Duration::from_secs(150);

/// LocalStack's SDK configuration once its health endpoint answers, or `None` when its tests
/// are skipped.
async fn localstack_or_skip() -> Option<AwsEnv> {
    let endpoint = orchestrator_test_support::localstack::endpoint_or_skip().await?;
    Some(AwsEnv::explicit("test", "test", "us-east-1", Some(&endpoint)).await)
}

fn fresh_prefix() -> String {
    format!("ls{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Receives (and deletes) the messages of queue `name` until every trigger of `want` arrived,
/// a body is not a trigger, or `timeout` passed; returns every body received, in order.
async fn receive_triggers(
    env: &AwsEnv,
    name: &str,
    want: &[WorkerTriggerType],
    timeout: Duration,
) -> Vec<String> {
    let sqs = env.sqs();
    let url = sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("queue {name}: {e:?}"))
        .queue_url
        .expect("queue url");
    let deadline = Instant::now() + timeout;
    let mut bodies = Vec::new();
    let mut seen = BTreeSet::new();
    let mut unparsed = false;
    while Instant::now() < deadline && !unparsed && !want.iter().all(|t| seen.contains(t)) {
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(5)
            .send()
            .await
            .expect("receive");
        for m in out.messages.unwrap_or_default() {
            let body = m.body.unwrap_or_default();
            match WorkerTriggerType::from_message_body(&body) {
                Some(t) => {
                    seen.insert(t);
                }
                None => unparsed = true,
            }
            bodies.push(body);
            if let Some(handle) = m.receipt_handle {
                sqs.delete_message().queue_url(&url).receipt_handle(handle).send().await.ok();
            }
        }
    }
    bodies
}

/// L2 with rules: everything is created as `run` expects it, a second run changes nothing, and
/// within a minute or two every rule has sent its trigger, in a form `run` parses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l2_rules_on_localstack_are_created_left_alone_and_fire() {
    let Some(env) = localstack_or_skip().await else {
        return;
    };
    let prefix = fresh_prefix();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = params(&prefix, "l2", "rule", dir.path(), &[]);

    let first = setup_aws(&p, &env).await.expect("first setup");
    assert!(first.iter().all(|r| r.action == Action::Create), "a fresh prefix: {first:#?}");
    check_created(&env, &prefix, Layer::L2, "rule").await;

    let before = snapshot(&env, &prefix).await;
    let second = setup_aws(&p, &env).await.expect("second setup");
    let changed: Vec<String> =
        second.iter().filter(|r| r.action != Action::Unchanged).map(ToString::to_string).collect();
    assert!(changed.is_empty(), "the second run changed: {changed:#?}");
    assert_eq!(second.len(), first.len(), "the same resources are reported");
    assert_eq!(snapshot(&env, &prefix).await, before, "nothing changed on the second run");

    // The rules fire: each trigger of the layer arrives, and every body is one `run` handles
    // (a body it cannot parse would be dead-lettered, and the trigger lost).
    let triggers = WorkerTriggerType::for_layer(Layer::L2);
    let started = Instant::now();
    let queue = format!("{prefix}_mo_worker_trigger_queue");
    let bodies = receive_triggers(&env, &queue, triggers, FIRST_FIRING).await;
    let parsed: BTreeSet<WorkerTriggerType> =
        bodies.iter().filter_map(|b| WorkerTriggerType::from_message_body(b)).collect();
    let unparsed: Vec<&String> =
        bodies.iter().filter(|b| WorkerTriggerType::from_message_body(b).is_none()).collect();
    assert!(unparsed.is_empty(), "trigger messages `run` cannot parse: {unparsed:?}");
    let missing: Vec<&WorkerTriggerType> =
        triggers.iter().filter(|t| !parsed.contains(t)).collect();
    assert!(
        missing.is_empty(),
        "no message from the rules of {missing:?} within {FIRST_FIRING:?} (received {bodies:?})"
    );
    println!(
        "every rule fired {:.0} s after setup; bodies {bodies:?}",
        started.elapsed().as_secs_f64()
    );
}

/// `--dry-run` lists everything it would create and creates nothing (on LocalStack or on
/// disk); after a real run it plans no change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_on_localstack_plans_everything_and_creates_nothing() {
    let Some(env) = localstack_or_skip().await else {
        return;
    };
    let prefix = fresh_prefix();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = params(&prefix, "l2", "rule", dir.path(), &["--dry-run"]);
    let plan = setup_aws(&p, &env).await.expect("dry run");
    assert!(snapshot(&env, &prefix).await.is_empty(), "a dry run created something");
    assert!(plan.iter().all(|r| r.dry_run && r.action == Action::Create), "{plan:#?}");
    // bucket + lifecycle + 12 queues + trigger-queue policy + topic + role + policy + 7 rules
    assert_eq!(plan.len(), 2 + 12 + 1 + 1 + 2 + 7, "{plan:#?}");

    let lines = run_setup_with(&p, Some(&env)).await.expect("dry run");
    for what in ["bucket", "queue", "topic", "role", "rule"] {
        assert!(
            lines.iter().any(|l| l.starts_with("create") && l.contains(&format!(" {what} "))),
            "the plan lists the {what}: {lines:#?}"
        );
    }
    assert!(
        std::fs::read_dir(dir.path()).expect("data dir").next().is_none(),
        "the dry run wrote to the data dir"
    );
    assert!(snapshot(&env, &prefix).await.is_empty());

    setup_aws(&params(&prefix, "l2", "rule", dir.path(), &[]), &env).await.expect("setup");
    let before = snapshot(&env, &prefix).await;
    let plan = setup_aws(&p, &env).await.expect("dry run after setup");
    assert!(plan.iter().all(|r| r.action == Action::Unchanged), "{plan:#?}");
    assert_eq!(snapshot(&env, &prefix).await, before);
}

/// Schedules are created and left alone on LocalStack too (its Scheduler stores them; it
/// never runs them, which is why the LocalStack workflow uses rules).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l2_schedules_on_localstack_are_created_then_left_alone() {
    let Some(env) = localstack_or_skip().await else {
        return;
    };
    let prefix = fresh_prefix();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = params(&prefix, "l2", "schedule", dir.path(), &[]);
    let first = setup_aws(&p, &env).await.expect("first setup");
    assert!(first.iter().all(|r| r.action == Action::Create), "{first:#?}");
    check_created(&env, &prefix, Layer::L2, "schedule").await;
    let before = snapshot(&env, &prefix).await;
    let second = setup_aws(&p, &env).await.expect("second setup");
    assert!(second.iter().all(|r| r.action == Action::Unchanged), "{second:#?}");
    assert_eq!(snapshot(&env, &prefix).await, before);
}
