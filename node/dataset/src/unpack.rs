//! Restoring a dataset from any `k` good slots of a packed folder, byte-identical.
//!
//! Every slot is checked before use (size, block roots against its slot root) and every block
//! against its root as it is read; a slot that fails anywhere is dropped and another takes its
//! place for the same stripes, so damaged data is never decoded or written. Data slots are
//! preferred: when they are all good nothing is decoded. Output goes to a temporary path renamed
//! into place when complete.

use std::{
    fs::{self, File},
    path::{Path, PathBuf},
};

use hoard_prover::{BLOCK_SIZE, Hash, SlotIndex};
use reed_solomon_simd::ReedSolomonDecoder;

use crate::{
    error::{DatasetError, IoContext, SlotProblem},
    hashing,
    manifest::{DatasetId, Entry, EntryKind, link_text},
    pack::{batch_stripes, stream_bytes_done},
    packed::{PackedDataset, PendingDir, SlotFiles, parent_of, sync_dir},
    progress::Progress,
    stream::StreamFiles,
};

/// What `unpack` did.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// The dataset id.
    pub id: DatasetId,
    /// Where the dataset was written.
    pub out: PathBuf,
    /// Bytes restored.
    pub size: u64,
    /// Stripes that needed Reed–Solomon decoding.
    pub decoded_stripes: u64,
    /// Slots found unusable, and why.
    pub problems: Vec<(SlotIndex, SlotProblem)>,
}

/// Restores the dataset packed in `dir` to `out`.
///
/// A directory dataset is written to the folder `out` (absent or empty). A single-file dataset
/// is written to the file `out`, or under its own name inside `out` if that is a folder.
pub fn unpack(dir: &Path, out: &Path, progress: &dyn Progress) -> Result<Unpacked, DatasetError> {
    restore(dir, out, progress, true)
}

/// [`unpack`] for slots whose every block was already checked against its root as it was
/// written (a download verifies each block by its Merkle path on arrival): slot sizes and
/// roots files are still checked against the manifest, blocks are not hashed a second time.
pub fn unpack_verified(
    dir: &Path,
    out: &Path,
    progress: &dyn Progress,
) -> Result<Unpacked, DatasetError> {
    restore(dir, out, progress, false)
}

fn restore(
    dir: &Path,
    out: &Path,
    progress: &dyn Progress,
    check_blocks: bool,
) -> Result<Unpacked, DatasetError> {
    let packed = PackedDataset::open(dir)?;
    let manifest = packed.manifest();
    let layout = manifest.layout;
    let k = layout.data_slots();

    let mut problems = Vec::new();
    let mut usable: Vec<(SlotIndex, SlotFiles)> = Vec::new();
    for i in 0..layout.slots() {
        let index = SlotIndex(i as u16);
        match packed.open_slot(index) {
            Ok(files) => usable.push((index, files)),
            Err(p) => problems.push((index, p)),
        }
    }
    let not_enough = |usable: usize, problems: &[(SlotIndex, SlotProblem)]| {
        let mut problems = problems.to_vec();
        problems.sort_by_key(|(i, _)| *i);
        DatasetError::NotEnoughSlots {
            needed: k,
            usable,
            problems,
        }
    };
    if usable.len() < k {
        return Err(not_enough(usable.len(), &problems));
    }

    let output = Output::new(out, manifest)?;
    let mut writer = StreamFiles::new(
        &output.stream_root(),
        manifest.directory,
        &manifest.entries,
        true,
    );

    let stripes = batch_stripes(k, layout.slot_blocks());
    let mut buffers = vec![vec![0u8; stripes * BLOCK_SIZE]; k];
    let mut roots = vec![Hash::default(); stripes];
    let mut decoded_stripes = 0;
    progress.phase("restoring", manifest.size);
    let mut first = 0u64;
    while first < layout.slot_blocks() {
        let n = (layout.slot_blocks() - first).min(stripes as u64) as usize;
        let len = n * BLOCK_SIZE;
        // Read and check the first k usable slots; on a bad block drop that slot and retry.
        'choose: loop {
            if usable.len() < k {
                return Err(not_enough(usable.len(), &problems));
            }
            for c in 0..k {
                let (index, files) = &usable[c];
                let read = files
                    .read_blocks(first, &mut buffers[c][..len])
                    .and_then(|()| files.read_roots(first, &mut roots[..n]));
                let bad = match read {
                    Err(p) => Some(p),
                    Ok(()) if !check_blocks => None,
                    Ok(()) => hashing::block_roots(&[&buffers[c][..len]])[0]
                        .iter()
                        .zip(&roots)
                        .position(|(got, want)| got != want)
                        .map(|b| SlotProblem::CorruptBlock {
                            block: first + b as u64,
                        }),
                };
                if let Some(problem) = bad {
                    problems.push((*index, problem));
                    usable.remove(c);
                    continue 'choose;
                }
            }
            break;
        }
        let chosen: Vec<usize> = usable[..k].iter().map(|(i, _)| usize::from(i.0)).collect();
        if chosen.iter().any(|i| *i >= k) {
            decode(k, layout.parity_slots(), &chosen, &mut buffers, len)?;
            decoded_stripes += n as u64;
        }
        // buffers[i] now holds data slot i's blocks for these stripes.
        for (i, buf) in buffers.iter().enumerate() {
            let offset = (i as u64 * layout.slot_blocks() + first) * BLOCK_SIZE as u64;
            writer.write_at(offset, &buf[..len])?;
        }
        first += n as u64;
        let done = |stripes| stream_bytes_done(stripes, k, manifest.size);
        progress.advance(done(first) - done(first - n as u64));
    }
    writer.sync_all()?;
    let out = output.commit()?;
    problems.sort_by_key(|(i, _)| *i);
    Ok(Unpacked {
        id: packed.id(),
        out,
        size: manifest.size,
        decoded_stripes,
        problems,
    })
}

/// Rebuilds the data shards in place: on entry `buffers[c]` holds slot `chosen[c]`; on return
/// `buffers[i]` holds data slot `i`.
pub(crate) fn decode(
    k: usize,
    m: usize,
    chosen: &[usize],
    buffers: &mut [Vec<u8>],
    len: usize,
) -> Result<(), DatasetError> {
    let bug = |e: reed_solomon_simd::Error| DatasetError::Io {
        action: "erasure decoding (this is a bug, please report it)",
        path: PathBuf::new(),
        source: std::io::Error::other(e.to_string()),
    };
    let mut decoder = ReedSolomonDecoder::new(k, m, len).map_err(bug)?;
    for (c, slot) in chosen.iter().enumerate() {
        let shard = &buffers[c][..len];
        if *slot < k {
            decoder.add_original_shard(*slot, shard).map_err(bug)?;
        } else {
            decoder.add_recovery_shard(slot - k, shard).map_err(bug)?;
        }
    }
    let result = decoder.decode().map_err(bug)?;
    let restored: Vec<(usize, Vec<u8>)> = result
        .restored_original_iter()
        .map(|(i, d)| (i, d.to_vec()))
        .collect();
    drop(result);
    // Chosen data shards move to their own index; the buffers of the chosen parity shards, no
    // longer needed, take the restored data shards. Every buffer keeps its full batch size.
    let mut by_index: Vec<Option<Vec<u8>>> = vec![None; k];
    let mut spare = Vec::new();
    for (c, slot) in chosen.iter().enumerate() {
        let buf = std::mem::take(&mut buffers[c]);
        match by_index.get_mut(*slot) {
            Some(place) => *place = Some(buf),
            None => spare.push(buf),
        }
    }
    for (i, data) in restored {
        let mut buf = spare
            .pop()
            .expect("one parity buffer per missing data shard");
        buf[..len].copy_from_slice(&data);
        by_index[i] = Some(buf);
    }
    for (i, b) in by_index.into_iter().enumerate() {
        buffers[i] = b.expect("k shards restore every data shard");
    }
    Ok(())
}

/// The output being written: a temporary folder or file next to the final path.
enum Output {
    Dir(PendingDir),
    File {
        tmp: tempfile::NamedTempFile,
        target: PathBuf,
    },
}

/// Creates entry `e` of a manifest under `root`: a folder, a file of its full size (sparse until
/// written), or a link. The manifest was validated: a link's target is a file or directory of
/// the dataset and no entry lies under a link, so nothing leads out of `root`.
pub(crate) fn create_entry(root: &Path, e: &Entry) -> Result<(), DatasetError> {
    let path = root.join(&e.path);
    match &e.kind {
        EntryKind::Directory => fs::create_dir(&path).ctx("creating", &path),
        EntryKind::File { size, .. } => File::create(&path)
            .and_then(|f| f.set_len(*size))
            .ctx("creating", &path),
        EntryKind::Link { target } => std::os::unix::fs::symlink(link_text(&e.path, target), &path)
            .ctx("creating the symlink", &path),
    }
}

impl Output {
    fn new(out: &Path, manifest: &crate::Manifest) -> Result<Self, DatasetError> {
        if manifest.directory {
            let pending = PendingDir::new(out)?;
            for e in &manifest.entries {
                create_entry(pending.path(), e)?;
            }
            return Ok(Self::Dir(pending));
        }
        let name = &manifest.entries[0].path;
        let target = if out.is_dir() {
            out.join(name)
        } else {
            out.to_owned()
        };
        if target.exists() {
            return Err(DatasetError::OutputExists(target));
        }
        let parent = parent_of(&target)?;
        let tmp = tempfile::Builder::new()
            .prefix(".hoard-partial-")
            .tempfile_in(&parent)
            .ctx("creating a temporary file in", &parent)?;
        tmp.as_file()
            .set_len(manifest.size)
            .ctx("creating", tmp.path())?;
        Ok(Self::File { tmp, target })
    }

    /// The path the stream's files are relative to.
    fn stream_root(&self) -> PathBuf {
        match self {
            Self::Dir(p) => p.path().to_owned(),
            Self::File { tmp, .. } => tmp.path().to_owned(),
        }
    }

    fn commit(self) -> Result<PathBuf, DatasetError> {
        match self {
            Self::Dir(p) => p.commit(),
            Self::File { tmp, target } => {
                tmp.as_file().sync_all().ctx("syncing", tmp.path())?;
                tmp.persist_noclobber(&target)
                    .map_err(|e| e.error)
                    .ctx("moving the finished output to", &target)?;
                sync_dir(&parent_of(&target)?)?;
                Ok(target)
            }
        }
    }
}
