//! Developer commands used by operators to debug DA and facts (`orchestrator blob …`,
//! `orchestrator fact …`). Each returns a process exit code: 0 on success, 2 on bad input.

pub mod blob;
pub mod fact;
