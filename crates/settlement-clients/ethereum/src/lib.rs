//! orchestrator-ethereum-settlement-client
//!
//! `kzg`: commitments and proofs for the EIP-4844 blobs of `updateStateKzgDA`.

pub mod kzg;
