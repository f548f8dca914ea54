//! Strict parsing and printing of the DA developer formats: felts, blobs, state-update JSON,
//! nonce and alias lists. Every error says where and what (the callers add the file name).

use std::sync::OnceLock;

use num_bigint::BigUint;
use serde_json::Value;
use starknet_core::types::{Felt, StateUpdate};

use crate::{fr::hex_limbs, transform::BYTES_PER_BLOB};

/// A parse failure with its location inside the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ParseError {
    /// Where (e.g. `line 3`, `state_diff.nonces[2].nonce`).
    pub location: String,
    /// What is wrong.
    pub message: String,
}

impl ParseError {
    fn new(location: impl Into<String>, message: impl Into<String>) -> Self {
        Self { location: location.into(), message: message.into() }
    }
}

fn stark_prime() -> &'static BigUint {
    static P: OnceLock<BigUint> = OnceLock::new();
    P.get_or_init(|| {
        (BigUint::from(1u8) << 251u32) + (BigUint::from(17u8) << 192u32) + BigUint::from(1u8)
    })
}

/// Parses a felt: `0x`-prefixed hex or decimal, strictly below the Starknet prime.
pub fn parse_felt(s: &str) -> Result<Felt, String> {
    let t = s.trim();
    let (digits, radix) = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None => (t, 10),
    };
    if digits.is_empty() {
        return Err(format!("`{t}` is not a number"));
    }
    let ok = if radix == 16 {
        digits.bytes().all(|b| b.is_ascii_hexdigit())
    } else {
        digits.bytes().all(|b| b.is_ascii_digit())
    };
    if !ok {
        let kind = if radix == 16 { "hex" } else { "decimal (use 0x for hex)" };
        return Err(format!("`{t}` is not a valid {kind} number"));
    }
    let v = BigUint::parse_bytes(digits.as_bytes(), radix)
        .ok_or_else(|| format!("`{t}` is not a number"))?;
    if &v >= stark_prime() {
        return Err(format!("`{t}` is not below the Starknet field prime 2^251 + 17·2^192 + 1"));
    }
    let bytes = v.to_bytes_be();
    let mut be = [0u8; 32];
    be[32 - bytes.len()..].copy_from_slice(&bytes);
    Ok(Felt::from_bytes_be(&be))
}

/// `0x`-prefixed lowercase hex without leading zeros (`0x0` for zero).
pub fn felt_hex(f: &Felt) -> String {
    hex_limbs(&f.to_le_digits())
}

/// Parses a felt list: either a JSON array (of strings or numbers) or whitespace-separated
/// tokens (typically one per line). Each felt is checked with [`parse_felt`].
pub fn parse_felt_list(text: &str) -> Result<Vec<Felt>, ParseError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let v: Value =
            serde_json::from_str(text).map_err(|e| ParseError::new("JSON", e.to_string()))?;
        let arr =
            v.as_array().ok_or_else(|| ParseError::new("JSON", "expected an array of felts"))?;
        return arr
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let s = match x {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    other => {
                        return Err(ParseError::new(
                            format!("element {i}"),
                            format!("expected a felt, got {other}"),
                        ))
                    }
                };
                parse_felt(&s).map_err(|m| ParseError::new(format!("element {i}"), m))
            })
            .collect();
    }
    let mut out = Vec::new();
    for (line_no, line) in text.lines().enumerate() {
        for tok in line.split_whitespace() {
            let tok = tok.trim_end_matches(',');
            if tok.is_empty() {
                continue;
            }
            out.push(
                parse_felt(tok).map_err(|m| ParseError::new(format!("line {}", line_no + 1), m))?,
            );
        }
    }
    Ok(out)
}

/// Parses a blob given as hex: 262144 hex characters (131072 bytes), optional `0x`, whitespace
/// anywhere ignored.
pub fn parse_blob_hex(text: &str) -> Result<Vec<u8>, ParseError> {
    // One pass over the bytes: skip whitespace, decode nibble pairs. Position `i` counts hex
    // characters after the optional `0x`, as a reader of the file would.
    let trimmed = text.trim_start();
    let body = trimmed.strip_prefix("0x").or_else(|| trimmed.strip_prefix("0X")).unwrap_or(trimmed);
    // Fast path: the usual file is exactly the hex digits (plus a trailing newline).
    let exact = body.trim_end();
    if exact.len() == 2 * BYTES_PER_BLOB {
        let mut out = vec![0u8; BYTES_PER_BLOB];
        if hex::decode_to_slice(exact, &mut out).is_ok() {
            return Ok(out);
        }
    }
    let mut out = Vec::with_capacity(BYTES_PER_BLOB);
    let mut high: Option<u8> = None;
    let mut i = 0usize;
    for (at, &b) in body.as_bytes().iter().enumerate() {
        if b.is_ascii_whitespace() {
            continue;
        }
        let nibble = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => {
                let c = body[at..].chars().next().unwrap_or('?');
                return Err(ParseError::new(
                    format!("character {i}"),
                    format!("`{}` is not a hex digit", c.escape_default()),
                ));
            }
        };
        match high.take() {
            None => high = Some(nibble),
            Some(h) => out.push(h << 4 | nibble),
        }
        i += 1;
    }
    if i != 2 * BYTES_PER_BLOB {
        return Err(ParseError::new(
            "blob",
            format!(
                "a blob is {} hex characters ({BYTES_PER_BLOB} bytes), got {i} hex characters",
                2 * BYTES_PER_BLOB
            ),
        ));
    }
    Ok(out)
}

fn check_felts_in(value: &Value, path: &mut String, errors: &mut Option<ParseError>) {
    if errors.is_some() {
        return;
    }
    match value {
        Value::String(s) => {
            if let Err(m) = parse_felt(s) {
                *errors = Some(ParseError::new(path.clone(), m));
            }
        }
        Value::Number(n) => {
            if let Err(m) = parse_felt(&n.to_string()) {
                *errors = Some(ParseError::new(path.clone(), m));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                check_felts_in(item, path, errors);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                check_felts_in(item, path, errors);
                path.truncate(len);
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}

/// Parses the JSON of `starknet_getStateUpdate` (the bare result, or a JSON-RPC response with a
/// `result`). Every felt of the state diff must be below the Starknet prime.
pub fn parse_state_update(text: &str) -> Result<StateUpdate, ParseError> {
    let mut v: Value =
        serde_json::from_str(text).map_err(|e| ParseError::new("JSON", e.to_string()))?;
    if let Some(result) = v.get_mut("result") {
        v = result.take();
    }
    for field in ["block_hash", "old_root", "new_root"] {
        if let Some(x) = v.get(field) {
            let mut path = field.to_string();
            let mut err = None;
            check_felts_in(x, &mut path, &mut err);
            if let Some(e) = err {
                return Err(e);
            }
        }
    }
    let diff =
        v.get("state_diff").ok_or_else(|| ParseError::new("JSON", "missing field `state_diff`"))?;
    let mut path = "state_diff".to_string();
    let mut err = None;
    check_felts_in(diff, &mut path, &mut err);
    if let Some(e) = err {
        return Err(e);
    }
    serde_json::from_value(v).map_err(|e| ParseError::new("state update", e.to_string()))
}

/// How a bare number (no `0x`) in a JSON field is read.
#[derive(Clone, Copy)]
enum Radix {
    Decimal,
    Hex,
}

fn field_felt(item: &Value, i: usize, names: &[&str]) -> Result<Felt, ParseError> {
    field_felt_radix(item, i, names, Radix::Decimal)
}

fn field_felt_radix(
    item: &Value,
    i: usize,
    names: &[&str],
    radix: Radix,
) -> Result<Felt, ParseError> {
    let (name, x) = names.iter().find_map(|n| item.get(*n).map(|x| (*n, x))).ok_or_else(|| {
        ParseError::new(format!("element {i}"), format!("missing field `{}`", names[0]))
    })?;
    let s = match x {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(ParseError::new(
                format!("element {i}.{name}"),
                format!("expected a felt, got {other}"),
            ))
        }
    };
    let s = match radix {
        Radix::Hex if !s.starts_with("0x") && !s.starts_with("0X") => format!("0x{s}"),
        _ => s,
    };
    parse_felt(&s).map_err(|m| ParseError::new(format!("element {i}.{name}"), m))
}

/// Parses a JSON list of `{ "nonce": .., "address": .. }` into `(address, nonce)` pairs.
///
/// `address` is decimal (or `0x` hex); `nonce` is the string `starknet_getNonce` answered, which is
/// hex with or without the `0x` (the shared vectors hold e.g. `"10fc"` and `"50"` = 0x50).
pub fn parse_nonces(text: &str) -> Result<Vec<(Felt, Felt)>, ParseError> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| ParseError::new("JSON", e.to_string()))?;
    let arr = v
        .as_array()
        .ok_or_else(|| ParseError::new("JSON", "expected an array of {nonce, address}"))?;
    arr.iter()
        .enumerate()
        .map(|(i, item)| {
            Ok((
                field_felt(item, i, &["address", "contract_address"])?,
                field_felt_radix(item, i, &["nonce"], Radix::Hex)?,
            ))
        })
        .collect()
}

/// Parses a JSON list of `{ "key": .., "alias": .. }` (the alias table entries of contract
/// `0x2`) into `(key, alias)` pairs.
pub fn parse_aliases(text: &str) -> Result<Vec<(Felt, Felt)>, ParseError> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| ParseError::new("JSON", e.to_string()))?;
    let arr =
        v.as_array().ok_or_else(|| ParseError::new("JSON", "expected an array of {key, alias}"))?;
    arr.iter()
        .enumerate()
        .map(|(i, item)| {
            Ok((field_felt(item, i, &["key"])?, field_felt(item, i, &["alias", "value"])?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn felts_are_strict() {
        assert_eq!(parse_felt("0x10").unwrap(), Felt::from(16u8));
        assert_eq!(parse_felt("16").unwrap(), Felt::from(16u8));
        assert_eq!(
            parse_felt("0x800000000000011000000000000000000000000000000000000000000000000")
                .unwrap(),
            Felt::MAX
        );
        assert!(parse_felt("0x800000000000011000000000000000000000000000000000000000000000001")
            .unwrap_err()
            .contains("not below the Starknet field prime"));
        assert!(parse_felt("0xzz").unwrap_err().contains("not a valid hex"));
        assert!(parse_felt("12a").unwrap_err().contains("not a valid decimal"));
        assert!(parse_felt("0x").is_err());
        assert_eq!(felt_hex(&Felt::ZERO), "0x0");
        assert_eq!(felt_hex(&Felt::from(255u8)), "0xff");
    }

    #[test]
    fn felt_lists() {
        assert_eq!(
            parse_felt_list("0x1\n2\n\n 0x3 \n").unwrap(),
            vec![Felt::ONE, Felt::TWO, Felt::THREE]
        );
        assert_eq!(parse_felt_list("[\"0x1\", 2]").unwrap(), vec![Felt::ONE, Felt::TWO]);
        let e = parse_felt_list("0x1\n0xg\n").unwrap_err();
        assert_eq!(e.location, "line 2");
    }

    #[test]
    fn nonces_are_rpc_hex() {
        let n = parse_nonces(r#"[{"nonce":"10","address":"16"},{"nonce":"0xa","address":"0x11"}]"#)
            .unwrap();
        assert_eq!(
            n,
            vec![(Felt::from(16u8), Felt::from(16u8)), (Felt::from(17u8), Felt::from(10u8))]
        );
        assert!(parse_nonces(r#"[{"nonce":"xyz","address":"1"}]"#)
            .unwrap_err()
            .location
            .contains("nonce"));
    }

    #[test]
    fn blobs() {
        let hex = "00".repeat(BYTES_PER_BLOB);
        assert_eq!(parse_blob_hex(&format!("0x{hex}\n")).unwrap().len(), BYTES_PER_BLOB);
        assert!(parse_blob_hex("0x00").unwrap_err().message.contains("got 2 hex characters"));
        assert!(parse_blob_hex("0x0g").unwrap_err().message.contains("not a hex digit"));
    }

    #[test]
    fn state_update_rejects_big_felts() {
        let text = r#"{"block_hash":"0x1","old_root":"0x2","new_root":"0x3","state_diff":{
            "storage_diffs":[{"address":"0x5","storage_entries":[{"key":"0x1","value":"0x800000000000011000000000000000000000000000000000000000000000001"}]}],
            "deprecated_declared_classes":[],"declared_classes":[],"deployed_contracts":[],"replaced_classes":[],"nonces":[]}}"#;
        let e = parse_state_update(text).unwrap_err();
        assert_eq!(e.location, "state_diff.storage_diffs[0].storage_entries[0].value");
        assert!(parse_state_update("{").is_err());
    }
}
