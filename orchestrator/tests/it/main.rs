//! Integration tests of the orchestrator crate: one binary (style §5). Tests that need a
#![allow(unreachable_pub)]
//! second process re-run this binary with `ORCH_TEST_ROLE` set (see `support`).

mod aws_setup;
mod bad_input;
mod crash;
mod support;
