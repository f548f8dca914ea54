//! orchestrator-mock-service
