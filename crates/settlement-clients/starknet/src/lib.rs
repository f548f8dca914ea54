//! orchestrator-starknet-settlement-client: settles state updates of an L3 appchain on
//! Starknet, on the project's Piltover-like Cairo core contract (`contracts/cairo`).
//!
//! - [`calldata`]: `update_state` calldata (`[len, snos_output…, len, program_output…]`) and
//!   the word ↔ felt conversions, validated before anything is sent.
//! - [`classes`]: class hashes of the committed Cairo artifacts and the compiled class hash
//!   (BLAKE2s, Starknet 0.14.1) a declare carries.
//! - [`client`]: [`StarknetSettlementClient`], the `SettlementClient` over a starknet-rs
//!   `SingleOwnerAccount`.
//! - [`history`]: the core contract's past state updates (its `LogStateUpdate` events).
//! - [`failover`]: several RPC endpoints behind one transport (`--starknet-rpc-url a,b`).
//! - `testing` (feature `test-utils`): deployment of the Cairo contracts from the committed
//!   artifacts on a starknet-devnet started by `orchestrator_test_support::devnet`.

pub mod calldata;
pub mod classes;
pub mod client;
pub mod failover;
pub mod history;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;

pub use client::{CoreContractState, StarknetSettlementClient, StarknetSettlementConfig};
