//! `orchestrator blob …`: encode a state update into blobs, (de)compress felts, decode a blob,
//! and compute KZG commitments and proofs.
//!
//! Results go to stdout, problems to stderr. Exit codes: 0 on success, 2 on bad input (the
//! message names the file and what is wrong), 1 when writing the output fails. The logic writes
//! to `&mut dyn Write` ([`BlobCommand::run`]) so it can be tested in-process.

use std::{
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use orchestrator_protocol::{
    compression::{
        diff_to_blob_felts,
        io::{
            felt_hex, parse_aliases, parse_blob_hex, parse_felt_list, parse_nonces,
            parse_state_update,
        },
        stateful::ALIAS_CONTRACT_ADDRESS,
        stateless, EncodeOptions, MemoryState, PipelineError, StarknetVersion,
        DEFAULT_MAX_NUM_BLOBS,
    },
    decode::{decode_blobs, DecodeError, NotFelts},
    fr::Fr,
    kzg::Kzg,
    transform::felts_to_blobs,
};
use starknet::core::types::Felt;

/// The `blob` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum BlobCommand {
    /// Encodes a `starknet_getStateUpdate` JSON into blobs (one hex blob per line).
    Encode(EncodeArgs),
    /// Stateless compression (Starknet ≥ 0.13.3) of felts (one per line in and out).
    Compress(FeltsArgs),
    /// Inverse of `compress`.
    Decompress(FeltsArgs),
    /// Blobs (hex, one blob per line) → their 4096 coefficients each: one line per blob, the
    /// coefficients as 0x hex separated by spaces.
    Decode(DecodeArgs),
    /// KZG commitment and blob proof of a blob, and optionally the proof at a point (JSON).
    Kzg(KzgArgs),
}

/// Output format of `blob encode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EncodeFormat {
    /// One blob per line: 262144 hex characters, no `0x`.
    Blobs,
    /// The felts before the transform, one `0x` hex per line.
    Felts,
}

/// Arguments of `blob encode`.
#[derive(Debug, Clone, clap::Args)]
pub struct EncodeArgs {
    /// The state update: JSON of `starknet_getStateUpdate` (bare result or JSON-RPC response).
    #[arg(long)]
    pub state_update: PathBuf,
    /// Nonces of contracts with storage writes but no nonce in the diff (0.13.2 encoding): JSON
    /// list of `{nonce, address}` (address decimal or 0x hex, nonce as `starknet_getNonce`
    /// answers it: hex, `0x` optional).
    #[arg(long)]
    pub nonces: Option<PathBuf>,
    /// Existing aliases for stateful compression (≥ 0.13.4 with `--compress`) that the diff does
    /// not allocate itself: JSON list of `{key, alias}`.
    #[arg(long)]
    pub aliases: Option<PathBuf>,
    /// Starknet version whose encoding to use (0.13.2, 0.13.3, …, 0.14.2 or newer).
    #[arg(long)]
    pub starknet_version: String,
    /// Compress: stateful (aliases, ≥ 0.13.4) and stateless (≥ 0.13.3).
    #[arg(long)]
    pub compress: bool,
    /// What to print.
    #[arg(long, value_enum, default_value_t = EncodeFormat::Blobs)]
    pub format: EncodeFormat,
    /// Maximum number of blobs.
    #[arg(long, default_value_t = DEFAULT_MAX_NUM_BLOBS)]
    pub max_blobs: usize,
}

/// Arguments of `blob compress` / `blob decompress`.
#[derive(Debug, Clone, clap::Args)]
pub struct FeltsArgs {
    /// Felts, one per line (0x hex or decimal), or a JSON array.
    #[arg(long)]
    pub felts: PathBuf,
}

/// Arguments of `blob decode`.
#[derive(Debug, Clone, clap::Args)]
pub struct DecodeArgs {
    /// The blobs, one blob per line: 262144 hex characters each (`0x` optional, spaces
    /// ignored); blank lines are ignored.
    #[arg(long)]
    pub blob: PathBuf,
}

/// Arguments of `blob kzg`.
#[derive(Debug, Clone, clap::Args)]
pub struct KzgArgs {
    /// The blob: 262144 hex characters (`0x` optional, whitespace ignored).
    #[arg(long)]
    pub blob: PathBuf,
    /// Evaluation point (hex, `0x` optional): adds `y` and `point_proof`.
    #[arg(long)]
    pub x0: Option<String>,
}

/// A command failure.
#[derive(Debug)]
enum Failure {
    /// Bad input: exit code 2.
    Input(String),
    /// Writing the output failed: exit code 1.
    Output(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}

type Outcome = Result<(), Failure>;

fn read_input(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure::Input(format!("{}: cannot read: {e}", path.display())))
}

fn bad(path: &Path, what: impl std::fmt::Display) -> Failure {
    Failure::Input(format!("{}: {what}", path.display()))
}

fn write_felts(out: &mut dyn Write, felts: &[Felt]) -> io::Result<()> {
    let mut s = String::with_capacity(felts.len() * 40);
    for f in felts {
        s.push_str(&felt_hex(f));
        s.push('\n');
    }
    out.write_all(s.as_bytes())
}

impl BlobCommand {
    /// Runs the command, writing results to stdout and problems to stderr.
    pub fn execute(self) -> ExitCode {
        let stdout = io::stdout();
        let mut out = BufWriter::new(stdout.lock());
        let stderr = io::stderr();
        let mut err = stderr.lock();
        let code = self.run(&mut out, &mut err);
        if let Err(e) = out.flush() {
            let _ = writeln!(err, "error: writing the output: {e}");
            return ExitCode::from(1);
        }
        ExitCode::from(code)
    }

    /// Runs the command against the given writers and returns the exit code (0, 1 or 2).
    pub fn run(self, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
        let result = match self {
            BlobCommand::Encode(a) => encode(&a, out, err),
            BlobCommand::Compress(a) => compress(&a, out),
            BlobCommand::Decompress(a) => decompress(&a, out),
            BlobCommand::Decode(a) => decode(&a, out, err),
            BlobCommand::Kzg(a) => kzg(&a, out),
        };
        match result {
            Ok(()) => 0,
            Err(Failure::Input(msg)) => {
                let _ = writeln!(err, "error: {msg}");
                2
            }
            Err(Failure::Output(e)) => {
                let _ = writeln!(err, "error: writing the output: {e}");
                1
            }
        }
    }
}

fn encode(a: &EncodeArgs, out: &mut dyn Write, _err: &mut dyn Write) -> Outcome {
    let version = StarknetVersion::parse(&a.starknet_version)
        .map_err(|e| Failure::Input(format!("--starknet-version: {e}")))?;
    let update =
        parse_state_update(&read_input(&a.state_update)?).map_err(|e| bad(&a.state_update, e))?;

    let mut state =
        MemoryState { strict_nonces: true, strict_aliases: true, ..MemoryState::default() };
    if let Some(path) = &a.nonces {
        for (address, nonce) in parse_nonces(&read_input(path)?).map_err(|e| bad(path, e))? {
            state.nonces.insert(address, nonce);
        }
    }
    if let Some(path) = &a.aliases {
        for (key, alias) in parse_aliases(&read_input(path)?).map_err(|e| bad(path, e))? {
            state.storage.insert((ALIAS_CONTRACT_ADDRESS, key), alias);
        }
    }

    let options = EncodeOptions { version, compress: a.compress };
    // The in-memory state answers the same at every block.
    let felts =
        futures::executor::block_on(diff_to_blob_felts(&update.state_diff, 0, options, &state))
            .map_err(|e| {
                let hint = match (&e, &a.nonces) {
                    (PipelineError::Encode(_), None) => " (give nonces with --nonces)",
                    (PipelineError::Stateful(_), _) if a.aliases.is_none() => {
                        " (give existing aliases with --aliases)"
                    }
                    _ => "",
                };
                bad(&a.state_update, format!("{e}{hint}"))
            })?;

    match a.format {
        EncodeFormat::Felts => write_felts(out, &felts)?,
        EncodeFormat::Blobs => {
            let blobs = felts_to_blobs(&felts, a.max_blobs).map_err(|e| bad(&a.state_update, e))?;
            for blob in blobs {
                out.write_all(hex::encode(blob).as_bytes())?;
                out.write_all(b"\n")?;
            }
        }
    }
    Ok(())
}

fn compress(a: &FeltsArgs, out: &mut dyn Write) -> Outcome {
    let felts = parse_felt_list(&read_input(&a.felts)?).map_err(|e| bad(&a.felts, e))?;
    let compressed = stateless::compress(&felts).map_err(|e| bad(&a.felts, e))?;
    write_felts(out, &compressed)?;
    Ok(())
}

fn decompress(a: &FeltsArgs, out: &mut dyn Write) -> Outcome {
    let felts = parse_felt_list(&read_input(&a.felts)?).map_err(|e| bad(&a.felts, e))?;
    let values = stateless::decompress(&felts).map_err(|e| bad(&a.felts, e))?;
    write_felts(out, &values)?;
    Ok(())
}

fn decode(a: &DecodeArgs, out: &mut dyn Write, err: &mut dyn Write) -> Outcome {
    let file =
        std::fs::File::open(&a.blob).map_err(|e| bad(&a.blob, format!("cannot read: {e}")))?;
    let mut warn = |w: NotFelts| {
        let _ = writeln!(
            err,
            "warning: {}: line {}: {} coefficient(s) are not below the Starknet prime (first at \
             index {}); this is not a Starknet blob",
            a.blob.display(),
            w.line,
            w.count,
            w.first,
        );
    };
    match decode_blobs(file, out, &mut warn) {
        Ok(_) => Ok(()),
        Err(DecodeError::Write(e)) => Err(Failure::Output(e)),
        // A bad line ends the command; the blobs before it have been printed.
        Err(e) => Err(bad(&a.blob, e)),
    }
}

fn parse_point(s: &str) -> Result<[u8; 32], Failure> {
    let t = s.trim();
    let h = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    if h.is_empty() || h.len() > 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Failure::Input(format!(
            "--x0: `{t}` is not a hex number of at most 64 digits"
        )));
    }
    let padded = format!("{h:0>64}");
    let bytes = hex::decode(padded).map_err(|e| Failure::Input(format!("--x0: {e}")))?;
    let mut w = [0u8; 32];
    w.copy_from_slice(&bytes);
    if Fr::from_be_bytes(&w).is_none() {
        return Err(Failure::Input(format!(
            "--x0: {t} is not below the BLS12-381 scalar field modulus"
        )));
    }
    Ok(w)
}

fn kzg(a: &KzgArgs, out: &mut dyn Write) -> Outcome {
    let x0 = a.x0.as_deref().map(parse_point).transpose()?;
    let blob = parse_blob_hex(&read_input(&a.blob)?).map_err(|e| bad(&a.blob, e))?;
    let kzg = Kzg::ethereum();
    let commitment = kzg.commitment(&blob).map_err(|e| bad(&a.blob, e))?;
    let proof = kzg.blob_proof(&blob, &commitment).map_err(|e| bad(&a.blob, e))?;
    let mut json = serde_json::Map::new();
    json.insert("commitment".into(), format!("0x{}", hex::encode(commitment)).into());
    json.insert("proof".into(), format!("0x{}", hex::encode(proof)).into());
    if let Some(x0) = x0 {
        let pp = kzg.point_proof(&blob, &x0).map_err(|e| bad(&a.blob, e))?;
        json.insert("x0".into(), format!("0x{}", hex::encode(x0)).into());
        json.insert("y".into(), format!("0x{}", hex::encode(pp.y)).into());
        json.insert("point_proof".into(), format!("0x{}", hex::encode(pp.proof)).into());
    }
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(json))
        .map_err(|e| Failure::Output(io::Error::other(e)))?;
    writeln!(out, "{text}")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cmd: BlobCommand) -> (u8, String, String) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = cmd.run(&mut out, &mut err);
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    fn temp(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    #[test]
    fn compress_round_trip_and_errors() {
        let input = temp("0x1\n0x2\n0x1\n12345678901234567890\n");
        let (code, out, err) = run(BlobCommand::Compress(FeltsArgs { felts: input.path().into() }));
        assert_eq!(code, 0, "{err}");
        let compressed = temp(&out);
        let (code, out, _) =
            run(BlobCommand::Decompress(FeltsArgs { felts: compressed.path().into() }));
        assert_eq!(code, 0);
        assert_eq!(out, "0x1\n0x2\n0x1\n0xab54a98ceb1f0ad2\n");

        let big = temp("0x800000000000011000000000000000000000000000000000000000000000001\n");
        let (code, out, err) = run(BlobCommand::Compress(FeltsArgs { felts: big.path().into() }));
        assert_eq!(code, 2);
        assert!(out.is_empty());
        assert!(
            err.contains(&big.path().display().to_string())
                && err.contains("line 1")
                && err.contains("prime"),
            "{err}"
        );

        let (code, _, err) =
            run(BlobCommand::Decompress(FeltsArgs { felts: "/nonexistent/felts.txt".into() }));
        assert_eq!(code, 2);
        assert!(err.contains("/nonexistent/felts.txt: cannot read"), "{err}");
    }

    #[test]
    fn decode_and_kzg_reject_bad_blobs() {
        let short = temp("0xabcd");
        let (code, _, err) = run(BlobCommand::Decode(DecodeArgs { blob: short.path().into() }));
        assert_eq!(code, 2);
        assert!(err.contains("262144 hex characters"), "{err}");
        let nonhex = temp(&"zz".repeat(131072));
        let (code, _, err) =
            run(BlobCommand::Kzg(KzgArgs { blob: nonhex.path().into(), x0: None }));
        assert_eq!(code, 2);
        assert!(err.contains("not a hex digit"), "{err}");
        let noncanonical = temp(&"ff".repeat(131072));
        let (code, _, err) =
            run(BlobCommand::Decode(DecodeArgs { blob: noncanonical.path().into() }));
        assert_eq!(code, 2);
        assert!(err.contains("element 0 is not below the BLS12-381"), "{err}");
        let zero = temp(&"00".repeat(131072));
        let (code, _, err) = run(BlobCommand::Kzg(KzgArgs {
            blob: zero.path().into(),
            x0: Some("0xnothex".into()),
        }));
        assert_eq!(code, 2);
        assert!(err.contains("--x0"), "{err}");
        let (code, out, _) = run(BlobCommand::Decode(DecodeArgs { blob: zero.path().into() }));
        assert_eq!(code, 0);
        assert_eq!(out, format!("{}\n", ["0x0"; 4096].join(" ")));
    }

    fn decode(content: &str) -> (u8, String, String, tempfile::NamedTempFile) {
        let file = temp(content);
        let (code, out, err) = run(BlobCommand::Decode(DecodeArgs { blob: file.path().into() }));
        (code, out, err, file)
    }

    /// A blob whose every word is `word` (64 hex digits): the constant polynomial `word`.
    fn constant_blob(word: &str) -> String {
        assert_eq!(word.len(), 64);
        word.repeat(4096)
    }

    #[test]
    fn decode_prints_one_line_per_blob() {
        let one = format!("{:064x}", 1);
        let seven = format!("{:064x}", 7);
        let (code, out, err, _f) = decode(&format!(
            "\n{}\n  \r\n0x{}\r\n\n{} {}\n",
            constant_blob(&one),
            constant_blob(&seven),
            &constant_blob(&one)[..64],
            &constant_blob(&one)[64..],
        ));
        assert_eq!(code, 0, "{err}");
        assert!(err.is_empty(), "{err}");
        let zeros = [" 0x0"; 4095].concat();
        assert_eq!(out, format!("0x1{zeros}\n0x7{zeros}\n0x1{zeros}\n"));
    }

    #[test]
    fn decode_names_the_bad_line_and_stops_there() {
        let good = constant_blob(&format!("{:064x}", 1));
        let good_out = format!("0x1{}\n", [" 0x0"; 4095].concat());
        let cases = [
            (format!("{good}\n\n0xabcd\n{good}\n"), "line 3: a blob is 262144 hex characters"),
            (format!("{good}\n{good}00\n"), "line 2: a blob is 262144 hex characters"),
            (
                format!("{good}\n{}zz\n", &good[2..]),
                "line 2: character 262142: `z` is not a hex digit",
            ),
            (
                format!("\n\n{}", "ff".repeat(131072)),
                "line 3: blob element 0 is not below the BLS12-381",
            ),
            // A blob cut over two lines is two bad lines.
            (format!("{}\n{}\n", &good[..131072], &good[131072..]), "line 1: a blob is 262144"),
            (" \n\n\t\n".to_string(), "no blob: the file is empty or has only blank lines"),
            (String::new(), "no blob"),
        ];
        for (content, needle) in cases {
            let (code, out, err, file) = decode(&content);
            assert_eq!(code, 2, "{needle}: {err}");
            // Every good line before the bad one has been printed, nothing after it.
            let good_before = content
                .lines()
                .take_while(|l| l.trim().is_empty() || l.trim() == good)
                .filter(|l| !l.trim().is_empty())
                .count();
            assert_eq!(out, good_out.repeat(good_before), "{needle}");
            assert!(err.contains(&format!("{}: ", file.path().display())), "{err}");
            assert!(err.contains(needle), "`{err}` lacks `{needle}`");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
        // Lines after a bad one are not read.
        let (code, out, err, _f) = decode(&format!("{good}\nzz\n{good}\n"));
        assert_eq!((code, out.lines().count()), (2, 1), "{err}");
    }

    #[test]
    fn decode_warns_about_coefficients_that_are_not_felts() {
        let felt = constant_blob(&format!("{:064x}", 1));
        // 2^252 is below the BLS12-381 modulus but above the Starknet prime.
        let big = constant_blob(&format!("1{}", "0".repeat(63)));
        let (code, out, err, file) = decode(&format!("{felt}\n{big}\n"));
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.lines().count(), 2);
        assert!(out.lines().nth(1).unwrap().starts_with(&format!("0x1{} 0x0 ", "0".repeat(63))));
        assert_eq!(
            err,
            format!(
                "warning: {}: line 2: 1 coefficient(s) are not below the Starknet prime (first at \
                 index 0); this is not a Starknet blob\n",
                file.path().display()
            )
        );
    }

    #[test]
    fn encode_rejects_bad_json_and_versions() {
        let bad_json = temp("{\"state_diff\": ");
        let args = |p: &Path, v: &str| EncodeArgs {
            state_update: p.into(),
            nonces: None,
            aliases: None,
            starknet_version: v.into(),
            compress: false,
            format: EncodeFormat::Felts,
            max_blobs: 6,
        };
        let (code, _, err) = run(BlobCommand::Encode(args(bad_json.path(), "0.13.2")));
        assert_eq!(code, 2);
        assert!(
            err.contains(&bad_json.path().display().to_string()) && err.contains("JSON"),
            "{err}"
        );
        let (code, _, err) = run(BlobCommand::Encode(args(bad_json.path(), "0.12.0")));
        assert_eq!(code, 2);
        assert!(err.contains("--starknet-version") && err.contains("not supported"), "{err}");
    }
}
