//! Aggregator-mode output filtering.
//!
//! The aggregator program echoes its input before its own output:
//!
//! ```text
//! [n_children, child_0…, child_1…, …, os_output…, trailing cells…]
//! ```
//!
//! Each child segment starts with its own length, counting that length cell (the bootloader's
//! `[len + 2, program_hash, output…]` layout). The aggregated OS output that follows has the
//! KZG fields at fixed offsets: `n_blobs` at [`N_BLOBS_OFFSET`] (11), then per blob the
//! commitment and y as low/high 128-bit halves (4 cells), then the L2→L1 message section
//! (`len`, `len` cells) and the L1→L2 message section (`len`, `len` cells). The filtered output
//! runs from the first cell after the children to the last message cell; anything after it
//! (e.g. zero padding) is dropped.

use starknet_types_core::felt::Felt;

use super::FactError;

/// Offset of `n_blobs` in the OS output (after x_0 at offset 10).
pub const N_BLOBS_OFFSET: usize = 11;

/// Cells per blob in the OS output: commitment (low, high) and y (low, high).
const CELLS_PER_BLOB: usize = 4;

fn malformed(reason: impl Into<String>) -> FactError {
    FactError::AggregatorOutputMalformed(reason.into())
}

/// Reads the cell at `index` as a `usize`.
fn read_usize(output: &[Felt], index: usize, what: &str) -> Result<usize, FactError> {
    let felt = output.get(index).ok_or_else(|| {
        malformed(format!("{what} at index {index} is past the end ({} cells)", output.len()))
    })?;
    usize::try_from(*felt)
        .map_err(|_| malformed(format!("{what} at index {index} is too large ({felt})")))
}

fn add(a: usize, b: usize) -> Result<usize, FactError> {
    a.checked_add(b).ok_or_else(|| malformed("offset overflow"))
}

/// Returns the aggregator's own output (the OS output part) from its full program output.
pub fn filter_aggregator_output(output: &[Felt]) -> Result<&[Felt], FactError> {
    let n_children = read_usize(output, 0, "number of children")?;

    let mut start = 1usize;
    for child in 0..n_children {
        let len = read_usize(output, start, "child segment length")?;
        if len == 0 {
            return Err(malformed(format!("child {child} has a zero-length segment")));
        }
        start = add(start, len)?;
    }

    let n_blobs_index = add(start, N_BLOBS_OFFSET)?;
    let n_blobs = read_usize(output, n_blobs_index, "n_blobs")?;
    let blob_cells =
        n_blobs.checked_mul(CELLS_PER_BLOB).ok_or_else(|| malformed("n_blobs overflow"))?;
    let l2_to_l1_index = add(add(n_blobs_index, blob_cells)?, 1)?;
    let n_l2_to_l1 = read_usize(output, l2_to_l1_index, "L2→L1 messages length")?;
    let l1_to_l2_index = add(add(l2_to_l1_index, n_l2_to_l1)?, 1)?;
    let n_l1_to_l2 = read_usize(output, l1_to_l2_index, "L1→L2 messages length")?;
    let end = add(l1_to_l2_index, n_l1_to_l2)?;
    if end >= output.len() {
        return Err(malformed(format!(
            "L1→L2 messages end at index {end}, past the end ({} cells)",
            output.len()
        )));
    }
    Ok(&output[start..=end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn felts(v: &[u64]) -> Vec<Felt> {
        v.iter().copied().map(Felt::from).collect()
    }

    /// An OS output with 2 blobs, one L2→L1 message of 4 cells and one L1→L2 message of 6.
    fn os_output() -> Vec<Felt> {
        let mut v = felts(&[
            100, 101, 7, 9, 102, 103, 104,
            105, // roots, block numbers and hashes, program/config hashes
            1, 0,      // use_kzg_da, full_output
            0x1234, // x_0
            2,      // n_blobs
        ]);
        v.extend(felts(&[11, 12, 13, 14, 21, 22, 23, 24])); // 2 × (commitment lo/hi, y lo/hi)
        v.extend(felts(&[4, 0xaa, 0xbb, 1, 0xcc])); // L2→L1: len 4
        v.extend(felts(&[6, 0xdd, 0xee, 5, 0x77, 1, 0x42])); // L1→L2: len 6
        v
    }

    fn aggregator_output(children: &[Vec<Felt>], trailing: &[u64]) -> Vec<Felt> {
        let mut v = vec![Felt::from(children.len())];
        for child in children {
            v.extend(child.iter().copied());
        }
        v.extend(os_output());
        v.extend(felts(trailing));
        v
    }

    #[test]
    fn keeps_exactly_the_os_output() {
        let children = vec![felts(&[5, 0xf00, 1, 2, 3]), felts(&[3, 0xf00, 9])];
        let full = aggregator_output(&children, &[0, 0, 0]);
        assert_eq!(filter_aggregator_output(&full).unwrap(), os_output().as_slice());
    }

    #[test]
    fn no_children_and_no_padding() {
        let full = aggregator_output(&[], &[]);
        assert_eq!(filter_aggregator_output(&full).unwrap(), os_output().as_slice());
    }

    #[test]
    fn empty_message_sections() {
        let mut os = felts(&[0; 11]);
        os.push(Felt::ZERO); // n_blobs = 0
        os.extend(felts(&[0, 0])); // no messages either way
        let mut full = felts(&[1, 2, 0xf00]);
        full.extend(os.iter().copied());
        assert_eq!(filter_aggregator_output(&full).unwrap(), os.as_slice());
    }

    #[test]
    fn truncated_outputs_are_rejected() {
        let full = aggregator_output(&[felts(&[2, 0xf00])], &[]);
        for cut in 0..full.len() {
            let err = filter_aggregator_output(&full[..cut]).unwrap_err();
            assert!(matches!(err, FactError::AggregatorOutputMalformed(_)), "cut {cut}: {err:?}");
        }
    }

    #[test]
    fn absurd_lengths_are_rejected_without_panicking() {
        let mut full = aggregator_output(&[felts(&[2, 0xf00])], &[]);
        full[1] = Felt::from(u64::MAX);
        assert!(filter_aggregator_output(&full).is_err());
        full[1] = Felt::ZERO;
        assert!(filter_aggregator_output(&full).is_err());
        full[1] = Felt::from(2u64);
        full[0] = Felt::MAX;
        assert!(filter_aggregator_output(&full).is_err());
        full[0] = Felt::ONE;
        full[3 + N_BLOBS_OFFSET] = Felt::from(usize::MAX);
        assert!(filter_aggregator_output(&full).is_err());
    }
}
