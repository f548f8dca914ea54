//! Shared helpers of the orchestrator workspace.
//!
//! - [`env`]: `.env` loading and `<VAR>_FILE` secret companions, applied before the command
//!   line is parsed.
//! - [`retryable`]: [`Retryable`](retryable::Retryable), how every client error says whether
//!   trying again later may succeed (and, for the few failures only an operator can fix, the
//!   [`OperatorAction`](retryable::OperatorAction) to alert with).
//! - [`secret`]: [`Secret`](secret::Secret), a wrapper whose `Debug` never prints the value.
//! - [`upstream`]: [`UpstreamRetry`](upstream::UpstreamRetry), how calls to the node and the
//!   prover are retried (attempts, read timeout, backoff with jitter).

pub mod env;
pub mod failover;
pub mod retryable;
pub mod secret;
pub mod upstream;

pub use retryable::{OperatorAction, Retryable};
pub use secret::Secret;
pub use upstream::UpstreamRetry;
