//! Geometry of a dataset: blocks, cells, slots and stripes (see `docs/protocol.md`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Bytes per block: the unit of transfer and of erasure coding.
pub const BLOCK_SIZE: usize = 64 * 1024;
/// Bytes per cell: the unit a storage challenge samples.
pub const CELL_SIZE: usize = 256;
/// Cells per block.
pub const CELLS_PER_BLOCK: usize = BLOCK_SIZE / CELL_SIZE;
/// Levels of a block's subtree (`log2(CELLS_PER_BLOCK)`).
pub const BLOCK_TREE_DEPTH: u32 = CELLS_PER_BLOCK.trailing_zeros();
/// Most slots (`k + m`) a dataset may have. Bounded so that the dataset tree, the contract's loops
/// and the erasure coder's work per stripe stay small.
pub const MAX_SLOTS: usize = 256;
/// Most blocks in one slot (2^22 blocks = 256 GiB). Bounds the in-memory tree above the block
/// roots a host keeps per slot (2^23 nodes, 256 MiB at the limit).
pub const MAX_SLOT_BLOCKS: u64 = 1 << 22;

/// A slot's position in its dataset: data slots are `0..k`, parity slots `k..k+m`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct SlotIndex(pub u16);

impl fmt::Display for SlotIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A cell's position in its slot (leaf index of the slot tree).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct CellIndex(pub u64);

impl CellIndex {
    /// The block holding this cell.
    pub const fn block(self) -> u64 {
        self.0 / CELLS_PER_BLOCK as u64
    }

    /// The cell's position inside its block.
    pub const fn within_block(self) -> usize {
        (self.0 % CELLS_PER_BLOCK as u64) as usize
    }
}

impl fmt::Display for CellIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a layout is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// `k = 0`.
    #[error("the number of data slots (k) must be at least 1")]
    NoDataSlots,
    /// `m = 0`.
    #[error(
        "the number of parity slots (m) must be at least 1: with none, losing any host loses the dataset"
    )]
    NoParitySlots,
    /// `k + m` above [`MAX_SLOTS`].
    #[error("k + m = {slots} slots is more than the supported maximum of {MAX_SLOTS}")]
    TooManySlots {
        /// The requested `k + m`.
        slots: usize,
    },
    /// Nothing to store.
    #[error("the dataset is empty: there is nothing to store")]
    EmptyDataset,
    /// A slot would exceed [`MAX_SLOT_BLOCKS`].
    #[error(
        "each slot would hold {blocks} blocks, more than the maximum of {MAX_SLOT_BLOCKS} (256 GiB); use more data slots"
    )]
    SlotTooLarge {
        /// Blocks per slot that the dataset would need.
        blocks: u64,
    },
}

/// The shape of an encoded dataset: `k` data slots and `m` parity slots of `slot_blocks` blocks.
///
/// The dataset byte stream is zero-padded to `k · slot_blocks` blocks; data slot `i` holds stream
/// blocks `[i·S, (i+1)·S)`; stripe `j` is block `j` of every slot, and parity slots hold the
/// Reed–Solomon parity of each stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    data_slots: u16,
    parity_slots: u16,
    slot_blocks: u64,
}

impl Layout {
    /// A layout with `k` data slots, `m` parity slots and `slot_blocks` blocks per slot.
    pub fn new(k: usize, m: usize, slot_blocks: u64) -> Result<Self, LayoutError> {
        if k == 0 {
            return Err(LayoutError::NoDataSlots);
        }
        if m == 0 {
            return Err(LayoutError::NoParitySlots);
        }
        let slots = k.saturating_add(m);
        if slots > MAX_SLOTS {
            return Err(LayoutError::TooManySlots { slots });
        }
        if slot_blocks == 0 {
            return Err(LayoutError::EmptyDataset);
        }
        if slot_blocks > MAX_SLOT_BLOCKS {
            return Err(LayoutError::SlotTooLarge {
                blocks: slot_blocks,
            });
        }
        // Both fit: slots ≤ MAX_SLOTS = 256.
        Ok(Self {
            data_slots: k as u16,
            parity_slots: m as u16,
            slot_blocks,
        })
    }

    /// The smallest layout with `k` data and `m` parity slots that holds `dataset_bytes` bytes.
    pub fn for_dataset(k: usize, m: usize, dataset_bytes: u64) -> Result<Self, LayoutError> {
        if k == 0 {
            return Err(LayoutError::NoDataSlots);
        }
        let blocks = dataset_bytes.div_ceil(BLOCK_SIZE as u64);
        Self::new(k, m, blocks.div_ceil(k as u64))
    }

    /// `k`: slots holding the dataset bytes themselves.
    pub const fn data_slots(&self) -> usize {
        self.data_slots as usize
    }

    /// `m`: slots holding parity; any `m` slots may be lost.
    pub const fn parity_slots(&self) -> usize {
        self.parity_slots as usize
    }

    /// `k + m`.
    pub const fn slots(&self) -> usize {
        self.data_slots as usize + self.parity_slots as usize
    }

    /// `S`: blocks per slot (= stripes).
    pub const fn slot_blocks(&self) -> u64 {
        self.slot_blocks
    }

    /// Bytes per slot.
    pub const fn slot_bytes(&self) -> u64 {
        self.slot_blocks * BLOCK_SIZE as u64
    }

    /// Cells per slot, the range challenges sample from.
    pub const fn cell_count(&self) -> u64 {
        self.slot_blocks * CELLS_PER_BLOCK as u64
    }

    /// Bytes of the padded dataset stream (`k · S` blocks).
    pub const fn stream_bytes(&self) -> u64 {
        self.data_slots as u64 * self.slot_bytes()
    }

    /// Depth of a slot tree: `8 + ceil(log2(S))`.
    pub const fn slot_tree_depth(&self) -> u32 {
        slot_tree_depth(self.slot_blocks)
    }
}

/// Depth of the tree of a slot of `slot_blocks` blocks: `8 + ceil(log2(slot_blocks))`.
pub const fn slot_tree_depth(slot_blocks: u64) -> u32 {
    BLOCK_TREE_DEPTH + slot_blocks.next_power_of_two().trailing_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry() {
        let l = Layout::for_dataset(4, 2, 5 * BLOCK_SIZE as u64 + 1).expect("valid");
        assert_eq!(l.slot_blocks(), 2); // 6 blocks over 4 data slots
        assert_eq!(l.slots(), 6);
        assert_eq!(l.cell_count(), 512);
        assert_eq!(l.slot_tree_depth(), 9);
        assert_eq!(l.stream_bytes(), 8 * BLOCK_SIZE as u64);
        assert_eq!(slot_tree_depth(1), 8);
        assert_eq!(slot_tree_depth(3), 10);
        assert_eq!(slot_tree_depth(16384), 22);
        assert_eq!(CellIndex(513).block(), 2);
        assert_eq!(CellIndex(513).within_block(), 1);
    }

    #[test]
    fn rejects_bad_parameters() {
        assert_eq!(Layout::for_dataset(0, 2, 10), Err(LayoutError::NoDataSlots));
        assert_eq!(
            Layout::for_dataset(4, 0, 10),
            Err(LayoutError::NoParitySlots)
        );
        assert_eq!(
            Layout::for_dataset(200, 57, 10),
            Err(LayoutError::TooManySlots { slots: 257 })
        );
        assert!(Layout::for_dataset(200, 56, 10).is_ok());
        assert_eq!(Layout::for_dataset(4, 2, 0), Err(LayoutError::EmptyDataset));
        assert_eq!(
            Layout::new(1, 1, MAX_SLOT_BLOCKS + 1),
            Err(LayoutError::SlotTooLarge {
                blocks: MAX_SLOT_BLOCKS + 1
            })
        );
        assert_eq!(
            Layout::new(usize::MAX, usize::MAX, 1),
            Err(LayoutError::TooManySlots { slots: usize::MAX })
        );
    }
}
