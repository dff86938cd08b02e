//! The dataset stream: a file, or a directory tree's files concatenated in manifest order, read
//! and written at stream offsets.

use std::{
    collections::HashMap,
    fs::{self, File},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use crate::{
    error::{DatasetError, IoContext, LinkProblem},
    manifest::{Entry, EntryKind},
};

/// What `scan` found at the input path.
#[derive(Debug)]
pub(crate) struct Scanned {
    pub(crate) directory: bool,
    pub(crate) entries: Vec<Entry>,
    /// Symlinks followed out of the dataset: (the link, the real file it leads to).
    pub(crate) followed: Vec<(PathBuf, PathBuf)>,
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
        // Canonical (no links, no `..`), so that a link's resolved target can be placed
        // inside or outside it by a plain prefix test.
        let root = fs::canonicalize(input).ctx("resolving", input)?;
        walk(input, &root, "", &mut found)?;
    } else if meta.is_file() {
        let name = input
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| DatasetError::NonUtf8Path(input.into()))?;
        let found_file = if fs::symlink_metadata(input)
            .ctx("reading", input)?
            .is_symlink()
        {
            Found::Followed {
                size: meta.len(),
                target: fs::canonicalize(input).ctx("resolving", input)?,
            }
        } else {
            Found::File(meta.len())
        };
        found.push((name.to_owned(), found_file));
    } else {
        return Err(DatasetError::Unsupported(input.into()));
    }
    found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut offset = 0u64;
    let mut followed = Vec::new();
    let entries = found
        .into_iter()
        .map(|(path, found)| {
            let size = match found {
                Found::File(size) => size,
                Found::Followed { size, target } => {
                    let link = if directory {
                        input.join(&path)
                    } else {
                        input.to_owned()
                    };
                    followed.push((link, target));
                    size
                }
                Found::Directory => {
                    return Entry {
                        path,
                        kind: EntryKind::Directory,
                    };
                }
                Found::Link(target) => {
                    return Entry {
                        path,
                        kind: EntryKind::Link { target },
                    };
                }
            };
            let kind = EntryKind::File { offset, size };
            offset += size;
            Entry { path, kind }
        })
        .collect();
    if offset == 0 {
        return Err(DatasetError::Empty(input.into()));
    }
    Ok(Scanned {
        directory,
        entries,
        followed,
        size: offset,
    })
}

/// What the walk found at one relative path.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    Directory,
    /// A regular file: its size.
    File(u64),
    /// A symlink to a file outside the dataset, packed as that file.
    Followed {
        size: u64,
        target: PathBuf,
    },
    /// A symlink to a file or directory inside the dataset: the target's relative path.
    Link(String),
}

/// Adds the entries under `dir` (relative prefix `rel`) to `out`; `root` is the dataset root,
/// canonical.
fn walk(
    dir: &Path,
    root: &Path,
    rel: &str,
    out: &mut Vec<(String, Found)>,
) -> Result<(), DatasetError> {
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
            out.push((child.clone(), Found::Directory));
            walk(&path, root, &child, out)?;
        } else if file_type.is_file() {
            let size = item.metadata().ctx("reading", &path)?.len();
            out.push((child, Found::File(size)));
        } else if file_type.is_symlink() {
            out.push((child, resolve_link(&path, root)?));
        } else {
            return Err(DatasetError::Unsupported(path));
        }
    }
    Ok(())
}

/// How the symlink at `path` is packed (`docs/protocol.md` §4, "Symlinks"): as a link entry if
/// it leads to a file or directory inside `root` (canonical), as the file's bytes if it leads to
/// a file outside; anything else is refused.
///
/// Directory links are never followed, so the walk cannot loop; a link inside the dataset is
/// recorded by where it finally leads (its resolved path), not by how it is spelled.
fn resolve_link(path: &Path, root: &Path) -> Result<Found, DatasetError> {
    let refuse = |problem| DatasetError::Link {
        path: path.into(),
        problem,
    };
    let target = match fs::canonicalize(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse(LinkProblem::Dangling));
        }
        Err(e) if rustix::io::Errno::from_io_error(&e) == Some(rustix::io::Errno::LOOP) => {
            return Err(refuse(LinkProblem::Loop));
        }
        Err(e) => return Err(e).ctx("resolving the symlink", path),
    };
    let meta = fs::metadata(&target).ctx("reading", &target)?;
    if !meta.is_file() && !meta.is_dir() {
        return Err(DatasetError::Unsupported(path.into()));
    }
    match target.strip_prefix(root) {
        Ok(inside) if inside.as_os_str().is_empty() => Err(refuse(LinkProblem::DatasetRoot)),
        Ok(inside) => inside
            .to_str()
            .map(|t| Found::Link(t.to_owned()))
            .ok_or(DatasetError::NonUtf8Path(target)),
        Err(_) if meta.is_file() => Ok(Found::Followed {
            size: meta.len(),
            target,
        }),
        Err(_) => Err(refuse(LinkProblem::OutsideDirectory { target })),
    }
}

/// Every symlink `pack` would follow out of `input` to a file elsewhere, as (the link, the real
/// path of the file it leads to), in manifest order; `input` itself if it is a link to a file.
///
/// The files' bytes would be published with the dataset: a caller that must keep some files
/// private (a node's own key and token) checks these targets as well as `input`. Fails as
/// `pack` would on an input it refuses.
pub fn followed_links(input: &Path) -> Result<Vec<(PathBuf, PathBuf)>, DatasetError> {
    Ok(scan(input)?.followed)
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
