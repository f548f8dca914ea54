//! `cairo-build-casm`: compiles Sierra contract classes to CASM the way the settlement network
//! does, and prints each compiled class hash.
//!
//! ```text
//! cairo-build-casm <Name>.contract_class.json...
//! ```
//!
//! Writes `<Name>.compiled_contract_class.json` next to each input. A declare transaction
//! carries the CASM hash, and the network (starknet-devnet 0.10.1 here) recompiles the Sierra
//! itself and refuses a declare whose hash differs from its own compilation: so this uses the
//! network's Sierra compiler version and its options (Python hints on, no bytecode size limit,
//! as the universal-sierra-compiler that devnet calls). The hash printed is the BLAKE2s
//! compiled class hash (Starknet 0.14.1); the Poseidon one is printed too, for older networks.

use std::{path::PathBuf, process::ExitCode};

use cairo_lang_starknet_classes::{
    casm_contract_class::CasmContractClass, contract_class::ContractClass,
};

type Result<T> = std::result::Result<T, String>;

fn compile(input: &PathBuf) -> Result<(PathBuf, CasmContractClass)> {
    let text = std::fs::read_to_string(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let class: ContractClass =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", input.display()))?;
    let program = class
        .extract_sierra_program(true)
        .map_err(|e| format!("{}: bad Sierra program: {e}", input.display()))?;
    let casm = CasmContractClass::from_contract_class(class, program, true, usize::MAX)
        .map_err(|e| format!("{}: {e}", input.display()))?;
    let name = input
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".contract_class.json"))
        .ok_or_else(|| format!("{}: expected <Name>.contract_class.json", input.display()))?;
    let out = input.with_file_name(format!("{name}.compiled_contract_class.json"));
    let mut json =
        serde_json::to_string_pretty(&casm).map_err(|e| format!("{}: {e}", out.display()))?;
    json.push('\n');
    std::fs::write(&out, json).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok((out, casm))
}

fn main() -> ExitCode {
    let inputs: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    if inputs.is_empty() {
        eprintln!("usage: cairo-build-casm <Name>.contract_class.json...");
        return ExitCode::FAILURE;
    }
    for input in &inputs {
        match compile(input) {
            Ok((out, casm)) => println!(
                "casm {}: compiled_class_hash(blake2s)={:#x} compiled_class_hash(poseidon)={:#x}",
                out.display(),
                casm.compiled_class_hash(),
                casm.legacy_compiled_class_hash(),
            ),
            Err(e) => {
                eprintln!("cairo-build-casm: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
