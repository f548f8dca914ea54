//! Shared helpers of the orchestrator workspace.
//!
//! - [`env`]: `.env` loading and `<VAR>_FILE` secret companions, applied before the command
//!   line is parsed.
//! - [`retryable`]: [`Retryable`](retryable::Retryable), how every client error says whether
//!   trying again later may succeed.
//! - [`secret`]: [`Secret`](secret::Secret), a wrapper whose `Debug` never prints the value.

pub mod env;
pub mod retryable;
pub mod secret;

pub use retryable::Retryable;
pub use secret::Secret;
