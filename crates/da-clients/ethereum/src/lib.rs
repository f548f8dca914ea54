//! orchestrator-ethereum-da-client
