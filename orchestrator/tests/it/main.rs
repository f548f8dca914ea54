//! Integration tests of the orchestrator crate: one binary (style §5). Tests that need a
//! second process re-run this binary with `ORCH_TEST_ROLE` set (see `support`).
#![allow(unreachable_pub)]

mod api_alerts;
mod api_dashboard;
mod api_metrics;
mod api_otlp;
mod api_routes;
mod api_secrets;
mod api_support;
mod aws_setup;
mod bad_input;
mod batching_devnet;
mod binary;
mod blob_cli;
mod blob_pyref;
mod blob_vectors;
mod compression_pipeline;
mod crash;
mod localstack_setup;
mod multi_instance;
mod preflight;
mod prover_flow;
mod prover_matrix;
mod prover_matrix_pipeline;
mod settle_l2;
mod settle_l3;
mod sigterm;
mod snos_devnet;
mod snos_run;
mod support;
mod trigger_pause;
mod upstream;
