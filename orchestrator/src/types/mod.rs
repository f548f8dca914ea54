//! Domain types: jobs and their metadata, batches, queues and worker triggers, and the stage
//! table of each layer.

pub mod batch;
pub mod jobs;
pub mod layer;
pub mod queue;
pub mod stage;

pub use layer::Layer;

/// The version this build stamps on jobs, batches and queue messages (`OrchestratorVersion`).
pub const ORCHESTRATOR_VERSION: &str = env!("CARGO_PKG_VERSION");
