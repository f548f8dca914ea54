//! A whole local appchain stack for the L2 pipeline (SnosBatching → AggregatorBatching →
//! SnosRun → ProofCreation → Aggregator → StateTransition), on one infrastructure tier:
//!
//! - **embedded**: SQLite, the SQLite queue, artifacts under the data dir, the in-process cron;
//! - **distributed**: PostgreSQL (a fresh database on the test server), SQS, S3 and SNS on moto
//!   (a fresh resource prefix); the test process stands in for EventBridge (moto does not fire
//!   schedules) and sends the worker triggers to the SQS trigger queue every second;
//! - **MongoDB + LocalStack**, the reference's own stack: MongoDB (a fresh database on the test
//!   server), SQS, S3, SNS and EventBridge on LocalStack (a fresh resource prefix). The worker
//!   triggers come from the EventBridge rules `orchestrator setup --aws-event-bridge
//!   --event-bridge-type rule` created (LocalStack fires rules, not Scheduler schedules); the
//!   test sends none. A rule fires at most once a minute, so this tier is minutes slower.

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use orchestrator::{
    core::client::{
        aws::{
            s3::{bucket_name, S3Storage},
            sqs::{QueueNaming, SqsQueue},
            AwsEnv,
        },
        fs_storage::FsStorage,
        local_cron::LocalCron,
        CronClient, StorageClient,
    },
    types::{
        queue::{QueueType, WorkerTriggerType},
        Layer,
    },
};
use orchestrator_mock_atlantic_server::{FactRegistration, MockAtlanticConfig, MockAtlanticServer};
use sqlx::{postgres::PgConnectOptions, ConnectOptions, Connection};
use tokio_util::sync::CancellationToken;

use crate::{
    api::Api,
    chaos::{PostgresCluster, TcpProxy},
    devnet::{Devnet, DevnetConfig},
    l1::{L1, OPERATOR_ADDRESS, OPERATOR_KEY, PROVER_KEY},
    process::{self, OrchestratorProcess},
};

/// Blocks per aggregator batch (`--max-batch-size`).
pub const BLOCKS_PER_AGGREGATOR_BATCH: u64 = 4;
/// Blocks per SNOS batch (`--max-blocks-per-snos-batch`).
pub const BLOCKS_PER_SNOS_BATCH: u64 = 2;

/// Which infrastructure the orchestrator runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// SQLite, local queue, files.
    Embedded,
    /// PostgreSQL + SQS/S3/SNS on moto.
    Distributed,
    /// MongoDB + SQS/S3/SNS/EventBridge rules on LocalStack.
    MongoLocalStack,
}

/// What a benchmark changes in a stack ([`Stack::start_with`]); the default is the workflow
/// tests' stack.
#[derive(Debug, Clone, Copy, Default)]
pub struct StackOptions {
    /// The mock Atlantic server answers at once (no processing or completion delay).
    pub instant_prover: bool,
    /// Devnet closes a block only on `devnet_createBlock` (many transactions per block).
    pub blocks_on_demand: bool,
}

/// The shared database of a distributed tier.
#[derive(Debug)]
enum SharedDb {
    /// A fresh database's URL on the PostgreSQL test server.
    Postgres(String),
    /// The MongoDB test server's URL and a fresh database name.
    Mongo { url: String, name: String },
}

#[derive(Debug)]
struct Distributed {
    endpoint: String,
    prefix: String,
    db: SharedDb,
    /// Whether EventBridge rules send the worker triggers (LocalStack); otherwise the test does.
    rules: bool,
}

/// The running stack; every service stops when it is dropped.
#[derive(Debug)]
pub struct Stack {
    /// The Starknet node.
    pub devnet: Devnet,
    /// The settlement layer.
    pub l1: L1,
    /// The prover.
    pub prover: MockAtlanticServer,
    /// The tier under test.
    pub tier: Tier,
    distributed: Option<Distributed>,
    dir: tempfile::TempDir,
    cron: Option<CancellationToken>,
    /// Every log an orchestrator of this stack wrote to.
    logs: Vec<PathBuf>,
    /// Chaos: the proxies the orchestrator reaches the node and the L1 through.
    pub proxies: Option<Proxies>,
    /// Chaos: the PostgreSQL cluster of this stack alone (distributed tier).
    pub postgres: Option<PostgresCluster>,
    /// Flags added to every `orchestrator run`; one the stack already sets replaces the stack's
    /// (with its value): `--snos-job-timeout-seconds 300` overrides the quick 20 s.
    pub extra_args: Vec<String>,
}

/// Where a stack's alerts are read back ([`Stack::alert_inbox`]).
#[derive(Debug)]
pub enum AlertInbox {
    /// The embedded tier's JSON-lines alert file.
    File(PathBuf),
    /// An SQS queue subscribed to the SNS alert topic.
    Queue {
        /// The client.
        sqs: aws_sdk_sqs::Client,
        /// The queue.
        url: String,
        /// What earlier reads drained from the queue: every read returns them too.
        drained: tokio::sync::Mutex<Vec<String>>,
    },
}

impl AlertInbox {
    /// Every alert delivered so far, as `title: body`, oldest first. A queue is drained, and
    /// what it held is kept, so a later read still returns it.
    pub async fn read(&self) -> Vec<String> {
        match self {
            Self::File(path) => std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .map(|v| {
                    format!(
                        "{}: {}",
                        v["title"].as_str().unwrap_or(""),
                        v["body"].as_str().unwrap_or("")
                    )
                })
                .collect(),
            Self::Queue { sqs, url, drained } => {
                let mut out = drained.lock().await;
                loop {
                    let got = sqs
                        .receive_message()
                        .queue_url(url)
                        .max_number_of_messages(10)
                        .wait_time_seconds(1)
                        .send()
                        .await
                        .expect("receive alerts");
                    let messages = got.messages();
                    if messages.is_empty() {
                        return out.clone();
                    }
                    for m in messages {
                        let body = m.body().unwrap_or_default();
                        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
                        out.push(format!(
                            "{}: {}",
                            v["Subject"].as_str().unwrap_or(""),
                            v["Message"].as_str().unwrap_or(body)
                        ));
                        if let Some(h) = m.receipt_handle() {
                            let _ =
                                sqs.delete_message().queue_url(url).receipt_handle(h).send().await;
                        }
                    }
                }
            }
        }
    }
}

/// The proxies of a chaos stack.
#[derive(Debug)]
pub struct Proxies {
    /// In front of the Starknet node (JSON-RPC and feeder gateway).
    pub node: Arc<TcpProxy>,
    /// In front of the settlement layer's JSON-RPC (settlement, DA and the prover's RPC).
    pub l1: Arc<TcpProxy>,
}

/// The mock Atlantic server at `url` as the prover (TESTNET, facts mocked).
pub fn atlantic_args(url: &str) -> Vec<String> {
    [
        "--prover",
        "atlantic",
        "--atlantic-api-key",
        "e2e",
        "--atlantic-service-url",
        url,
        "--atlantic-artifacts-base-url",
        url,
        "--atlantic-mock-fact-hash",
        "true",
        "--atlantic-network",
        "TESTNET",
    ]
    .map(String::from)
    .to_vec()
}

/// Polling, job-timeout and shutdown flags that keep a test run quick: 1 s intervals and
/// verification polls, job lock timeouts of 20–60 s (healing after a SIGKILL), a short
/// batching lock TTL.
pub fn quick_engine_args() -> Vec<String> {
    [
        "--interval-seconds",
        "1",
        "--verification-poll-seconds",
        "1",
        "--snos-job-timeout-seconds",
        "20",
        "--proving-job-timeout-seconds",
        "20",
        "--state-transition-timeout-seconds",
        "60",
        "--orphan-scan-interval-seconds",
        "2",
        // A message held by a killed instance comes back after the queue's visibility timeout
        // (6 minutes and more): the scanner sends it again after 20 s instead.
        "--stale-message-seconds",
        "20",
        // A batching run killed mid-way holds its lock until the TTL (reference default 1 h).
        "--batching-worker-lock-duration",
        "10",
        "--graceful-shutdown-timeout",
        "10",
    ]
    .map(String::from)
    .to_vec()
}

/// `args` followed by `extra`, without the flags of `args` that `extra` sets again (each with
/// its value, the next word unless that is a flag): clap refuses a flag given twice.
fn with_overrides(args: Vec<String>, extra: &[String]) -> Vec<String> {
    let is_flag = |w: &str| w.starts_with("--");
    let mut out = Vec::with_capacity(args.len() + extra.len());
    let mut words = args.into_iter().peekable();
    while let Some(w) = words.next() {
        if is_flag(&w) && extra.contains(&w) {
            words.next_if(|v| !is_flag(v));
        } else {
            out.push(w);
        }
    }
    out.extend(extra.iter().cloned());
    out
}

/// The endpoint of moto and the URL of the PostgreSQL server (the shared launchers of
/// `orchestrator-test-support`); `None` when their skip variables are set, a panic with how to
/// start them when they do not answer.
async fn distributed_services() -> Option<(String, String)> {
    let endpoint = orchestrator_test_support::moto::endpoint_or_skip().await?;
    let postgres = orchestrator_test_support::postgres::server_or_skip().await?;
    Some((endpoint, postgres))
}

/// LocalStack's endpoint and the MongoDB test server's URL (the shared helpers of
/// `orchestrator-test-support`); `None` when their skip variables are set, a panic with how to
/// start them when they do not answer.
async fn mongo_localstack_services() -> Option<(String, String)> {
    let endpoint = orchestrator_test_support::localstack::endpoint_or_skip().await?;
    let url = orchestrator_test_support::mongodb::url_or_skip().await?;
    Some((endpoint, url))
}

/// A fresh database on the server of `base`; its URL.
async fn fresh_database(base: &str) -> String {
    use orchestrator_test_support::postgres::{database_url, fresh_database_name};
    let options = PgConnectOptions::from_str(base).expect("PostgreSQL URL");
    let mut conn = options.connect().await.expect("connect to PostgreSQL");
    let name = fresh_database_name("orch_e2e");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .expect("create database");
    let _ = conn.close().await;
    database_url(base, &name)
}

impl Stack {
    /// Starts devnet, Anvil with the contracts, the mock Atlantic server, and (distributed)
    /// creates a database and a resource prefix; runs `orchestrator setup`. `None` (after
    /// printing why) when a service the tier needs is skipped.
    pub async fn start(tier: Tier) -> Option<Self> {
        Self::start_on(tier, None, StackOptions::default()).await
    }

    /// [`Stack::start`] with the changes of `options` (benchmarks).
    pub async fn start_with(tier: Tier, options: StackOptions) -> Option<Self> {
        Self::start_on(tier, None, options).await
    }

    /// [`Stack::start`] for the chaos workflow: the orchestrator reaches the node and the L1
    /// through [`TcpProxy`]s a test can cut, and the distributed tier runs on a PostgreSQL
    /// cluster of its own that a test can restart.
    pub async fn start_chaos(tier: Tier) -> Option<Self> {
        let cluster = match tier {
            Tier::Distributed => Some(PostgresCluster::start()?),
            Tier::Embedded | Tier::MongoLocalStack => None,
        };
        let mut stack = Self::start_on(
            tier,
            cluster.as_ref().map(PostgresCluster::url),
            StackOptions::default(),
        )
        .await?;
        stack.proxies = Some(Proxies {
            node: Arc::new(TcpProxy::start(&stack.devnet.url).await),
            l1: Arc::new(TcpProxy::start(&stack.l1.url()).await),
        });
        stack.postgres = cluster;
        Some(stack)
    }

    /// [`Stack::start`], the distributed tier's database on the PostgreSQL server `postgres`
    /// when given (otherwise the shared test server).
    async fn start_on(tier: Tier, postgres: Option<String>, options: StackOptions) -> Option<Self> {
        let prefix = || format!("e2e{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let distributed = match tier {
            Tier::Embedded => None,
            Tier::Distributed => {
                let (endpoint, shared) = distributed_services().await?;
                let base = postgres.unwrap_or(shared);
                let db = SharedDb::Postgres(fresh_database(&base).await);
                Some(Distributed { endpoint, prefix: prefix(), db, rules: false })
            }
            Tier::MongoLocalStack => {
                let (endpoint, url) = mongo_localstack_services().await?;
                // MongoDB creates the database on the first write.
                let name = format!("orch_e2e_{}", uuid::Uuid::new_v4().simple());
                Some(Distributed {
                    endpoint,
                    prefix: prefix(),
                    db: SharedDb::Mongo { url, name },
                    rules: true,
                })
            }
        };
        let devnet = if options.blocks_on_demand {
            Devnet::start_with(DevnetConfig::default().block_generation_on_demand()).await?
        } else {
            Devnet::start().await?
        };
        let l1 = L1::start().await?;
        let (processing_delay, completion_delay) = if options.instant_prover {
            (Duration::ZERO, Duration::ZERO)
        } else {
            (Duration::from_millis(300), Duration::from_millis(700))
        };
        let prover = MockAtlanticServer::start(MockAtlanticConfig {
            port: 0,
            processing_delay,
            completion_delay,
            max_concurrent_jobs: 50,
            fact_registration: Some(FactRegistration {
                rpc_url: l1.url(),
                private_key: PROVER_KEY.to_owned(),
                verifier: l1.contracts.verifier,
            }),
            ..MockAtlanticConfig::default()
        })
        .await
        .expect("mock Atlantic server");
        let stack = Self {
            devnet,
            l1,
            prover,
            tier,
            distributed,
            dir: {
                let mut dir = tempfile::tempdir().expect("tempdir");
                // E2E_KEEP=1 keeps the data and logs of every stack for a look afterwards.
                if std::env::var("E2E_KEEP").as_deref() == Ok("1") {
                    dir.disable_cleanup(true);
                    println!("E2E_KEEP=1: keeping {}", dir.path().display());
                }
                dir
            },
            cron: None,
            logs: Vec::new(),
            proxies: None,
            postgres: None,
            extra_args: Vec::new(),
        };
        process::setup(&stack.setup_args(), &stack.envs());
        Some(stack)
    }

    /// The data directory (embedded tier; logs for both).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The log file every orchestrator instance of this stack appends to.
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("orchestrator.log")
    }

    fn infra_args(&self) -> Vec<String> {
        let mut args =
            vec!["--data-dir".to_owned(), self.dir.path().join("data").display().to_string()];
        if let Some(d) = &self.distributed {
            args.extend(
                ["--aws", "--aws-prefix", &d.prefix, "--aws-sqs", "--aws-s3", "--aws-sns"]
                    .map(String::from),
            );
            match &d.db {
                SharedDb::Postgres(url) => {
                    args.extend(["--postgres", "--postgres-url", url].map(String::from));
                }
                SharedDb::Mongo { url, name } => args.extend(
                    ["--mongodb", "--mongodb-connection-url", url, "--mongodb-database-name", name]
                        .map(String::from),
                ),
            }
        }
        args
    }

    fn setup_args(&self) -> Vec<String> {
        let mut args = self.infra_args();
        if let Some(d) = &self.distributed {
            args.extend(["--timeout", "60", "--poll-interval", "1"].map(String::from));
            if d.rules {
                // One rule per trigger, `rate(1 minute)` (the default --interval-seconds 60):
                // EventBridge's finest rate.
                args.extend(
                    ["--aws-event-bridge", "--event-bridge-type", "rule"].map(String::from),
                );
            }
        }
        args
    }

    /// Environment of every orchestrator process (AWS settings for moto or LocalStack).
    pub fn envs(&self) -> Vec<(String, String)> {
        let mut envs = vec![("RUST_LOG".to_owned(), "info,orch=debug".to_owned())];
        if let Some(d) = &self.distributed {
            for (k, v) in [
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
                ("AWS_REGION", "us-east-1"),
                ("AWS_DEFAULT_REGION", "us-east-1"),
                ("AWS_ENDPOINT_URL", d.endpoint.as_str()),
            ] {
                envs.push((k.to_owned(), v.to_owned()));
            }
        }
        envs
    }

    /// The `orchestrator run` command line (without `--host`/`--port`).
    pub fn run_args(&self) -> Vec<String> {
        let (l1, node) = match &self.proxies {
            Some(p) => {
                (p.l1.url(&self.l1.url()).to_string(), p.node.url(&self.devnet.url).to_string())
            }
            None => (self.l1.url().to_string(), self.devnet.url.to_string()),
        };
        let prover = self.prover.url().to_string();
        let core = self.l1.core().to_string();
        let verifier = self.l1.contracts.verifier.to_string();
        let mut args: Vec<String> = [
            "--layer",
            "l2",
            "--settle-on-ethereum",
            "--ethereum-rpc-url",
            &l1,
            "--ethereum-private-key",
            OPERATOR_KEY,
            "--l1-core-contract-address",
            &core,
            "--starknet-operator-address",
            OPERATOR_ADDRESS,
            "--ethereum-finality-retry-wait-in-secs",
            "1",
            "--ethereum-tx-confirmation-timeout-secs",
            "30",
            "--da-on-ethereum",
            "--ethereum-da-rpc-url",
            &l1,
            "--atlantic-rpc-node-url",
            &l1,
            "--atlantic-settlement-layer",
            "ethereum",
            "--atlantic-verifier-contract-address",
            &verifier,
            "--madara-rpc-url",
            &node,
            "--rpc-for-snos",
            &node,
            "--max-batch-time-seconds",
            "3600",
            "--max-batch-size",
            &BLOCKS_PER_AGGREGATOR_BATCH.to_string(),
            "--max-blocks-per-snos-batch",
            &BLOCKS_PER_SNOS_BATCH.to_string(),
            "--aggregator-job-timeout-seconds",
            "30",
        ]
        .map(String::from)
        .to_vec();
        args.extend(atlantic_args(&prover));
        args.extend(quick_engine_args());
        args.extend(self.infra_args());
        with_overrides(args, &self.extra_args)
    }

    /// Starts one `orchestrator run` of this stack logging to [`Stack::log`].
    pub async fn spawn(&mut self) -> OrchestratorProcess {
        let log = self.log();
        self.spawn_logging_to(&log).await
    }

    /// Starts one `orchestrator run` of this stack appending its output to `log` (and, on the
    /// distributed tier without EventBridge rules, the test's EventBridge stand-in, once).
    pub async fn spawn_logging_to(&mut self, log: &Path) -> OrchestratorProcess {
        if let (Some(d @ Distributed { rules: false, .. }), None) = (&self.distributed, &self.cron)
        {
            let env = AwsEnv::explicit("test", "test", "us-east-1", Some(&d.endpoint)).await;
            let naming =
                QueueNaming::new("mo_{}_queue", Some(d.prefix.as_str())).expect("queue naming");
            let queue = Arc::new(SqsQueue::new(&env, naming, QueueType::for_layer(Layer::L2)));
            let token = CancellationToken::new();
            let child = token.clone();
            tokio::spawn(async move {
                let cron = LocalCron::new(queue);
                let _ = cron
                    .run(WorkerTriggerType::for_layer(Layer::L2), Duration::from_secs(1), child)
                    .await;
            });
            self.cron = Some(token);
        }
        if !self.logs.iter().any(|l| l == log) {
            self.logs.push(log.to_owned());
        }
        OrchestratorProcess::start(&self.run_args(), &self.envs(), log).await
    }

    /// The artifact storage the orchestrator writes to.
    pub async fn storage(&self) -> Arc<dyn StorageClient> {
        match &self.distributed {
            None => Arc::new(
                FsStorage::open(self.dir.path().join("data/artifacts"))
                    .expect("artifact directory"),
            ),
            Some(d) => {
                let env = AwsEnv::explicit("test", "test", "us-east-1", Some(&d.endpoint)).await;
                let bucket =
                    bucket_name("mo-bucket", Some(d.prefix.as_str())).expect("bucket name");
                Arc::new(S3Storage::new(&env, bucket))
            }
        }
    }

    /// Where the alerts of this stack's orchestrators can be read back: the embedded tier's
    /// alert file, or (distributed) an SQS queue this subscribes to the alert topic `setup`
    /// created.
    ///
    /// # Panics
    /// When the topic is missing or the subscription fails.
    pub async fn alert_inbox(&self) -> AlertInbox {
        let Some(d) = &self.distributed else {
            return AlertInbox::File(self.dir.path().join("data/alerts.jsonl"));
        };
        let env = AwsEnv::explicit("test", "test", "us-east-1", Some(&d.endpoint)).await;
        let topic = format!("{}_alerts", d.prefix);
        let topics = env.sns().list_topics().send().await.expect("list SNS topics");
        let topic_arn = topics
            .topics()
            .iter()
            .filter_map(|t| t.topic_arn())
            .find(|arn| arn.ends_with(&format!(":{topic}")))
            .unwrap_or_else(|| panic!("setup created no SNS topic {topic}"))
            .to_owned();
        let sqs = env.sqs();
        let queue = sqs
            .create_queue()
            .queue_name(format!("{}_test_alert_inbox", d.prefix))
            .send()
            .await
            .expect("create the alert inbox queue");
        let url = queue.queue_url().expect("queue url").to_owned();
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes");
        let queue_arn = attrs
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .expect("queue ARN")
            .clone();
        env.sns()
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .send()
            .await
            .expect("subscribe the inbox to the alert topic");
        AlertInbox::Queue { sqs, url, drained: tokio::sync::Mutex::default() }
    }

    /// An API client of `process`.
    pub fn api(process: &OrchestratorProcess) -> Api {
        Api::new(process.api.clone())
    }

    /// The last lines of every log an orchestrator of this stack wrote (for failure messages),
    /// each under its file name.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut out = Vec::new();
        for log in &self.logs {
            let name =
                log.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            out.push(format!("--- {name} (last {lines} lines) ---"));
            out.push(crate::tail(log, lines));
        }
        out.join("\n")
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(token) = &self.cron {
            token.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_flags_replace_the_stacks_own_with_their_values() {
        let words = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let args = words("--layer l2 --settle-on-ethereum --snos-job-timeout-seconds 20 --x 1");
        assert_eq!(
            with_overrides(args.clone(), &words("--snos-job-timeout-seconds 300 --y")).join(" "),
            "--layer l2 --settle-on-ethereum --x 1 --snos-job-timeout-seconds 300 --y"
        );
        // A flag without a value goes alone, not with the next flag.
        assert_eq!(
            with_overrides(args.clone(), &words("--settle-on-ethereum")).join(" "),
            "--layer l2 --snos-job-timeout-seconds 20 --x 1 --settle-on-ethereum"
        );
        assert_eq!(with_overrides(args.clone(), &[]), args);
    }
}
