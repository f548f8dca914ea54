//! orchestrator-utils
