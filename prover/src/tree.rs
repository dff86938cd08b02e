//! Merkle trees: a block's 256-cell subtree, a slot tree, and the dataset tree over slot roots.
//!
//! All three are [`PaddedTree`]s: ordinary binary trees with the node hash of [`node_hash`], whose
//! leaf layer is padded to a power of two with a fixed padding leaf. merkle_light builds them; it
//! panics on a single leaf and duplicates odd nodes, so [`PaddedTree`] pads first and keeps a
//! one-leaf tree to itself.
//!
//! A host never holds a whole slot tree (8 million nodes for a 1 GiB slot). [`SlotTree`] keeps the
//! block roots and the tree above them (32 bytes per 64 KiB block, twice); the 8 levels inside a
//! block are rebuilt from the block's bytes when a challenge lands there ([`BlockTree`]).

use std::sync::OnceLock;

use merkle_light::merkle::MerkleTree;

use crate::{
    hash::{Hash, TreeHasher, leaf_hash_pair, node_hash, node_hash_pair},
    layout::{BLOCK_SIZE, BLOCK_TREE_DEPTH, CELL_SIZE, CELLS_PER_BLOCK, MAX_SLOT_BLOCKS},
};

/// Why a tree cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// No leaves.
    #[error("a tree needs at least one leaf")]
    Empty,
    /// More blocks than a slot may hold.
    #[error("{0} blocks is more than a slot may hold ({MAX_SLOT_BLOCKS})")]
    TooManyBlocks(u64),
}

/// A binary tree over a power-of-two leaf layer, every level kept.
#[derive(Debug, Clone)]
pub(crate) enum PaddedTree {
    /// A single leaf, which is also the root.
    One(Hash),
    /// Two or more leaves; merkle_light stores level after level in one vector.
    Many {
        tree: MerkleTree<[u8; 32], TreeHasher>,
        width: usize,
    },
}

impl PaddedTree {
    /// Builds the tree over `leaves`, padded with `pad` to the next power of two.
    pub(crate) fn new(leaves: &[Hash], pad: Hash) -> Result<Self, TreeError> {
        let width = leaves.len().next_power_of_two();
        match leaves {
            [] => Err(TreeError::Empty),
            [one] => Ok(Self::One(*one)),
            _ => {
                let padding = std::iter::repeat_n(pad.0, width - leaves.len());
                let tree = MerkleTree::from_iter(leaves.iter().map(|h| h.0).chain(padding));
                Ok(Self::Many { tree, width })
            }
        }
    }

    pub(crate) fn root(&self) -> Hash {
        match self {
            Self::One(h) => *h,
            Self::Many { tree, .. } => Hash(tree.root()),
        }
    }

    /// Levels between the leaves and the root.
    pub(crate) fn depth(&self) -> u32 {
        match self {
            Self::One(_) => 0,
            Self::Many { width, .. } => width.trailing_zeros(),
        }
    }

    /// Node `index` of `level` (0 = leaves), or `None` outside the tree.
    pub(crate) fn node(&self, level: u32, index: u64) -> Option<Hash> {
        match self {
            Self::One(h) => (level == 0 && index == 0).then_some(*h),
            Self::Many { tree, width } => {
                let width = *width as u64;
                if level > self.depth() || index >= width >> level {
                    return None;
                }
                // Level l starts after levels 0..l: w + w/2 + … = 2w - 2w/2^l.
                let base = 2 * width - ((2 * width) >> level);
                tree.get(usize::try_from(base + index).ok()?)
                    .map(|n| Hash(*n))
            }
        }
    }

    /// The sibling path of leaf `index`, bottom up.
    pub(crate) fn path(&self, index: u64) -> Option<Vec<Hash>> {
        (0..self.depth())
            .map(|level| self.node(level, (index >> level) ^ 1))
            .collect()
    }
}

/// Recomputes a root from a leaf, its index and its sibling path (bottom up).
pub fn root_from_path(leaf: Hash, index: u64, path: &[Hash]) -> Hash {
    path.iter()
        .enumerate()
        .fold(leaf, |node, (level, sibling)| {
            if (index >> level) & 1 == 0 {
                node_hash(&node, sibling)
            } else {
                node_hash(sibling, &node)
            }
        })
}

/// The subtree of one block: 256 cell leaves, 8 levels.
#[derive(Debug, Clone)]
pub struct BlockTree(PaddedTree);

impl BlockTree {
    /// Hashes the block's cells and builds the subtree.
    pub fn new(block: &[u8; BLOCK_SIZE]) -> Self {
        let leaves: Vec<Hash> = cell_pairs(block)
            .iter()
            .flat_map(|c| <[Hash; 2]>::from(leaf_hash_pair(&c[0], &c[1])))
            .collect();
        // 256 leaves, a power of two: no padding, never empty.
        Self(PaddedTree::new(&leaves, Hash::default()).expect("a block has 256 cells"))
    }

    /// The block root.
    pub fn root(&self) -> Hash {
        self.0.root()
    }

    /// Node `index` of `level` inside the block (level 0 = cell leaves, level 8 = block root).
    pub fn node(&self, level: u32, index: u64) -> Option<Hash> {
        self.0.node(level, index)
    }
}

/// Root of a block's subtree: [`BlockTree::root`] without keeping the tree, every hash computed
/// two at a time ([`leaf_hash_pair`], [`node_hash_pair`]) in one array on the stack. The hot path
/// of packing, filling, downloading and scrubbing.
pub fn block_root(block: &[u8; BLOCK_SIZE]) -> Hash {
    let mut level = [Hash::default(); CELLS_PER_BLOCK];
    for (out, cells) in level
        .as_chunks_mut::<2>()
        .0
        .iter_mut()
        .zip(cell_pairs(block))
    {
        (out[0], out[1]) = leaf_hash_pair(&cells[0], &cells[1]);
    }
    // Level by level in place: node i of the next level is written only after nodes 2i and
    // 2i + 1 were read, and no later pair reads below 2i + 4.
    let mut width = CELLS_PER_BLOCK;
    while width > 2 {
        for i in (0..width / 2).step_by(2) {
            let (a, b) = node_hash_pair(
                [&level[2 * i], &level[2 * i + 1]],
                [&level[2 * i + 2], &level[2 * i + 3]],
            );
            (level[i], level[i + 1]) = (a, b);
        }
        width /= 2;
    }
    node_hash(&level[0], &level[1])
}

/// A block's cells, two by two.
fn cell_pairs(block: &[u8; BLOCK_SIZE]) -> &[[[u8; CELL_SIZE]; 2]] {
    block.as_chunks::<CELL_SIZE>().0.as_chunks::<2>().0
}

/// Root of an all-zero block: the padding leaf of the tree above the block roots.
pub fn zero_block_root() -> Hash {
    static ROOT: OnceLock<Hash> = OnceLock::new();
    *ROOT.get_or_init(|| block_root(&[0u8; BLOCK_SIZE]))
}

/// A slot tree as a host keeps it: the block roots and every node above them.
///
/// The slot is zero-padded to a power-of-two number of blocks, so the padding leaf is the leaf of
/// an all-zero cell and the tree is exactly the cell tree of the zero-padded slot.
#[derive(Debug, Clone)]
pub struct SlotTree {
    blocks: u64,
    upper: PaddedTree,
}

impl SlotTree {
    /// Builds the tree above `block_roots` (one per block of the slot, in order).
    pub fn from_block_roots(block_roots: &[Hash]) -> Result<Self, TreeError> {
        let blocks = block_roots.len() as u64;
        if blocks > MAX_SLOT_BLOCKS {
            return Err(TreeError::TooManyBlocks(blocks));
        }
        let upper = PaddedTree::new(block_roots, zero_block_root())?;
        Ok(Self { blocks, upper })
    }

    /// The slot root.
    pub fn root(&self) -> Hash {
        self.upper.root()
    }

    /// Blocks in the slot (`S`).
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Cells in the slot (`256 · S`).
    pub fn cell_count(&self) -> u64 {
        self.blocks * CELLS_PER_BLOCK as u64
    }

    /// Root of block `index`.
    pub fn block_root(&self, index: u64) -> Option<Hash> {
        (index < self.blocks)
            .then(|| self.upper.node(0, index))
            .flatten()
    }

    /// Levels from the cells to the slot root.
    pub fn depth(&self) -> u32 {
        BLOCK_TREE_DEPTH + self.upper.depth()
    }

    /// Node `index` of `level` at or above the block roots (`level ≥ 8`).
    pub(crate) fn upper_node(&self, level: u32, index: u64) -> Option<Hash> {
        self.upper.node(level.checked_sub(BLOCK_TREE_DEPTH)?, index)
    }

    /// The path of block `index`'s root up to the slot root.
    pub fn block_path(&self, index: u64) -> Option<Vec<Hash>> {
        (index < self.blocks)
            .then(|| self.upper.path(index))
            .flatten()
    }
}

/// Computes a slot root from block roots as they stream by, in O(log S) memory.
///
/// Written by hand because merkle_light (like [`SlotTree`]) keeps every node, which for a packer
/// or a verifier that only needs the root would cost 64 bytes per block of every slot in flight.
/// It gives exactly [`SlotTree::root`] (a property test checks this).
#[derive(Debug, Clone, Default)]
pub struct RootAccumulator {
    /// Roots of complete subtrees, levels strictly decreasing (the binary digits of `count`).
    stack: Vec<(u32, Hash)>,
    count: u64,
}

impl RootAccumulator {
    /// Adds the next block root.
    pub fn push(&mut self, block_root: Hash) {
        let mut node = (0, block_root);
        while let Some(&(level, left)) = self.stack.last() {
            if level != node.0 {
                break;
            }
            self.stack.pop();
            node = (level + 1, node_hash(&left, &node.1));
        }
        self.stack.push(node);
        self.count += 1;
    }

    /// Block roots pushed so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The slot root over the pushed block roots, zero-block padded; `None` if none were pushed.
    pub fn finish(mut self) -> Option<Hash> {
        let target = self.count.next_power_of_two().trailing_zeros();
        let (mut level, mut hash) = self.stack.pop()?;
        let mut zero = zero_block_root();
        for _ in 0..level {
            zero = node_hash(&zero, &zero);
        }
        while level < target {
            hash = match self.stack.last() {
                Some(&(l, left)) if l == level => {
                    self.stack.pop();
                    node_hash(&left, &hash)
                }
                _ => node_hash(&hash, &zero),
            };
            zero = node_hash(&zero, &zero);
            level += 1;
        }
        Some(hash)
    }
}

/// The dataset tree: the `k + m` slot roots as leaves, padded with zero hashes.
#[derive(Debug, Clone)]
pub struct DatasetTree {
    slots: usize,
    tree: PaddedTree,
}

impl DatasetTree {
    /// Builds the tree over the slot roots, in slot order.
    pub fn new(slot_roots: &[Hash]) -> Result<Self, TreeError> {
        Ok(Self {
            slots: slot_roots.len(),
            tree: PaddedTree::new(slot_roots, Hash::default())?,
        })
    }

    /// The dataset root.
    pub fn root(&self) -> Hash {
        self.tree.root()
    }

    /// The path of slot `index`'s root to the dataset root, bottom up.
    pub fn path(&self, index: usize) -> Option<Vec<Hash>> {
        (index < self.slots)
            .then(|| self.tree.path(index as u64))
            .flatten()
    }
}

/// Whether `slot_root` sits at `slot_index` under `dataset_root` with a dataset of `slots` slots.
pub fn verify_slot_path(
    dataset_root: &Hash,
    slots: usize,
    slot_index: usize,
    slot_root: &Hash,
    path: &[Hash],
) -> bool {
    slot_index < slots
        && path.len() == slots.next_power_of_two().trailing_zeros() as usize
        && root_from_path(*slot_root, slot_index as u64, path) == *dataset_root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| Hash([i as u8 + 1; 32])).collect()
    }

    /// The textbook definition, to check the padded tree against.
    fn reference_root(mut level: Vec<Hash>, pad: Hash) -> Hash {
        level.resize(level.len().next_power_of_two(), pad);
        while level.len() > 1 {
            level = level.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
        }
        level[0]
    }

    #[test]
    fn padded_tree_matches_reference_and_paths_verify() {
        for n in 1..=9 {
            let l = leaves(n);
            let t = PaddedTree::new(&l, Hash([0xee; 32])).expect("non-empty");
            assert_eq!(
                t.root(),
                reference_root(l.clone(), Hash([0xee; 32])),
                "n = {n}"
            );
            for (i, leaf) in l.iter().enumerate() {
                let path = t.path(i as u64).expect("in range");
                assert_eq!(root_from_path(*leaf, i as u64, &path), t.root());
            }
            assert_eq!(t.node(t.depth(), 0), Some(t.root()));
            assert_eq!(t.node(t.depth() + 1, 0), None);
        }
        assert!(matches!(
            PaddedTree::new(&[], Hash::default()),
            Err(TreeError::Empty)
        ));
    }

    #[test]
    fn block_root_matches_the_block_tree_and_the_textbook_root() {
        let mut block = [0u8; BLOCK_SIZE];
        for seed in 0..8u32 {
            for (i, b) in block.iter_mut().enumerate() {
                *b = (i as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(seed)
                    .to_le_bytes()[2];
            }
            let leaves = block
                .as_chunks::<CELL_SIZE>()
                .0
                .iter()
                .map(crate::hash::leaf_hash)
                .collect();
            let root = block_root(&block);
            assert_eq!(root, reference_root(leaves, Hash::default()));
            assert_eq!(root, BlockTree::new(&block).root());
        }
    }

    #[test]
    fn zero_padding_equals_zero_blocks() {
        let mut block = [0u8; BLOCK_SIZE];
        block[7] = 1;
        let one = block_root(&block);
        let padded = SlotTree::from_block_roots(&[one, one, one]).expect("valid");
        let explicit =
            SlotTree::from_block_roots(&[one, one, one, zero_block_root()]).expect("valid");
        assert_eq!(padded.root(), explicit.root());
        assert_eq!(padded.depth(), 10);
        assert_eq!(padded.block_root(3), None);
        let single = SlotTree::from_block_roots(&[one]).expect("valid");
        assert_eq!((single.root(), single.depth()), (one, 8));
    }

    #[test]
    fn accumulator_matches_slot_tree() {
        for n in 1..=33 {
            let roots = leaves(n);
            let mut acc = RootAccumulator::default();
            roots.iter().for_each(|r| acc.push(*r));
            let tree = SlotTree::from_block_roots(&roots).expect("valid");
            assert_eq!(acc.finish(), Some(tree.root()), "n = {n}");
        }
        assert_eq!(RootAccumulator::default().finish(), None);
    }

    #[test]
    fn dataset_paths_verify_and_reject_wrong_positions() {
        let roots = leaves(6);
        let t = DatasetTree::new(&roots).expect("non-empty");
        for (i, r) in roots.iter().enumerate() {
            let path = t.path(i).expect("in range");
            assert!(verify_slot_path(&t.root(), 6, i, r, &path));
            assert!(!verify_slot_path(&t.root(), 6, (i + 1) % 6, r, &path));
            assert!(!verify_slot_path(
                &t.root(),
                6,
                i,
                &roots[(i + 1) % 6],
                &path
            ));
        }
        assert!(t.path(6).is_none());
    }
}
