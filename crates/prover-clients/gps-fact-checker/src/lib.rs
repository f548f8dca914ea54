//! orchestrator-gps-fact-checker
//!
//! Fact computation for Cairo PIEs ([`fact`]): the program hash, the output segment, the fact
//! topology, the output Merkle root and the resulting fact, plus the Poseidon "L2 fact" and the
//! aggregator-mode output filter.
//!
//! On-chain parts ([`onchain`]): the [`FactRegistry`] check (`isValid(bytes32)` on the GPS
//! verifier) and, for the `MockGpsVerifier`, fact registration with fee bumps.
//!
//! The fact registry of a Starknet settlement layer (L3, [`starknet_registry`]):
//! [`StarknetFactRegistry`] (`is_valid(felt252)` on a Cairo fact registry) and the L3 fact
//! `poseidon([program_hash, poseidon(output)])`.

pub mod fact;
pub mod onchain;
pub mod starknet_registry;

pub use fact::{FactError, FactOptions, Hash256};
pub use onchain::{AlwaysValid, FactCheckError, FactRegistrar, FactRegistry, GpsFactChecker};
pub use starknet_registry::{l3_fact, StarknetFactRegistry};
