//! `/dashboard` loaded in headless Debian Chromium against a running orchestrator: the page's
//! JavaScript fetches `/dashboard/data` and renders one row per batch, one column per stage.
//!
//! Needs `/usr/bin/chromium` (`scripts/chromium.sh` installs it); fails without it unless
//! `ORCH_SKIP_BROWSER_TESTS=1`. `ORCH_DASHBOARD_SCREENSHOT=<path>` keeps a copy of the
//! screenshot.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use orchestrator::{
    app::Orchestrator,
    types::{
        batch::{AggregatorBatchStatus, SnosBatchStatus},
        jobs::{
            AggregatorMetadata, JobItem, JobSpecificMetadata, JobStatus, JobType, ProvingMetadata,
        },
    },
};

use crate::api_support as s;

fn chromium() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .flat_map(|d| [d.join("chromium"), d.join("chromium-browser")]);
    ["/usr/bin/chromium".into(), "/usr/bin/chromium-browser".into()]
        .into_iter()
        .chain(on_path)
        .find(|p: &PathBuf| p.is_file())
}

/// Runs headless Chromium (the flags that work on a closed network, as root) with `extra`.
async fn run_chromium(chrome: &Path, profile: &Path, extra: &[String]) -> String {
    let mut cmd = tokio::process::Command::new(chrome);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("chromium finished within 120 s")
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_renders_batch_rows_in_chromium() {
    let Some(chrome) = chromium() else {
        if std::env::var("ORCH_SKIP_BROWSER_TESTS").as_deref() == Ok("1") {
            eprintln!("dashboard browser test skipped: ORCH_SKIP_BROWSER_TESTS=1");
            return;
        }
        panic!("Chromium not found (/usr/bin/chromium): run scripts/chromium.sh, or set ORCH_SKIP_BROWSER_TESTS=1");
    };
    let dir = tempfile::tempdir().unwrap();
    let config = s::config(dir.path(), s::settings(false), Duration::ZERO).await;
    let db = config.database();
    db.create_aggregator_batch(s::aggregator_batch(
        1,
        0,
        9,
        AggregatorBatchStatus::PendingAggregatorVerification,
    ))
    .await
    .unwrap();
    db.create_aggregator_batch(s::aggregator_batch(2, 10, 14, AggregatorBatchStatus::Open))
        .await
        .unwrap();
    db.create_snos_batch(s::snos_batch(1, 1, 0, 4, SnosBatchStatus::Closed)).await.unwrap();
    db.create_snos_batch(s::snos_batch(2, 1, 5, 9, SnosBatchStatus::Closed)).await.unwrap();
    db.create_snos_batch(s::snos_batch(3, 2, 10, 14, SnosBatchStatus::Open)).await.unwrap();
    s::snos_job(&config, 1, 0, 4, JobStatus::Completed).await;
    let failed = s::snos_job(&config, 2, 5, 9, JobStatus::Failed).await;
    let proving =
        JobSpecificMetadata::Proving(ProvingMetadata { block_number: 0, ..Default::default() });
    let proof = db.create_job(JobItem::new(JobType::ProofCreation, 1, proving)).await.unwrap();
    s::set_status(&config, proof, JobStatus::Completed).await;
    let aggregation =
        JobSpecificMetadata::Aggregator(AggregatorMetadata { batch_num: 1, ..Default::default() });
    let aggregator =
        db.create_job(JobItem::new(JobType::Aggregator, 1, aggregation)).await.unwrap();
    let aggregator = s::set_status(&config, aggregator, JobStatus::PendingVerification).await;
    let pause = orchestrator::core::client::database::TriggerPause::new(
        orchestrator::types::queue::WorkerTriggerType::Stage(JobType::SnosRun),
        "alice",
        Some("prover down".to_owned()),
    );
    assert!(db.insert_trigger_pause(&pause).await.unwrap());

    // No workers touch these jobs: there are no messages for them.
    let running = Orchestrator::start_with(
        config.clone(),
        "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        None,
    )
    .await
    .unwrap();
    let url = format!("http://{}/dashboard", running.addr);
    let profile = dir.path().join("chromium-profile");

    let dom = run_chromium(
        &chrome,
        &profile,
        &["--virtual-time-budget=5000".into(), "--dump-dom".into(), url.clone()],
    )
    .await;
    assert!(dom.contains(r#"data-loaded="true""#), "the page's script loaded the data:\n{dom}");
    assert_eq!(
        dom.matches(r#"class="batch-row""#).count(),
        5,
        "3 SNOS + 2 aggregator rows:\n{dom}"
    );
    for (kind, index) in
        [("snos", 1), ("snos", 2), ("snos", 3), ("aggregator", 1), ("aggregator", 2)]
    {
        let row = format!(r#"data-kind="{kind}" data-index="{index}""#);
        assert!(dom.contains(&row), "row {row} missing:\n{dom}");
    }
    assert!(
        dom.contains(&format!(r#"class="status s-Failed" href="jobs/{}""#, failed.id)),
        "{dom}"
    );
    assert!(
        dom.contains(&format!(
            r#"class="status s-PendingVerification" href="jobs/{}""#,
            aggregator.id
        )),
        "{dom}"
    );
    // The banner names who paused the trigger and why (the time is in the browser's locale).
    assert!(dom.contains("Trigger Snos paused by alice at "), "pause banner missing:\n{dom}");
    assert!(dom.contains(" (prover down)</div>"), "pause reason missing:\n{dom}");
    for stage in ["SnosRun", "ProofCreation", "Aggregator", "StateTransition"] {
        assert!(dom.contains(&format!("<th>{stage}</th>")), "stage column {stage} missing");
    }
    // The job link answers the job JSON.
    let job: serde_json::Value =
        reqwest::get(format!("http://{}/jobs/{}", running.addr, failed.id))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(job["data"]["status"], "Failed");

    let shot = dir.path().join("dashboard.png");
    run_chromium(
        &chrome,
        &profile,
        &[
            "--virtual-time-budget=5000".into(),
            "--window-size=1280,800".into(),
            format!("--screenshot={}", shot.display()),
            url,
        ],
    )
    .await;
    let size = std::fs::metadata(&shot).expect("screenshot written").len();
    eprintln!("dashboard screenshot: {} ({size} bytes)", shot.display());
    assert!(size > 5_000, "a rendered page, not a blank one: {size} bytes");
    if let Ok(keep) = std::env::var("ORCH_DASHBOARD_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    running.stop().await.unwrap();
}
