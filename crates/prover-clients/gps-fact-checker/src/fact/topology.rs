//! The fact topology: how the program output is split into pages and how the pages are arranged
//! in the fact Merkle tree (cairo-lang `bootloaders/fact_topology.py`).

use cairo_vm::types::builtin_name::BuiltinName;
use cairo_vm::vm::runners::cairo_pie::{BuiltinAdditionalData, CairoPie, Pages};

use super::FactError;

/// Name of the output builtin attribute that carries the tree structure.
pub const GPS_FACT_TOPOLOGY: &str = "gps_fact_topology";

/// Maximum length of a tree structure (5 pairs).
pub const MAX_TREE_STRUCTURE_LEN: usize = 10;

/// Exclusive upper bound of a tree structure entry (2^31).
///
/// This is the bound of the madara orchestrator; cairo-lang's Python uses 2^30. Real topologies
/// hold single-digit numbers, so the two never disagree in practice.
pub const TREE_STRUCTURE_ENTRY_BOUND: usize = 1 << 31;

/// A flattened fact tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactTopology {
    /// Pairs `(n_pages, n_nodes)`: push `n_pages` leaves, then merge the top `n_nodes` nodes.
    pub tree_structure: Vec<usize>,
    /// Size of each page (the leaves), in output cells; page 0 first.
    pub page_sizes: Vec<usize>,
}

impl FactTopology {
    /// The topology of an output that is a single page (`[1, 0]`).
    pub fn trivial(output_size: usize) -> Self {
        Self { tree_structure: vec![1, 0], page_sizes: vec![output_size] }
    }
}

/// Checks a `gps_fact_topology` value: non-empty, even length, at most 10 entries, every entry
/// below 2^31.
pub fn validate_tree_structure(tree_structure: &[usize]) -> Result<(), FactError> {
    let len = tree_structure.len();
    if len == 0 {
        return Err(FactError::TopologyEmpty);
    }
    if len % 2 == 1 {
        return Err(FactError::TopologyOddLength(len));
    }
    if len > MAX_TREE_STRUCTURE_LEN {
        return Err(FactError::TopologyTooLong(len));
    }
    if let Some((index, &value)) =
        tree_structure.iter().enumerate().find(|(_, &v)| v >= TREE_STRUCTURE_ENTRY_BOUND)
    {
        return Err(FactError::TopologyEntryTooLarge { index, value });
    }
    Ok(())
}

/// Computes the page sizes of an output of `output_size` cells from the public memory pages of
/// the output builtin.
///
/// Page 0 is implicit: it runs from the start of the output to the start of page 1 (or the
/// whole output when there are no pages). Pages must be numbered 1, 2, … and be contiguous, and
/// together they must reach exactly the end of the output.
pub fn page_sizes(pages: &Pages, output_size: usize) -> Result<Vec<usize>, FactError> {
    let mut sizes = Vec::with_capacity(pages.len() + 1);
    sizes.push(output_size);
    let mut next_start = None;

    // `Pages` is a BTreeMap, so the ids come sorted numerically.
    for (expected, (&id, page)) in (1..).zip(pages) {
        if id != expected {
            return Err(FactError::PageUnexpectedId { expected, found: id });
        }
        match next_start {
            None => {
                if page.start == 0 || page.start > output_size {
                    return Err(FactError::PageInvalidStart {
                        page: id,
                        start: page.start,
                        output_size,
                    });
                }
                sizes[0] = page.start;
            }
            Some(expected_start) if page.start != expected_start => {
                return Err(FactError::PageNotContiguous {
                    page: id,
                    start: page.start,
                    expected: expected_start,
                });
            }
            Some(_) => {}
        }
        if page.size == 0 || page.size > output_size {
            return Err(FactError::PageInvalidSize { page: id, size: page.size, output_size });
        }
        // Both terms are at most `output_size`, so this cannot overflow.
        next_start = Some(page.start + page.size);
        sizes.push(page.size);
    }

    if let Some(covered) = next_start {
        if covered != output_size {
            return Err(FactError::PagesDoNotCoverOutput { covered, output_size });
        }
    }
    Ok(sizes)
}

/// Reads the fact topology of a PIE whose output has `output_size` cells.
///
/// The tree structure comes from the output builtin's `gps_fact_topology` attribute (validated
/// with [`validate_tree_structure`]); without it the output must have no extra pages and the
/// default `[1, 0]` (one page) is used.
pub fn fact_topology(pie: &CairoPie, output_size: usize) -> Result<FactTopology, FactError> {
    let Some(BuiltinAdditionalData::Output(data)) = pie.additional_data.0.get(&BuiltinName::output)
    else {
        return Err(FactError::OutputAdditionalDataMissing);
    };
    let tree_structure = match data.attributes.get(GPS_FACT_TOPOLOGY) {
        Some(tree) => {
            validate_tree_structure(tree)?;
            tree.clone()
        }
        None if data.pages.is_empty() => vec![1, 0],
        None => return Err(FactError::PagesWithoutTopology(data.pages.len())),
    };
    let page_sizes = page_sizes(&data.pages, output_size)?;
    Ok(FactTopology { tree_structure, page_sizes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairo_vm::vm::runners::cairo_pie::PublicMemoryPage;
    use rstest::rstest;

    fn bad(kind: &str) -> impl Fn(&FactError) -> bool + '_ {
        move |e| format!("{e:?}").starts_with(kind)
    }

    #[rstest]
    #[case::trivial(&[1, 0], None)]
    #[case::sepolia(&[2, 1, 0, 2], None)]
    #[case::five_pairs(&[1, 0, 1, 0, 0, 2, 1, 1, 0, 2], None)]
    #[case::largest_entry(&[(1 << 31) - 1, 0], None)]
    #[case::zeros(&[0, 0], None)]
    #[case::empty(&[], Some("TopologyEmpty"))]
    #[case::odd_one(&[1], Some("TopologyOddLength(1)"))]
    #[case::odd_three(&[1, 0, 1], Some("TopologyOddLength(3)"))]
    #[case::twelve(&[1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0], Some("TopologyTooLong(12)"))]
    #[case::odd_and_long(&[1; 11], Some("TopologyOddLength(11)"))]
    #[case::entry_2_pow_31(&[1, 1 << 31], Some("TopologyEntryTooLarge { index: 1, value: 2147483648 }"))]
    #[case::entry_huge(&[usize::MAX, 0], Some("TopologyEntryTooLarge { index: 0"))]
    fn tree_structure_validation(#[case] tree: &[usize], #[case] expected: Option<&str>) {
        match (validate_tree_structure(tree), expected) {
            (Ok(()), None) => {}
            (Err(e), Some(kind)) => assert!(bad(kind)(&e), "got {e:?}, want {kind}"),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    fn pages(list: &[(usize, usize, usize)]) -> Pages {
        list.iter().map(|&(id, start, size)| (id, PublicMemoryPage { start, size })).collect()
    }

    #[rstest]
    #[case::no_pages(&[], 7, Ok(vec![7]))]
    #[case::sepolia(&[(1, 12, 11)], 23, Ok(vec![12, 11]))]
    #[case::three(&[(1, 4, 4), (2, 8, 4)], 12, Ok(vec![4, 4, 4]))]
    #[case::page1_at_end(&[(1, 12, 1)], 12, Err("PagesDoNotCoverOutput"))]
    #[case::gap(&[(1, 4, 3), (2, 8, 4)], 12, Err("PageNotContiguous { page: 2, start: 8, expected: 7 }"))]
    #[case::overlap(&[(1, 4, 5), (2, 8, 4)], 12, Err("PageNotContiguous"))]
    #[case::missing_id(&[(1, 4, 4), (3, 8, 4)], 12, Err("PageUnexpectedId { expected: 2, found: 3 }"))]
    #[case::starts_at_two(&[(2, 4, 8)], 12, Err("PageUnexpectedId { expected: 1, found: 2 }"))]
    #[case::page_zero_id(&[(0, 0, 12)], 12, Err("PageUnexpectedId { expected: 1, found: 0 }"))]
    #[case::start_zero(&[(1, 0, 12)], 12, Err("PageInvalidStart"))]
    #[case::start_past_end(&[(1, 13, 1)], 12, Err("PageInvalidStart"))]
    #[case::empty_page(&[(1, 12, 0)], 12, Err("PageInvalidSize"))]
    #[case::short(&[(1, 4, 4)], 12, Err("PagesDoNotCoverOutput { covered: 8, output_size: 12 }"))]
    #[case::long(&[(1, 4, 9)], 12, Err("PagesDoNotCoverOutput { covered: 13, output_size: 12 }"))]
    fn page_size_cases(
        #[case] list: &[(usize, usize, usize)],
        #[case] output_size: usize,
        #[case] expected: Result<Vec<usize>, &str>,
    ) {
        match (page_sizes(&pages(list), output_size), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want),
            (Err(e), Err(kind)) => assert!(bad(kind)(&e), "got {e:?}, want {kind}"),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn pie_topologies() {
        use crate::fact::pie::read_pie_bytes;
        use crate::fact::test_support::vector;

        let pie = read_pie_bytes(&vector("fibonacci.zip")).unwrap();
        assert_eq!(fact_topology(&pie, 1).unwrap(), FactTopology::trivial(1));

        let pie = read_pie_bytes(&vector("sepolia_924016.zip")).unwrap();
        let topology = fact_topology(&pie, 23).unwrap();
        assert_eq!(topology.tree_structure, vec![2, 1, 0, 2]);
        assert_eq!(topology.page_sizes, vec![12, 11]);
    }

    #[test]
    fn pie_with_bad_topology_attribute_is_rejected() {
        use crate::fact::pie::read_pie_bytes;
        use crate::fact::test_support::vector;

        fn output_data(
            pie: &mut CairoPie,
        ) -> &mut cairo_vm::vm::runners::cairo_pie::OutputBuiltinAdditionalData {
            match pie.additional_data.0.get_mut(&BuiltinName::output) {
                Some(BuiltinAdditionalData::Output(data)) => data,
                other => panic!("sepolia PIE has output additional data, got {other:?}"),
            }
        }
        let mut pie = read_pie_bytes(&vector("sepolia_924016.zip")).unwrap();
        output_data(&mut pie).attributes.insert(GPS_FACT_TOPOLOGY.into(), vec![2, 1, 0]);
        assert!(matches!(fact_topology(&pie, 23), Err(FactError::TopologyOddLength(3))));

        output_data(&mut pie).attributes.insert(GPS_FACT_TOPOLOGY.into(), vec![]);
        assert!(matches!(fact_topology(&pie, 23), Err(FactError::TopologyEmpty)));

        output_data(&mut pie).attributes.remove(GPS_FACT_TOPOLOGY);
        assert!(matches!(fact_topology(&pie, 23), Err(FactError::PagesWithoutTopology(1))));

        pie.additional_data.0.remove(&BuiltinName::output);
        assert!(matches!(fact_topology(&pie, 23), Err(FactError::OutputAdditionalDataMissing)));
    }
}
