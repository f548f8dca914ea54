//! SHARP's answers: the JSON bodies of `get_status` and `add_job`, the proof of `get_proof`
//! (a JSON object whose public output the jobs read), the facts its aggregation status is
//! checked with, and the classification of its HTTP failures.
//!
//! Input: one selector byte (which answer; for an HTTP failure, two more bytes of status), then
//! the body.
//!
//! Checked: no panic; what parses serialises and parses back to the same value; a parsed fact
//! prints back to the same fact.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orchestrator_gps_fact_checker::onchain::parse_fact;
use orchestrator_prover_client_interface::{retry::classify_http_failure, validate_proof_json};
use orchestrator_sharp_service::{SharpAddJobResponse, SharpStatusResponse};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    match selector % 5 {
        0 => {
            if let Ok(v) = serde_json::from_slice::<SharpStatusResponse>(body) {
                let bytes = serde_json::to_vec(&v).expect("serialises");
                assert_eq!(serde_json::from_slice::<SharpStatusResponse>(&bytes).unwrap(), v);
            }
        }
        1 => {
            // `add_job` reads its answer leniently: anything unreadable is the default.
            let v: SharpAddJobResponse = serde_json::from_slice(body).unwrap_or_default();
            let bytes = serde_json::to_vec(&v).expect("serialises");
            assert_eq!(serde_json::from_slice::<SharpAddJobResponse>(&bytes).unwrap(), v);
        }
        2 => {
            let text = String::from_utf8_lossy(body);
            if let Ok(proof) = validate_proof_json(&text) {
                orchestrator_fuzz::public_output_of(&proof);
            }
        }
        3 => {
            let text = String::from_utf8_lossy(body);
            if let Ok(fact) = parse_fact(&text) {
                assert_eq!(parse_fact(&fact.to_string()).expect("printed fact parses"), fact);
            }
        }
        _ => {
            let Some((status, body)) = body.split_first_chunk::<2>() else { return };
            let status = 100 + u16::from_le_bytes(*status) % 500;
            let _ = classify_http_failure(status, &String::from_utf8_lossy(body));
        }
    }
});
