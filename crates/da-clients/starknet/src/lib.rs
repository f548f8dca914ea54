//! orchestrator-starknet-da-client
