//! Writing repaired blocks into a hosted slot file in place, crash-safely, with a one-entry
//! journal: after a crash at any point the blocks are either the old bytes or the new, verified
//! ones, never a mix.
//!
//! ```text
//!  new blocks (each checked against its root) ─▶ repair.journal.tmp ─▶ fsync ─▶ rename to
//!  repair.journal ─▶ fsync folder ─▶ pwrite into slot-NNN.bin ─▶ fsync ─▶ remove the journal
//!  ─▶ fsync folder
//! ```
//!
//! Why a journal and not temp → rename: a slot file is up to 256 GiB and a repair is a few
//! 64 KiB blocks; copying the file to change 64 KiB costs the disk a whole slot. A `pwrite` of
//! a block can tear on a crash, so the bytes go to the journal first: it only ever appears
//! whole (renamed after its fsync), and [`replay`] at the next start writes it again (an
//! idempotent overwrite) before anything trusts the slot. A journal that does not check out
//! (checksum, slot, or a block that does not match its root) is dropped; the old bytes were
//! never touched, and the scrub finds them again. A full disk fails the journal write before
//! the slot file is opened for writing, so the old bytes stay as they were.

use std::{
    fs::{File, OpenOptions},
    io::{ErrorKind, Write as _},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use hoard_dataset::slot_data_file;
use hoard_prover::{BLOCK_SIZE, SlotIndex, SlotTree};
use sha2::{Digest, Sha256};

/// The journal of a repair in flight, in the slot's folder.
pub(crate) const JOURNAL_FILE: &str = "repair.journal";
/// The journal while it is written (never trusted).
const JOURNAL_TMP: &str = "repair.journal.tmp";
/// Identifies the format: magic, then slot (u16), first block (u64), count (u32), the blocks,
/// and a SHA-256 of everything before it.
const MAGIC: &[u8; 4] = b"HRJ1";
const HEADER: usize = 4 + 2 + 8 + 4;
/// Most blocks in one journal (one repair batch).
pub(crate) const MAX_JOURNAL_BLOCKS: u32 = 64;

/// Why blocks could not be written back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JournalError {
    /// The disk is full (or the quota reached): nothing in the slot file was changed.
    #[error(
        "no space left to write the repair of {} (free space on its volume; the slot's bytes \
         were not touched): {source}",
        path.display()
    )]
    Full {
        /// The file being written.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Another I/O failure.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The batch is empty, too large or not whole blocks (a bug in the caller).
    #[error("a repair batch must be 1..={MAX_JOURNAL_BLOCKS} whole blocks, not {0} bytes")]
    Batch(usize),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> JournalError {
    let path = path.to_path_buf();
    move |source| {
        if matches!(
            source.kind(),
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded
        ) {
            JournalError::Full { path, source }
        } else {
            JournalError::Io { what, path, source }
        }
    }
}

/// Writes `data` (whole blocks, checked by the caller) over blocks `first..` of slot `index` in
/// the packed folder `dir`, journalled (module doc).
pub(crate) fn write_blocks(
    dir: &Path,
    index: SlotIndex,
    first: u64,
    data: &[u8],
) -> Result<(), JournalError> {
    let count = data.len() / BLOCK_SIZE;
    if data.is_empty()
        || !data.len().is_multiple_of(BLOCK_SIZE)
        || count > MAX_JOURNAL_BLOCKS as usize
    {
        return Err(JournalError::Batch(data.len()));
    }
    let tmp = dir.join(JOURNAL_TMP);
    let journal = dir.join(JOURNAL_FILE);
    let written = (|| {
        let mut f = File::create(&tmp).map_err(io("creating", &tmp))?;
        let mut header = Vec::with_capacity(HEADER);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&index.0.to_be_bytes());
        header.extend_from_slice(&first.to_be_bytes());
        header.extend_from_slice(&(count as u32).to_be_bytes());
        let sum: [u8; 32] = Sha256::new()
            .chain_update(&header)
            .chain_update(data)
            .finalize()
            .into();
        f.write_all(&header).map_err(io("writing", &tmp))?;
        f.write_all(data).map_err(io("writing", &tmp))?;
        f.write_all(&sum).map_err(io("writing", &tmp))?;
        f.sync_all().map_err(io("syncing", &tmp))?;
        std::fs::rename(&tmp, &journal).map_err(io("renaming", &tmp))?;
        sync_dir(dir)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    apply(dir, index, first, data)?;
    std::fs::remove_file(&journal).map_err(io("removing", &journal))?;
    sync_dir(dir)
}

/// Writes the blocks in place and syncs the slot file.
fn apply(dir: &Path, index: SlotIndex, first: u64, data: &[u8]) -> Result<(), JournalError> {
    let path = dir.join(slot_data_file(index));
    let f = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(io("opening", &path))?;
    let at = first
        .checked_mul(BLOCK_SIZE as u64)
        .ok_or(JournalError::Batch(data.len()))?;
    f.write_all_at(data, at).map_err(io("writing", &path))?;
    f.sync_data().map_err(io("syncing", &path))
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing", dir))
}

/// What [`replay`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Replayed {
    /// No journal: no repair was in flight.
    Nothing,
    /// A whole journal whose blocks match their roots: written (again) into the slot file.
    Applied {
        /// First block.
        first: u64,
        /// Blocks written.
        count: u64,
    },
    /// A journal that does not check out, dropped; the slot file was not touched.
    Dropped(String),
}

/// At start, before the slot is trusted: finishes (or drops) a repair a crash interrupted in
/// slot `index` of `dir`, whose committed block roots are `tree`'s.
pub(crate) fn replay(
    dir: &Path,
    index: SlotIndex,
    tree: &SlotTree,
) -> Result<Replayed, JournalError> {
    let _ = std::fs::remove_file(dir.join(JOURNAL_TMP));
    let journal = dir.join(JOURNAL_FILE);
    let bytes = match std::fs::read(&journal) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Replayed::Nothing),
        Err(e) => return Err(io("reading", &journal)(e)),
    };
    let outcome = match check(&bytes, index, tree) {
        Ok((first, data)) => {
            apply(dir, index, first, data)?;
            Replayed::Applied {
                first,
                count: (data.len() / BLOCK_SIZE) as u64,
            }
        }
        Err(why) => Replayed::Dropped(why),
    };
    std::fs::remove_file(&journal).map_err(io("removing", &journal))?;
    sync_dir(dir)?;
    Ok(outcome)
}

/// The journal's first block and blocks, if it is whole, of this slot, and every block matches
/// its committed root.
fn check<'a>(
    bytes: &'a [u8],
    index: SlotIndex,
    tree: &SlotTree,
) -> Result<(u64, &'a [u8]), String> {
    if bytes.len() < HEADER + BLOCK_SIZE + 32 || &bytes[..4] != MAGIC {
        return Err(format!("not a whole journal ({} bytes)", bytes.len()));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return Err("its checksum does not match".into());
    }
    let word = |at: usize, n: usize| {
        body[at..at + n]
            .iter()
            .fold(0u64, |a, b| a << 8 | u64::from(*b))
    };
    let slot = word(4, 2) as u16;
    let first = word(6, 8);
    let count = word(14, 4);
    let data = &body[HEADER..];
    if slot != index.0 {
        return Err(format!("it is for slot {slot}, not {}", index.0));
    }
    if count == 0 || data.len() as u64 != count * BLOCK_SIZE as u64 {
        return Err(format!(
            "it says {count} blocks and holds {} bytes",
            data.len()
        ));
    }
    for (i, block) in data.chunks_exact(BLOCK_SIZE).enumerate() {
        let b = first + i as u64;
        let block: &[u8; BLOCK_SIZE] = block.try_into().map_err(|_| "a short block".to_string())?;
        if tree.block_root(b) != Some(hoard_prover::block_root(block)) {
            return Err(format!("its block {b} does not match the slot's root"));
        }
    }
    Ok((first, data))
}

#[cfg(test)]
mod tests {
    use hoard_prover::{Hash, block_root};

    use super::*;

    /// A folder with a 4-block slot file of `good` blocks, and the tree of the good blocks.
    fn slot(dir: &Path) -> (Vec<u8>, SlotTree) {
        let good: Vec<u8> = (0..4 * BLOCK_SIZE).map(|i| (i / 7) as u8).collect();
        std::fs::write(dir.join(slot_data_file(SlotIndex(2))), &good).expect("write");
        let roots: Vec<Hash> = good
            .chunks_exact(BLOCK_SIZE)
            .map(|b| block_root(b.try_into().expect("block")))
            .collect();
        (good, SlotTree::from_block_roots(&roots).expect("tree"))
    }

    fn read(dir: &Path) -> Vec<u8> {
        std::fs::read(dir.join(slot_data_file(SlotIndex(2)))).expect("read")
    }

    fn corrupt(dir: &Path, at: u64) {
        let f = OpenOptions::new()
            .write(true)
            .open(dir.join(slot_data_file(SlotIndex(2))))
            .expect("open");
        f.write_all_at(&[0xff, 0xee], at).expect("write");
    }

    #[test]
    fn repaired_blocks_land_in_place_and_leave_no_journal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (good, tree) = slot(dir.path());
        corrupt(dir.path(), BLOCK_SIZE as u64 + 5);
        corrupt(dir.path(), 2 * BLOCK_SIZE as u64 + 9);
        write_blocks(
            dir.path(),
            SlotIndex(2),
            1,
            &good[BLOCK_SIZE..3 * BLOCK_SIZE],
        )
        .expect("write");
        assert!(read(dir.path()) == good);
        assert!(!dir.path().join(JOURNAL_FILE).exists());
        assert_eq!(
            replay(dir.path(), SlotIndex(2), &tree).expect("replay"),
            Replayed::Nothing
        );
    }

    /// A crash after the journal was renamed into place, before or while the slot file was
    /// written: the next start writes the new, verified blocks.
    #[test]
    fn a_whole_journal_is_replayed_after_a_crash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (good, tree) = slot(dir.path());
        corrupt(dir.path(), 3 * BLOCK_SIZE as u64);
        // The journal a repair of block 3 writes, then a crash (a torn pwrite: half the block).
        let journal = journal_of(dir.path(), 3, &good[3 * BLOCK_SIZE..]);
        std::fs::write(dir.path().join(JOURNAL_FILE), &journal).expect("journal");
        let f = OpenOptions::new()
            .write(true)
            .open(dir.path().join(slot_data_file(SlotIndex(2))))
            .expect("open");
        f.write_all_at(&[0u8; BLOCK_SIZE / 2], 3 * BLOCK_SIZE as u64)
            .expect("tear");
        assert_eq!(
            replay(dir.path(), SlotIndex(2), &tree).expect("replay"),
            Replayed::Applied { first: 3, count: 1 }
        );
        assert!(read(dir.path()) == good);
        assert!(!dir.path().join(JOURNAL_FILE).exists());
    }

    /// A crash while the journal was written leaves only the temp file (never trusted); a
    /// journal that is cut short, for another slot, or holds a block that does not match its
    /// root is dropped: the old bytes stay.
    #[test]
    fn a_torn_or_wrong_journal_is_dropped_and_the_old_bytes_stay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (good, tree) = slot(dir.path());
        corrupt(dir.path(), 0);
        let old = read(dir.path());
        let whole = journal_of(dir.path(), 0, &good[..BLOCK_SIZE]);

        std::fs::write(dir.path().join(JOURNAL_TMP), &whole).expect("tmp");
        assert_eq!(
            replay(dir.path(), SlotIndex(2), &tree).expect("replay"),
            Replayed::Nothing
        );
        assert!(!dir.path().join(JOURNAL_TMP).exists());

        let mut wrong_block = good[BLOCK_SIZE..2 * BLOCK_SIZE].to_vec();
        wrong_block[0] ^= 1;
        for bad in [
            whole[..whole.len() - 1].to_vec(),
            journal_of(dir.path(), 0, &wrong_block),
            {
                let mut other = whole.clone();
                other[5] ^= 1; // slot 3: the checksum no longer matches either
                other
            },
        ] {
            std::fs::write(dir.path().join(JOURNAL_FILE), &bad).expect("journal");
            assert!(matches!(
                replay(dir.path(), SlotIndex(2), &tree).expect("replay"),
                Replayed::Dropped(_)
            ));
            assert!(read(dir.path()) == old, "old bytes untouched");
            assert!(!dir.path().join(JOURNAL_FILE).exists());
        }
    }

    /// A full disk: the journal cannot be written, the error says so, and the slot file is
    /// untouched. `/dev/full` answers every write with ENOSPC, as a full file system does.
    #[test]
    fn a_full_disk_fails_clearly_and_leaves_the_old_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (good, _) = slot(dir.path());
        corrupt(dir.path(), 7);
        let old = read(dir.path());
        std::os::unix::fs::symlink("/dev/full", dir.path().join(JOURNAL_TMP)).expect("symlink");
        let err = write_blocks(dir.path(), SlotIndex(2), 0, &good[..BLOCK_SIZE])
            .expect_err("the disk is full");
        assert!(matches!(err, JournalError::Full { .. }), "{err:?}");
        assert!(err.to_string().contains("no space left"), "{err}");
        assert!(read(dir.path()) == old, "old bytes untouched");
        assert!(!dir.path().join(JOURNAL_FILE).exists());
    }

    /// The journal [`write_blocks`] writes for these blocks (built the same way, kept).
    fn journal_of(dir: &Path, first: u64, data: &[u8]) -> Vec<u8> {
        let keep = tempfile::tempdir_in(dir).expect("tempdir");
        std::fs::write(
            keep.path().join(slot_data_file(SlotIndex(2))),
            vec![0u8; 4 * BLOCK_SIZE],
        )
        .expect("scratch slot");
        // Stop after the journal is in place: make the slot file unwritable by removing it.
        std::fs::remove_file(keep.path().join(slot_data_file(SlotIndex(2)))).expect("remove");
        let _ = write_blocks(keep.path(), SlotIndex(2), first, data);
        std::fs::read(keep.path().join(JOURNAL_FILE))
            .expect("the journal stays when the write fails")
    }
}
