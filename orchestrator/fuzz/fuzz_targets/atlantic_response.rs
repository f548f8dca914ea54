//! Atlantic's answers: the JSON bodies of its routes (query status, new query, bucket, bucket
//! with queries), the proof it serves (a JSON object whose public output the jobs read) and the
//! classification of its HTTP failures.
//!
//! Input: one selector byte (which answer; for an HTTP failure, two more bytes of status), then
//! the body.
//!
//! Checked: no panic; what parses serialises and parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orchestrator_atlantic_service::types::{
    AtlanticAddQueryResponse, AtlanticBucketResponse, AtlanticGetBucketResponse,
    AtlanticQueryResponse,
};
use orchestrator_prover_client_interface::{retry::classify_http_failure, validate_proof_json};
use serde::{de::DeserializeOwned, Serialize};

fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(body: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<T>(body) {
        let bytes = serde_json::to_vec(&v).expect("serialises");
        assert_eq!(serde_json::from_slice::<T>(&bytes).expect("parses back"), v);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    match selector % 6 {
        0 => round_trip::<AtlanticQueryResponse>(body),
        1 => round_trip::<AtlanticAddQueryResponse>(body),
        2 => round_trip::<AtlanticBucketResponse>(body),
        3 => {
            round_trip::<AtlanticGetBucketResponse>(body);
            if let Ok(r) = serde_json::from_slice::<AtlanticGetBucketResponse>(body) {
                for q in &r.queries {
                    if let Some(step) = q.step {
                        assert!(!step.as_str().is_empty());
                        let _ = step.is_aggregation();
                    }
                }
            }
        }
        4 => {
            let text = String::from_utf8_lossy(body);
            if let Ok(proof) = validate_proof_json(&text) {
                orchestrator_fuzz::public_output_of(&proof);
            }
        }
        _ => {
            let Some((status, body)) = body.split_first_chunk::<2>() else { return };
            let status = 100 + u16::from_le_bytes(*status) % 500;
            let _ = classify_http_failure(status, &String::from_utf8_lossy(body));
        }
    }
});
