//! The `orchestrator blob …` commands run in-process on the acceptance vectors.

use orchestrator::cli::dev::blob::{BlobCommand, DecodeArgs, EncodeArgs, EncodeFormat, KzgArgs};
use orchestrator_protocol::{compression::io::parse_blob_hex, transform::blob_to_coefficients};

use crate::blob_vectors::{read, vector};

fn run(cmd: BlobCommand) -> (u8, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = cmd.run(&mut out, &mut err);
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

fn encode_args(block: u64, nonces: bool, format: EncodeFormat) -> EncodeArgs {
    EncodeArgs {
        state_update: vector(&format!("da_blob/state_update/{block}.txt")),
        nonces: nonces.then(|| vector(&format!("da_blob/nonces/{block}.txt"))),
        aliases: None,
        starknet_version: "0.13.2".into(),
        compress: false,
        format,
        max_blobs: 6,
    }
}

#[test]
fn encode_prints_the_mainnet_blob() {
    for block in [178u64, 671070] {
        let (code, out, err) =
            run(BlobCommand::Encode(encode_args(block, true, EncodeFormat::Blobs)));
        assert_eq!(code, 0, "{err}");
        let expected = read(&format!("da_blob/test_blob/{block}.txt"));
        assert_eq!(out, format!("{}\n", expected.trim()), "block {block}");
    }
}

#[test]
fn encode_felts_match_decode() {
    let (code, felts, err) = run(BlobCommand::Encode(encode_args(178, true, EncodeFormat::Felts)));
    assert_eq!(code, 0, "{err}");
    let (code, decoded, err) =
        run(BlobCommand::Decode(DecodeArgs { blob: vector("da_blob/test_blob/178.txt") }));
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    // One blob: one line of 4096 coefficients.
    assert_eq!(decoded.lines().count(), 1);
    let decoded: Vec<&str> = decoded.trim_end_matches('\n').split(' ').collect();
    assert_eq!(decoded.len(), 4096);
    let felts: Vec<&str> = felts.lines().collect();
    assert_eq!(&decoded[..felts.len()], &felts[..]);
    assert!(decoded[felts.len()..].iter().all(|c| *c == "0x0"));
}

/// The nine mainnet blobs in one file, with blank lines around them: one output line per blob,
/// each the coefficients of the general inverse transform.
#[test]
fn decode_prints_every_mainnet_blob_on_its_line() {
    let blocks = [178u64, 631861, 638353, 639404, 640641, 640644, 640646, 640647, 671070];
    let texts: Vec<String> =
        blocks.iter().map(|b| read(&format!("da_blob/test_blob/{b}.txt"))).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blobs.txt");
    let content: String = texts.iter().map(|t| format!("\n{}\n", t.trim())).collect();
    std::fs::write(&path, content).unwrap();

    let (code, out, err) = run(BlobCommand::Decode(DecodeArgs { blob: path }));
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), blocks.len());
    for ((block, text), line) in blocks.iter().zip(&texts).zip(lines) {
        let coefficients = blob_to_coefficients(&parse_blob_hex(text).unwrap()).unwrap();
        let expected: Vec<String> = coefficients.iter().map(|c| c.to_string()).collect();
        assert_eq!(line, expected.join(" "), "block {block}");
    }
}

#[test]
fn missing_nonce_names_the_contract() {
    let (code, out, err) =
        run(BlobCommand::Encode(encode_args(631861, false, EncodeFormat::Blobs)));
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(err.contains("no nonce given for contract 0x") && err.contains("--nonces"), "{err}");
}

#[test]
fn compressed_encodings_run() {
    // 0.13.2 has no compression; 0.13.3 compresses statelessly (no aliases needed).
    let mut args = encode_args(178, true, EncodeFormat::Felts);
    args.compress = true;
    let (code, _, err) = run(BlobCommand::Encode(args.clone()));
    assert_eq!(code, 2);
    assert!(err.contains("no DA compression"), "{err}");
    args.starknet_version = "0.13.3".into();
    let (code, out, err) = run(BlobCommand::Encode(args.clone()));
    assert_eq!(code, 0, "{err}");
    assert!(!out.is_empty());
    // 0.13.4+ needs aliases for every address/key ≥ 0x80 that the diff does not allocate.
    args.starknet_version = "0.14.4".into();
    let (code, _, err) = run(BlobCommand::Encode(args));
    assert_eq!(code, 2);
    assert!(err.contains("no alias given for key 0x") && err.contains("--aliases"), "{err}");
}

#[test]
fn kzg_point_proof_matches_mainnet() {
    let x0 = read("kzg_state_update/651053/x_0.txt");
    let (code, out, err) = run(BlobCommand::Kzg(KzgArgs {
        blob: vector("kzg_state_update/651053/blob_data.txt"),
        x0: Some(x0.trim().to_string()),
    }));
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["point_proof"], read("kzg_state_update/651053/kzg_proof.txt").trim());

    let (code, out, err) = run(BlobCommand::Kzg(KzgArgs {
        blob: vector("kzg_sidecar/blob_data/20462788.txt"),
        x0: None,
    }));
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["commitment"], read("kzg_sidecar/blob_commitment/20462788.txt").trim());
    assert_eq!(json["proof"], read("kzg_sidecar/blob_proof/20462788.txt").trim());
    assert!(json.get("y").is_none());
}
