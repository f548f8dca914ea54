//! The external aggregator seam: the contract seen from a real command (`sh -c`), and the
//! `stand-in-aggregator` binary implementing it.

use std::time::Duration;

use cairo_vm::types::layout_name::LayoutName;
use orchestrator_gps_fact_checker::fact::aggregator::filter_aggregator_output;
use orchestrator_snos_runner::{
    aggregator::{build_aggregator_output, AggregatorChild},
    external_aggregator::{
        AggregationChildInput, AggregationInput, ExternalAggregator, ExternalAggregatorConfig,
    },
    pie_output,
    stand_in::{program_hash, run_program},
    Felt, Retryable,
};

fn f(v: &[u64]) -> Vec<Felt> {
    v.iter().copied().map(Felt::from).collect()
}

/// An L2 OS output over block `block` setting key `block` of contract 5 to `40 + block`.
fn os_output(block: u64) -> Vec<Felt> {
    let mut os = f(&[100 + block - 1, 100 + block, block - 1, block, 7, 8, 0, 7, 0, 1, 0, 0]);
    os.extend(f(&[1, 5, 0, 0, 0, 0, 1, block, 0, 40 + block, 0]));
    os
}

fn input(blocks: &[u64]) -> AggregationInput {
    AggregationInput {
        batch_index: 3,
        children: blocks
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let os = os_output(*b);
                let (zip, _) = run_program(os.clone(), LayoutName::all_cairo).unwrap();
                AggregationChildInput {
                    snos_batch: 10 + i as u64,
                    start_block: *b,
                    end_block: *b,
                    task_id: format!("task-{b}"),
                    cairo_pie_zip: zip,
                    os_output: os,
                }
            })
            .collect(),
        layout: "all_cairo".into(),
        max_num_blobs: 6,
        da_public_keys: vec![Felt::from(0xabcu16)],
    }
}

fn aggregator(command: &str, timeout: Duration) -> ExternalAggregator {
    ExternalAggregator::new(ExternalAggregatorConfig { command: command.into(), timeout })
}

#[tokio::test]
async fn the_stand_in_binary_aggregates_the_children() {
    let bin = env!("CARGO_BIN_EXE_stand-in-aggregator");
    let input = input(&[1, 2]);
    let out = aggregator(bin, Duration::from_secs(120)).run(&input).await.unwrap();
    let output = pie_output(&out.cairo_pie_zip).unwrap();
    let hash = program_hash().unwrap();
    let children: Vec<AggregatorChild> = input
        .children
        .iter()
        .map(|c| AggregatorChild { program_hash: hash, os_output: c.os_output.clone() })
        .collect();
    let (expected, header, da) = build_aggregator_output(&children, 6).unwrap();
    assert_eq!(output, expected);
    assert_eq!(filter_aggregator_output(&output).unwrap(), &expected[header..]);
    assert_eq!(out.da_segment, da);
    // Both children's writes, squashed: contract 5, keys 1 and 2.
    assert_eq!(out.da_segment, f(&[1, 5, 0, 0, 2, 1, 41, 2, 42, 0]));
}

#[tokio::test]
async fn the_command_gets_the_documented_environment_and_children() {
    // The command copies what it was given to stderr, then fails: the error carries it.
    let cmd = r#"echo "$AGGREGATOR_BATCH $AGGREGATOR_N_CHILDREN $AGGREGATOR_LAYOUT $AGGREGATOR_MAX_NUM_BLOBS $AGGREGATOR_DA_PUBLIC_KEYS $(basename "$AGGREGATOR_OUTPUT") $([ "$PWD" = "$AGGREGATOR_OUTPUT_DIR" ] && echo cwd-ok)" >&2
        cat "$AGGREGATOR_CHILDREN" >&2; echo >&2
        test -s "$AGGREGATOR_INPUT_DIR/child_2/cairo_pie.zip" && echo pie-ok >&2
        cat "$AGGREGATOR_INPUT_DIR/child_1/os_output.json" >&2
        exit 3"#;
    let err = aggregator(cmd, Duration::from_secs(30)).run(&input(&[1, 2])).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with("aggregator command failed (exit status 3); stderr: "), "{msg}");
    assert!(msg.contains("3 2 all_cairo 6 0xabc cairo_pie.zip cwd-ok"), "{msg}");
    assert!(msg.contains(r#""cairo_pie":"child_2/cairo_pie.zip""#), "{msg}");
    assert!(msg.contains(r#""task_id":"task-2""#) && msg.contains(r#""snos_batch":11"#), "{msg}");
    assert!(msg.contains("pie-ok"), "{msg}");
    assert!(msg.contains(r#"["0x64","0x65","0x0","0x1""#), "{msg}");
}

#[tokio::test]
async fn exit_75_and_the_timeout_are_retryable() {
    let err = aggregator("echo busy >&2; exit 75", Duration::from_secs(30))
        .run(&input(&[1]))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("exit status 75") && err.to_string().contains("busy"));
    let err =
        aggregator("sleep 30", Duration::from_millis(300)).run(&input(&[1])).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn missing_or_bad_outputs_name_the_file() {
    let err = aggregator("true", Duration::from_secs(30)).run(&input(&[1])).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("did not write cairo_pie.zip"), "{err}");
    // A PIE but no DA segment.
    let cmd = r#"cp "$AGGREGATOR_INPUT_DIR/child_1/cairo_pie.zip" "$AGGREGATOR_OUTPUT""#;
    let err = aggregator(cmd, Duration::from_secs(30)).run(&input(&[1])).await.unwrap_err();
    assert!(err.to_string().contains("did not write da_segment.json"), "{err}");
    let cmd = format!("{cmd}; echo '[\"0xzz\"]' > da_segment.json");
    let err = aggregator(&cmd, Duration::from_secs(30)).run(&input(&[1])).await.unwrap_err();
    assert!(err.to_string().contains("da_segment.json[0]"), "{err}");
    let err = aggregator("echo junk > cairo_pie.zip", Duration::from_secs(30))
        .run(&input(&[1]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cairo_pie.zip"), "{err}");
}
