//! The built `orchestrator` executable itself: a position-independent executable, and whole
//! `blob decode` processes on mainnet blobs and on bad usage.

use std::process::Command;

use orchestrator::cli::dev::blob::{BlobCommand, DecodeArgs};

use crate::blob_vectors::vector;

const BIN: &str = env!("CARGO_BIN_EXE_orchestrator");

/// What the ELF headers of a file say about how it is linked.
#[derive(Debug)]
struct ElfLinking {
    /// `e_type`: 2 = `ET_EXEC` (position-dependent), 3 = `ET_DYN` (PIE or shared library).
    e_type: u16,
    /// Whether a `PT_INTERP` program header names a dynamic loader (executables only).
    has_interpreter: bool,
    /// `DT_FLAGS_1` of the dynamic section, 0 when absent.
    flags_1: u64,
}

/// Reads the ELF header, the program headers and the dynamic section of a 64-bit
/// little-endian ELF file (the targets built here).
fn elf_linking(path: &str) -> ElfLinking {
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    const DT_NULL: u64 = 0;
    const DT_FLAGS_1: u64 = 0x6fff_fffb;

    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF", "{path} is not an ELF file");
    assert_eq!(bytes[4], 2, "{path} is not a 64-bit ELF file");
    assert_eq!(bytes[5], 1, "{path} is not little-endian");
    let u16_at = |at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap());
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let as_index = |v: u64| usize::try_from(v).unwrap();

    let e_type = u16_at(16);
    let (phoff, phentsize, phnum) = (as_index(u64_at(32)), usize::from(u16_at(54)), u16_at(56));
    let mut has_interpreter = false;
    let mut flags_1 = 0;
    for i in 0..usize::from(phnum) {
        let ph = phoff + i * phentsize;
        match u32_at(ph) {
            PT_INTERP => has_interpreter = true,
            PT_DYNAMIC => {
                // Entries of 16 bytes (d_tag, d_val) from p_offset, up to DT_NULL.
                let (offset, size) = (as_index(u64_at(ph + 8)), as_index(u64_at(ph + 32)));
                for entry in (offset..offset + size).step_by(16) {
                    match u64_at(entry) {
                        DT_NULL => break,
                        DT_FLAGS_1 => flags_1 = u64_at(entry + 8),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    ElfLinking { e_type, has_interpreter, flags_1 }
}

/// The daemon holds the settlement key: its own code and data are placed at a random address
/// (ASLR) like everything else, which needs a position-independent executable.
#[test]
#[cfg(target_os = "linux")]
fn the_binary_is_a_position_independent_executable() {
    const ET_DYN: u16 = 3;
    const DF_1_PIE: u64 = 0x0800_0000;
    let elf = elf_linking(BIN);
    assert_eq!(elf.e_type, ET_DYN, "{BIN} is position-dependent: {elf:?}");
    // ET_DYN alone is also what a shared library is: the linker marks a PIE with DF_1_PIE, and
    // a dynamically linked executable names its loader.
    assert!(
        elf.flags_1 & DF_1_PIE != 0 || elf.has_interpreter,
        "{BIN} is neither flagged DF_1_PIE nor has a PT_INTERP: {elf:?}"
    );
}

#[test]
fn a_decode_process_prints_what_the_library_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs.txt");
    let text: Vec<String> = ["178", "671070"]
        .iter()
        .map(|b| std::fs::read_to_string(vector(&format!("da_blob/test_blob/{b}.txt"))).unwrap())
        .collect();
    std::fs::write(&blobs, format!("{}\n{}\n", text[0].trim(), text[1].trim())).unwrap();
    let out = Command::new(BIN).args(["blob", "decode", "--blob"]).arg(&blobs).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut expected = Vec::new();
    let code = BlobCommand::Decode(DecodeArgs { blob: blobs }).run(&mut expected, &mut Vec::new());
    assert_eq!(code, 0);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 2);
    assert!(stdout.lines().all(|l| l.split(' ').count() == 4096), "4096 coefficients a line");
    assert_eq!(stdout, String::from_utf8(expected).unwrap());
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
    assert!(err.contains("line 1: a blob is 262144 hex characters"), "{err}");
}

/// Usage errors of the developer commands come from clap, with its exit code 2; help exits 0.
#[test]
fn developer_commands_report_bad_usage_with_exit_code_2() {
    for (args, needle) in [
        (&["blob", "decode"][..], "--blob <BLOB>"),
        (&["blob", "decode", "--blob", "f", "extra"], "unexpected argument 'extra'"),
        (&["blob", "decod"], "unrecognized subcommand 'decod'"),
        (&["fact"], "--pie <PIE>"),
        (&["fact", "--pie", "p.zip", "--l2", "--aggregator"], "cannot be used with"),
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(needle), "{args:?}: `{err}` lacks `{needle}`");
    }
    let out = Command::new(BIN).args(["blob", "decode", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("one blob per line") && help.contains("one line per blob"), "{help}");
}
