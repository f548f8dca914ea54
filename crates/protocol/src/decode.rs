//! A file of hex blobs → their coefficients as text: the engine of `orchestrator blob decode`.
//!
//! [`decode_blobs`] reads one blob per line (262144 hex digits, `0x` optional) and writes one
//! line per blob: its 4096 coefficients (natural order) as `0x` hex without leading zeros,
//! separated by spaces. It streams: one blob at a time, through buffers reused from line to
//! line, so memory stays that of a couple of blobs whatever the file, and a blob's data stays in
//! cache from parsing to printing.
//!
//! The fast path never leaves raw limbs:
//! - the file is read in large pieces straight into one buffer, and a line is parsed where it
//!   lies (no copy into a line buffer; the usual line is recognised without searching for its
//!   end first);
//! - `parse_words` turns the usual line — optional whitespace, optional `0x`, exactly 262144
//!   hex digits, optional whitespace — into canonical limbs, eight digits at a time (SWAR);
//! - the inverse transform runs on those limbs *as if* they were Montgomery representations,
//!   which yields the canonical limbs of the coefficients directly (see
//!   [`crate::transform`]'s `interpolate_limbs`): no conversion into or out of Montgomery form;
//! - the coefficients are printed a table lookup per byte, with copies of fixed size only.
//!
//! Any other form of line, and every error, goes through the general parser
//! ([`crate::compression::io::parse_blob_hex`]), which accepts the other forms and names the
//! problem with bad input.

use std::io::{self, BufRead, Read, Write};

use crate::{
    compression::io::parse_blob_hex,
    fr::{be_bytes_to_limbs, limbs_below_modulus},
    transform::{interpolate_limbs, TransformError, BYTES_PER_BLOB, FELTS_PER_BLOB},
};

/// Why [`decode_blobs`] stopped. The blobs before the failure have been written.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Reading the input failed.
    #[error("cannot read: {0}")]
    Read(io::Error),
    /// Writing the output failed.
    #[error("writing the output: {0}")]
    Write(io::Error),
    /// A line is not a blob. Lines after it have not been read.
    #[error("line {line}: {message}")]
    BadLine {
        /// The line (counting from 1, blank lines included).
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The input has no blob: it is empty or has only blank lines.
    #[error("no blob: the file is empty or has only blank lines")]
    NoBlob,
}

/// A blob some of whose coefficients are not felts (not below the Starknet prime): it is not a
/// Starknet blob. Reported once per such blob, after its line was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotFelts {
    /// The blob's line.
    pub line: usize,
    /// How many coefficients are not felts.
    pub count: usize,
    /// The index of the first.
    pub first: usize,
}

/// The top limb of the Starknet prime `2^251 + 17·2^192 + 1` (its lower limbs are 0, 0, 1).
const STARK_PRIME_TOP: u64 = 0x0800_0000_0000_0011;

/// Whether canonical limbs are below the Starknet prime.
#[inline(always)]
fn is_felt(limbs: &[u64; 4]) -> bool {
    limbs[3] < STARK_PRIME_TOP || (limbs[3] == STARK_PRIME_TOP && limbs[..3] == [0, 0, 0])
}

/// Decodes every blob of `input` (one per line; blank lines are skipped) and writes one line of
/// coefficients per blob to `out`, calling `not_felts` for each blob that is not a Starknet
/// blob. Returns the number of blobs.
///
/// The output is written in pieces of about 64 KiB and at the end of each blob's line; a bad
/// line ends the decoding with the lines before it written.
pub fn decode_blobs(
    input: impl Read,
    out: &mut dyn Write,
    not_felts: &mut dyn FnMut(NotFelts),
) -> Result<usize, DecodeError> {
    let mut lines = Lines::new(input);
    let mut words = Vec::with_capacity(FELTS_PER_BLOB);
    let mut text = Text::new();
    let mut n_blobs = 0;
    let mut line_no = 0;
    loop {
        // The usual line is parsed where it lies, its end found by the parser; any other line
        // is cut at its `\n` first.
        lines.want(USUAL_LINE + 1).map_err(DecodeError::Read)?;
        line_no += 1;
        if let Some(len) = usual_line(lines.unread(), lines.at_end(), &mut words) {
            lines.consume(len);
        } else {
            let Some(line) = lines.next_line().map_err(DecodeError::Read)? else { break };
            if line.trim_ascii().is_empty() {
                continue;
            }
            blob_words(line, &mut words)
                .map_err(|message| DecodeError::BadLine { line: line_no, message })?;
        }
        interpolate_limbs(&mut words);
        let mut count = 0;
        let mut first = 0;
        for (i, limbs) in words.iter().enumerate() {
            if !is_felt(limbs) {
                if count == 0 {
                    first = i;
                }
                count += 1;
            }
            if text.is_full() {
                out.write_all(text.take()).map_err(DecodeError::Write)?;
            }
            text.push_coefficient(limbs, if i == 0 { None } else { Some(b' ') });
        }
        text.push_byte(b'\n');
        // The blob's line is complete before the next line is read.
        out.write_all(text.take()).map_err(DecodeError::Write)?;
        n_blobs += 1;
        if count > 0 {
            not_felts(NotFelts { line: line_no, count, first });
        }
    }
    if n_blobs == 0 {
        return Err(DecodeError::NoBlob);
    }
    Ok(n_blobs)
}

/// Replaces `words` with the 4096 words (canonical limbs, blob order) of one non-blank line, or
/// says what is wrong with the line.
fn blob_words(line: &[u8], words: &mut Vec<[u64; 4]>) -> Result<(), String> {
    // The usual line (hex digits only) takes the fast parser; any other form, and every error,
    // goes through the general parser, which names the problem. A byte that is not UTF-8
    // becomes U+FFFD, which it reports as not a hex digit.
    if parse_words(line, words) {
        return Ok(());
    }
    let blob = parse_blob_hex(&String::from_utf8_lossy(line)).map_err(|e| {
        // The size error's location is the whole blob, which the line number already names.
        if e.location == "blob" {
            e.message
        } else {
            e.to_string()
        }
    })?;
    words_from_bytes(&blob, words)
        .map_err(|index| TransformError::NonCanonical { index }.to_string())
}

/// The hex digits of a blob.
const DIGITS: usize = 2 * BYTES_PER_BLOB;
/// The usual line: optional `0x`, the digits, and its `\n`.
const USUAL_LINE: usize = 2 + DIGITS + 1;

/// If `unread` starts with a usual line — optional `0x`, 262144 hex digits of words below the
/// BLS12-381 modulus, then `\n`, `\r\n` or the end of the input — its words (into `words`) and
/// its length with the line break. `None` for anything else, left to the general path.
fn usual_line(unread: &[u8], at_end: bool, words: &mut Vec<[u64; 4]>) -> Option<usize> {
    let prefix = if unread.starts_with(b"0x") || unread.starts_with(b"0X") { 2 } else { 0 };
    let end = prefix + DIGITS;
    let len = match unread.get(end..) {
        Some([b'\n', ..]) => end + 1,
        Some([b'\r', b'\n', ..]) => end + 2,
        Some([]) if at_end => end,
        _ => return None,
    };
    // Digits only: no line break hides among them.
    parse_digits(&unread[prefix..end], words).then_some(len)
}

/// The lines of a reader, read in large pieces into one buffer; a line is a slice of it.
///
/// The buffer holds two usual lines and some; it grows only for longer lines. Bytes left over
/// after the last whole line move to the front before the next read (a few kilobytes every
/// other line).
struct Lines<R> {
    input: R,
    buf: Vec<u8>,
    /// The unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> Lines<R> {
    fn new(input: R) -> Self {
        Lines { input, buf: vec![0; 2 * USUAL_LINE + 4096], start: 0, end: 0, eof: false }
    }

    /// The bytes not read yet.
    fn unread(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Whether the input has no more bytes than [`Lines::unread`].
    fn at_end(&self) -> bool {
        self.eof
    }

    /// Marks `n` unread bytes as read.
    fn consume(&mut self, n: usize) {
        self.start += n;
    }

    /// Reads until `n` bytes are unread or the input ends.
    fn want(&mut self, n: usize) -> io::Result<()> {
        while self.end - self.start < n && self.fill()? {}
        Ok(())
    }

    /// Reads more input after the unread bytes (moved to the front first, the buffer grown
    /// when they fill it). `false` at the end of the input.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let len = self.buf.len();
            self.buf.resize(2 * len, 0);
        }
        loop {
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next line, without its `\n`; `None` at the end of the input.
    fn next_line(&mut self) -> io::Result<Option<&[u8]>> {
        let mut searched = 0;
        let end = loop {
            let mut unread = &self.buf[self.start + searched..self.end];
            // `skip_until` on a slice: std's memchr, without copying.
            let n = unread.skip_until(b'\n')?;
            let at = self.start + searched + n;
            if n > 0 && self.buf[at - 1] == b'\n' {
                break at - 1;
            }
            searched += n;
            if !self.fill()? {
                if self.start == self.end {
                    return Ok(None);
                }
                break self.end;
            }
        };
        let line = self.start..end;
        self.start = (end + 1).min(self.end);
        Ok(Some(&self.buf[line]))
    }
}

/// A byte of ones, and the top bit of every byte.
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = ONES * 0x80;

/// Eight hex digits (`digits[0]` most significant) → their value, and a word whose bits 7 of
/// each byte (`& HIGH`) are 0 if and only if every byte is a hex digit. Branch-free on the
/// eight bytes at once (SWAR); the caller applies the mask once per 64 digits.
#[inline(always)]
fn hex_8(digits: &[u8]) -> (u32, u64) {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digits[..8]);
    let x = u64::from_le_bytes(bytes);
    // For bytes below 0x80, adding at most 0x50 never carries into the next byte, and bit 7 of
    // each byte of `x + (0x80 - c)` tells whether that byte is at least `c`. A byte at or above
    // 0x80 is not a digit whatever the other bits say, so its own bit 7 marks it.
    let at_least = |v: u64, c: u64| v.wrapping_add(ONES * (0x80 - c));
    let is_digit = at_least(x, 0x30) & !at_least(x, 0x3a);
    let lower = x | (ONES * 0x20);
    let is_letter = at_least(lower, 0x61) & !at_least(lower, 0x67);
    let bad = x | !(is_digit | is_letter);
    // '0'..'9' (bit 6 clear) → low nibble; 'a'..'f' / 'A'..'F' (bit 6 set) → low nibble + 9.
    let nibbles = (x & (ONES * 0x0f)) + ((x >> 6) & ONES) * 9;
    // Byte i holds digit i; pack to one byte per pair, then four consecutive bytes.
    let pairs = ((nibbles << 4) | (nibbles >> 8)) & 0x00ff_00ff_00ff_00ff;
    let quads = (pairs | pairs >> 8) & 0x0000_ffff_0000_ffff;
    let word = (quads | quads >> 16) as u32;
    (word.swap_bytes(), bad)
}

/// The first 16 hex digits of `digits` (big-endian) → the value, and a word whose `& HIGH` is
/// 0 if and only if every one of those bytes is a hex digit.
#[inline(always)]
fn hex_16(digits: &[u8]) -> (u64, u64) {
    let (hi, hi_bad) = hex_8(&digits[..8]);
    let (lo, lo_bad) = hex_8(&digits[8..16]);
    (u64::from(hi) << 32 | u64::from(lo), hi_bad | lo_bad)
}

/// Replaces `values` with the 4096 words (canonical little-endian limbs, blob order) of a line
/// in the usual form. `false` when the general parser must handle the line (another layout,
/// bad input); `values` is then unspecified.
fn parse_words(line: &[u8], values: &mut Vec<[u64; 4]>) -> bool {
    let body = line.trim_ascii();
    let body = body.strip_prefix(b"0x").or_else(|| body.strip_prefix(b"0X")).unwrap_or(body);
    parse_digits(body, values)
}

/// [`parse_words`] of exactly the 262144 digits, nothing around them.
fn parse_digits(body: &[u8], values: &mut Vec<[u64; 4]>) -> bool {
    values.clear();
    if body.len() != DIGITS {
        return false;
    }
    for word in body.chunks_exact(64) {
        let (l3, bad3) = hex_16(word);
        let (l2, bad2) = hex_16(&word[16..]);
        let (l1, bad1) = hex_16(&word[32..]);
        let (l0, bad0) = hex_16(&word[48..]);
        let limbs = [l0, l1, l2, l3];
        if (bad0 | bad1 | bad2 | bad3) & HIGH != 0 || !limbs_below_modulus(&limbs) {
            return false;
        }
        values.push(limbs);
    }
    true
}

/// Replaces `values` with the words (canonical little-endian limbs, blob order) of a blob's
/// 131072 bytes; the error is the index of the first word that is not below the BLS12-381
/// modulus.
fn words_from_bytes(blob: &[u8], values: &mut Vec<[u64; 4]>) -> Result<(), usize> {
    values.clear();
    for (index, word) in blob.chunks_exact(32).enumerate() {
        let mut w = [0u8; 32];
        w.copy_from_slice(word);
        let limbs = be_bytes_to_limbs(&w);
        if !limbs_below_modulus(&limbs) {
            return Err(index);
        }
        values.push(limbs);
    }
    Ok(())
}

/// Two lowercase hex digits per byte value.
static HEX_PAIRS: [[u8; 2]; 256] = {
    let digits = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [digits[i >> 4], digits[i & 0xf]];
        i += 1;
    }
    t
};

/// The 16 lowercase hex digits of `x`, most significant first. (A table lookup per byte
/// measured faster here than computing the digits eight at a time.)
#[inline(always)]
fn hex16(x: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (pair, byte) in out.chunks_exact_mut(2).zip(x.to_be_bytes()) {
        pair.copy_from_slice(&HEX_PAIRS[byte as usize]);
    }
    out
}

/// Output text, written into a buffer of fixed size through a cursor, and handed out in pieces
/// of about 64 KiB.
///
/// Every copy has a fixed size: the digits of a value are written 16 at a time, the first limb
/// shifted so that its significant digits come first; the cursor then moves by the number of
/// significant digits, and whatever lies past it is overwritten next.
struct Text {
    buf: Vec<u8>,
    len: usize,
}

impl Text {
    /// Output pieces: about this many bytes.
    const PIECE: usize = 1 << 16;
    /// Room a coefficient may need: a separator, `0x`, 64 digits, and a 16-digit write past
    /// the cursor.
    const ROOM: usize = 1 + 2 + 64 + 16;

    fn new() -> Self {
        Text { buf: vec![0; Self::PIECE + Self::ROOM], len: 0 }
    }

    /// Whether the piece is complete (and has no room for another coefficient).
    fn is_full(&self) -> bool {
        self.len >= Self::PIECE
    }

    /// The text so far, which the buffer forgets.
    fn take(&mut self) -> &[u8] {
        let len = std::mem::take(&mut self.len);
        &self.buf[..len]
    }

    fn push_byte(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    /// Appends `separator` (if any), `0x` and the lowercase hex of the value of little-endian
    /// `limbs` without leading zeros (`0x0` for zero): the text of `Fr`'s `Display`
    /// ([`crate::fr::hex_limbs`]). The piece must not be full.
    #[inline(always)]
    fn push_coefficient(&mut self, limbs: &[u64; 4], separator: Option<u8>) {
        let buf = &mut self.buf[self.len..self.len + Self::ROOM];
        let mut at = 0;
        if let Some(b) = separator {
            buf[0] = b;
            at = 1;
        }
        buf[at..at + 2].copy_from_slice(b"0x");
        at += 2;
        match limbs.iter().rposition(|&l| l != 0) {
            None => {
                buf[at] = b'0';
                at += 1;
            }
            Some(top) => {
                let first = limbs[top];
                let leading = first.leading_zeros() as usize / 4;
                buf[at..at + 16].copy_from_slice(&hex16(first << (4 * leading)));
                at += 16 - leading;
                for l in limbs[..top].iter().rev() {
                    buf[at..at + 16].copy_from_slice(&hex16(*l));
                    at += 16;
                }
            }
        }
        self.len += at;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{
        fr::{hex_limbs, Fr, MODULUS},
        transform::{blob_to_coefficients, coefficients_to_blob},
    };

    fn general(text: &str) -> Vec<[u64; 4]> {
        let blob = parse_blob_hex(text).unwrap();
        blob_to_coefficients(&blob).unwrap().iter().map(|c| c.to_canonical_limbs()).collect()
    }

    /// The fast path on a whole line: words, then the inverse NTT.
    fn decode_line(line: &[u8]) -> Option<Vec<[u64; 4]>> {
        let mut values = vec![[7; 4]; 3];
        if !parse_words(line, &mut values) {
            return None;
        }
        interpolate_limbs(&mut values);
        Some(values)
    }

    /// [`parse_words`] as a value.
    fn fast_words(line: &[u8]) -> Option<Vec<[u64; 4]>> {
        let mut values = Vec::new();
        parse_words(line, &mut values).then_some(values)
    }

    /// [`words_from_bytes`] as a value.
    fn words_of_bytes(blob: &[u8]) -> Result<Vec<[u64; 4]>, usize> {
        let mut values = vec![[7; 4]; 3];
        words_from_bytes(blob, &mut values).map(|()| values)
    }

    fn fr(limbs: [u64; 4]) -> Fr {
        let mut l = limbs;
        l[3] &= 0x3fff_ffff_ffff_ffff; // below 2^254 < r
        Fr::from_canonical_limbs(l).unwrap()
    }

    #[test]
    fn hex_matches_display() {
        let cases = [
            [0, 0, 0, 0],
            [1, 0, 0, 0],
            [0xf, 0, 0, 0],
            [0x10, 0, 0, 0],
            [0, 1, 0, 0],
            [u64::MAX, u64::MAX, u64::MAX, u64::MAX],
            [5, 0, 0x0123_4567_89ab_cdef, 0],
            [0, 0, 0, 0x0800_0000_0000_0011],
        ];
        let mut text = Text::new();
        for l in cases {
            text.push_coefficient(&l, None);
            assert_eq!(std::str::from_utf8(text.take()).unwrap(), hex_limbs(&l));
            text.push_coefficient(&l, Some(b' '));
            assert_eq!(std::str::from_utf8(text.take()).unwrap(), format!(" {}", hex_limbs(&l)));
        }
    }

    #[test]
    fn parses_hex_digits_like_the_hex_crate() {
        for b in 0..=255u8 {
            for pos in 0..16 {
                let mut digits = *b"0123456789abcdef";
                digits[pos] = b;
                let expected = std::str::from_utf8(&digits)
                    .ok()
                    .filter(|s| s.bytes().all(|c| c.is_ascii_hexdigit()))
                    .map(|s| u64::from_str_radix(s, 16).unwrap());
                let (value, bad) = hex_16(&digits);
                assert_eq!((bad & HIGH == 0).then_some(value), expected, "byte {b:#x} at {pos}");
            }
        }
        let value = |digits: &[u8]| {
            let (value, bad) = hex_16(digits);
            (value, bad & HIGH)
        };
        assert_eq!(value(b"FEDCBA9876543210"), (0xfedc_ba98_7654_3210, 0));
        assert_eq!(value(b"ffffffffffffffff"), (u64::MAX, 0));
        // Bytes at or above 0x80 (UTF-8 of U+FFFD here) are not digits wherever they are.
        assert_ne!(value("0123456\u{fffd}789abc".as_bytes()).1, 0);
        assert_ne!(value("\u{fffd}0123456789abc".as_bytes()).1, 0);
    }

    #[test]
    fn zero_blob_and_forms() {
        let zeros = "00".repeat(BYTES_PER_BLOB);
        assert_eq!(decode_line(zeros.as_bytes()).unwrap(), vec![[0u64; 4]; 4096]);
        for text in [
            format!("0x{zeros}\n"),
            format!("  0X{zeros}  \r\n"),
            format!("\n{}", zeros.to_uppercase()),
        ] {
            assert!(decode_line(text.as_bytes()).is_some(), "{}", &text[..4]);
        }
        // Other layouts and bad input are left to the general path.
        for text in [
            format!("{} {}", &zeros[..64], &zeros[64..]),
            zeros[2..].to_string(),
            format!("{zeros}00"),
            format!("zz{}", &zeros[2..]),
            format!("{}g", &zeros[1..]),
            format!("0x0x{}", &zeros[4..]),
            "ff".repeat(BYTES_PER_BLOB),
            String::new(),
        ] {
            assert!(decode_line(text.as_bytes()).is_none());
        }
        // The modulus itself is not canonical; r - 1 is.
        let word = |l: [u64; 4]| format!("{:016x}{:016x}{:016x}{:016x}", l[3], l[2], l[1], l[0]);
        let mut r_minus_1 = MODULUS;
        r_minus_1[0] -= 1;
        let at_r = format!("{}{}", word(MODULUS), &zeros[64..]);
        assert!(decode_line(at_r.as_bytes()).is_none());
        let below = format!("{}{}", word(r_minus_1), &zeros[64..]);
        assert_eq!(decode_line(below.as_bytes()).unwrap(), general(&below));
        // The general parser's bytes give the same words, and name the first word at r.
        let bytes = |text: &str| parse_blob_hex(text).unwrap();
        assert_eq!(words_of_bytes(&bytes(&below)), Ok(fast_words(below.as_bytes()).unwrap()));
        assert_eq!(words_of_bytes(&bytes(&at_r)), Err(0));
        let at_r_later = format!("{}{}{}", &zeros[..64 * 7], word(MODULUS), &zeros[64 * 8..]);
        assert_eq!(words_of_bytes(&bytes(&at_r_later)), Err(7));
    }

    /// A reader that hands out at most `chunk` bytes per read, and is interrupted once.
    struct Trickle<'a> {
        data: &'a [u8],
        chunk: usize,
        interrupted: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if !self.interrupted {
                self.interrupted = true;
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = self.chunk.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// `decode_blobs` on `input` read `chunk` bytes at a time: the output, the warnings and the
    /// result.
    fn run(input: &str, chunk: usize) -> (String, Vec<NotFelts>, Result<usize, String>) {
        let mut out = Vec::new();
        let mut warnings = Vec::new();
        let reader = Trickle { data: input.as_bytes(), chunk, interrupted: false };
        let result = decode_blobs(reader, &mut out, &mut |w| warnings.push(w));
        (String::from_utf8(out).unwrap(), warnings, result.map_err(|e| e.to_string()))
    }

    /// A blob of random words (below 2^254) and the decoder's line for it.
    fn random_blob(seed: u64) -> (String, String) {
        let mut s = seed;
        let words: Vec<[u8; 32]> = (0..FELTS_PER_BLOB)
            .map(|_| {
                let mut w = [0u8; 32];
                for b in w.iter_mut() {
                    s = s
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    *b = (s >> 56) as u8;
                }
                w[0] &= 0x3f;
                w
            })
            .collect();
        let blob = words.concat();
        let coefficients = blob_to_coefficients(&blob).unwrap();
        let line: Vec<String> = coefficients.iter().map(ToString::to_string).collect();
        (hex::encode(blob), line.join(" ") + "\n")
    }

    #[test]
    fn decodes_every_form_of_line_whatever_the_reads() {
        let (a, a_out) = random_blob(1);
        let (b, b_out) = random_blob(2);
        let upper = b.to_uppercase();
        let spaced = format!("{} {}", &a[..64], &a[64..]);
        let input = format!("\n0x{a}\r\n  \n{upper}\n\t{b} \r\n{spaced}\n0X{a}");
        let expected = [&a_out, &b_out, &b_out, &a_out, &a_out].map(String::as_str).concat();
        for chunk in [1 << 20, 200_000, 65_536, 4096, 7] {
            let (out, warnings, result) = run(&input, chunk);
            assert_eq!(result, Ok(5), "chunk {chunk}");
            assert!(out == expected, "chunk {chunk}");
            // Random words below 2^254 give coefficients that are not felts.
            let lines: Vec<usize> = warnings.iter().map(|w| w.line).collect();
            assert_eq!(lines, [2, 4, 5, 6, 7], "chunk {chunk}");
        }
    }

    #[test]
    fn names_the_bad_line_after_writing_the_good_ones() {
        let (a, a_out) = random_blob(3);
        let cases = [
            (format!("{a}\n\n0xabcd\n{a}\n"), "line 3: a blob is 262144 hex characters"),
            (format!("{a}\n{a}00\n"), "line 2: a blob is 262144 hex characters"),
            (format!("{a}\n{}zz\n", &a[2..]), "line 2: character 262142: `z` is not a hex digit"),
            (format!("\n\n{}", "ff".repeat(BYTES_PER_BLOB)), "line 3: blob element 0 is not below"),
            // A line longer than the buffer.
            (format!("{a}\n{}\n", "0".repeat(3 * USUAL_LINE)), "line 2: a blob is 262144"),
            (" \n\n\t\n".to_string(), "no blob: the file is empty or has only blank lines"),
            (String::new(), "no blob"),
        ];
        for (input, needle) in cases {
            for chunk in [1 << 20, 4096] {
                let (out, _, result) = run(&input, chunk);
                let err = result.unwrap_err();
                assert!(err.starts_with(needle), "`{err}` is not `{needle}…`");
                let good = input.lines().take_while(|l| l.trim().is_empty() || *l == a).count();
                let good = input.lines().take(good).filter(|l| !l.trim().is_empty()).count();
                assert!(out == a_out.repeat(good), "{needle}");
            }
        }
    }

    #[test]
    fn reports_blobs_that_are_not_starknet_blobs() {
        // The constant polynomial 2^252 (above the Starknet prime): one coefficient.
        let word = format!("1{}", "0".repeat(63));
        let big = word.repeat(FELTS_PER_BLOB);
        let one = format!("{:064x}", 1).repeat(FELTS_PER_BLOB);
        let (out, warnings, result) = run(&format!("{one}\n{big}\n"), 1 << 20);
        assert_eq!(result, Ok(2));
        assert_eq!(warnings, [NotFelts { line: 2, count: 1, first: 0 }]);
        let zeros = [" 0x0"; FELTS_PER_BLOB - 1].concat();
        assert_eq!(out, format!("0x1{zeros}\n0x1{}{zeros}\n", "0".repeat(63)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Random blobs (any words below r) and blobs of random coefficients: the same
        /// coefficients as the general path.
        #[test]
        fn matches_blob_to_coefficients(seed in any::<u64>(), n_coeffs in 0usize..=4096) {
            let mut s = seed;
            let mut next = move || {
                s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^ (z >> 31)
            };
            let words: Vec<Fr> = (0..4096).map(|_| fr([next(), next(), next(), next()])).collect();
            let mut blob = Vec::with_capacity(BYTES_PER_BLOB);
            for w in &words {
                blob.extend_from_slice(&w.to_be_bytes());
            }
            let text = hex::encode(&blob);
            prop_assert_eq!(decode_line(text.as_bytes()).unwrap(), general(&text));
            prop_assert_eq!(words_of_bytes(&blob), Ok(fast_words(text.as_bytes()).unwrap()));

            let mut coeffs: Vec<Fr> = (0..n_coeffs).map(|_| fr([next(), next(), next(), next()])).collect();
            coeffs.resize(4096, Fr::ZERO);
            let text = hex::encode(coefficients_to_blob(&coeffs).unwrap());
            let expected: Vec<[u64; 4]> = coeffs.iter().map(|c| c.to_canonical_limbs()).collect();
            prop_assert_eq!(decode_line(text.as_bytes()).unwrap(), expected);
        }
    }
}
