//! The built `orchestrator` executable itself: its link mode (see `orchestrator/build.rs`) and a
//! whole `blob decode` process on a mainnet blob.

use std::process::Command;

use orchestrator::cli::dev::blob::{BlobCommand, DecodeArgs};

use crate::blob_vectors::vector;

const BIN: &str = env!("CARGO_BIN_EXE_orchestrator");

/// `e_type` of an ELF header (little-endian files only; the targets built here).
fn elf_type(path: &str) -> u16 {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF", "{path} is not an ELF file");
    assert_eq!(bytes[5], 1, "{path} is not little-endian");
    u16::from_le_bytes([bytes[16], bytes[17]])
}

#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn the_binary_is_linked_position_dependent_unless_asked_for_pie() {
    const ET_EXEC: u16 = 2;
    const ET_DYN: u16 = 3;
    // Set by `build.rs` from the target and `ORCHESTRATOR_PIE`.
    let no_pie = env!("ORCHESTRATOR_LINKED_NO_PIE") == "true";
    let expected = if no_pie { ET_EXEC } else { ET_DYN };
    assert_eq!(elf_type(BIN), expected, "ELF type of {BIN} (linked with -no-pie: {no_pie})");
}

#[test]
fn a_decode_process_prints_what_the_library_decodes() {
    let blob = vector("da_blob/test_blob/178.txt");
    let out = Command::new(BIN).args(["blob", "decode", "--blob"]).arg(&blob).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut expected = Vec::new();
    let code = BlobCommand::Decode(DecodeArgs { blob }).run(&mut expected, &mut Vec::new());
    assert_eq!(code, 0);
    assert_eq!(out.stdout.iter().filter(|b| **b == b'\n').count(), 4096);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), String::from_utf8(expected).unwrap());
}

#[test]
fn a_decode_process_names_a_short_blob_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.txt");
    std::fs::write(&path, "00".repeat(1000)).unwrap();
    let out = Command::new(BIN).args(["blob", "decode", "--blob"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("131072") || err.contains("262144"), "{err}");
}
