//! What a closed bucket produces: the seam where the aggregator run plugs in.
//!
//! [`AggregationArtifactsProducer`] turns the children of a bucket into the artifacts the
//! orchestrator downloads (aggregator PIE, DA segment, OS output). The default,
//! [`StandInAggregationProducer`], runs the in-process SNOS stand-in in aggregator mode
//! (`orchestrator_snos_runner::aggregator`): a real cairo-vm PIE whose output echoes the
//! children and ends with the aggregated OS output, and the squashed DA segment.

use std::fmt;

use cairo_vm::types::layout_name::LayoutName;
use orchestrator_gps_fact_checker::fact::{pie, program_hash::program_hash};
use orchestrator_snos_runner::{
    aggregator::{run_aggregator, AggregatorChild},
    Felt,
};

/// One child query of a bucket.
#[derive(Clone)]
pub struct ChildQuery {
    /// Query id.
    pub query_id: String,
    /// 1-based position in the bucket.
    pub bucket_job_index: Option<u64>,
    /// The child's PIE as submitted.
    pub pie_zip: Vec<u8>,
}

impl fmt::Debug for ChildQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildQuery")
            .field("query_id", &self.query_id)
            .field("bucket_job_index", &self.bucket_job_index)
            .field("pie_zip_len", &self.pie_zip.len())
            .finish()
    }
}

/// What an aggregation is run on.
#[derive(Debug, Clone)]
pub struct AggregationInput {
    /// The bucket.
    pub bucket_id: String,
    /// The bucket's `aggregatorParams` as sent on creation.
    pub aggregator_params: serde_json::Value,
    /// Its children, by bucket index.
    pub children: Vec<ChildQuery>,
}

/// What an aggregation produced (file contents as served).
#[derive(Debug, Clone, Default)]
pub struct ProducedArtifacts {
    /// `pie.cairo0.zip`.
    pub pie_zip: Vec<u8>,
    /// `da_blob.json`: JSON array of hex felts.
    pub da_blob: Vec<u8>,
    /// `snos_output.json`: JSON array of hex felts.
    pub snos_output: Vec<u8>,
}

/// Why an aggregation could not be produced (the aggregator query then fails with it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProduceError(pub String);

/// Produces the artifacts of a closed bucket.
pub trait AggregationArtifactsProducer: Send + Sync + fmt::Debug {
    /// Runs (or fakes) the aggregation of `input`.
    ///
    /// # Errors
    /// Any failure; the aggregator query fails with its message.
    fn produce(&self, input: &AggregationInput) -> Result<ProducedArtifacts, ProduceError>;
}

/// Runs the SNOS stand-in in aggregator mode over the bucket's children (the default).
///
/// Each child's PIE is read with cairo-vm; its output segment is the child OS output and its
/// program hash goes into the child's segment. A child whose PIE does not parse, or whose
/// output is not OS-shaped (a test fixture submitted as "any zip"), stands in as an empty L2
/// block `index` (no messages, an empty diff; program hash 0), with a warning: the mock
/// accepts any PIE, as Atlantic's mock mode does.
#[derive(Debug, Clone)]
pub struct StandInAggregationProducer {
    /// Layout of the aggregator-mode run (default `all_cairo`).
    pub layout: LayoutName,
    /// At most this many blobs of DA (default 6, as `--max-num-blobs`).
    pub max_num_blobs: usize,
}

impl Default for StandInAggregationProducer {
    fn default() -> Self {
        Self { layout: LayoutName::all_cairo, max_num_blobs: 6 }
    }
}

impl StandInAggregationProducer {
    /// The child an unreadable PIE stands in as: an empty L2 block `index`.
    pub fn placeholder_child(index: u64) -> AggregatorChild {
        let mut os_output = vec![Felt::ZERO; 14];
        os_output[2] = Felt::from(index) - Felt::ONE; // prev_block_number
        os_output[3] = Felt::from(index); // new_block_number
        os_output[9] = Felt::ONE; // full_output (the rest: no messages, no contract, no class)
        AggregatorChild { program_hash: Felt::ZERO, os_output }
    }

    fn child(child: &ChildQuery) -> Result<AggregatorChild, String> {
        let parsed = pie::read_pie_bytes(&child.pie_zip).map_err(|e| e.to_string())?;
        let os_output = pie::program_output(&parsed).map_err(|e| e.to_string())?;
        let program_hash = program_hash(&parsed).map_err(|e| e.to_string())?;
        let c = AggregatorChild { program_hash, os_output };
        // Only OS-shaped outputs: the same checks the aggregation applies.
        orchestrator_snos_runner::aggregator::build_aggregator_output(
            std::slice::from_ref(&c),
            usize::MAX,
        )
        .map_err(|e| e.to_string())?;
        Ok(c)
    }
}

fn hex_json(felts: &[Felt]) -> Result<Vec<u8>, ProduceError> {
    let hex: Vec<String> = felts.iter().map(|f| format!("{f:#x}")).collect();
    serde_json::to_vec(&hex).map_err(|e| ProduceError(format!("cannot encode felts: {e}")))
}

impl AggregationArtifactsProducer for StandInAggregationProducer {
    fn produce(&self, input: &AggregationInput) -> Result<ProducedArtifacts, ProduceError> {
        let mut children = Vec::with_capacity(input.children.len());
        for (i, child) in input.children.iter().enumerate() {
            let index = child.bucket_job_index.unwrap_or(i as u64 + 1);
            children.push(Self::child(child).unwrap_or_else(|reason| {
                tracing::warn!(
                    bucket_id = %input.bucket_id,
                    query_id = %child.query_id,
                    index,
                    %reason,
                    "Child PIE is not an OS-shaped PIE; it stands in as an empty block"
                );
                Self::placeholder_child(index)
            }));
        }
        let run = run_aggregator(&children, self.max_num_blobs, self.layout)
            .map_err(|e| ProduceError(format!("aggregator stand-in: {e}")))?;
        tracing::info!(
            bucket_id = %input.bucket_id,
            n_children = children.len(),
            n_steps = run.n_steps,
            da_len = run.da_segment.len(),
            "Aggregator stand-in run done (proves nothing)"
        );
        Ok(ProducedArtifacts {
            pie_zip: run.cairo_pie_zip,
            da_blob: hex_json(&run.da_segment)?,
            snos_output: hex_json(&run.os_output)?,
        })
    }
}
#[cfg(test)]
mod tests {
    use orchestrator_gps_fact_checker::fact::{
        self as facts, aggregator::filter_aggregator_output,
    };
    use orchestrator_protocol::transform;
    use orchestrator_snos_runner::stand_in::run_program;

    use super::*;

    fn felts(bytes: &[u8]) -> Vec<Felt> {
        let hex: Vec<String> = serde_json::from_slice(bytes).unwrap();
        hex.iter().map(|h| Felt::from_hex(h).unwrap()).collect()
    }

    /// A real stand-in SNOS PIE of an L2 batch ending at `block` that sets key `block` of
    /// contract 5.
    fn snos_pie(block: u64) -> Vec<u8> {
        let mut os: Vec<Felt> =
            [0, 0, block - 1, block, 0, 0, 0, 7, 0, 1, 0, 0].map(Felt::from).to_vec();
        os.extend([1, 5, 0, 0, 0, 0, 1, block, 0, 40 + block, 0].map(Felt::from));
        run_program(os, LayoutName::all_cairo).unwrap().0
    }

    #[test]
    fn bucket_artifacts_come_from_a_stand_in_run() {
        let mut children: Vec<ChildQuery> = (1..=2)
            .map(|i| ChildQuery {
                query_id: format!("q{i}"),
                bucket_job_index: Some(i),
                pie_zip: snos_pie(i),
            })
            .collect();
        // Any zip is accepted as a child (as in the client tests).
        children.push(ChildQuery {
            query_id: "q3".into(),
            bucket_job_index: Some(3),
            pie_zip: b"PK\x03\x04junk".to_vec(),
        });
        let input = AggregationInput {
            bucket_id: "b".into(),
            aggregator_params: serde_json::Value::Null,
            children,
        };
        let produced = StandInAggregationProducer::default().produce(&input).unwrap();

        // cairo-vm reads the PIE back; its fact is reproducible.
        let parsed = pie::read_pie_bytes(&produced.pie_zip).unwrap();
        parsed.run_validity_checks().unwrap();
        let fact = facts::fact(&parsed).unwrap();
        let again = StandInAggregationProducer::default().produce(&input).unwrap();
        assert_eq!(fact, facts::fact(&pie::read_pie_bytes(&again.pie_zip).unwrap()).unwrap());

        // The program output is the PIE's output segment, and the OS output its filtered tail.
        let output = pie::program_output(&parsed).unwrap();
        assert_eq!(output[0], Felt::from(3u8));
        let os_output = felts(&produced.snos_output);
        assert_eq!(filter_aggregator_output(&output).unwrap(), os_output.as_slice());
        assert_eq!(os_output[3], Felt::from(3u8), "new block number of the last child");

        // The DA segment is the squash of the two real children's diffs.
        let da = felts(&produced.da_blob);
        assert_eq!(da, [1, 5, 0, 0, 2, 1, 41, 2, 42, 0].map(Felt::from));
        let blobs = transform::felts_to_blobs(&da, 6).unwrap();
        assert_eq!(os_output[11], Felt::from(blobs.len()));
    }
}
