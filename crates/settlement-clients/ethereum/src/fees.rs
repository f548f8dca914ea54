//! Fee policy of state-update transactions (reference §9.2 step 5), as pure functions.
//!
//! First attempt: tip 0.2 gwei, `max_fee_per_gas = ceil(m × 2 × base_fee) + tip`,
//! `max_fee_per_blob_gas = ceil(m × blob_base_fee)` with `m = 1.1`. Each bump doubles `m`
//! (1.1 → 2.2 → 4.4) and never signs less than 2.1× every cap of the attempt it replaces (the
//! blob pool only accepts a same-nonce replacement at 2× all fee caps). The worst-case
//! liability `gas_limit × max_fee_per_gas + blobs × 131072 × max_fee_per_blob_gas` must stay
//! within the configured cap; above it the update pauses instead of signing.

/// Gas limit ceiling of a state update (the reference's fixed limit, chosen above the
/// 1,050,798-gas maximum StarkWare's own updates used over 90 days).
pub const GAS_LIMIT_CAP: u64 = 1_500_000;
/// Priority fee of the first attempt: 0.2 gwei.
pub const PRIORITY_FEE_WEI: u128 = 200_000_000;
/// Blob gas per blob (EIP-4844).
pub const BLOB_GAS_PER_BLOB: u128 = 131_072;
/// First-attempt multiplier in thousandths (1.1).
pub const BASE_MULTIPLIER_MILLI: u128 = 1_100;
/// Replacement floor over the replaced caps, in tenths (2.1×).
pub const REPLACEMENT_FLOOR_TENTHS: u128 = 21;

/// The three fee caps of an EIP-4844 transaction, in wei.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeCaps {
    /// `max_fee_per_gas`.
    pub max_fee_per_gas: u128,
    /// `max_priority_fee_per_gas`.
    pub max_priority_fee_per_gas: u128,
    /// `max_fee_per_blob_gas`.
    pub max_fee_per_blob_gas: u128,
}

/// The multiplier of attempt `bump` (0 = first attempt), in thousandths: 1100 × 2^bump.
pub fn multiplier_milli(bump: u32) -> u128 {
    BASE_MULTIPLIER_MILLI.saturating_mul(1u128.checked_shl(bump).unwrap_or(u128::MAX))
}

/// `ceil(value × num / den)` without overflow panics (saturates).
fn mul_ceil(value: u128, num: u128, den: u128) -> u128 {
    let product = value.saturating_mul(num);
    product / den + u128::from(!product.is_multiple_of(den))
}

/// The caps for attempt `bump` at the current base fees, before the replacement floor.
pub fn fresh_caps(base_fee: u128, blob_base_fee: u128, bump: u32) -> FeeCaps {
    let m = multiplier_milli(bump);
    FeeCaps {
        max_fee_per_gas: mul_ceil(base_fee.saturating_mul(2), m, 1000)
            .saturating_add(PRIORITY_FEE_WEI),
        max_priority_fee_per_gas: PRIORITY_FEE_WEI,
        // A blob fee cap of 0 can never be included; 1 wei is the protocol minimum.
        max_fee_per_blob_gas: mul_ceil(blob_base_fee, m, 1000).max(1),
    }
}

/// The caps of a replacement: the fresh caps, each raised to at least 2.1× the replaced cap.
pub fn replacement_caps(fresh: FeeCaps, replaced: FeeCaps) -> FeeCaps {
    let floor = |v| mul_ceil(v, REPLACEMENT_FLOOR_TENTHS, 10);
    let tip = fresh.max_priority_fee_per_gas.max(floor(replaced.max_priority_fee_per_gas));
    FeeCaps {
        // The fee cap must cover the tip.
        max_fee_per_gas: fresh.max_fee_per_gas.max(floor(replaced.max_fee_per_gas)).max(tip),
        max_priority_fee_per_gas: tip,
        max_fee_per_blob_gas: fresh.max_fee_per_blob_gas.max(floor(replaced.max_fee_per_blob_gas)),
    }
}

/// The most a transaction with these caps can cost, in wei.
pub fn worst_case_fee(caps: FeeCaps, gas_limit: u64, n_blobs: usize) -> u128 {
    u128::from(gas_limit).saturating_mul(caps.max_fee_per_gas).saturating_add(
        (n_blobs as u128)
            .saturating_mul(BLOB_GAS_PER_BLOB)
            .saturating_mul(caps.max_fee_per_blob_gas),
    )
}

/// The gas limit from an estimate: +20 % headroom, capped at [`GAS_LIMIT_CAP`].
pub fn gas_limit_from_estimate(estimate: u64) -> u64 {
    estimate.saturating_add(estimate / 5).min(GAS_LIMIT_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GWEI: u128 = 1_000_000_000;

    #[test]
    fn first_attempt_follows_the_reference() {
        let c = fresh_caps(10 * GWEI, 3, 0);
        assert_eq!(c.max_fee_per_gas, 22 * GWEI + PRIORITY_FEE_WEI);
        assert_eq!(c.max_priority_fee_per_gas, PRIORITY_FEE_WEI);
        assert_eq!(c.max_fee_per_blob_gas, 4); // ceil(3 × 1.1)
        assert_eq!(fresh_caps(0, 0, 0).max_fee_per_blob_gas, 1);
    }

    #[test]
    fn bumps_double_the_multiplier() {
        assert_eq!(multiplier_milli(0), 1100);
        assert_eq!(multiplier_milli(1), 2200);
        assert_eq!(multiplier_milli(2), 4400);
        assert_eq!(fresh_caps(GWEI, GWEI, 1).max_fee_per_blob_gas, 2_200_000_000);
    }

    #[test]
    fn replacement_is_at_least_2_1x_every_cap() {
        let replaced =
            FeeCaps { max_fee_per_gas: 100, max_priority_fee_per_gas: 10, max_fee_per_blob_gas: 7 };
        let fresh =
            FeeCaps { max_fee_per_gas: 50, max_priority_fee_per_gas: 5, max_fee_per_blob_gas: 100 };
        let r = replacement_caps(fresh, replaced);
        assert_eq!(
            r,
            FeeCaps {
                max_fee_per_gas: 210,
                max_priority_fee_per_gas: 21,
                max_fee_per_blob_gas: 100
            }
        );
    }

    #[test]
    fn liability_and_gas_limit() {
        let c =
            FeeCaps { max_fee_per_gas: 2, max_priority_fee_per_gas: 1, max_fee_per_blob_gas: 3 };
        assert_eq!(worst_case_fee(c, 1_000, 2), 2_000 + 2 * 131_072 * 3);
        assert_eq!(gas_limit_from_estimate(100_000), 120_000);
        assert_eq!(gas_limit_from_estimate(1_400_000), GAS_LIMIT_CAP);
    }
}
