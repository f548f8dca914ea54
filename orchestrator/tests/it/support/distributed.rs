//! The distributed tier for multi-process tests: PostgreSQL (database, locks) and SQS on moto
//! (queues), artifacts and alerts still in the test's directory.

use orchestrator::core::client::Clients;
use std::{path::Path, str::FromStr, sync::Arc, time::Duration};

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
use sqlx::{postgres::PgConnectOptions, ConnectOptions, Connection};

/// moto's endpoint for tests.
pub fn aws_endpoint() -> String {
    std::env::var("MADARA_ORCHESTRATOR_TEST_AWS_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:5000".to_owned())
}

/// The PostgreSQL server URL for tests.
pub fn postgres_url() -> String {
    std::env::var("MADARA_ORCHESTRATOR_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        "postgres://orchestrator:orchestrator@127.0.0.1:5432/orchestrator".to_owned()
    })
}

/// Whether moto and PostgreSQL answer; panics with how to start them unless the skip
/// variables are set (then prints why and returns false).
pub async fn services_or_skip() -> bool {
    let moto = aws_endpoint().trim_start_matches("http://").trim_end_matches('/').to_owned();
    let moto_up =
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(&moto))
            .await
            .is_ok_and(|r| r.is_ok());
    let pg_up = match PgConnectOptions::from_str(&postgres_url()) {
        Ok(o) => o.connect().await.is_ok(),
        Err(_) => false,
    };
    let skip = |var: &str| std::env::var(var).as_deref() == Ok("1");
    if !moto_up {
        if skip("ORCH_SKIP_AWS_TESTS") {
            println!("skipped: no moto");
            return false;
        }
        panic!("moto is not reachable at {moto}: run `scripts/moto.sh start` or set ORCH_SKIP_AWS_TESTS=1");
    }
    if !pg_up {
        if skip("ORCH_SKIP_POSTGRES_TESTS") {
            println!("skipped: no PostgreSQL");
            return false;
        }
        panic!("PostgreSQL is not reachable: run `scripts/postgres.sh` or set ORCH_SKIP_POSTGRES_TESTS=1");
    }
    true
}

/// A fresh database on the test server; returns its URL.
pub async fn fresh_database() -> String {
    let base = postgres_url();
    let options = PgConnectOptions::from_str(&base).expect("PostgreSQL URL");
    let mut conn = options.connect().await.expect("connect to PostgreSQL");
    let name = format!("orch_mi_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .expect("create database");
    let _ = conn.close().await;
    match base.rfind('/') {
        Some(i) => format!("{}/{name}", &base[..i]),
        None => panic!("PostgreSQL URL without a database path: {base}"),
    }
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
