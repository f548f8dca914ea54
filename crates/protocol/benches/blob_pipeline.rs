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
//! - `decode/1_blob` and `decode/65_blobs`: `orchestrator blob decode` in-process
//!   ([`decode_blobs`], what the command runs, output to a sink) on a file of one mainnet blob
//!   and on a file of 65 (the nine of `da_blob/test_blob` repeated), file read and printing
//!   included.
//!
//! At the end it prints the summary line `blob decode: per blob …`: the decode time of one more
//! blob, `(t65 − t1) / 64` (the per-call cost cancels out), next to the reference's O(n²)
//! transform of one blob (`horner_biguint_64_points` × 64) and their ratio. Each figure is
//! criterion's estimate of the benchmark (the slope of its samples), taken in the same run.

use std::{
    cell::RefCell,
    hint::black_box,
    io,
    path::Path,
    time::{Duration, Instant},
};

use criterion::{BatchSize, Criterion};
use num_bigint::BigUint;
use orchestrator_protocol::{
    compression::stateless,
    decode::decode_blobs,
    fr::{Fr, MODULUS_DECIMAL},
    kzg::Kzg,
    transform::{
        bit_reverse, blob_to_coefficients, evaluate_in_place, felt_to_fr, felts_to_blobs, omega,
        FELTS_PER_BLOB,
    },
};
use starknet_core::types::Felt;

/// Criterion samples of the `transform` group.
const TRANSFORM_SAMPLES: usize = 10;
/// Criterion samples of the `decode` group.
const DECODE_SAMPLES: usize = 20;
/// Blobs in the big file of the `decode` group.
const MANY_BLOBS: usize = 65;
/// Points of `horner_biguint_64_points` (of the 4096 of a blob).
const BIGUINT_POINTS: usize = 64;

/// The samples criterion took of a benchmark through `iter_custom` (iterations, total time),
/// for the summary line.
#[derive(Default)]
struct Samples(RefCell<Vec<(u64, Duration)>>);

impl Samples {
    /// Runs `f` `iters` times, records the sample and returns its total time.
    fn time<T>(&self, iters: u64, mut f: impl FnMut() -> T) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(f());
        }
        let total = start.elapsed();
        self.0.borrow_mut().push((iters, total));
        total
    }

    /// The time of one iteration as criterion estimates it: the least-squares slope through the
    /// origin of total time over iterations (the mean when every sample has as many
    /// iterations), over the last `n` samples (criterion's measurement comes after its warm-up
    /// calls). `None` if the benchmark did not run (filtered out).
    fn estimate(&self, n: usize) -> Option<Duration> {
        let all = self.0.borrow();
        let last = &all[all.len().saturating_sub(n)..];
        let xy: f64 = last.iter().map(|(i, t)| *i as f64 * t.as_secs_f64()).sum();
        let xx: f64 = last.iter().map(|(i, _)| (*i as f64).powi(2)).sum();
        (xx > 0.0).then(|| Duration::from_secs_f64(xy / xx))
    }
}

/// What the summary line is made of.
#[derive(Default)]
struct Figures {
    /// `decode/1_blob`.
    decode_1: Samples,
    /// `decode/65_blobs`.
    decode_many: Samples,
    /// `transform/horner_biguint_64_points`.
    biguint_64_points: Samples,
}

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

/// Writes `lines` (blobs as in the vectors) to `path`, one per line.
fn write_blob_file(path: &Path, lines: &[&str]) {
    let mut text = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(path, text).expect("write the blob file");
}

/// `orchestrator blob decode --blob FILE` in-process (what the command runs once the file is
/// open), output to a sink and warnings ignored; the number of blobs.
fn decode_file(path: &Path) -> usize {
    let file = std::fs::File::open(path).expect("open the blob file");
    decode_blobs(file, &mut io::sink(), &mut |_| {}).expect("the blobs decode")
}

fn bench(c: &mut Criterion, figures: &Figures) {
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
    g.sample_size(TRANSFORM_SAMPLES)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
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

    let modulus: BigUint = MODULUS_DECIMAL.parse().expect("modulus");
    let big_coeffs: Vec<BigUint> =
        one.iter().map(|f| BigUint::from_bytes_be(&f.to_be_bytes())).collect();
    let big_xs: Vec<BigUint> =
        xs[..BIGUINT_POINTS].iter().map(|f| BigUint::from_bytes_be(&f.to_be_bytes())).collect();
    g.bench_function("horner_biguint_64_points", |b| {
        b.iter_custom(|iters| {
            figures
                .biguint_64_points
                .time(iters, || horner_biguint(black_box(&big_coeffs), &big_xs, &modulus))
        })
    });
    g.finish();

    // The nine mainnet blobs repeated to 65 lines, and the first of them alone.
    let vectors: Vec<String> =
        ["178", "631861", "638353", "639404", "640641", "640644", "640646", "640647", "671070"]
            .iter()
            .map(|block| {
                let path = orchestrator_test_support::vectors::path(&format!(
                    "da_blob/test_blob/{block}.txt"
                ));
                std::fs::read_to_string(&path).expect("blob vector").trim().to_owned()
            })
            .collect();
    let lines: Vec<&str> = vectors.iter().map(String::as_str).cycle().take(MANY_BLOBS).collect();
    let dir = tempfile::tempdir().expect("temporary directory");
    let one_file = dir.path().join("1_blob.txt");
    let many_file = dir.path().join(format!("{MANY_BLOBS}_blobs.txt"));
    write_blob_file(&one_file, &lines[..1]);
    write_blob_file(&many_file, &lines);
    // Sanity: both files decode, one line per blob, and no blob is refused as not Starknet's.
    for (path, n) in [(&one_file, 1), (&many_file, MANY_BLOBS)] {
        let mut out = Vec::new();
        let file = std::fs::File::open(path).expect("open the blob file");
        let decoded = decode_blobs(file, &mut out, &mut |w| panic!("{w:?}")).expect("decodes");
        assert_eq!(decoded, n, "{}", path.display());
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), n);
    }

    let mut g = c.benchmark_group("decode");
    g.sample_size(DECODE_SAMPLES)
        .measurement_time(Duration::from_secs(6))
        .warm_up_time(Duration::from_secs(1));
    g.bench_function("1_blob", |b| {
        b.iter_custom(|iters| figures.decode_1.time(iters, || decode_file(black_box(&one_file))))
    });
    g.bench_function(format!("{MANY_BLOBS}_blobs"), |b| {
        b.iter_custom(|iters| {
            figures.decode_many.time(iters, || decode_file(black_box(&many_file)))
        })
    });
    g.finish();
}

/// The summary line, or `None` when the decode benchmarks did not run.
fn summary(figures: &Figures) -> Option<String> {
    let t1 = figures.decode_1.estimate(DECODE_SAMPLES)?;
    let t_many = figures.decode_many.estimate(DECODE_SAMPLES)?;
    let per_blob = t_many.saturating_sub(t1).as_secs_f64() / (MANY_BLOBS - 1) as f64;
    let mut line = format!(
        "blob decode: per blob {:.1} µs (({MANY_BLOBS} − 1 blobs)/{}: {:.2} ms − {:.3} ms)",
        per_blob * 1e6,
        MANY_BLOBS - 1,
        t_many.as_secs_f64() * 1e3,
        t1.as_secs_f64() * 1e3,
    );
    match figures.biguint_64_points.estimate(TRANSFORM_SAMPLES) {
        Some(t) => {
            let quadratic = t.as_secs_f64() * (FELTS_PER_BLOB / BIGUINT_POINTS) as f64;
            line.push_str(&format!(
                "; O(n²) {:.0} ms (BigUint Horner, {BIGUINT_POINTS} points × {}); ratio {:.0}×",
                quadratic * 1e3,
                FELTS_PER_BLOB / BIGUINT_POINTS,
                quadratic / per_blob,
            ));
        }
        None => line.push_str("; O(n²) not measured (filtered out)"),
    }
    Some(line)
}

// `criterion_group!`/`criterion_main!` by hand, to print the summary line after the benchmarks.
fn main() {
    let figures = Figures::default();
    let mut c = Criterion::default().nresamples(20_000).without_plots().configure_from_args();
    bench(&mut c, &figures);
    c.final_summary();
    if let Some(line) = summary(&figures) {
        println!("{line}");
    }
}
