//! Developer commands used by operators to debug DA and facts (`orchestrator blob …`,
//! `orchestrator fact …`). Each returns a process exit code: 0 on success, 2 on bad input.
//!
//! [`dispatch`] runs them without building the whole command line: `run` and `setup` carry
//! more than a hundred flags, and clap builds every one of them before it looks at the first
//! argument. The developer commands are short-lived processes (a `blob decode` takes about a
//! millisecond), so `main` hands `blob …` and `fact …` to [`dispatch`], which parses with a
//! command tree holding only these two. Their help, errors and exit codes are clap's, exactly
//! as when parsed through [`crate::cli::Cli`] (`cli::tests` checks that the trees agree).

use std::{ffi::OsString, process::ExitCode};

use clap::Parser;

pub mod blob;
mod decode;
pub mod fact;

/// The command line restricted to the developer commands. Name, version, about text and the
/// two subcommands are those of [`crate::cli::Cli`].
#[derive(Debug, clap::Parser)]
#[command(name = "orchestrator", version, about = "Carries Madara blocks to settlement")]
pub struct DevCli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: DevCommands,
}

/// The developer subcommands (the same variants, docs and attributes as in
/// [`crate::cli::Commands`]).
#[derive(Debug, clap::Subcommand)]
pub enum DevCommands {
    /// Developer tools for blobs: encode, compress, decompress, decode, KZG.
    #[command(subcommand)]
    Blob(blob::BlobCommand),
    /// Prints the fact of a Cairo PIE.
    Fact(fact::FactArgs),
}

/// Whether the first argument names a developer command that [`dispatch`] handles.
pub fn is_dev_command(first: Option<&OsString>) -> bool {
    matches!(first.and_then(|a| a.to_str()), Some("blob" | "fact"))
}

/// Parses `args` (the whole argv, program name first) as a developer command and runs it.
///
/// `blob decode --blob FILE` (the one-flag form, or `--blob=FILE`) goes straight to the
/// decoder without clap; everything else — help, other spellings, errors — goes through clap.
pub fn dispatch(args: Vec<OsString>) -> ExitCode {
    if let Some(path) = blob::plain_decode_args(&args) {
        return blob::BlobCommand::Decode(blob::DecodeArgs { blob: path }).execute();
    }
    match DevCli::parse_from(args).command {
        DevCommands::Blob(cmd) => cmd.execute(),
        DevCommands::Fact(a) => a.execute(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;

    const ARGVS: &[&[&str]] = &[
        &["blob"],
        &["blob", "--help"],
        &["blob", "-h"],
        &["blob", "help"],
        &["blob", "help", "decode"],
        &["blob", "decode"],
        &["blob", "decode", "--help"],
        &["blob", "decode", "--blob"],
        &["blob", "decode", "--blob", "f.txt"],
        &["blob", "decode", "--blob=f.txt"],
        &["blob", "decode", "--blob", "f.txt", "--blob", "g.txt"],
        &["blob", "decode", "--blob", "-x"],
        &["blob", "decode", "--blob=-x"],
        &["blob", "decode", "--blob="],
        &["blob", "decode", "--blob", ""],
        &["blob", "decode", "--blob", "f", "extra"],
        &["blob", "decode", "--blo", "f"],
        &["blob", "decod", "--blob", "f"],
        &["blob", "encode", "--help"],
        &["blob", "encode", "--state-update", "s", "--starknet-version", "0.13.2"],
        &[
            "blob",
            "encode",
            "--state-update",
            "s",
            "--starknet-version",
            "0.13.2",
            "--format",
            "felts",
            "--compress",
            "--max-blobs",
            "3",
            "--nonces",
            "n",
            "--aliases",
            "a",
        ],
        &[
            "blob",
            "encode",
            "--state-update",
            "s",
            "--starknet-version",
            "0.13.2",
            "--format",
            "bad",
        ],
        &["blob", "compress", "--felts", "f"],
        &["blob", "decompress", "--felts", "f"],
        &["blob", "kzg", "--blob", "b", "--x0", "0x1"],
        &["blob", "kzg", "--help"],
        &["blob", "--version"],
        &["fact"],
        &["fact", "--help"],
        &["fact", "--pie", "p.zip"],
        &["fact", "--pie", "p.zip", "--l2", "--aggregator"],
        &["fact", "--pie", "p.zip", "--program-hash", "0x12"],
        &["fact", "--pie", "p.zip", "--program-hash", "zz"],
    ];

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("orchestrator").chain(args.iter().copied()).map(OsString::from).collect()
    }

    /// The restricted tree parses, helps and fails exactly like the whole command line.
    #[test]
    fn dev_cli_agrees_with_the_whole_cli() {
        for args in ARGVS {
            let full = Cli::try_parse_from(argv(args));
            let dev = DevCli::try_parse_from(argv(args));
            match (full, dev) {
                (Ok(full), Ok(dev)) => {
                    assert_eq!(
                        format!("{:?}", full.command),
                        format!("{:?}", dev.command),
                        "{args:?}"
                    );
                }
                (Err(full), Err(dev)) => {
                    assert_eq!(full.kind(), dev.kind(), "{args:?}");
                    assert_eq!(full.exit_code(), dev.exit_code(), "{args:?}");
                    assert_eq!(full.render().to_string(), dev.render().to_string(), "{args:?}");
                }
                (full, dev) => panic!("{args:?}: {full:?} vs {dev:?}"),
            }
        }
    }

    /// The clap-free `blob decode` path only takes argvs that clap reads the same way.
    #[test]
    fn plain_decode_args_agree_with_clap() {
        let mut taken = 0;
        for args in ARGVS {
            let argv = argv(args);
            if let Some(path) = blob::plain_decode_args(&argv) {
                taken += 1;
                match DevCli::try_parse_from(argv).map(|c| c.command) {
                    Ok(DevCommands::Blob(blob::BlobCommand::Decode(a))) => {
                        assert_eq!(a.blob, path, "{args:?}")
                    }
                    other => panic!("{args:?}: clap gives {other:?}"),
                }
            }
        }
        assert_eq!(taken, 2);
        assert!(is_dev_command(Some(&"blob".into())));
        assert!(is_dev_command(Some(&"fact".into())));
        assert!(!is_dev_command(Some(&"run".into())));
        assert!(!is_dev_command(Some(&"--help".into())));
        assert!(!is_dev_command(None));
    }
}
