//! Trigger alerts: a failing trigger alerts once per failure streak, a pipeline halted by
//! failed jobs alerts once per halt episode (naming the jobs), and a paused trigger does not
//! run. Metrics count every run by outcome.

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

fn runs(config: &Config, outcome: &str) -> String {
    let text = config.metrics.render_prometheus();
    let key = format!(r#"worker_trigger_runs_total{{trigger="Snos",outcome="{outcome}"}} "#);
    text.lines()
        .find_map(|l| l.strip_prefix(&key).map(str::to_owned))
        .unwrap_or_else(|| "0".to_owned())
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
    assert!(config
        .metrics
        .render_prometheus()
        .contains(r#"alerts_sent_total{kind="pipeline_halted",delivered="true"} 1"#));

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
