//! SNOS `os_output.json` (a JSON array of felts) and the readers of an OS output: the KZG-DA
//! flag that chooses the fact, the aggregator-mode filter, the L2 (Poseidon) fact, and the
//! settlement's `x0` and per-blob `y` values.
//!
//! Input: the JSON text.
//!
//! Checked: no panic; a parsed output prints back (as `0x` hex) to the same felts; the
//! aggregator filter returns a slice of its input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orchestrator_gps_fact_checker::fact::{aggregator::filter_aggregator_output, l2, SnosFactKind};
use orchestrator_protocol::kzg::program_output_points;
use orchestrator_snos_runner::external::parse_os_output_json;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let output = match parse_os_output_json(&text) {
        Ok(output) => output,
        Err(e) => {
            assert!(!e.is_empty());
            return;
        }
    };
    let printed: Vec<String> = output.iter().map(|f| format!("{f:#x}")).collect();
    let again = parse_os_output_json(&serde_json::to_string(&printed).unwrap())
        .expect("printed felts parse");
    assert_eq!(again, output);

    let _ = SnosFactKind::from_os_output(&output);
    if let Ok(filtered) = filter_aggregator_output(&output) {
        assert!(filtered.len() <= output.len());
    }
    let _ = l2::l2_fact(&output);
    let words: Vec<[u8; 32]> = output.iter().map(|f| f.to_bytes_be()).collect();
    if let Ok((_, ys)) = program_output_points(&words) {
        assert!(4 * ys.len() + 12 <= words.len());
    }
});
