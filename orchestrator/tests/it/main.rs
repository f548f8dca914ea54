//! Integration tests of the orchestrator crate: one binary (style §5). Tests that need a
//! second process re-run this binary with `ORCH_TEST_ROLE` set (see `support`).
#![allow(unreachable_pub)]

mod bad_input;
mod batching_devnet;
mod blob_cli;
mod blob_pyref;
mod blob_vectors;
mod compression_pipeline;
mod crash;
mod support;
