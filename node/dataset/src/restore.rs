//! [`Restore`]: writing a dataset's files straight from verified blocks, in any order, with no
//! intermediate slot files; resumable after a crash or a kill.
//!
//! ```text
//!  Restore::start(out, manifest, paths) ─▶ <parent>/.<name>.hoard-partial   (files, folders, links)
//!                                          <parent>/.<name>.hoard-get       (journal: blocks done)
//!  write_block(stream block, bytes) ×N   ─▶ pwrite into the files (only the selected ones)
//!  write_run(first block, blocks)        ─▶ the same for consecutive blocks: direct I/O for the
//!                                           aligned middle of each file's part, buffered edges
//!  checkpoint()                         ─▶ fsync the files written, then the journal (temp → rename)
//!  commit()                             ─▶ fsync, journal removed, partial renamed to out
//! ```
//!
//! A second `start` for the same dataset, paths and output finds the partial output and its
//! journal and goes on from the blocks the journal lists (blocks written after the last
//! checkpoint are simply written again). The journal is written only after the files it
//! describes were synced, so it never claims a block that is not on disk.

use std::{
    collections::{HashMap, HashSet},
    fs::{self, File},
    io::Write as _,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
};

use hoard_prover::BLOCK_SIZE;
use sha2::{Digest, Sha256};

use crate::{
    direct,
    error::{DatasetError, IoContext},
    manifest::{DatasetId, Entry, EntryKind, Manifest},
    packed::{parent_of, sync_dir},
};

const JOURNAL_MAGIC: &[u8; 4] = b"HRJ1";
/// Files kept open at once.
const MAX_OPEN: usize = 64;

/// Checks a path asked for by a person or a client (`hoard get --path`, the HTTP gateway) and
/// returns it in manifest form: `/`-separated, no leading or trailing `/`, no empty, `.` or `..`
/// component, no NUL. The empty string (or `/`) means the dataset root.
pub fn normalise_path(path: &str) -> Result<String, DatasetError> {
    let bad = || DatasetError::BadPath(path.to_owned());
    if path.starts_with('/') && path != "/" || path.contains('\0') || path.contains('\\') {
        return Err(bad());
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    if trimmed
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(bad());
    }
    Ok(trimmed.to_owned())
}

/// The entries `paths` select: each path picks the entry with that path and, for a folder,
/// everything under it; the folders above what is picked come along. Links come along only with
/// their target. No paths means everything. Errors name a path that is invalid or picks nothing.
pub fn select<'m>(
    manifest: &'m Manifest,
    paths: &[String],
) -> Result<Vec<&'m Entry>, DatasetError> {
    if paths.is_empty() {
        return Ok(manifest.entries.iter().collect());
    }
    let mut wanted = Vec::new();
    for p in paths {
        let p = normalise_path(p)?;
        if p.is_empty() {
            return Ok(manifest.entries.iter().collect());
        }
        if !manifest.entries.iter().any(|e| under(&e.path, &p)) {
            return Err(DatasetError::NoSuchPath(p));
        }
        wanted.push(p);
    }
    let picked = |e: &Entry| wanted.iter().any(|p| under(&e.path, p));
    let mut keep: HashSet<&str> = HashSet::new();
    for e in &manifest.entries {
        if picked(e) && !matches!(e.kind, EntryKind::Link { .. }) {
            keep.insert(&e.path);
            let mut parent = e.path.as_str();
            while let Some((up, _)) = parent.rsplit_once('/') {
                keep.insert(up);
                parent = up;
            }
        }
    }
    let mut out: Vec<&Entry> = Vec::new();
    for e in &manifest.entries {
        let kept = match &e.kind {
            EntryKind::Link { target } => picked(e) && keep.contains(target.as_str()),
            _ => keep.contains(e.path.as_str()),
        };
        if kept {
            out.push(e);
        }
    }
    Ok(out)
}

/// `path` is `prefix` or lies under the folder `prefix`.
fn under(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The blocks of the dataset stream that cover `[offset, offset + size)`.
pub fn covering_blocks(offset: u64, size: u64) -> std::ops::Range<u64> {
    if size == 0 {
        return 0..0;
    }
    offset / BLOCK_SIZE as u64..(offset + size).div_ceil(BLOCK_SIZE as u64)
}

/// A restore in progress. Its methods may be called from several threads at once.
#[derive(Debug)]
pub struct Restore {
    id: DatasetId,
    selection: [u8; 32],
    partial: PathBuf,
    target: PathBuf,
    journal: PathBuf,
    directory: bool,
    /// (path, stream offset, size) of each selected non-empty file, ascending by offset.
    files: Vec<(PathBuf, u64, u64)>,
    /// Stream blocks to write, as a bitmap.
    wanted: Vec<u64>,
    stream_blocks: u64,
    state: Mutex<State>,
    buffers: direct::Buffers,
}

#[derive(Debug, Default)]
struct State {
    done: Vec<u64>,
    open: HashMap<usize, Arc<OpenFile>>,
    dirty: HashSet<usize>,
}

/// An output file opened for writing, and again for direct writes once a run needs it.
#[derive(Debug)]
struct OpenFile {
    file: File,
    /// `None`: the filesystem has no direct I/O.
    direct: OnceLock<Option<File>>,
}

fn bit(words: &[u64], i: u64) -> bool {
    words
        .get((i / 64) as usize)
        .is_some_and(|w| w & (1 << (i % 64)) != 0)
}

impl Restore {
    /// Starts (or resumes) restoring the entries `paths` select (all for none) of `manifest` to
    /// `out`. A directory dataset goes to the folder `out` (absent or empty); a single file to
    /// the file `out`, or under its own name inside the folder `out`.
    pub fn start(out: &Path, manifest: &Manifest, paths: &[String]) -> Result<Self, DatasetError> {
        let entries = select(manifest, paths)?;
        let (target, partial, journal) = places(out, manifest)?;
        let mut sel = Sha256::new();
        for e in &entries {
            sel.update(e.path.as_bytes());
            sel.update([0]);
        }
        let selection: [u8; 32] = sel.finalize().into();
        let stream_blocks = manifest.size.div_ceil(BLOCK_SIZE as u64);
        let words = stream_blocks.div_ceil(64) as usize;
        let mut wanted = vec![0u64; words];
        let mut files = Vec::new();
        for e in &entries {
            if let EntryKind::File { offset, size } = e.kind
                && size > 0
            {
                for b in covering_blocks(offset, size) {
                    wanted[(b / 64) as usize] |= 1 << (b % 64);
                }
                let path = if manifest.directory {
                    partial.join(&e.path)
                } else {
                    partial.clone()
                };
                files.push((path, offset, size));
            }
        }
        let this = Self {
            id: manifest.id(),
            selection,
            partial,
            target,
            journal,
            directory: manifest.directory,
            files,
            wanted,
            stream_blocks,
            state: Mutex::new(State::default()),
            buffers: direct::Buffers::default(),
        };
        let resumed = this.read_journal();
        match resumed {
            Some(done) if this.partial.exists() => this.lock().done = done,
            _ => {
                check_free(&this.target)?;
                this.remove_partial();
                this.create(&entries)?;
                this.lock().done = vec![0; words];
                this.write_journal(&vec![0; words])?;
            }
        }
        Ok(this)
    }

    /// Removes what an interrupted restore of `manifest` to `out` left (its partial output and
    /// journal), if anything.
    pub fn discard(out: &Path, manifest: &Manifest) {
        if let Ok((_, partial, journal)) = places(out, manifest) {
            let _ = fs::remove_dir_all(&partial).or_else(|_| fs::remove_file(&partial));
            let _ = fs::remove_file(&journal);
        }
    }

    /// Where the finished output will be.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The stream blocks still to write, ascending.
    pub fn missing(&self) -> Vec<u64> {
        let state = self.lock();
        (0..self.stream_blocks)
            .filter(|b| bit(&self.wanted, *b) && !bit(&state.done, *b))
            .collect()
    }

    /// Stream blocks already written (on a resume: those the journal listed).
    pub fn done_count(&self) -> u64 {
        let state = self.lock();
        (0..self.stream_blocks)
            .filter(|b| bit(&self.wanted, *b) && bit(&state.done, *b))
            .count() as u64
    }

    /// Bytes of the selected files.
    pub fn selected_bytes(&self) -> u64 {
        self.files.iter().map(|(_, _, s)| s).sum()
    }

    /// Writes stream block `block` (its 65,536 bytes, already verified) into the files it
    /// covers; bytes of files not selected and padding past the end are dropped.
    pub fn write_block(&self, block: u64, data: &[u8]) -> Result<(), DatasetError> {
        if block >= self.stream_blocks || !bit(&self.wanted, block) {
            return Ok(());
        }
        for (i, path, range, at) in self.spans(block, data.len()) {
            self.file(i)?
                .file
                .write_all_at(&data[range], at)
                .ctx("writing", path)?;
            self.lock().dirty.insert(i);
        }
        let mut state = self.lock();
        if let Some(w) = state.done.get_mut((block / 64) as usize) {
            *w |= 1 << (block % 64);
        }
        Ok(())
    }

    /// Writes the consecutive stream blocks `first, first + 1, …` (`blocks`, full and verified),
    /// as [`write_block`](Self::write_block) does, with fewer and cheaper writes: each file's
    /// part is one direct write of its 4 KiB-aligned middle (copied through a reused aligned
    /// buffer) and buffered writes of the edges. Falls back to block by block when a block is
    /// short, past the end or not wanted.
    pub fn write_run(&self, first: u64, blocks: &[&[u8]]) -> Result<(), DatasetError> {
        let n = blocks.len() as u64;
        let plain = blocks.iter().any(|b| b.len() != BLOCK_SIZE)
            || first
                .checked_add(n)
                .is_none_or(|end| end > self.stream_blocks)
            || (first..first + n).any(|b| !bit(&self.wanted, b));
        if plain {
            for (b, data) in (first..).zip(blocks) {
                self.write_block(b, data)?;
            }
            return Ok(());
        }
        let offset = first * BLOCK_SIZE as u64;
        // Stream bytes [from, from + dst.len()) of the run into `dst`.
        let gather = |from: u64, dst: &mut [u8]| {
            let mut at = (from - offset) as usize;
            let mut filled = 0;
            while filled < dst.len() {
                let (block, inside) = (at / BLOCK_SIZE, at % BLOCK_SIZE);
                let take = (BLOCK_SIZE - inside).min(dst.len() - filled);
                dst[filled..filled + take].copy_from_slice(&blocks[block][inside..inside + take]);
                filled += take;
                at += take;
            }
        };
        let spans: Vec<(usize, std::ops::Range<usize>, u64)> = self
            .spans(first, blocks.len() * BLOCK_SIZE)
            .map(|(i, _, range, at)| (i, range, at))
            .collect();
        let mut buffer = self.buffers.take();
        let result = spans.into_iter().try_for_each(|(i, range, at)| {
            let path = &self.files[i].0;
            let stream_at = offset + range.start as u64;
            let end = at + range.len() as u64;
            let align = direct::ALIGN as u64;
            let (inner_start, inner_end) = (at.next_multiple_of(align), end / align * align);
            let open = self.file(i)?;
            let buffered = |from: u64, to: u64| -> Result<(), DatasetError> {
                if to > from {
                    let mut bytes = vec![0u8; (to - from) as usize];
                    gather(stream_at + (from - at), &mut bytes);
                    open.file.write_all_at(&bytes, from).ctx("writing", path)?;
                }
                Ok(())
            };
            let mut wrote_middle = false;
            if inner_end > inner_start
                && let Some(f) = open.direct.get_or_init(|| direct::open(path))
            {
                let middle = direct::aligned(&mut buffer, (inner_end - inner_start) as usize);
                gather(stream_at + (inner_start - at), middle);
                match f.write_all_at(middle, inner_start) {
                    Ok(()) => wrote_middle = true,
                    Err(e) if direct::refused(&e) => {}
                    Err(e) => return Err(e).ctx("writing", path),
                }
            }
            if wrote_middle {
                buffered(at, inner_start)?;
                buffered(inner_end, end)?;
            } else {
                buffered(at, end)?;
            }
            self.lock().dirty.insert(i);
            Ok(())
        });
        self.buffers.give(buffer);
        result?;
        let mut state = self.lock();
        for b in first..first + n {
            if let Some(w) = state.done.get_mut((b / 64) as usize) {
                *w |= 1 << (b % 64);
            }
        }
        Ok(())
    }

    /// The selected files stream block `block` (`len` bytes) covers: for each, its index, its
    /// path, the part of the block that lies in it and where that part starts in the file.
    fn spans(
        &self,
        block: u64,
        len: usize,
    ) -> impl Iterator<Item = (usize, &Path, std::ops::Range<usize>, u64)> {
        let offset = block * BLOCK_SIZE as u64;
        let end = offset + len as u64;
        let first = self.files.partition_point(|(_, o, s)| o + s <= offset);
        self.files
            .iter()
            .enumerate()
            .skip(first)
            .take_while(move |(_, (_, o, _))| *o < end)
            .map(move |(i, (path, o, s))| {
                let from = offset.max(*o);
                let to = end.min(o + s);
                let range = (from - offset) as usize..(to - offset) as usize;
                (i, path.as_path(), range, from - o)
            })
    }

    /// Makes the blocks written so far survive a crash: syncs the files written to, then
    /// records the blocks in the journal.
    pub fn checkpoint(&self) -> Result<(), DatasetError> {
        let (done, dirty) = {
            let mut state = self.lock();
            let dirty: Vec<usize> = state.dirty.drain().collect();
            (state.done.clone(), dirty)
        };
        for i in dirty {
            let f = self.file(i)?;
            f.file.sync_data().ctx("syncing", &self.files[i].0)?;
        }
        self.write_journal(&done)
    }

    /// Finishes: every wanted block must have been written. Syncs, removes the journal and
    /// renames the partial output into place. (It takes `&self` so that a writer still holding
    /// the restore, e.g. a late second copy of a block being checked, need not be waited for;
    /// nothing is written after this.)
    pub fn commit(&self) -> Result<PathBuf, DatasetError> {
        let missing = self.missing().len() as u64;
        if missing > 0 {
            return Err(DatasetError::Incomplete {
                out: self.target.clone(),
                missing,
            });
        }
        {
            let mut state = self.lock();
            state.open.clear();
        }
        for (path, _, _) in &self.files {
            File::open(path)
                .and_then(|f| f.sync_all())
                .ctx("syncing", path)?;
        }
        if self.directory {
            sync_tree(&self.partial)?;
        }
        check_free(&self.target)?;
        fs::rename(&self.partial, &self.target)
            .ctx("moving the finished output to", &self.target)?;
        let _ = fs::remove_file(&self.journal);
        sync_dir(&parent_of(&self.target)?)?;
        Ok(self.target.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain bitmap and map updates: a panic elsewhere cannot leave them torn.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn file(&self, i: usize) -> Result<Arc<OpenFile>, DatasetError> {
        if let Some(f) = self.lock().open.get(&i) {
            return Ok(f.clone());
        }
        let path = &self.files[i].0;
        let f = Arc::new(OpenFile {
            file: fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .ctx("opening", path)?,
            direct: OnceLock::new(),
        });
        let mut state = self.lock();
        if state.open.len() >= MAX_OPEN {
            // Dirty files are synced by path at the checkpoint: closing them loses nothing.
            state.open.clear();
        }
        state.open.insert(i, f.clone());
        Ok(f)
    }

    fn create(&self, entries: &[&Entry]) -> Result<(), DatasetError> {
        if !self.directory {
            let (path, _, size) = (&self.partial, 0, self.files.first().map_or(0, |f| f.2));
            File::create(path)
                .and_then(|f| f.set_len(size))
                .ctx("creating", path)?;
            return Ok(());
        }
        fs::create_dir(&self.partial).ctx("creating", &self.partial)?;
        // Validated manifest, a link's target selected too: every link stays inside the output.
        for e in entries {
            crate::unpack::create_entry(&self.partial, e)?;
        }
        Ok(())
    }

    fn remove_partial(&self) {
        let _ = fs::remove_dir_all(&self.partial).or_else(|_| fs::remove_file(&self.partial));
        let _ = fs::remove_file(&self.journal);
    }

    fn read_journal(&self) -> Option<Vec<u64>> {
        let b = fs::read(&self.journal).ok()?;
        let words = self.stream_blocks.div_ceil(64) as usize;
        if b.len() != 4 + 32 + 32 + 8 + words * 8 + 32 || &b[..4] != JOURNAL_MAGIC {
            return None;
        }
        let (body, sum) = b.split_at(b.len() - 32);
        if Sha256::digest(body).as_slice() != sum
            || body[4..36] != self.id.0
            || body[36..68] != self.selection
            || body[68..76] != self.stream_blocks.to_le_bytes()
        {
            return None;
        }
        Some(
            body[76..]
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect(),
        )
    }

    fn write_journal(&self, done: &[u64]) -> Result<(), DatasetError> {
        let mut b = Vec::with_capacity(76 + done.len() * 8 + 32);
        b.extend_from_slice(JOURNAL_MAGIC);
        b.extend_from_slice(&self.id.0);
        b.extend_from_slice(&self.selection);
        b.extend_from_slice(&self.stream_blocks.to_le_bytes());
        for w in done {
            b.extend_from_slice(&w.to_le_bytes());
        }
        let sum = Sha256::digest(&b);
        b.extend_from_slice(&sum);
        let tmp = self.journal.with_extension("tmp");
        let mut f = File::create(&tmp).ctx("creating", &tmp)?;
        f.write_all(&b).ctx("writing", &tmp)?;
        f.sync_all().ctx("syncing", &tmp)?;
        fs::rename(&tmp, &self.journal).ctx("renaming", &tmp)?;
        sync_dir(&parent_of(&self.journal)?)
    }
}

/// The target, the partial output and the journal of a restore of `manifest` to `out`.
fn places(out: &Path, manifest: &Manifest) -> Result<(PathBuf, PathBuf, PathBuf), DatasetError> {
    let target = if !manifest.directory && out.is_dir() {
        out.join(&manifest.entries[0].path)
    } else {
        out.to_owned()
    };
    let parent = parent_of(&target)?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let partial = parent.join(format!(".{name}.hoard-partial"));
    let journal = parent.join(format!(".{name}.hoard-get"));
    Ok((target, partial, journal))
}

/// Fails unless `path` is absent or an empty directory.
fn check_free(path: &Path) -> Result<(), DatasetError> {
    match fs::read_dir(path) {
        Ok(mut d) => match d.next() {
            None => Ok(()),
            Some(_) => Err(DatasetError::OutputExists(path.into())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => Err(DatasetError::OutputExists(path.into())),
    }
}

/// fsyncs every folder of a tree, so the entries created in them are durable.
fn sync_tree(dir: &Path) -> Result<(), DatasetError> {
    for item in fs::read_dir(dir).ctx("listing", dir)? {
        let item = item.ctx("listing", dir)?;
        if item.file_type().ctx("reading", item.path())?.is_dir() {
            sync_tree(&item.path())?;
        }
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NoProgress, PackedDataset, pack};

    fn tree(dir: &Path) -> PathBuf {
        let root = dir.join("data");
        fs::create_dir_all(root.join("a/b")).expect("dirs");
        fs::create_dir_all(root.join("empty")).expect("dirs");
        fs::write(root.join("a/one.bin"), vec![1u8; 70_000]).expect("file");
        fs::write(root.join("a/b/two.bin"), vec![2u8; 200_000]).expect("file");
        fs::write(root.join("z.txt"), b"zed").expect("file");
        std::os::unix::fs::symlink("a/one.bin", root.join("link")).expect("link");
        root
    }

    /// [`tree`] packed with k = 2, m = 1, in a fresh temporary folder.
    fn packed_tree() -> (tempfile::TempDir, PackedDataset) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = tree(dir.path());
        let packed_dir = dir.path().join("packed");
        pack(&root, &packed_dir, 2, 1, &NoProgress).expect("pack");
        let packed = PackedDataset::open(&packed_dir).expect("open");
        (dir, packed)
    }

    /// The stream blocks of a packed dataset (k = 2), read from its data slots.
    fn stream(packed: &PackedDataset) -> Vec<Vec<u8>> {
        let m = packed.manifest();
        let s = m.layout.slot_blocks();
        let mut out = Vec::new();
        for b in 0..m.size.div_ceil(BLOCK_SIZE as u64) {
            let slot = hoard_prover::SlotIndex((b / s) as u16);
            let files = packed.open_slot(slot).expect("slot");
            let mut buf = vec![0u8; BLOCK_SIZE];
            files.read_blocks(b % s, &mut buf).expect("read");
            out.push(buf);
        }
        out
    }

    #[test]
    fn paths_outside_a_dataset_are_refused() {
        for bad in ["..", "a/../b", "/etc/passwd", "a//b", "./a", "a\0b", "a\\b"] {
            assert!(
                matches!(normalise_path(bad), Err(DatasetError::BadPath(_))),
                "{bad}"
            );
        }
        assert_eq!(normalise_path("a/b/").expect("ok"), "a/b");
        assert_eq!(normalise_path("/").expect("root"), "");
    }

    #[test]
    fn blocks_in_any_order_make_the_same_files_and_a_resume_goes_on_from_the_journal() {
        let (dir, packed) = packed_tree();
        let blocks = stream(&packed);
        let out = dir.path().join("out");

        let r = Restore::start(&out, packed.manifest(), &[]).expect("start");
        let mut order = r.missing();
        assert_eq!(order.len(), blocks.len());
        order.reverse();
        let (first, rest) = order.split_at(2);
        for b in first {
            r.write_block(*b, &blocks[*b as usize]).expect("write");
        }
        r.checkpoint().expect("checkpoint");
        // Written but not checkpointed: a crash forgets it.
        r.write_block(rest[0], &blocks[rest[0] as usize])
            .expect("write");
        drop(r);
        assert!(!out.exists(), "nothing at the target before the end");

        let r = Restore::start(&out, packed.manifest(), &[]).expect("resume");
        assert_eq!(r.done_count(), 2);
        assert_eq!(r.missing(), {
            let mut m = rest.to_vec();
            m.sort_unstable();
            m
        });
        assert!(matches!(
            Restore::start(&out, packed.manifest(), &[])
                .expect("again")
                .missing()
                .len(),
            n if n == rest.len()
        ));
        for b in r.missing() {
            r.write_block(b, &blocks[b as usize]).expect("write");
        }
        assert_eq!(r.commit().expect("commit"), out);
        assert_eq!(
            fs::read(out.join("a/b/two.bin")).expect("read"),
            vec![2u8; 200_000]
        );
        assert_eq!(fs::read(out.join("z.txt")).expect("read"), b"zed");
        assert_eq!(
            fs::read(out.join("link")).expect("via link"),
            vec![1u8; 70_000]
        );
        assert!(out.join("empty").is_dir());
        assert!(!dir.path().join(".out.hoard-get").exists());
        // A finished output is not restored over.
        assert!(matches!(
            Restore::start(&out, packed.manifest(), &[]),
            Err(DatasetError::OutputExists(_))
        ));
    }

    #[test]
    fn runs_of_blocks_make_the_same_files_as_single_blocks() {
        let (dir, packed) = packed_tree();
        let blocks = stream(&packed);
        let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
        assert!(refs.len() >= 5, "the files span {} blocks", refs.len());
        // Whole dataset, in two runs: one.bin starts at byte 200,000 (not 4 KiB-aligned), so
        // its part is a direct middle with buffered edges; z.txt is all edge.
        let out = dir.path().join("out");
        let r = Restore::start(&out, packed.manifest(), &[]).expect("start");
        r.write_run(2, &refs[2..]).expect("run");
        r.write_run(0, &refs[..2]).expect("run");
        assert!(r.missing().is_empty());
        r.commit().expect("commit");
        assert_eq!(
            fs::read(out.join("a/b/two.bin")).expect("read"),
            vec![2u8; 200_000]
        );
        assert_eq!(
            fs::read(out.join("a/one.bin")).expect("read"),
            vec![1u8; 70_000]
        );
        assert_eq!(fs::read(out.join("z.txt")).expect("read"), b"zed");
        // One file picked: a run over its blocks writes it and nothing else; a run with a block
        // not wanted falls back to block by block.
        let one = dir.path().join("one");
        let r = Restore::start(&one, packed.manifest(), &["a/one.bin".into()]).expect("start");
        let wanted = r.missing();
        assert_eq!(wanted, vec![3, 4]);
        r.write_run(2, &refs[2..4])
            .expect("run with block 2 not wanted");
        assert_eq!(r.missing(), vec![4]);
        r.write_run(4, &refs[4..5]).expect("run");
        r.commit().expect("commit");
        assert_eq!(
            fs::read(one.join("a/one.bin")).expect("read"),
            vec![1u8; 70_000]
        );
        assert!(!one.join("a/b/two.bin").exists() && !one.join("z.txt").exists());
    }

    #[test]
    fn a_selection_writes_only_its_files_and_needs_only_their_blocks() {
        let (dir, packed) = packed_tree();
        let m = packed.manifest();
        let blocks = stream(&packed);
        let names = |paths: &[&str]| -> Vec<String> {
            select(m, &paths.iter().map(|p| p.to_string()).collect::<Vec<_>>())
                .expect("select")
                .iter()
                .map(|e| e.path.clone())
                .collect()
        };
        assert_eq!(names(&["a/b"]), vec!["a", "a/b", "a/b/two.bin"]);
        assert_eq!(
            names(&["link"]),
            Vec::<String>::new(),
            "a link without its target"
        );
        assert_eq!(
            names(&["link", "a/one.bin"]),
            vec!["a", "a/one.bin", "link"]
        );
        assert!(matches!(
            select(m, &["nope".into()]),
            Err(DatasetError::NoSuchPath(_))
        ));
        assert!(matches!(
            select(m, &["../x".into()]),
            Err(DatasetError::BadPath(_))
        ));

        let out = dir.path().join("part");
        let r = Restore::start(&out, m, &["z.txt".into()]).expect("start");
        // z.txt is 3 bytes at the end of the stream: one block.
        assert_eq!(r.missing().len(), 1);
        for b in r.missing() {
            r.write_block(b, &blocks[b as usize]).expect("write");
        }
        r.commit().expect("commit");
        assert_eq!(fs::read(out.join("z.txt")).expect("read"), b"zed");
        assert!(!out.join("a").exists());
    }
}
