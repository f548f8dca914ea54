//! starknet-devnet, the tests' Starknet node: started on a free 127.0.0.1 port, polled until it
//! answers JSON-RPC, killed when dropped.
//!
//! The binary: `$ORCH_DEVNET_BIN`, else `$ORCH_CACHE/tools/devnet/bin/starknet-devnet` (what
//! `scripts/devnet.sh install` installs; `ORCH_CACHE` defaults to `~/.cache/orchestrator`).
//! `ORCH_SKIP_DEVNET_TESTS=1` skips the tests ([`Devnet::start`] answers `None`); otherwise a
//! missing binary fails them with the install command.
//!
//! ```no_run
//! # async fn demo() {
//! use orchestrator_test_support::devnet::{Devnet, DevnetConfig};
//! let Some(devnet) = Devnet::start_with(DevnetConfig::new().block_generation_on_demand()).await
//! else {
//!     return; // skipped
//! };
//! devnet.mint("0x1234", 10).await;
//! devnet.create_block().await;
//! assert_eq!(devnet.block_number().await, 1);
//! # }
//! ```

use std::{path::PathBuf, time::Duration};

use reqwest::Url;
use serde_json::{json, Value};

use crate::launch::{self, json_rpc, Launch, LaunchError, ServiceProcess, Tool};

/// starknet-devnet as a [`Tool`]: its binary, install command and skip variable.
pub static TOOL: Tool = Tool {
    name: "starknet-devnet",
    bin_var: "ORCH_DEVNET_BIN",
    cache_path: "tools/devnet/bin/starknet-devnet",
    install: "scripts/devnet.sh install",
    skip_var: "ORCH_SKIP_DEVNET_TESTS",
};

/// How long devnet may take to answer after it is spawned.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the devnet binary is looked for.
pub fn binary() -> PathBuf {
    TOOL.path()
}

/// Whether devnet tests run: `false` (printing why) with `ORCH_SKIP_DEVNET_TESTS=1`.
///
/// # Panics
/// The binary is missing (the message names `scripts/devnet.sh install`).
pub fn available() -> bool {
    TOOL.available()
}

/// How a devnet is started. The default: `--seed 0` (the same predeployed accounts every run)
/// and `--state-archive-capacity full` (historical state reads, which the orchestrator's
/// batching and squashing need).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevnetConfig {
    seed: u64,
    accounts: Option<u32>,
    full_state_archive: bool,
    block_generation_on_demand: bool,
    extra: Vec<String>,
}

impl Default for DevnetConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            accounts: None,
            full_state_archive: true,
            block_generation_on_demand: false,
            extra: Vec::new(),
        }
    }
}

impl DevnetConfig {
    /// The default configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// `--seed`: which predeployed accounts (keys) devnet creates.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// `--accounts`: how many accounts are predeployed (devnet's default otherwise).
    pub fn accounts(mut self, accounts: u32) -> Self {
        self.accounts = Some(accounts);
        self
    }

    /// Whether every block's state is kept (`--state-archive-capacity full`, the default) or
    /// only the latest (devnet's own default).
    pub fn full_state_archive(mut self, full: bool) -> Self {
        self.full_state_archive = full;
        self
    }

    /// `--block-generation-on demand`: a block closes only on `devnet_createBlock`;
    /// transactions stay pre-confirmed until then.
    pub fn block_generation_on_demand(mut self) -> Self {
        self.block_generation_on_demand = true;
        self
    }

    /// Further devnet arguments (`--start-time`, `--fork-network`, `--dump-path`, …), after the
    /// ones above.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra.extend(args.into_iter().map(Into::into));
        self
    }

    /// The command line for a devnet on 127.0.0.1:`port`.
    pub fn command_args(&self, port: u16) -> Vec<String> {
        let mut args: Vec<String> = ["--host", "127.0.0.1", "--port"].map(String::from).to_vec();
        args.push(port.to_string());
        args.extend(["--seed".to_owned(), self.seed.to_string()]);
        if let Some(n) = self.accounts {
            args.extend(["--accounts".to_owned(), n.to_string()]);
        }
        if self.full_state_archive {
            args.extend(["--state-archive-capacity", "full"].map(String::from));
        }
        if self.block_generation_on_demand {
            args.extend(["--block-generation-on", "demand"].map(String::from));
        }
        args.extend(self.extra.iter().cloned());
        args
    }
}

/// A running starknet-devnet, killed when dropped.
#[derive(Debug)]
pub struct Devnet {
    /// Its JSON-RPC endpoint, `http://127.0.0.1:<port>/`.
    pub url: Url,
    process: ServiceProcess,
    http: reqwest::Client,
}

impl Devnet {
    /// Starts a devnet with the default [`DevnetConfig`] and waits until it answers; `None`
    /// (after printing why) when devnet tests are skipped.
    ///
    /// # Panics
    /// The binary is missing, or devnet does not start (the message says why).
    pub async fn start() -> Option<Self> {
        Self::start_with(DevnetConfig::default()).await
    }

    /// [`Devnet::start`] with `config`.
    ///
    /// # Panics
    /// As [`Devnet::start`].
    pub async fn start_with(config: DevnetConfig) -> Option<Self> {
        if launch::skipped(TOOL.skip_var, TOOL.name) {
            return None;
        }
        Some(Self::launch(&config).await.unwrap_or_else(|e| panic!("{e}")))
    }

    /// Starts a devnet with `config` and waits until it answers `starknet_blockNumber` (no skip
    /// check).
    pub async fn launch(config: &DevnetConfig) -> Result<Self, LaunchError> {
        let probe = launch::probe_client();
        let args = |port| config.command_args(port);
        let process = Launch {
            tool: &TOOL,
            args: &args,
            timeout: STARTUP_TIMEOUT,
            poll: Duration::from_millis(100),
        }
        .run(async |port| {
            json_rpc(&probe, &launch::local_url(port), "starknet_blockNumber", json!([]))
                .await
                .map(drop)
        })
        .await?;
        let url = launch::local_url(process.port());
        Ok(Self { url, process, http: reqwest::Client::new() })
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// A JSON-RPC call: the result, else the transport error or the node's answer (with its
    /// `error` object) as text.
    pub async fn try_rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        json_rpc(&self.http, &self.url, method, params).await
    }

    /// A JSON-RPC call that must succeed.
    ///
    /// # Panics
    /// The call fails (the message names the method).
    pub async fn rpc(&self, method: &str, params: Value) -> Value {
        self.try_rpc(method, params).await.unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// Mints `amount` FRI to `address`: one invoke transaction of the fee token, hence one new
    /// block (unless blocks are generated on demand).
    pub async fn mint(&self, address: &str, amount: u128) -> Value {
        self.rpc("devnet_mint", json!({"address": address, "amount": amount, "unit": "FRI"})).await
    }

    /// Closes a block (empty, or with the pre-confirmed transactions).
    pub async fn create_block(&self) -> Value {
        self.rpc("devnet_createBlock", json!({})).await
    }

    /// The latest block number.
    pub async fn block_number(&self) -> u64 {
        self.rpc("starknet_blockNumber", json!([])).await.as_u64().expect("block number")
    }

    /// `starknet_getBlockWithTxHashes` of closed block `n`.
    pub async fn block(&self, n: u64) -> Value {
        self.rpc("starknet_getBlockWithTxHashes", json!([{"block_number": n}])).await
    }

    /// Number of transactions in block `n`.
    pub async fn transaction_count(&self, n: u64) -> u64 {
        self.rpc("starknet_getBlockTransactionCount", json!([{"block_number": n}]))
            .await
            .as_u64()
            .expect("transaction count")
    }

    /// `starknet_getStateUpdate` of closed block `n`. By name: devnet 0.10 refuses a
    /// by-position call without the optional `contract_addresses`.
    pub async fn state_update(&self, n: u64) -> Value {
        self.rpc("starknet_getStateUpdate", json!({"block_id": {"block_number": n}})).await
    }

    /// `devnet_abortBlocks` from block `from` (inclusive) to the tip; answers the aborted
    /// hashes. Needs the full state archive (the default).
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

    /// Produces `n` blocks, each with one real transaction (a mint to its own address), and
    /// returns the last block number.
    pub async fn produce_blocks(&self, n: u64) -> u64 {
        for i in 0..n {
            let address = format!("{:#x}", 0x7e57_0000u64 + i);
            self.mint(&address, 1_000 + u128::from(i)).await;
        }
        self.block_number().await
    }

    /// Kills the process now (the node goes down mid-test); dropping it later is harmless.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::tests::env_of;

    #[test]
    fn the_default_command_line_is_seed_0_with_the_full_archive() {
        assert_eq!(
            DevnetConfig::default().command_args(5050).join(" "),
            "--host 127.0.0.1 --port 5050 --seed 0 --state-archive-capacity full"
        );
    }

    #[test]
    fn every_option_lands_on_the_command_line() {
        let config = DevnetConfig::new()
            .seed(42)
            .accounts(3)
            .full_state_archive(false)
            .block_generation_on_demand()
            .args(["--start-time", "1700000000"]);
        assert_eq!(
            config.command_args(1).join(" "),
            "--host 127.0.0.1 --port 1 --seed 42 --accounts 3 --block-generation-on demand \
             --start-time 1700000000"
        );
    }

    #[test]
    fn the_binary_is_where_scripts_devnet_sh_installs_it() {
        let env = env_of(&[("HOME", "/home/u")]);
        assert_eq!(
            TOOL.path_in(&env),
            PathBuf::from("/home/u/.cache/orchestrator/tools/devnet/bin/starknet-devnet")
        );
        let env = env_of(&[("ORCH_DEVNET_BIN", "/usr/local/bin/starknet-devnet")]);
        assert_eq!(TOOL.path_in(&env), PathBuf::from("/usr/local/bin/starknet-devnet"));
    }

    /// Runs only where devnet is installed (and not skipped): starts it, reads a block, kills it.
    #[tokio::test]
    async fn a_devnet_starts_answers_and_stops() {
        if !TOOL.path().is_file() || launch::skipped(TOOL.skip_var, TOOL.name) {
            return;
        }
        let mut devnet = Devnet::launch(&DevnetConfig::new()).await.expect("devnet starts");
        assert_eq!(devnet.block_number().await, 0);
        assert_eq!(devnet.url.port(), Some(devnet.port()));
        devnet.kill();
        devnet.try_rpc("starknet_blockNumber", json!([])).await.expect_err("devnet is gone");
    }
}
