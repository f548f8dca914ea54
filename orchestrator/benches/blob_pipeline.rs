//! Blob pipeline benchmark.
//!
//! - `pipeline/6_blobs`: 24 576 felts of incompressible data (random 252-bit values, sized so the
//!   compressed output fills 6 blobs) through stateless compression, the evaluation transform
//!   (NTT), KZG commitments and blob proofs.
//! - `ckzg/commit_and_proof_6_blobs`: c-kzg's commitments and blob proofs alone on the same blobs.
//! - `transform/ntt_1_blob` vs `transform/horner_1_blob`: one blob through the O(n log n)
//!   transform and through the naive O(n²) Horner evaluation at every point (same field
//!   arithmetic), and `transform/horner_biguint_64_points`: the reference orchestrator's BigUint
//!   Horner on 64 of the 4096 points (multiply by 64 for one blob).
//! - `transform/inverse_1_blob`: blob → coefficients.

use std::{hint::black_box, time::Duration};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use num_bigint::BigUint;
use orchestrator::compression::{
    fr::Fr,
    stateless,
    transform::{
        bit_reverse, blob_to_coefficients, evaluate_in_place, felt_to_fr, felts_to_blobs, omega,
        FELTS_PER_BLOB,
    },
};
use orchestrator_ethereum_settlement_client::kzg::Kzg;
use starknet::core::types::Felt;

/// Deterministic pseudo-random felts (splitmix64), below 2^251.
fn felts(n: usize, seed: u64) -> Vec<Felt> {
    let mut s = seed;
    let mut next = || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..n)
        .map(|_| {
            let mut b = [0u8; 32];
            for chunk in b.chunks_mut(8) {
                chunk.copy_from_slice(&next().to_be_bytes());
            }
            b[0] &= 0x07;
            Felt::from_bytes_be(&b)
        })
        .collect()
}

/// The naive O(n²) transform: Horner evaluation of the polynomial at every `ω^bitrev(i)`.
fn horner_transform(coeffs: &[Fr], xs: &[Fr]) -> Vec<Fr> {
    xs.iter().map(|x| coeffs.iter().rev().fold(Fr::ZERO, |acc, c| acc.mul(*x).add(*c))).collect()
}

/// The reference orchestrator's transform (BigUint Horner), on the given points only.
fn horner_biguint(coeffs: &[BigUint], xs: &[BigUint], modulus: &BigUint) -> Vec<BigUint> {
    xs.iter()
        .map(|x| coeffs.iter().rev().fold(BigUint::ZERO, |acc, c| (acc * x + c) % modulus))
        .collect()
}

fn bench(c: &mut Criterion) {
    let kzg = Kzg::ethereum();

    // 24 576 felts whose compression (1 header + n values + ⌈n/83⌉ bucket-index felts) fills
    // 6 blobs: n = 24 280 unique values → 24 574 felts.
    let data = felts(24_280, 1);
    let compressed = stateless::compress(&data).expect("compressible");
    assert_eq!(compressed.len().div_ceil(FELTS_PER_BLOB), 6);
    let blobs = felts_to_blobs(&compressed, 6).expect("6 blobs");

    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10).measurement_time(Duration::from_secs(8)).warm_up_time(Duration::from_secs(1));
    g.bench_function("6_blobs", |b| {
        b.iter(|| {
            let compressed = stateless::compress(black_box(&data)).expect("compress");
            let blobs = felts_to_blobs(&compressed, 6).expect("blobs");
            let mut out = Vec::with_capacity(6);
            for blob in &blobs {
                let commitment = kzg.commitment(blob).expect("commitment");
                let proof = kzg.blob_proof(blob, &commitment).expect("proof");
                out.push((commitment, proof));
            }
            out
        })
    });
    g.bench_function("compress_and_transform_6_blobs", |b| {
        b.iter(|| {
            let compressed = stateless::compress(black_box(&data)).expect("compress");
            felts_to_blobs(&compressed, 6).expect("blobs")
        })
    });
    g.finish();

    let mut g = c.benchmark_group("ckzg");
    g.sample_size(10).measurement_time(Duration::from_secs(8)).warm_up_time(Duration::from_secs(1));
    g.bench_function("commit_and_proof_6_blobs", |b| {
        b.iter(|| {
            blobs
                .iter()
                .map(|blob| {
                    let commitment = kzg.commitment(black_box(blob)).expect("commitment");
                    (commitment, kzg.blob_proof(blob, &commitment).expect("proof"))
                })
                .collect::<Vec<_>>()
        })
    });
    g.finish();

    let one: Vec<Fr> = felts(FELTS_PER_BLOB, 2).iter().map(felt_to_fr).collect();
    let w = omega();
    let xs: Vec<Fr> = (0..FELTS_PER_BLOB).map(|i| w.pow(bit_reverse(i) as u64)).collect();
    // Sanity: both transforms agree.
    let mut ntt = one.clone();
    evaluate_in_place(&mut ntt);
    assert_eq!(horner_transform(&one, &xs[..8]), ntt[..8].to_vec());

    let mut g = c.benchmark_group("transform");
    g.sample_size(10).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    g.bench_function("ntt_1_blob", |b| {
        b.iter_batched_ref(
            || one.clone(),
            |v| evaluate_in_place(black_box(v)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("inverse_1_blob", |b| {
        b.iter(|| blob_to_coefficients(black_box(&blobs[0])).expect("blob"))
    });
    g.bench_function("horner_1_blob", |b| b.iter(|| horner_transform(black_box(&one), &xs)));

    let modulus: BigUint = orchestrator::compression::fr::MODULUS_DECIMAL.parse().expect("modulus");
    let big_coeffs: Vec<BigUint> =
        one.iter().map(|f| BigUint::from_bytes_be(&f.to_be_bytes())).collect();
    let big_xs: Vec<BigUint> =
        xs[..64].iter().map(|f| BigUint::from_bytes_be(&f.to_be_bytes())).collect();
    g.bench_function("horner_biguint_64_points", |b| {
        b.iter(|| horner_biguint(black_box(&big_coeffs), &big_xs, &modulus))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().nresamples(20_000).without_plots();
    targets = bench
}
criterion_main!(benches);
