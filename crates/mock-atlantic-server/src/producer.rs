//! What a closed bucket produces: the seam where the aggregator run plugs in.
//!
//! [`AggregationArtifactsProducer`] turns the children of a bucket into the artifacts the
//! orchestrator downloads (aggregator PIE, DA segment, OS output, proof). The built-in
//! [`TemplateAggregationProducer`] does not run the aggregator: it writes an
//! aggregator-shaped program output into a small template PIE, which is enough for the
//! orchestrator to store the artifacts and recompute the program output. An in-process SNOS
//! or aggregator stand-in implements the same trait.

use std::{fmt, io::Write};

use cairo_vm::{
    types::{builtin_name::BuiltinName, relocatable::MaybeRelocatable},
    vm::runners::cairo_pie::{CairoPie, SegmentInfo},
    Felt252,
};

/// The PIE the template producer patches (a small Fibonacci run).
const PIE_TEMPLATE: &[u8] = include_bytes!("../assets/pie_template.zip");

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

/// Writes an aggregator-shaped output into a template PIE (see the module docs).
///
/// The output is `[n_children, (3, 0x1, index)…, os_output…]` where the OS output has
/// `use_kzg_da = 1` at offset 8, `n_blobs = 0` at offset 11 and empty message sections, so
/// the aggregator-mode filter keeps exactly the OS output.
#[derive(Debug, Clone, Copy, Default)]
pub struct TemplateAggregationProducer;

impl TemplateAggregationProducer {
    /// The OS output part for `n_children` children.
    pub fn os_output(n_children: usize) -> Vec<Felt252> {
        let mut out = vec![Felt252::ZERO; 14];
        out[3] = Felt252::from(n_children as u64); // new block number stands in for the batch size
        out[8] = Felt252::ONE; // use_kzg_da
        out
    }

    /// The full program output for `children`.
    pub fn program_output(children: &[ChildQuery]) -> Vec<Felt252> {
        let mut out = vec![Felt252::from(children.len() as u64)];
        for (i, child) in children.iter().enumerate() {
            let index = child.bucket_job_index.unwrap_or(i as u64 + 1);
            out.extend([Felt252::from(3u64), Felt252::ONE, Felt252::from(index)]);
        }
        out.extend(Self::os_output(children.len()));
        out
    }
}

fn hex_json(felts: &[Felt252]) -> Vec<u8> {
    let hex: Vec<String> = felts.iter().map(|f| format!("{f:#x}")).collect();
    serde_json::to_vec(&hex).unwrap_or_default()
}

/// Writes `pie` as a zip in memory (same entries as cairo-vm's writer).
pub fn pie_to_zip(pie: &CairoPie) -> Result<Vec<u8>, ProduceError> {
    let err = |e: &dyn fmt::Display| ProduceError(format!("cannot write the PIE: {e}"));
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let entries: [(&str, Vec<u8>); 5] = [
        (
            "version.json",
            serde_json::to_vec(&pie.version).map_err(|e| err(&e))?,
        ),
        (
            "metadata.json",
            serde_json::to_vec(&pie.metadata).map_err(|e| err(&e))?,
        ),
        ("memory.bin", pie.memory.to_bytes(None)),
        (
            "additional_data.json",
            serde_json::to_vec(&pie.additional_data).map_err(|e| err(&e))?,
        ),
        (
            "execution_resources.json",
            serde_json::to_vec(&pie.execution_resources).map_err(|e| err(&e))?,
        ),
    ];
    for (name, bytes) in entries {
        zip.start_file(name, options).map_err(|e| err(&e))?;
        zip.write_all(&bytes).map_err(|e| err(&e))?;
    }
    Ok(zip.finish().map_err(|e| err(&e))?.into_inner())
}

impl AggregationArtifactsProducer for TemplateAggregationProducer {
    fn produce(&self, input: &AggregationInput) -> Result<ProducedArtifacts, ProduceError> {
        let mut pie = orchestrator_gps_fact_checker::fact::pie::read_pie_bytes(PIE_TEMPLATE)
            .map_err(|e| ProduceError(format!("template PIE: {e}")))?;
        let output = Self::program_output(&input.children);
        let segment = pie
            .metadata
            .builtin_segments
            .get(&BuiltinName::output)
            .map(|s| s.index)
            .ok_or_else(|| ProduceError("the template PIE has no output segment".into()))?;
        pie.metadata.builtin_segments.insert(
            BuiltinName::output,
            SegmentInfo {
                index: segment,
                size: output.len(),
            },
        );
        pie.memory
            .0
            .retain(|((seg, _), _)| *seg != segment as usize);
        pie.memory.0.extend(
            output
                .iter()
                .enumerate()
                .map(|(i, f)| ((segment as usize, i), MaybeRelocatable::Int(*f))),
        );
        let os_output = Self::os_output(input.children.len());
        Ok(ProducedArtifacts {
            pie_zip: pie_to_zip(&pie)?,
            // An empty state diff: no contracts, no declared classes.
            da_blob: hex_json(&[Felt252::ZERO, Felt252::ZERO]),
            snos_output: hex_json(&os_output),
        })
    }
}

#[cfg(test)]
mod tests {
    use orchestrator_gps_fact_checker::fact::{aggregator::filter_aggregator_output, pie};

    use super::*;

    #[test]
    fn the_template_pie_carries_an_aggregator_output_the_filter_accepts() {
        let children: Vec<ChildQuery> = (1..=3)
            .map(|i| ChildQuery {
                query_id: format!("q{i}"),
                bucket_job_index: Some(i),
                pie_zip: vec![],
            })
            .collect();
        let input = AggregationInput {
            bucket_id: "b".into(),
            aggregator_params: serde_json::Value::Null,
            children,
        };
        let produced = TemplateAggregationProducer.produce(&input).unwrap();
        let parsed = pie::read_pie_bytes(&produced.pie_zip).unwrap();
        let output = pie::program_output(&parsed).unwrap();
        assert_eq!(
            output,
            TemplateAggregationProducer::program_output(&input.children)
        );
        assert_eq!(
            filter_aggregator_output(&output).unwrap(),
            TemplateAggregationProducer::os_output(3).as_slice()
        );
        let snos: Vec<String> = serde_json::from_slice(&produced.snos_output).unwrap();
        assert_eq!(snos.len(), 14);
    }
}
