//! A packed dataset on disk: `manifest.bin`, and per slot `slot-NNN.bin` (the slot's bytes) and
//! `slot-NNN.roots` (its block roots, 32 bytes per block), plus crash-safe output helpers.

use std::{
    fs::{self, File},
    io::Read,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use hoard_prover::{BLOCK_SIZE, Hash, RootAccumulator, SlotIndex, SlotTree};
use tempfile::TempDir;

use crate::{
    error::{DatasetError, IoContext, SlotProblem},
    manifest::{DatasetId, MAX_MANIFEST_BYTES, Manifest},
};

/// Name of the manifest file in a packed folder.
pub const MANIFEST_FILE: &str = "manifest.bin";

/// Name of slot `index`'s data file.
pub fn slot_data_file(index: SlotIndex) -> String {
    format!("slot-{:03}.bin", index.0)
}

/// Name of slot `index`'s block-roots file.
pub fn slot_roots_file(index: SlotIndex) -> String {
    format!("slot-{:03}.roots", index.0)
}

/// Name of slot `index`'s compact block-roots file (compact scheme only): the Poseidon root of each
/// block, 32 bytes big-endian per block (`docs/protocol.md` §8).
pub fn slot_compact_roots_file(index: SlotIndex) -> String {
    format!("slot-{:03}.croots", index.0)
}

/// A packed dataset folder with its validated manifest.
#[derive(Debug)]
pub struct PackedDataset {
    dir: PathBuf,
    manifest: Manifest,
    id: DatasetId,
}

impl PackedDataset {
    /// Opens `dir` and validates its manifest.
    pub fn open(dir: &Path) -> Result<Self, DatasetError> {
        let path = dir.join(MANIFEST_FILE);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DatasetError::NoManifest(dir.into()));
            }
            Err(e) => return Err(e).ctx("opening", path),
        };
        let mut bytes = Vec::new();
        file.take(MAX_MANIFEST_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .ctx("reading", &path)?;
        let manifest = Manifest::decode(&bytes)
            .map_err(|reason| DatasetError::BadManifest { path, reason })?;
        let id = manifest.id();
        Ok(Self {
            dir: dir.into(),
            manifest,
            id,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The dataset id.
    pub fn id(&self) -> DatasetId {
        self.id
    }

    /// Opens slot `index` after checking its size and that its block roots hash to its slot
    /// root. Block bytes are checked against the roots as they are read.
    pub fn open_slot(&self, index: SlotIndex) -> Result<SlotFiles, SlotProblem> {
        let layout = &self.manifest.layout;
        let expected_root = *self
            .manifest
            .slot_roots
            .get(usize::from(index.0))
            .ok_or(SlotProblem::OutOfRange)?;
        let data_path = self.dir.join(slot_data_file(index));
        let data = match File::open(&data_path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SlotProblem::Missing);
            }
            Err(e) => return Err(SlotProblem::Io(e.to_string())),
        };
        let actual = data
            .metadata()
            .map_err(|e| SlotProblem::Io(e.to_string()))?
            .len();
        if actual != layout.slot_bytes() {
            return Err(SlotProblem::WrongSize {
                expected: layout.slot_bytes(),
                actual,
            });
        }
        let roots = File::open(self.dir.join(slot_roots_file(index)))
            .map_err(|e| SlotProblem::RootsUnreadable(e.to_string()))?;
        let files = SlotFiles {
            data,
            roots,
            blocks: layout.slot_blocks(),
        };
        let root = files.roots_root()?;
        if root == expected_root {
            return Ok(files);
        }
        Err(
            match self.manifest.slot_roots.iter().position(|r| *r == root) {
                Some(other) => SlotProblem::Swapped {
                    holds: SlotIndex(other as u16),
                },
                None => SlotProblem::Foreign,
            },
        )
    }

    /// The slot tree of slot `index` (block roots and the tree above them), for proving.
    pub fn slot_tree(&self, index: SlotIndex) -> Result<(SlotFiles, SlotTree), DatasetError> {
        let slot_err = |problem| DatasetError::Slot { index, problem };
        let files = self.open_slot(index).map_err(slot_err)?;
        let mut roots = vec![Hash::default(); files.blocks as usize];
        files.read_roots(0, &mut roots).map_err(slot_err)?;
        let tree = SlotTree::from_block_roots(&roots)
            .map_err(|e| slot_err(SlotProblem::RootsUnreadable(e.to_string())))?;
        Ok((files, tree))
    }
}

/// An opened slot: its data file and its block roots.
#[derive(Debug)]
pub struct SlotFiles {
    data: File,
    roots: File,
    blocks: u64,
}

/// Block roots read per call when hashing a roots file.
const ROOTS_CHUNK: usize = 32 * 1024;

impl SlotFiles {
    /// The slot root the roots file commits to (checks its length too).
    fn roots_root(&self) -> Result<Hash, SlotProblem> {
        let len = self
            .roots
            .metadata()
            .map_err(|e| SlotProblem::RootsUnreadable(e.to_string()))?
            .len();
        if len != self.blocks * 32 {
            return Err(SlotProblem::RootsUnreadable(format!(
                "{len} bytes instead of {}",
                self.blocks * 32
            )));
        }
        let mut acc = RootAccumulator::default();
        let mut chunk = vec![Hash::default(); ROOTS_CHUNK];
        let mut at = 0;
        while at < self.blocks {
            let n = (self.blocks - at).min(ROOTS_CHUNK as u64) as usize;
            self.read_roots(at, &mut chunk[..n])?;
            chunk[..n].iter().for_each(|r| acc.push(*r));
            at += n as u64;
        }
        acc.finish()
            .ok_or_else(|| SlotProblem::RootsUnreadable("empty".into()))
    }

    /// Reads the roots of blocks `first..first + out.len()`.
    pub fn read_roots(&self, first: u64, out: &mut [Hash]) -> Result<(), SlotProblem> {
        let mut bytes = vec![0u8; out.len() * 32];
        self.roots
            .read_exact_at(&mut bytes, first * 32)
            .map_err(|e| SlotProblem::RootsUnreadable(e.to_string()))?;
        for (root, b) in out.iter_mut().zip(bytes.as_chunks::<32>().0) {
            *root = Hash(*b);
        }
        Ok(())
    }

    /// Reads blocks `first..` into `buf` (a whole number of blocks), unchecked.
    pub fn read_blocks(&self, first: u64, buf: &mut [u8]) -> Result<(), SlotProblem> {
        self.data
            .read_exact_at(buf, first * BLOCK_SIZE as u64)
            .map_err(|e| SlotProblem::Io(e.to_string()))
    }
}

/// A folder being written next to its final path, renamed into place only when complete.
#[derive(Debug)]
pub(crate) struct PendingDir {
    tmp: TempDir,
    target: PathBuf,
}

impl PendingDir {
    /// Starts writing `target`, which must not exist or be an empty directory.
    pub(crate) fn new(target: &Path) -> Result<Self, DatasetError> {
        check_free(target)?;
        let parent = parent_of(target)?;
        let tmp = tempfile::Builder::new()
            .prefix(".hoard-partial-")
            .tempdir_in(&parent)
            .ctx("creating a temporary folder in", &parent)?;
        Ok(Self {
            tmp,
            target: target.into(),
        })
    }

    /// Where to write the contents.
    pub(crate) fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Syncs the folder and renames it to its target. On error the partial folder is removed.
    pub(crate) fn commit(self) -> Result<PathBuf, DatasetError> {
        sync_dir(self.tmp.path())?;
        check_free(&self.target)?;
        let kept = self.tmp.keep();
        if let Err(e) = fs::rename(&kept, &self.target) {
            let _ = fs::remove_dir_all(&kept);
            return Err(e).ctx("moving the finished output to", &self.target);
        }
        sync_dir(&parent_of(&self.target)?)?;
        Ok(self.target)
    }
}

/// Fails unless `path` is absent or an empty directory.
fn check_free(path: &Path) -> Result<(), DatasetError> {
    match fs::read_dir(path).map(|mut entries| entries.next().is_none()) {
        Ok(true) => Ok(()),
        Ok(false) => Err(DatasetError::OutputExists(path.into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) if path.exists() => Err(DatasetError::OutputExists(path.into())),
        Err(e) => Err(e).ctx("checking", path),
    }
}

/// The parent folder of `path`, created if missing.
pub(crate) fn parent_of(path: &Path) -> Result<PathBuf, DatasetError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).ctx("creating", &parent)?;
    Ok(parent)
}

/// fsyncs a directory so that renames and new entries in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), DatasetError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("syncing", dir)
}
