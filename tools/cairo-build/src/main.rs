//! `cairo-build`: compiles every `#[starknet::contract]` of a Cairo project (a directory with a
//! `cairo_project.toml`) to a Sierra contract class, against a corelib given on the command line.
//!
//! ```text
//! cairo-build --corelib <corelib/src> --project <dir> --out <dir>
//! ```
//!
//! Writes `<out>/<ContractName>.contract_class.json` per contract (pretty JSON, trailing newline,
//! no absolute paths, so a recompile of unchanged sources gives identical files) after checking
//! the program against the audited libfunc list. The CASM step is a separate tool (`casm/`): it
//! must use the settlement network's compiler version, which cannot share a lock file with this
//! one.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use cairo_lang_compiler::{
    db::RootDatabase, diagnostics::DiagnosticsReporter, project::setup_project, CompilerConfig,
};
use cairo_lang_filesystem::db::init_dev_corelib;
use cairo_lang_starknet::{
    allowed_libfuncs::{validate_compatible_sierra_version, ListSelector},
    contract::find_contracts,
    contract_class::{compile_prepared_db, ContractClass},
    starknet_plugin_suite,
};

/// Errors are plain messages: this is a build step, not a library.
type Result<T> = std::result::Result<T, String>;

struct Args {
    corelib: PathBuf,
    project: PathBuf,
    out: PathBuf,
}

fn parse_args() -> Result<Args> {
    let mut corelib = None;
    let mut project = None;
    let mut out = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let slot = match flag.as_str() {
            "--corelib" => &mut corelib,
            "--project" => &mut project,
            "--out" => &mut out,
            other => return Err(format!("unknown argument {other}")),
        };
        *slot = Some(PathBuf::from(it.next().ok_or_else(|| format!("{flag} needs a value"))?));
    }
    let usage = "usage: cairo-build --corelib <corelib/src> --project <dir> --out <dir>";
    Ok(Args {
        corelib: corelib.ok_or(usage)?,
        project: project.ok_or(usage)?,
        out: out.ok_or(usage)?,
    })
}

fn run(args: &Args) -> Result<Vec<(String, PathBuf)>> {
    if !args.corelib.join("lib.cairo").is_file() {
        return Err(format!(
            "{}: no lib.cairo (expected a corelib src dir)",
            args.corelib.display()
        ));
    }
    let mut db = RootDatabase::builder()
        .with_plugin_suite(starknet_plugin_suite())
        .build()
        .map_err(|e| format!("compiler database: {e}"))?;
    init_dev_corelib(&mut db, args.corelib.clone());
    let crates = setup_project(&mut db, &args.project)
        .map_err(|e| format!("{}: {e}", args.project.display()))?;
    let contracts = find_contracts(&db, &crates);
    if contracts.is_empty() {
        return Err(format!("{}: no #[starknet::contract] found", args.project.display()));
    }
    let config = CompilerConfig {
        diagnostics_reporter: DiagnosticsReporter::stderr().with_extra_crates(&crates),
        ..CompilerConfig::default()
    };
    let classes = compile_prepared_db(&db, &contracts.iter().collect::<Vec<_>>(), config)
        .map_err(|e| format!("compilation failed: {e}"))?;
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let mut written = Vec::new();
    for (contract, class) in contracts.iter().zip(classes) {
        let name = contract.submodule_id.name(&db).to_string();
        validate_compatible_sierra_version(&class, ListSelector::default())
            .map_err(|e| format!("{name}: {e}"))?;
        let path = args.out.join(format!("{name}.contract_class.json"));
        write_json(&path, &class)?;
        written.push((name, path));
    }
    Ok(written)
}

fn write_json(path: &Path, value: &ContractClass) -> Result<()> {
    let mut text =
        serde_json::to_string_pretty(value).map_err(|e| format!("{}: {e}", path.display()))?;
    text.push('\n');
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|args| run(&args));
    match result {
        Ok(written) => {
            for (name, path) in written {
                println!("sierra {name}: {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cairo-build: {e}");
            ExitCode::FAILURE
        }
    }
}
