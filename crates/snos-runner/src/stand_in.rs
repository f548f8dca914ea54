//! The in-process **stand-in** for the Starknet OS: cairo-vm runs `cairo/os_stand_in.cairo`,
//! whose one hint (implemented here in Rust) writes the OS-shaped output of
//! [`build_os_output`](crate::os_output::build_os_output) into memory; the program copies it
//! into the output builtin. The result is a real Cairo PIE whose output is that OS-shaped
//! output, so its fact is a real fact of a real run — of our program, not of the Starknet OS.
//!
//! It executes no transaction and proves nothing about the blocks it names.

use std::{collections::HashMap, io::Read, rc::Rc, sync::Arc, time::Instant};

use async_trait::async_trait;
use cairo_vm::{
    cairo_run::{cairo_run_program, CairoRunConfig},
    hint_processor::{
        builtin_hint_processor::{
            builtin_hint_processor_definition::{BuiltinHintProcessor, HintFunc},
            hint_utils::insert_value_from_var_name,
        },
        hint_processor_definition::HintReference,
    },
    serde::deserialize_program::ApTracking,
    types::{
        exec_scope::ExecutionScopes, layout_name::LayoutName, program::Program,
        relocatable::MaybeRelocatable,
    },
    vm::{errors::hint_errors::HintError, vm_core::VirtualMachine},
};

use crate::{os_output::build_os_output, Felt, SnosInput, SnosOutput, SnosRunner, SnosRunnerError};

/// The compiled stand-in program (`scripts/compile-cairo.sh` regenerates it).
pub const PROGRAM_JSON: &[u8] = include_bytes!("../cairo/os_stand_in.json");
/// Its Cairo source.
pub const PROGRAM_SOURCE: &str = include_str!("../cairo/os_stand_in.cairo");
/// The code of the program's only custom hint, as it appears in the compiled JSON.
pub const HINT_CODE: &str = "stand_in_os_output(ids, segments, memory)";

/// Runs the stand-in program with cairo-vm; see the module docs. Name: `stand-in`.
#[derive(Debug, Clone, Default)]
pub struct StandInRunner;

impl StandInRunner {
    /// A stand-in runner.
    pub fn new() -> Self {
        Self
    }
}

/// The program hash of the stand-in program, as its PIEs carry it (cairo-lang's
/// `compute_program_hash_chain`, bootloader version 0). A core contract that accepts the
/// stand-in's (aggregated) outputs is deployed with this hash.
///
/// # Errors
/// The committed program does not load (a broken build).
pub fn program_hash() -> Result<Felt, SnosRunnerError> {
    let program = Program::from_bytes(PROGRAM_JSON, Some("main")).map_err(|e| {
        SnosRunnerError::Deterministic(format!("stand-in program does not load: {e}"))
    })?;
    let stripped = program.get_stripped_program().map_err(|e| {
        SnosRunnerError::Deterministic(format!("stand-in program does not strip: {e}"))
    })?;
    cairo_vm::program_hash::compute_program_hash_chain(&stripped, 0)
        .map_err(|e| SnosRunnerError::Deterministic(format!("stand-in program hash: {e}")))
}

/// Parses a cairo-vm layout name.
pub fn layout_name(name: &str) -> Result<LayoutName, SnosRunnerError> {
    use LayoutName as L;
    let all = [
        L::plain,
        L::small,
        L::dex,
        L::recursive,
        L::starknet,
        L::starknet_with_keccak,
        L::recursive_large_output,
        L::recursive_with_poseidon,
        L::all_solidity,
        L::all_cairo,
        L::dynamic,
        L::all_cairo_stwo,
        L::stwo_no_ecop,
        L::perpetual,
        L::dex_with_bitwise,
    ];
    all.into_iter()
        .find(|l| l.to_str() == name)
        .ok_or_else(|| SnosRunnerError::Deterministic(format!("unknown Cairo layout {name:?}")))
}

/// Runs the stand-in program so that its output is `os_output`; returns the zipped PIE and
/// the step count. Blocking (CPU-bound).
pub fn run_program(
    os_output: Vec<Felt>,
    layout: LayoutName,
) -> Result<(Vec<u8>, usize), SnosRunnerError> {
    run_program_at(os_output, 0, layout)
}

/// Like [`run_program`] for an output whose OS header (the two flags the program checks)
/// starts at `header_offset` instead of 0: the aggregator mode
/// ([`crate::aggregator`]) writes `[n_children, child segments…, OS output]`.
pub fn run_program_at(
    output: Vec<Felt>,
    header_offset: usize,
    layout: LayoutName,
) -> Result<(Vec<u8>, usize), SnosRunnerError> {
    let os_output = output;
    if layout == LayoutName::dynamic {
        // The dynamic layout needs parameters we do not have; any fixed layout with an output
        // builtin will do for the stand-in.
        return Err(SnosRunnerError::Deterministic(
            "the stand-in cannot run with the dynamic layout; use a fixed one such as all_cairo"
                .into(),
        ));
    }
    let program = Program::from_bytes(PROGRAM_JSON, Some("main")).map_err(|e| {
        SnosRunnerError::Deterministic(format!("stand-in program does not load: {e}"))
    })?;
    let data = Arc::new(os_output);
    let hint_data = Arc::clone(&data);
    let hint = HintFunc(Box::new(
        move |vm: &mut VirtualMachine,
              _scopes: &mut ExecutionScopes,
              ids: &HashMap<String, HintReference>,
              ap: &ApTracking,
              _constants: &HashMap<String, Felt>|
              -> Result<(), HintError> {
            let base = vm.add_memory_segment();
            let values: Vec<MaybeRelocatable> =
                hint_data.iter().map(|f| MaybeRelocatable::from(*f)).collect();
            vm.load_data(base, &values)?;
            insert_value_from_var_name("os_output", base, vm, ids, ap)?;
            insert_value_from_var_name("n_felts", Felt::from(hint_data.len()), vm, ids, ap)?;
            insert_value_from_var_name("header_offset", Felt::from(header_offset), vm, ids, ap)?;
            Ok(())
        },
    ));
    let mut hints = BuiltinHintProcessor::new_empty();
    hints.add_hint(HINT_CODE.to_owned(), Rc::new(hint));
    let config = CairoRunConfig {
        layout,
        proof_mode: false,
        relocate_mem: true,
        ..CairoRunConfig::default()
    };
    let runner = cairo_run_program(&program, &config, &mut hints)
        .map_err(|e| SnosRunnerError::Deterministic(format!("stand-in run failed: {e}")))?;
    let pie = runner
        .get_cairo_pie()
        .map_err(|e| SnosRunnerError::Deterministic(format!("stand-in PIE: {e}")))?;
    let n_steps = pie.execution_resources.n_steps;

    let file = tempfile::NamedTempFile::new()
        .map_err(|e| SnosRunnerError::Retryable(format!("temp file: {e}")))?;
    pie.write_zip_file(file.path(), false)
        .map_err(|e| SnosRunnerError::Retryable(format!("writing the PIE zip: {e}")))?;
    let mut zip = Vec::new();
    file.reopen()
        .and_then(|mut f| f.read_to_end(&mut zip))
        .map_err(|e| SnosRunnerError::Retryable(format!("reading the PIE zip: {e}")))?;
    Ok((zip, n_steps))
}

#[async_trait]
impl SnosRunner for StandInRunner {
    fn name(&self) -> &'static str {
        "stand-in"
    }

    fn needs_batch_data(&self) -> bool {
        true
    }

    async fn run(&self, input: &SnosInput) -> Result<SnosOutput, SnosRunnerError> {
        let started = Instant::now();
        let layout = layout_name(&input.layout)?;
        let os_output = build_os_output(input)?;
        let expected = os_output.clone();
        let (cairo_pie_zip, n_steps) =
            tokio::task::spawn_blocking(move || run_program(os_output, layout))
                .await
                .map_err(|e| SnosRunnerError::Retryable(format!("stand-in task: {e}")))??;
        // The PIE must carry exactly the output we meant to write.
        let written = crate::pie_output(&cairo_pie_zip)?;
        if written != expected {
            return Err(SnosRunnerError::Deterministic(
                "stand-in PIE output differs from the OS output it was given".into(),
            ));
        }
        tracing::info!(
            runner = "stand-in",
            start_block = input.start_block,
            end_block = input.end_block,
            n_steps,
            output_len = written.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Stand-in OS run done (proves nothing about execution)"
        );
        Ok(SnosOutput { cairo_pie_zip, os_output: written, n_steps })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os_output::{BatchData, BlobData};
    use crate::Retryable;
    use orchestrator_gps_fact_checker::fact::{self as facts, pie, snos_fact};

    #[test]
    fn program_hash_is_the_hash_its_pies_carry() {
        let (zip, _) =
            run_program(build_os_output(&input(true)).unwrap(), LayoutName::all_cairo).unwrap();
        let parsed = pie::read_pie_bytes(&zip).unwrap();
        let from_pie =
            orchestrator_gps_fact_checker::fact::program_hash::program_hash(&parsed).unwrap();
        assert_eq!(program_hash().unwrap(), from_pie);
        assert_ne!(from_pie, Felt::ZERO);
    }

    fn input(use_kzg_da: bool) -> SnosInput {
        let felts: Vec<Felt> = (1u64..=50).map(Felt::from).collect();
        let mut blob = vec![0u8; orchestrator_protocol::kzg::BYTES_PER_BLOB];
        for (i, f) in felts.iter().enumerate() {
            blob[32 * i..32 * (i + 1)].copy_from_slice(&f.to_bytes_be());
        }
        SnosInput {
            start_block: 1,
            end_block: 3,
            rpc_url: "http://127.0.0.1:1".parse().unwrap(),
            layout: "all_cairo".into(),
            use_kzg_da,
            full_output: !use_kzg_da,
            chain_id: Felt::from_bytes_be_slice(b"SN_TEST"),
            da_public_keys: vec![Felt::from(5u8)],
            is_l3: use_kzg_da,
            strk_fee_token_address: crate::MAINNET_STRK_FEE_TOKEN_ADDRESS,
            eth_fee_token_address: crate::MAINNET_ETH_FEE_TOKEN_ADDRESS,
            versioned_constants_path: None,
            batch: Some(BatchData {
                initial_root: Felt::from(100u8),
                final_root: Felt::from(101u8),
                prev_block_hash: Felt::from(102u8),
                new_block_hash: Felt::from(103u8),
                messages_to_l1: vec![],
                messages_to_l2: vec![],
                blob_data: BlobData { felts, blobs: vec![blob] },
                state_diff_section: vec![Felt::ZERO, Felt::ZERO],
            }),
        }
    }

    #[test]
    fn compiled_program_holds_the_hint() {
        let json = std::str::from_utf8(PROGRAM_JSON).unwrap();
        assert!(json.contains(&format!("\"code\": \"{HINT_CODE}\"")));
        assert!(PROGRAM_SOURCE.contains(&format!("%{{ {HINT_CODE} %}}")));
    }

    #[tokio::test]
    async fn pie_reads_back_and_its_fact_follows_the_kzg_flag() {
        for kzg in [false, true, true] {
            let i = input(kzg);
            let started = std::time::Instant::now();
            let out = StandInRunner::new().run(&i).await.unwrap();
            eprintln!(
                "stand-in run (use_kzg_da={kzg}): {:?}, {} steps",
                started.elapsed(),
                out.n_steps
            );
            assert!(out.n_steps > 0);
            let read = pie::read_pie_bytes(&out.cairo_pie_zip).unwrap();
            read.run_validity_checks().unwrap();
            assert_eq!(pie::program_output(&read).unwrap(), out.os_output);
            assert_eq!(out.os_output, build_os_output(&i).unwrap());
            let fact = snos_fact(&read, &out.os_output).unwrap();
            let expected =
                if kzg { facts::fact(&read).unwrap() } else { facts::l2_fact(&read).unwrap() };
            assert_eq!(fact, expected);
        }
    }

    #[test]
    fn bad_flags_fail_the_run() {
        let mut out = build_os_output(&input(false)).unwrap();
        out[8] = Felt::TWO;
        let err = run_program(out, LayoutName::all_cairo).unwrap_err();
        assert!(!err.is_retryable(), "{err}");
        let err = run_program(vec![Felt::ONE; 3], LayoutName::all_cairo).unwrap_err();
        assert!(!err.is_retryable(), "{err}");
    }

    #[test]
    fn layouts() {
        assert_eq!(layout_name("all_cairo").unwrap(), LayoutName::all_cairo);
        assert!(layout_name("nope").is_err());
        assert!(run_program(vec![Felt::ZERO; 10], LayoutName::dynamic).is_err());
        // A small layout with an output builtin works too.
        assert!(run_program(vec![Felt::ZERO; 10], LayoutName::small).is_ok());
    }

    /// The committed JSON is what cairo-compile makes of the committed source (when the
    /// reference venv with cairo-lang exists; CI without it skips).
    #[test]
    fn committed_json_matches_a_fresh_compile() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let venv = std::env::var("ORCH_PYREF_VENV").unwrap_or_else(|_| {
            orchestrator_test_support::launch::cache_dir().join("pyref-venv").display().to_string()
        });
        if !std::path::Path::new(&format!("{venv}/bin/cairo-compile")).exists() {
            eprintln!("skipped: no cairo-compile in {venv} (scripts/install-pyrefs.sh)");
            return;
        }
        let status = std::process::Command::new(format!("{root}/scripts/compile-cairo.sh"))
            .arg("--check")
            .env("ORCH_PYREF_VENV", &venv)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "committed os_stand_in.json is stale: run scripts/compile-cairo.sh"
        );
    }
}
