//! The blob decoder behind `orchestrator blob decode`: a file of hex blobs (one per line) →
//! the coefficients of each blob as text.
//!
//! Input: bit 0 of the first byte chooses the framing. Set: the rest is the file. Clear: the
//! second byte chooses a layout (`0x`, upper case, CRLF, indentation, a second line, a bad
//! character, trailing text, a missing digit, words left as they are or made canonical) and
//! the rest is the blob's bytes (zero-padded to 131072), written here as hex: small inputs
//! reach the decoder's fast path.
//!
//! Checked: no panic; a file of canonical blobs decodes to one line of 4096 coefficients per
//! blob whose sum and alternating sum are the blob's first two words (its values at 1 and -1);
//! a blob with a word at or above the BLS12-381 modulus, or a broken line, is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orchestrator_protocol::{
    decode::decode_blobs,
    fr::Fr,
    transform::{BYTES_PER_BLOB, FELTS_PER_BLOB},
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode & 1 == 1 {
        let mut out = Vec::new();
        match decode_blobs(rest, &mut out, &mut |_| {}) {
            Ok(n) => assert_eq!(out.iter().filter(|b| **b == b'\n').count(), n),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        return;
    }
    let Some((&layout, bytes)) = rest.split_first() else { return };
    let mut blob = bytes[..bytes.len().min(BYTES_PER_BLOB)].to_vec();
    blob.resize(BYTES_PER_BLOB, 0);
    if layout & 0x80 == 0 {
        // Below 2^254, so below the BLS12-381 modulus: a canonical blob.
        for word in blob.chunks_exact_mut(32) {
            word[0] &= 0x3f;
        }
    }
    let mut digits = hex::encode(&blob);
    if layout & 2 != 0 {
        digits.make_ascii_uppercase();
    }
    let mut line = String::new();
    if layout & 8 != 0 {
        line.push_str(" \t");
    }
    if layout & 1 != 0 {
        line.push_str("0x");
    }
    line.push_str(&digits);
    let mut broken = false;
    if layout & 0x20 != 0 {
        // A bad character where the bytes after the blob say.
        let at = bytes.get(BYTES_PER_BLOB..).and_then(|b| b.first()).copied().unwrap_or(7);
        let at = usize::from(at) * 997 % line.len();
        line.replace_range(at..at + 1, "g");
        broken = true;
    }
    if layout & 0x40 != 0 {
        line.pop();
        broken = true;
    }
    let eol = if layout & 4 != 0 { "\r\n" } else { "\n" };
    let mut file = format!("{line}{eol}");
    if layout & 0x10 != 0 {
        file.push_str(&format!("\n{line}"));
    }

    let mut out = Vec::new();
    let result = decode_blobs(file.as_bytes(), &mut out, &mut |_| {});
    let lines = if layout & 0x10 != 0 { 2 } else { 1 };
    // Every word below the BLS12-381 modulus: the blob is canonical.
    let words: Option<Vec<Fr>> =
        blob.chunks_exact(32).map(|w| Fr::from_be_bytes(w.try_into().expect("32 bytes"))).collect();
    match (&result, &words) {
        (Ok(n), Some(words)) => {
            assert!(!broken, "a broken line was accepted");
            assert_eq!(*n, lines);
            let text = std::str::from_utf8(&out).expect("the decoder writes ASCII");
            for line in text.lines() {
                let coefficients: Vec<Fr> = line
                    .split(' ')
                    .map(|c| {
                        let digits = c.strip_prefix("0x").expect("0x hex");
                        let mut be = [0u8; 32];
                        let padded = format!("{digits:0>64}");
                        hex::decode_to_slice(&padded, &mut be).expect("hex coefficient");
                        Fr::from_be_bytes(&be).expect("canonical coefficient")
                    })
                    .collect();
                assert_eq!(coefficients.len(), FELTS_PER_BLOB);
                // Blob word 0 is P(1), the sum of the coefficients; word 1 is P(ω^2048) =
                // P(-1), their alternating sum: two independent checks of the transform that
                // need no second transform (the fuzzed build makes a transform slow).
                let sum = coefficients.iter().fold(Fr::ZERO, |a, c| a.add(*c));
                let alternating = coefficients.iter().enumerate().fold(Fr::ZERO, |a, (i, c)| {
                    if i % 2 == 0 {
                        a.add(*c)
                    } else {
                        a.sub(*c)
                    }
                });
                assert_eq!(sum, words[0], "P(1) is not blob word 0");
                assert_eq!(alternating, words[1], "P(-1) is not blob word 1");
            }
        }
        (Ok(_), None) => panic!("decoded a blob that is not canonical"),
        (Err(e), _) => {
            assert!(!e.to_string().is_empty());
            assert!(broken || words.is_none(), "a good blob was refused: {e}");
        }
    }
});
