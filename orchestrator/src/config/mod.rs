//! Configuration: command-line parameters and the runtime context built from them.

pub mod context;

pub use context::{Clients, Config, EngineParams, FailedJobHalt};
