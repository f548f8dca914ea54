//! The fact Merkle tree over the output pages (cairo-lang `bootloaders/compute_fact.py`).
//!
//! The tree is not binary. It is built with a stack: for each `(n_pages, n_nodes)` pair of the
//! tree structure, push one leaf per page (hash = keccak of the page's cells as 32-byte
//! big-endian words), then replace the top `n_nodes` nodes by their parent, whose hash is
//! `keccak(child_hash_0 ‖ end_0 ‖ child_hash_1 ‖ end_1 ‖ …) + 1 (mod 2^256)`, where `end_i` is the
//! number of output cells up to and including child `i`, as a 32-byte big-endian word. The `+ 1`
//! keeps leaf and inner-node preimages apart. At the end exactly one node — the root — must
//! remain, and it must cover the whole output.

use std::collections::VecDeque;

use starknet_types_core::felt::Felt;

use super::hash::{keccak256_concat, usize_be32, Hash256};
use super::topology::FactTopology;
use super::FactError;

/// A node of the fact tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactNode {
    /// Leaf: keccak of the page. Inner node: keccak of the children's (hash, end) words, plus 1.
    pub hash: Hash256,
    /// Number of output cells up to and including this node.
    pub end_offset: usize,
    /// Number of output cells under this node.
    pub size: usize,
    /// Child nodes (empty for a leaf).
    pub children: Vec<FactNode>,
}

/// Hash of a leaf: keccak of the concatenated 32-byte big-endian cells.
pub fn page_hash(page: &[Felt]) -> Hash256 {
    let words: Vec<[u8; 32]> = page.iter().map(Felt::to_bytes_be).collect();
    keccak256_concat(words.iter().map(|w| w.as_slice()))
}

/// Hash of an inner node built from `children`.
pub fn parent_hash(children: &[FactNode]) -> Hash256 {
    let words: Vec<[u8; 32]> = children.iter().map(|c| usize_be32(c.end_offset)).collect();
    let parts =
        children.iter().zip(&words).flat_map(|(c, end)| [c.hash.0.as_slice(), end.as_slice()]);
    keccak256_concat(parts).wrapping_add_u64(1)
}

/// Builds the fact tree of `output` for `topology` and returns its root.
pub fn merkle_root(output: &[Felt], topology: &FactTopology) -> Result<FactNode, FactError> {
    let mut pages: VecDeque<usize> = topology.page_sizes.iter().copied().collect();
    let mut stack: Vec<FactNode> = Vec::with_capacity(pages.len());
    let mut end_offset = 0usize;

    for pair in topology.tree_structure.chunks(2) {
        let (n_pages, n_nodes) = match *pair {
            [p, n] => (p, n),
            _ => return Err(FactError::TopologyOddLength(topology.tree_structure.len())),
        };
        if n_pages > pages.len() {
            return Err(FactError::TopologyTooManyPages {
                requested: n_pages,
                remaining: pages.len(),
            });
        }
        for size in pages.drain(..n_pages) {
            let start = end_offset;
            let end = start.checked_add(size).filter(|&end| end <= output.len()).ok_or(
                FactError::PageBeyondOutput {
                    end: start.saturating_add(size),
                    output_size: output.len(),
                },
            )?;
            stack.push(FactNode {
                hash: page_hash(&output[start..end]),
                end_offset: end,
                size,
                children: Vec::new(),
            });
            end_offset = end;
        }

        if n_nodes > stack.len() {
            return Err(FactError::TopologyTooManyNodes {
                requested: n_nodes,
                available: stack.len(),
            });
        }
        if n_nodes > 0 {
            let children = stack.split_off(stack.len() - n_nodes);
            // `n_nodes > 0`, so `children` is not empty.
            let last_end = children.last().map_or(0, |c| c.end_offset);
            stack.push(FactNode {
                hash: parent_hash(&children),
                end_offset: last_end,
                size: children.iter().map(|c| c.size).sum(),
                children,
            });
        }
    }

    if stack.len() != 1 {
        return Err(FactError::TopologyNoSingleRoot(stack.len()));
    }
    if !pages.is_empty() {
        return Err(FactError::TopologyPagesUnused(pages.len()));
    }
    // The stack holds exactly one node (checked above).
    let root = stack.pop().ok_or(FactError::TopologyNoSingleRoot(0))?;
    if end_offset != output.len() || root.end_offset != output.len() {
        return Err(FactError::RootDoesNotCoverOutput {
            covered: end_offset.min(root.end_offset),
            output_size: output.len(),
        });
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_to_twelve() -> Vec<Felt> {
        (1..=12u64).map(Felt::from).collect()
    }

    /// The acceptance vector of the repository's test vectors (cross-checked there with cairo-lang).
    #[test]
    fn merkle_acceptance_vector() {
        let topology = FactTopology {
            tree_structure: vec![1, 0, 1, 0, 0, 2, 1, 1, 0, 2],
            page_sizes: vec![4, 4, 4],
        };
        let root = merkle_root(&one_to_twelve(), &topology).unwrap();
        assert_eq!(
            root.hash,
            Hash256::from_hex("0x17F41BA1DB11E3A164B23B72B52190FB0DA6184B4B80CF74E0882FDE7438E47F")
                .unwrap()
        );
        assert_eq!(root.end_offset, 12);
        assert_eq!(root.size, 12);
        assert_eq!(root.children.len(), 2);
        assert_eq!(root.children[0].children.len(), 2);
    }

    #[test]
    fn trivial_topology_root_is_the_page_hash() {
        let out = one_to_twelve();
        let root = merkle_root(&out, &FactTopology::trivial(12)).unwrap();
        assert_eq!(root.hash, page_hash(&out));
        assert!(root.children.is_empty());
    }

    #[test]
    fn parent_hash_is_keccak_of_hash_and_end_words_plus_one() {
        let out = one_to_twelve();
        let topology = FactTopology { tree_structure: vec![2, 2], page_sizes: vec![5, 7] };
        let root = merkle_root(&out, &topology).unwrap();
        let mut data = Vec::new();
        data.extend_from_slice(page_hash(&out[..5]).as_bytes());
        data.extend_from_slice(&usize_be32(5));
        data.extend_from_slice(page_hash(&out[5..]).as_bytes());
        data.extend_from_slice(&usize_be32(12));
        assert_eq!(root.hash, keccak256_concat([data.as_slice()]).wrapping_add_u64(1));
    }

    fn err(tree: &[usize], pages: &[usize], n: usize) -> FactError {
        let out: Vec<Felt> = (0..n as u64).map(Felt::from).collect();
        let topology = FactTopology { tree_structure: tree.to_vec(), page_sizes: pages.to_vec() };
        merkle_root(&out, &topology).unwrap_err()
    }

    #[test]
    fn malformed_trees_are_rejected() {
        assert!(matches!(
            err(&[2, 0], &[4], 4),
            FactError::TopologyTooManyPages { requested: 2, remaining: 1 }
        ));
        assert!(matches!(
            err(&[1, 2], &[4], 4),
            FactError::TopologyTooManyNodes { requested: 2, available: 1 }
        ));
        assert!(matches!(err(&[2, 0], &[2, 2], 4), FactError::TopologyNoSingleRoot(2)));
        assert!(matches!(err(&[0, 0], &[], 0), FactError::TopologyNoSingleRoot(0)));
        assert!(matches!(err(&[1, 0], &[2, 2], 4), FactError::TopologyPagesUnused(1)));
        assert!(matches!(
            err(&[1, 0], &[5], 4),
            FactError::PageBeyondOutput { end: 5, output_size: 4 }
        ));
        assert!(matches!(
            err(&[1, 0], &[3], 4),
            FactError::RootDoesNotCoverOutput { covered: 3, output_size: 4 }
        ));
        assert!(matches!(err(&[1], &[4], 4), FactError::TopologyOddLength(1)));
        assert!(matches!(
            err(&[1, 0], &[usize::MAX], 4),
            FactError::PageBeyondOutput { end: usize::MAX, output_size: 4 }
        ));
    }
}
