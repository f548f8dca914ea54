// The orchestrator's settlement contracts for an L3 (settlement on Starknet): a Piltover-like
// core contract that checks and stores the appchain's state, and a fact registry it asks
// whether a state transition was proven.

mod core_contract;
mod fact_registry;
mod interfaces;
