//! Wire messages of `/hoard/block/1` and `/hoard/audit/1`, CBOR-encoded by the request-response
//! codec. Byte fields go through `serde_bytes` so they travel as CBOR byte strings, not arrays.

use hoard_prover::{BLOCK_SIZE, Hash, block_root, tree::root_from_path};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Most blocks one [`BlockRequest::Blocks`] may ask for (16 × 64 KiB = 1 MiB per response).
pub const MAX_BLOCKS_PER_REQUEST: u32 = 16;

/// Longest sibling path [`BlockWithPath::verify`] accepts: a slot has at most 2^22 blocks, so a
/// real path has at most 22 entries; 32 leaves room without letting a peer make us hash a lot.
pub const MAX_PATH_LEN: usize = 32;

/// A request on `/hoard/block/1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockRequest {
    /// The manifest of a dataset; `dataset` is its id, the SHA-256 of the encoded manifest.
    Manifest {
        /// Dataset id.
        dataset: [u8; 32],
    },
    /// Blocks `first .. first + count` of one slot, each with its path to the slot root.
    Blocks {
        /// Dataset id.
        dataset: [u8; 32],
        /// Slot index within the dataset.
        slot: u16,
        /// Index of the first block within the slot.
        first: u64,
        /// Number of blocks, `1 ..= MAX_BLOCKS_PER_REQUEST`.
        count: u32,
    },
}

impl BlockRequest {
    /// Checks the bounds a serving node relies on; the actor answers invalid requests itself.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Self::Manifest { .. } => Ok(()),
            Self::Blocks { first, count, .. } => {
                if *count == 0 || *count > MAX_BLOCKS_PER_REQUEST {
                    return Err(format!(
                        "block count {count} outside 1..={MAX_BLOCKS_PER_REQUEST}"
                    ));
                }
                if first.checked_add(u64::from(*count)).is_none() {
                    return Err("block range overflows".to_owned());
                }
                Ok(())
            }
        }
    }
}

/// A response on `/hoard/block/1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockResponse {
    /// The encoded manifest (at most 64 MiB, hoard-dataset's `MAX_MANIFEST_BYTES`).
    Manifest(ByteBuf),
    /// The requested blocks, in order.
    Blocks(Vec<BlockWithPath>),
    /// The request was refused: "not found", "busy", …
    Error(String),
}

impl BlockResponse {
    /// Payload bytes (manifest or block data) carried, for the byte counters.
    pub fn payload_len(&self) -> u64 {
        match self {
            Self::Manifest(bytes) => bytes.len() as u64,
            Self::Blocks(blocks) => blocks.iter().map(|b| b.data.len() as u64).sum(),
            Self::Error(_) => 0,
        }
    }

    /// True for [`BlockResponse::Error`].
    pub fn is_error(&self) -> bool {
        matches!(self, Self::Error(_))
    }
}

/// One block of a slot and the sibling path from its block root up to the slot root.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockWithPath {
    /// Block index within the slot.
    pub index: u64,
    /// The block, exactly 65,536 bytes.
    pub data: ByteBuf,
    /// Siblings from the block root up to the slot root (bottom up).
    pub path: Vec<[u8; 32]>,
}

impl std::fmt::Debug for BlockWithPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockWithPath")
            .field("index", &self.index)
            .field("data_len", &self.data.len())
            .field("path_len", &self.path.len())
            .finish()
    }
}

impl BlockWithPath {
    /// True iff `data` is a full block whose root, hashed up `path` at position `index`, gives
    /// `slot_root`.
    ///
    /// Rejects data of the wrong length, paths longer than [`MAX_PATH_LEN`], and indices with bits
    /// above the path's depth (which would otherwise let block `i` pass as block `i + 2^depth`).
    /// The caller still checks that `index` is the block it asked for.
    pub fn verify(&self, slot_root: &Hash) -> bool {
        let Ok(block) = <&[u8; BLOCK_SIZE]>::try_from(self.data.as_slice()) else {
            return false;
        };
        if self.path.len() > MAX_PATH_LEN {
            return false;
        }
        if self.path.len() < 64 && self.index >> self.path.len() != 0 {
            return false;
        }
        let path: Vec<Hash> = self.path.iter().map(|sibling| Hash(*sibling)).collect();
        root_from_path(block_root(block), self.index, &path) == *slot_root
    }
}

/// A request on `/hoard/audit/1`: prove `samples` cells of a slot for `seed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRequest {
    /// Dataset id.
    pub dataset: [u8; 32],
    /// Slot index within the dataset.
    pub slot: u16,
    /// Challenge seed.
    pub seed: [u8; 32],
    /// Number of cells to sample.
    pub samples: u16,
}

/// A response on `/hoard/audit/1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditResponse {
    /// A direct proof in its wire form (docs/protocol.md section 6).
    Proof(ByteBuf),
    /// The audit was refused.
    Error(String),
}

impl AuditResponse {
    /// Payload bytes (the proof) carried, for the byte counters.
    pub fn payload_len(&self) -> u64 {
        match self {
            Self::Proof(bytes) => bytes.len() as u64,
            Self::Error(_) => 0,
        }
    }

    /// True for [`AuditResponse::Error`].
    pub fn is_error(&self) -> bool {
        matches!(self, Self::Error(_))
    }
}

#[cfg(test)]
mod tests {
    use hoard_prover::SlotTree;

    use super::*;

    fn slot(blocks: u8) -> (Vec<Vec<u8>>, SlotTree) {
        let data: Vec<Vec<u8>> = (0..blocks).map(|i| vec![i; BLOCK_SIZE]).collect();
        let roots: Vec<Hash> = data
            .iter()
            .map(|b| block_root(b.as_slice().try_into().expect("block size")))
            .collect();
        (data, SlotTree::from_block_roots(&roots).expect("tree"))
    }

    fn with_path(data: &[Vec<u8>], tree: &SlotTree, index: u64) -> BlockWithPath {
        BlockWithPath {
            index,
            data: ByteBuf::from(data[index as usize].clone()),
            path: tree
                .block_path(index)
                .expect("index in range")
                .iter()
                .map(|h| h.0)
                .collect(),
        }
    }

    #[test]
    fn verify_accepts_every_block_and_rejects_tampering() {
        let (data, tree) = slot(5);
        let root = tree.root();
        for index in 0..5 {
            let block = with_path(&data, &tree, index);
            assert!(block.verify(&root), "block {index}");

            let mut flipped = block.clone();
            flipped.data[100] ^= 1;
            assert!(!flipped.verify(&root));

            let mut short = block.clone();
            short.data.truncate(BLOCK_SIZE - 1);
            assert!(!short.verify(&root));

            let mut moved = block.clone();
            moved.index ^= 1;
            assert!(!moved.verify(&root));

            let mut aliased = block.clone();
            aliased.index += 1 << aliased.path.len();
            assert!(!aliased.verify(&root));

            let mut bad_path = block;
            bad_path.path[0][0] ^= 1;
            assert!(!bad_path.verify(&root));
        }
    }

    #[test]
    fn validate_bounds_block_count() {
        let ok = BlockRequest::Blocks {
            dataset: [0; 32],
            slot: 0,
            first: 0,
            count: 16,
        };
        assert!(ok.validate().is_ok());
        let zero = BlockRequest::Blocks {
            dataset: [0; 32],
            slot: 0,
            first: 0,
            count: 0,
        };
        assert!(zero.validate().is_err());
        let many = BlockRequest::Blocks {
            dataset: [0; 32],
            slot: 0,
            first: 0,
            count: 17,
        };
        assert!(many.validate().is_err());
        let overflow = BlockRequest::Blocks {
            dataset: [0; 32],
            slot: 0,
            first: u64::MAX,
            count: 1,
        };
        assert!(overflow.validate().is_err());
    }
}
