//! `orchestrator fact --pie FILE.zip`: prints the fact of a Cairo PIE.
//!
//! The fact is printed as `0x` followed by 64 lowercase hex digits. Bad input (a missing file, a
//! broken zip, a zip that is not a PIE, a PIE whose output or fact topology is malformed) exits
//! with code 2 and a message naming the problem on stderr.

use std::io::Write;
use std::{path::PathBuf, process::ExitCode};

use orchestrator_gps_fact_checker::fact::{self, pie, Felt};
use orchestrator_gps_fact_checker::{FactError, FactOptions, Hash256};

/// Exit code of a successful run.
pub const EXIT_OK: u8 = 0;
/// Exit code when the fact could not be printed (stdout closed).
pub const EXIT_OUTPUT_FAILED: u8 = 1;
/// Exit code for bad input.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Arguments of `orchestrator fact`.
#[derive(Debug, clap::Args)]
pub struct FactArgs {
    /// The Cairo PIE zip file.
    #[arg(long)]
    pub pie: PathBuf,
    /// Use this program hash (a felt, `0x…` hex or decimal) instead of hashing the PIE's
    /// program, as the aggregator job does with its prefixed program hash.
    #[arg(long, value_name = "FELT", value_parser = parse_felt)]
    pub program_hash: Option<Felt>,
    /// Aggregator mode: keep only the aggregator's own output before building the fact.
    #[arg(long)]
    pub aggregator: bool,
    /// Print the Poseidon "L2 fact" (SNOS with KZG-DA flag 0) instead of the keccak fact.
    #[arg(long, conflicts_with_all = ["program_hash", "aggregator"])]
    pub l2: bool,
}

/// The Stark field prime, 2^251 + 17·2^192 + 1, in hex.
const FIELD_PRIME_HEX: &str = "800000000000011000000000000000000000000000000000000000000000001";

/// Parses a felt given as `0x`-prefixed hex or as a decimal number; values at or above the field
/// prime are rejected rather than silently reduced.
pub fn parse_felt(s: &str) -> Result<Felt, String> {
    let s = s.trim();
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (s, 10),
    };
    let prime = num_bigint::BigUint::parse_bytes(FIELD_PRIME_HEX.as_bytes(), 16);
    match (num_bigint::BigUint::parse_bytes(digits.as_bytes(), radix), prime) {
        (Some(value), Some(prime)) if !digits.starts_with('+') && value < prime => {
            Ok(Felt::from_bytes_be_slice(&value.to_bytes_be()))
        }
        _ => {
            Err(format!("`{s}` is not a felt (0x-prefixed hex or decimal, below the field prime)"))
        }
    }
}

impl FactArgs {
    /// Runs the command, writing the fact to stdout and problems to stderr.
    pub fn execute(self) -> ExitCode {
        let code = run(&self, &mut std::io::stdout().lock(), &mut std::io::stderr().lock());
        ExitCode::from(code)
    }
}

/// Computes the fact the arguments ask for.
pub fn compute(args: &FactArgs) -> Result<Hash256, FactError> {
    let pie = pie::read_pie_file(&args.pie)?;
    if args.l2 {
        return fact::l2_fact(&pie);
    }
    let options = FactOptions { program_hash: args.program_hash, aggregator: args.aggregator };
    Ok(fact::fact_info(&pie, &options)?.fact)
}

/// Runs `orchestrator fact`: prints the fact (one line) to `stdout`, or a message to `stderr`.
///
/// Returns the process exit code: [`EXIT_OK`], [`EXIT_BAD_INPUT`] for any problem with the
/// input, [`EXIT_OUTPUT_FAILED`] if the fact could not be written.
pub fn run(args: &FactArgs, stdout: &mut dyn Write, stderr: &mut dyn Write) -> u8 {
    match compute(args) {
        Ok(fact) => match writeln!(stdout, "{fact}").and_then(|()| stdout.flush()) {
            Ok(()) => EXIT_OK,
            Err(e) => {
                // Nothing more useful can be done if stderr fails too.
                let _ = writeln!(stderr, "orchestrator fact: cannot write the fact: {e}");
                EXIT_OUTPUT_FAILED
            }
        },
        Err(e) => {
            // Nothing more useful can be done if stderr fails.
            let _ = writeln!(stderr, "orchestrator fact: {}: {e}", args.pie.display());
            EXIT_BAD_INPUT
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::path::Path;

    const FIBONACCI_FACT: &str =
        "0xca15503f02f8406b599cb220879e842394f5cf2cef753f3ee430647b5981b782";
    const SEPOLIA_FACT: &str = "0x033144ad6b132b1012f15e50aa53de1ed91b3b1af729014c3f1c00b702f972ea";

    /// Path of a PIE acceptance vector; a missing vector fails loudly.
    fn vector(name: &str) -> PathBuf {
        orchestrator_test_support::vectors::path(&format!("pie/{name}"))
    }

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: FactArgs,
    }

    fn parse(argv: &[&str]) -> Result<FactArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("fact").chain(argv.iter().copied())).map(|c| c.args)
    }

    fn args(pie: &Path) -> FactArgs {
        FactArgs { pie: pie.to_path_buf(), program_hash: None, aggregator: false, l2: false }
    }

    /// Runs the command in-process; returns (exit code, stdout, stderr).
    fn run_it(args: &FactArgs) -> (u8, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(args, &mut out, &mut err);
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    #[test]
    fn prints_the_fibonacci_fact() {
        let (code, out, err) = run_it(&args(&vector("fibonacci.zip")));
        assert_eq!((code, out.as_str(), err.as_str()), (0, &*format!("{FIBONACCI_FACT}\n"), ""));
    }

    #[test]
    fn prints_the_sepolia_fact() {
        let parsed = parse(&["--pie", vector("sepolia_924016.zip").to_str().unwrap()]).unwrap();
        let (code, out, err) = run_it(&parsed);
        assert_eq!((code, out.as_str(), err.as_str()), (0, &*format!("{SEPOLIA_FACT}\n"), ""));
    }

    fn assert_bad_input(args: &FactArgs, needle: &str) {
        let (code, out, err) = run_it(args);
        assert_eq!(code, EXIT_BAD_INPUT, "stderr: {err}");
        assert!(out.is_empty(), "stdout: {out}");
        assert!(err.contains(needle), "stderr `{err}` lacks `{needle}`");
        assert!(err.contains(&args.pie.display().to_string()), "stderr `{err}` lacks the path");
    }

    #[test]
    fn missing_file_is_bad_input() {
        assert_bad_input(&args(Path::new("/nonexistent/dir/pie.zip")), "cannot read PIE file");
    }

    #[test]
    fn broken_zips_are_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = std::fs::read(vector("sepolia_924016.zip")).unwrap();

        let truncated = dir.path().join("truncated.zip");
        std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
        assert_bad_input(&args(&truncated), "not a readable zip archive");

        let random = dir.path().join("random.zip");
        let noise: Vec<u8> =
            (0..10_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        std::fs::write(&random, noise).unwrap();
        assert_bad_input(&args(&random), "not a readable zip archive");

        let empty = dir.path().join("empty.zip");
        std::fs::write(&empty, b"").unwrap();
        assert_bad_input(&args(&empty), "not a readable zip archive");
    }

    #[test]
    fn zip_that_is_not_a_pie_is_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.zip");
        let mut w = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        w.start_file("readme.txt", zip::write::SimpleFileOptions::default()).unwrap();
        w.write_all(b"not a pie").unwrap();
        w.finish().unwrap();
        assert_bad_input(&args(&path), "not a Cairo PIE: entry `metadata.json` is missing");
    }

    #[test]
    fn directory_is_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        assert_bad_input(&args(dir.path()), "cannot read PIE file");
    }

    /// Writes the sepolia PIE, with its output pages / topology changed by `edit`, to `dir`.
    fn edited_sepolia_pie(
        dir: &Path,
        name: &str,
        edit: impl FnOnce(&mut cairo_vm::vm::runners::cairo_pie::OutputBuiltinAdditionalData),
    ) -> PathBuf {
        use cairo_vm::types::builtin_name::BuiltinName;
        use cairo_vm::vm::runners::cairo_pie::BuiltinAdditionalData;

        let mut pie = pie::read_pie_file(&vector("sepolia_924016.zip")).unwrap();
        match pie.additional_data.0.get_mut(&BuiltinName::output) {
            Some(BuiltinAdditionalData::Output(data)) => edit(data),
            other => panic!("sepolia PIE has output additional data, got {other:?}"),
        }
        let path = dir.join(name);
        pie.write_zip_file(&path, false).unwrap();
        path
    }

    #[test]
    fn bad_topology_and_page_gap_are_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let unchanged = edited_sepolia_pie(dir.path(), "same.zip", |_| {});
        let (code, out, _) = run_it(&args(&unchanged));
        assert_eq!((code, out.trim()), (0, SEPOLIA_FACT), "round trip through write_zip_file");

        let odd = edited_sepolia_pie(dir.path(), "odd.zip", |d| {
            d.attributes.insert("gps_fact_topology".into(), vec![2, 1, 0]);
        });
        assert_bad_input(&args(&odd), "bad fact topology: tree structure has odd length 3");

        let gap = edited_sepolia_pie(dir.path(), "gap.zip", |d| {
            d.pages.insert(
                2,
                cairo_vm::vm::runners::cairo_pie::PublicMemoryPage { start: 22, size: 1 },
            );
        });
        assert_bad_input(&args(&gap), "page gap: page 2 starts at 22, expected 23");
    }

    #[test]
    fn aggregator_mode_on_a_plain_pie_is_bad_input() {
        let mut a = args(&vector("fibonacci.zip"));
        a.aggregator = true;
        assert_bad_input(&a, "malformed aggregator output");
    }

    #[test]
    fn program_hash_override_changes_the_fact() {
        let parsed =
            parse(&["--pie", vector("fibonacci.zip").to_str().unwrap(), "--program-hash", "0x2a"])
                .unwrap();
        assert_eq!(parsed.program_hash, Some(Felt::from(42u8)));
        let (code, out, _) = run_it(&parsed);
        assert_eq!(code, 0);
        assert_eq!(out.trim().len(), 66);
        assert_ne!(out.trim(), FIBONACCI_FACT);
    }

    #[test]
    fn l2_fact_is_printed_in_the_same_format() {
        let parsed =
            parse(&["--pie", vector("sepolia_924016.zip").to_str().unwrap(), "--l2"]).unwrap();
        let (code, out, err) = run_it(&parsed);
        assert_eq!(code, 0, "{err}");
        let line = out.trim_end_matches('\n');
        assert!(line.starts_with("0x") && line.len() == 66, "{line}");
        assert!(line[2..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_ne!(line, SEPOLIA_FACT);
    }

    #[test]
    fn argument_errors() {
        assert!(parse(&[]).is_err(), "--pie is required");
        assert!(parse(&["--pie", "x.zip", "--program-hash", "0xzz"]).is_err());
        assert!(parse(&["--pie", "x.zip", "--l2", "--aggregator"]).is_err());
        assert_eq!(parse_felt("42"), Ok(Felt::from(42u8)));
        assert_eq!(parse_felt("0x2A"), Ok(Felt::from(42u8)));
        assert!(parse_felt("").is_err());
        assert!(parse_felt("-1").is_err());
        assert!(parse_felt("+5").is_err());
        assert!(parse_felt("0x").is_err());
        assert!(parse_felt(&format!("0x{}", "f".repeat(64))).is_err(), "above the prime");
        assert!(parse_felt(&format!("0x{FIELD_PRIME_HEX}")).is_err(), "the prime itself");
        assert_eq!(
            parse_felt("0x800000000000011000000000000000000000000000000000000000000000000"),
            Ok(Felt::MAX)
        );
    }

    /// A writer whose every write fails, to check that a closed stdout is reported.
    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn closed_stdout_is_reported() {
        let mut err = Vec::new();
        let code = run(&args(&vector("fibonacci.zip")), &mut Closed, &mut err);
        assert_eq!(code, EXIT_OUTPUT_FAILED);
        assert!(String::from_utf8(err).unwrap().contains("cannot write the fact"));
    }
}
