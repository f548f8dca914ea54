//! `stand-in-aggregator`: an external aggregator command (`--aggregator-command`) that
//! implements the contract of `orchestrator_snos_runner::external_aggregator` with the SNOS
//! stand-in in aggregator mode. It reads the children from `$AGGREGATOR_CHILDREN`, writes the
//! aggregator PIE to `$AGGREGATOR_OUTPUT` and the DA segment to
//! `$AGGREGATOR_OUTPUT_DIR/da_segment.json`. It proves nothing: a development and test tool,
//! and a reference for a real aggregator wrapper.
//!
//! Exit status: 0 on success, 1 on a deterministic error (message on stderr).

use std::{path::PathBuf, process::ExitCode};

use orchestrator_snos_runner::{
    aggregator::aggregate_pies,
    external_aggregator::{AGGREGATOR_PIE_FILE, DA_SEGMENT_FILE},
    stand_in::layout_name,
};

fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set (run me as --aggregator-command)"))
}

fn run() -> Result<(), String> {
    let children_path = PathBuf::from(var("AGGREGATOR_CHILDREN")?);
    let input_dir = PathBuf::from(var("AGGREGATOR_INPUT_DIR")?);
    let output_dir = PathBuf::from(var("AGGREGATOR_OUTPUT_DIR")?);
    let layout = layout_name(&var("AGGREGATOR_LAYOUT")?).map_err(|e| e.to_string())?;
    let max_num_blobs: usize = var("AGGREGATOR_MAX_NUM_BLOBS")?
        .parse()
        .map_err(|e| format!("AGGREGATOR_MAX_NUM_BLOBS: {e}"))?;
    let text = std::fs::read_to_string(&children_path)
        .map_err(|e| format!("{}: {e}", children_path.display()))?;
    let children: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("children.json: {e}"))?;
    let children = children.as_array().ok_or("children.json is not an array")?;
    let mut pies = Vec::with_capacity(children.len());
    for child in children {
        let index = child["index"].as_u64().ok_or("a child has no index")?;
        let pie = child["cairo_pie"].as_str().ok_or("a child has no cairo_pie")?;
        let zip =
            std::fs::read(input_dir.join(pie)).map_err(|e| format!("child {index}: {pie}: {e}"))?;
        pies.push((index, zip));
    }
    let refs: Vec<(u64, &[u8])> = pies.iter().map(|(i, z)| (*i, z.as_slice())).collect();
    let run = aggregate_pies(&refs, max_num_blobs, layout, false).map_err(|e| e.to_string())?;
    let da: Vec<String> = run.da_segment.iter().map(|f| format!("{f:#x}")).collect();
    std::fs::write(output_dir.join(AGGREGATOR_PIE_FILE), &run.cairo_pie_zip)
        .map_err(|e| format!("{AGGREGATOR_PIE_FILE}: {e}"))?;
    std::fs::write(output_dir.join(DA_SEGMENT_FILE), serde_json::Value::from(da).to_string())
        .map_err(|e| format!("{DA_SEGMENT_FILE}: {e}"))?;
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stand-in-aggregator: {e}");
            ExitCode::FAILURE
        }
    }
}
