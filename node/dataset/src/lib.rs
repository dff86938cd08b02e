//! hoard's dataset pipeline: a file or directory tree in, `k + m` verified slots out, and back.
//!
//! ```text
//!  pack:   input ─scan─▶ entries ─StreamFiles─▶ stripe batch ─Reed–Solomon─▶ k+m blocks
//!          ─hash (all cores)─▶ block roots ─▶ slot-NNN.bin / .roots ─▶ manifest.bin ─▶ rename
//!  unpack: manifest.bin ─▶ check slots (size, roots → slot root) ─▶ per batch: read k slots,
//!          check each block against its root, decode if a data slot is missing ─▶ files ─▶ rename
//! ```
//!
//! - [`manifest`]: the canonical manifest (files, folders, links inside the dataset) and the
//!   dataset id.
//! - [`pack()`] / [`unpack()`]: the two directions; [`PackedDataset`]: a packed folder's slots.
//! - [`Restore`]: the files written straight from verified blocks in any order (a download
//!   that needs no decoding), resumable; [`select`]: the entries some paths pick.
//! - Memory is one stripe batch (about 32 MiB) whatever the dataset size.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod direct;
mod error;
mod hashing;
pub mod manifest;
mod pack;
mod packed;
mod progress;
mod rebuild;
mod restore;
mod stream;
mod unpack;

pub use error::{DatasetError, LinkProblem, SlotProblem};
pub use manifest::{COMPACT_MANIFEST_FORMAT, DatasetId, Entry, EntryKind, Manifest};
pub use pack::{BATCH_BYTES, Packed, pack};
pub use packed::{
    MANIFEST_FILE, PackedDataset, SlotFiles, slot_compact_roots_file, slot_data_file,
    slot_roots_file,
};
pub use progress::{NoProgress, Progress};
pub use rebuild::{rebuild_slot, rebuild_stripe};
pub use restore::{Restore, covering_blocks, normalise_path, select};
pub use stream::followed_links;
pub use unpack::{Unpacked, unpack, unpack_verified};
