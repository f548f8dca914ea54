//! Shared helpers of the orchestrator workspace.
//!
//! - [`env`]: `.env` loading and `<VAR>_FILE` secret companions, applied before the command
//!   line is parsed.
//! - [`secret`]: [`Secret`](secret::Secret), a wrapper whose `Debug` never prints the value.

pub mod env;
pub mod secret;

pub use secret::Secret;
