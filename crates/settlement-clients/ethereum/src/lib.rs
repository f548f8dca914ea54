//! orchestrator-ethereum-settlement-client: settles state updates on the Starknet core
//! contract on Ethereum.
//!
//! - [`calldata`]: validation of a blob update, `updateStateKzgDA` / `updateState` calldata and
//!   the blob sidecar (EIP-7594 cell proofs by default, EIP-4844 blob proofs with
//!   `--disable-peerdas`).
//! - [`fees`]: the fee policy (first attempt, same-nonce replacement floor, liability cap).
//! - [`signer`]: local key or AWS KMS signer.
//! - [`client`]: [`EthereumSettlementClient`], the `SettlementClient` with its transaction
//!   manager (nonce safety across restarts, bounded fee bumps, confirmations).
//! - [`history`]: the core contract's past state updates (its `LogStateUpdate` events).
//! - [`shadow`]: the update that would be sent (decoded, with a fee estimate; nothing signed)
//!   and the update a landed transaction carried, for shadow mode.
//! - [`failover`]: several RPC endpoints behind one transport (`--ethereum-rpc-url a,b`).
//! - `testing` (feature `test-utils`): deployment of the project's test contracts
//!   (`contracts/`) on an Anvil started by `orchestrator_test_support::anvil`.
//!
//! The commitments and proofs of the EIP-4844 blobs are `orchestrator_protocol::kzg`'s.

pub mod calldata;
pub mod client;
pub mod failover;
pub mod fees;
pub mod history;
pub mod shadow;
pub mod signer;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;

pub use client::{EthereumSettlementClient, EthereumSettlementConfig};
