//! The dataset stream: a file, or a directory tree's files concatenated in manifest order, read
//! and written at stream offsets.

use std::{
    collections::HashMap,
    fs::{self, File},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use crate::{
    error::{DatasetError, IoContext},
    manifest::{Entry, EntryKind},
};

/// What `scan` found at the input path.
#[derive(Debug)]
pub(crate) struct Scanned {
    pub(crate) directory: bool,
    pub(crate) entries: Vec<Entry>,
    pub(crate) size: u64,
}

/// Lists a file or a directory tree as manifest entries, sorted by path, with stream offsets.
pub(crate) fn scan(input: &Path) -> Result<Scanned, DatasetError> {
    let meta = match fs::metadata(input) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DatasetError::NotFound(input.into()));
        }
        Err(e) => return Err(e).ctx("reading", input),
    };
    let mut found = Vec::new();
    let directory = meta.is_dir();
    if directory {
        walk(input, "", &mut found)?;
    } else if meta.is_file() {
        let name = input
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| DatasetError::NonUtf8Path(input.into()))?;
        found.push((name.to_owned(), Some(meta.len())));
    } else {
        return Err(DatasetError::Unsupported(input.into()));
    }
    found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut offset = 0u64;
    let entries = found
        .into_iter()
        .map(|(path, size)| {
            let kind = match size {
                None => EntryKind::Directory,
                Some(size) => {
                    let kind = EntryKind::File { offset, size };
                    offset += size;
                    kind
                }
            };
            Entry { path, kind }
        })
        .collect();
    if offset == 0 {
        return Err(DatasetError::Empty(input.into()));
    }
    Ok(Scanned {
        directory,
        entries,
        size: offset,
    })
}

/// Adds the entries under `dir` (relative prefix `rel`) to `out`: `(path, None)` for a directory,
/// `(path, Some(size))` for a file.
fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, Option<u64>)>) -> Result<(), DatasetError> {
    for item in fs::read_dir(dir).ctx("listing", dir)? {
        let item = item.ctx("listing", dir)?;
        let path = item.path();
        let name = item
            .file_name()
            .into_string()
            .map_err(|_| DatasetError::NonUtf8Path(path.clone()))?;
        let child = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let file_type = item.file_type().ctx("reading", &path)?;
        if file_type.is_dir() {
            out.push((child.clone(), None));
            walk(&path, &child, out)?;
        } else if file_type.is_file() {
            out.push((child, Some(item.metadata().ctx("reading", &path)?.len())));
        } else if file_type.is_symlink() {
            // Symlinks to regular files are stored as the file; anything else is refused
            // (a link to a directory could loop, and links out of the tree surprise a reader).
            match fs::metadata(&path) {
                Ok(m) if m.is_file() => out.push((child, Some(m.len()))),
                _ => return Err(DatasetError::Unsupported(path)),
            }
        } else {
            return Err(DatasetError::Unsupported(path));
        }
    }
    Ok(())
}

/// Most files kept open at once while reading or writing the stream.
const MAX_OPEN: usize = 64;

/// Reads or writes the stream at byte offsets, mapping them onto the files holding them.
#[derive(Debug)]
pub(crate) struct StreamFiles {
    /// `(path, offset, size)` of each non-empty file, ascending by offset.
    files: Vec<(PathBuf, u64, u64)>,
    writable: bool,
    open: HashMap<usize, File>,
}

impl StreamFiles {
    /// The stream of `entries`, whose paths are relative to `root` (for a single-file dataset,
    /// `root` is the file itself).
    pub(crate) fn new(root: &Path, directory: bool, entries: &[Entry], writable: bool) -> Self {
        let files = entries
            .iter()
            .filter_map(|e| match e.kind {
                EntryKind::File { offset, size } if size > 0 => {
                    let path = if directory {
                        root.join(&e.path)
                    } else {
                        root.to_owned()
                    };
                    Some((path, offset, size))
                }
                _ => None,
            })
            .collect();
        Self {
            files,
            writable,
            open: HashMap::new(),
        }
    }

    fn handle(&mut self, index: usize) -> Result<&File, DatasetError> {
        if !self.open.contains_key(&index) {
            if self.open.len() >= MAX_OPEN {
                self.open.clear();
            }
            let path = &self.files[index].0;
            let file = fs::OpenOptions::new()
                .read(true)
                .write(self.writable)
                .open(path)
                .ctx("opening", path)?;
            self.open.insert(index, file);
        }
        Ok(&self.open[&index])
    }

    /// Visits the pieces of `[offset, offset + len)` that fall in files, as
    /// `(file index, offset in file, range in the buffer)`.
    fn pieces(&self, offset: u64, len: usize) -> Vec<(usize, u64, std::ops::Range<usize>)> {
        let end = offset + len as u64;
        let first = self.files.partition_point(|(_, o, s)| o + s <= offset);
        self.files[first..]
            .iter()
            .enumerate()
            .take_while(|(_, (_, o, _))| *o < end)
            .map(|(i, (_, o, s))| {
                let from = offset.max(*o);
                let to = end.min(o + s);
                let range = (from - offset) as usize..(to - offset) as usize;
                (first + i, from - o, range)
            })
            .collect()
    }

    /// Fills `buf` with the stream bytes at `offset`; bytes past the end of the data are zero.
    pub(crate) fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DatasetError> {
        buf.fill(0);
        for (i, at, range) in self.pieces(offset, buf.len()) {
            let path = self.files[i].0.clone();
            self.handle(i)?
                .read_exact_at(&mut buf[range], at)
                .ctx("reading (did the file change while packing?)", path)?;
        }
        Ok(())
    }

    /// Writes `data` at `offset`, dropping what lies past the end of the data (padding).
    pub(crate) fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), DatasetError> {
        for (i, at, range) in self.pieces(offset, data.len()) {
            let path = self.files[i].0.clone();
            self.handle(i)?
                .write_all_at(&data[range], at)
                .ctx("writing", path)?;
        }
        Ok(())
    }

    /// Flushes every file to disk.
    pub(crate) fn sync_all(&mut self) -> Result<(), DatasetError> {
        self.open.clear();
        for (path, _, _) in &self.files {
            File::open(path)
                .and_then(|f| f.sync_all())
                .ctx("syncing", path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_split_across_files_and_skip_padding() {
        let entries = vec![
            Entry {
                path: "a".into(),
                kind: EntryKind::File { offset: 0, size: 3 },
            },
            Entry {
                path: "b".into(),
                kind: EntryKind::File { offset: 3, size: 0 },
            },
            Entry {
                path: "c".into(),
                kind: EntryKind::File { offset: 3, size: 5 },
            },
        ];
        let s = StreamFiles::new(Path::new("/x"), true, &entries, false);
        assert_eq!(s.pieces(1, 4), vec![(0, 1, 0..2), (1, 0, 2..4)]);
        assert_eq!(s.pieces(6, 10), vec![(1, 3, 0..2)]);
        assert!(s.pieces(8, 10).is_empty());
    }
}
