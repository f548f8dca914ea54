//! orchestrator-ethereum-settlement-client
