//! The distributed tier for multi-process tests: PostgreSQL (database, locks) and SQS on moto
//! (queues), artifacts and alerts still in the test's directory.

use orchestrator::core::client::Clients;
use std::{path::Path, str::FromStr, sync::Arc};

use orchestrator::{
    cli::setup::SetupCmd,
    config::DatabaseBackend,
    core::client::{
        aws::{
            sqs::{QueueNaming, SqsQueue},
            AwsEnv,
        },
        database_backends,
    },
    setup,
    types::{queue::QueueType, Layer},
};
use orchestrator_test_support::{moto, postgres};
use sqlx::{postgres::PgConnectOptions, ConnectOptions, Connection};

/// moto's endpoint for tests.
pub fn aws_endpoint() -> String {
    moto::endpoint()
}

/// The PostgreSQL server URL for tests.
pub fn postgres_url() -> String {
    postgres::server_url()
}

/// Whether the tests run: moto and PostgreSQL answer. `false` (after printing why) when either
/// is skipped (`ORCH_SKIP_AWS_TESTS=1`, `ORCH_SKIP_POSTGRES_TESTS=1`).
///
/// # Panics
/// A service does not answer (the message says how to start it).
pub async fn services_or_skip() -> bool {
    moto::endpoint_or_skip().await.is_some() && postgres::server_or_skip().await.is_some()
}

/// A fresh database on the test server; returns its URL.
pub async fn fresh_database() -> String {
    let base = postgres_url();
    let options = PgConnectOptions::from_str(&base).expect("PostgreSQL URL");
    let mut conn = options.connect().await.expect("connect to PostgreSQL");
    let name = postgres::fresh_database_name("orch_mi");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .expect("create database");
    let _ = conn.close().await;
    postgres::database_url(&base, &name)
}

fn env_for(endpoint: &str) -> impl std::future::Future<Output = AwsEnv> + '_ {
    AwsEnv::explicit("test", "test", "us-east-1", Some(endpoint))
}

/// Creates the L2 queues under `prefix` on moto with `orchestrator setup`'s own code.
pub async fn create_queues(dir: &Path, prefix: &str) {
    let data_dir = dir.display().to_string();
    let params = <SetupCmd as clap::Parser>::try_parse_from([
        "setup",
        "--data-dir",
        &data_dir,
        "--aws",
        "--aws-prefix",
        prefix,
        "--aws-sqs",
        "--timeout",
        "30",
        "--poll-interval",
        "1",
    ])
    .expect("setup flags")
    .params()
    .expect("setup params");
    let env = env_for(&aws_endpoint()).await;
    setup::run_setup_with(&params, Some(&env)).await.expect("setup the SQS queues");
}

/// Clients on PostgreSQL + SQS (moto); storage and alerts in `dir`.
pub async fn clients(dir: &Path, pg_url: &str, endpoint: &str, prefix: &str) -> Clients {
    let mut clients = super::clients(dir).await;
    let db = database_backends::open(&DatabaseBackend::Postgres { url: pg_url.to_owned().into() })
        .await
        .expect("PostgreSQL backend")
        .expect("a database for --postgres");
    clients.database = db.database;
    clients.lock = db.lock;
    let env = env_for(endpoint).await;
    let naming = QueueNaming::new("mo_{}_queue", Some(prefix)).expect("queue naming");
    clients.queue = Arc::new(SqsQueue::new(&env, naming, QueueType::for_layer(Layer::L2)));
    clients
}
