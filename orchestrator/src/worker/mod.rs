//! The job engine: the state machine (`service`), one event worker per queue
//! (`event_worker`), the controller that starts the layer's workers, the supervisor that
//! names them and watches them for panics, the orphan scanner, the job handlers and the
//! triggers.

pub mod alerts;
pub mod batching;
pub mod cleanup;
pub mod context;
pub mod controller;
pub mod error;
pub mod event_worker;
pub mod gauges;
pub mod handler;
pub(crate) mod handoff;
pub mod orphan;
pub mod retry;
pub mod service;
pub mod stages;
pub mod supervisor;
pub mod trigger;
pub mod watch;

#[cfg(test)]
mod tests;

pub use context::{Config, TriggerControl, Wakers};
pub use error::EngineError;
