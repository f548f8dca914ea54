//! The external SNOS runner's output: the `cairo_pie.zip` and the optional `os_output.json`
//! the command wrote, checked by `external::check_outputs` (what `read_outputs` does with the
//! files of the output directory).
//!
//! Input: one flag byte (bit 0: the PIE framing of [`orchestrator_fuzz::pie_zip`]; bit 1: an
//! `os_output.json` was written, its text being the last [`orchestrator_fuzz::SEP`]-separated
//! section), then the PIE part.
//!
//! Checked: no panic; every failure is deterministic (the same output fails again); an
//! accepted output's OS output is the PIE's output segment, and is not empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orchestrator_fuzz::{pie_zip, SEP};
use orchestrator_snos_runner::{external::check_outputs, pie_output, Retryable};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let (pie_part, json) = if flags & 2 != 0 {
        match rest.windows(SEP.len()).rposition(|w| w == SEP) {
            Some(at) => (&rest[..at], Some(&rest[at + SEP.len()..])),
            None => (rest, Some(&b""[..])),
        }
    } else {
        (rest, None)
    };
    let mut framed = vec![flags & 1];
    framed.extend_from_slice(pie_part);
    let zip = pie_zip(&framed);
    let json = json.map(String::from_utf8_lossy);
    match check_outputs(zip, json.as_deref()) {
        Ok(out) => {
            assert!(!out.os_output.is_empty());
            assert_eq!(pie_output(&out.cairo_pie_zip).expect("checked PIE"), out.os_output);
        }
        Err(e) => {
            assert!(!e.is_retryable(), "a bad output is not worth a retry: {e}");
            assert!(!e.to_string().is_empty());
        }
    }
});
