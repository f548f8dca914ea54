//! The project's Cairo contracts (`contracts/cairo`, compiled artifacts committed under
//! `contracts/cairo/artifacts`): their class hashes, and the compiled class hash of a CASM
//! class as Starknet 0.14.1 computes it (BLAKE2s), which a declare transaction carries.
//!
//! A test recomputes both hashes from the committed artifacts, so a recompile that changes a
//! class without updating these constants fails `cargo test`.

use serde::Deserialize;
use starknet::core::types::Felt;
use starknet_types_core::hash::{Blake2Felt252, Poseidon, StarkHash};

/// Sierra class hash of `CoreContract`.
pub const CORE_CONTRACT_CLASS_HASH: Felt =
    Felt::from_hex_unchecked("0x2313c64ce4b2f232b3ad9ba9cc0b61c4b43ca0793e5e1410d189b6d33d2b44e");
/// Compiled (CASM) class hash of `CoreContract`, BLAKE2s (Starknet 0.14.1).
pub const CORE_CONTRACT_COMPILED_CLASS_HASH: Felt =
    Felt::from_hex_unchecked("0x2e43a77ab5ce4ddd86bee9c26dd178a2383183693194afca8b8451e28dc394b");
/// Sierra class hash of `FactRegistry`.
pub const FACT_REGISTRY_CLASS_HASH: Felt =
    Felt::from_hex_unchecked("0x79f4db5a11f93c0044ef55315e8f60648f5bb92752456f7a125094630fe639a");
/// Compiled (CASM) class hash of `FactRegistry`, BLAKE2s (Starknet 0.14.1).
pub const FACT_REGISTRY_COMPILED_CLASS_HASH: Felt =
    Felt::from_hex_unchecked("0x79aed1bfb14afd4763e6699a6ed652d224acf12feb28ef900db178545bc43ca");

/// Which hash function a compiled class hash uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompiledClassHashVersion {
    /// Poseidon: Starknet up to 0.14.0 (and starknet-rs's `CompiledClass::class_hash`).
    Poseidon,
    /// BLAKE2s over felts: Starknet 0.14.1 (starknet-devnet 0.10.1).
    Blake2s,
}

/// The parts of a CASM class (`*.compiled_contract_class.json`) its hash covers. Parsed on its
/// own rather than with starknet-rs's `CompiledClass`, whose typed hints lag the compiler's.
#[derive(Debug, Deserialize)]
struct CasmClass {
    bytecode: Vec<Felt>,
    bytecode_segment_lengths: Option<SegmentLengths>,
    entry_points_by_type: CasmEntryPoints,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SegmentLengths {
    Leaf(usize),
    Node(Vec<SegmentLengths>),
}

#[derive(Debug, Deserialize)]
struct CasmEntryPoints {
    #[serde(rename = "EXTERNAL")]
    external: Vec<CasmEntryPoint>,
    #[serde(rename = "L1_HANDLER")]
    l1_handler: Vec<CasmEntryPoint>,
    #[serde(rename = "CONSTRUCTOR")]
    constructor: Vec<CasmEntryPoint>,
}

#[derive(Debug, Deserialize)]
struct CasmEntryPoint {
    selector: Felt,
    offset: u64,
    builtins: Vec<String>,
}

/// The compiled class hash of the CASM class `casm_json`:
/// `H("COMPILED_CLASS_V1", H(external), H(l1_handler), H(constructor), H(bytecode))`, where an
/// entry point list hashes `selector, offset, H(builtin names)` per entry and the bytecode
/// hashes as its segment tree (`1 + H(len₀, hash₀, len₁, hash₁, …)` per node).
///
/// # Errors
/// The JSON is not a CASM class, or its segment lengths do not cover the bytecode.
pub fn compiled_class_hash(
    casm_json: &str,
    version: CompiledClassHashVersion,
) -> Result<Felt, String> {
    let class: CasmClass =
        serde_json::from_str(casm_json).map_err(|e| format!("CASM class: {e}"))?;
    Ok(match version {
        CompiledClassHashVersion::Poseidon => hash_class::<Poseidon>(&class)?,
        CompiledClassHashVersion::Blake2s => hash_class::<Blake2Felt252>(&class)?,
    })
}

fn hash_class<H: StarkHash>(class: &CasmClass) -> Result<Felt, String> {
    // No segment lengths: the whole bytecode is one leaf.
    let whole = SegmentLengths::Leaf(class.bytecode.len());
    let segments = class.bytecode_segment_lengths.as_ref().unwrap_or(&whole);
    let mut rest = class.bytecode.as_slice();
    let (_, bytecode_hash) = hash_segment::<H>(&mut rest, segments)?;
    if !rest.is_empty() {
        return Err(format!("{} bytecode felts are outside every segment", rest.len()));
    }
    let eps = &class.entry_points_by_type;
    Ok(H::hash_array(&[
        Felt::from_bytes_be_slice(b"COMPILED_CLASS_V1"),
        hash_entry_points::<H>(&eps.external),
        hash_entry_points::<H>(&eps.l1_handler),
        hash_entry_points::<H>(&eps.constructor),
        bytecode_hash,
    ]))
}

fn hash_entry_points<H: StarkHash>(entry_points: &[CasmEntryPoint]) -> Felt {
    let mut felts = Vec::with_capacity(entry_points.len() * 3);
    for ep in entry_points {
        let builtins: Vec<Felt> =
            ep.builtins.iter().map(|b| Felt::from_bytes_be_slice(b.as_bytes())).collect();
        felts.extend([ep.selector, Felt::from(ep.offset), H::hash_array(&builtins)]);
    }
    H::hash_array(&felts)
}

fn hash_segment<H: StarkHash>(
    rest: &mut &[Felt],
    node: &SegmentLengths,
) -> Result<(usize, Felt), String> {
    match node {
        SegmentLengths::Leaf(len) => {
            if rest.len() < *len {
                return Err(format!("a segment of {len} felts, {} left", rest.len()));
            }
            let (segment, tail) = rest.split_at(*len);
            *rest = tail;
            Ok((*len, H::hash_array(segment)))
        }
        SegmentLengths::Node(children) => {
            let mut total = 0;
            let mut felts = Vec::with_capacity(children.len() * 2);
            for child in children {
                let (len, hash) = hash_segment::<H>(rest, child)?;
                total += len;
                felts.extend([Felt::from(len), hash]);
            }
            Ok((total, H::hash_array(&felts) + Felt::ONE))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn casm(bytecode: &[u64], segments: Option<&str>) -> String {
        let segments = segments.map(|s| format!(r#""bytecode_segment_lengths": {s},"#));
        format!(
            r#"{{"prime": "0x800000000000011000000000000000000000000000000000000000000000001",
                "compiler_version": "2.19.4", "hints": [],
                "bytecode": [{}], {}
                "entry_points_by_type": {{
                    "EXTERNAL": [{{"selector": "0x1", "offset": 0, "builtins": ["range_check"]}}],
                    "L1_HANDLER": [], "CONSTRUCTOR": []}}}}"#,
            bytecode.iter().map(|b| format!(r#""{b:#x}""#)).collect::<Vec<_>>().join(","),
            segments.unwrap_or_default(),
        )
    }

    fn expected<H: StarkHash>(bytecode_hash: Felt) -> Felt {
        let builtins = H::hash_array(&[Felt::from_bytes_be_slice(b"range_check")]);
        let external = H::hash_array(&[Felt::ONE, Felt::ZERO, builtins]);
        let empty = H::hash_array(&[]);
        H::hash_array(&[
            Felt::from_bytes_be_slice(b"COMPILED_CLASS_V1"),
            external,
            empty,
            empty,
            bytecode_hash,
        ])
    }

    #[test]
    fn unsegmented_bytecode_hashes_as_one_leaf() {
        let felts = [1u64, 2, 3].map(Felt::from);
        for (version, want) in [
            (
                CompiledClassHashVersion::Poseidon,
                expected::<Poseidon>(Poseidon::hash_array(&felts)),
            ),
            (
                CompiledClassHashVersion::Blake2s,
                expected::<Blake2Felt252>(Blake2Felt252::hash_array(&felts)),
            ),
        ] {
            assert_eq!(compiled_class_hash(&casm(&[1, 2, 3], None), version).unwrap(), want);
        }
    }

    #[test]
    fn segmented_bytecode_hashes_as_a_tree() {
        let a = Poseidon::hash_array(&[Felt::from(1u8)]);
        let b = Poseidon::hash_array(&[Felt::from(2u8), Felt::from(3u8)]);
        let root = Poseidon::hash_array(&[Felt::ONE, a, Felt::TWO, b]) + Felt::ONE;
        let got = compiled_class_hash(
            &casm(&[1, 2, 3], Some("[1, [2]]")),
            CompiledClassHashVersion::Poseidon,
        );
        // [1, [2]]: a leaf of 1 and a node holding a leaf of 2.
        let inner = Poseidon::hash_array(&[Felt::TWO, b]) + Felt::ONE;
        let want = Poseidon::hash_array(&[Felt::ONE, a, Felt::TWO, inner]) + Felt::ONE;
        assert_eq!(got.unwrap(), expected::<Poseidon>(want));
        let flat = compiled_class_hash(
            &casm(&[1, 2, 3], Some("[1, 2]")),
            CompiledClassHashVersion::Poseidon,
        );
        assert_eq!(flat.unwrap(), expected::<Poseidon>(root));
    }

    #[test]
    fn segments_must_cover_the_bytecode() {
        let short = compiled_class_hash(
            &casm(&[1, 2, 3], Some("[1, 1]")),
            CompiledClassHashVersion::Blake2s,
        );
        assert!(short.unwrap_err().contains("outside every segment"));
        let long =
            compiled_class_hash(&casm(&[1, 2, 3], Some("[4]")), CompiledClassHashVersion::Blake2s);
        assert!(long.unwrap_err().contains("a segment of 4 felts"));
    }
}
