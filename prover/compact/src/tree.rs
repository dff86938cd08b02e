//! The Poseidon cell tree of a slot and the slot's compact commitment.
//!
//! Every slot's tree has the same depth, [`DEPTH`] = 22: the binary tree over the slot's cells
//! (leaf = `Poseidon(9)` of the cell's nine elements, node = `Poseidon(2)(left, right)`),
//! zero-padded to 2^22 cells. Padding costs nothing to build (a zero subtree's root is a constant
//! per level), and one circuit then serves every slot size up to 1 GiB: the cell count goes into
//! the commitment, and the circuit only samples cells below it. The commitment is
//! `Poseidon(2)(root, cellCount)`.
//!
//! Memory stays bounded: [`CommitmentBuilder`] takes block roots in order and keeps one node per
//! level (like `hoard_prover::RootAccumulator`); a host keeps its slot's block roots
//! ([`CompactSlotTree`], 32 bytes per 64 KiB block) and rebuilds a block's 8 levels from disk when a
//! sample lands in it.

use std::sync::OnceLock;

use ark_bn254::Fr;
use ark_ff::Zero;
use hoard_prover::{BLOCK_SIZE, CELL_SIZE, CELLS_PER_BLOCK};
use rayon::prelude::*;

use crate::{
    encoding::cell_elements,
    poseidon::{hash2, hash9},
};

/// Levels from a cell to the slot root, for every slot.
pub const DEPTH: usize = 22;
/// Levels inside one 64 KiB block (256 cells).
pub const BLOCK_DEPTH: usize = 8;
/// Levels from a block root to the slot root.
pub const UPPER_DEPTH: usize = DEPTH - BLOCK_DEPTH;
/// Most cells a compact slot may have (1 GiB).
pub const MAX_CELLS: u64 = 1 << DEPTH;
/// Most blocks a compact slot may have.
pub const MAX_BLOCKS: u64 = 1 << UPPER_DEPTH;

/// Why a compact tree cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// No blocks.
    #[error("a compact slot needs at least one block")]
    Empty,
    /// More blocks than a compact slot may hold.
    #[error(
        "{0} blocks is more than a compact slot may hold ({MAX_BLOCKS} blocks, 1 GiB); use the direct scheme or more data slots"
    )]
    TooManyBlocks(u64),
    /// A byte buffer that is not whole blocks.
    #[error("{0} bytes is not a whole number of 64 KiB blocks")]
    PartialBlock(usize),
}

/// Roots of all-zero subtrees: `zero(0)` is the leaf of a zero cell, `zero(l + 1)` hashes two
/// `zero(l)`.
pub fn zero(level: usize) -> Fr {
    static ZEROS: OnceLock<[Fr; DEPTH + 1]> = OnceLock::new();
    ZEROS.get_or_init(|| {
        let mut z = [Fr::zero(); DEPTH + 1];
        z[0] = leaf(&[0u8; CELL_SIZE]);
        for l in 0..DEPTH {
            z[l + 1] = hash2(z[l], z[l]);
        }
        z
    })[level]
}

/// The leaf of one cell.
pub fn leaf(cell: &[u8; CELL_SIZE]) -> Fr {
    hash9(&cell_elements(cell))
}

/// The 8-level Poseidon subtree of one block, every node kept (511 nodes).
#[derive(Debug, Clone)]
pub struct BlockTree {
    /// Level after level: 256 leaves, 128 nodes, …, the root.
    nodes: Vec<Fr>,
}

impl BlockTree {
    /// Hashes the block's 256 cells and the 255 nodes above them.
    pub fn new(block: &[u8; BLOCK_SIZE]) -> Self {
        let mut nodes = Vec::with_capacity(2 * CELLS_PER_BLOCK - 1);
        nodes.extend(block.as_chunks::<CELL_SIZE>().0.iter().map(leaf));
        let mut start = 0;
        let mut width = CELLS_PER_BLOCK;
        while width > 1 {
            for i in 0..width / 2 {
                let node = hash2(nodes[start + 2 * i], nodes[start + 2 * i + 1]);
                nodes.push(node);
            }
            start += width;
            width /= 2;
        }
        Self { nodes }
    }

    /// The block root.
    pub fn root(&self) -> Fr {
        self.nodes[self.nodes.len() - 1]
    }

    /// The sibling path of cell `within` (0..256), bottom up.
    pub fn path(&self, within: usize) -> [Fr; BLOCK_DEPTH] {
        let mut start = 0;
        let mut width = CELLS_PER_BLOCK;
        std::array::from_fn(|level| {
            let sibling = self.nodes[start + ((within >> level) ^ 1)];
            start += width;
            width /= 2;
            sibling
        })
    }
}

/// Root of one block's subtree.
pub fn block_root(block: &[u8; BLOCK_SIZE]) -> Fr {
    BlockTree::new(block).root()
}

/// Roots of the whole blocks in `bytes`, hashed on all cores (rayon).
pub fn block_roots(bytes: &[u8]) -> Result<Vec<Fr>, TreeError> {
    let (blocks, rest) = bytes.as_chunks::<BLOCK_SIZE>();
    if !rest.is_empty() {
        return Err(TreeError::PartialBlock(bytes.len()));
    }
    Ok(blocks.par_iter().map(block_root).collect())
}

/// A slot's compact commitment: what the renter puts in the manifest and (through the compact
/// dataset root) in the request, and what the contract feeds the verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotCommitment {
    /// Root of the depth-22 Poseidon cell tree.
    pub root: Fr,
    /// Cells in the slot (256 per block); samples are drawn below it.
    pub cell_count: u64,
    /// `Poseidon(2)(root, cellCount)`: the value on chain.
    pub value: Fr,
}

impl SlotCommitment {
    /// The commitment of a tree root and cell count.
    pub fn new(root: Fr, cell_count: u64) -> Self {
        Self {
            root,
            cell_count,
            value: hash2(root, Fr::from(cell_count)),
        }
    }
}

/// Builds a slot's commitment from its block roots, in block order, in O(depth) memory.
#[derive(Debug, Clone, Default)]
pub struct CommitmentBuilder {
    /// Roots of complete subtrees above the block roots, levels strictly decreasing.
    stack: Vec<(usize, Fr)>,
    blocks: u64,
}

impl CommitmentBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next block's root ([`block_root`]).
    pub fn push_block_root(&mut self, root: Fr) -> Result<(), TreeError> {
        if self.blocks >= MAX_BLOCKS {
            return Err(TreeError::TooManyBlocks(self.blocks + 1));
        }
        let mut node = (0, root);
        while let Some(&(level, left)) = self.stack.last() {
            if level != node.0 {
                break;
            }
            self.stack.pop();
            node = (level + 1, hash2(left, node.1));
        }
        self.stack.push(node);
        self.blocks += 1;
        Ok(())
    }

    /// Hashes whole blocks on all cores and adds their roots in order.
    pub fn push_blocks(&mut self, bytes: &[u8]) -> Result<(), TreeError> {
        let roots = block_roots(bytes)?;
        let after = self.blocks + roots.len() as u64;
        if after > MAX_BLOCKS {
            return Err(TreeError::TooManyBlocks(after));
        }
        roots.into_iter().try_for_each(|r| self.push_block_root(r))
    }

    /// Blocks added so far.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// The commitment over the blocks added, zero-padded to 2^22 cells.
    pub fn finish(mut self) -> Result<SlotCommitment, TreeError> {
        let (mut level, mut hash) = self.stack.pop().ok_or(TreeError::Empty)?;
        while level < UPPER_DEPTH {
            hash = match self.stack.last() {
                Some(&(l, left)) if l == level => {
                    self.stack.pop();
                    hash2(left, hash)
                }
                _ => hash2(hash, zero(BLOCK_DEPTH + level)),
            };
            level += 1;
        }
        Ok(SlotCommitment::new(
            hash,
            self.blocks * CELLS_PER_BLOCK as u64,
        ))
    }
}

/// Blocks hashed per step of [`commit_blocks`]: 4 MiB in flight, split over all cores.
pub const COMMIT_BATCH_BLOCKS: usize = 64;

/// Commits a slot of `blocks` blocks, asking `read(first_block, buf)` to fill `buf` with the next
/// whole blocks in order (up to [`COMMIT_BATCH_BLOCKS`] at a time; the caller checks them as it
/// likes), hashing each batch on all cores and calling `progress(blocks_done)` after it.
/// Memory: one batch plus the block roots (32 bytes per block), which it returns for the host to
/// keep ([`CompactSlotTree::from_block_roots`]).
pub fn commit_blocks<E: From<TreeError>>(
    blocks: u64,
    mut read: impl FnMut(u64, &mut [u8]) -> Result<(), E>,
    mut progress: impl FnMut(u64),
) -> Result<(SlotCommitment, Vec<Fr>), E> {
    if blocks > MAX_BLOCKS {
        return Err(TreeError::TooManyBlocks(blocks).into());
    }
    let mut builder = CommitmentBuilder::new();
    let mut roots = Vec::with_capacity(blocks as usize);
    let mut buf = vec![0u8; COMMIT_BATCH_BLOCKS * BLOCK_SIZE];
    let mut done = 0u64;
    while done < blocks {
        let n = (blocks - done).min(COMMIT_BATCH_BLOCKS as u64) as usize;
        let chunk = &mut buf[..n * BLOCK_SIZE];
        read(done, chunk)?;
        let batch = block_roots(chunk)?;
        for r in &batch {
            builder.push_block_root(*r)?;
        }
        roots.extend(batch);
        done += n as u64;
        progress(done);
    }
    Ok((builder.finish()?, roots))
}

/// A slot's compact tree as a host keeps it: the block roots and every node above them.
#[derive(Debug, Clone)]
pub struct CompactSlotTree {
    /// `levels[0]` are the block roots; `levels[l]` has `ceil(blocks / 2^l)` nodes; a node missing
    /// on the right is the zero subtree of its level.
    levels: Vec<Vec<Fr>>,
    commitment: SlotCommitment,
}

impl CompactSlotTree {
    /// Builds the tree above `block_roots` (one per block of the slot, in order).
    pub fn from_block_roots(block_roots: Vec<Fr>) -> Result<Self, TreeError> {
        let blocks = block_roots.len() as u64;
        if blocks == 0 {
            return Err(TreeError::Empty);
        }
        if blocks > MAX_BLOCKS {
            return Err(TreeError::TooManyBlocks(blocks));
        }
        let mut levels = vec![block_roots];
        for level in 0..UPPER_DEPTH {
            let below = &levels[level];
            let next = below
                .chunks(2)
                .map(|pair| {
                    hash2(
                        pair[0],
                        pair.get(1).copied().unwrap_or(zero(BLOCK_DEPTH + level)),
                    )
                })
                .collect();
            levels.push(next);
        }
        let root = levels[UPPER_DEPTH][0];
        let commitment = SlotCommitment::new(root, blocks * CELLS_PER_BLOCK as u64);
        Ok(Self { levels, commitment })
    }

    /// The slot's commitment.
    pub fn commitment(&self) -> &SlotCommitment {
        &self.commitment
    }

    /// Blocks in the slot.
    pub fn blocks(&self) -> u64 {
        self.levels[0].len() as u64
    }

    /// The root of block `index`, if the slot has it.
    pub fn block_root(&self, index: u64) -> Option<Fr> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.levels[0].get(i).copied())
    }

    /// The block roots, in order (what a host stores next to the slot).
    pub fn block_roots(&self) -> &[Fr] {
        &self.levels[0]
    }

    /// The sibling path from block `index`'s root to the slot root, bottom up.
    pub fn block_path(&self, index: u64) -> Option<[Fr; UPPER_DEPTH]> {
        if index >= self.blocks() {
            return None;
        }
        let index = index as usize; // < MAX_BLOCKS
        Some(std::array::from_fn(|level| {
            let sibling = (index >> level) ^ 1;
            self.levels[level]
                .get(sibling)
                .copied()
                .unwrap_or(zero(BLOCK_DEPTH + level))
        }))
    }
}

/// Recomputes a tree root from a leaf, its index and its sibling path (bottom up).
pub fn root_from_path(leaf: Fr, index: u64, path: &[Fr]) -> Fr {
    path.iter()
        .enumerate()
        .fold(leaf, |node, (level, sibling)| {
            if (index >> level) & 1 == 0 {
                hash2(node, *sibling)
            } else {
                hash2(*sibling, node)
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(seed: u8) -> Box<[u8; BLOCK_SIZE]> {
        let mut b = Box::new([0u8; BLOCK_SIZE]);
        for (i, x) in b.iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(31) ^ (i >> 8) as u8 ^ seed.wrapping_mul(101);
        }
        b
    }

    /// The textbook definition over all 2^22 leaves, computed level by level over the distinct
    /// nodes only: a reference for the builder, the kept tree and the paths.
    fn reference_root(blocks: &[Box<[u8; BLOCK_SIZE]>]) -> Fr {
        let mut level: Vec<Fr> = blocks.iter().map(|b| block_root(b)).collect();
        for l in BLOCK_DEPTH..DEPTH {
            level.resize(level.len().next_multiple_of(2), zero(l));
            level = level.chunks(2).map(|p| hash2(p[0], p[1])).collect();
        }
        assert_eq!(level.len(), 1);
        level[0]
    }

    #[test]
    fn zero_subtrees_are_roots_of_zero_blocks() {
        assert_eq!(block_root(&[0u8; BLOCK_SIZE]), zero(BLOCK_DEPTH));
        assert_eq!(hash2(zero(3), zero(3)), zero(4));
    }

    #[test]
    fn builder_kept_tree_and_reference_agree() {
        for n in [1usize, 2, 3, 5, 8] {
            let blocks: Vec<_> = (0..n).map(|i| block(i as u8)).collect();
            let reference = reference_root(&blocks);
            let mut b = CommitmentBuilder::new();
            let mut bytes = Vec::new();
            blocks
                .iter()
                .for_each(|blk| bytes.extend_from_slice(&blk[..]));
            b.push_blocks(&bytes).expect("whole blocks");
            let c = b.finish().expect("non-empty");
            assert_eq!(c.root, reference, "n = {n}");
            assert_eq!(c.cell_count, 256 * n as u64);
            assert_eq!(c.value, hash2(reference, Fr::from(256 * n as u64)));
            let roots = block_roots(&bytes).expect("whole blocks");
            let kept = CompactSlotTree::from_block_roots(roots).expect("non-empty");
            assert_eq!(kept.commitment(), &c);
            // Every cell's path leads to the root.
            for (bi, blk) in blocks.iter().enumerate() {
                let sub = BlockTree::new(blk);
                for within in [0usize, 1, 77, 255] {
                    let cell: &[u8; CELL_SIZE] = blk[within * CELL_SIZE..][..CELL_SIZE]
                        .try_into()
                        .expect("a cell");
                    let mut path = sub.path(within).to_vec();
                    path.extend(kept.block_path(bi as u64).expect("in range"));
                    let index = (bi * CELLS_PER_BLOCK + within) as u64;
                    assert_eq!(root_from_path(leaf(cell), index, &path), c.root);
                    assert_ne!(root_from_path(leaf(cell), index ^ 1, &path), c.root);
                }
            }
            assert!(kept.block_path(n as u64).is_none());
        }
    }

    #[test]
    fn commit_blocks_streams_and_reports_progress() {
        let blocks: Vec<_> = (0..65).map(|i| block(i as u8)).collect();
        let mut bytes = Vec::new();
        blocks.iter().for_each(|b| bytes.extend_from_slice(&b[..]));
        let from = |bytes: &[u8]| {
            let bytes = bytes.to_vec();
            move |first: u64, buf: &mut [u8]| -> Result<(), TreeError> {
                let at = first as usize * BLOCK_SIZE;
                let src = bytes.get(at..at + buf.len()).ok_or(TreeError::Empty)?;
                buf.copy_from_slice(src);
                Ok(())
            }
        };
        let (mut seen, mut asked) = (Vec::new(), Vec::new());
        let read = from(&bytes);
        let (c, roots) = commit_blocks(
            65,
            |first, buf: &mut [u8]| {
                asked.push((first, buf.len() / BLOCK_SIZE));
                read(first, buf)
            },
            |d| seen.push(d),
        )
        .expect("whole slot");
        assert_eq!(seen, vec![64, 65]);
        assert_eq!(asked, vec![(0, 64), (64, 1)]);
        assert_eq!(c.root, reference_root(&blocks));
        assert_eq!(
            CompactSlotTree::from_block_roots(roots)
                .expect("valid")
                .commitment(),
            &c
        );
        // The reader's error comes back as it is.
        let short = commit_blocks(2, from(&bytes[..BLOCK_SIZE]), |_| {});
        assert!(matches!(short, Err(TreeError::Empty)));
        assert_eq!(
            commit_blocks(MAX_BLOCKS + 1, from(&bytes), |_| {}).map(|_| ()),
            Err(TreeError::TooManyBlocks(MAX_BLOCKS + 1))
        );
    }

    #[test]
    fn rejects_empty_partial_and_oversized_input() {
        assert_eq!(CommitmentBuilder::new().finish(), Err(TreeError::Empty));
        assert_eq!(
            CommitmentBuilder::new().push_blocks(&[0u8; 100]),
            Err(TreeError::PartialBlock(100))
        );
        assert!(matches!(
            CompactSlotTree::from_block_roots(vec![]),
            Err(TreeError::Empty)
        ));
        assert!(matches!(
            CompactSlotTree::from_block_roots(vec![Fr::zero(); MAX_BLOCKS as usize + 1]),
            Err(TreeError::TooManyBlocks(_))
        ));
        let mut b = CommitmentBuilder::new();
        for _ in 0..MAX_BLOCKS {
            b.push_block_root(zero(BLOCK_DEPTH))
                .expect("within the limit");
        }
        assert_eq!(
            b.push_block_root(zero(BLOCK_DEPTH)),
            Err(TreeError::TooManyBlocks(MAX_BLOCKS + 1))
        );
        // A full slot of zero blocks is the all-zero tree.
        assert_eq!(b.finish().expect("non-empty").root, zero(DEPTH));
    }
}
