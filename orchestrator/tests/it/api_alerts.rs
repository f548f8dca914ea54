//! Trigger alerts: a failing trigger alerts once per failure streak, a pipeline halted by
//! failed jobs alerts once per halt episode (naming the jobs), and a paused trigger does not
//! run. Metrics count every run by outcome. The batching triggers alert when the node fails
//! them; the watchdog alerts when a stage stalls.

use orchestrator::worker::Config;
use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use async_trait::async_trait;
use orchestrator::{
    core::client::{database::TriggerPause, log_alert::LogAlert},
    types::{
        jobs::{JobStatus, JobType},
        queue::WorkerTriggerType,
    },
    worker::{
        event_worker::run_trigger,
        service,
        trigger::{JobTrigger, TriggerError, Triggers},
    },
};

use orchestrator::{
    core::client::madara::memory::InMemoryMadara,
    worker::{
        batching::{
            aggregator::AggregatorBatchingTrigger, snos::SnosBatchingTrigger, BatchingSettings,
        },
        watch::{WatchParams, Watchdog},
    },
};
use orchestrator_settlement_client_interface::{MockSettlementClient, SettlementError};

use crate::api_support as s;

#[derive(Debug, Default)]
struct ScriptedTrigger {
    fail: AtomicBool,
    runs: AtomicUsize,
}

#[async_trait]
impl JobTrigger for ScriptedTrigger {
    fn trigger_type(&self) -> WorkerTriggerType {
        WorkerTriggerType::Stage(JobType::SnosRun)
    }

    async fn run(&self, _config: Arc<Config>) -> Result<(), TriggerError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            Err(TriggerError::Other("madara node unreachable at block 42".to_owned()))
        } else {
            Ok(())
        }
    }
}

async fn titles(dir: &Path) -> Vec<String> {
    LogAlert::read_records(&dir.join("alerts.jsonl"))
        .await
        .map(|r| r.iter().map(|a| a.title.clone()).collect())
        .unwrap_or_default()
}

/// `/metrics` of `config`, parsed.
fn scrape(config: &Config) -> orchestrator_test_support::prometheus::Exposition {
    orchestrator_test_support::prometheus::Exposition::parse(&config.metrics.render_prometheus())
        .unwrap()
}

/// `worker_trigger_runs_total` of the Snos trigger with `outcome`, as `/metrics` prints it.
fn runs(config: &Config, outcome: &str) -> String {
    scrape(config)
        .value("worker_trigger_runs_total", &[("trigger", "Snos"), ("outcome", outcome)])
        .to_string()
}

#[tokio::test]
async fn trigger_failures_halts_and_pauses() {
    let dir = tempfile::tempdir().unwrap();
    let trigger = Arc::new(ScriptedTrigger::default());
    let triggers = Triggers::new().with(trigger.clone());
    let config = s::config_with(dir.path(), s::settings(false), Duration::ZERO, triggers).await;
    let run = || run_trigger(&config, WorkerTriggerType::Stage(JobType::SnosRun));

    run().await;
    assert_eq!(runs(&config, "ok"), "1");
    assert!(titles(dir.path()).await.is_empty());

    // A failure streak alerts once; a new streak alerts again.
    trigger.fail.store(true, Ordering::SeqCst);
    run().await;
    run().await;
    let failed: Vec<String> = titles(dir.path())
        .await
        .into_iter()
        .filter(|t| t.contains("Trigger Snos failed"))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    trigger.fail.store(false, Ordering::SeqCst);
    run().await;
    trigger.fail.store(true, Ordering::SeqCst);
    run().await;
    let records = LogAlert::read_records(&dir.path().join("alerts.jsonl")).await.unwrap();
    let failed: Vec<_> =
        records.iter().filter(|r| r.title.contains("Trigger Snos failed")).collect();
    assert_eq!(failed.len(), 2);
    assert!(failed[0].body.contains("madara node unreachable at block 42"), "{}", failed[0].body);
    assert_eq!(runs(&config, "error"), "3");
    trigger.fail.store(false, Ordering::SeqCst);

    // A failed job halts the trigger: one alert per episode, naming the job.
    let job = s::snos_job(&config, 7, 70, 79, JobStatus::Failed).await;
    let before = trigger.runs.load(Ordering::SeqCst);
    run().await;
    run().await;
    assert_eq!(trigger.runs.load(Ordering::SeqCst), before, "a halted trigger does not run");
    let records = LogAlert::read_records(&dir.path().join("alerts.jsonl")).await.unwrap();
    let halted: Vec<_> =
        records.iter().filter(|r| r.title.starts_with("Pipeline halted")).collect();
    assert_eq!(halted.len(), 1, "{halted:?}");
    assert!(halted[0].body.contains(&job.id.to_string()), "{}", halted[0].body);
    assert!(halted[0].body.contains("internal_id 7"), "{}", halted[0].body);
    assert_eq!(config.trigger_control.halted(), vec![WorkerTriggerType::Stage(JobType::SnosRun)]);
    assert_eq!(runs(&config, "halted"), "2");
    assert_eq!(
        scrape(&config)
            .get("alerts_sent_total", &[("kind", "pipeline_halted"), ("delivered", "true")]),
        Some(1.0)
    );

    // Retrying the job lifts the halt.
    service::retry_job(&config, job.id, false).await.unwrap();
    run().await;
    assert!(config.trigger_control.halted().is_empty());
    assert_eq!(trigger.runs.load(Ordering::SeqCst), before + 1);

    // A paused trigger does not run.
    let pause = TriggerPause::new(WorkerTriggerType::Stage(JobType::SnosRun), "test", None);
    assert!(config.database().insert_trigger_pause(&pause).await.unwrap());
    run().await;
    assert_eq!(trigger.runs.load(Ordering::SeqCst), before + 1);
    assert_eq!(runs(&config, "paused"), "1");
    assert_eq!(
        config.database().delete_trigger_pause(pause.trigger).await.unwrap(),
        Some(pause.clone())
    );
    run().await;
    assert_eq!(trigger.runs.load(Ordering::SeqCst), before + 2);
}

/// The batching triggers over a node that stops answering: each alerts once that its batching
/// failed (an aggregator batching failure is what the reference's operators met unwarned), and
/// runs cleanly again once the node is back.
#[tokio::test]
async fn batching_failures_alert_once_per_streak() {
    let dir = tempfile::tempdir().unwrap();
    let node = Arc::new(InMemoryMadara::new());
    node.push_blocks(3, "0.13.2");
    let settings = BatchingSettings {
        params: crate::batching_devnet::params(),
        min_block: 0,
        max_block: None,
    };
    let triggers = Triggers::new()
        .with(Arc::new(SnosBatchingTrigger::new(node.clone(), None, settings.clone())))
        .with(Arc::new(AggregatorBatchingTrigger::new(node.clone(), None, settings)));
    let config = s::config_with(dir.path(), s::settings(false), Duration::ZERO, triggers).await;
    // SNOS batching on L2 batches the blocks of the aggregator batches: the first aggregator
    // batch comes from a node that answers, then the node goes down before SNOS batching reads
    // those blocks.
    let kinds = [WorkerTriggerType::AggregatorBatching, WorkerTriggerType::SnosBatching];
    run_trigger(&config, WorkerTriggerType::AggregatorBatching).await;
    assert!(titles(dir.path()).await.is_empty());

    node.set_down(true);
    for _ in 0..2 {
        for kind in kinds {
            run_trigger(&config, kind).await;
        }
    }
    let records = LogAlert::read_records(&dir.path().join("alerts.jsonl")).await.unwrap();
    for kind in kinds {
        let failed: Vec<_> = records
            .iter()
            .filter(|r| r.title == format!("Trigger {kind} failed (batching)"))
            .collect();
        assert_eq!(failed.len(), 1, "{kind}: {records:?}");
        assert!(failed[0].body.contains("stage: batching"), "{}", failed[0].body);
    }

    node.set_down(false);
    for kind in kinds {
        run_trigger(&config, kind).await;
        let ok = scrape(&config)
            .get("worker_trigger_runs_total", &[("trigger", kind.as_ref()), ("outcome", "ok")]);
        assert!(ok.is_some_and(|n| n >= 1.0), "{kind} ran cleanly: {ok:?}");
    }
    assert!(config.trigger_control.halted().is_empty());
}

/// A job that sits in one open status past `--stall-alert-seconds` raises one stall alert for
/// its stage and sets `stage_stalled`; when it moves on, the episode ends with a clearing alert.
#[tokio::test]
async fn a_stalled_stage_alerts_and_clears() {
    let dir = tempfile::tempdir().unwrap();
    let config = s::config(dir.path(), s::settings(false), Duration::ZERO).await;
    // The node and the settlement layer are not what this test watches: the lag is not read.
    let mut settlement = MockSettlementClient::new();
    settlement
        .expect_get_last_settled_block()
        .returning(|| Err(SettlementError::Rpc("not in this test".to_owned())));
    let watchdog = Watchdog::new(
        Arc::new(InMemoryMadara::new()),
        Arc::new(settlement),
        WatchParams {
            interval: Duration::from_secs(1),
            settlement_lag_alert: None,
            stall_alert: Some(Duration::from_secs(1)),
            min_balance_updates: 0,
        },
    );
    let job = s::snos_job(&config, 7, 70, 79, JobStatus::Created).await;
    assert!(watchdog.check(&config).await.stalled.is_empty(), "a fresh job is not stalled");

    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let stalled = watchdog.check(&config).await.stalled;
    assert_eq!(stalled.len(), 1, "{stalled:?}");
    assert_eq!((stalled[0].job_type, stalled[0].internal_id), (JobType::SnosRun, 7));
    assert!(stalled[0].seconds >= 2, "{stalled:?}");
    watchdog.check(&config).await;
    let stall_titles = |prefix: &'static str| {
        let dir = dir.path().to_owned();
        async move {
            titles(&dir).await.into_iter().filter(|t| t.starts_with(prefix)).collect::<Vec<_>>()
        }
    };
    let alerts = stall_titles("SnosRun stage stalled").await;
    assert_eq!(alerts.len(), 1, "once per episode: {alerts:?}");
    assert!(alerts[0].contains("job #7 Created"), "{alerts:?}");

    // The job moves on: the episode ends.
    config
        .database()
        .update_job(
            &job,
            orchestrator::types::jobs::JobItemUpdates::new().status(JobStatus::Completed),
        )
        .await
        .unwrap();
    assert!(watchdog.check(&config).await.stalled.is_empty());
    assert_eq!(stall_titles("SnosRun stage moving again").await.len(), 1);
}
