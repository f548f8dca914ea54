//! Calldata of the core contract's `update_state(snos_output: Array<felt252>, program_output:
//! Array<felt252>)` and the felt conversions around it. Pure functions, no RPC.

use orchestrator_settlement_client_interface::{SettlementError, SettlementResult, Word};
use starknet::core::types::Felt;

/// Felts in the Starknet OS output header the core contract reads (initial root, final root,
/// previous and new block number, previous and new block hash, OS program hash, OS config
/// hash, use_kzg_da, full_output).
pub const SNOS_HEADER_LEN: usize = 10;

/// The word of the SNOS output holding the new block number.
pub const SNOS_NEW_BLOCK_NUMBER: usize = 3;

/// The felt of a 32-byte big-endian word, or `InvalidInput` when the word is not below the
/// field prime (it would be silently reduced otherwise, and settle a different value).
pub fn word_to_felt(word: &Word, what: &str, index: usize) -> SettlementResult<Felt> {
    let felt = Felt::from_bytes_be(word);
    if felt.to_bytes_be() != *word {
        return Err(SettlementError::InvalidInput(format!(
            "{what}[{index}] is not a field element (not below the Stark prime)"
        )));
    }
    Ok(felt)
}

/// The 32-byte big-endian word of a felt.
pub fn felt_to_word(felt: Felt) -> Word {
    felt.to_bytes_be()
}

/// `[len(snos_output), snos_output…, len(program_output), program_output…]`: the Cairo
/// serialisation of the two arrays `update_state` takes.
///
/// # Errors
/// `InvalidInput` when the SNOS output is shorter than its header or a word is not a felt;
/// nothing is sent then.
pub fn update_state_calldata(
    snos_output: &[Word],
    program_output: &[Word],
) -> SettlementResult<Vec<Felt>> {
    if snos_output.len() < SNOS_HEADER_LEN {
        return Err(SettlementError::InvalidInput(format!(
            "SNOS output has {} felts, its header alone has {SNOS_HEADER_LEN}",
            snos_output.len()
        )));
    }
    let mut calldata = Vec::with_capacity(snos_output.len() + program_output.len() + 2);
    for (what, words) in [("snos_output", snos_output), ("program_output", program_output)] {
        calldata.push(Felt::from(words.len()));
        for (i, word) in words.iter().enumerate() {
            calldata.push(word_to_felt(word, what, i)?);
        }
    }
    Ok(calldata)
}

/// The settled block number of a `get_state` block-number felt: `None` for `Felt::MAX` (-1,
/// nothing settled yet).
///
/// # Errors
/// `Rpc` when the felt is neither -1 nor a `u64` (not a state this contract can hold).
pub fn settled_block(block_number: Felt) -> SettlementResult<Option<u64>> {
    if block_number == Felt::MAX {
        return Ok(None);
    }
    u64::try_from(block_number).map(Some).map_err(|_| {
        SettlementError::Rpc(format!(
            "get_state returned block number {block_number:#x}, which is neither -1 nor a u64"
        ))
    })
}

#[cfg(test)]
mod tests {
    use orchestrator_settlement_client_interface::Retryable;

    use super::*;

    fn word(v: u64) -> Word {
        felt_to_word(Felt::from(v))
    }

    fn header(prev: Felt, new: u64) -> Vec<Word> {
        let mut h: Vec<Word> = (0..SNOS_HEADER_LEN as u64).map(word).collect();
        h[2] = felt_to_word(prev);
        h[SNOS_NEW_BLOCK_NUMBER] = word(new);
        h
    }

    #[test]
    fn calldata_is_two_length_prefixed_arrays() {
        let snos = header(Felt::MAX, 0);
        let program = vec![word(0xaa), word(0xbb), word(0xcc)];
        let calldata = update_state_calldata(&snos, &program).unwrap();
        assert_eq!(calldata.len(), 1 + SNOS_HEADER_LEN + 1 + 3);
        assert_eq!(calldata[0], Felt::from(SNOS_HEADER_LEN));
        assert_eq!(calldata[1..=SNOS_HEADER_LEN][2], Felt::MAX, "prev block -1 kept as a felt");
        assert_eq!(calldata[SNOS_HEADER_LEN + 1], Felt::from(3u8));
        assert_eq!(&calldata[SNOS_HEADER_LEN + 2..], &[0xaa, 0xbb, 0xcc].map(Felt::from));
    }

    #[test]
    fn empty_program_output_is_a_zero_length_array() {
        let calldata = update_state_calldata(&header(Felt::ZERO, 5), &[]).unwrap();
        assert_eq!(calldata.last(), Some(&Felt::ZERO));
        assert_eq!(calldata.len(), SNOS_HEADER_LEN + 2);
    }

    #[test]
    fn a_short_snos_output_is_invalid_input() {
        let e = update_state_calldata(&header(Felt::ZERO, 1)[..9], &[]).unwrap_err();
        assert!(matches!(e, SettlementError::InvalidInput(ref m) if m.contains("9 felts")), "{e}");
        assert!(!e.is_retryable());
    }

    #[test]
    fn a_word_above_the_prime_is_invalid_input() {
        let mut program = vec![word(1); 3];
        program[2] = [0xff; 32];
        let e = update_state_calldata(&header(Felt::ZERO, 1), &program).unwrap_err();
        assert!(
            matches!(e, SettlementError::InvalidInput(ref m) if m.contains("program_output[2]")),
            "{e}"
        );
    }

    #[test]
    fn words_round_trip_through_felts() {
        let max = felt_to_word(Felt::MAX);
        assert_eq!(word_to_felt(&max, "x", 0).unwrap(), Felt::MAX);
        assert_eq!(max[0], 0x08, "p - 1 = 0x0800…0011…0000");
        assert_eq!(word_to_felt(&word(42), "x", 0).unwrap(), Felt::from(42u8));
    }

    #[test]
    fn settled_block_maps_minus_one_to_none() {
        assert_eq!(settled_block(Felt::MAX).unwrap(), None);
        assert_eq!(settled_block(Felt::ZERO).unwrap(), Some(0));
        assert_eq!(settled_block(Felt::from(u64::MAX)).unwrap(), Some(u64::MAX));
        let e = settled_block(Felt::from(u128::from(u64::MAX) + 1)).unwrap_err();
        assert!(matches!(e, SettlementError::Rpc(_)), "{e}");
    }
}
