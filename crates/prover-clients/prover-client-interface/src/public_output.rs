//! The public output of a Stone proof: the values of the output segment, read from the
//! proof's public memory.
//!
//! A Stone proof's `public_input` names the segments (`memory_segments.output` has
//! `begin_addr` and `stop_ptr`) and lists the public memory as `{address, page, value}`
//! cells; the main page (page 0) holds the output segment. The output of a proven SNOS PIE is
//! the OS output; the output of an L2 verification proof is what the verifier program
//! outputs. The L3 state update sends both (reference §6.5).

use std::collections::BTreeMap;

use serde_json::{json, Value};
use starknet_types_core::felt::Felt;

use crate::{ProverError, ProverResult};

/// Address where [`proof_with_public_output`] places the output segment.
const OUTPUT_BEGIN: u64 = 1 << 20;

fn invalid(reason: impl Into<String>) -> ProverError {
    ProverError::InvalidProof(reason.into())
}

fn address(v: &Value, what: &str) -> ProverResult<u64> {
    v.as_u64().ok_or_else(|| invalid(format!("{what} is not an unsigned integer: {v}")))
}

/// The output segment of `proof` (a Stone proof as JSON), in address order.
///
/// # Errors
/// `InvalidProof` naming what is missing: no `public_input`, no output segment, an output
/// cell absent from the main page of the public memory, or a value that is not a felt.
pub fn public_output(proof: &Value) -> ProverResult<Vec<Felt>> {
    let input =
        proof.get("public_input").ok_or_else(|| invalid("the proof has no public_input"))?;
    let output = input
        .pointer("/memory_segments/output")
        .ok_or_else(|| invalid("the proof's public input has no output segment"))?;
    let begin = address(&output["begin_addr"], "the output segment's begin_addr")?;
    let stop = address(&output["stop_ptr"], "the output segment's stop_ptr")?;
    if stop < begin {
        return Err(invalid(format!(
            "the output segment ends ({stop}) before it begins ({begin})"
        )));
    }
    let cells = input
        .get("public_memory")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("the proof's public input has no public_memory list"))?;
    // Only the cells the proof holds are stored: the claimed segment length is untrusted, so
    // nothing is allocated from it (a missing cell ends the walk below at once).
    let mut found: BTreeMap<u64, Felt> = BTreeMap::new();
    for cell in cells {
        if cell.get("page").and_then(Value::as_u64).unwrap_or(0) != 0 {
            continue;
        }
        let addr = address(&cell["address"], "a public memory address")?;
        if !(begin..stop).contains(&addr) {
            continue;
        }
        let text = cell["value"]
            .as_str()
            .ok_or_else(|| invalid(format!("the value at {addr} is not a string")))?;
        let felt = Felt::from_hex(text)
            .or_else(|_| Felt::from_dec_str(text))
            .map_err(|_| invalid(format!("the value at {addr} is not a felt: {text}")))?;
        found.insert(addr, felt);
    }
    let mut out = Vec::with_capacity(found.len());
    for addr in begin..stop {
        let felt = found
            .remove(&addr)
            .ok_or_else(|| invalid(format!("output cell {addr} is not in the public memory")))?;
        out.push(felt);
    }
    Ok(out)
}

/// A proof-shaped JSON whose public output is `output` (mock provers; proves nothing).
pub fn proof_with_public_output(layout: &str, n_steps: u64, output: &[Felt]) -> Value {
    let memory: Vec<Value> = output
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"address": OUTPUT_BEGIN + i as u64, "page": 0, "value": format!("{v:#x}")}))
        .collect();
    json!({
        "proof_parameters": {"stark": {"fri": {"fri_step_list": [0, 4, 4, 3]}, "log_n_cosets": 2}, "n_verifier_friendly_commitment_layers": 9999},
        "public_input": {
            "layout": layout,
            "n_steps": n_steps,
            "memory_segments": {"output": {"begin_addr": OUTPUT_BEGIN, "stop_ptr": OUTPUT_BEGIN + output.len() as u64}},
            "public_memory": memory,
        },
        "annotations": [],
        "mock": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn felts(v: &[u64]) -> Vec<Felt> {
        v.iter().copied().map(Felt::from).collect()
    }

    #[test]
    fn output_round_trips_through_a_built_proof() {
        let output = felts(&[7, 0, u64::MAX, 3]);
        let proof = proof_with_public_output("recursive", 1 << 15, &output);
        assert_eq!(public_output(&proof).unwrap(), output);
        assert_eq!(
            public_output(&proof_with_public_output("dynamic", 1, &[])).unwrap(),
            Vec::<Felt>::new()
        );
    }

    /// Found by the `atlantic_response` fuzz target's review: a proof claiming a huge output
    /// segment must be an error naming the first missing cell, not an allocation that aborts.
    #[test]
    fn a_huge_claimed_output_segment_is_a_missing_cell_not_an_allocation() {
        let proof = json!({"public_input": {
            "memory_segments": {"output": {"begin_addr": 10, "stop_ptr": 99_999_999_999_999_u64}},
            "public_memory": [{"address": 10, "page": 0, "value": "0x1"}],
        }});
        let err = public_output(&proof).expect_err("cell 11 is missing").to_string();
        assert!(err.contains("output cell 11 is not in the public memory"), "{err}");
    }

    #[test]
    fn output_is_taken_by_address_from_the_main_page_only() {
        // Cells out of order, another page at the same addresses, program cells before it.
        let proof = json!({"public_input": {
        "memory_segments": {"program": {"begin_addr": 1, "stop_ptr": 3}, "output": {"begin_addr": 10, "stop_ptr": 12}},
        "public_memory": [
            {"address": 1, "page": 0, "value": "0x99"},
            {"address": 11, "page": 0, "value": "0x2"},
            {"address": 10, "page": 1, "value": "0x55"},
            {"address": 10, "page": 0, "value": "0x1"},
        ]}});
        assert_eq!(public_output(&proof).unwrap(), felts(&[1, 2]));
    }

    #[test]
    fn missing_parts_are_named() {
        let msg = |v: Value| public_output(&v).unwrap_err().to_string();
        assert!(msg(json!({})).contains("no public_input"));
        assert!(msg(json!({"public_input": {"memory_segments": {}}})).contains("no output segment"));
        let gap = json!({"public_input": {
            "memory_segments": {"output": {"begin_addr": 10, "stop_ptr": 12}},
            "public_memory": [{"address": 10, "page": 0, "value": "0x1"}]}});
        assert!(msg(gap).contains("output cell 11"));
        let bad = json!({"public_input": {
            "memory_segments": {"output": {"begin_addr": 0, "stop_ptr": 1}},
            "public_memory": [{"address": 0, "page": 0, "value": "zz"}]}});
        assert!(msg(bad).contains("not a felt"));
        let reversed = json!({"public_input": {"memory_segments": {"output": {"begin_addr": 5, "stop_ptr": 1}}, "public_memory": []}});
        assert!(msg(reversed).contains("before it begins"));
    }
}
