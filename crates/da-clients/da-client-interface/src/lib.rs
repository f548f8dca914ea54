//! orchestrator-da-client-interface
