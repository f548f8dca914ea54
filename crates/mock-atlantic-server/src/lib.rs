//! A mock of the Herodotus Atlantic API for local runs and tests.
//!
//! Routes (every route the Atlantic client uses):
//!
//! | Method and path | What |
//! |---|---|
//! | `POST /atlantic-query` | multipart query (`pieFile` \| `inputFile` \| `programFile`, text fields) → `{atlanticQueryId}`; 429 above the concurrency limit |
//! | `GET /atlantic-query/{id}` | `{atlanticQuery, metadataUrls}`; 404 for an unknown id |
//! | `GET /atlantic-query-by-dedup-id?dedupId=` | the query submitted with that dedup id; 404 if none |
//! | `POST /buckets` | create a bucket → `{atlanticBucket}` |
//! | `GET /buckets/{id}` | `{bucket, queries}` |
//! | `POST /buckets/close?bucketId=` | close: runs the [`AggregationArtifactsProducer`] and adds the aggregator query |
//! | `GET /queries/{id}/{file}` | artifacts of a finished query (`proof.json`; for an aggregator query also `pie.cairo0.zip`, `da_blob.json`, `snos_output.json`) |
//! | `GET /is-alive` | `{"alive": true}` |
//!
//! The server is also the artifacts host: point the client's artifacts base URL at it.
//!
//! A query is `RECEIVED` for the processing delay, then `IN_PROGRESS` for the completion delay,
//! then `DONE` — or `FAILED` with probability `failure_rate`, drawn from an RNG seeded with
//! `seed` so runs repeat. With `auto_complete` off, queries stay `IN_PROGRESS` until a test
//! finishes them ([`MockAtlanticServer::complete_query`]). Tests inject error answers
//! ([`Fault`]) per route, or turn on [`Chaos`]: a seeded share of all calls answered with 500,
//! 503, 429, a hang or a cut body ([`MockAtlanticServer::set_chaos`]).

pub mod producer;
mod routes;
pub mod state;

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio_util::sync::CancellationToken;
use url::Url;

pub use producer::{
    AggregationArtifactsProducer, AggregationInput, ChildQuery, ProducedArtifacts,
    StandInAggregationProducer,
};
pub use state::{Chaos, ChaosKind, Fault, FaultRoute, Phase};

/// Settings of the mock server.
#[derive(Debug, Clone, PartialEq)]
pub struct MockAtlanticConfig {
    /// Address to bind.
    pub bind_addr: IpAddr,
    /// Port (0 picks a free one).
    pub port: u16,
    /// Probability that a query fails (0.0–1.0).
    pub failure_rate: f64,
    /// Time a query stays `RECEIVED`.
    pub processing_delay: Duration,
    /// Time it then stays `IN_PROGRESS`.
    pub completion_delay: Duration,
    /// Queries kept in memory; the oldest finished ones are evicted above it.
    pub max_jobs_in_memory: usize,
    /// Running queries above which submissions get 429.
    pub max_concurrent_jobs: usize,
    /// Whether queries finish by themselves.
    pub auto_complete: bool,
    /// Seed of the failure draws and ids.
    pub seed: u64,
    /// When set, requests must carry this `api-key` header.
    pub api_key: Option<String>,
    /// When set, the fact of every aggregation is registered on this `MockGpsVerifier`
    /// before the aggregator query reports `DONE`, as SHARP's on-chain verification would.
    pub fact_registration: Option<FactRegistration>,
    /// When set, every L2 verification query (`PROOF_VERIFICATION_ON_L2`) registers its fact
    /// in this Cairo `FactRegistry` before it reports `DONE`, as Atlantic's verification on
    /// Starknet would (library only: the tests of an L3 set it).
    pub starknet_fact_registration: Option<StarknetFactRegistration>,
}

/// Where L2 verification queries register their facts: a Starknet node, an account, the Cairo
/// `FactRegistry` of `contracts/cairo`. The fact is the one our core contract checks:
/// `poseidon([programHash, poseidon(public output of the verified proof)])`, `programHash` being
/// the query's form field.
#[derive(Clone, PartialEq, Eq)]
pub struct StarknetFactRegistration {
    /// The Starknet JSON-RPC URL.
    pub rpc_url: Url,
    /// The sending account; use another one than the orchestrator's operator.
    pub account: cairo_vm::Felt252,
    /// Its private key.
    pub private_key: cairo_vm::Felt252,
    /// The `FactRegistry` contract.
    pub registry: cairo_vm::Felt252,
}

impl std::fmt::Debug for StarknetFactRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StarknetFactRegistration")
            .field("rpc_url", &self.rpc_url.host_str())
            .field("account", &format_args!("{:#x}", self.account))
            .field("registry", &format_args!("{:#x}", self.registry))
            .finish_non_exhaustive()
    }
}

/// Where the mock registers aggregation facts: an Ethereum node, a funded key, the
/// `MockGpsVerifier`. The fact is the one a Starknet core contract checks for the aggregated
/// output: `keccak(program_hash, keccak(output words))`.
#[derive(Clone, PartialEq, Eq)]
pub struct FactRegistration {
    /// The Ethereum JSON-RPC URL.
    pub rpc_url: Url,
    /// The sending key (hex); use another account than the orchestrator's operator.
    pub private_key: String,
    /// The `MockGpsVerifier` address.
    pub verifier: orchestrator_gps_fact_checker::onchain::Address,
}

impl std::fmt::Debug for FactRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FactRegistration")
            .field("rpc_url", &self.rpc_url.host_str())
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

impl Default for MockAtlanticConfig {
    fn default() -> Self {
        Self {
            bind_addr: IpAddr::from([127, 0, 0, 1]),
            port: 4001,
            failure_rate: 0.0,
            processing_delay: Duration::from_millis(1000),
            completion_delay: Duration::from_millis(3000),
            max_jobs_in_memory: 100,
            max_concurrent_jobs: 10,
            auto_complete: true,
            seed: 0,
            api_key: None,
            fact_registration: None,
            starknet_fact_registration: None,
        }
    }
}

/// Command-line flags of the mock server, each with its environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct MockAtlanticArgs {
    /// Port to listen on.
    #[arg(long, env = "MOCK_ATLANTIC_PORT", default_value_t = 4001)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, env = "MOCK_ATLANTIC_BIND_ADDR", default_value = "127.0.0.1")]
    pub bind_addr: IpAddr,
    /// Probability that a query fails.
    #[arg(long, env = "MOCK_ATLANTIC_FAILURE_RATE", default_value_t = 0.0)]
    pub failure_rate: f64,
    /// Milliseconds a query stays RECEIVED.
    #[arg(long, env = "MOCK_ATLANTIC_PROCESSING_DELAY_MS", default_value_t = 1000)]
    pub processing_delay_ms: u64,
    /// Milliseconds a query then stays IN_PROGRESS.
    #[arg(long, env = "MOCK_ATLANTIC_COMPLETION_DELAY_MS", default_value_t = 3000)]
    pub completion_delay_ms: u64,
    /// Queries kept in memory.
    #[arg(long, env = "MOCK_ATLANTIC_MAX_JOBS", default_value_t = 100)]
    pub max_jobs: usize,
    /// Running queries above which submissions get 429.
    #[arg(long, env = "MOCK_ATLANTIC_MAX_CONCURRENT_JOBS", default_value_t = 10)]
    pub max_concurrent_jobs: usize,
    /// Whether queries finish by themselves.
    #[arg(long, env = "MOCK_ATLANTIC_AUTO_COMPLETE", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_complete: bool,
    /// Seed of the failure draws and ids.
    #[arg(long, env = "MOCK_ATLANTIC_SEED", default_value_t = 0)]
    pub seed: u64,
    /// Require this `api-key` header.
    #[arg(long, env = "MOCK_ATLANTIC_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Register each aggregation's fact on the `MockGpsVerifier` at this address (needs
    /// `--fact-registry-rpc-url` and `--fact-registry-private-key`).
    #[arg(long, env = "MOCK_ATLANTIC_FACT_REGISTRY_ADDRESS", requires_all = ["fact_registry_rpc_url", "fact_registry_private_key"])]
    pub fact_registry_address: Option<String>,
    /// Ethereum JSON-RPC URL for the fact registrations.
    #[arg(long, env = "MOCK_ATLANTIC_FACT_REGISTRY_RPC_URL")]
    pub fact_registry_rpc_url: Option<Url>,
    /// Key (hex) that sends the fact registrations; not the orchestrator's operator key.
    #[arg(long, env = "MOCK_ATLANTIC_FACT_REGISTRY_PRIVATE_KEY", hide_env_values = true)]
    pub fact_registry_private_key: Option<String>,
}

/// Why the configuration is not usable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The failure rate is not a probability.
    #[error("failure rate {0} is not between 0 and 1")]
    FailureRate(f64),
    /// The environment does not parse.
    #[error("{0}")]
    Parse(String),
    /// The fact registry address is not an Ethereum address.
    #[error("--fact-registry-address {0:?} is not a 0x-prefixed 20-byte address")]
    FactRegistryAddress(String),
}

impl MockAtlanticArgs {
    /// The config these flags describe.
    ///
    /// # Errors
    /// A failure rate outside 0–1.
    pub fn into_config(self) -> Result<MockAtlanticConfig, ConfigError> {
        if !(0.0..=1.0).contains(&self.failure_rate) {
            return Err(ConfigError::FailureRate(self.failure_rate));
        }
        let fact_registration = match (
            self.fact_registry_address,
            self.fact_registry_rpc_url,
            self.fact_registry_private_key,
        ) {
            (Some(address), Some(rpc_url), Some(private_key)) => Some(FactRegistration {
                verifier: address
                    .parse()
                    .map_err(|_| ConfigError::FactRegistryAddress(address.clone()))?,
                rpc_url,
                private_key,
            }),
            _ => None,
        };
        Ok(MockAtlanticConfig {
            bind_addr: self.bind_addr,
            port: self.port,
            failure_rate: self.failure_rate,
            processing_delay: Duration::from_millis(self.processing_delay_ms),
            completion_delay: Duration::from_millis(self.completion_delay_ms),
            max_jobs_in_memory: self.max_jobs.max(1),
            max_concurrent_jobs: self.max_concurrent_jobs,
            auto_complete: self.auto_complete,
            seed: self.seed,
            api_key: self.api_key,
            fact_registration,
            starknet_fact_registration: None,
        })
    }
}

impl MockAtlanticConfig {
    /// The config from the `MOCK_ATLANTIC_*` environment variables (defaults otherwise).
    ///
    /// # Errors
    /// A variable that does not parse, or a failure rate outside 0–1.
    pub fn from_env() -> Result<Self, ConfigError> {
        use clap::{Args, FromArgMatches};
        let cmd = MockAtlanticArgs::augment_args(clap::Command::new("mock-atlantic-server"));
        let matches = cmd
            .try_get_matches_from(["mock-atlantic-server"])
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        MockAtlanticArgs::from_arg_matches(&matches)
            .map_err(|e| ConfigError::Parse(e.to_string()))?
            .into_config()
    }
}

pub(crate) type Shared = Arc<Mutex<state::State>>;

/// Shared state plus the producer, as the routes see them.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) state: Shared,
    pub(crate) producer: Arc<dyn AggregationArtifactsProducer>,
    pub(crate) registrar: Option<Arc<orchestrator_gps_fact_checker::FactRegistrar>>,
    /// One Starknet registration at a time (one account, one nonce sequence).
    pub(crate) starknet_sends: Arc<tokio::sync::Mutex<()>>,
}

/// A running mock server; stops when dropped or on [`MockAtlanticServer::stop`].
#[derive(Debug)]
pub struct MockAtlanticServer {
    addr: SocketAddr,
    app: AppState,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl MockAtlanticServer {
    /// Binds and starts serving with the stand-in aggregation producer.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn start(config: MockAtlanticConfig) -> std::io::Result<Self> {
        Self::start_with(config, Arc::new(StandInAggregationProducer::default())).await
    }

    /// Binds and starts serving with `producer` for closed buckets.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn start_with(
        config: MockAtlanticConfig,
        producer: Arc<dyn AggregationArtifactsProducer>,
    ) -> std::io::Result<Self> {
        let registrar = match &config.fact_registration {
            Some(r) => Some(Arc::new(
                orchestrator_gps_fact_checker::FactRegistrar::new(
                    r.rpc_url.clone(),
                    &r.private_key,
                    r.verifier,
                )
                .map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
                })?,
            )),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind((config.bind_addr, config.port)).await?;
        let addr = listener.local_addr()?;
        let app = AppState {
            state: Arc::new(Mutex::new(state::State::new(config))),
            producer,
            registrar,
            starknet_sends: Arc::default(),
        };
        let router = routes::router(app.clone());
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, router)
                .with_graceful_shutdown(async move { token.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!(target: "orch::mock_atlantic", error = %e, "Mock Atlantic server stopped");
            }
        });
        tracing::info!(target: "orch::mock_atlantic", %addr, "Mock Atlantic server listening");
        Ok(Self { addr, app, shutdown, task: Some(task) })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL (service and artifacts).
    pub fn url(&self) -> Url {
        // Invariant: a socket address always forms a valid http URL.
        #[allow(clippy::expect_used)]
        format!("http://{}/", self.addr).parse().expect("socket address URL")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, state::State> {
        // A poisoned lock means a route panicked mid-update; the mock's data is still usable.
        self.app.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues an error answer.
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// Turns chaos on (`Some`) or off: a seeded share of the calls answered with a fault.
    pub fn set_chaos(&self, chaos: Option<Chaos>) {
        self.lock().chaos = chaos.map(|c| {
            let rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(c.seed);
            (c, rng)
        });
    }

    /// Faults chaos answered so far, by kind.
    pub fn chaos_counts(&self) -> std::collections::BTreeMap<ChaosKind, u64> {
        self.lock().chaos_counts.clone()
    }

    /// Finishes a query now, successfully (`None`) or with a failure reason.
    pub fn complete_query(&self, query_id: &str, failure: Option<&str>) -> bool {
        let mut state = self.lock();
        match state.queries.get_mut(query_id) {
            Some(q) => {
                q.forced = Some(failure.map_or(Phase::Done, |r| Phase::Failed(r.to_owned())));
                true
            }
            None => false,
        }
    }

    /// The phase of a query now, if it is known.
    pub fn query_phase(&self, query_id: &str) -> Option<Phase> {
        let state = self.lock();
        state.queries.get(query_id).map(|q| state.phase(q, std::time::Instant::now()))
    }

    /// Number of queries held (children, aggregator and L2 queries).
    pub fn query_count(&self) -> usize {
        self.lock().queries.len()
    }

    /// Text fields (and file field names, as `file:<name>` → file name) of every accepted
    /// submission, oldest first.
    pub fn submissions(&self) -> Vec<std::collections::HashMap<String, String>> {
        self.lock().submissions.clone()
    }

    /// Every query of a bucket, aggregator query included.
    pub fn bucket_query_ids(&self, bucket_id: &str) -> Vec<String> {
        let state = self.lock();
        state
            .queries
            .values()
            .filter(|q| q.bucket_id.as_deref() == Some(bucket_id))
            .map(|q| q.id.clone())
            .collect()
    }

    /// Stops serving and waits for the server task.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockAtlanticServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
