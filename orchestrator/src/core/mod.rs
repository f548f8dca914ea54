//! The capabilities the orchestrator needs from its infrastructure, as traits, and their
//! backends.

pub mod client;
