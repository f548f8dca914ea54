// A registry of proof facts where anyone may register a fact (a stand-in for a verifier).
#[starknet::contract]
mod FactRegistry {
    use starknet::{ContractAddress, get_caller_address};
    use orchestrator_contracts::interfaces::IFactRegistry;

    #[storage]
    struct Storage {
        facts: LegacyMap<felt252, bool>,
    }

    #[event]
    #[derive(Drop, starknet::Event)]
    enum Event {
        FactRegistered: FactRegistered,
    }

    // `fact` was registered by `registrar`.
    #[derive(Drop, starknet::Event)]
    struct FactRegistered {
        #[key]
        fact: felt252,
        registrar: ContractAddress,
    }

    #[abi(embed_v0)]
    impl FactRegistryImpl of IFactRegistry<ContractState> {
        fn register_fact(ref self: ContractState, fact: felt252) {
            self.facts.write(fact, true);
            self.emit(FactRegistered { fact, registrar: get_caller_address() });
        }

        fn is_valid(self: @ContractState, fact: felt252) -> bool {
            self.facts.read(fact)
        }
    }
}
