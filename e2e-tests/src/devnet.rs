//! starknet-devnet as the appchain's Starknet node: spawned on a free 127.0.0.1 port with
//! `--seed 0 --state-archive-capacity full` (historical state reads, which squashing needs),
//! killed when dropped.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use url::Url;

/// A running starknet-devnet.
#[derive(Debug)]
pub struct Devnet {
    child: Child,
    /// Its JSON-RPC URL.
    pub url: Url,
    http: reqwest::Client,
}

/// The devnet binary: `ORCH_DEVNET_BIN`, else the tool cache.
pub fn binary() -> PathBuf {
    std::env::var_os("ORCH_DEVNET_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::cache_dir().join("tools/devnet/bin/starknet-devnet"))
}

impl Devnet {
    /// Starts a devnet and waits until it answers; `None` when devnet tests are skipped
    /// (`ORCH_SKIP_DEVNET_TESTS=1`).
    ///
    /// # Panics
    /// The binary is missing (with the command that installs it) or devnet does not answer.
    pub async fn start() -> Option<Self> {
        if crate::skipped("ORCH_SKIP_DEVNET_TESTS", "no starknet-devnet") {
            return None;
        }
        let bin = binary();
        assert!(
            bin.exists(),
            "starknet-devnet not found at {}: run scripts/devnet.sh install (or set ORCH_SKIP_DEVNET_TESTS=1)",
            bin.display()
        );
        let port = crate::free_port();
        let child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--seed", "0"])
            .args(["--state-archive-capacity", "full"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let url: Url = format!("http://127.0.0.1:{port}/").parse().expect("devnet url");
        let devnet = Self { child, url, http: reqwest::Client::new() };
        let deadline = Instant::now() + Duration::from_secs(60);
        while devnet.try_rpc("starknet_blockNumber", json!([])).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "starknet-devnet did not answer on port {port} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Some(devnet)
    }

    /// A JSON-RPC call; the error is the transport error or the node's error object.
    pub async fn try_rpc(&self, method: &str, params: Value) -> Result<Value, String> {
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
        answer.get("result").cloned().ok_or_else(|| answer.to_string())
    }

    /// A JSON-RPC call that must succeed.
    pub async fn rpc(&self, method: &str, params: Value) -> Value {
        self.try_rpc(method, params).await.unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// Mints `amount` FRI to `address`: one invoke transaction of the fee token, one new block.
    pub async fn mint(&self, address: &str, amount: u128) -> Value {
        self.rpc("devnet_mint", json!({"address": address, "amount": amount, "unit": "FRI"})).await
    }

    /// The latest block number.
    pub async fn block_number(&self) -> u64 {
        self.rpc("starknet_blockNumber", json!([])).await.as_u64().expect("block number")
    }

    /// Number of transactions in block `n`.
    pub async fn transaction_count(&self, n: u64) -> u64 {
        self.rpc("starknet_getBlockTransactionCount", json!([{"block_number": n}]))
            .await
            .as_u64()
            .expect("transaction count")
    }

    /// Produces `n` blocks, each with one real transaction (a mint to its own address), and
    /// returns the last block number.
    pub async fn produce_blocks(&self, n: u64) -> u64 {
        for i in 0..n {
            let address = format!("{:#x}", 0x7e57_0000u64 + i);
            self.mint(&address, 1_000 + u128::from(i)).await;
        }
        self.block_number().await
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
