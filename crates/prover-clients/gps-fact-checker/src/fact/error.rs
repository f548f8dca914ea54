//! The single error type of the fact computation.

use std::path::PathBuf;

/// Everything that can go wrong while reading a Cairo PIE and computing its fact.
///
/// Each variant names one problem, so callers (and the `orchestrator fact` command) can tell a
/// broken file from a malformed program output or an invalid fact topology.
#[derive(Debug, thiserror::Error)]
pub enum FactError {
    // ----- reading the PIE -----
    /// The PIE file could not be read from disk.
    #[error("cannot read PIE file {path}: {source}")]
    Io {
        /// The file that was asked for.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a readable zip archive (truncated, corrupted or not a zip at all).
    #[error("PIE is not a readable zip archive: {0}")]
    ZipUnreadable(#[source] zip::result::ZipError),
    /// The zip archive lacks an entry every Cairo PIE has, so it is not a PIE.
    #[error("zip archive is not a Cairo PIE: entry `{0}` is missing")]
    PieEntryMissing(&'static str),
    /// An entry of the PIE could not be decompressed.
    #[error("cannot decompress PIE entry `{entry}`: {source}")]
    PieEntryUnreadable {
        /// The zip entry name.
        entry: &'static str,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON entry of the PIE does not have the expected shape.
    #[error("PIE entry `{entry}` is malformed: {source}")]
    PieEntryInvalid {
        /// The zip entry name.
        entry: &'static str,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// `memory.bin` is not a sequence of 40-byte (address, value) cells.
    #[error("PIE entry `memory.bin` is malformed ({len} bytes, not a multiple of 40)")]
    PieMemoryInvalid {
        /// Length of the entry in bytes.
        len: usize,
    },

    // ----- program hash -----
    /// The program hash chain could not be computed (e.g. relocatable program data).
    #[error("cannot compute the program hash: {0}")]
    ProgramHash(String),

    // ----- output segment -----
    /// The PIE has no output builtin segment.
    #[error("PIE has no output builtin segment")]
    OutputSegmentMissing,
    /// A cell of the output segment holds a relocatable value instead of an integer.
    #[error("output cell {offset} is not an integer (relocatable value)")]
    OutputCellNotInteger {
        /// Offset of the cell in the output segment.
        offset: usize,
    },
    /// A memory cell of the output segment lies beyond the declared segment size.
    #[error("output cell {offset} lies outside the output segment of size {size}")]
    OutputCellOutOfRange {
        /// Offset of the cell in the output segment.
        offset: usize,
        /// Declared size of the output segment.
        size: usize,
    },
    /// The same output cell appears twice in the PIE memory.
    #[error("output cell {offset} appears more than once in the PIE memory")]
    OutputCellDuplicate {
        /// Offset of the cell in the output segment.
        offset: usize,
    },
    /// A cell of the output segment has no value in the PIE memory.
    #[error("output cell {offset} is missing (segment size {size}, {present} cells present)")]
    OutputCellMissing {
        /// Offset of the first missing cell.
        offset: usize,
        /// Declared size of the output segment.
        size: usize,
        /// Number of cells actually present.
        present: usize,
    },

    // ----- fact topology -----
    /// The output builtin has no `Output` additional data (pages and attributes).
    #[error("PIE has no additional data for the output builtin")]
    OutputAdditionalDataMissing,
    /// The `gps_fact_topology` attribute is empty.
    #[error("bad fact topology: tree structure is empty")]
    TopologyEmpty,
    /// The tree structure is not a list of (n_pages, n_nodes) pairs.
    #[error("bad fact topology: tree structure has odd length {0}")]
    TopologyOddLength(usize),
    /// The tree structure is longer than 10 entries.
    #[error("bad fact topology: tree structure has length {0}, at most 10 allowed")]
    TopologyTooLong(usize),
    /// An entry of the tree structure is 2^31 or larger.
    #[error("bad fact topology: entry {index} is {value}, must be below 2^31")]
    TopologyEntryTooLarge {
        /// Position in the tree structure.
        index: usize,
        /// The offending value.
        value: usize,
    },
    /// The output has extra pages but no `gps_fact_topology` attribute to arrange them.
    #[error("output has {0} additional page(s) but no `gps_fact_topology` attribute")]
    PagesWithoutTopology(usize),

    // ----- pages -----
    /// Page ids are not 1, 2, 3, … in order.
    #[error("page gap: expected page id {expected}, found {found}")]
    PageUnexpectedId {
        /// The id that should come next.
        expected: usize,
        /// The id found.
        found: usize,
    },
    /// Page 1 does not start inside the output (`0 < start <= output size`).
    #[error("page {page} starts at {start}, outside the output of size {output_size}")]
    PageInvalidStart {
        /// Page id.
        page: usize,
        /// Its start offset.
        start: usize,
        /// The output size.
        output_size: usize,
    },
    /// A page does not start where the previous one ended.
    #[error("page gap: page {page} starts at {start}, expected {expected}")]
    PageNotContiguous {
        /// Page id.
        page: usize,
        /// Its start offset.
        start: usize,
        /// End of the previous page.
        expected: usize,
    },
    /// A page is empty or larger than the output.
    #[error("page {page} has size {size}, must be in 1..={output_size}")]
    PageInvalidSize {
        /// Page id.
        page: usize,
        /// Its size.
        size: usize,
        /// The output size.
        output_size: usize,
    },
    /// The pages end before or after the end of the output.
    #[error("pages cover {covered} output cells but the output has {output_size}")]
    PagesDoNotCoverOutput {
        /// End offset of the last page.
        covered: usize,
        /// The output size.
        output_size: usize,
    },

    // ----- Merkle tree -----
    /// A (n_pages, n_nodes) pair asks for more pages than remain.
    #[error("bad fact topology: {requested} page(s) requested but only {remaining} remain")]
    TopologyTooManyPages {
        /// Pages requested by the pair.
        requested: usize,
        /// Pages not yet consumed.
        remaining: usize,
    },
    /// A (n_pages, n_nodes) pair asks to merge more nodes than are on the stack.
    #[error("bad fact topology: {requested} node(s) to merge but the stack holds {available}")]
    TopologyTooManyNodes {
        /// Nodes to merge.
        requested: usize,
        /// Nodes on the stack.
        available: usize,
    },
    /// After the whole tree structure the stack does not hold exactly one root.
    #[error("bad fact topology: {0} node(s) left on the stack instead of a single root")]
    TopologyNoSingleRoot(usize),
    /// Some pages were never placed in the tree.
    #[error("bad fact topology: {0} page(s) not used by the tree structure")]
    TopologyPagesUnused(usize),
    /// A page runs past the end of the output.
    #[error("page ending at {end} runs past the output of size {output_size}")]
    PageBeyondOutput {
        /// End offset of the page.
        end: usize,
        /// The output size.
        output_size: usize,
    },
    /// The Merkle root does not cover the whole output.
    #[error("Merkle root covers {covered} output cells but the output has {output_size}")]
    RootDoesNotCoverOutput {
        /// End offset of the root.
        covered: usize,
        /// The output size.
        output_size: usize,
    },

    // ----- aggregator / SNOS output parsing -----
    /// The aggregator program output does not follow the expected layout.
    #[error("malformed aggregator output: {0}")]
    AggregatorOutputMalformed(String),
    /// The SNOS output has a KZG-DA flag other than 0 or 1.
    #[error("unsupported KZG-DA flag {0} in the OS output (expected 0 or 1)")]
    UnsupportedKzgFlag(String),
}
