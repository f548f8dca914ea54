//! Anvil, the tests' Ethereum node (L1): started on a free 127.0.0.1 port, polled until it
//! answers JSON-RPC, killed when dropped. Contracts are deployed by the caller
//! (`orchestrator_ethereum_settlement_client::testing::deploy_contracts`), or loaded with
//! [`AnvilConfig::load_state`].
//!
//! The binary: `$ORCH_ANVIL_BIN`, else
//! `$ORCH_CACHE/node/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil` (what
//! `scripts/anvil.sh` installs; `ORCH_CACHE` defaults to `~/.cache/orchestrator`).
//! `ORCH_SKIP_ANVIL_TESTS=1` skips the tests ([`Anvil::start`] answers `None`); otherwise a
//! missing binary fails them with the install command.
//!
//! ```no_run
//! # async fn demo() {
//! use orchestrator_test_support::anvil::{Anvil, AnvilConfig};
//! let Some(anvil) = Anvil::start(AnvilConfig::new("osaka").block_time(1)).await else {
//!     return; // skipped
//! };
//! let rpc = anvil.url();
//! # let _ = rpc;
//! # }
//! ```

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use reqwest::Url;
use serde_json::json;

use crate::launch::{self, json_rpc, Launch, LaunchError, ServiceProcess, Tool};

/// Anvil as a [`Tool`]: its binary, install command and skip variable.
pub static TOOL: Tool = Tool {
    name: "anvil",
    bin_var: "ORCH_ANVIL_BIN",
    cache_path: "node/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil",
    install: "scripts/anvil.sh",
    skip_var: "ORCH_SKIP_ANVIL_TESTS",
};

/// How long Anvil may take to answer after it is spawned.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the Anvil binary is looked for.
pub fn binary() -> PathBuf {
    TOOL.path()
}

/// Whether Anvil tests run: `false` (printing why) with `ORCH_SKIP_ANVIL_TESTS=1`.
///
/// # Panics
/// The binary is missing (the message names `scripts/anvil.sh`).
pub fn available() -> bool {
    TOOL.available()
}

/// How an Anvil is started: a hardfork, and optionally a block time (otherwise a block per
/// transaction), a chain id, a state to load, and further arguments. Always `--silent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnvilConfig {
    hardfork: String,
    block_time: Option<u64>,
    chain_id: Option<u64>,
    load_state: Option<PathBuf>,
    extra: Vec<String>,
}

impl AnvilConfig {
    /// Anvil on `hardfork` (`cancun`, `prague`, `osaka`, …), mining a block per transaction.
    pub fn new(hardfork: &str) -> Self {
        Self {
            hardfork: hardfork.to_owned(),
            block_time: None,
            chain_id: None,
            load_state: None,
            extra: Vec::new(),
        }
    }

    /// `--block-time`: a block every `seconds`.
    pub fn block_time(mut self, seconds: u64) -> Self {
        self.block_time = Some(seconds);
        self
    }

    /// `--chain-id` (Anvil's default 31337 otherwise).
    pub fn chain_id(mut self, id: u64) -> Self {
        self.chain_id = Some(id);
        self
    }

    /// `--load-state`: start from a state Anvil dumped (`--dump-state`), e.g. with contracts
    /// already deployed.
    pub fn load_state(mut self, path: &Path) -> Self {
        self.load_state = Some(path.to_owned());
        self
    }

    /// Further Anvil arguments (`--no-mining`, `--gas-limit`, …), after the ones above.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra.extend(args.into_iter().map(Into::into));
        self
    }

    /// The command line for an Anvil on 127.0.0.1:`port`.
    pub fn command_args(&self, port: u16) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.to_string(),
            "--hardfork".into(),
            self.hardfork.clone(),
            "--silent".into(),
        ];
        if let Some(s) = self.block_time {
            args.extend(["--block-time".to_owned(), s.to_string()]);
        }
        if let Some(id) = self.chain_id {
            args.extend(["--chain-id".to_owned(), id.to_string()]);
        }
        if let Some(path) = &self.load_state {
            args.extend(["--load-state".to_owned(), path.display().to_string()]);
        }
        args.extend(self.extra.iter().cloned());
        args
    }
}

/// A running Anvil, killed when dropped.
#[derive(Debug)]
pub struct Anvil {
    url: Url,
    process: ServiceProcess,
}

impl Anvil {
    /// Starts Anvil with `config` and waits until it answers; `None` (after printing why) when
    /// Anvil tests are skipped.
    ///
    /// # Panics
    /// The binary is missing, or Anvil does not start (the message says why).
    pub async fn start(config: AnvilConfig) -> Option<Self> {
        if launch::skipped(TOOL.skip_var, TOOL.name) {
            return None;
        }
        Some(Self::launch(&config).await.unwrap_or_else(|e| panic!("{e}")))
    }

    /// Starts Anvil with `config` and waits until it answers `eth_chainId` (no skip check).
    pub async fn launch(config: &AnvilConfig) -> Result<Self, LaunchError> {
        let probe = launch::probe_client();
        let args = |port| config.command_args(port);
        let process = Launch {
            tool: &TOOL,
            args: &args,
            timeout: STARTUP_TIMEOUT,
            poll: Duration::from_millis(50),
        }
        .run(async |port| {
            json_rpc(&probe, &launch::local_url(port), "eth_chainId", json!([])).await.map(drop)
        })
        .await?;
        Ok(Self { url: launch::local_url(process.port()), process })
    }

    /// Its JSON-RPC endpoint, `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> Url {
        self.url.clone()
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.process.port()
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
    fn the_command_line_has_the_hardfork_and_every_option() {
        assert_eq!(
            AnvilConfig::new("cancun").command_args(8545).join(" "),
            "--host 127.0.0.1 --port 8545 --hardfork cancun --silent"
        );
        let config = AnvilConfig::new("osaka")
            .block_time(1)
            .chain_id(1337)
            .load_state(Path::new("/tmp/state.json"))
            .args(["--no-mining"]);
        assert_eq!(
            config.command_args(1).join(" "),
            "--host 127.0.0.1 --port 1 --hardfork osaka --silent --block-time 1 --chain-id 1337 \
             --load-state /tmp/state.json --no-mining"
        );
    }

    #[test]
    fn the_binary_is_where_scripts_anvil_sh_installs_it() {
        let env = env_of(&[("ORCH_CACHE", "/c")]);
        assert_eq!(
            TOOL.path_in(&env),
            PathBuf::from("/c/node/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
        );
        let env = env_of(&[("ORCH_ANVIL_BIN", "/usr/bin/anvil"), ("ORCH_CACHE", "/c")]);
        assert_eq!(TOOL.path_in(&env), PathBuf::from("/usr/bin/anvil"));
    }

    /// Runs only where Anvil is installed (and not skipped): starts it, reads the chain id with
    /// the configured value, kills it.
    #[tokio::test]
    async fn an_anvil_starts_answers_and_stops() {
        if !TOOL.path().is_file() || launch::skipped(TOOL.skip_var, TOOL.name) {
            return;
        }
        let mut anvil =
            Anvil::launch(&AnvilConfig::new("cancun").chain_id(4242)).await.expect("anvil starts");
        let http = reqwest::Client::new();
        let id = json_rpc(&http, &anvil.url(), "eth_chainId", json!([])).await.expect("chain id");
        assert_eq!(id, json!("0x1092"));
        anvil.kill();
        json_rpc(&http, &anvil.url(), "eth_chainId", json!([])).await.expect_err("anvil is gone");
    }
}
