//! The orchestrator: carries every block of a Madara (Starknet) sequencer to settlement.
//!
//! Layout follows `docs/architecture.md`: `cli` (clap commands), `config` (parameters → one
//! `Config`), `core` (client traits and backends), `types` (jobs, batches, queues), `worker`
//! (job engine, event workers, triggers, job handlers), `server` (HTTP), `setup` (resource
//! provisioning), `preflight` (the dependency checks `run` makes before it starts), `recover`
//! (rebuilding a lost database from the settlement layer), `telemetry`. The DA protocol (squash, compression, blobs, KZG) is the `orchestrator-protocol`
//! crate's.

pub mod app;
pub mod cli;
pub mod config;
pub mod core;
pub mod preflight;
pub mod recover;
pub mod server;
pub mod setup;
pub mod shadow;
pub mod telemetry;
pub mod types;
pub mod worker;
