//! The "L2 fact" of a SNOS run without KZG data availability (KZG-DA flag 0).
//!
//! Formula, as in madara-alliance/madara `orchestrator/src/worker/utils/fact_info.rs`
//! (`get_fact_l2`, current main):
//!
//! ```text
//! output_hash = poseidon_hash_many(program_output)
//! fact        = poseidon_hash_many([BOOTLOADER_PROGRAM_HASH, output_hash])
//! ```
//!
//! Both hashes are Starknet's Poseidon *array* hash (`poseidon_hash_many`, with its padding),
//! not the two-input `poseidon_hash(a, b)`; the two differ. Madara builds the bootloader
//! header `[1, len + 2, program_hash]` but does not feed it to the hash (an earlier revision
//! hashed header and output together); the program hash therefore does not enter the fact.

use starknet_types_core::felt::Felt;
use starknet_types_core::hash::{Poseidon, StarkHash};

use super::hash::Hash256;

/// The bootloader program hash that prefixes the L2 fact.
pub const BOOTLOADER_PROGRAM_HASH: Felt =
    Felt::from_hex_unchecked("0x5ab580b04e3532b6b18f81cfa654a05e29dd8e2352d88df1e765a84072db07");

/// Computes the L2 fact of a program output.
pub fn l2_fact(program_output: &[Felt]) -> Hash256 {
    let output_hash = Poseidon::hash_array(program_output);
    let fact = Poseidon::hash_array(&[BOOTLOADER_PROGRAM_HASH, output_hash]);
    Hash256(fact.to_bytes_be())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// starknet-crypto's `poseidon_hash_many` is the function madara calls; check that our
    /// starknet-types-core implementation is the same function.
    #[test]
    fn same_as_starknet_crypto_poseidon_hash_many() {
        let output: Vec<Felt> = (0..23u64).map(|i| Felt::from(i * 7919 + 3)).collect();
        let h = starknet_crypto::poseidon_hash_many(&output);
        let expected = starknet_crypto::poseidon_hash_many(&[BOOTLOADER_PROGRAM_HASH, h]);
        assert_eq!(l2_fact(&output), Hash256(expected.to_bytes_be()));
        // and it is not the two-input Poseidon hash
        let two_input = starknet_crypto::poseidon_hash(BOOTLOADER_PROGRAM_HASH, h);
        assert_ne!(l2_fact(&output), Hash256(two_input.to_bytes_be()));
    }

    #[test]
    fn constant_parses() {
        assert_eq!(
            BOOTLOADER_PROGRAM_HASH,
            Felt::from_hex("0x5ab580b04e3532b6b18f81cfa654a05e29dd8e2352d88df1e765a84072db07")
                .unwrap()
        );
    }
}
