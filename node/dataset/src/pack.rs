//! Packing: stream a file or directory tree into `k + m` erasure-coded slot files with their
//! block roots, the manifest last, all in a temporary folder renamed into place when complete.
//!
//! Work goes stripe batch by stripe batch: read `n` blocks of each data slot's stretch of the
//! stream, Reed–Solomon encode them into `n` blocks of each parity slot, hash every block, append
//! the blocks and roots to the slot files (on a writer thread, overlapping the next batch).
//! Memory is two batches (about 2 × [`BATCH_BYTES`]) plus O(log S) per slot for the roots,
//! whatever the dataset size.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::Path,
    sync::mpsc,
    thread,
};

use hoard_prover::{BLOCK_SIZE, DatasetTree, Layout, RootAccumulator, SlotIndex};
use reed_solomon_simd::ReedSolomonEncoder;

use crate::{
    error::{DatasetError, IoContext},
    hashing,
    manifest::{DatasetId, MANIFEST_FORMAT, Manifest},
    packed::{MANIFEST_FILE, PendingDir, slot_data_file, slot_roots_file},
    progress::Progress,
    stream::{StreamFiles, scan},
};

/// Bytes of slot data (all slots together) handled per stripe batch.
pub const BATCH_BYTES: usize = 32 << 20;

/// Stripes per batch for `slots` slots: as many as fit in [`BATCH_BYTES`], at least one.
pub(crate) fn batch_stripes(slots: usize, slot_blocks: u64) -> usize {
    (BATCH_BYTES / (slots * BLOCK_SIZE))
        .max(1)
        .min(slot_blocks as usize)
}

/// Dataset bytes covered once the first `stripes` stripes of every data slot are done.
pub(crate) fn stream_bytes_done(stripes: u64, k: usize, size: u64) -> u64 {
    (stripes * BLOCK_SIZE as u64 * k as u64).min(size)
}

/// What `pack` produced.
#[derive(Debug, Clone)]
pub struct Packed {
    /// The dataset id.
    pub id: DatasetId,
    /// The manifest written.
    pub manifest: Manifest,
}

/// Packs `input` into `k` data and `m` parity slots in the folder `out` (which must not exist or
/// be empty).
pub fn pack(
    input: &Path,
    out: &Path,
    k: usize,
    m: usize,
    progress: &dyn Progress,
) -> Result<Packed, DatasetError> {
    let scanned = scan(input)?;
    let layout = Layout::for_dataset(k, m, scanned.size)?;
    let pending = PendingDir::new(out)?;
    let mut stream = StreamFiles::new(input, scanned.directory, &scanned.entries, false);

    let slots = layout.slots();
    let writers = (0..slots)
        .map(|i| SlotWriter::create(pending.path(), SlotIndex(i as u16)))
        .collect::<Result<Vec<_>, _>>()?;
    let stripes = batch_stripes(slots, layout.slot_blocks());
    let mut encoder = ReedSolomonEncoder::new(k, m, stripes * BLOCK_SIZE)
        .map_err(|e| rs_bug("creating the encoder", e))?;

    // Two buffer sets rotate between this thread (read, encode, hash) and a writer thread
    // (append to the slot files), so the writes overlap the next batch's work.
    let (to_writer, batches) = mpsc::sync_channel::<Batch>(1);
    let (recycle, free) = mpsc::channel::<Vec<Vec<u8>>>();
    for _ in 0..2 {
        recycle
            .send(vec![vec![0u8; stripes * BLOCK_SIZE]; slots])
            .expect("the receiver is alive");
    }
    progress.phase("packing", scanned.size);
    let slot_roots = thread::scope(|s| {
        let writer = s.spawn(move || write_batches(writers, batches, recycle));
        let produced = (|| {
            let mut first = 0u64;
            while first < layout.slot_blocks() {
                let n = (layout.slot_blocks() - first).min(stripes as u64) as usize;
                let len = n * BLOCK_SIZE;
                // A closed channel means the writer failed; its error is reported below.
                let Ok(mut buffers) = free.recv() else { break };
                for (i, buf) in buffers[..k].iter_mut().enumerate() {
                    let offset = (i as u64 * layout.slot_blocks() + first) * BLOCK_SIZE as u64;
                    stream.read_at(offset, &mut buf[..len])?;
                }
                encode(&mut encoder, k, m, &mut buffers, len)?;
                let views: Vec<&[u8]> = buffers.iter().map(|b| &b[..len]).collect();
                let roots = hashing::block_roots(&views);
                if to_writer
                    .send(Batch {
                        buffers,
                        roots,
                        len,
                    })
                    .is_err()
                {
                    break;
                }
                let done = |stripes| stream_bytes_done(stripes, k, scanned.size);
                progress.advance(done(first + n as u64) - done(first));
                first += n as u64;
            }
            Ok::<_, DatasetError>(())
        })();
        drop(to_writer);
        let written = writer.join().expect("the writer thread does not panic");
        produced.and(written)
    })?;

    let root = DatasetTree::new(&slot_roots)
        .expect("a layout has at least two slots")
        .root();
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        layout,
        size: scanned.size,
        directory: scanned.directory,
        entries: scanned.entries,
        slot_roots,
        root,
        commitments: Vec::new(),
    };
    // Metadata after data: the slot files are synced before the manifest is written.
    let manifest_path = pending.path().join(MANIFEST_FILE);
    // What is written must read back: a tree that changed while it was scanned (a link's target
    // removed, say) is refused here rather than leaving a manifest unpack would refuse.
    manifest
        .validate()
        .map_err(|reason| DatasetError::BadManifest {
            path: manifest_path.clone(),
            reason: format!("{reason} (did the input change while packing?)"),
        })?;
    let mut f = File::create(&manifest_path).ctx("creating", &manifest_path)?;
    f.write_all(&manifest.encode())
        .and_then(|()| f.sync_all())
        .ctx("writing", &manifest_path)?;
    pending.commit()?;
    Ok(Packed {
        id: manifest.id(),
        manifest,
    })
}

/// Fills the parity buffers `k..k+m` from the data buffers `0..k` (first `len` bytes of each).
pub(crate) fn encode(
    encoder: &mut ReedSolomonEncoder,
    k: usize,
    m: usize,
    buffers: &mut [Vec<u8>],
    len: usize,
) -> Result<(), DatasetError> {
    encoder
        .reset(k, m, len)
        .map_err(|e| rs_bug("resetting the encoder", e))?;
    for buf in &buffers[..k] {
        encoder
            .add_original_shard(&buf[..len])
            .map_err(|e| rs_bug("adding a shard", e))?;
    }
    let encoded = encoder.encode().map_err(|e| rs_bug("encoding", e))?;
    for (buf, parity) in buffers[k..].iter_mut().zip(encoded.recovery_iter()) {
        buf[..len].copy_from_slice(parity);
    }
    Ok(())
}

/// One stripe batch on its way to the slot files.
struct Batch {
    buffers: Vec<Vec<u8>>,
    roots: Vec<Vec<hoard_prover::Hash>>,
    len: usize,
}

/// The writer thread: appends each batch to the slot files, hands the buffers back, and at the
/// end syncs every file and returns the slot roots.
fn write_batches(
    mut writers: Vec<SlotWriter>,
    batches: mpsc::Receiver<Batch>,
    recycle: mpsc::Sender<Vec<Vec<u8>>>,
) -> Result<Vec<hoard_prover::Hash>, DatasetError> {
    for batch in batches {
        for ((w, data), roots) in writers.iter_mut().zip(&batch.buffers).zip(&batch.roots) {
            w.append(&data[..batch.len], roots)?;
        }
        // The producer may have finished; then the buffers are simply dropped.
        let _ = recycle.send(batch.buffers);
    }
    writers.into_iter().map(SlotWriter::finish).collect()
}

/// The Reed–Solomon library refuses only parameters we validated; say so if it ever does.
pub(crate) fn rs_bug(what: &str, e: reed_solomon_simd::Error) -> DatasetError {
    DatasetError::Io {
        action: "erasure coding (this is a bug, please report it)",
        path: what.into(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Appends one slot's blocks and block roots, accumulating its slot root.
pub(crate) struct SlotWriter {
    data: BufWriter<File>,
    roots: BufWriter<File>,
    acc: RootAccumulator,
    paths: [std::path::PathBuf; 2],
}

impl SlotWriter {
    pub(crate) fn create(dir: &Path, index: SlotIndex) -> Result<Self, DatasetError> {
        let data_path = dir.join(slot_data_file(index));
        let roots_path = dir.join(slot_roots_file(index));
        Ok(Self {
            data: BufWriter::new(File::create(&data_path).ctx("creating", &data_path)?),
            roots: BufWriter::new(File::create(&roots_path).ctx("creating", &roots_path)?),
            acc: RootAccumulator::default(),
            paths: [data_path, roots_path],
        })
    }

    pub(crate) fn append(
        &mut self,
        data: &[u8],
        roots: &[hoard_prover::Hash],
    ) -> Result<(), DatasetError> {
        self.data.write_all(data).ctx("writing", &self.paths[0])?;
        for r in roots {
            self.roots.write_all(&r.0).ctx("writing", &self.paths[1])?;
            self.acc.push(*r);
        }
        Ok(())
    }

    /// Syncs both files and returns the slot root.
    pub(crate) fn finish(self) -> Result<hoard_prover::Hash, DatasetError> {
        let [data_path, roots_path] = self.paths;
        for (w, path) in [(self.data, data_path), (self.roots, roots_path)] {
            w.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .ctx("syncing", path)?;
        }
        Ok(self.acc.finish().expect("a slot has at least one block"))
    }
}
