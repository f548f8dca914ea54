//! orchestrator-gps-fact-checker
//!
//! Fact computation for Cairo PIEs ([`fact`]): the program hash, the output segment, the fact
//! topology, the output Merkle root and the resulting fact, plus the Poseidon "L2 fact" and the
//! aggregator-mode output filter.

#![warn(missing_docs)]

pub mod fact;

pub use fact::{FactError, FactOptions, Hash256};
