//! orchestrator-gps-fact-checker
