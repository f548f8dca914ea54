//! The program hash of a PIE: cairo-lang's `compute_program_hash_chain` with bootloader
//! version 0, i.e. the Pedersen hash chain over
//! `[len, bootloader_version, main, n_builtins, builtin names…, program data…]`.

use cairo_vm::program_hash::compute_program_hash_chain;
use cairo_vm::vm::runners::cairo_pie::CairoPie;
use starknet_types_core::felt::Felt;

use super::FactError;

/// Bootloader version used when hashing a program (cairo-lang `hash_program.py` default).
pub const BOOTLOADER_VERSION: usize = 0;

/// Computes the program hash of the PIE's (stripped) program.
pub fn program_hash(pie: &CairoPie) -> Result<Felt, FactError> {
    compute_program_hash_chain(&pie.metadata.program, BOOTLOADER_VERSION)
        .map_err(|e| FactError::ProgramHash(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fact::pie::read_pie_bytes;
    use crate::fact::test_support::vector;
    use cairo_vm::types::relocatable::{MaybeRelocatable, Relocatable};
    use starknet_types_core::hash::{Pedersen, StarkHash};

    /// Independent re-derivation of the chain with starknet-types-core's Pedersen, to pin the
    /// layout of the hashed data (and the bootloader version) rather than trust it blindly.
    fn chain_by_hand(pie: &CairoPie) -> Felt {
        let p = &pie.metadata.program;
        let mut data =
            vec![Felt::from(BOOTLOADER_VERSION), Felt::from(p.main), Felt::from(p.builtins.len())];
        data.extend(p.builtins.iter().map(|b| Felt::from_bytes_be_slice(b.to_str().as_bytes())));
        data.extend(p.data.iter().map(|v| *v.get_int_ref().unwrap()));
        let mut all = vec![Felt::from(data.len())];
        all.extend(data);
        all.iter().rev().copied().reduce(|acc, x| Pedersen::hash(&x, &acc)).unwrap()
    }

    #[test]
    fn matches_a_hand_rolled_pedersen_chain() {
        for name in ["fibonacci.zip", "sepolia_924016.zip"] {
            let pie = read_pie_bytes(&vector(name)).unwrap();
            assert_eq!(program_hash(&pie).unwrap(), chain_by_hand(&pie), "{name}");
        }
    }

    #[test]
    fn relocatable_program_data_is_an_error() {
        let mut pie = read_pie_bytes(&vector("fibonacci.zip")).unwrap();
        pie.metadata.program.data[0] =
            MaybeRelocatable::RelocatableValue(Relocatable { segment_index: 0, offset: 0 });
        assert!(matches!(program_hash(&pie), Err(FactError::ProgramHash(_))));
    }
}
