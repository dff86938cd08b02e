//! Direct storage proofs: the challenged cells and a shared sibling list (a Merkle multiproof).
//!
//! Wire form (the `bytes proof` argument of the contract): `cells ‖ siblings`, tightly packed,
//! where `cells` are the sampled cells in ascending index order, each once, and `siblings` are the
//! 32-byte hashes [`fold`] asks for, in the order it asks. Samples share the upper part of their
//! paths, so a 16-sample proof of a 1 GiB slot carries far fewer than 16 × 22 siblings.

use crate::{
    challenge::Challenge,
    hash::{Hash, leaf_hash, node_hash},
    layout::{BLOCK_SIZE, BLOCK_TREE_DEPTH, CELL_SIZE},
    tree::{BlockTree, SlotTree},
};

/// Why a proof was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The challenge asks for no samples.
    #[error("the challenge has no samples")]
    NoSamples,
    /// The bytes cannot be a proof for this challenge.
    #[error("malformed proof: {0}")]
    Malformed(String),
    /// The cells and siblings hash to another root.
    #[error("proof does not match the slot root: expected {expected}, computed {computed}")]
    RootMismatch {
        /// The slot root committed to.
        expected: Hash,
        /// The root the proof hashes to.
        computed: Hash,
    },
}

/// Why a proof could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ProveError<E> {
    /// The challenge does not fit the slot.
    #[error("challenge is for {challenge} cells but the slot has {slot}")]
    CellCountMismatch {
        /// Cells according to the challenge.
        challenge: u64,
        /// Cells in the slot tree.
        slot: u64,
    },
    /// A block read from storage does not hash to its committed root: the local copy is damaged.
    #[error("block {block} does not match its committed root: the stored slot data is damaged")]
    BlockMismatch {
        /// The damaged block.
        block: u64,
    },
    /// Reading a block failed.
    #[error("reading block {block}: {source}")]
    Read {
        /// The block being read.
        block: u64,
        /// The reader's error.
        source: E,
    },
}

/// A direct proof: the sampled cells and the siblings that hash them up to the slot root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectProof {
    /// Sampled cells, ascending by index, each once.
    pub cells: Vec<[u8; CELL_SIZE]>,
    /// Sibling hashes in the order [`fold`] consumes them.
    pub siblings: Vec<Hash>,
}

impl DirectProof {
    /// Answers `challenge` for the slot committed to by `tree`, reading the challenged blocks with
    /// `read_block(index, buffer)`. Every block read is checked against its committed root, so a
    /// damaged copy gives [`ProveError::BlockMismatch`] rather than a proof that fails on chain.
    pub fn create<E>(
        tree: &SlotTree,
        challenge: &Challenge,
        mut read_block: impl FnMut(u64, &mut [u8; BLOCK_SIZE]) -> Result<(), E>,
    ) -> Result<Self, ProveError<E>> {
        if challenge.cell_count.get() != tree.cell_count() {
            return Err(ProveError::CellCountMismatch {
                challenge: challenge.cell_count.get(),
                slot: tree.cell_count(),
            });
        }
        let unique = challenge.unique_indices();
        // One subtree per distinct challenged block, ascending by block index.
        let mut blocks: Vec<(u64, BlockTree)> = Vec::new();
        let mut buf = vec![0u8; BLOCK_SIZE].into_boxed_slice();
        let buf: &mut [u8; BLOCK_SIZE] = (&mut *buf).try_into().expect("sized as a block");
        let mut cells = Vec::with_capacity(unique.len());
        for cell in &unique {
            let b = cell.block();
            if blocks.last().is_none_or(|(last, _)| *last != b) {
                read_block(b, buf).map_err(|source| ProveError::Read { block: b, source })?;
                let subtree = BlockTree::new(buf);
                if Some(subtree.root()) != tree.block_root(b) {
                    return Err(ProveError::BlockMismatch { block: b });
                }
                blocks.push((b, subtree));
            }
            let at = cell.within_block() * CELL_SIZE;
            cells.push(buf[at..at + CELL_SIZE].try_into().expect("a cell"));
        }

        let mut siblings = Vec::new();
        let leaves = unique
            .iter()
            .zip(&cells)
            .map(|(i, c)| (i.0, leaf_hash(c)))
            .collect();
        let Ok(root) = fold(leaves, tree.depth(), |level, index| {
            let node = if level < BLOCK_TREE_DEPTH {
                let block = index >> (BLOCK_TREE_DEPTH - level);
                let within = index & ((1 << (BLOCK_TREE_DEPTH - level)) - 1);
                blocks
                    .binary_search_by_key(&block, |(b, _)| *b)
                    .ok()
                    .and_then(|at| blocks[at].1.node(level, within))
            } else {
                tree.upper_node(level, index)
            };
            // Siblings below level 8 lie in a challenged block; above it, in the kept tree.
            let node = node.expect("every sibling of a challenged cell is in the tree");
            siblings.push(node);
            Ok::<_, std::convert::Infallible>(node)
        });
        debug_assert_eq!(
            root,
            Some(tree.root()),
            "blocks were checked against their roots"
        );
        Ok(Self { cells, siblings })
    }

    /// The wire form: `cells ‖ siblings`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.cells.len() * CELL_SIZE + self.siblings.len() * 32);
        for c in &self.cells {
            out.extend_from_slice(c);
        }
        for s in &self.siblings {
            out.extend_from_slice(&s.0);
        }
        out
    }
}

/// Checks the wire form of a direct proof against a slot root, exactly as the contract does.
pub fn verify(root: &Hash, challenge: &Challenge, proof: &[u8]) -> Result<(), VerifyError> {
    let unique = challenge.unique_indices();
    if unique.is_empty() {
        return Err(VerifyError::NoSamples);
    }
    let cells_len = unique.len() * CELL_SIZE;
    if proof.len() < cells_len || !(proof.len() - cells_len).is_multiple_of(32) {
        return Err(VerifyError::Malformed(format!(
            "{} bytes cannot hold {} cells of {CELL_SIZE} bytes followed by 32-byte siblings",
            proof.len(),
            unique.len()
        )));
    }
    let (cells, siblings) = proof.split_at(cells_len);
    let leaves = unique
        .iter()
        .zip(cells.as_chunks::<CELL_SIZE>().0)
        .map(|(i, c)| (i.0, leaf_hash(c)))
        .collect();
    let mut siblings = siblings.as_chunks::<32>().0.iter();
    let depth = tree_depth(challenge.cell_count.get());
    let computed = fold(leaves, depth, |_, _| {
        siblings
            .next()
            .map(|s| Hash(*s))
            .ok_or_else(|| VerifyError::Malformed("too few siblings".into()))
    })?
    .ok_or(VerifyError::NoSamples)?;
    if siblings.len() != 0 {
        return Err(VerifyError::Malformed(format!(
            "{} unused siblings",
            siblings.len()
        )));
    }
    if computed != *root {
        return Err(VerifyError::RootMismatch {
            expected: *root,
            computed,
        });
    }
    Ok(())
}

/// `ceil(log2(cell_count))`: the depth of the padded tree over `cell_count` leaves.
fn tree_depth(cell_count: u64) -> u32 {
    cell_count.next_power_of_two().trailing_zeros()
}

/// Hashes known leaves up to the root, asking `sibling(level, index)` for every node that is not
/// computed from the known ones. `known` must be ascending with unique indices below `2^depth`.
///
/// This is the one definition of the multiproof order: the prover records the siblings in the
/// order this asks for them and the verifier (here and on chain) reads them in that order.
fn fold<E>(
    mut known: Vec<(u64, Hash)>,
    depth: u32,
    mut sibling: impl FnMut(u32, u64) -> Result<Hash, E>,
) -> Result<Option<Hash>, E> {
    for level in 0..depth {
        let mut next = Vec::with_capacity(known.len());
        let mut i = 0;
        while i < known.len() {
            let (index, hash) = known[i];
            let parent = if !index.is_multiple_of(2) {
                node_hash(&sibling(level, index - 1)?, &hash)
            } else if let Some((_, right)) = known.get(i + 1).filter(|(r, _)| *r == index + 1) {
                i += 1;
                node_hash(&hash, right)
            } else {
                node_hash(&hash, &sibling(level, index + 1)?)
            };
            next.push((index >> 1, parent));
            i += 1;
        }
        known = next;
    }
    Ok(match known.as_slice() {
        [(0, root)] => Some(*root),
        _ => None,
    })
}
