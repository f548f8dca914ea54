//! orchestrator-protocol: the Starknet data-availability protocol, with nothing of the engine.
//!
//! - [`compression`]: state updates → blob felts (squash, nonces, stateful and stateless
//!   compression, the `da_word` encoding) and the text formats of the developer commands.
//! - [`fr`]: the BLS12-381 scalar field (the field of EIP-4844 blob elements).
//! - [`transform`]: blob felts ↔ blobs, the EIP-4844 evaluation transform (an NTT of 4096
//!   points).
//! - [`kzg`]: KZG commitments and proofs of blobs (c-kzg with the Ethereum trusted setup), and
//!   the evaluation points of a program output.
//! - [`decode`]: a file of hex blobs → their coefficients as text, the engine of
//!   `orchestrator blob decode`.
//!
//! The pipeline's errors say whether trying again may help
//! ([`Retryable`](orchestrator_utils::Retryable), in `retry.rs`): reading the node's state may
//! work later, the rest will not.
//!
//! The pipeline's errors say whether trying again may help (`orchestrator_utils::Retryable`).
//!
//! Facts (Cairo PIEs, program hashes, GPS facts) are in `orchestrator-gps-fact-checker`. The
//! developer commands (`orchestrator blob …`) are thin layers over these modules; see
//! `docs/da-encoding.md` for the encoding and the figures of the decoder.

pub mod compression;
pub mod decode;
pub mod fr;
pub mod kzg;
mod retry;
pub mod transform;
