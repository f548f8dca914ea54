//! orchestrator-atlantic-service
