//! Stateless decompression (Starknet ≥ 0.13.3) of untrusted felts, as `orchestrator blob
//! decode --decompress` and the blob checks read them.
//!
//! Input: 32-byte big-endian words, each a felt (reduced modulo the Starknet prime).
//!
//! Checked: no panic, no huge allocation from a header's lengths; what decompresses compresses
//! back to data that decompresses to the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orchestrator_fuzz::felts_from_bytes;
use orchestrator_protocol::compression::stateless::{compress, decompress, decompress_prefix};

fuzz_target!(|data: &[u8]| {
    let felts = felts_from_bytes(data);
    match decompress_prefix(&felts) {
        Ok((values, used)) => {
            assert!(used <= felts.len());
            let again = compress(&values).expect("decompressed data is short enough");
            assert_eq!(decompress(&again).expect("our own compression"), values);
            assert_eq!(decompress(&felts).is_ok(), used == felts.len());
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert!(decompress(&felts).is_err());
        }
    }
});
