//! orchestrator-sharp-service
