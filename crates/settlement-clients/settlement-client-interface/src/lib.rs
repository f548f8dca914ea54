//! orchestrator-settlement-client-interface
