//! The text formats of the DA developer commands (`orchestrator blob …`): felt lists, nonce
//! and alias lists, hex blobs, Starknet versions and single felts.
//!
//! Input: one selector byte, then the text.
//!
//! Checked: no panic; a parsed felt prints back to the same felt; a parsed version prints back
//! to the same version; a parsed blob has 131072 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orchestrator_protocol::compression::{
    io::{felt_hex, parse_aliases, parse_blob_hex, parse_felt, parse_felt_list, parse_nonces},
    StarknetVersion, BYTES_PER_BLOB,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, text)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(text);
    match selector % 6 {
        0 => {
            if let Ok(felts) = parse_felt_list(&text) {
                for f in felts {
                    assert_eq!(parse_felt(&felt_hex(&f)), Ok(f));
                }
            }
        }
        1 => {
            let _ = parse_nonces(&text).map_err(|e| e.to_string());
        }
        2 => {
            let _ = parse_aliases(&text).map_err(|e| e.to_string());
        }
        3 => match parse_blob_hex(&text) {
            Ok(blob) => assert_eq!(blob.len(), BYTES_PER_BLOB),
            Err(e) => assert!(!e.message.is_empty()),
        },
        4 => {
            if let Ok(v) = StarknetVersion::parse(&text) {
                assert_eq!(StarknetVersion::parse(&v.to_string()), Ok(v));
            }
        }
        _ => {
            if let Ok(f) = parse_felt(&text) {
                assert_eq!(parse_felt(&felt_hex(&f)), Ok(f));
                assert_eq!(parse_felt(&f.to_biguint().to_string()), Ok(f));
            }
        }
    }
});
