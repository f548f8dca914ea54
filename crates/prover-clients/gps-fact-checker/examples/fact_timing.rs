//! Times each step of the fact computation for one PIE.
//!
//! `cargo run --release -p orchestrator-gps-fact-checker --example fact_timing -- FILE.zip [RUNS]`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use orchestrator_gps_fact_checker::fact::{self, merkle, pie, program_hash, topology};

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let Some(path) = argv.next().map(PathBuf::from) else {
        eprintln!("usage: fact_timing FILE.zip [RUNS]");
        return ExitCode::from(2);
    };
    let runs: u32 = argv.next().and_then(|r| r.parse().ok()).unwrap_or(5).max(1);

    let mut totals = [Duration::ZERO; 5];
    let mut last = None;
    for _ in 0..runs {
        let t0 = Instant::now();
        let result = (|| {
            let pie = pie::read_pie_file(&path)?;
            let t1 = Instant::now();
            let output = pie::program_output(&pie)?;
            let t2 = Instant::now();
            let hash = program_hash::program_hash(&pie)?;
            let t3 = Instant::now();
            let topo = topology::fact_topology(&pie, output.len())?;
            let root = merkle::merkle_root(&output, &topo)?;
            let f = fact::fact_from_parts(&hash, &root.hash);
            let t4 = Instant::now();
            Ok::<_, fact::FactError>(([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0], f))
        })();
        match result {
            Ok((steps, f)) => {
                for (total, step) in totals.iter_mut().zip(steps) {
                    *total += step;
                }
                last = Some(f);
            }
            Err(e) => {
                eprintln!("fact_timing: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    let names = [
        "read zip + decode",
        "output segment",
        "program hash",
        "topology + merkle + fact",
        "total",
    ];
    for (name, total) in names.iter().zip(totals) {
        println!("{name:>26}: {:?} (mean of {runs})", total / runs);
    }
    if let Some(f) = last {
        println!("fact: {f}");
    }
    ExitCode::SUCCESS
}
