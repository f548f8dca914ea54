// The appchain's core contract on Starknet: the settled state, the operators allowed to
// advance it and the program whose proven output it accepts (after Piltover's `appchain`).
#[starknet::contract]
mod CoreContract {
    use core::poseidon::poseidon_hash_span;
    use starknet::{ContractAddress, get_caller_address};
    use orchestrator_contracts::interfaces::{
        ICoreContract, IFactRegistryDispatcher, IFactRegistryDispatcherTrait
    };

    // Felts of the Starknet OS output header: initial root, final root, previous and new block
    // number, previous and new block hash, OS program hash, OS config hash, use_kzg_da,
    // full_output.
    const SNOS_HEADER_LEN: u32 = 10;

    #[storage]
    struct Storage {
        owner: ContractAddress,
        operators: LegacyMap<ContractAddress, bool>,
        program_hash: felt252,
        config_hash: felt252,
        facts_registry: ContractAddress,
        state_root: felt252,
        block_number: felt252,
        block_hash: felt252,
    }

    #[event]
    #[derive(Drop, starknet::Event)]
    enum Event {
        LogStateUpdate: LogStateUpdate,
        OperatorRegistered: OperatorRegistered,
        OperatorUnregistered: OperatorUnregistered,
        ProgramInfoChanged: ProgramInfoChanged,
        FactsRegistryChanged: FactsRegistryChanged,
    }

    // The state after a successful `update_state`.
    #[derive(Drop, starknet::Event)]
    struct LogStateUpdate {
        state_root: felt252,
        block_number: felt252,
        block_hash: felt252,
    }

    #[derive(Drop, starknet::Event)]
    struct OperatorRegistered {
        #[key]
        operator: ContractAddress,
    }

    #[derive(Drop, starknet::Event)]
    struct OperatorUnregistered {
        #[key]
        operator: ContractAddress,
    }

    #[derive(Drop, starknet::Event)]
    struct ProgramInfoChanged {
        program_hash: felt252,
        config_hash: felt252,
    }

    #[derive(Drop, starknet::Event)]
    struct FactsRegistryChanged {
        facts_registry: ContractAddress,
    }

    // `block_number` is -1 while nothing is settled: the first update then carries previous
    // block number -1.
    #[constructor]
    fn constructor(
        ref self: ContractState,
        owner: ContractAddress,
        state_root: felt252,
        block_number: felt252,
        block_hash: felt252
    ) {
        assert(is_set(owner), 'owner is zero');
        self.owner.write(owner);
        self.state_root.write(state_root);
        self.block_number.write(block_number);
        self.block_hash.write(block_hash);
    }

    #[abi(embed_v0)]
    impl CoreContractImpl of ICoreContract<ContractState> {
        fn register_operator(ref self: ContractState, address: ContractAddress) {
            self.assert_owner();
            self.operators.write(address, true);
            self.emit(OperatorRegistered { operator: address });
        }

        fn unregister_operator(ref self: ContractState, address: ContractAddress) {
            self.assert_owner();
            self.operators.write(address, false);
            self.emit(OperatorUnregistered { operator: address });
        }

        fn is_operator(self: @ContractState, address: ContractAddress) -> bool {
            self.operators.read(address)
        }

        fn set_program_info(ref self: ContractState, program_hash: felt252, config_hash: felt252) {
            self.assert_owner();
            self.program_hash.write(program_hash);
            self.config_hash.write(config_hash);
            self.emit(ProgramInfoChanged { program_hash, config_hash });
        }

        fn get_program_info(self: @ContractState) -> (felt252, felt252) {
            (self.program_hash.read(), self.config_hash.read())
        }

        fn set_facts_registry(ref self: ContractState, address: ContractAddress) {
            self.assert_owner();
            self.facts_registry.write(address);
            self.emit(FactsRegistryChanged { facts_registry: address });
        }

        fn get_facts_registry(self: @ContractState) -> ContractAddress {
            self.facts_registry.read()
        }

        fn get_state(self: @ContractState) -> (felt252, felt252, felt252) {
            (self.state_root.read(), self.block_number.read(), self.block_hash.read())
        }

        fn update_state(
            ref self: ContractState, snos_output: Array<felt252>, program_output: Array<felt252>
        ) {
            assert(self.operators.read(get_caller_address()), 'caller is not an operator');
            assert(snos_output.len() >= SNOS_HEADER_LEN, 'snos output too short');
            let initial_root = *snos_output.at(0);
            let final_root = *snos_output.at(1);
            let prev_block_number = *snos_output.at(2);
            let new_block_number = *snos_output.at(3);
            let new_block_hash = *snos_output.at(5);

            // Felt equality: -1 (nothing settled) is matched like any other number.
            assert(prev_block_number == self.block_number.read(), 'wrong prev block number');
            assert(initial_root == self.state_root.read(), 'wrong prev state root');
            // A batch may span several blocks, so only an update that stands still is refused.
            assert(new_block_number != prev_block_number, 'block number unchanged');

            let registry = self.facts_registry.read();
            if is_set(registry) {
                let output_hash = poseidon_hash_span(program_output.span());
                let fact = poseidon_hash_span(array![self.program_hash.read(), output_hash].span());
                let valid = IFactRegistryDispatcher { contract_address: registry }.is_valid(fact);
                assert(valid, 'fact not registered');
            }

            self.state_root.write(final_root);
            self.block_number.write(new_block_number);
            self.block_hash.write(new_block_hash);
            self
                .emit(
                    LogStateUpdate {
                        state_root: final_root, block_number: new_block_number, block_hash: new_block_hash,
                    }
                );
        }
    }

    // Whether `address` is not zero (a plain felt comparison: in this corelib two traits
    // answer `is_non_zero` for an address).
    fn is_set(address: ContractAddress) -> bool {
        let felt: felt252 = address.into();
        felt != 0
    }

    #[generate_trait]
    impl InternalImpl of InternalTrait {
        fn assert_owner(self: @ContractState) {
            assert(get_caller_address() == self.owner.read(), 'caller is not the owner');
        }
    }
}
