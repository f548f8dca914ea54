//! Developer commands used by operators to debug DA and facts (`orchestrator blob …`,
//! `orchestrator fact …`). They are parsed by clap with the rest of [`crate::cli::Cli`]; each
//! returns a process exit code: 0 on success, 2 on bad input (clap's usage errors exit with 2
//! too).

pub mod blob;
pub mod fact;

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use clap::{error::ErrorKind, Parser};

    use super::*;
    use crate::cli::{Cli, Commands};

    /// What parsing an argv gives.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Parsed {
        /// A command to run.
        Command,
        /// Help or version on stdout, exit code 0.
        Info,
        /// A usage error on stderr, exit code 2.
        Usage,
    }

    const ARGVS: &[(&[&str], Parsed)] = &[
        (&["blob"], Parsed::Usage),
        (&["blob", "--help"], Parsed::Info),
        (&["blob", "-h"], Parsed::Info),
        (&["blob", "help"], Parsed::Info),
        (&["blob", "help", "decode"], Parsed::Info),
        (&["blob", "decode"], Parsed::Usage),
        (&["blob", "decode", "--help"], Parsed::Info),
        (&["blob", "decode", "--blob"], Parsed::Usage),
        (&["blob", "decode", "--blob", "f.txt"], Parsed::Command),
        (&["blob", "decode", "--blob=f.txt"], Parsed::Command),
        (&["blob", "decode", "--blob", "f.txt", "--blob", "g.txt"], Parsed::Usage),
        (&["blob", "decode", "--blob", "-x"], Parsed::Usage),
        (&["blob", "decode", "--blob=-x"], Parsed::Command),
        (&["blob", "decode", "--blob="], Parsed::Usage),
        (&["blob", "decode", "--blob", ""], Parsed::Usage),
        (&["blob", "decode", "--blob", "f", "extra"], Parsed::Usage),
        (&["blob", "decode", "--blo", "f"], Parsed::Usage),
        (&["blob", "decod", "--blob", "f"], Parsed::Usage),
        (&["blob", "encode", "--help"], Parsed::Info),
        (
            &["blob", "encode", "--state-update", "s", "--starknet-version", "0.13.2"],
            Parsed::Command,
        ),
        (
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
            Parsed::Command,
        ),
        (
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
            Parsed::Usage,
        ),
        (&["blob", "compress", "--felts", "f"], Parsed::Command),
        (&["blob", "decompress", "--felts", "f"], Parsed::Command),
        (&["blob", "kzg", "--blob", "b", "--x0", "0x1"], Parsed::Command),
        (&["blob", "kzg", "--help"], Parsed::Info),
        (&["blob", "--version"], Parsed::Usage),
        (&["--version"], Parsed::Info),
        (&["fact"], Parsed::Usage),
        (&["fact", "--help"], Parsed::Info),
        (&["fact", "--pie", "p.zip"], Parsed::Command),
        (&["fact", "--pie", "p.zip", "--l2", "--aggregator"], Parsed::Usage),
        (&["fact", "--pie", "p.zip", "--program-hash", "0x12"], Parsed::Command),
        (&["fact", "--pie", "p.zip", "--program-hash", "zz"], Parsed::Usage),
    ];

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("orchestrator").chain(args.iter().copied()))
    }

    /// `blob …` and `fact …` go through the whole command line: help and version exit with 0,
    /// every usage error with 2.
    #[test]
    fn dev_commands_parse_with_the_whole_cli() {
        for &(args, expected) in ARGVS {
            let got = match parse(args) {
                Ok(cli) => {
                    assert!(
                        matches!(cli.command, Commands::Blob(_) | Commands::Fact(_)),
                        "{args:?}: {cli:?}"
                    );
                    Parsed::Command
                }
                Err(e)
                    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) =>
                {
                    assert_eq!(e.exit_code(), 0, "{args:?}");
                    Parsed::Info
                }
                Err(e) => {
                    assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
                    assert!(e.use_stderr(), "{args:?}");
                    Parsed::Usage
                }
            };
            assert_eq!(got, expected, "{args:?}");
        }
    }

    #[test]
    fn decode_takes_the_blob_file_in_either_spelling() {
        for args in
            [&["blob", "decode", "--blob", "f.txt"][..], &["blob", "decode", "--blob=f.txt"]]
        {
            match parse(args).map(|c| c.command) {
                Ok(Commands::Blob(blob::BlobCommand::Decode(a))) => {
                    assert_eq!(a.blob, PathBuf::from("f.txt"), "{args:?}")
                }
                other => panic!("{args:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn decode_help_describes_the_file_and_the_output() {
        let help = match parse(&["blob", "decode", "--help"]) {
            Err(e) if e.kind() == ErrorKind::DisplayHelp => e.render().to_string(),
            other => panic!("{other:?}"),
        };
        assert!(help.contains("one blob per line"), "{help}");
        assert!(help.contains("one line per blob"), "{help}");
        assert!(help.contains("--blob <BLOB>"), "{help}");
    }
}
