//! **Aggregator mode** of the stand-in: the same Cairo program and hint as
//! [`StandInRunner`](crate::StandInRunner), given an aggregator-shaped output instead of an OS
//! output. Used by the mock Atlantic server to produce a bucket's artifacts. It aggregates
//! nothing cryptographically (no child proof is verified); it is a stand-in, like the OS one.
//!
//! The program output ([`AggregatorRun::program_output`]) has the layout the orchestrator's
//! aggregator-mode filter (`gps-fact-checker`'s `filter_aggregator_output`) reads:
//!
//! ```text
//! n_children
//! per child: len + 2, program_hash, child OS output (len felts)
//! aggregated OS output:
//!   0 initial_root of the first child    1 final_root of the last
//!   2 prev_block_number of the first      3 new_block_number of the last
//!   4 prev_block_hash of the first        5 new_block_hash of the last
//!   6 the children's program hash (the "OS program hash" of an aggregator output)
//!   7 config hash of the first child
//!   8 use_kzg_da = 1                      9 full_output = 0
//!   10 x0  11 n_blobs  commitments, evaluations (see crate::os_output::kzg_segment)
//!   L2 → L1 messages: size, the children's, concatenated
//!   L1 → L2 messages: size, the children's, concatenated
//! ```
//!
//! The DA segment ([`AggregatorRun::da_segment`]) is the squash of the children's state diffs
//! (children with `use_kzg_da = 0, full_output = 1`, whose output ends with the full-output
//! diff; see `docs/snos.md`): per contract the first previous and the last new nonce and class
//! hash, per key the last new value, classes by hash with their last compiled hash, written
//! without previous values, contracts and keys ascending:
//! `n_contracts, (addr, new_nonce, new_class_hash, n_changes, (key, new)*)*, n_classes,
//! (class_hash, compiled)*`. This is the stand-in's own encoding (not the Starknet OS's packed
//! and compressed one). Children with KZG DA carry their diff in blobs, not in their output:
//! they add nothing to the DA segment. The KZG section is computed over the blobs
//! [`transform::felts_to_blobs`] makes of the DA segment — the blobs the orchestrator's
//! StateTransition job derives from it — so the settlement contract's point checks agree.

use std::collections::BTreeMap;

use cairo_vm::types::layout_name::LayoutName;
use orchestrator_protocol::transform;

use crate::{
    os_output::{kzg_segment, BlobData, HEADER_SIZE, N_BLOBS_OFFSET, USE_KZG_DA_OFFSET},
    stand_in::run_program_at,
    Felt, SnosRunnerError,
};

/// One child of an aggregation: its program hash and its OS output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregatorChild {
    /// Hash of the program the child ran (the stand-in's, or the OS's).
    pub program_hash: Felt,
    /// The child's OS output (its PIE's output segment).
    pub os_output: Vec<Felt>,
}

/// What an aggregator-mode run produced.
#[derive(Clone, PartialEq, Eq)]
pub struct AggregatorRun {
    /// The PIE, zipped; its output segment is [`Self::program_output`].
    pub cairo_pie_zip: Vec<u8>,
    /// The full program output (children echoed, then the aggregated OS output).
    pub program_output: Vec<Felt>,
    /// The aggregated OS output (the tail of the program output).
    pub os_output: Vec<Felt>,
    /// The DA segment: the squashed state diff (see the module docs).
    pub da_segment: Vec<Felt>,
    /// Cairo steps of the run.
    pub n_steps: usize,
}

impl std::fmt::Debug for AggregatorRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregatorRun")
            .field("cairo_pie_zip_bytes", &self.cairo_pie_zip.len())
            .field("program_output_len", &self.program_output.len())
            .field("os_output_len", &self.os_output.len())
            .field("da_segment_len", &self.da_segment.len())
            .field("n_steps", &self.n_steps)
            .finish()
    }
}

fn bad(child: usize, what: impl std::fmt::Display) -> SnosRunnerError {
    SnosRunnerError::Deterministic(format!("child {child}: {what}"))
}

/// A cursor over one child's output.
struct Reader<'a> {
    child: usize,
    out: &'a [Felt],
    pos: usize,
}

impl Reader<'_> {
    fn felt(&mut self, what: &str) -> Result<Felt, SnosRunnerError> {
        let f = self.out.get(self.pos).copied().ok_or_else(|| {
            bad(
                self.child,
                format!("{what} at {} is past the end ({} felts)", self.pos, self.out.len()),
            )
        })?;
        self.pos += 1;
        Ok(f)
    }

    fn len(&mut self, what: &str) -> Result<usize, SnosRunnerError> {
        let f = self.felt(what)?;
        usize::try_from(f)
            .ok()
            .filter(|n| *n <= self.out.len())
            .ok_or_else(|| bad(self.child, format!("{what} {f} is not a length")))
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&[Felt], SnosRunnerError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.out.len()).ok_or_else(|| {
            bad(self.child, format!("{what} of {n} felts at {} runs past the end", self.pos))
        })?;
        let s = &self.out[self.pos..end];
        self.pos = end;
        Ok(s)
    }
}

#[derive(Default)]
struct ContractDiff {
    nonce: Felt,
    class_hash: Felt,
    storage: BTreeMap<Felt, Felt>,
}

#[derive(Default)]
struct Squash {
    contracts: BTreeMap<Felt, ContractDiff>,
    classes: BTreeMap<Felt, Felt>,
}

impl Squash {
    /// Adds a full-output diff (`n_contracts, (addr, prev_nonce, new_nonce, prev_class,
    /// new_class, n_changes, (key, prev, new)*)*, n_classes, (class, prev_compiled,
    /// compiled)*`) read from `r`.
    fn add_full_output_diff(&mut self, r: &mut Reader<'_>) -> Result<(), SnosRunnerError> {
        let n_contracts = r.len("number of contracts")?;
        for _ in 0..n_contracts {
            let addr = r.felt("contract address")?;
            let _prev_nonce = r.felt("previous nonce")?;
            let nonce = r.felt("new nonce")?;
            let _prev_class = r.felt("previous class hash")?;
            let class_hash = r.felt("new class hash")?;
            let c = self.contracts.entry(addr).or_default();
            c.nonce = nonce;
            c.class_hash = class_hash;
            let n_changes = r.len("number of storage changes")?;
            for _ in 0..n_changes {
                let change = r.take(3, "storage change")?;
                c.storage.insert(change[0], change[2]);
            }
        }
        let n_classes = r.len("number of classes")?;
        for _ in 0..n_classes {
            let class = r.take(3, "declared class")?;
            self.classes.insert(class[0], class[2]);
        }
        Ok(())
    }

    fn encode(&self) -> Vec<Felt> {
        let mut out = vec![Felt::from(self.contracts.len())];
        for (addr, c) in &self.contracts {
            out.extend([*addr, c.nonce, c.class_hash, Felt::from(c.storage.len())]);
            for (key, value) in &c.storage {
                out.extend([*key, *value]);
            }
        }
        out.push(Felt::from(self.classes.len()));
        for (class, compiled) in &self.classes {
            out.extend([*class, *compiled]);
        }
        out
    }
}

/// Builds the aggregator-shaped output of `children` (see the module docs) and the DA
/// segment, without running anything. Returns `(program_output, header_offset, da_segment)`.
///
/// # Errors
/// No children, a child output that is not OS-shaped, or more DA than `max_num_blobs` blobs.
pub fn build_aggregator_output(
    children: &[AggregatorChild],
    max_num_blobs: usize,
) -> Result<(Vec<Felt>, usize, Vec<Felt>), SnosRunnerError> {
    let (Some(first), Some(last)) = (children.first(), children.last()) else {
        return Err(SnosRunnerError::Deterministic(
            "an aggregation needs at least one child".into(),
        ));
    };
    let mut squash = Squash::default();
    let mut to_l1 = Vec::new();
    let mut to_l2 = Vec::new();
    for (i, child) in children.iter().enumerate() {
        let out = &child.os_output;
        if out.len() < HEADER_SIZE + 2 {
            return Err(bad(
                i,
                format!(
                    "an OS output has at least {} felts, this one {}",
                    HEADER_SIZE + 2,
                    out.len()
                ),
            ));
        }
        let mut r = Reader { child: i, out, pos: HEADER_SIZE };
        let use_kzg_da = out[USE_KZG_DA_OFFSET];
        let full_output = out[USE_KZG_DA_OFFSET + 1];
        if use_kzg_da == Felt::ONE {
            r.pos = N_BLOBS_OFFSET;
            let n_blobs = r.len("n_blobs")?;
            r.take(4 * n_blobs, "KZG commitments and evaluations")?;
        } else if use_kzg_da != Felt::ZERO {
            return Err(bad(i, format!("use_kzg_da is {use_kzg_da}, not a boolean")));
        }
        let n = r.len("L2 → L1 messages size")?;
        to_l1.extend_from_slice(r.take(n, "L2 → L1 messages")?);
        let n = r.len("L1 → L2 messages size")?;
        to_l2.extend_from_slice(r.take(n, "L1 → L2 messages")?);
        if use_kzg_da == Felt::ZERO {
            if full_output != Felt::ONE {
                return Err(bad(
                    i,
                    "a child without KZG DA must have full_output = 1 (its diff is squashed)",
                ));
            }
            squash.add_full_output_diff(&mut r)?;
        }
        if r.pos != out.len() {
            return Err(bad(
                i,
                format!("{} trailing felts after the OS output", out.len() - r.pos),
            ));
        }
    }
    let da_segment = squash.encode();
    let blobs = transform::felts_to_blobs(&da_segment, max_num_blobs)
        .map_err(|e| SnosRunnerError::Deterministic(format!("DA segment: {e}")))?;
    let kzg = kzg_segment(&BlobData { felts: da_segment.clone(), blobs })?;

    let mut output = vec![Felt::from(children.len())];
    for child in children {
        output.push(Felt::from(child.os_output.len() + 2));
        output.push(child.program_hash);
        output.extend_from_slice(&child.os_output);
    }
    let header_offset = output.len();
    let (f, l) = (&first.os_output, &last.os_output);
    output.extend([
        f[0],
        l[1],
        f[2],
        l[3],
        f[4],
        l[5],
        first.program_hash,
        f[7],
        Felt::ONE,
        Felt::ZERO,
    ]);
    output.extend(kzg);
    output.push(Felt::from(to_l1.len()));
    output.extend(to_l1);
    output.push(Felt::from(to_l2.len()));
    output.extend(to_l2);
    Ok((output, header_offset, da_segment))
}

/// Runs the stand-in program in aggregator mode over `children` (blocking, CPU-bound; loads
/// the KZG trusted setup on first use).
///
/// # Errors
/// As [`build_aggregator_output`], or the run fails.
pub fn run_aggregator(
    children: &[AggregatorChild],
    max_num_blobs: usize,
    layout: LayoutName,
) -> Result<AggregatorRun, SnosRunnerError> {
    let (program_output, header_offset, da_segment) =
        build_aggregator_output(children, max_num_blobs)?;
    let (cairo_pie_zip, n_steps) = run_program_at(program_output.clone(), header_offset, layout)?;
    if crate::pie_output(&cairo_pie_zip)? != program_output {
        return Err(SnosRunnerError::Deterministic(
            "aggregator-mode PIE output differs from the output it was given".into(),
        ));
    }
    let os_output = program_output[header_offset..].to_vec();
    Ok(AggregatorRun { cairo_pie_zip, program_output, os_output, da_segment, n_steps })
}

/// The child an unreadable PIE stands in as: an empty L2 block `index` (no messages, an
/// empty diff, program hash 0).
pub fn placeholder_child(index: u64) -> AggregatorChild {
    let mut os_output = vec![Felt::ZERO; 14];
    os_output[2] = Felt::from(index) - Felt::ONE; // prev_block_number
    os_output[3] = Felt::from(index); // new_block_number
    os_output[9] = Felt::ONE; // full_output (the rest: no messages, no contract, no class)
    AggregatorChild { program_hash: Felt::ZERO, os_output }
}

/// Reads a child from its PIE: the output segment is its OS output, and the PIE's program
/// hash goes into its segment of the aggregator output.
///
/// # Errors
/// A PIE that does not parse, or whose output is not OS-shaped (the checks the aggregation
/// applies).
pub fn child_from_pie(cairo_pie_zip: &[u8]) -> Result<AggregatorChild, SnosRunnerError> {
    use orchestrator_gps_fact_checker::fact::{pie, program_hash::program_hash};
    let parsed = pie::read_pie_bytes(cairo_pie_zip)
        .map_err(|e| SnosRunnerError::Deterministic(format!("not a valid Cairo PIE: {e}")))?;
    let os_output = pie::program_output(&parsed).map_err(|e| {
        SnosRunnerError::Deterministic(format!("cannot read the PIE's output segment: {e}"))
    })?;
    let program_hash = program_hash(&parsed).map_err(|e| {
        SnosRunnerError::Deterministic(format!("cannot compute the PIE's program hash: {e}"))
    })?;
    let child = AggregatorChild { program_hash, os_output };
    build_aggregator_output(std::slice::from_ref(&child), usize::MAX)?;
    Ok(child)
}

/// Aggregates child PIEs with the stand-in ([`run_aggregator`]): the shared piece of the mock
/// Atlantic server's bucket producer and of the orchestrator's local stand-in aggregation
/// (`--prover mock`).
///
/// `children` are `(bucket index, PIE zip)`, in order. A child whose PIE is not an OS-shaped
/// PIE stands in as an empty block `index` ([`placeholder_child`]), with a warning, when
/// `lenient`; otherwise it fails the aggregation, naming the child.
///
/// # Errors
/// A child refused (not `lenient`), or the run fails.
pub fn aggregate_pies(
    children: &[(u64, &[u8])],
    max_num_blobs: usize,
    layout: LayoutName,
    lenient: bool,
) -> Result<AggregatorRun, SnosRunnerError> {
    let mut read = Vec::with_capacity(children.len());
    for (index, zip) in children {
        match child_from_pie(zip) {
            Ok(child) => read.push(child),
            Err(e) if lenient => {
                tracing::warn!(index, reason = %e, "Child PIE is not an OS-shaped PIE; it stands in as an empty block");
                read.push(placeholder_child(*index));
            }
            Err(e) => {
                return Err(SnosRunnerError::Deterministic(format!("child {index}: {e}")));
            }
        }
    }
    run_aggregator(&read, max_num_blobs, layout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Retryable;
    use orchestrator_gps_fact_checker::fact::{
        self as facts, aggregator::filter_aggregator_output, pie,
    };
    use orchestrator_protocol::kzg::Kzg;

    fn f(v: &[u64]) -> Vec<Felt> {
        v.iter().copied().map(Felt::from).collect()
    }

    /// An L2 child OS output over blocks `prev+1..=new` with `diff` and one L2 → L1 message.
    fn child(prev: u64, new: u64, diff: &[u64]) -> AggregatorChild {
        let mut os = f(&[100 + prev, 100 + new, prev, new, 200 + prev, 200 + new, 0, 7, 0, 1]);
        os.extend(f(&[3, 1, 2, 0])); // L2 → L1: one message without payload
        os.extend(f(&[0]));
        os.extend(f(diff));
        AggregatorChild { program_hash: Felt::from(0xabcu64), os_output: os }
    }

    #[test]
    fn squashes_diffs_and_runs() {
        // Contract 5: nonce 0→1, class 9, key 1: 0→10; then nonce 1→2, key 1: 10→11, key 2: 0→3.
        let a = child(0, 2, &[1, 5, 0, 1, 9, 9, 1, 1, 0, 10, 1, 0x77, 0, 0x78]);
        let b = child(2, 4, &[2, 6, 0, 0, 0, 0, 0, 5, 1, 2, 9, 9, 2, 1, 10, 11, 2, 0, 3, 0]);
        let run = run_aggregator(&[a.clone(), b.clone()], 6, LayoutName::all_cairo).unwrap();
        assert_eq!(run.da_segment, f(&[2, 5, 2, 9, 2, 1, 11, 2, 3, 6, 0, 0, 0, 1, 0x77, 0x78]));
        let parsed = pie::read_pie_bytes(&run.cairo_pie_zip).unwrap();
        parsed.run_validity_checks().unwrap();
        let out = pie::program_output(&parsed).unwrap();
        assert_eq!(out, run.program_output);
        assert_eq!(filter_aggregator_output(&out).unwrap(), run.os_output.as_slice());
        assert_eq!(run.os_output[..10], f(&[100, 104, 0, 4, 200, 204, 0xabc, 7, 1, 0])[..]);
        // Two messages concatenated, no L1 → L2 message.
        assert_eq!(run.os_output[run.os_output.len() - 8..], f(&[6, 1, 2, 0, 1, 2, 0, 0])[..]);
        // The KZG section agrees with the blobs the StateTransition job derives.
        let blobs = transform::felts_to_blobs(&run.da_segment, 6).unwrap();
        let words: Vec<[u8; 32]> = run.os_output.iter().map(Felt::to_bytes_be).collect();
        Kzg::ethereum().prove_program_output(&words, &blobs).unwrap();
        // The fact is reproducible from the zip.
        let again = pie::read_pie_bytes(&run.cairo_pie_zip).unwrap();
        assert_eq!(facts::fact(&parsed).unwrap(), facts::fact(&again).unwrap());
    }

    #[test]
    fn bad_children_are_deterministic_errors() {
        assert!(!build_aggregator_output(&[], 6).unwrap_err().is_retryable());
        let mut c = child(0, 1, &[0, 0]);
        c.os_output.push(Felt::ONE);
        assert!(build_aggregator_output(&[c], 6).unwrap_err().to_string().contains("trailing"));
        let mut c = child(0, 1, &[0, 0]);
        c.os_output.truncate(c.os_output.len() - 1);
        assert!(build_aggregator_output(&[c], 6).is_err());
    }

    #[test]
    fn child_pies_are_read_and_garbage_is_refused_unless_lenient() {
        let a = child(0, 1, &[1, 5, 0, 1, 9, 9, 1, 1, 0, 10, 0]);
        let (zip, _) =
            crate::stand_in::run_program(a.os_output.clone(), LayoutName::all_cairo).unwrap();
        let read = child_from_pie(&zip).unwrap();
        assert_eq!(read.os_output, a.os_output);
        assert_eq!(read.program_hash, crate::stand_in::program_hash().unwrap());
        let junk: &[u8] = b"PK\x03\x04junk";
        let err =
            aggregate_pies(&[(1, &zip), (2, junk)], 6, LayoutName::all_cairo, false).unwrap_err();
        assert!(err.to_string().starts_with("child 2: not a valid Cairo PIE"), "{err}");
        assert!(!err.is_retryable());
        let run = aggregate_pies(&[(1, &zip), (2, junk)], 6, LayoutName::all_cairo, true).unwrap();
        // The second child stands in as an empty block 2: the aggregate ends at block 2.
        assert_eq!(run.os_output[3], Felt::from(2u8));
        assert_eq!(run.program_output[0], Felt::from(2u8));
    }
}
