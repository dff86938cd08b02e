//! [`ReaderCache`]: the blocks a node downloaded (or is downloading) as a reader, kept so it can
//! serve them to other readers. Bounded per volume, least recently used extents evicted first,
//! crash-safe, reloaded at start.
//!
//! ```text
//!  <volume>/cache/<dataset id>/manifest.bin     the manifest (temp → fsync → rename)
//!                              slot-NNN.bin      sparse: block i at i·64 KiB
//!                              slot-NNN.paths    sparse: block i's Merkle path at i·depth·32
//!                              slot-NNN.index    committed have-bitmap + last use per extent
//! ```
//!
//! Only blocks that passed `BlockWithPath::verify` are ever put here (by the download role), and
//! a block is served only while its bit is set. The bits on disk (`slot-NNN.index`) are written
//! only after the block files were synced (`commit`), and an eviction clears the bits on disk
//! *before* it punches the blocks out of the files, so a crash at any point leaves bits only for
//! blocks whose bytes are on disk: after a restart the node serves only verified blocks.
//!
//! An extent is 64 blocks (one word of the bitmap, 4 MiB). Eviction drops whole extents of the
//! same volume, least recently used (read or written) first.
//!
//! Blocks go to `slot-NNN.bin` with direct I/O ([`hoard_dataset::direct`]), a run of blocks per
//! write through a reused aligned buffer. Reads stay buffered.

use std::{
    collections::HashMap,
    fs::{self, File, OpenOptions},
    io::Write as _,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use hoard_dataset::{MANIFEST_FILE, Manifest, direct};
use hoard_p2p::{BlockWithPath, Bytes, SlotHave};
use hoard_prover::{BLOCK_SIZE, DatasetId, SlotIndex};
use sha2::{Digest, Sha256};

/// Blocks per extent: one 64-bit word of the have-bitmap.
const EXTENT: u64 = 64;
/// First bytes of an index file.
const INDEX_MAGIC: &[u8; 4] = b"HRC1";

/// A cache problem. Callers treat it as "not cached": a download never fails because of it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CacheError {
    /// A file of the cache could not be read or written.
    #[error("reader cache: {what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The dataset is not in the cache.
    #[error("dataset {0} is not in the reader cache")]
    Unknown(DatasetId),
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CacheError {
    let path = path.to_path_buf();
    move |source| CacheError::Io { what, path, source }
}

/// What one dataset occupies in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CachedDataset {
    /// The dataset.
    pub(crate) dataset: DatasetId,
    /// The volume holding it.
    pub(crate) volume: PathBuf,
    /// Blocks held.
    pub(crate) blocks: u64,
    /// Bytes those take (blocks and their paths).
    pub(crate) bytes: u64,
    /// Unix milliseconds of the last read or write.
    pub(crate) last_used_ms: u64,
    /// Announced in Kademlia: other readers find this node as a source.
    pub(crate) announced: bool,
}

/// The reader cache of one node. Cheap to clone: clones share it. Its methods do file I/O:
/// call them off the async runtime (`spawn_blocking`).
#[derive(Debug, Clone)]
pub(crate) struct ReaderCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    volumes: Vec<Volume>,
    datasets: RwLock<HashMap<DatasetId, Arc<Entry>>>,
    /// Datasets announced as provided in Kademlia (set by the seeding task).
    announced: Mutex<std::collections::HashSet<DatasetId>>,
    /// Write buffers for direct I/O, reused so that no write faults in fresh pages.
    buffers: direct::Buffers,
}

#[derive(Debug)]
struct Volume {
    dir: PathBuf,
    capacity: u64,
    used: AtomicU64,
    /// One eviction pass at a time per volume.
    evicting: Mutex<()>,
}

#[derive(Debug)]
struct Entry {
    id: DatasetId,
    volume: usize,
    dir: PathBuf,
    blocks: u64,
    depth: usize,
    slots: Mutex<Vec<Option<Arc<Slot>>>>,
}

#[derive(Debug)]
struct Slot {
    index: SlotIndex,
    data: File,
    /// `data` opened again for direct-I/O writes; `None` where the filesystem has none.
    direct: Option<File>,
    paths: File,
    data_path: PathBuf,
    index_path: PathBuf,
    blocks: u64,
    depth: usize,
    bits: RwLock<Bits>,
    /// Held shared by each write and exclusively by an eviction, so that no extent is punched
    /// between a write of its blocks and the setting of their bits (a hole would then be served
    /// as data). `bits` itself is held only to read or set bits, never across I/O: serving a
    /// slot does not wait for a write to it, and writes of one slot run side by side.
    writing: RwLock<()>,
    /// Serialises commits and evictions of this slot (each writes the index).
    committing: Mutex<()>,
    last_used: Vec<AtomicU64>,
}

#[derive(Debug, Clone)]
struct Bits {
    /// Verified blocks written to the files: servable now.
    have: Vec<u64>,
    /// The subset known to be on disk (what the index file says).
    durable: Vec<u64>,
    count: u64,
    dirty: bool,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn bit(words: &[u64], i: u64) -> bool {
    words
        .get((i / 64) as usize)
        .is_some_and(|w| w & (1 << (i % 64)) != 0)
}

/// The depth of the path of every block of a slot of `blocks` blocks (the tree is padded to a
/// power of two).
fn path_depth(blocks: u64) -> usize {
    blocks.next_power_of_two().trailing_zeros() as usize
}

impl ReaderCache {
    /// The cache in `volumes` (`<volume>/cache`), each holding at most `capacity` bytes; loads
    /// what an earlier run left. Capacity 0 turns the cache off (nothing is kept).
    pub(crate) fn open(volumes: &[PathBuf], capacity: u64) -> Result<Self, CacheError> {
        let mut vols = Vec::new();
        let mut datasets = HashMap::new();
        for (v, dir) in volumes.iter().enumerate() {
            let dir = dir.join("cache");
            fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
            let mut used = 0;
            for item in fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
                let path = item.map_err(io_err("listing", &dir))?.path();
                match load_dataset(&path, v) {
                    Some(entry) => {
                        used += entry.bytes();
                        datasets.insert(entry.id, Arc::new(entry));
                    }
                    None => {
                        tracing::warn!(path = %path.display(), "dropping an unreadable reader-cache entry");
                        let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
                    }
                }
            }
            vols.push(Volume {
                dir,
                capacity,
                used: AtomicU64::new(used),
                evicting: Mutex::new(()),
            });
        }
        let cache = Self {
            inner: Arc::new(Inner {
                volumes: vols,
                datasets: RwLock::new(datasets),
                announced: Mutex::default(),
                buffers: direct::Buffers::default(),
            }),
        };
        // A smaller capacity than last time: trim now.
        for v in 0..cache.inner.volumes.len() {
            cache.make_room(v, 0);
        }
        Ok(cache)
    }

    /// Whether blocks are kept at all.
    pub(crate) fn enabled(&self) -> bool {
        self.inner.volumes.iter().any(|v| v.capacity > 0)
    }

    /// Bytes held, summed over the volumes.
    pub(crate) fn used_bytes(&self) -> u64 {
        self.inner
            .volumes
            .iter()
            .map(|v| v.used.load(Ordering::Relaxed))
            .sum()
    }

    /// Bytes allowed, summed over the volumes.
    pub(crate) fn capacity_bytes(&self) -> u64 {
        self.inner.volumes.iter().map(|v| v.capacity).sum()
    }

    /// Starts keeping blocks of the dataset of `manifest` (encoded as `bytes`): writes its
    /// manifest. Does nothing if it is already here or the cache is off.
    pub(crate) fn begin(&self, manifest: &Manifest, bytes: &[u8]) -> Result<(), CacheError> {
        let id = manifest.id();
        if !self.enabled() || self.entry(&id).is_some() {
            return Ok(());
        }
        let v = self.pick_volume();
        let dir = self.inner.volumes[v].dir.join(id.to_string());
        fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        write_atomic(&dir.join(MANIFEST_FILE), bytes)?;
        let entry = Entry::new(id, v, dir, manifest);
        self.write_datasets()
            .entry(id)
            .or_insert_with(|| Arc::new(entry));
        Ok(())
    }

    /// The encoded manifest of a cached dataset.
    pub(crate) fn manifest_bytes(&self, id: &DatasetId) -> Option<Vec<u8>> {
        let entry = self.entry(id)?;
        fs::read(entry.dir.join(MANIFEST_FILE)).ok()
    }

    /// The datasets in the cache.
    pub(crate) fn datasets(&self) -> Vec<CachedDataset> {
        let entries: Vec<Arc<Entry>> = self.read_datasets().values().cloned().collect();
        let announced = lock(&self.inner.announced).clone();
        let mut out: Vec<CachedDataset> = entries
            .iter()
            .map(|e| CachedDataset {
                dataset: e.id,
                volume: self.inner.volumes[e.volume]
                    .dir
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default(),
                blocks: e.held_blocks(),
                bytes: e.bytes(),
                last_used_ms: e.last_used(),
                announced: announced.contains(&e.id),
            })
            .collect();
        out.sort_by_key(|d| std::cmp::Reverse(d.last_used_ms));
        out
    }

    /// Stores verified blocks of slot `slot` (each already checked with `verify` against that
    /// slot's root). Returns how many were newly kept: fewer (or 0) when the cache is off, full
    /// of nothing it may evict, or the disk refused.
    pub(crate) fn put(
        &self,
        id: &DatasetId,
        slot: SlotIndex,
        blocks: &[BlockWithPath],
    ) -> Result<u64, CacheError> {
        let Some(entry) = self.entry(id) else {
            return Ok(0);
        };
        let s = entry.slot(slot, true)?.ok_or(CacheError::Unknown(*id))?;
        let fresh: Vec<&BlockWithPath> = {
            let bits = read(&s.bits);
            blocks
                .iter()
                .filter(|b| {
                    b.index < s.blocks
                        && b.data.len() == BLOCK_SIZE
                        && b.path.len() == s.depth
                        && !bit(&bits.have, b.index)
                })
                .collect()
        };
        if fresh.is_empty() {
            return Ok(0);
        }
        let need = fresh.len() as u64 * s.block_bytes();
        if !self.make_room(entry.volume, need) {
            return Ok(0);
        }
        let mut buffer = self.inner.buffers.take();
        let result = s.write(&fresh, &mut buffer);
        self.inner.buffers.give(buffer);
        let written = match result {
            Ok(n) => n,
            Err(e) => {
                self.inner.volumes[entry.volume]
                    .used
                    .fetch_sub(need, Ordering::Relaxed);
                return Err(e);
            }
        };
        let unused = need - written * s.block_bytes();
        self.inner.volumes[entry.volume]
            .used
            .fetch_sub(unused, Ordering::Relaxed);
        Ok(written)
    }

    /// Blocks `first .. first + count` of `slot` with their paths, if every one is held.
    pub(crate) fn read(
        &self,
        id: &DatasetId,
        slot: SlotIndex,
        first: u64,
        count: u32,
    ) -> Option<Vec<BlockWithPath>> {
        let s = self.entry(id)?.slot(slot, false).ok()??;
        s.read(first, count)
    }

    /// Whether every block of `first .. first + count` of `slot` is held.
    pub(crate) fn has(&self, id: &DatasetId, slot: SlotIndex, first: u64, count: u32) -> bool {
        let Some(Ok(Some(s))) = self.entry(id).map(|e| e.slot(slot, false)) else {
            return false;
        };
        let bits = read(&s.bits);
        (first..first.saturating_add(u64::from(count))).all(|i| bit(&bits.have, i))
    }

    /// The have-map of a dataset: per slot, the ranges held.
    pub(crate) fn have(&self, id: &DatasetId) -> Vec<SlotHave> {
        let Some(entry) = self.entry(id) else {
            return Vec::new();
        };
        let slots: Vec<Arc<Slot>> = lock(&entry.slots).iter().flatten().cloned().collect();
        let mut out = Vec::new();
        let mut budget = hoard_p2p::MAX_HAVE_RANGES;
        for s in slots {
            let bits = read(&s.bits);
            let mut ranges = Vec::new();
            let mut start = None;
            for i in 0..=s.blocks {
                let held = i < s.blocks && bit(&bits.have, i);
                match (held, start) {
                    (true, None) => start = Some(i),
                    (false, Some(a)) => {
                        if budget == 0 {
                            break;
                        }
                        ranges.push([a, i]);
                        budget -= 1;
                        start = None;
                    }
                    _ => {}
                }
            }
            if !ranges.is_empty() {
                out.push(SlotHave {
                    slot: s.index,
                    ranges,
                });
            }
        }
        out
    }

    /// Syncs what was written since the last commit and records it in the index files: after
    /// this, those blocks survive a crash. Called every few seconds and at shutdown.
    pub(crate) fn commit(&self) -> Result<(), CacheError> {
        let entries: Vec<Arc<Entry>> = self.read_datasets().values().cloned().collect();
        for e in entries {
            let slots: Vec<Arc<Slot>> = lock(&e.slots).iter().flatten().cloned().collect();
            for s in slots {
                s.commit()?;
            }
        }
        Ok(())
    }

    /// Drops one dataset, or everything (`None`); returns the bytes freed.
    pub(crate) fn clear(&self, id: Option<&DatasetId>) -> Result<u64, CacheError> {
        let removed: Vec<Arc<Entry>> = {
            let mut map = self.write_datasets();
            match id {
                Some(id) => map.remove(id).into_iter().collect(),
                None => map.drain().map(|(_, e)| e).collect(),
            }
        };
        if let Some(id) = id
            && removed.is_empty()
        {
            return Err(CacheError::Unknown(*id));
        }
        let mut freed = 0;
        for e in removed {
            let bytes = e.bytes();
            // Every index first: once they are gone nothing of the entry is served or reloaded.
            for s in lock(&e.slots).iter().flatten() {
                let _guard = lock(&s.committing);
                let mut bits = write(&s.bits);
                bits.have.fill(0);
                bits.durable.fill(0);
                bits.count = 0;
                let _ = fs::remove_file(&s.index_path);
            }
            fs::remove_dir_all(&e.dir).map_err(io_err("removing", &e.dir))?;
            self.inner.volumes[e.volume]
                .used
                .fetch_sub(bytes, Ordering::Relaxed);
            freed += bytes;
        }
        Ok(freed)
    }

    /// Records which datasets are announced in Kademlia now.
    pub(crate) fn set_announced(&self, ids: &std::collections::HashSet<DatasetId>) {
        *lock(&self.inner.announced) = ids.clone();
    }

    /// Datasets that hold at least one block.
    pub(crate) fn nonempty(&self) -> Vec<DatasetId> {
        self.read_datasets()
            .values()
            .filter(|e| e.held_blocks() > 0)
            .map(|e| e.id)
            .collect()
    }

    fn entry(&self, id: &DatasetId) -> Option<Arc<Entry>> {
        self.read_datasets().get(id).cloned()
    }

    fn pick_volume(&self) -> usize {
        (0..self.inner.volumes.len())
            .max_by_key(|v| {
                let vol = &self.inner.volumes[*v];
                vol.capacity
                    .saturating_sub(vol.used.load(Ordering::Relaxed))
            })
            .unwrap_or(0)
    }

    /// Reserves `need` bytes in volume `v`, evicting least recently used extents as needed.
    /// False (nothing reserved) if that cannot make room.
    fn make_room(&self, v: usize, need: u64) -> bool {
        let vol = &self.inner.volumes[v];
        if need > vol.capacity {
            return false;
        }
        let _one = lock(&vol.evicting);
        let used = vol.used.fetch_add(need, Ordering::Relaxed) + need;
        let mut over = used.saturating_sub(vol.capacity);
        while over > 0 {
            let Some((slot, extent)) = self.lru_extent(v) else {
                vol.used.fetch_sub(need, Ordering::Relaxed);
                return false;
            };
            match slot.evict(extent) {
                Ok(freed) => {
                    vol.used.fetch_sub(freed, Ordering::Relaxed);
                    over = over.saturating_sub(freed);
                }
                Err(e) => {
                    tracing::warn!(err = %e, "reader cache: eviction failed");
                    vol.used.fetch_sub(need, Ordering::Relaxed);
                    return false;
                }
            }
        }
        true
    }

    /// The least recently used extent holding blocks in volume `v`.
    fn lru_extent(&self, v: usize) -> Option<(Arc<Slot>, usize)> {
        let entries: Vec<Arc<Entry>> = self
            .read_datasets()
            .values()
            .filter(|e| e.volume == v)
            .cloned()
            .collect();
        let mut best: Option<(u64, Arc<Slot>, usize)> = None;
        for e in entries {
            for s in lock(&e.slots).iter().flatten() {
                let bits = read(&s.bits);
                for (x, word) in bits.have.iter().enumerate() {
                    if *word == 0 {
                        continue;
                    }
                    let t = s.last_used[x].load(Ordering::Relaxed);
                    if best.as_ref().is_none_or(|(b, _, _)| t < *b) {
                        best = Some((t, s.clone(), x));
                    }
                }
            }
        }
        best.map(|(_, s, x)| (s, x))
    }

    fn read_datasets(&self) -> std::sync::RwLockReadGuard<'_, HashMap<DatasetId, Arc<Entry>>> {
        read(&self.inner.datasets)
    }

    fn write_datasets(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<DatasetId, Arc<Entry>>> {
        write(&self.inner.datasets)
    }
}

// A panic while one of these locks is held cannot leave a torn value behind: every update is a
// few plain assignments, so the poison flag is ignored.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}
fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

impl Entry {
    fn new(id: DatasetId, volume: usize, dir: PathBuf, manifest: &Manifest) -> Self {
        let blocks = manifest.layout.slot_blocks();
        Self {
            id,
            volume,
            dir,
            blocks,
            depth: path_depth(blocks),
            slots: Mutex::new(vec![None; manifest.layout.slots()]),
        }
    }

    fn slot(&self, slot: SlotIndex, create: bool) -> Result<Option<Arc<Slot>>, CacheError> {
        let mut slots = lock(&self.slots);
        let Some(place) = slots.get_mut(usize::from(slot.0)) else {
            return Ok(None);
        };
        if place.is_none() && create {
            *place = Some(Arc::new(Slot::create(
                &self.dir,
                slot,
                self.blocks,
                self.depth,
            )?));
        }
        Ok(place.clone())
    }

    fn held_blocks(&self) -> u64 {
        lock(&self.slots)
            .iter()
            .flatten()
            .map(|s| read(&s.bits).count)
            .sum()
    }

    fn bytes(&self) -> u64 {
        lock(&self.slots)
            .iter()
            .flatten()
            .map(|s| read(&s.bits).count * s.block_bytes())
            .sum()
    }

    fn last_used(&self) -> u64 {
        lock(&self.slots)
            .iter()
            .flatten()
            .flat_map(|s| s.last_used.iter().map(|t| t.load(Ordering::Relaxed)))
            .max()
            .unwrap_or(0)
    }
}

impl Slot {
    fn files(dir: &Path, index: SlotIndex) -> (PathBuf, PathBuf, PathBuf) {
        let base = format!("slot-{:03}", index.0);
        (
            dir.join(format!("{base}.bin")),
            dir.join(format!("{base}.paths")),
            dir.join(format!("{base}.index")),
        )
    }

    fn create(dir: &Path, index: SlotIndex, blocks: u64, depth: usize) -> Result<Self, CacheError> {
        let (data_path, paths_path, index_path) = Self::files(dir, index);
        let open = |p: &Path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(p)
                .map_err(io_err("opening", p))
        };
        let words = blocks.div_ceil(EXTENT) as usize;
        let data = open(&data_path)?;
        let direct = direct::open(&data_path);
        Ok(Self {
            index,
            data,
            direct,
            paths: open(&paths_path)?,
            data_path,
            index_path,
            blocks,
            depth,
            bits: RwLock::new(Bits {
                have: vec![0; words],
                durable: vec![0; words],
                count: 0,
                dirty: false,
            }),
            writing: RwLock::new(()),
            committing: Mutex::new(()),
            last_used: (0..words).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    fn block_bytes(&self) -> u64 {
        (BLOCK_SIZE + 32 * self.depth) as u64
    }

    fn path_bytes(&self) -> u64 {
        (32 * self.depth) as u64
    }

    /// Writes blocks, then sets their bits. Returns how many it added (a block that another
    /// write of the same moment also wrote, with the same verified bytes, counts once). Each run
    /// of consecutive blocks is one write of the blocks (direct I/O, through `buffer`) and one
    /// of their paths.
    fn write(&self, blocks: &[&BlockWithPath], buffer: &mut Vec<u8>) -> Result<u64, CacheError> {
        let _no_eviction = read(&self.writing);
        let mut fresh: Vec<&BlockWithPath> = {
            let bits = read(&self.bits);
            blocks
                .iter()
                .copied()
                .filter(|b| !bit(&bits.have, b.index))
                .collect()
        };
        // In order and once each: runs are consecutive indices.
        fresh.sort_by_key(|b| b.index);
        fresh.dedup_by_key(|b| b.index);
        let mut n = 0;
        for run in fresh.chunk_by(|a, b| b.index == a.index + 1) {
            let first = run[0].index;
            self.write_data(run, buffer)?;
            let paths: Vec<u8> = run
                .iter()
                .flat_map(|b| b.path.iter().flatten())
                .copied()
                .collect();
            self.paths
                .write_all_at(&paths, first * self.path_bytes())
                .map_err(io_err("writing", &self.data_path))?;
            let now = now_ms();
            let mut bits = write(&self.bits);
            for b in run {
                let word = (b.index / 64) as usize;
                let mask = 1 << (b.index % 64);
                if bits.have[word] & mask == 0 {
                    bits.have[word] |= mask;
                    bits.count += 1;
                    n += 1;
                }
                self.last_used[word].store(now, Ordering::Relaxed);
            }
            bits.dirty = true;
        }
        Ok(n)
    }

    /// Writes the data of a run of consecutive blocks: one direct write from an aligned buffer,
    /// or a buffered write where direct I/O is not to be had.
    fn write_data(&self, run: &[&BlockWithPath], buffer: &mut Vec<u8>) -> Result<(), CacheError> {
        let at = run[0].index * BLOCK_SIZE as u64;
        if let Some(direct) = &self.direct {
            let aligned = direct::aligned(buffer, run.len() * BLOCK_SIZE);
            for (chunk, b) in aligned.chunks_exact_mut(BLOCK_SIZE).zip(run) {
                chunk.copy_from_slice(&b.data);
            }
            match direct.write_all_at(aligned, at) {
                Ok(()) => return Ok(()),
                // Refused (an alignment the device will not take): buffered below.
                Err(e) if direct::refused(&e) => {}
                Err(e) => return Err(io_err("writing", &self.data_path)(e)),
            }
        }
        for (i, b) in run.iter().enumerate() {
            self.data
                .write_all_at(&b.data, at + (i * BLOCK_SIZE) as u64)
                .map_err(io_err("writing", &self.data_path))?;
        }
        Ok(())
    }

    fn read(&self, first: u64, count: u32) -> Option<Vec<BlockWithPath>> {
        let bits = read(&self.bits);
        let end = first.checked_add(u64::from(count))?;
        if end > self.blocks || !(first..end).all(|i| bit(&bits.have, i)) {
            return None;
        }
        let mut out = Vec::with_capacity(count as usize);
        let mut raw = vec![0u8; 32 * self.depth];
        for i in first..end {
            let mut data = vec![0u8; BLOCK_SIZE];
            self.data
                .read_exact_at(&mut data, i * BLOCK_SIZE as u64)
                .ok()?;
            self.paths
                .read_exact_at(&mut raw, i * self.path_bytes())
                .ok()?;
            let path = raw
                .chunks_exact(32)
                .map(|c| <[u8; 32]>::try_from(c).unwrap_or_default())
                .collect();
            out.push(BlockWithPath {
                index: i,
                data: Bytes::from(data),
                path,
            });
        }
        drop(bits);
        let now = now_ms();
        for x in first / EXTENT..=(end - 1) / EXTENT {
            if let Some(t) = self.last_used.get(x as usize) {
                t.store(now, Ordering::Relaxed);
            }
        }
        Some(out)
    }

    fn commit(&self) -> Result<(), CacheError> {
        let _one = lock(&self.committing);
        let snapshot = {
            let mut bits = write(&self.bits);
            if !bits.dirty {
                return Ok(());
            }
            bits.dirty = false;
            bits.have.clone()
        };
        // The bytes of every block in the snapshot were written before its bit was set.
        self.data
            .sync_data()
            .map_err(io_err("syncing", &self.data_path))?;
        self.paths
            .sync_data()
            .map_err(io_err("syncing", &self.data_path))?;
        write(&self.bits).durable = snapshot.clone();
        self.write_index(&snapshot)
    }

    /// Drops extent `x`: its bits on disk first, then its bytes. Returns the bytes freed.
    fn evict(&self, x: usize) -> Result<u64, CacheError> {
        let _one = lock(&self.committing);
        let _no_writes = write(&self.writing);
        // Readers still reading the extent hold `bits`: they finish before its bits go, and
        // later ones find it gone.
        let (n, durable) = {
            let mut bits = write(&self.bits);
            let Some(word) = bits.have.get(x).copied() else {
                return Ok(0);
            };
            let n = u64::from(word.count_ones());
            bits.have[x] = 0;
            bits.durable[x] = 0;
            bits.count -= n;
            (n, bits.durable.clone())
        };
        self.write_index(&durable)?;
        let first = x as u64 * EXTENT;
        let punch = |f: &File, unit: u64| {
            rustix::fs::fallocate(
                f,
                rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE,
                first * unit,
                EXTENT * unit,
            )
        };
        if let Err(e) = punch(&self.data, BLOCK_SIZE as u64)
            .and_then(|()| punch(&self.paths, self.path_bytes().max(1)))
        {
            // The bits are gone, so nothing stale is served; only the disk space stays taken.
            tracing::debug!(err = %e, "reader cache: cannot punch a hole");
        }
        Ok(n * self.block_bytes())
    }

    fn write_index(&self, words: &[u64]) -> Result<(), CacheError> {
        let mut bytes = Vec::with_capacity(20 + words.len() * 16 + 32);
        bytes.extend_from_slice(INDEX_MAGIC);
        bytes.extend_from_slice(&self.blocks.to_le_bytes());
        bytes.extend_from_slice(&(self.depth as u32).to_le_bytes());
        bytes.extend_from_slice(&(words.len() as u32).to_le_bytes());
        for w in words {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        for t in &self.last_used {
            bytes.extend_from_slice(&t.load(Ordering::Relaxed).to_le_bytes());
        }
        let sum = Sha256::digest(&bytes);
        bytes.extend_from_slice(&sum);
        write_atomic(&self.index_path, &bytes)
    }

    /// Reopens slot `index` of `dir` from its index file; `None` if there is none or it does not
    /// check out (the slot's files are then removed).
    fn load(dir: &Path, index: SlotIndex, blocks: u64, depth: usize) -> Option<Self> {
        let (data_path, paths_path, index_path) = Self::files(dir, index);
        let bytes = fs::read(&index_path).ok();
        let parsed = bytes.as_deref().and_then(|b| parse_index(b, blocks, depth));
        let Some((words, last_used)) = parsed else {
            for p in [&data_path, &paths_path, &index_path] {
                let _ = fs::remove_file(p);
            }
            return None;
        };
        let slot = Self::create(dir, index, blocks, depth).ok()?;
        let count = words.iter().map(|w| u64::from(w.count_ones())).sum();
        {
            let mut bits = write(&slot.bits);
            bits.have = words.clone();
            bits.durable = words;
            bits.count = count;
        }
        for (t, v) in slot.last_used.iter().zip(last_used) {
            t.store(v, Ordering::Relaxed);
        }
        Some(slot)
    }
}

fn parse_index(b: &[u8], blocks: u64, depth: usize) -> Option<(Vec<u64>, Vec<u64>)> {
    let words = blocks.div_ceil(EXTENT) as usize;
    if b.len() != 20 + words * 16 + 32 || &b[..4] != INDEX_MAGIC {
        return None;
    }
    let (body, sum) = b.split_at(b.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return None;
    }
    let u64_at = |o: usize| u64::from_le_bytes(body[o..o + 8].try_into().unwrap_or_default());
    let u32_at = |o: usize| u32::from_le_bytes(body[o..o + 4].try_into().unwrap_or_default());
    if u64_at(4) != blocks || u32_at(12) as usize != depth || u32_at(16) as usize != words {
        return None;
    }
    let mut have: Vec<u64> = (0..words).map(|i| u64_at(20 + 8 * i)).collect();
    // Bits past the slot's end would claim blocks that do not exist.
    if !blocks.is_multiple_of(EXTENT)
        && let Some(last) = have.last_mut()
    {
        *last &= (1u64 << (blocks % EXTENT)) - 1;
    }
    let last_used = (0..words).map(|i| u64_at(20 + 8 * (words + i))).collect();
    Some((have, last_used))
}

/// Reopens one dataset folder of the cache.
fn load_dataset(dir: &Path, volume: usize) -> Option<Entry> {
    let id: DatasetId = dir.file_name()?.to_str()?.parse().ok()?;
    let bytes = fs::read(dir.join(MANIFEST_FILE)).ok()?;
    let manifest = Manifest::decode(&bytes).ok()?;
    if manifest.id() != id {
        return None;
    }
    let entry = Entry::new(id, volume, dir.to_path_buf(), &manifest);
    {
        let mut slots = lock(&entry.slots);
        for (i, place) in slots.iter_mut().enumerate() {
            *place = Slot::load(dir, SlotIndex(i as u16), entry.blocks, entry.depth).map(Arc::new);
        }
    }
    Some(entry)
}

/// Writes `bytes` to `path` crash-safely: temp file, fsync, rename, fsync of the folder.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io_err("creating", &tmp))?;
    f.write_all(bytes).map_err(io_err("writing", &tmp))?;
    f.sync_all().map_err(io_err("syncing", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("renaming", &tmp))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("syncing", dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use hoard_prover::{Hash, SlotTree, block_root};

    use super::*;

    /// A manifest-free fixture: a 1-slot-of-interest dataset whose manifest we make by packing.
    struct Fixture {
        _dir: tempfile::TempDir,
        volume: PathBuf,
        manifest: Manifest,
        bytes: Vec<u8>,
        tree: SlotTree,
        data: Vec<Vec<u8>>,
    }

    fn fixture(blocks: u64) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in.bin");
        let len = (blocks as usize) * BLOCK_SIZE;
        let content: Vec<u8> = (0..len).map(|i| (i * 7 + i / 65536) as u8).collect();
        fs::write(&input, &content).expect("write");
        let packed = dir.path().join("packed");
        let p =
            hoard_dataset::pack(&input, &packed, 1, 1, &hoard_dataset::NoProgress).expect("pack");
        let bytes = fs::read(packed.join(MANIFEST_FILE)).expect("manifest");
        let manifest = Manifest::decode(&bytes).expect("decode");
        assert_eq!(manifest.id(), p.id);
        let data: Vec<Vec<u8>> = content.chunks(BLOCK_SIZE).map(<[u8]>::to_vec).collect();
        let roots: Vec<Hash> = data
            .iter()
            .map(|b| block_root(b.as_slice().try_into().expect("block")))
            .collect();
        let tree = SlotTree::from_block_roots(&roots).expect("tree");
        assert_eq!(tree.root(), manifest.slot_roots[0]);
        let volume = dir.path().join("vol");
        fs::create_dir_all(&volume).expect("volume");
        Fixture {
            _dir: dir,
            volume,
            manifest,
            bytes,
            tree,
            data,
        }
    }

    impl Fixture {
        fn block(&self, i: u64) -> BlockWithPath {
            BlockWithPath {
                index: i,
                data: Bytes::from(self.data[i as usize].clone()),
                path: self
                    .tree
                    .block_path(i)
                    .expect("in range")
                    .iter()
                    .map(|h| h.0)
                    .collect(),
            }
        }
        fn blocks(&self, r: std::ops::Range<u64>) -> Vec<BlockWithPath> {
            r.map(|i| self.block(i)).collect()
        }
    }

    /// A cache with room for two extents (128 blocks) of a 256-block fixture, the dataset
    /// begun; and the bytes one block takes in it.
    fn two_extents(f: &Fixture) -> (ReaderCache, u64) {
        let per_block = (BLOCK_SIZE + 32 * path_depth(256)) as u64;
        let cache =
            ReaderCache::open(std::slice::from_ref(&f.volume), 128 * per_block).expect("open");
        cache.begin(&f.manifest, &f.bytes).expect("begin");
        (cache, per_block)
    }

    #[test]
    fn direct_and_buffered_writes_keep_the_same_blocks() {
        let f = fixture(12);
        let depth = path_depth(12);
        let picked: Vec<BlockWithPath> = [0, 1, 2, 5, 7, 8, 9, 11].map(|i| f.block(i)).into();
        let picked: Vec<&BlockWithPath> = picked.iter().collect();
        let mut buffer = Vec::new();
        for direct in [true, false] {
            let dir = f.volume.join(format!("direct-{direct}"));
            fs::create_dir_all(&dir).expect("dir");
            let mut slot = Slot::create(&dir, SlotIndex(0), 12, depth).expect("slot");
            if !direct {
                slot.direct = None;
            }
            // Runs 0..3, 5, 7..10 and 11; block 1 again is skipped, not written twice, and a
            // block given twice in one call counts once.
            let mut twice = picked.clone();
            twice.push(picked[3]);
            assert_eq!(slot.write(&twice, &mut buffer).expect("write"), 8);
            assert_eq!(read(&slot.bits).count, 8);
            assert_eq!(slot.write(&picked[1..2], &mut buffer).expect("write"), 0);
            for b in &picked {
                let got = slot.read(b.index, 1).expect("held");
                assert_eq!(got[0].data, b.data, "block {} (direct {direct})", b.index);
                assert_eq!(got[0].path, b.path);
            }
            assert!(slot.read(3, 1).is_none() && slot.read(10, 1).is_none());
        }
    }

    #[test]
    fn blocks_come_back_verified_and_survive_a_restart_only_once_committed() {
        let f = fixture(100);
        let id = f.manifest.id();
        let root = f.manifest.slot_roots[0];
        let cache = ReaderCache::open(std::slice::from_ref(&f.volume), 1 << 30).expect("open");
        cache.begin(&f.manifest, &f.bytes).expect("begin");
        assert_eq!(
            cache.put(&id, SlotIndex(0), &f.blocks(0..20)).expect("put"),
            20
        );
        assert_eq!(
            cache
                .put(&id, SlotIndex(0), &f.blocks(10..30))
                .expect("put"),
            10
        );
        // Read back: every block verifies against the slot root by its stored path.
        let got = cache.read(&id, SlotIndex(0), 3, 16).expect("held");
        for (b, i) in got.iter().zip(3..) {
            assert_eq!(b.verify(&root, i), f.block(i).verify(&root, i));
            assert!(b.verify(&root, i).is_ok());
        }
        assert!(
            cache.read(&id, SlotIndex(0), 25, 16).is_none(),
            "30.. not held"
        );
        assert!(
            cache.read(&id, SlotIndex(1), 0, 1).is_none(),
            "another slot"
        );
        assert_eq!(
            cache.have(&id),
            vec![SlotHave {
                slot: SlotIndex(0),
                ranges: vec![[0, 30]]
            }]
        );
        cache.commit().expect("commit");
        cache
            .put(&id, SlotIndex(0), &f.blocks(50..60))
            .expect("put");
        // A "crash" now: blocks 50..60 were never committed, so a new process must not claim them.
        drop(cache);
        let again = ReaderCache::open(std::slice::from_ref(&f.volume), 1 << 30).expect("reopen");
        assert_eq!(again.manifest_bytes(&id), Some(f.bytes.clone()));
        assert_eq!(
            again.have(&id),
            vec![SlotHave {
                slot: SlotIndex(0),
                ranges: vec![[0, 30]]
            }]
        );
        assert!(again.read(&id, SlotIndex(0), 50, 1).is_none());
        let b = again.read(&id, SlotIndex(0), 29, 1).expect("held");
        assert!(b[0].verify(&root, 29).is_ok());
        assert_eq!(again.nonempty(), vec![id]);
    }

    #[test]
    fn a_damaged_index_drops_the_slot_instead_of_serving_it() {
        let f = fixture(10);
        let id = f.manifest.id();
        let cache = ReaderCache::open(std::slice::from_ref(&f.volume), 1 << 30).expect("open");
        cache.begin(&f.manifest, &f.bytes).expect("begin");
        cache.put(&id, SlotIndex(0), &f.blocks(0..10)).expect("put");
        cache.commit().expect("commit");
        drop(cache);
        let index = f
            .volume
            .join("cache")
            .join(id.to_string())
            .join("slot-000.index");
        let mut bytes = fs::read(&index).expect("index");
        bytes[21] ^= 0xff;
        fs::write(&index, bytes).expect("damage");
        let again = ReaderCache::open(std::slice::from_ref(&f.volume), 1 << 30).expect("reopen");
        assert!(again.have(&id).is_empty());
        assert!(again.read(&id, SlotIndex(0), 0, 1).is_none());
    }

    #[test]
    fn writes_side_by_side_with_evictions_count_each_block_once_and_serve_only_what_is_written() {
        let f = fixture(256);
        let id = f.manifest.id();
        // The writers below keep evicting each other's extents.
        let (cache, per_block) = two_extents(&f);
        let root = f.manifest.slot_roots[0];
        std::thread::scope(|scope| {
            for t in 0..4u64 {
                let (cache, f) = (&cache, &f);
                scope.spawn(move || {
                    // Overlapping runs of 16: every block is written by two threads at once.
                    for round in 0..6u64 {
                        let first = (t * 8 + round * 40) % 240;
                        cache
                            .put(&id, SlotIndex(0), &f.blocks(first..first + 16))
                            .expect("put");
                        if let Some(got) = cache.read(&id, SlotIndex(0), first, 16) {
                            for b in got {
                                let i = b.index;
                                assert!(b.verify(&root, i).is_ok(), "block {i} served");
                            }
                        }
                    }
                });
            }
        });
        let held: u64 = cache
            .have(&id)
            .iter()
            .flat_map(|h| h.ranges.iter())
            .map(|[a, b]| b - a)
            .sum();
        assert!(held > 0);
        assert_eq!(
            cache.used_bytes(),
            held * per_block,
            "each block counted once"
        );
        assert!(cache.used_bytes() <= 128 * per_block);
        for h in cache.have(&id) {
            for [a, b] in h.ranges {
                for i in a..b {
                    let got = cache.read(&id, SlotIndex(0), i, 1).expect("held");
                    assert!(got[0].verify(&root, i).is_ok(), "block {i}");
                }
            }
        }
    }

    #[test]
    fn a_full_cache_evicts_the_least_recently_used_extent_and_never_overflows() {
        let f = fixture(256);
        let id = f.manifest.id();
        let (cache, per_block) = two_extents(&f);
        assert_eq!(
            cache.put(&id, SlotIndex(0), &f.blocks(0..64)).expect("put"),
            64
        );
        assert_eq!(
            cache
                .put(&id, SlotIndex(0), &f.blocks(64..128))
                .expect("put"),
            64
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
        // Reading extent 0 makes extent 1 the least recently used.
        assert!(cache.read(&id, SlotIndex(0), 0, 1).is_some());
        assert_eq!(
            cache
                .put(&id, SlotIndex(0), &f.blocks(128..192))
                .expect("put"),
            64
        );
        assert!(cache.used_bytes() <= 128 * per_block);
        assert!(cache.has(&id, SlotIndex(0), 0, 16));
        assert!(!cache.has(&id, SlotIndex(0), 64, 1), "extent 1 was evicted");
        assert!(cache.has(&id, SlotIndex(0), 128, 16));
        let root = f.manifest.slot_roots[0];
        for b in cache.read(&id, SlotIndex(0), 128, 16).expect("held") {
            let i = b.index;
            assert!(b.verify(&root, i).is_ok());
        }
        // The eviction is on disk too.
        drop(cache);
        let again =
            ReaderCache::open(std::slice::from_ref(&f.volume), 128 * per_block).expect("reopen");
        assert!(!again.has(&id, SlotIndex(0), 64, 1));
        drop(again);
        // A smaller cache trims at start; more than fits at all is refused.
        let small =
            ReaderCache::open(std::slice::from_ref(&f.volume), 10 * per_block).expect("reopen");
        assert!(small.used_bytes() <= 10 * per_block);
        assert_eq!(
            small.put(&id, SlotIndex(0), &f.blocks(0..16)).expect("put"),
            0
        );
        assert_eq!(
            small.put(&id, SlotIndex(0), &f.blocks(0..8)).expect("put"),
            8
        );
        drop(small);
        let again =
            ReaderCache::open(std::slice::from_ref(&f.volume), 128 * per_block).expect("reopen");
        // Clearing removes everything.
        again.clear(Some(&id)).expect("clear");
        assert!(again.datasets().is_empty());
        assert!(!f.volume.join("cache").join(id.to_string()).exists());
    }

    #[test]
    fn blocks_that_do_not_fit_the_slot_are_not_kept() {
        let f = fixture(10);
        let id = f.manifest.id();
        let cache = ReaderCache::open(std::slice::from_ref(&f.volume), 1 << 30).expect("open");
        cache.begin(&f.manifest, &f.bytes).expect("begin");
        let mut short = f.block(1);
        short.data.truncate(100);
        let mut long_path = f.block(2);
        long_path.path.push([0; 32]);
        let mut outside = f.block(3);
        outside.index = 99;
        assert_eq!(
            cache
                .put(&id, SlotIndex(0), &[short, long_path, outside])
                .expect("put"),
            0
        );
        // Off: nothing kept.
        let off = ReaderCache::open(std::slice::from_ref(&f.volume), 0).expect("open");
        assert!(!off.enabled());
    }
}
