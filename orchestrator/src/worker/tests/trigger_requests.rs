//! A trigger asked for while it runs is not lost: it runs once more when the run ends, however
//! many requests came in meanwhile.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use async_trait::async_trait;
use tokio::sync::Semaphore;

use crate::{
    config::EngineParams,
    core::client::embedded,
    types::{queue::WorkerTriggerType, Layer},
    worker::{
        event_worker::run_trigger,
        handler::JobHandlers,
        trigger::{JobTrigger, TriggerError, Triggers},
        Config,
    },
};

/// A SnosBatching stand-in: each run waits for a permit, then counts itself.
#[derive(Debug)]
struct Gated {
    permits: Arc<Semaphore>,
    started: AtomicUsize,
    finished: AtomicUsize,
}

#[async_trait]
impl JobTrigger for Gated {
    fn trigger_type(&self) -> WorkerTriggerType {
        WorkerTriggerType::SnosBatching
    }

    async fn run(&self, _config: Arc<Config>) -> Result<(), TriggerError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.permits.acquire().await.expect("open semaphore").forget();
        self.finished.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn wait_for(what: &str, check: impl Fn() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn requests_during_a_run_make_exactly_one_more_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clients = embedded::open(dir.path(), &embedded::EmbeddedOptions::default())
        .await
        .expect("embedded tier");
    let gated = Arc::new(Gated {
        permits: Arc::new(Semaphore::new(0)),
        started: AtomicUsize::new(0),
        finished: AtomicUsize::new(0),
    });
    let triggers = Triggers::new().with(gated.clone());
    let config = Arc::new(Config::new(
        Layer::L2,
        clients,
        JobHandlers::new(),
        triggers,
        EngineParams::default(),
    ));
    let kind = WorkerTriggerType::SnosBatching;

    let first = tokio::spawn({
        let config = config.clone();
        async move { run_trigger(&config, kind).await }
    });
    wait_for("the first run to start", || gated.started.load(Ordering::SeqCst) == 1).await;
    // Three requests while it runs: each returns at once and none runs it in parallel.
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(5), run_trigger(&config, kind))
            .await
            .expect("a request during a run returns at once");
    }
    assert_eq!(gated.started.load(Ordering::SeqCst), 1);
    // The first run ends; the requests made during it become one more run.
    gated.permits.add_permits(1);
    wait_for("the second run to start", || gated.started.load(Ordering::SeqCst) == 2).await;
    gated.permits.add_permits(1);
    first.await.expect("the first request's task");
    assert_eq!(gated.finished.load(Ordering::SeqCst), 2);
    // Nothing is pending any more: one more request is one more run, no more.
    gated.permits.add_permits(1);
    run_trigger(&config, kind).await;
    assert_eq!(gated.started.load(Ordering::SeqCst), 3);
    assert_eq!(gated.finished.load(Ordering::SeqCst), 3);
}
