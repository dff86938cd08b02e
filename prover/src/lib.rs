//! hoard's commitments and storage proofs. Pure: no I/O, no async; callers hand in bytes.
//!
//! ```text
//!  dataset stream ─▶ k data slots ─(Reed–Solomon, in hoard-dataset)─▶ k+m slots
//!                                                                     │
//!  slot: S blocks of 64 KiB ─▶ 256 cells each ─▶ BlockTree (8 levels) ─▶ block roots
//!                                                                     │
//!                        SlotTree (block roots, padded to 2^n) ─▶ slot root
//!                                                                     │
//!                        DatasetTree (k+m slot roots) ─▶ dataset root (on chain)
//!
//!  period seed + slot id ─▶ Challenge ─▶ cell indices ─▶ DirectProof (cells ‖ siblings) ─▶ verify
//! ```
//!
//! - [`layout`]: sizes and the slot/stripe geometry.
//! - [`hash`]: SHA-256 leaf and node hashing, the 32-byte newtypes.
//! - [`tree`]: block, slot and dataset trees (merkle_light underneath).
//! - [`challenge`]: slot ids, "is a proof due", sample indices (keccak-256, as the contract does).
//! - [`proof`]: direct proofs — creation from a slot tree and its blocks, and verification.
//!
//! The exact encodings are specified in `docs/protocol.md`; `testdata/vectors.json` pins them for
//! the contracts.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod challenge;
pub mod hash;
pub mod layout;
pub mod proof;
pub mod tree;

pub use challenge::{Challenge, DatasetId, RequestId, Seed, SlotId, proof_required, slot_id};
pub use hash::{Hash, leaf_hash, node_hash};
pub use layout::{
    BLOCK_SIZE, CELL_SIZE, CELLS_PER_BLOCK, CellIndex, Layout, LayoutError, MAX_SLOTS, SlotIndex,
};
pub use proof::{DirectProof, ProveError, VerifyError, verify};
pub use tree::{
    BlockTree, DatasetTree, RootAccumulator, SlotTree, TreeError, block_root, verify_slot_path,
};
