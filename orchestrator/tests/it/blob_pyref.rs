//! Cross-checks against independent Python references (PyPI `cairo-lang` and `ckzg`).
//!
//! These tests are `#[ignore]`d so a plain `cargo test` does not need Python; run them with
//! `scripts/pyref/check.sh` (which installs nothing: run `scripts/install-pyrefs.sh` first). When
//! run, they FAIL with a clear message if the reference venv is missing, unless
//! `ORCH_SKIP_PYREF=1` says to skip.
//!
//! Each test generates seeded inputs in Rust, computes this crate's answers, writes both to a
//! JSON file and has `scripts/pyref/crosscheck.py` recompute them with the references.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use orchestrator_protocol::{
    compression::{encode::da_word, io::felt_hex, stateless, StarknetVersion},
    fr::Fr,
    kzg::Kzg,
    transform::{blob_to_coefficients, felts_to_blob},
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};
use starknet::core::types::Felt;

use crate::blob_vectors::read;

const SEED: u64 = 0x0da_b10b;

/// The venv python, or `None` when the checks are to be skipped.
fn python() -> Option<PathBuf> {
    if std::env::var("ORCH_SKIP_PYREF").is_ok_and(|v| v == "1") {
        eprintln!("ORCH_SKIP_PYREF=1: skipping the Python reference cross-check");
        return None;
    }
    let path = match std::env::var_os("ORCH_PYREF_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => {
            let cache = std::env::var_os("ORCH_CACHE")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/orchestrator"))
                })
                .unwrap_or_else(|| PathBuf::from(".cache/orchestrator"));
            cache.join("pyref-venv/bin/python")
        }
    };
    assert!(
        path.is_file(),
        "Python reference venv not found ({}). Run scripts/install-pyrefs.sh, or set \
         ORCH_SKIP_PYREF=1 to skip these cross-checks.",
        path.display()
    );
    Some(path)
}

fn script() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/pyref/crosscheck.py"))
}

/// Writes `payload`, runs `crosscheck.py MODE FILE`, and fails with its output unless it passes.
fn crosscheck(python: &Path, mode: &str, payload: &Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{mode}.json"));
    std::fs::write(&file, serde_json::to_vec(payload).unwrap()).unwrap();
    let output = Command::new(python)
        .arg(script())
        .arg(mode)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "crosscheck.py {mode} failed:\n{stdout}\n{stderr}");
}

fn random_felt(rng: &mut StdRng, max_bits: u32) -> Felt {
    let bits = rng.gen_range(0..=max_bits);
    let mut bytes = [0u8; 32];
    rng.fill(&mut bytes[..]);
    let mut v = Felt::from_bytes_be(&bytes);
    if bits < 252 {
        // Keep `bits` low bits.
        let d = v.to_le_digits();
        let mut out = [0u64; 4];
        for (i, o) in out.iter_mut().enumerate() {
            let lo = 64 * i as u32;
            *o = if bits >= lo + 64 {
                d[i]
            } else if bits > lo {
                d[i] & ((1u64 << (bits - lo)) - 1)
            } else {
                0
            };
        }
        let mut be = [0u8; 32];
        for i in 0..4 {
            be[8 * i..8 * i + 8].copy_from_slice(&out[3 - i].to_be_bytes());
        }
        v = Felt::from_bytes_be(&be);
    }
    v
}

/// A felt list with a length, value-size mix and repetition rate drawn from the seed.
fn random_felt_list(rng: &mut StdRng, case: usize) -> Vec<Felt> {
    let len = match case % 8 {
        0 => rng.gen_range(0..4),
        1 | 2 => rng.gen_range(4..64),
        3 | 4 => rng.gen_range(64..600),
        5 | 6 => rng.gen_range(600..3000),
        _ => rng.gen_range(3000..12000),
    };
    let max_bits = [8, 15, 16, 31, 32, 62, 63, 83, 84, 125, 126, 200, 251, 252][case % 14];
    let repeat_rate: f64 = [0.0, 0.1, 0.5, 0.9][(case / 3) % 4];
    let mut pool: Vec<Felt> = Vec::new();
    (0..len)
        .map(|_| {
            if !pool.is_empty() && rng.gen_bool(repeat_rate) {
                pool[rng.gen_range(0..pool.len())]
            } else {
                let v = if rng.gen_bool(0.1) { Felt::MAX } else { random_felt(rng, max_bits) };
                pool.push(v);
                v
            }
        })
        .collect()
}

fn hexes(felts: &[Felt]) -> Vec<String> {
    felts.iter().map(felt_hex).collect()
}

#[test]
#[ignore = "needs the Python references: run scripts/pyref/check.sh"]
fn pyref_compression_matches_cairo_lang() {
    let Some(py) = python() else { return };
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut cases = Vec::new();
    for case in 0..240 {
        let data = random_felt_list(&mut rng, case);
        let compressed = stateless::compress(&data).unwrap();
        assert_eq!(stateless::decompress(&compressed).unwrap(), data);
        cases.push(json!({ "data": hexes(&data), "compressed": hexes(&compressed) }));
    }
    let mut words = Vec::new();
    for _ in 0..300 {
        let class = rng.gen_bool(0.5);
        let nonce: u64 =
            if rng.gen_bool(0.3) { 0 } else { rng.gen::<u64>() >> rng.gen_range(0..64) };
        let n: u64 = match rng.gen_range(0..4) {
            0 => rng.gen_range(0..256),
            1 => rng.gen_range(250..262),
            2 => rng.gen_range(256..100_000),
            _ => rng.gen::<u64>() >> rng.gen_range(0..64),
        };
        let w = da_word(class, nonce, n, StarknetVersion::V0_13_5);
        words.push(json!({ "class": class, "nonce": nonce.to_string(), "n": n.to_string(), "word": felt_hex(&w) }));
    }
    crosscheck(&py, "compression", &json!({ "cases": cases, "da_words": words }));
}

fn fr_hex(v: &Fr) -> String {
    v.to_string()
}

#[test]
#[ignore = "needs the Python references: run scripts/pyref/check.sh"]
fn pyref_transform_matches_cairo_lang_fft() {
    let Some(py) = python() else { return };
    let mut rng = StdRng::seed_from_u64(SEED ^ 1);
    let mut cases = Vec::new();
    for i in 0..4 {
        let n = [4096, 1, 1000, 4096][i];
        let felts: Vec<Felt> = (0..n).map(|_| random_felt(&mut rng, 252)).collect();
        let blob = felts_to_blob(&felts).unwrap();
        cases.push(json!({ "coefficients": hexes(&felts), "blob": hex::encode(&blob) }));
    }
    // A mainnet blob and its coefficients.
    let blob = hex::decode(read("da_blob/test_blob/640644.txt").trim()).unwrap();
    let coefficients = blob_to_coefficients(&blob).unwrap();
    cases.push(json!({ "coefficients": coefficients.iter().map(fr_hex).collect::<Vec<_>>(), "blob": hex::encode(&blob) }));
    crosscheck(&py, "fft", &json!({ "cases": cases }));
}

#[test]
#[ignore = "needs the Python references: run scripts/pyref/check.sh"]
fn pyref_kzg_verifies_with_ckzg() {
    let Some(py) = python() else { return };
    let kzg = Kzg::ethereum();
    let mut rng = StdRng::seed_from_u64(SEED ^ 2);
    let mut blobs: Vec<Vec<u8>> = (0..3)
        .map(|_| {
            let felts: Vec<Felt> =
                (0..rng.gen_range(1..4096)).map(|_| random_felt(&mut rng, 252)).collect();
            felts_to_blob(&felts).unwrap()
        })
        .collect();
    let mut points: Vec<[u8; 32]> = (0..3)
        .map(|_| {
            let mut z = [0u8; 32];
            rng.fill(&mut z[1..]);
            z[0] = rng.gen_range(0..0x70);
            z
        })
        .collect();
    for block in [651053, 651056] {
        blobs.push(
            hex::decode(read(&format!("kzg_state_update/{block}/blob_data.txt")).trim()).unwrap(),
        );
        let x0 = hex::decode(
            read(&format!("kzg_state_update/{block}/x_0.txt")).trim().trim_start_matches("0x"),
        )
        .unwrap();
        points.push(x0.try_into().unwrap());
    }
    let cases: Vec<Value> = blobs
        .iter()
        .zip(&points)
        .map(|(blob, z)| {
            let c = kzg.commitment(blob).unwrap();
            let proof = kzg.blob_proof(blob, &c).unwrap();
            let pp = kzg.point_proof(blob, z).unwrap();
            let cell_proofs: Vec<String> =
                kzg.cell_proofs(blob).unwrap().iter().map(hex::encode).collect();
            json!({
                "blob": hex::encode(blob),
                "commitment": hex::encode(c),
                "proof": hex::encode(proof),
                "z": hex::encode(z),
                "y": hex::encode(pp.y),
                "point_proof": hex::encode(pp.proof),
                "cell_proofs": cell_proofs,
            })
        })
        .collect();
    crosscheck(&py, "kzg", &json!({ "cases": cases }));
}
