//! Wire messages of `/hoard/block/1` and `/hoard/audit/1`, CBOR-encoded by the request-response
//! codec. Byte fields travel as CBOR byte strings, not arrays: through `serde_bytes`, or for a
//! block's data through the codec's `shared_bytes` (decoded as a slice of the receive buffer).

use bytes::Bytes;
use hoard_prover::{
    BLOCK_SIZE, Challenge, DatasetId, Hash, Seed, SlotIndex, block_root, tree::root_from_path,
};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Most blocks one [`BlockRequest::Blocks`] may ask for (16 × 64 KiB = 1 MiB per response).
pub const MAX_BLOCKS_PER_REQUEST: u32 = 16;

/// Longest sibling path [`BlockWithPath::verify`] accepts: a slot has at most 2^22 blocks, so a
/// real path has at most 22 entries; 32 leaves room without letting a peer make us hash a lot.
pub const MAX_PATH_LEN: usize = 32;

/// Most ranges one [`BlockResponse::Have`] carries (16 bytes each): a node whose blocks are more
/// scattered than this reports only the first ones (claiming less than it holds is always safe).
pub const MAX_HAVE_RANGES: usize = 65_536;

/// A request on `/hoard/block/1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockRequest {
    /// The manifest of a dataset; `dataset` is its id, the SHA-256 of the encoded manifest.
    Manifest {
        /// Dataset id.
        dataset: DatasetId,
    },
    /// Blocks `first .. first + count` of one slot, each with its path to the slot root.
    Blocks {
        /// Dataset id.
        dataset: DatasetId,
        /// Slot index within the dataset.
        slot: SlotIndex,
        /// Index of the first block within the slot.
        first: u64,
        /// Number of blocks, `1 ..= MAX_BLOCKS_PER_REQUEST`.
        count: u32,
    },
    /// Which blocks of the dataset the peer holds and serves now (its have-map): a host or renter
    /// answers whole slots, a reader the ranges in its cache. Appended last so the variant
    /// indices of the older requests are unchanged on the wire.
    Have {
        /// Dataset id.
        dataset: DatasetId,
    },
}

impl BlockRequest {
    /// Checks the bounds a serving node relies on; the actor answers invalid requests itself.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Self::Manifest { .. } | Self::Have { .. } => Ok(()),
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
    /// The answer to [`BlockRequest::Have`]: for each slot the peer serves blocks of, the block
    /// ranges it holds (at most [`MAX_HAVE_RANGES`] in all).
    Have(Vec<SlotHave>),
}

/// The blocks of one slot a peer holds: half-open ranges `[start, end)` of block indices,
/// ascending and not overlapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotHave {
    /// Slot index within the dataset.
    pub slot: SlotIndex,
    /// `[start, end)` block ranges.
    pub ranges: Vec<[u64; 2]>,
}

impl SlotHave {
    /// The ranges as given by a peer, cleaned: empty, reversed and out-of-slot parts dropped
    /// (`blocks` = blocks per slot), sorted, overlaps merged. Never trusted beyond that: a block
    /// a peer claims is still checked by its path when it comes.
    pub fn normalised(&self, blocks: u64) -> Vec<[u64; 2]> {
        let mut r: Vec<[u64; 2]> = self
            .ranges
            .iter()
            .map(|[a, b]| [*a, (*b).min(blocks)])
            .filter(|[a, b]| a < b)
            .collect();
        r.sort_unstable();
        let mut out: Vec<[u64; 2]> = Vec::with_capacity(r.len());
        for [a, b] in r {
            match out.last_mut() {
                Some(last) if a <= last[1] => last[1] = last[1].max(b),
                _ => out.push([a, b]),
            }
        }
        out
    }
}

impl BlockResponse {
    /// Payload bytes (manifest or block data) carried, for the byte counters.
    pub fn payload_len(&self) -> u64 {
        match self {
            Self::Manifest(bytes) => bytes.len() as u64,
            Self::Blocks(blocks) => blocks.iter().map(|b| b.data.len() as u64).sum(),
            Self::Error(_) | Self::Have(_) => 0,
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
    /// The block, exactly 65,536 bytes (decoded as a slice of the message's receive buffer).
    #[serde(with = "crate::codec::shared_bytes")]
    pub data: Bytes,
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

/// Why a received block was rejected: the peer that sent it is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadBlock {
    /// Not the block that was asked for.
    #[error("block {got} instead of block {want}")]
    WrongIndex {
        /// The index asked for.
        want: u64,
        /// The index sent.
        got: u64,
    },
    /// Not 65,536 bytes.
    #[error("block {index} has {len} bytes")]
    WrongLength {
        /// The block.
        index: u64,
        /// Its length.
        len: usize,
    },
    /// A path longer than any slot's, or too short for the index.
    #[error("block {index} comes with a path of {len} siblings")]
    BadPath {
        /// The block.
        index: u64,
        /// The path's length.
        len: usize,
    },
    /// Hashed up its path, it does not give the slot root.
    #[error("block {index} does not match the slot root")]
    RootMismatch {
        /// The block.
        index: u64,
    },
}

impl BlockWithPath {
    /// The one check of a received block, used by every download, fill and repair: `data` is a
    /// full block, it is block `want`, and its root hashed up `path` gives `slot_root`. Returns
    /// the block's root (a host keeps it in the slot's roots file).
    ///
    /// Rejects paths longer than [`MAX_PATH_LEN`] (a peer could otherwise make us hash a lot) and
    /// indices with bits above the path's depth (which would otherwise let block `i` pass as
    /// block `i + 2^depth`).
    pub fn verify(&self, slot_root: &Hash, want: u64) -> Result<Hash, BadBlock> {
        let index = self.index;
        if index != want {
            return Err(BadBlock::WrongIndex { want, got: index });
        }
        let block =
            <&[u8; BLOCK_SIZE]>::try_from(&self.data[..]).map_err(|_| BadBlock::WrongLength {
                index,
                len: self.data.len(),
            })?;
        let len = self.path.len();
        if len > MAX_PATH_LEN || index.checked_shr(len as u32).unwrap_or(0) != 0 {
            return Err(BadBlock::BadPath { index, len });
        }
        let root = block_root(block);
        let path: Vec<Hash> = self.path.iter().map(|sibling| Hash(*sibling)).collect();
        if root_from_path(root, index, &path) != *slot_root {
            return Err(BadBlock::RootMismatch { index });
        }
        Ok(root)
    }
}

/// A request on `/hoard/audit/1`: prove `samples` cells of a slot for `seed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRequest {
    /// Dataset id.
    pub dataset: DatasetId,
    /// Slot index within the dataset.
    pub slot: SlotIndex,
    /// Challenge seed.
    pub seed: Seed,
    /// Number of cells to sample.
    pub samples: u16,
}

impl AuditRequest {
    /// Most cells one audit may ask for: a bound on the work a peer can make a host do.
    pub const MAX_SAMPLES: u16 = 128;

    /// The challenge both sides prove and verify: [`Challenge::audit`] over a slot of
    /// `cell_count` cells. `None` for a sample count outside `1..=MAX_SAMPLES` or an empty slot.
    pub fn challenge(&self, cell_count: u64) -> Option<Challenge> {
        if self.samples == 0 || self.samples > Self::MAX_SAMPLES {
            return None;
        }
        Some(Challenge::audit(
            self.seed,
            &self.dataset,
            u32::from(self.samples),
            std::num::NonZeroU64::new(cell_count)?,
        ))
    }
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

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The exact bytes of the have-map messages, as `docs/protocol.md` §10 spells them out.
    #[test]
    fn have_messages_encode_as_documented() {
        let request = BlockRequest::Have {
            dataset: DatasetId([1; 32]),
        };
        let bytes = cbor4ii::serde::to_vec(Vec::new(), &request).expect("encode");
        assert_eq!(
            hex(&bytes),
            format!("a1 6448617665 a1 6764617461736574 9820{}", "01".repeat(32)).replace(' ', "")
        );
        let response = BlockResponse::Have(vec![SlotHave {
            slot: SlotIndex(2),
            ranges: vec![[0, 16], [40, 300]],
        }]);
        let bytes = cbor4ii::serde::to_vec(Vec::new(), &response).expect("encode");
        assert_eq!(
            hex(&bytes),
            "a1 6448617665 81 a2 64736c6f74 02 6672616e676573 82 820010 821828 19012c"
                .replace(' ', "")
        );
        let back: BlockResponse = cbor4ii::serde::from_slice(&bytes).expect("decode");
        assert_eq!(back, response);
    }

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
            data: Bytes::from(data[index as usize].clone()),
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
            assert_eq!(
                block.verify(&root, index),
                Ok(tree.block_root(index).expect("in range"))
            );
            assert_eq!(
                block.verify(&root, index + 1),
                Err(BadBlock::WrongIndex {
                    want: index + 1,
                    got: index
                })
            );

            let mut flipped = block.clone();
            let mut data = flipped.data.to_vec();
            data[100] ^= 1;
            flipped.data = data.into();
            assert_eq!(
                flipped.verify(&root, index),
                Err(BadBlock::RootMismatch { index })
            );

            let mut short = block.clone();
            short.data.truncate(BLOCK_SIZE - 1);
            assert!(matches!(
                short.verify(&root, index),
                Err(BadBlock::WrongLength { .. })
            ));

            let mut moved = block.clone();
            moved.index ^= 1;
            assert!(moved.verify(&root, moved.index).is_err());

            let mut aliased = block.clone();
            aliased.index += 1 << aliased.path.len();
            assert!(matches!(
                aliased.verify(&root, aliased.index),
                Err(BadBlock::BadPath { .. })
            ));

            let mut long = block.clone();
            long.path = vec![[0; 32]; MAX_PATH_LEN + 1];
            assert!(matches!(
                long.verify(&root, index),
                Err(BadBlock::BadPath { .. })
            ));

            let mut bad_path = block;
            bad_path.path[0][0] ^= 1;
            assert_eq!(
                bad_path.verify(&root, index),
                Err(BadBlock::RootMismatch { index })
            );
        }
    }

    #[test]
    fn audits_build_one_challenge_for_both_sides() {
        let request = AuditRequest {
            dataset: DatasetId([3; 32]),
            slot: SlotIndex(1),
            seed: Seed([9; 32]),
            samples: 16,
        };
        let c = request.challenge(1024).expect("valid");
        assert_eq!(
            c.slot_id.0, request.dataset.0,
            "the dataset id salts the samples"
        );
        assert_eq!(
            (c.seed, c.samples, c.cell_count.get()),
            (request.seed, 16, 1024)
        );
        assert_eq!(request.challenge(0), None);
        for samples in [0, AuditRequest::MAX_SAMPLES + 1] {
            assert_eq!(
                AuditRequest {
                    samples,
                    ..request.clone()
                }
                .challenge(1024),
                None
            );
        }
    }

    #[test]
    fn have_maps_are_cleaned_before_use() {
        let have = SlotHave {
            slot: SlotIndex(0),
            ranges: vec![[5, 9], [0, 2], [8, 12], [20, 10], [3, 3], [90, 200]],
        };
        assert_eq!(have.normalised(100), vec![[0, 2], [5, 12], [90, 100]]);
        assert!(
            SlotHave {
                slot: SlotIndex(1),
                ranges: vec![[100, 200]]
            }
            .normalised(100)
            .is_empty()
        );
    }

    #[test]
    fn validate_bounds_block_count() {
        let ok = BlockRequest::Blocks {
            dataset: DatasetId([0; 32]),
            slot: SlotIndex(0),
            first: 0,
            count: 16,
        };
        assert!(ok.validate().is_ok());
        let zero = BlockRequest::Blocks {
            dataset: DatasetId([0; 32]),
            slot: SlotIndex(0),
            first: 0,
            count: 0,
        };
        assert!(zero.validate().is_err());
        let many = BlockRequest::Blocks {
            dataset: DatasetId([0; 32]),
            slot: SlotIndex(0),
            first: 0,
            count: 17,
        };
        assert!(many.validate().is_err());
        let overflow = BlockRequest::Blocks {
            dataset: DatasetId([0; 32]),
            slot: SlotIndex(0),
            first: u64::MAX,
            count: 1,
        };
        assert!(overflow.validate().is_err());
    }
}
