//! orchestrator-prover-client-interface
