//! Operator pauses of triggers live in the database: two orchestrator instances (in-process,
//! each with its own router, clients and trigger) on one database — PostgreSQL, MongoDB, and
//! the embedded SQLite file shared by two instances over one data dir. A pause made through
//! instance A's admin API stops instance B's next run of that trigger, B's `/admin/triggers`,
//! dashboard data and metrics show who paused it and when, a restarted instance on the same
//! data is still paused, and a resume through B lets the restarted A run it again.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use async_trait::async_trait;
use axum::{
    body::Body,
    http::{Method, Request, StatusCode},
    Router,
};
use orchestrator::{
    config::{DatabaseBackend, EngineParams},
    core::client::{database_backends, Clients},
    server,
    types::{jobs::JobType, queue::WorkerTriggerType, Layer},
    worker::{
        event_worker::run_trigger,
        handler::JobHandlers,
        trigger::{JobTrigger, TriggerError, Triggers},
        Config,
    },
};
use tower::ServiceExt;

use crate::{
    api_support::{self as s, Answer, TOKEN},
    support::{self, distributed},
};

const SNOS: WorkerTriggerType = WorkerTriggerType::Stage(JobType::SnosRun);

/// A Snos trigger that only counts its runs.
#[derive(Debug, Default)]
struct CountingTrigger {
    runs: AtomicUsize,
}

#[async_trait]
impl JobTrigger for CountingTrigger {
    fn trigger_type(&self) -> WorkerTriggerType {
        SNOS
    }

    async fn run(&self, _config: Arc<Config>) -> Result<(), TriggerError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// One orchestrator instance: its context, its HTTP routes and its trigger.
struct Instance {
    config: Arc<Config>,
    router: Router,
    trigger: Arc<CountingTrigger>,
}

impl Instance {
    /// An L2 instance with the admin API on, over `clients`.
    fn new(clients: Clients) -> Self {
        let trigger = Arc::new(CountingTrigger::default());
        let engine = EngineParams {
            orphan_scan_interval: Duration::from_secs(3600),
            empty_poll_interval: Duration::from_millis(50),
            ..EngineParams::default()
        };
        let config = Arc::new(
            Config::new(
                Layer::L2,
                clients,
                JobHandlers::new(),
                Triggers::new().with(trigger.clone()),
                engine,
            )
            .with_server(s::settings(true)),
        );
        let router = server::router(config.clone());
        Self { config, router, trigger }
    }

    /// Runs the Snos trigger once (as a cron tick does) and returns how often it has run.
    async fn tick(&self) -> usize {
        run_trigger(&self.config, SNOS).await;
        self.trigger.runs.load(Ordering::SeqCst)
    }

    /// An admin request with the bearer token, these extra headers and this body.
    async fn admin(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {TOKEN}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned()))).unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), 16 << 20).await.unwrap();
        Answer { status, headers, text: String::from_utf8_lossy(&bytes).into_owned() }
    }

    async fn metrics(&self) -> orchestrator_test_support::prometheus::Exposition {
        orchestrator_test_support::prometheus::Exposition::parse(
            &s::get(&self.router, "/metrics").await.text,
        )
        .unwrap()
    }
}

/// Clients of the embedded tier in `dir`, with the database and locks of `backend` (none for
/// the embedded one: its SQLite file in `dir`).
async fn clients(dir: &Path, backend: &DatabaseBackend) -> Clients {
    let mut clients = support::clients(dir).await;
    if let Some(db) = database_backends::open(backend).await.expect("open the database") {
        clients.database = db.database;
        clients.lock = db.lock;
    }
    clients
}

/// The whole story on `backend`: `dir_a` and `dir_b` hold each instance's other clients
/// (the same dir for the embedded tier, whose database is the SQLite file there).
async fn pause_is_shared_and_survives_a_restart(
    backend: DatabaseBackend,
    dir_a: &Path,
    dir_b: &Path,
) {
    let a = Instance::new(clients(dir_a, &backend).await);
    let b = Instance::new(clients(dir_b, &backend).await);
    assert_eq!((a.tick().await, b.tick().await), (1, 1), "both run while nothing is paused");

    // Pause through A, naming who and why in the body.
    let before = chrono::Utc::now().timestamp_millis();
    let paused = a
        .admin(
            Method::POST,
            "/admin/triggers/Snos/pause",
            &[],
            Some(r#"{"actor": "alice", "reason": "prover maintenance"}"#),
        )
        .await;
    let after = chrono::Utc::now().timestamp_millis();
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.text);
    assert!(paused.message().starts_with("Snos paused by alice at "), "{}", paused.text);

    // B does not run it, and counts the skipped run as paused.
    assert_eq!(b.tick().await, 1, "B must not run a trigger paused through A");
    assert_eq!(a.tick().await, 1, "nor A");
    assert_eq!(
        b.metrics()
            .await
            .get("worker_trigger_runs_total", &[("trigger", "Snos"), ("outcome", "paused")]),
        Some(1.0),
        "B counts the skipped run"
    );

    // B's listing shows the pause, who and when.
    let listed = b.admin(Method::GET, "/admin/triggers", &[], None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let data = &listed.json()["data"];
    assert_eq!(data["paused"], serde_json::json!(["Snos"]), "{}", listed.text);
    let pause = &data["pauses"][0];
    assert_eq!(pause["trigger"], "Snos");
    assert_eq!(pause["paused_by"], "alice");
    assert_eq!(pause["reason"], "prover maintenance");
    let at_ms = pause["paused_at_ms"].as_i64().expect("paused_at_ms");
    assert!((before..=after).contains(&at_ms), "{before} <= {at_ms} <= {after}");
    let at = chrono::DateTime::parse_from_rfc3339(pause["paused_at"].as_str().expect("paused_at"))
        .expect("RFC 3339");
    assert_eq!(at.timestamp_millis(), at_ms);

    // So do B's dashboard data and gauge.
    let dashboard = s::get(&b.router, "/dashboard/data").await;
    let shown = &dashboard.json()["data"]["trigger_pauses"][0];
    assert_eq!(
        (&shown["paused_by"], &shown["paused_at_ms"]),
        (&pause["paused_by"], &pause["paused_at_ms"])
    );
    assert_eq!(
        b.metrics().await.get("worker_trigger_state", &[("trigger", "Snos"), ("state", "paused")]),
        Some(1.0),
        "B's gauge shows the pause"
    );

    // Pausing again through B keeps alice's pause.
    let again =
        b.admin(Method::POST, "/admin/triggers/Snos/pause", &[("x-operator", "bob")], None).await;
    assert!(again.message().starts_with("Snos was already paused by alice at "), "{}", again.text);
    assert_eq!(again.json()["data"]["pauses"][0]["paused_at_ms"], at_ms);

    // Restart A: a new instance on the same data.
    a.config.database().disconnect().await.expect("disconnect A");
    drop(a);
    let a = Instance::new(clients(dir_a, &backend).await);
    assert_eq!(a.tick().await, 0, "the restarted A must not run the paused trigger");
    let listed = a.admin(Method::GET, "/admin/triggers", &[], None).await;
    assert_eq!(listed.json()["data"]["pauses"][0]["paused_by"], "alice", "{}", listed.text);
    assert_eq!(listed.json()["data"]["pauses"][0]["paused_at_ms"], at_ms, "{}", listed.text);

    // Resume through B (the actor in the query): the restarted A runs it again, and so does B.
    let resumed = b.admin(Method::POST, "/admin/triggers/Snos/resume?actor=bob", &[], None).await;
    assert_eq!(resumed.status, StatusCode::OK, "{}", resumed.text);
    assert!(
        resumed.message().starts_with("Snos resumed by bob (it was paused by alice at "),
        "{}",
        resumed.text
    );
    assert_eq!(resumed.json()["data"]["paused"], serde_json::json!([]), "{}", resumed.text);
    assert_eq!(a.tick().await, 1, "the restarted A runs the resumed trigger");
    assert_eq!(b.tick().await, 2, "B runs it again");
    let again = a.admin(Method::POST, "/admin/triggers/Snos/resume", &[], None).await;
    assert_eq!(again.message(), "Snos was not paused", "{}", again.text);

    a.config.database().disconnect().await.expect("disconnect A");
    b.config.database().disconnect().await.expect("disconnect B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgres_share_trigger_pauses() {
    if orchestrator_test_support::postgres::server_or_skip().await.is_none() {
        return;
    }
    let url = distributed::fresh_database().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let backend = DatabaseBackend::Postgres { url: url.into() };
    pause_is_shared_and_survives_a_restart(backend, dir_a.path(), dir_b.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_mongodb_share_trigger_pauses() {
    let Some(url) = orchestrator_test_support::mongodb::url_or_skip().await else { return };
    let name = format!("orch_pause_{}", uuid::Uuid::new_v4().simple());
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let backend = DatabaseBackend::Mongo { url: url.clone().into(), name: name.clone() };
    pause_is_shared_and_survives_a_restart(backend, dir_a.path(), dir_b.path()).await;
    let client = mongodb::Client::with_uri_str(&url).await.expect("MongoDB client");
    client.database(&name).drop().await.expect("drop the test database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_embedded_data_dir_share_trigger_pauses() {
    let dir = tempfile::tempdir().unwrap();
    pause_is_shared_and_survives_a_restart(DatabaseBackend::Embedded, dir.path(), dir.path()).await;
}

/// The caller's name comes from the `X-Operator` header when the body and query give none,
/// else defaults to `admin`; bad bodies and names are refused with a message naming them,
/// and nothing is stored.
#[tokio::test]
async fn the_actor_comes_from_the_header_or_defaults_and_bad_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = Instance::new(support::clients(dir.path()).await);
    let db = a.config.database().clone();

    let r = a
        .admin(Method::POST, "/admin/triggers/SnosBatching/pause", &[("x-operator", "carol")], None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let stored = db.get_trigger_pause(WorkerTriggerType::SnosBatching).await.unwrap().unwrap();
    assert_eq!((stored.paused_by.as_str(), stored.reason), ("carol", None));

    let r = a.admin(Method::POST, "/admin/triggers/Snos/pause?reason=disk%20full", &[], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let stored = db.get_trigger_pause(SNOS).await.unwrap().unwrap();
    assert_eq!((stored.paused_by.as_str(), stored.reason.as_deref()), ("admin", Some("disk full")));
    assert!(r.message().ends_with("(disk full)"), "{}", r.text);
    // Both pauses, by trigger name.
    let names: Vec<String> = r.json()["data"]["pauses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["trigger"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["Snos", "SnosBatching"]);

    let bad = a.admin(Method::POST, "/admin/triggers/Proving/pause", &[], Some("not json")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    assert!(bad.message().contains("invalid body: expected a JSON object"), "{}", bad.text);
    let bad =
        a.admin(Method::POST, "/admin/triggers/Proving/pause", &[], Some(r#"{"who": "x"}"#)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    assert!(bad.message().contains("unknown field `who`"), "{}", bad.text);
    let long = "x".repeat(101);
    let bad = a
        .admin(Method::POST, &format!("/admin/triggers/Proving/pause?actor={long}"), &[], None)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    assert!(bad.message().contains("invalid actor"), "{}", bad.text);
    let bad = a
        .admin(Method::POST, "/admin/triggers/Proving/pause", &[], Some(r#"{"actor": " "}"#))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    assert_eq!(
        db.get_trigger_pause(WorkerTriggerType::Stage(JobType::ProofCreation)).await.unwrap(),
        None
    );

    // Without the token nothing is paused.
    let r = s::send(&a.router, Method::POST, "/admin/triggers/Proving/pause", &[], None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(db.get_trigger_pauses().await.unwrap().len(), 2);
}
