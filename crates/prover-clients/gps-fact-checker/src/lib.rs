//! orchestrator-gps-fact-checker
//!
//! Fact computation for Cairo PIEs ([`fact`]): the program hash, the output segment, the fact
//! topology, the output Merkle root and the resulting fact, plus the Poseidon "L2 fact" and the
//! aggregator-mode output filter.
//!
//! On-chain parts ([`onchain`]): the [`FactRegistry`] check (`isValid(bytes32)` on the GPS
//! verifier) and, for the `MockGpsVerifier`, fact registration with fee bumps.

pub mod fact;
pub mod onchain;

pub use fact::{FactError, FactOptions, Hash256};
pub use onchain::{AlwaysValid, FactCheckError, FactRegistrar, FactRegistry, GpsFactChecker};
