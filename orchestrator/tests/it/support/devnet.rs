//! A starknet-devnet process for tests: spawned on a free 127.0.0.1 port with `--seed 0
//! --state-archive-capacity full` (historical state reads work), killed when dropped.
//!
//! The binary comes from `ORCH_DEVNET_BIN` or the tool cache that `scripts/devnet.sh install`
//! fills (`$ORCH_CACHE/tools/devnet/bin/starknet-devnet`, `ORCH_CACHE` defaulting to
//! `~/.cache/orchestrator`). A missing binary fails the test with the command to run, unless
//! `ORCH_SKIP_DEVNET_TESTS=1`, in which case [`Devnet::start`] prints
//! "skipped: no starknet-devnet" and answers `None`.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use url::Url;

/// A running starknet-devnet.
pub struct Devnet {
    child: Child,
    /// Its JSON-RPC URL.
    pub url: Url,
    http: reqwest::Client,
}

/// Where the devnet binary is expected.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("ORCH_DEVNET_BIN") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("ORCH_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/orchestrator")
    });
    cache.join("tools/devnet/bin/starknet-devnet")
}

fn free_port() -> u16 {
    // Bind port 0, read the port, release it: devnet binds it right after (a tiny race).
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local addr")
        .port()
}

impl Devnet {
    /// Starts a devnet and waits until it answers; `None` (after printing why) when devnet
    /// tests are skipped.
    ///
    /// # Panics
    /// When the binary is missing (and tests are not skipped) or devnet does not start.
    pub async fn start() -> Option<Self> {
        Self::start_with(&[]).await
    }

    /// [`Devnet::start`] with extra command-line arguments (e.g. `--start-time`).
    pub async fn start_with(extra: &[&str]) -> Option<Self> {
        let bin = binary();
        if std::env::var("ORCH_SKIP_DEVNET_TESTS").is_ok_and(|v| v == "1") {
            eprintln!("skipped: no starknet-devnet (ORCH_SKIP_DEVNET_TESTS=1)");
            return None;
        }
        assert!(
            bin.exists(),
            "starknet-devnet not found at {}: run scripts/devnet.sh install (or set ORCH_SKIP_DEVNET_TESTS=1)",
            bin.display()
        );
        let port = free_port();
        let child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--seed", "0"])
            .args(["--state-archive-capacity", "full"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let url: Url = format!("http://127.0.0.1:{port}/").parse().expect("url");
        let devnet = Self { child, url, http: reqwest::Client::new() };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if devnet.try_rpc("starknet_blockNumber", json!([])).await.is_ok() {
                return Some(devnet);
            }
            assert!(
                Instant::now() < deadline,
                "starknet-devnet did not answer on port {port} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn try_rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let answer: Value = self
            .http
            .post(self.url.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        match answer.get("result") {
            Some(r) => Ok(r.clone()),
            None => Err(answer.to_string()),
        }
    }

    /// A JSON-RPC call that must succeed.
    pub async fn rpc(&self, method: &str, params: Value) -> Value {
        self.try_rpc(method, params).await.unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// Mints `amount` FRI to `address`: one invoke transaction, hence one new block.
    pub async fn mint(&self, address: &str, amount: u128) -> Value {
        self.rpc("devnet_mint", json!({"address": address, "amount": amount, "unit": "FRI"})).await
    }

    /// Closes an empty block.
    pub async fn create_block(&self) -> Value {
        self.rpc("devnet_createBlock", json!({})).await
    }

    /// The latest block number.
    pub async fn block_number(&self) -> u64 {
        self.rpc("starknet_blockNumber", json!([])).await.as_u64().expect("block number")
    }

    /// A JSON-RPC call that may fail: the result, or the error answer (or transport error) as
    /// text.
    pub async fn try_call(&self, method: &str, params: Value) -> Result<Value, String> {
        self.try_rpc(method, params).await
    }

    /// `starknet_getBlockWithTxHashes` of closed block `n`.
    pub async fn block(&self, n: u64) -> Value {
        self.rpc("starknet_getBlockWithTxHashes", json!([{"block_number": n}])).await
    }

    /// The hash of closed block `n`.
    pub async fn block_hash(&self, n: u64) -> starknet::core::types::Felt {
        let block = self.block(n).await;
        block["block_hash"]
            .as_str()
            .and_then(|h| starknet::core::types::Felt::from_hex(h).ok())
            .unwrap_or_else(|| panic!("block {n} without a hash: {block}"))
    }

    /// `starknet_getStateUpdate` of closed block `n` (JSON). By name: devnet 0.10 refuses a
    /// by-position call without the optional `contract_addresses`.
    pub async fn state_update(&self, n: u64) -> Value {
        self.rpc("starknet_getStateUpdate", json!({"block_id": {"block_number": n}})).await
    }

    /// `devnet_abortBlocks` from block `from` (inclusive) to the tip; answers the aborted
    /// hashes. Needs `--state-archive-capacity full` (as started here).
    pub async fn abort_blocks(&self, from: u64) -> Vec<String> {
        let answer = self
            .rpc("devnet_abortBlocks", json!({"starting_block_id": {"block_number": from}}))
            .await;
        answer["aborted"]
            .as_array()
            .unwrap_or_else(|| panic!("devnet_abortBlocks answered {answer}"))
            .iter()
            .map(|h| h.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Kills the process now (the node goes down mid-test); dropping it later is harmless.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
