//! Facts of Cairo PIEs, computed byte-exactly as the madara orchestrator and cairo-lang do.
//!
//! A *fact* is the 32-byte value a verifier (the GPS verifier on Ethereum) records once a proof
//! of a Cairo run is accepted: `keccak(program_hash ‖ output_root)`, where `program_hash` is the
//! Pedersen hash chain of the program ([`program_hash`]) and `output_root` the root of a Merkle
//! tree over the pages of the program output ([`merkle`]), shaped by the fact topology
//! ([`topology`]).
//!
//! For SNOS runs without KZG data availability the orchestrator uses a different, Poseidon-based
//! "L2 fact" ([`l2`]). See `docs/facts.md` for the full description.

pub mod aggregator;
mod error;
mod hash;
pub mod l2;
pub mod merkle;
pub mod pie;
pub mod program_hash;
pub mod topology;

use std::path::Path;

use cairo_vm::vm::runners::cairo_pie::CairoPie;
pub use starknet_types_core::felt::Felt;

pub use error::FactError;
pub use hash::{keccak256_concat, Hash256};
pub use merkle::FactNode;
pub use topology::FactTopology;

/// Options of the (keccak) fact computation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FactOptions {
    /// Use this program hash instead of hashing the PIE's program (e.g. the aggregator's
    /// program hash with its prefix).
    pub program_hash: Option<Felt>,
    /// Aggregator mode: keep only the aggregator's own output
    /// ([`aggregator::filter_aggregator_output`]) before building the tree.
    pub aggregator: bool,
}

/// Everything computed on the way to a fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactInfo {
    /// The program output the fact commits to (filtered in aggregator mode).
    pub program_output: Vec<Felt>,
    /// The program hash (computed or supplied).
    pub program_hash: Felt,
    /// The fact topology.
    pub topology: FactTopology,
    /// The root of the output Merkle tree.
    pub root: FactNode,
    /// `keccak(program_hash as 32-byte BE ‖ root hash)`.
    pub fact: Hash256,
}

/// Computes the fact from its parts: `keccak(program_hash as 32-byte BE ‖ root_hash)`.
pub fn fact_from_parts(program_hash: &Felt, root_hash: &Hash256) -> Hash256 {
    keccak256_concat([program_hash.to_bytes_be().as_slice(), root_hash.as_bytes().as_slice()])
}

/// Computes the fact of a PIE with its intermediate values.
///
/// Steps: program output (filtered in aggregator mode) → fact topology for that output size →
/// program hash (unless supplied) → Merkle root → fact.
pub fn fact_info(pie: &CairoPie, options: &FactOptions) -> Result<FactInfo, FactError> {
    let full_output = pie::program_output(pie)?;
    let program_output = if options.aggregator {
        aggregator::filter_aggregator_output(&full_output)?.to_vec()
    } else {
        full_output
    };
    let topology = topology::fact_topology(pie, program_output.len())?;
    let program_hash = match options.program_hash {
        Some(hash) => hash,
        None => program_hash::program_hash(pie)?,
    };
    let root = merkle::merkle_root(&program_output, &topology)?;
    let fact = fact_from_parts(&program_hash, &root.hash);
    Ok(FactInfo { program_output, program_hash, topology, root, fact })
}

/// Computes the (keccak) fact of a PIE with the default options.
pub fn fact(pie: &CairoPie) -> Result<Hash256, FactError> {
    Ok(fact_info(pie, &FactOptions::default())?.fact)
}

/// Reads a PIE zip file and computes its (keccak) fact.
pub fn fact_of_file(path: &Path, options: &FactOptions) -> Result<Hash256, FactError> {
    Ok(fact_info(&pie::read_pie_file(path)?, options)?.fact)
}

/// Computes the L2 (Poseidon) fact of a PIE's output segment; see [`l2`].
pub fn l2_fact(pie: &CairoPie) -> Result<Hash256, FactError> {
    Ok(l2::l2_fact(&pie::program_output(pie)?))
}

/// Index of the KZG-DA flag in the Starknet OS output.
pub const KZG_DA_FLAG_INDEX: usize = 8;

/// Which fact a SNOS job records, chosen by the KZG-DA flag of its OS output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnosFactKind {
    /// Flag 0: the Poseidon [`l2`] fact.
    L2,
    /// Flag 1: the keccak / Merkle fact.
    Gps,
}

impl SnosFactKind {
    /// Reads the KZG-DA flag (index 8) of a raw OS output.
    pub fn from_os_output(os_output: &[Felt]) -> Result<Self, FactError> {
        match os_output.get(KZG_DA_FLAG_INDEX) {
            Some(flag) if *flag == Felt::ZERO => Ok(Self::L2),
            Some(flag) if *flag == Felt::ONE => Ok(Self::Gps),
            Some(flag) => Err(FactError::UnsupportedKzgFlag(flag.to_string())),
            None => Err(FactError::UnsupportedKzgFlag(format!(
                "<missing: OS output has {} cells>",
                os_output.len()
            ))),
        }
    }
}

/// Computes the fact of a SNOS PIE the way the SNOS job does: the KZG-DA flag of `os_output`
/// selects the L2 fact (0) or the keccak fact (1).
pub fn snos_fact(pie: &CairoPie, os_output: &[Felt]) -> Result<Hash256, FactError> {
    match SnosFactKind::from_os_output(os_output)? {
        SnosFactKind::L2 => l2_fact(pie),
        SnosFactKind::Gps => fact(pie),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    /// Loads a PIE acceptance vector (`orchestrator-test-support`'s `vectors/pie/`); a missing
    /// file fails loudly.
    pub(crate) fn vector(name: &str) -> Vec<u8> {
        orchestrator_test_support::vectors::bytes(&format!("pie/{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::vector;

    const FIBONACCI_FACT: &str =
        "0xca15503f02f8406b599cb220879e842394f5cf2cef753f3ee430647b5981b782";
    const SEPOLIA_FACT: &str = "0x033144ad6b132b1012f15e50aa53de1ed91b3b1af729014c3f1c00b702f972ea";

    #[test]
    fn fibonacci_fact() {
        let pie = pie::read_pie_bytes(&vector("fibonacci.zip")).unwrap();
        assert_eq!(fact(&pie).unwrap().to_string(), FIBONACCI_FACT);
    }

    #[test]
    fn sepolia_924016_fact() {
        let pie = pie::read_pie_bytes(&vector("sepolia_924016.zip")).unwrap();
        let info = fact_info(&pie, &FactOptions::default()).unwrap();
        assert_eq!(info.fact.to_string(), SEPOLIA_FACT);
        assert_eq!(info.program_output.len(), 23);
        assert_eq!(info.root.end_offset, 23);
    }

    /// Regression pin only: computed by this implementation (whose Poseidon is cross-checked
    /// against starknet-crypto in `l2.rs`); there is no external vector for the L2 fact.
    #[test]
    fn sepolia_924016_l2_fact_regression() {
        let pie = pie::read_pie_bytes(&vector("sepolia_924016.zip")).unwrap();
        assert_eq!(
            l2_fact(&pie).unwrap().to_string(),
            "0x010e07758707614b13e86027d355a4baf0f194e53e4c63cf0db7a66db9f7330b"
        );
    }

    #[test]
    fn supplied_program_hash_is_used() {
        let pie = pie::read_pie_bytes(&vector("fibonacci.zip")).unwrap();
        let computed = fact_info(&pie, &FactOptions::default()).unwrap();
        let same = FactOptions { program_hash: Some(computed.program_hash), aggregator: false };
        assert_eq!(fact_info(&pie, &same).unwrap().fact, computed.fact);
        let other = FactOptions { program_hash: Some(Felt::from(42u8)), aggregator: false };
        let info = fact_info(&pie, &other).unwrap();
        assert_eq!(info.fact, fact_from_parts(&Felt::from(42u8), &computed.root.hash));
        assert_ne!(info.fact, computed.fact);
    }

    #[test]
    fn fact_of_missing_file_is_an_io_error() {
        let err =
            fact_of_file(Path::new("/nonexistent/pie.zip"), &FactOptions::default()).unwrap_err();
        assert!(matches!(err, FactError::Io { .. }), "{err:?}");
    }

    #[test]
    fn aggregator_mode_on_a_non_aggregator_output_is_rejected() {
        let pie = pie::read_pie_bytes(&vector("fibonacci.zip")).unwrap();
        let options = FactOptions { program_hash: None, aggregator: true };
        assert!(matches!(fact_info(&pie, &options), Err(FactError::AggregatorOutputMalformed(_))));
    }

    #[test]
    fn snos_fact_follows_the_kzg_flag() {
        let pie = pie::read_pie_bytes(&vector("sepolia_924016.zip")).unwrap();
        let mut os_output = pie::program_output(&pie).unwrap();
        os_output[KZG_DA_FLAG_INDEX] = Felt::ONE;
        assert_eq!(snos_fact(&pie, &os_output).unwrap().to_string(), SEPOLIA_FACT);
        os_output[KZG_DA_FLAG_INDEX] = Felt::ZERO;
        assert_eq!(snos_fact(&pie, &os_output).unwrap(), l2_fact(&pie).unwrap());
        os_output[KZG_DA_FLAG_INDEX] = Felt::TWO;
        assert!(matches!(snos_fact(&pie, &os_output), Err(FactError::UnsupportedKzgFlag(_))));
        assert!(matches!(snos_fact(&pie, &os_output[..3]), Err(FactError::UnsupportedKzgFlag(_))));
    }
}
