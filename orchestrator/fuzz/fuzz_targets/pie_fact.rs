//! Cairo PIE zip → fact: `read_pie_bytes` (the zip, its entries, cairo-vm's serde types and
//! memory image), then the output segment, the fact topology, the program hash, the Merkle
//! root and the facts (keccak, aggregator mode, L2 Poseidon, the SNOS choice between them), as
//! `orchestrator fact`, the SNOS job and the prover jobs compute them.
//!
//! Input: see [`orchestrator_fuzz::pie_zip`] (a raw zip, or its entries separated by a marker).
//!
//! Checked: no panic, no huge allocation from a PIE's sizes; a computed fact is
//! `keccak(program_hash ‖ root)` of its own parts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orchestrator_fuzz::pie_zip;
use orchestrator_gps_fact_checker::fact::{
    fact_from_parts, fact_info, l2_fact, pie, snos_fact, FactOptions, SnosFactKind,
};

fuzz_target!(|data: &[u8]| {
    let zip = pie_zip(data);
    let pie = match pie::read_pie_bytes(&zip) {
        Ok(pie) => pie,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    match fact_info(&pie, &FactOptions::default()) {
        Ok(info) => {
            assert_eq!(info.fact, fact_from_parts(&info.program_hash, &info.root.hash));
            assert_eq!(info.root.end_offset, info.program_output.len());
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let aggregator = FactOptions { program_hash: None, aggregator: true };
    if let Err(e) = fact_info(&pie, &aggregator) {
        assert!(!e.to_string().is_empty());
    }
    let _ = l2_fact(&pie);
    if let Ok(output) = pie::program_output(&pie) {
        if SnosFactKind::from_os_output(&output).is_ok() {
            let _ = snos_fact(&pie, &output);
        }
    }
});
