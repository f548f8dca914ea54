//! Test support shared by every crate of the workspace.
//!
//! [`vectors`] holds the real Starknet and Ethereum acceptance vectors (state updates, blobs,
//! KZG proofs, Cairo PIEs). They live inside this crate (`vectors/`, provenance in its README),
//! so a clone of the repository carries everything its tests read.

pub mod deps;
pub mod repo;
pub mod vectors;
