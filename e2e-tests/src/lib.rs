//! End-to-end harness: the real services of a local appchain stack and the `orchestrator`
//! binary as a child process.
//!
//! - [`devnet::Devnet`]: starknet-devnet (the Starknet node), from the tool cache that
//!   `scripts/devnet.sh install` fills;
//! - [`l1::L1`]: Anvil (npm `@foundry-rs/anvil-linux-amd64`, `scripts/anvil.sh`) producing a block
//!   every second, with our `StarknetCoreTest` and `MockGpsVerifier` deployed (the core contract
//!   accepts runs of the SNOS stand-in's program hash);
//! - the mock Atlantic server ([`orchestrator_mock_atlantic_server`]) in the test process, which
//!   registers each aggregation's fact on the verifier as SHARP would;
//! - [`process::OrchestratorProcess`]: `orchestrator setup` + `orchestrator run`, killed with
//!   SIGKILL or stopped with SIGINT;
//! - [`stack::Stack`]: all of it wired for the L2 pipeline on one infrastructure tier.
//!
//! - [`l3::L3Stack`]: an L3: a second devnet as the settlement layer with our Cairo core
//!   contract, the orchestrator with `--layer l3 --settle-on-starknet`.
//!
//! The workflow tests live in `tests/workflow.rs` and `tests/workflow_l3.rs` (feature
//! `testing`).

pub mod api;
pub mod chaos;
pub mod devnet;
pub mod l1;
pub mod l3;
pub mod process;
pub mod stack;

use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (the shared launchers' helper).
pub use orchestrator_test_support::launch::free_port;

/// Whether the skip variable `var` is `1` (then prints `skipped: why`).
pub fn skipped(var: &str, why: &str) -> bool {
    if std::env::var(var).as_deref() == Ok("1") {
        println!("skipped: {why} ({var}=1)");
        return true;
    }
    false
}

/// Polls `check` every 500 ms until it returns `Ok`, or panics after `timeout` naming `what`
/// and the last state `check` reported.
pub async fn wait_until<T>(
    timeout: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(v) => return v,
            Err(state) => state,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last state: {last}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The last `lines` lines of the file at `path` (empty when it cannot be read).
pub fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
