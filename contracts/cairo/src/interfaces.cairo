use starknet::ContractAddress;

// Proof facts: a fact is registered once its proof was verified (here by anyone, for tests and
// devnets; a production registry is a verifier).
#[starknet::interface]
trait IFactRegistry<TContractState> {
    // Registers `fact`.
    fn register_fact(ref self: TContractState, fact: felt252);
    // Whether `fact` was registered.
    fn is_valid(self: @TContractState, fact: felt252) -> bool;
}

// The appchain's state on its settlement layer.
#[starknet::interface]
trait ICoreContract<TContractState> {
    // Lets `address` call `update_state` (owner only).
    fn register_operator(ref self: TContractState, address: ContractAddress);
    // Revokes `address` (owner only).
    fn unregister_operator(ref self: TContractState, address: ContractAddress);
    // Whether `address` may call `update_state`.
    fn is_operator(self: @TContractState, address: ContractAddress) -> bool;
    // Sets the hash of the program whose output is settled (the fact's program hash) and the
    // appchain's config hash (owner only).
    fn set_program_info(ref self: TContractState, program_hash: felt252, config_hash: felt252);
    // `(program_hash, config_hash)`.
    fn get_program_info(self: @TContractState) -> (felt252, felt252);
    // Sets the fact registry; zero turns the fact check off (owner only).
    fn set_facts_registry(ref self: TContractState, address: ContractAddress);
    // The fact registry (zero: none).
    fn get_facts_registry(self: @TContractState) -> ContractAddress;
    // `(state_root, block_number, block_hash)`; block number -1 before the first update.
    fn get_state(self: @TContractState) -> (felt252, felt252, felt252);
    // Settles the Starknet OS output `snos_output` (operators only); `program_output` is the
    // output of the proven program, whose fact must be registered when a registry is set.
    fn update_state(
        ref self: TContractState, snos_output: Array<felt252>, program_output: Array<felt252>
    );
}
