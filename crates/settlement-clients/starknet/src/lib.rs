//! orchestrator-starknet-settlement-client
