//! Startup preflight: before `orchestrator run` starts its workers it checks every dependency
//! the command line configures, and stops when one of them cannot work.
//!
//! Each check is a [`Check`]: it looks at one dependency and answers a [`Finding`] — `ok`,
//! `warning` (the orchestrator can run, an operator should look) or `fatal` (it cannot do its
//! work). [`run_checks`] runs them concurrently, each within [`CHECK_TIMEOUT`], and returns a
//! [`Report`] whose [`lines`](Report::lines) are printed one per check, fatal ones last:
//!
//! ```text
//! preflight: ok node: http://127.0.0.1:9944 answers: spec 0.8.1, chain MADARA_DEVNET (0x4d41…)
//! preflight: warning settlement: … balance 0.000001 ETH … — fix: fund 0x… on chain 31337
//! preflight: fatal prover: Atlantic refused the API key (HTTP 401) — fix: set --atlantic-api-key …
//! ```
//!
//! The checks (built from the run parameters by [`checks`]): `node`, `settlement`, `prover`,
//! `da`, `storage`, `queue`, `database`. The module also provides the cheap reachability
//! probes of `/health/ready`'s external dependencies ([`dependency_probes`]).
//!
//! URLs are shown as their origin only (`scheme://host:port`): a path or query may carry an API
//! key, the userinfo a password.

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use orchestrator_atlantic_service::client::AtlanticClient;
use orchestrator_ethereum_settlement_client::signer::{KmsSigner, OperatorSigner};
use orchestrator_gps_fact_checker::AlwaysValid;
use orchestrator_prover_client_interface::{ProverError, RetryPolicy};
use orchestrator_sharp_service::{SharpConfig, SharpProverService};
use orchestrator_utils::{secret::split_userinfo, Secret};
use serde_json::{json, Value};
use starknet_types_core::felt::Felt;
use url::Url;

use crate::{
    config::{
        choices::ProofSettlementLayer, AtlanticParams, DaParams, DatabaseBackend,
        EthereumSettlementParams, EthereumSignerParams, ProverParams, RunParams, SettlementParams,
        SharpParams, StarknetSettlementParams,
    },
    core::client::{
        database_backends,
        embedded::{self, EmbeddedOptions},
        Clients, DatabaseClient, QueueClient, StorageClient,
    },
    server::health::DependencyProbe,
};

/// How long one check may take before it counts as fatal.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// State updates the settlement signer's balance should pay for; below it is a warning.
pub const MIN_STATE_UPDATES_FUNDED: u32 = 5;
/// Gas of one state update, blob gas aside (a KZG-DA update with 6 blobs uses about 300 000;
/// rounded up).
pub const STATE_UPDATE_GAS_ESTIMATE: u128 = 500_000;
/// Blob gas of one blob (EIP-4844).
const BLOB_GAS_PER_BLOB: u128 = 131_072;
/// Most blobs one state update carries.
const MAX_BLOBS: u128 = 6;
/// Fee of one L3 state update on Starknet, in fri (1 STRK): a fixed estimate, Starknet fees
/// being hard to predict without the calldata.
pub const STARKNET_STATE_UPDATE_FEE_ESTIMATE_FRI: u128 = 1_000_000_000_000_000_000;
/// The STRK token on Starknet (mainnet, Sepolia and starknet-devnet alike): the fee token of
/// the L3's settlement account.
pub const STRK_TOKEN: &str = "0x04718f5a0fc34cc1af16a1cdee98ffb20c31f5cd61d6ab07201858f4287c938d";
/// Starknet JSON-RPC error code of an address with no contract.
const CONTRACT_NOT_FOUND: i64 = 20;

/// How [`RpcFailure::Unreachable`] shows in a finding's detail.
const UNREACHABLE_MARK: &str = "unreachable (";
/// How a prover that did not answer shows (`ProverError::Unavailable`).
const PROVER_UNREACHABLE_MARK: &str = "prover unreachable: ";
/// How a check past its time limit shows.
const NO_ANSWER_MARK: &str = "no answer within ";

/// How bad a finding is; ordered `Ok < Warning < Fatal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// The dependency works.
    Ok,
    /// It works, but an operator should look (a low balance, a mismatch that may be wanted).
    Warning,
    /// It cannot work: `run` stops before starting its workers.
    Fatal,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Fatal => "fatal",
        })
    }
}

/// What one check found: a level, what was seen and, unless ok, what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How bad it is.
    pub level: Level,
    /// What was seen.
    pub detail: String,
    /// What to do (warnings and fatals).
    pub fix: Option<String>,
}

impl Finding {
    /// The dependency works.
    pub fn ok(detail: impl Into<String>) -> Self {
        Self { level: Level::Ok, detail: detail.into(), fix: None }
    }

    /// A warning with its fix.
    pub fn warning(detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { level: Level::Warning, detail: detail.into(), fix: Some(fix.into()) }
    }

    /// A fatal problem with its fix.
    pub fn fatal(detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { level: Level::Fatal, detail: detail.into(), fix: Some(fix.into()) }
    }

    /// Whether this is a dependency that did not answer (connection refused or reset, a
    /// timeout: [`RpcFailure::Unreachable`], or the check's own time limit), which may answer
    /// a moment later, rather than a wrong answer.
    pub fn is_unreachable(&self) -> bool {
        self.level == Level::Fatal
            && (self.detail.contains(UNREACHABLE_MARK)
                || self.detail.contains(PROVER_UNREACHABLE_MARK)
                || self.detail.starts_with(NO_ANSWER_MARK))
    }
}

/// One check's result under its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The check (`node`, `settlement`, …).
    pub check: &'static str,
    /// What it found.
    pub finding: Finding,
}

impl fmt::Display for Outcome {
    /// `preflight: <level> <check>: <detail>[ — fix: <fix>]`, on one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let one_line = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        write!(
            f,
            "preflight: {} {}: {}",
            self.finding.level,
            self.check,
            one_line(&self.finding.detail)
        )?;
        if let Some(fix) = &self.finding.fix {
            write!(f, " — fix: {}", one_line(fix))?;
        }
        Ok(())
    }
}

/// One dependency check.
#[async_trait]
pub trait Check: Send + Sync + fmt::Debug {
    /// Its name on the preflight line.
    fn name(&self) -> &'static str;
    /// Looks at the dependency. Never panics on a bad answer: every failure is a [`Finding`].
    /// [`run_checks`] bounds it with a timeout.
    async fn run(&self) -> Finding;
}

/// The outcomes of a preflight, ok first, warnings next, fatals last (each group in check
/// order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Every check's outcome.
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// One line per check, fatal ones last.
    pub fn lines(&self) -> Vec<String> {
        self.outcomes.iter().map(ToString::to_string).collect()
    }

    /// The outcome of `check`, if it ran.
    pub fn get(&self, check: &str) -> Option<&Outcome> {
        self.outcomes.iter().find(|o| o.check == check)
    }

    /// The checks that failed fatally.
    pub fn fatal(&self) -> Vec<&'static str> {
        self.outcomes.iter().filter(|o| o.finding.level == Level::Fatal).map(|o| o.check).collect()
    }

    /// Prints the lines to `out` and logs warnings and fatals; an error naming the fatal checks
    /// when there is one.
    ///
    /// # Errors
    /// A fatal check (named), or `out` cannot be written.
    pub fn print(&self, out: &mut impl std::io::Write) -> eyre::Result<()> {
        for outcome in &self.outcomes {
            writeln!(out, "{outcome}")?;
            match outcome.finding.level {
                Level::Ok => {}
                Level::Warning => tracing::warn!(check = outcome.check, "{outcome}"),
                Level::Fatal => tracing::error!(check = outcome.check, "{outcome}"),
            }
        }
        out.flush()?;
        let fatal = self.fatal();
        if fatal.is_empty() {
            tracing::info!(checks = self.outcomes.len(), "Preflight passed");
            Ok(())
        } else {
            Err(eyre::eyre!(
                "preflight failed: {} (see the `preflight: fatal` lines above; fix them, or pass \
                 --skip-preflight to start anyway)",
                fatal.join(", ")
            ))
        }
    }
}

/// Runs `checks` concurrently, each within `timeout` (past it: fatal), and sorts the outcomes.
pub async fn run_checks(checks: Vec<Box<dyn Check>>, timeout: Duration) -> Report {
    let runs = checks.iter().map(|check| async move {
        let finding = match tokio::time::timeout(timeout, check.run()).await {
            Ok(finding) => finding,
            Err(_) => Finding::fatal(
                format!("{NO_ANSWER_MARK}{}s", timeout.as_secs_f64()),
                "check that the dependency is up and reachable from this host (a firewall, a \
                 wrong port?)",
            ),
        };
        Outcome { check: check.name(), finding }
    });
    let mut outcomes = futures::future::join_all(runs).await;
    // Stable: the check order stays within each level.
    outcomes.sort_by_key(|o| o.finding.level);
    Report { outcomes }
}

/// Runs every check `params` configures (see [`checks`]). While the only fatal findings are
/// dependencies that do not answer ([`Finding::is_unreachable`]), checks those again every 2 s
/// for up to `--preflight-wait-seconds`: an outage of a few seconds during a restart is waited
/// out, a wrong answer is fatal at once.
pub async fn run(params: &RunParams) -> Report {
    wait_for_answers(|| checks(params), params.service.preflight_wait, Duration::from_secs(2)).await
}

/// Runs the checks `make` builds; while every fatal finding is a dependency that does not
/// answer, waits `every` and runs again the checks that have not answered yet, until `wait` has
/// passed. A check that answered keeps its outcome: a round takes only as long as the waited-for
/// checks, so a dependency that answers for a few seconds between two outages is not missed
/// behind a slow check that already passed. The report lists every check once, in `make`'s
/// order within each level.
pub async fn wait_for_answers<F, Fut>(mut make: F, wait: Duration, every: Duration) -> Report
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<Box<dyn Check>>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    let mut order: Vec<&'static str> = Vec::new();
    let mut answered: Vec<Outcome> = Vec::new();
    let mut announced = false;
    loop {
        let mut round = make().await;
        for check in &round {
            if !order.contains(&check.name()) {
                order.push(check.name());
            }
        }
        round.retain(|c| !answered.iter().any(|o| o.check == c.name()));
        let report = run_checks(round, CHECK_TIMEOUT).await;
        let (fatal, ok): (Vec<Outcome>, Vec<Outcome>) =
            report.outcomes.into_iter().partition(|o| o.finding.level == Level::Fatal);
        answered.extend(ok);
        let waiting = !fatal.is_empty() && fatal.iter().all(|o| o.finding.is_unreachable());
        if !waiting || tokio::time::Instant::now() >= deadline {
            answered.extend(fatal);
            let position = |o: &Outcome| order.iter().position(|n| *n == o.check);
            answered.sort_by_key(|o| (o.finding.level, position(o)));
            return Report { outcomes: answered };
        }
        if !announced {
            let names: Vec<&str> = fatal.iter().map(|o| o.check).collect();
            println!(
                "preflight: waiting for {} (no answer); checking again for up to {} s",
                names.join(", "),
                wait.as_secs()
            );
            announced = true;
        }
        tokio::time::sleep(every).await;
    }
}

/// The checks of `params`: node, settlement, prover, DA, storage, queue and database.
///
/// The infrastructure is opened here as `run` opens it (embedded tier, then the AWS backends),
/// within [`CHECK_TIMEOUT`]; the database check opens a PostgreSQL or MongoDB database itself.
pub async fn checks(params: &RunParams) -> Vec<Box<dyn Check>> {
    let mut checks: Vec<Box<dyn Check>> = vec![
        Box::new(NodeCheck {
            node: JsonRpc::new(&params.madara.rpc_url),
            snos: (params.snos.rpc_url != params.madara.rpc_url)
                .then(|| JsonRpc::new(&params.snos.rpc_url)),
            expected_chain_id: params.service.preflight_chain_id,
        }),
        match &params.settlement {
            SettlementParams::Ethereum(eth) => Box::new(EthereumSettlementCheck::new(eth)),
            SettlementParams::Starknet(sn) => Box::new(StarknetSettlementCheck::new(sn)),
        },
        Box::new(ProverCheck::new(&params.prover, &params.settlement)),
        Box::new(DaCheck::new(&params.da, &params.settlement)),
    ];
    match tokio::time::timeout(CHECK_TIMEOUT, open_infrastructure(params)).await {
        Ok(Ok(clients)) => {
            checks.push(Box::new(StorageCheck { storage: clients.storage.clone() }));
            checks.push(Box::new(QueueCheck { queue: clients.queue.clone() }));
            let database = match &params.infra.database {
                DatabaseBackend::Embedded => DatabaseSource::Open(clients.database.clone()),
                backend => DatabaseSource::Backend(backend.clone()),
            };
            checks.push(Box::new(DatabaseCheck { database }));
        }
        Ok(Err(finding)) => {
            for name in ["storage", "queue", "database"] {
                checks.push(Box::new(Failed { name, finding: finding.clone() }));
            }
        }
        Err(_) => {
            let finding = Finding::fatal(
                format!("the infrastructure did not open within {}s", CHECK_TIMEOUT.as_secs()),
                "check the data directory's disk and the AWS endpoint",
            );
            for name in ["storage", "queue", "database"] {
                checks.push(Box::new(Failed { name, finding: finding.clone() }));
            }
        }
    }
    checks
}

/// Opens the storage and queues as `run` does: the embedded tier under `--data-dir`, then the
/// AWS backends that replace parts of it.
async fn open_infrastructure(params: &RunParams) -> Result<Clients, Finding> {
    let options = EmbeddedOptions { queue: params.queue.clone(), ..Default::default() };
    let mut clients = embedded::open(&params.infra.data_dir, &options).await.map_err(|e| {
        Finding::fatal(
            format!("cannot open the data directory {}: {e}", params.infra.data_dir.display()),
            "give --data-dir a writable directory on a disk with space (run `orchestrator setup` \
             first)",
        )
    })?;
    crate::core::client::aws::apply_backends(&mut clients, &params.infra, params.layer)
        .await
        .map_err(|e| {
            Finding::fatal(
                format!("AWS configuration: {e}"),
                "check the AWS credentials, region and endpoint (AWS_*), and run `orchestrator \
                 setup --aws …`",
            )
        })?;
    Ok(clients)
}

/// The probes of `/health/ready`'s external dependencies: the node, the settlement RPC and the
/// prover (none for the mock prover).
pub fn dependency_probes(params: &RunParams) -> Vec<Arc<dyn DependencyProbe>> {
    let mut probes: Vec<Arc<dyn DependencyProbe>> =
        vec![Arc::new(RpcProbe::new("node", &params.madara.rpc_url, "starknet_chainId"))];
    let (url, fallbacks, method) = match &params.settlement {
        SettlementParams::Ethereum(eth) => (&eth.rpc_url, &eth.fallback_rpc_urls, "eth_chainId"),
        SettlementParams::Starknet(sn) => (&sn.rpc_url, &sn.fallback_rpc_urls, "starknet_chainId"),
    };
    probes.push(Arc::new(RpcProbe {
        name: "settlement",
        rpc: JsonRpc::with_fallbacks(url.expose(), fallbacks.iter().map(Secret::expose)),
        method,
    }));
    match &params.prover {
        ProverParams::Atlantic(a) => {
            if let Ok(client) = atlantic_client(a) {
                probes.push(Arc::new(AtlanticProbe(client)));
            }
        }
        ProverParams::Sharp(s) => {
            if let Ok(client) = sharp_client(s) {
                probes.push(Arc::new(SharpProbe(Arc::new(client))));
            }
        }
        ProverParams::Mock(_) => {}
    }
    probes
}

// ---------------------------------------------------------------------------------------------
// JSON-RPC
// ---------------------------------------------------------------------------------------------

/// A JSON-RPC endpoint: the URL without its credentials (sent as a Basic header), shown by
/// its origin only.
#[derive(Clone)]
pub struct JsonRpc {
    http: reqwest::Client,
    url: Url,
    auth: Option<Secret<String>>,
    shown: String,
    /// Endpoints of the same chain tried in turn when this one does not answer
    /// (`--ethereum-rpc-url a,b`).
    fallbacks: Vec<JsonRpc>,
}

impl fmt::Debug for JsonRpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JsonRpc").field(&self.shown).finish()
    }
}

/// Why a JSON-RPC call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcFailure {
    /// No answer: refused, reset, timed out, DNS.
    Unreachable(String),
    /// An HTTP error status.
    Http(u16),
    /// A JSON-RPC error object.
    Rpc {
        /// Its code.
        code: i64,
        /// Its message.
        message: String,
    },
    /// An answer that is not JSON-RPC, or not of the expected shape.
    Malformed(String),
}

impl fmt::Display for RpcFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable(reason) => write!(f, "{UNREACHABLE_MARK}{reason})"),
            Self::Http(status) => write!(f, "HTTP {status}"),
            Self::Rpc { code, message } => write!(f, "JSON-RPC error {code}: {message}"),
            Self::Malformed(what) => write!(f, "unexpected answer: {what}"),
        }
    }
}

/// `url`'s `scheme://host:port`: what may be shown of a URL that may carry secrets.
pub fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// The chain of `e` without the URL (which may carry an API key in its path).
fn reqwest_reason(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

impl JsonRpc {
    /// An endpoint at `url`; each request times out after [`CHECK_TIMEOUT`].
    pub fn new(url: &Url) -> Self {
        let (url, auth) = split_userinfo(url);
        let http = reqwest::Client::builder()
            .timeout(CHECK_TIMEOUT)
            .connect_timeout(CHECK_TIMEOUT)
            .build()
            .unwrap_or_default();
        let shown = origin(&url);
        Self { http, url, auth, shown, fallbacks: Vec::new() }
    }

    /// The endpoint at `url`, failing over to `fallbacks` in turn when it does not answer
    /// (unreachable, HTTP 5xx or 429, not JSON-RPC), as the settlement client does.
    pub fn with_fallbacks<'a>(url: &Url, fallbacks: impl IntoIterator<Item = &'a Url>) -> Self {
        let mut rpc = Self::new(url);
        rpc.fallbacks = fallbacks.into_iter().map(Self::new).collect();
        rpc
    }

    /// The origin shown in findings.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Calls `method` with `params`; its `result`.
    ///
    /// # Errors
    /// No answer, an HTTP error, a JSON-RPC error or an answer without `result`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, RpcFailure> {
        let mut result = self.call_one(method, &params).await;
        for fallback in &self.fallbacks {
            match &result {
                Err(RpcFailure::Unreachable(_) | RpcFailure::Malformed(_)) => {}
                Err(RpcFailure::Http(status)) if *status >= 500 || *status == 429 => {}
                _ => break,
            }
            result = fallback.call_one(method, &params).await;
        }
        result
    }

    async fn call_one(&self, method: &str, params: &Value) -> Result<Value, RpcFailure> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let mut request = self.http.post(self.url.clone()).json(&body);
        if let Some(auth) = &self.auth {
            request = request.header(reqwest::header::AUTHORIZATION, auth.expose().as_str());
        }
        let response =
            request.send().await.map_err(|e| RpcFailure::Unreachable(reqwest_reason(e)))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| RpcFailure::Unreachable(reqwest_reason(e)))?;
        let answer: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(_) if !status.is_success() => return Err(RpcFailure::Http(status.as_u16())),
            Err(_) => return Err(RpcFailure::Malformed(format!("{method}: not JSON"))),
        };
        if let Some(error) = answer.get("error").filter(|e| !e.is_null()) {
            return Err(RpcFailure::Rpc {
                code: error["code"].as_i64().unwrap_or_default(),
                message: error["message"].as_str().unwrap_or_default().to_owned(),
            });
        }
        if !status.is_success() {
            return Err(RpcFailure::Http(status.as_u16()));
        }
        answer
            .get("result")
            .cloned()
            .ok_or_else(|| RpcFailure::Malformed(format!("{method}: no result")))
    }

    /// `method` answering a hex quantity (`eth_chainId`, `eth_getBalance`, …).
    async fn quantity(&self, method: &str, params: Value) -> Result<u128, RpcFailure> {
        let v = self.call(method, params).await?;
        v.as_str()
            .and_then(|s| u128::from_str_radix(s.trim_start_matches("0x"), 16).ok())
            .ok_or_else(|| RpcFailure::Malformed(format!("{method} returned {v}")))
    }

    /// `method` answering a felt (`starknet_chainId`, …).
    async fn felt(&self, method: &str, params: Value) -> Result<Felt, RpcFailure> {
        let v = self.call(method, params).await?;
        felt_of(&v).ok_or_else(|| RpcFailure::Malformed(format!("{method} returned {v}")))
    }
}

fn felt_of(v: &Value) -> Option<Felt> {
    v.as_str().and_then(|s| Felt::from_hex(s).ok())
}

/// A chain id felt shown as its short string when it reads as a name (`SN_SEPOLIA (0x534e…)`).
pub fn chain_name(id: &Felt) -> String {
    let bytes = id.to_bytes_be();
    let text: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    // A short string of a few name characters (`SN_MAIN`); a small number (Anvil's 31337 is
    // "zi") stays hex.
    let name = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-';
    if text.len() >= 4 && text.iter().all(name) {
        format!("{} ({id:#x})", String::from_utf8_lossy(&text))
    } else {
        format!("{id:#x}")
    }
}

/// A chain id given as `0x` hex or as a short string (`MADARA_DEVNET`, `SN_SEPOLIA`).
///
/// # Errors
/// Neither a hex felt nor an ASCII string of at most 31 characters.
pub fn parse_chain_id(s: &str) -> Result<Felt, String> {
    let s = s.trim();
    if s.starts_with("0x") || s.starts_with("0X") {
        return Felt::from_hex(s).map_err(|_| format!("{s:?} is not a hex felt"));
    }
    if s.is_empty() || s.len() > 31 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{s:?} is neither 0x hex nor a short string (printable ASCII, at most 31 characters)"
        ));
    }
    Ok(Felt::from_bytes_be_slice(s.as_bytes()))
}

// ---------------------------------------------------------------------------------------------
// node
// ---------------------------------------------------------------------------------------------

/// The Madara node: reachable, its spec version and chain id (equal to
/// `--preflight-chain-id` when given), and the SNOS RPC on the same chain.
#[derive(Debug)]
pub struct NodeCheck {
    /// `--madara-rpc-url`.
    pub node: JsonRpc,
    /// `--rpc-for-snos`, when it is another URL.
    pub snos: Option<JsonRpc>,
    /// `--preflight-chain-id`.
    pub expected_chain_id: Option<Felt>,
}

#[async_trait]
impl Check for NodeCheck {
    fn name(&self) -> &'static str {
        "node"
    }

    async fn run(&self) -> Finding {
        let shown = self.node.shown();
        let chain_id = match self.node.felt("starknet_chainId", json!([])).await {
            Ok(id) => id,
            Err(e) => {
                return Finding::fatal(
                    format!("the Madara node at {shown}: starknet_chainId: {e}"),
                    "start the node, or point --madara-rpc-url at its JSON-RPC endpoint",
                )
            }
        };
        if let Some(expected) = self.expected_chain_id {
            if expected != chain_id {
                return Finding::fatal(
                    format!(
                        "the Madara node at {shown} is chain {}, --preflight-chain-id is {}",
                        chain_name(&chain_id),
                        chain_name(&expected)
                    ),
                    "point --madara-rpc-url at the appchain's node (or correct \
                     --preflight-chain-id)",
                );
            }
        }
        let mut detail = format!("{shown} answers: chain {}", chain_name(&chain_id));
        let mut warning = None;
        match self.node.call("starknet_specVersion", json!([])).await {
            Ok(v) => detail.push_str(&format!(", spec {}", v.as_str().unwrap_or("?"))),
            Err(e) => {
                warning = Some(Finding::warning(
                    format!("{detail}, but starknet_specVersion failed: {e}"),
                    "use a node that serves the Starknet JSON-RPC spec 0.7 or later",
                ))
            }
        }
        if let Some(snos) = &self.snos {
            match snos.felt("starknet_chainId", json!([])).await {
                Ok(id) if id == chain_id => detail.push_str("; --rpc-for-snos on the same chain"),
                Ok(id) => {
                    return Finding::fatal(
                        format!(
                            "--rpc-for-snos ({}) is chain {}, the Madara node {}",
                            snos.shown(),
                            chain_name(&id),
                            chain_name(&chain_id)
                        ),
                        "point --rpc-for-snos at a node of the same chain as --madara-rpc-url",
                    )
                }
                Err(e) => {
                    return Finding::fatal(
                        format!("--rpc-for-snos ({}): starknet_chainId: {e}", snos.shown()),
                        "start the SNOS node, or point --rpc-for-snos at a reachable node",
                    )
                }
            }
        }
        warning.unwrap_or(Finding::ok(detail))
    }
}

// ---------------------------------------------------------------------------------------------
// settlement
// ---------------------------------------------------------------------------------------------

/// Where the operator's key is.
#[derive(Debug, Clone)]
enum SignerSource {
    Local(Secret<String>),
    Kms(String),
}

/// Settlement on Ethereum: the RPC's chain id, the core contract's code, the signer an
/// operator (when the contract exposes `isOperator(address)`), its balance (a warning when
/// below [`MIN_STATE_UPDATES_FUNDED`] updates at current fees).
#[derive(Debug)]
pub struct EthereumSettlementCheck {
    rpc: JsonRpc,
    core: alloy::primitives::Address,
    signer: SignerSource,
    operator_flag: alloy::primitives::Address,
    max_fee_wei: u128,
}

impl EthereumSettlementCheck {
    /// The check of `eth`.
    pub fn new(eth: &EthereumSettlementParams) -> Self {
        Self {
            rpc: JsonRpc::with_fallbacks(
                eth.rpc_url.expose(),
                eth.fallback_rpc_urls.iter().map(Secret::expose),
            ),
            core: eth.l1_core_contract_address,
            signer: match &eth.signer {
                EthereumSignerParams::PrivateKey(k) => SignerSource::Local(k.clone()),
                EthereumSignerParams::Kms { key_id } => SignerSource::Kms(key_id.clone()),
            },
            operator_flag: eth.starknet_operator_address,
            max_fee_wei: eth.l2_state_update_max_fee_wei,
        }
    }

    async fn signer(&self) -> Result<alloy::primitives::Address, Finding> {
        match &self.signer {
            SignerSource::Local(key) => OperatorSigner::local(key.expose(), None)
                .map(|s| s.address())
                .map_err(|e| Finding::fatal(e.to_string(), "correct --ethereum-private-key")),
            SignerSource::Kms(key_id) => KmsSigner::from_env(key_id.clone())
                .await
                .map(|s| OperatorSigner::Kms(s).address())
                .map_err(|e| {
                    Finding::fatal(
                        e.to_string(),
                        "check --ethereum-kms-key-id, the AWS credentials and region, and that \
                         the key is an ECC_SECG_P256K1 SIGN_VERIFY key",
                    )
                }),
        }
    }
}

/// `isOperator(address)`'s calldata.
fn is_operator_calldata(who: alloy::primitives::Address) -> String {
    let selector = &alloy::primitives::keccak256("isOperator(address)")[..4];
    format!("0x{}{}{}", hex::encode(selector), "0".repeat(24), hex::encode(who.as_slice()))
}

/// `wei` in ETH with 6 decimals.
fn eth(wei: u128) -> String {
    format!("{}.{:06} ETH", wei / 10u128.pow(18), (wei % 10u128.pow(18)) / 10u128.pow(12))
}

#[async_trait]
impl Check for EthereumSettlementCheck {
    fn name(&self) -> &'static str {
        "settlement"
    }

    async fn run(&self) -> Finding {
        let shown = self.rpc.shown();
        let chain = match self.rpc.quantity("eth_chainId", json!([])).await {
            Ok(id) => id,
            Err(e) => {
                return Finding::fatal(
                    format!("the Ethereum settlement RPC at {shown}: eth_chainId: {e}"),
                    "start the node, or point --ethereum-rpc-url at a reachable Ethereum RPC",
                )
            }
        };
        let core = self.core;
        let code = match self.rpc.call("eth_getCode", json!([core, "latest"])).await {
            Ok(code) => code.as_str().unwrap_or("0x").trim_start_matches("0x").len() / 2,
            Err(e) => {
                return Finding::fatal(
                    format!("chain {chain} at {shown}: eth_getCode({core}): {e}"),
                    "use an RPC that serves eth_getCode on the latest block",
                )
            }
        };
        if code == 0 {
            return Finding::fatal(
                format!(
                    "chain {chain} at {shown}: no contract code at --l1-core-contract-address \
                     {core}"
                ),
                "deploy the Starknet core contract, or correct --l1-core-contract-address (or \
                 --ethereum-rpc-url: is it the right chain?)",
            );
        }
        let signer = match self.signer().await {
            Ok(a) => a,
            Err(f) => return f,
        };
        let mut detail = format!(
            "chain {chain} at {shown}: core contract {core} ({code} bytes of code), signer \
             {signer}"
        );
        let call = json!([{"to": core, "data": is_operator_calldata(signer)}, "latest"]);
        match self.rpc.call("eth_call", call).await {
            Ok(v) => match v.as_str().map(|s| s.trim_start_matches("0x")) {
                Some(word) if word.len() == 64 && word.bytes().all(|b| b == b'0') => {
                    return Finding::fatal(
                        format!("{detail} is not an operator of the core contract (isOperator is false)"),
                        "register the signer as an operator of the core contract \
                         (registerOperator, by its governor), or sign with the operator's key",
                    )
                }
                Some(word) if word.len() == 64 => detail.push_str(" (an operator)"),
                _ => detail.push_str(" (operator not checked: the contract has no isOperator)"),
            },
            Err(_) => detail.push_str(" (operator not checked: the contract has no isOperator)"),
        }
        let mut warnings = Vec::new();
        let mut fixes = Vec::new();
        if self.operator_flag != signer {
            warnings.push(format!(
                "--starknet-operator-address {} is not the signer {signer}, which sends the \
                 state updates",
                self.operator_flag
            ));
            fixes.push(format!("set --starknet-operator-address to {signer}"));
        }
        let balance = match self.rpc.quantity("eth_getBalance", json!([signer, "latest"])).await {
            Ok(b) => b,
            Err(e) => {
                return Finding::fatal(
                    format!("{detail}; eth_getBalance: {e}"),
                    "use an RPC that serves eth_getBalance",
                )
            }
        };
        let gas_price = self.rpc.quantity("eth_gasPrice", json!([])).await.unwrap_or(0);
        // Before Cancun (or on a node without it) there is no blob fee to read: count none.
        let blob_base_fee = self.rpc.quantity("eth_blobBaseFee", json!([])).await.unwrap_or(0);
        let per_update = (gas_price.saturating_mul(STATE_UPDATE_GAS_ESTIMATE))
            .saturating_add(blob_base_fee.saturating_mul(BLOB_GAS_PER_BLOB * MAX_BLOBS))
            .min(self.max_fee_wei);
        let needed = per_update.saturating_mul(u128::from(MIN_STATE_UPDATES_FUNDED));
        detail.push_str(&format!(", balance {}", eth(balance)));
        if balance == 0 || balance < needed {
            warnings.push(format!(
                "the signer's balance {} is below {MIN_STATE_UPDATES_FUNDED} state updates' \
                 worth ({} at current fees)",
                eth(balance),
                eth(needed)
            ));
            fixes.push(format!("fund {signer} on chain {chain}"));
        }
        if warnings.is_empty() {
            Finding::ok(detail)
        } else {
            Finding::warning(format!("{detail}; {}", warnings.join("; ")), fixes.join("; "))
        }
    }
}

/// Settlement on Starknet (L3): chain id, a contract at the core address, the account
/// deployed, an operator of the core contract, its STRK balance (a warning when low).
#[derive(Debug)]
pub struct StarknetSettlementCheck {
    rpc: JsonRpc,
    core: Felt,
    account: Felt,
}

impl StarknetSettlementCheck {
    /// The check of `sn`.
    pub fn new(sn: &StarknetSettlementParams) -> Self {
        Self {
            rpc: JsonRpc::with_fallbacks(
                sn.rpc_url.expose(),
                sn.fallback_rpc_urls.iter().map(Secret::expose),
            ),
            core: sn.cairo_core_contract_address,
            account: sn.account_address,
        }
    }

    async fn class_at(&self, address: Felt) -> Result<Option<Felt>, RpcFailure> {
        let params = json!({"block_id": "latest", "contract_address": format!("{address:#x}")});
        match self.rpc.felt("starknet_getClassHashAt", params).await {
            Ok(class) => Ok(Some(class)),
            Err(RpcFailure::Rpc { code: CONTRACT_NOT_FOUND, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn call(&self, to: Felt, function: &str, calldata: &[Felt]) -> Result<Value, RpcFailure> {
        let selector = starknet::core::utils::get_selector_from_name(function)
            .map_err(|e| RpcFailure::Malformed(e.to_string()))?;
        let request = json!({
            "request": {
                "contract_address": format!("{to:#x}"),
                "entry_point_selector": format!("{selector:#x}"),
                "calldata": calldata.iter().map(|f| format!("{f:#x}")).collect::<Vec<_>>(),
            },
            "block_id": "latest",
        });
        self.rpc.call("starknet_call", request).await
    }
}

#[async_trait]
impl Check for StarknetSettlementCheck {
    fn name(&self) -> &'static str {
        "settlement"
    }

    async fn run(&self) -> Finding {
        let shown = self.rpc.shown();
        let chain = match self.rpc.felt("starknet_chainId", json!([])).await {
            Ok(id) => chain_name(&id),
            Err(e) => {
                return Finding::fatal(
                    format!("the Starknet settlement RPC at {shown}: starknet_chainId: {e}"),
                    "start the node, or point --starknet-rpc-url at a reachable Starknet RPC",
                )
            }
        };
        let (core, account) = (self.core, self.account);
        let core_class = match self.class_at(core).await {
            Ok(Some(class)) => class,
            Ok(None) => {
                return Finding::fatal(
                    format!(
                        "chain {chain} at {shown}: no contract at \
                         --starknet-cairo-core-contract-address {core:#x}"
                    ),
                    "declare and deploy the core contract (contracts/cairo), or correct the \
                     address (or --starknet-rpc-url: is it the right chain?)",
                )
            }
            Err(e) => {
                return Finding::fatal(
                    format!("chain {chain} at {shown}: starknet_getClassHashAt: {e}"),
                    "use an RPC that serves starknet_getClassHashAt on the latest block",
                )
            }
        };
        match self.class_at(account).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Finding::fatal(
                    format!(
                        "chain {chain} at {shown}: the account --starknet-account-address \
                         {account:#x} is not deployed"
                    ),
                    "deploy the account (it signs the state updates), or correct the address",
                )
            }
            Err(e) => {
                return Finding::fatal(
                    format!("chain {chain} at {shown}: starknet_getClassHashAt: {e}"),
                    "use an RPC that serves starknet_getClassHashAt on the latest block",
                )
            }
        }
        let mut detail = format!(
            "chain {chain} at {shown}: core contract {core:#x} (class {core_class:#x}), account \
             {account:#x}"
        );
        match self.call(core, "is_operator", &[account]).await {
            Ok(v) if v.get(0).and_then(felt_of) == Some(Felt::ZERO) => {
                return Finding::fatal(
                    format!(
                        "{detail} is not an operator of the core contract (is_operator is false)"
                    ),
                    "register the account with register_operator (by the contract's owner), or \
                     use the operator's account",
                )
            }
            Ok(v) if v.get(0).and_then(felt_of) == Some(Felt::ONE) => {
                detail.push_str(" (an operator)")
            }
            _ => detail.push_str(" (operator not checked: the contract has no is_operator)"),
        }
        let strk = Felt::from_hex(STRK_TOKEN).unwrap_or_default();
        let balance = match self.call(strk, "balance_of", &[account]).await {
            Ok(v) => {
                // A u256 as (low, high) felts of 128 bits each.
                let word = |i: usize| {
                    let bytes = v.get(i).and_then(felt_of).unwrap_or_default().to_bytes_be();
                    let mut low = [0u8; 16];
                    low.copy_from_slice(&bytes[16..]);
                    if bytes[..16].iter().any(|b| *b != 0) {
                        u128::MAX
                    } else {
                        u128::from_be_bytes(low)
                    }
                };
                if word(1) > 0 {
                    u128::MAX
                } else {
                    word(0)
                }
            }
            Err(e) => {
                return Finding::warning(
                    format!("{detail}; the STRK balance could not be read: {e}"),
                    "check that the settlement chain has the STRK token at its usual address",
                )
            }
        };
        let needed = STARKNET_STATE_UPDATE_FEE_ESTIMATE_FRI * u128::from(MIN_STATE_UPDATES_FUNDED);
        let strk_text = |fri: u128| {
            format!("{}.{:06} STRK", fri / 10u128.pow(18), (fri % 10u128.pow(18)) / 10u128.pow(12))
        };
        detail.push_str(&format!(", balance {}", strk_text(balance)));
        if balance < needed {
            return Finding::warning(
                format!(
                    "{detail}; below {MIN_STATE_UPDATES_FUNDED} state updates' worth ({}, at a \
                     fixed estimate of 1 STRK each)",
                    strk_text(needed)
                ),
                format!("fund {account:#x} with STRK on {chain}"),
            );
        }
        Finding::ok(detail)
    }
}

// ---------------------------------------------------------------------------------------------
// prover
// ---------------------------------------------------------------------------------------------

/// The prover: reachable and its credentials accepted. Atlantic: `GET /is-alive`, then an
/// authenticated `GET /atlantic-query/<unknown id>` that must answer 404 (not 401/403); SHARP:
/// `is_alive`, then `get_status` of an unknown key; the mock prover: nothing to reach (its
/// mock verifier must have code). The fact registry the proofs are checked in must have code.
#[derive(Debug)]
pub struct ProverCheck {
    prover: ProverParams,
    settlement_rpc: Option<JsonRpc>,
}

impl ProverCheck {
    /// The check of `prover` (`settlement` for the mock prover's verifier).
    pub fn new(prover: &ProverParams, settlement: &SettlementParams) -> Self {
        let settlement_rpc = match settlement {
            SettlementParams::Ethereum(eth) => Some(JsonRpc::new(eth.rpc_url.expose())),
            SettlementParams::Starknet(_) => None,
        };
        Self { prover: prover.clone(), settlement_rpc }
    }
}

fn atlantic_client(a: &AtlanticParams) -> Result<AtlanticClient, ProverError> {
    AtlanticClient::new(
        a.service_url.clone(),
        a.artifacts_base_url.clone(),
        a.api_key.clone(),
        RetryPolicy::none(),
        CHECK_TIMEOUT,
        a.mock_fact_hash,
    )
}

fn sharp_client(s: &SharpParams) -> Result<SharpProverService, ProverError> {
    let config = SharpConfig {
        url: s.url.clone(),
        customer_id: s.customer_id.clone(),
        user_crt_pem: s.certificates.user_crt.clone(),
        user_key_pem: s.certificates.user_key.clone(),
        server_crt_pem: s.certificates.server_crt.clone(),
        retry: RetryPolicy::none(),
        request_timeout: CHECK_TIMEOUT,
    };
    SharpProverService::new(config, Arc::new(AlwaysValid))
}

/// Code at `address` on `rpc`, as a finding about `what` (`flag` names the address).
async fn contract_has_code(
    rpc: &JsonRpc,
    address: alloy::primitives::Address,
    what: &str,
    flag: &str,
) -> Result<(), Finding> {
    match rpc.call("eth_getCode", json!([address, "latest"])).await {
        Ok(code) if code.as_str().unwrap_or("0x").trim_start_matches("0x").is_empty() => {
            Err(Finding::fatal(
                format!("no contract code for the {what} at {flag} {address} ({})", rpc.shown()),
                format!("deploy the {what}, or correct {flag}"),
            ))
        }
        Ok(_) => Ok(()),
        Err(e) => Err(Finding::fatal(
            format!("the {what}'s RPC at {}: {e}", rpc.shown()),
            format!("start that node, or correct the RPC URL used with {flag}"),
        )),
    }
}

/// A 401 or 403 from the prover.
fn refused(e: &ProverError) -> Option<u16> {
    match e {
        ProverError::Http { status: status @ (401 | 403), .. } => Some(*status),
        _ => None,
    }
}

impl ProverCheck {
    async fn atlantic(&self, a: &AtlanticParams) -> Finding {
        if a.mock_server {
            return Finding::ok(
                "the embedded mock Atlantic server (--mock-atlantic-server), started with the \
                 workers",
            );
        }
        let shown = origin(&a.service_url);
        let client = match atlantic_client(a) {
            Ok(c) => c,
            Err(e) => {
                return Finding::fatal(format!("Atlantic client: {e}"), "check the Atlantic flags")
            }
        };
        if let Err(e) = client.is_alive().await {
            return Finding::fatal(
                format!("Atlantic at {shown}: {e}"),
                "check --atlantic-service-url and that the service is up",
            );
        }
        let probe = format!("preflight-{}", uuid::Uuid::new_v4());
        let auth =
            match client.get_query(&probe).await {
                Err(ProverError::NotFound { .. }) | Ok(_) => None,
                Err(e) => match refused(&e) {
                    Some(status) => return Finding::fatal(
                        format!("Atlantic at {shown} refused the API key (HTTP {status})"),
                        "set --atlantic-api-key (MADARA_ORCHESTRATOR_ATLANTIC_API_KEY) to a valid \
                         key for this service",
                    ),
                    None if matches!(e, ProverError::InsufficientCredits { .. }) => {
                        return Finding::warning(
                            format!("Atlantic at {shown}: {e}"),
                            "top up the API key's credits: proving jobs fail until then",
                        )
                    }
                    None => Some(e),
                },
            };
        if let Some(e) = auth {
            return Finding::warning(
                format!("Atlantic at {shown} is alive, but the authenticated probe failed: {e}"),
                "check the API key and the service's status",
            );
        }
        let mut detail = format!("Atlantic at {shown} is alive and accepts the API key");
        if let (false, ProofSettlementLayer::Ethereum, Some(rpc)) =
            (a.mock_fact_hash, a.settlement_layer, &a.rpc_node_url)
        {
            let bytes = a.verifier_contract_address.to_bytes_be();
            let verifier = alloy::primitives::Address::from_slice(&bytes[12..]);
            if let Err(f) = contract_has_code(
                &JsonRpc::new(rpc),
                verifier,
                "fact registry",
                "--atlantic-verifier-contract-address",
            )
            .await
            {
                return f;
            }
            detail.push_str(&format!("; fact registry {verifier} has code"));
        }
        Finding::ok(detail)
    }

    async fn sharp(&self, s: &SharpParams) -> Finding {
        let shown = origin(&s.url);
        let client = match sharp_client(s) {
            Ok(c) => c,
            Err(e) => {
                return Finding::fatal(
                    format!("SHARP client: {e}"),
                    "check the --sharp-*-file certificates and key (PEM, PKCS#8)",
                )
            }
        };
        if let Err(e) = client.is_alive().await {
            return Finding::fatal(
                format!("SHARP at {shown}: {e}"),
                "check --sharp-url, the client certificate and that the gateway is up",
            );
        }
        if let Err(e) = client.get_status(&uuid::Uuid::new_v4().to_string()).await {
            if let Some(status) = refused(&e) {
                return Finding::fatal(
                    format!("SHARP at {shown} refused the request (HTTP {status})"),
                    "check --sharp-customer-id and the client certificate",
                );
            }
        }
        if let Err(f) = contract_has_code(
            &JsonRpc::new(&s.rpc_node_url),
            s.gps_verifier_contract_address,
            "GPS verifier",
            "--gps-verifier-contract-address",
        )
        .await
        {
            return f;
        }
        Finding::ok(format!(
            "SHARP at {shown} is alive; GPS verifier {} has code",
            s.gps_verifier_contract_address
        ))
    }
}

#[async_trait]
impl Check for ProverCheck {
    fn name(&self) -> &'static str {
        "prover"
    }

    async fn run(&self) -> Finding {
        match &self.prover {
            ProverParams::Atlantic(a) => self.atlantic(a).await,
            ProverParams::Sharp(s) => self.sharp(s).await,
            ProverParams::Mock(m) => match (m.verifier_address, &self.settlement_rpc) {
                (Some(verifier), Some(rpc)) => {
                    match contract_has_code(
                        rpc,
                        verifier,
                        "mock verifier",
                        "--mock-verifier-address",
                    )
                    .await
                    {
                        Ok(()) => Finding::ok(format!(
                            "mock prover (nothing to reach); mock verifier {verifier} has code"
                        )),
                        Err(f) => f,
                    }
                }
                _ => Finding::ok("mock prover (nothing to reach)"),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// DA
// ---------------------------------------------------------------------------------------------

/// The DA RPC: reachable, and on the settlement layer's chain when both are on the same kind
/// of chain (the blobs travel in the settlement transaction; on Starknet, in its calldata).
#[derive(Debug)]
pub struct DaCheck {
    da: JsonRpc,
    ethereum: bool,
    settlement: Option<JsonRpc>,
}

impl DaCheck {
    /// The check of `da` (compared with `settlement` when it is the same kind of chain).
    pub fn new(da: &DaParams, settlement: &SettlementParams) -> Self {
        match (da, settlement) {
            (DaParams::Ethereum { rpc_url }, SettlementParams::Ethereum(eth)) => Self {
                da: JsonRpc::new(rpc_url.expose()),
                ethereum: true,
                settlement: Some(JsonRpc::new(eth.rpc_url.expose())),
            },
            (DaParams::Ethereum { rpc_url }, _) => {
                Self { da: JsonRpc::new(rpc_url.expose()), ethereum: true, settlement: None }
            }
            (DaParams::Starknet { rpc_url }, SettlementParams::Starknet(sn)) => Self {
                da: JsonRpc::new(rpc_url.expose()),
                ethereum: false,
                settlement: Some(JsonRpc::new(sn.rpc_url.expose())),
            },
            (DaParams::Starknet { rpc_url }, _) => {
                Self { da: JsonRpc::new(rpc_url.expose()), ethereum: false, settlement: None }
            }
        }
    }

    async fn chain(&self, rpc: &JsonRpc) -> Result<String, RpcFailure> {
        if self.ethereum {
            rpc.quantity("eth_chainId", json!([])).await.map(|id| id.to_string())
        } else {
            rpc.felt("starknet_chainId", json!([])).await.map(|id| chain_name(&id))
        }
    }
}

#[async_trait]
impl Check for DaCheck {
    fn name(&self) -> &'static str {
        "da"
    }

    async fn run(&self) -> Finding {
        let (flag, kind) = if self.ethereum {
            ("--ethereum-da-rpc-url", "Ethereum")
        } else {
            ("--starknet-da-rpc-url", "Starknet")
        };
        let shown = self.da.shown();
        let chain = match self.chain(&self.da).await {
            Ok(c) => c,
            Err(e) => {
                return Finding::fatal(
                    format!("the {kind} DA RPC at {shown}: {e}"),
                    format!("start the node, or point {flag} at a reachable {kind} RPC"),
                )
            }
        };
        if let Some(settlement) = &self.settlement {
            if let Ok(settled_on) = self.chain(settlement).await {
                if settled_on != chain {
                    return Finding::warning(
                        format!(
                            "the DA RPC at {shown} is chain {chain}, the settlement RPC chain \
                             {settled_on}: the data is published with the settlement \
                             transaction"
                        ),
                        format!("point {flag} at the settlement layer's chain"),
                    );
                }
            }
        }
        Finding::ok(format!("{kind} DA RPC at {shown}: chain {chain}"))
    }
}

// ---------------------------------------------------------------------------------------------
// infrastructure
// ---------------------------------------------------------------------------------------------

/// Storage: writes, reads back and deletes a probe object.
#[derive(Debug)]
pub struct StorageCheck {
    /// The artifact storage.
    pub storage: Arc<dyn StorageClient>,
}

#[async_trait]
impl Check for StorageCheck {
    fn name(&self) -> &'static str {
        "storage"
    }

    async fn run(&self) -> Finding {
        const FIX: &str = "make the storage writable: the --data-dir disk (space, permissions), \
                           or the S3 bucket (`orchestrator setup --aws --aws-s3`) and its IAM \
                           policy";
        let key = format!("preflight/probe-{}", uuid::Uuid::new_v4());
        let data = Bytes::from(format!("orchestrator preflight {key}"));
        if let Err(e) = self.storage.put_data(data.clone(), &key).await {
            return Finding::fatal(format!("cannot write {key}: {e}"), FIX);
        }
        match self.storage.get_data(&key).await {
            Ok(read) if read == data => {}
            Ok(read) => {
                return Finding::fatal(
                    format!("{key} read back {} bytes, not the {} written", read.len(), data.len()),
                    FIX,
                )
            }
            Err(e) => return Finding::fatal(format!("cannot read {key} back: {e}"), FIX),
        }
        if let Err(e) = self.storage.delete_data(&key).await {
            return Finding::fatal(format!("cannot delete {key}: {e}"), FIX);
        }
        Finding::ok("a probe object was written, read back and deleted")
    }
}

/// Queues: every queue of the layer exists and answers.
#[derive(Debug)]
pub struct QueueCheck {
    /// The queues.
    pub queue: Arc<dyn QueueClient>,
}

#[async_trait]
impl Check for QueueCheck {
    fn name(&self) -> &'static str {
        "queue"
    }

    async fn run(&self) -> Finding {
        match self.queue.health_check().await {
            Ok(()) => Finding::ok("the queues exist and answer"),
            Err(e) => Finding::fatal(
                e.to_string(),
                "create the queues (`orchestrator setup`, with --aws --aws-sqs for SQS) and \
                 check the credentials",
            ),
        }
    }
}

/// Where the database check gets its client.
#[derive(Debug)]
pub enum DatabaseSource {
    /// Already open (the embedded SQLite database).
    Open(Arc<dyn DatabaseClient>),
    /// Opened by the check (`--postgres`, `--mongodb`), which applies the schema as `run`
    /// does.
    Backend(DatabaseBackend),
}

/// The database: reachable, the schema current (every table, the newest one included).
#[derive(Debug)]
pub struct DatabaseCheck {
    /// The database.
    pub database: DatabaseSource,
}

#[async_trait]
impl Check for DatabaseCheck {
    fn name(&self) -> &'static str {
        "database"
    }

    async fn run(&self) -> Finding {
        const FIX: &str = "start the database server, or correct --postgres-url / \
                           --mongodb-connection-url (host, port, credentials)";
        let database = match &self.database {
            DatabaseSource::Open(db) => db.clone(),
            DatabaseSource::Backend(backend) => match database_backends::open(backend).await {
                Ok(Some(db)) => db.database,
                Ok(None) => return Finding::ok("embedded SQLite database"),
                Err(e) => return Finding::fatal(e.to_string(), FIX),
            },
        };
        if let Err(e) = database.health_check().await {
            return Finding::fatal(e.to_string(), FIX);
        }
        // The newest table: present only when the schema is current.
        match database.get_trigger_pauses().await {
            Ok(_) => Finding::ok("reachable, schema current"),
            Err(e) => Finding::fatal(
                format!("the schema is not current: {e}"),
                "let `run` (or `orchestrator setup`) create the missing tables with a user \
                 allowed to",
            ),
        }
    }
}

/// A check whose dependency could not even be opened: answers its finding.
#[derive(Debug)]
struct Failed {
    name: &'static str,
    finding: Finding,
}

#[async_trait]
impl Check for Failed {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn run(&self) -> Finding {
        self.finding.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// `/health/ready` probes
// ---------------------------------------------------------------------------------------------

/// A dependency reachable when one JSON-RPC method answers.
#[derive(Debug)]
pub struct RpcProbe {
    name: &'static str,
    rpc: JsonRpc,
    method: &'static str,
}

impl RpcProbe {
    /// `name` is reachable when `method` (without parameters) answers at `url`.
    pub fn new(name: &'static str, url: &Url, method: &'static str) -> Self {
        Self { name, rpc: JsonRpc::new(url), method }
    }
}

#[async_trait]
impl DependencyProbe for RpcProbe {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn probe(&self) -> Result<(), String> {
        self.rpc
            .call(self.method, json!([]))
            .await
            .map(drop)
            .map_err(|e| format!("{} at {}: {e}", self.method, self.rpc.shown()))
    }
}

/// Atlantic is reachable when `GET /is-alive` answers.
#[derive(Debug)]
struct AtlanticProbe(AtlanticClient);

#[async_trait]
impl DependencyProbe for AtlanticProbe {
    fn name(&self) -> &'static str {
        "prover"
    }

    async fn probe(&self) -> Result<(), String> {
        self.0.is_alive().await.map_err(|e| e.to_string())
    }
}

/// SHARP is reachable when `is_alive` answers.
#[derive(Debug)]
struct SharpProbe(Arc<SharpProverService>);

#[async_trait]
impl DependencyProbe for SharpProbe {
    fn name(&self) -> &'static str {
        "prover"
    }

    async fn probe(&self) -> Result<(), String> {
        self.0.is_alive().await.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_dependency_that_does_not_answer_is_waited_for() {
        let refused = RpcFailure::Unreachable("connection refused".into());
        let down = Finding::fatal(format!("the Madara node: starknet_chainId: {refused}"), "fix");
        assert!(down.is_unreachable(), "{down:?}");
        let slow = Finding::fatal(format!("{NO_ANSWER_MARK}10s"), "fix");
        assert!(slow.is_unreachable());
        let prover =
            ProverError::Unavailable { operation: "is alive".into(), reason: "refused".into() };
        assert!(Finding::fatal(format!("Atlantic at x: {prover}"), "fix").is_unreachable());
        let wrong =
            Finding::fatal("the Madara node is chain SN_MAIN, --preflight-chain-id is X", "fix");
        assert!(!wrong.is_unreachable());
        let warning = Finding::warning(format!("balance low; {refused}"), "fix");
        assert!(!warning.is_unreachable(), "only fatal findings are waited for");
    }

    #[derive(Debug)]
    struct Fixed(&'static str, Finding, Duration);

    #[async_trait]
    impl Check for Fixed {
        fn name(&self) -> &'static str {
            self.0
        }

        async fn run(&self) -> Finding {
            tokio::time::sleep(self.2).await;
            self.1.clone()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn checks_run_concurrently_fatal_last_and_a_slow_one_times_out() {
        let checks: Vec<Box<dyn Check>> = vec![
            Box::new(Fixed("a", Finding::fatal("broken", "repair it"), Duration::from_secs(1))),
            Box::new(Fixed("b", Finding::ok("fine"), Duration::from_secs(9))),
            Box::new(Fixed("c", Finding::warning("low", "top up"), Duration::from_secs(1))),
            Box::new(Fixed("d", Finding::ok("never"), Duration::from_secs(60))),
        ];
        let started = tokio::time::Instant::now();
        let report = run_checks(checks, Duration::from_secs(10)).await;
        // Concurrent: the slowest bounds the time, not the sum.
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        assert_eq!(
            report.lines(),
            vec![
                "preflight: ok b: fine",
                "preflight: warning c: low — fix: top up",
                "preflight: fatal a: broken — fix: repair it",
                "preflight: fatal d: no answer within 10s — fix: check that the dependency is \
                 up and reachable from this host (a firewall, a wrong port?)",
            ]
        );
        assert_eq!(report.fatal(), vec!["a", "d"]);
        let mut out = Vec::new();
        let err = report.print(&mut out).unwrap_err().to_string();
        assert!(
            err.contains("preflight failed: a, d") && err.contains("--skip-preflight"),
            "{err}"
        );
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 4);
    }

    /// Answers only between `up.0` and `up.1` after `start`; counts its runs.
    #[derive(Debug)]
    struct UpBetween {
        name: &'static str,
        start: tokio::time::Instant,
        up: (Duration, Duration),
        took: Duration,
        runs: Arc<std::sync::atomic::AtomicUsize>,
    }

    #[async_trait]
    impl Check for UpBetween {
        fn name(&self) -> &'static str {
            self.name
        }

        async fn run(&self) -> Finding {
            self.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let at = self.start.elapsed();
            tokio::time::sleep(self.took).await;
            if at >= self.up.0 && at < self.up.1 {
                Finding::ok("answered")
            } else {
                let refused = RpcFailure::Unreachable("connection refused".into());
                Finding::fatal(format!("the Madara node: starknet_chainId: {refused}"), "fix")
            }
        }
    }

    /// The node answers only for 3 s, 12 s in, between two outages; the prover check takes 9 s
    /// and passes at once. Waiting on every check would run rounds at 0, 11, 22 s and miss the
    /// node's window; only the node is checked again, every 2 s, so it is caught.
    #[tokio::test(start_paused = true)]
    async fn only_checks_without_an_answer_run_again_so_a_short_window_is_caught() {
        let start = tokio::time::Instant::now();
        let node_runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let prover_runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let make = || {
            let checks: Vec<Box<dyn Check>> = vec![
                Box::new(UpBetween {
                    name: "node",
                    start,
                    up: (Duration::from_secs(12), Duration::from_secs(15)),
                    took: Duration::from_millis(10),
                    runs: node_runs.clone(),
                }),
                Box::new(UpBetween {
                    name: "prover",
                    start,
                    up: (Duration::ZERO, Duration::from_secs(3_600)),
                    took: Duration::from_secs(9),
                    runs: prover_runs.clone(),
                }),
            ];
            std::future::ready(checks)
        };
        let report = wait_for_answers(make, Duration::from_secs(30), Duration::from_secs(2)).await;
        assert_eq!(
            report.lines(),
            ["preflight: ok node: answered", "preflight: ok prover: answered"]
        );
        assert!(report.fatal().is_empty());
        assert_eq!(prover_runs.load(std::sync::atomic::Ordering::SeqCst), 1, "answered once");
        // Rounds at 0 s (both), then the node alone at about 11 s and 13 s.
        assert_eq!(node_runs.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert!(start.elapsed() < Duration::from_secs(15), "{:?}", start.elapsed());
    }

    /// A dependency that never answers is fatal once the wait is over, listed after the checks
    /// that passed; a wrong answer is fatal at once, without waiting.
    #[rstest::rstest]
    #[case::no_answer_until_the_wait_is_over(false)]
    #[case::a_wrong_answer_at_once(true)]
    #[tokio::test(start_paused = true)]
    async fn the_wait_ends_at_its_bound_or_at_a_wrong_answer(#[case] wrong: bool) {
        let start = tokio::time::Instant::now();
        let make = || {
            let down = if wrong {
                Finding::fatal("the Madara node is chain SN_MAIN, --preflight-chain-id is X", "fix")
            } else {
                let refused = RpcFailure::Unreachable("connection refused".into());
                Finding::fatal(format!("the Madara node: starknet_chainId: {refused}"), "fix")
            };
            let checks: Vec<Box<dyn Check>> = vec![
                Box::new(Fixed("node", down, Duration::from_millis(10))),
                Box::new(Fixed("queue", Finding::ok("fine"), Duration::from_millis(10))),
            ];
            std::future::ready(checks)
        };
        let report = wait_for_answers(make, Duration::from_secs(30), Duration::from_secs(2)).await;
        assert_eq!(report.fatal(), ["node"]);
        assert_eq!(report.lines()[0], "preflight: ok queue: fine");
        if wrong {
            assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
        } else {
            assert!(start.elapsed() >= Duration::from_secs(30), "{:?}", start.elapsed());
        }
    }

    #[test]
    fn a_line_stays_one_line() {
        let o = Outcome { check: "x", finding: Finding::fatal("two\nlines", "and\n  more") };
        assert_eq!(o.to_string(), "preflight: fatal x: two lines — fix: and more");
    }

    #[test]
    fn chain_ids_parse_as_hex_or_short_string_and_show_both() {
        let devnet = parse_chain_id("MADARA_DEVNET").unwrap();
        assert_eq!(devnet, Felt::from_hex("0x4d41444152415f4445564e4554").unwrap());
        assert_eq!(
            parse_chain_id("0x534e5f5345504f4c4941").unwrap(),
            parse_chain_id("SN_SEPOLIA").unwrap()
        );
        assert_eq!(chain_name(&devnet), "MADARA_DEVNET (0x4d41444152415f4445564e4554)");
        assert_eq!(chain_name(&Felt::from(31337u64)), "0x7a69");
        assert!(parse_chain_id("has space").is_err());
        assert!(parse_chain_id(&"A".repeat(32)).is_err());
        assert!(parse_chain_id("0xzz").is_err());
    }

    #[test]
    fn is_operator_calldata_is_the_abi_encoding() {
        let who: alloy::primitives::Address =
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".parse().unwrap();
        // keccak256("isOperator(address)") starts with 6d70f7ae.
        assert_eq!(
            is_operator_calldata(who),
            "0x6d70f7ae000000000000000000000000f39fd6e51aad88f6f4ce6ab8827279cfffb92266"
        );
    }

    #[test]
    fn urls_show_their_origin_only() {
        let url: Url = "https://user:pw@rpc.example:8443/v3/SECRETKEY?x=1".parse().unwrap();
        assert_eq!(origin(&url), "https://rpc.example:8443");
        assert_eq!(JsonRpc::new(&url).shown(), "https://rpc.example:8443");
        assert_eq!(eth(1_500_000_000_000_000_000), "1.500000 ETH");
        assert_eq!(eth(1_000_000_000_000), "0.000001 ETH");
    }
}
