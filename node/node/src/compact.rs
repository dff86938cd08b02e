//! Compact-scheme slot data (docs/protocol.md §9.2), shared by the renter and the host: a slot's
//! Poseidon commitment computed from its files, the Poseidon block roots kept next to them
//! (`slot-NNN.croots`), and the renter's pack stage that commits every slot of a packed dataset
//! and rewrites its manifest as format 3.
//!
//! ```text
//!  slot-NNN.bin ─▶ 64 blocks at a time: SHA-256 block roots checked against slot-NNN.roots
//!      ─▶ Poseidon block roots (all cores) ─▶ CommitmentBuilder ─▶ SlotCommitment
//!      └─▶ slot-NNN.croots (temp → fsync → rename)
//!  renter: pack ─▶ commit_packed (every slot) ─▶ manifest format 3 (commitments) ─▶ compactRoot
//!  host:   fetched slot ─▶ commit_slot ─▶ equal to the manifest's commitment? ─▶ fillCompactSlot
//!          each period: open_tree (croots, checked against the commitment) ─▶ witnesses
//! ```
//!
//! Memory stays bounded whatever the slot size: one batch of blocks (4 MiB) plus 32 bytes per
//! block of roots (512 KiB for a 1 GiB slot).

use std::{
    fs::File,
    io::Write as _,
    path::{Path, PathBuf},
};

use hoard_compact::{
    CompactSlotTree, Fr, MAX_BLOCKS, SlotCommitment, TreeError, fr_from_bytes, fr_to_bytes,
    tree::COMMIT_BATCH_BLOCKS,
};
use hoard_dataset::{
    COMPACT_MANIFEST_FORMAT, DatasetError, MANIFEST_FILE, Manifest, PackedDataset, Progress,
    SlotProblem, slot_compact_roots_file,
};
use hoard_prover::{BLOCK_SIZE, Hash, SlotIndex};

/// Why a compact commitment could not be made, read or trusted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CompactError {
    /// The packed folder or its manifest.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// A slot's files.
    #[error("slot {}: {problem}", index.0)]
    Slot {
        /// The slot.
        index: SlotIndex,
        /// What is wrong with its files.
        problem: SlotProblem,
    },
    /// A block does not hash to its SHA-256 block root.
    #[error(
        "block {block} of slot {} does not match its block root: the slot data is damaged",
        index.0
    )]
    BlockMismatch {
        /// The slot.
        index: SlotIndex,
        /// The block.
        block: u64,
    },
    /// The slot cannot have a compact tree (too large).
    #[error("{0}")]
    Tree(#[from] TreeError),
    /// Writing or reading a file.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The kept Poseidon block roots are unusable.
    #[error(
        "the compact block roots {} are damaged ({why}); the slot must be fetched again",
        path.display()
    )]
    Roots {
        /// The roots file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The slot's data gives another commitment than the one it must have.
    #[error(
        "slot {}'s Poseidon commitment is {computed}, but the manifest commits to {expected}: the \
         data is not what the renter committed to, and could never be proven",
        index.0
    )]
    Mismatch {
        /// The slot.
        index: SlotIndex,
        /// The manifest's commitment.
        expected: Hash,
        /// The one computed from the data.
        computed: Hash,
    },
    /// The manifest is not a compact dataset's (format 3), or names no such slot.
    #[error("the dataset's manifest (format {0}) carries no compact commitment for this slot")]
    NotCompact(u16),
}

impl CompactError {
    fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Io { what, path, source }
    }
}

/// A commitment as the 32-byte big-endian word the manifest and the contract hold.
pub(crate) fn commitment_word(c: &SlotCommitment) -> Hash {
    Hash(fr_to_bytes(&c.value))
}

/// Computes slot `index`'s compact commitment from the packed folder `dir`, checking every block
/// against its SHA-256 root on the way; `progress(blocks_done)` after each batch. Returns the
/// commitment and the Poseidon block roots. Blocking (and uses every core): call it on the
/// blocking pool.
pub(crate) fn commit_slot(
    dir: &Path,
    index: SlotIndex,
    progress: impl FnMut(u64),
) -> Result<(SlotCommitment, Vec<Fr>), CompactError> {
    let packed = PackedDataset::open(dir)?;
    let files = packed
        .open_slot(index)
        .map_err(|problem| CompactError::Slot { index, problem })?;
    let blocks = packed.manifest().layout.slot_blocks();
    let mut sha = vec![Hash::default(); COMMIT_BATCH_BLOCKS];
    let read_checked = |first: u64, buf: &mut [u8]| {
        let slot_err = |problem| CompactError::Slot { index, problem };
        let sha = &mut sha[..buf.len() / BLOCK_SIZE];
        files.read_blocks(first, buf).map_err(slot_err)?;
        files.read_roots(first, sha).map_err(slot_err)?;
        let (chunks, _) = buf.as_chunks::<BLOCK_SIZE>();
        match chunks
            .iter()
            .zip(sha.iter())
            .position(|(b, root)| hoard_prover::block_root(b) != *root)
        {
            Some(bad) => Err(CompactError::BlockMismatch {
                index,
                block: first + bad as u64,
            }),
            None => Ok(()),
        }
    };
    hoard_compact::commit_blocks(blocks, read_checked, progress)
}

/// Writes slot `index`'s Poseidon block roots into `dir` (temporary file, fsync, rename).
pub(crate) fn write_roots(dir: &Path, index: SlotIndex, roots: &[Fr]) -> Result<(), CompactError> {
    let path = dir.join(slot_compact_roots_file(index));
    let tmp = path.with_extension("croots.tmp");
    let mut bytes = Vec::with_capacity(roots.len() * 32);
    roots.iter().for_each(|r| bytes.extend(fr_to_bytes(r)));
    let mut f = File::create(&tmp).map_err(CompactError::io("creating", &tmp))?;
    f.write_all(&bytes)
        .and_then(|()| f.sync_all())
        .map_err(CompactError::io("writing", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(CompactError::io("renaming to", &path))
}

/// The compact tree of slot `index` in `dir` from its kept block roots, checked against the
/// commitment `expected` (the manifest's, which the chain bound at fill time). Blocking.
pub(crate) fn open_tree(
    dir: &Path,
    index: SlotIndex,
    blocks: u64,
    expected: Hash,
) -> Result<CompactSlotTree, CompactError> {
    let path = dir.join(slot_compact_roots_file(index));
    let damaged = |why: String| CompactError::Roots {
        path: path.clone(),
        why,
    };
    let bytes = std::fs::read(&path).map_err(|e| damaged(e.to_string()))?;
    if bytes.len() as u64 != blocks * 32 {
        return Err(damaged(format!(
            "{} bytes instead of {}",
            bytes.len(),
            blocks * 32
        )));
    }
    let roots = bytes
        .as_chunks::<32>()
        .0
        .iter()
        .map(|w| fr_from_bytes(w).ok_or_else(|| damaged("a root is not a field element".into())))
        .collect::<Result<Vec<_>, _>>()?;
    let tree = CompactSlotTree::from_block_roots(roots)?;
    let computed = commitment_word(tree.commitment());
    if computed != expected {
        return Err(damaged(format!(
            "they give the commitment {computed}, the slot's is {expected}"
        )));
    }
    Ok(tree)
}

/// The commitment the manifest of `dir` holds for slot `index`.
pub(crate) fn manifest_commitment(m: &Manifest, index: SlotIndex) -> Result<Hash, CompactError> {
    m.commitments
        .get(usize::from(index.0))
        .copied()
        .ok_or(CompactError::NotCompact(m.format))
}

/// The renter's stage after `hoard_dataset::pack`: commits every slot of the packed folder `dir`
/// (Poseidon, all cores, bounded memory, progress in bytes of slot data), keeps each slot's
/// Poseidon block roots next to it, and rewrites the manifest as format 3 with the commitments
/// (temporary file, fsync, rename). Returns the new manifest: its dataset id is the one to
/// request. Blocking.
pub(crate) fn commit_packed(dir: &Path, progress: &dyn Progress) -> Result<Manifest, CompactError> {
    let mut manifest = PackedDataset::open(dir)?.manifest().clone();
    let layout = manifest.layout;
    if layout.slot_blocks() > MAX_BLOCKS {
        return Err(TreeError::TooManyBlocks(layout.slot_blocks()).into());
    }
    progress.phase(
        "committing (Poseidon)",
        layout.slot_bytes() * layout.slots() as u64,
    );
    let mut commitments = Vec::with_capacity(layout.slots());
    for i in 0..layout.slots() {
        let index = SlotIndex(i as u16);
        let mut reported = 0;
        let (c, roots) = commit_slot(dir, index, |done| {
            progress.advance((done - reported) * BLOCK_SIZE as u64);
            reported = done;
        })?;
        write_roots(dir, index, &roots)?;
        commitments.push(commitment_word(&c));
    }
    manifest.format = COMPACT_MANIFEST_FORMAT;
    manifest.commitments = commitments;
    let path = dir.join(MANIFEST_FILE);
    manifest
        .validate()
        .map_err(|reason| DatasetError::BadManifest {
            path: path.clone(),
            reason,
        })?;
    let tmp = dir.join("manifest.bin.tmp");
    let mut f = File::create(&tmp).map_err(CompactError::io("creating", &tmp))?;
    f.write_all(&manifest.encode())
        .and_then(|()| f.sync_all())
        .map_err(CompactError::io("writing", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(CompactError::io("renaming to", &path))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use hoard_compact::CommitmentBuilder;
    use hoard_dataset::NoProgress;

    use super::*;

    fn packed(len: usize) -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().expect("tempdir");
        let input = root.path().join("input.bin");
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&input, bytes).expect("write input");
        let out = root.path().join("packed");
        hoard_dataset::pack(&input, &out, 2, 1, &NoProgress).expect("pack");
        (root, out)
    }

    #[test]
    fn committing_a_packed_dataset_gives_format_3_with_each_slots_commitment() {
        // 3 blocks over 2 data slots: 2 blocks per slot, the last one partly padding.
        let (_root, dir) = packed(3 * BLOCK_SIZE - 100);
        let before = PackedDataset::open(&dir).expect("open").id();
        let m = commit_packed(&dir, &NoProgress).expect("commit");
        assert_eq!(m.format, COMPACT_MANIFEST_FORMAT);
        assert_eq!(m.commitments.len(), 3);
        let reopened = PackedDataset::open(&dir).expect("reopen");
        assert_eq!(reopened.manifest(), &m);
        assert_ne!(reopened.id(), before, "format 3 is another dataset id");
        for i in 0..3 {
            let index = SlotIndex(i);
            // The same as hashing the slot's bytes directly.
            let data = std::fs::read(dir.join(hoard_dataset::slot_data_file(index))).expect("slot");
            let mut b = CommitmentBuilder::new();
            b.push_blocks(&data).expect("whole blocks");
            let direct = b.finish().expect("non-empty");
            assert_eq!(m.commitments[usize::from(i)], commitment_word(&direct));
            // The kept roots rebuild the same commitment, and refuse another.
            let tree = open_tree(&dir, index, 2, m.commitments[usize::from(i)]).expect("tree");
            assert_eq!(tree.commitment(), &direct);
            let other = m.commitments[usize::from((i + 1) % 3)];
            assert!(matches!(
                open_tree(&dir, index, 2, other),
                Err(CompactError::Roots { .. })
            ));
        }
    }

    #[test]
    fn damaged_data_or_roots_are_named() {
        let (_root, dir) = packed(2 * BLOCK_SIZE);
        let m = commit_packed(&dir, &NoProgress).expect("commit");
        // A flipped byte in block 0 of slot 1 fails its SHA-256 root before any Poseidon work.
        let data = dir.join(hoard_dataset::slot_data_file(SlotIndex(1)));
        let mut bytes = std::fs::read(&data).expect("read");
        bytes[10] ^= 1;
        std::fs::write(&data, bytes).expect("write");
        assert!(matches!(
            commit_slot(&dir, SlotIndex(1), |_| {}),
            Err(CompactError::BlockMismatch {
                index: SlotIndex(1),
                block: 0
            })
        ));
        // A truncated or out-of-field roots file is not trusted.
        let roots = dir.join(slot_compact_roots_file(SlotIndex(0)));
        std::fs::write(&roots, [0xff; 32]).expect("write");
        assert!(matches!(
            open_tree(&dir, SlotIndex(0), 1, m.commitments[0]),
            Err(CompactError::Roots { .. })
        ));
        std::fs::write(&roots, [0; 16]).expect("write");
        assert!(matches!(
            open_tree(&dir, SlotIndex(0), 1, m.commitments[0]),
            Err(CompactError::Roots { .. })
        ));
    }
}
