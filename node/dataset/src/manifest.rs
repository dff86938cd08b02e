//! The manifest: what a dataset holds and how it is laid out, in a canonical binary encoding.
//!
//! Encoding: postcard 1.x (a documented, stable serde wire format) of [`Manifest`]. Decoding is
//! strict: after validation the value is re-encoded and must give back the exact input bytes, so
//! every manifest has exactly one encoding and the dataset id, `SHA-256(encoding)`, is canonical.

use std::collections::HashSet;

use hoard_prover::{DatasetTree, Hash, Layout};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use hoard_prover::DatasetId;

/// The manifest format this code writes and reads.
pub const MANIFEST_FORMAT: u16 = 1;
/// Largest encoded manifest accepted (a bound for untrusted input).
pub const MAX_MANIFEST_BYTES: usize = 64 << 20;
/// Longest relative path accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// One file or directory of a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Path relative to the dataset root, `/`-separated UTF-8. For a single-file dataset, the
    /// file's name.
    pub path: String,
    /// File or directory.
    pub kind: EntryKind,
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A directory (listed so that empty directories survive a round trip).
    Directory,
    /// A regular file occupying `[offset, offset + size)` of the dataset stream.
    File {
        /// Start in the dataset stream.
        offset: u64,
        /// Length in bytes.
        size: u64,
    },
}

/// A dataset's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u16,
    /// `k`, `m` and blocks per slot.
    pub layout: Layout,
    /// Bytes in the dataset stream (the files' sizes added up).
    pub size: u64,
    /// Whether the dataset is a directory tree (else a single file).
    pub directory: bool,
    /// Entries sorted by path; files' bytes follow each other in this order in the stream.
    pub entries: Vec<Entry>,
    /// The `k + m` slot roots.
    pub slot_roots: Vec<Hash>,
    /// The dataset root: the tree over `slot_roots`.
    pub root: Hash,
}

impl Manifest {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("serialising to a Vec cannot fail")
    }

    /// The dataset id.
    pub fn id(&self) -> DatasetId {
        DatasetId(Sha256::digest(self.encode()).into())
    }

    /// Decodes and validates an encoded manifest; only the canonical encoding is accepted.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(format!(
                "{} bytes is more than the {MAX_MANIFEST_BYTES} a manifest may have",
                bytes.len()
            ));
        }
        let m: Self = postcard::from_bytes(bytes).map_err(|e| format!("undecodable: {e}"))?;
        m.validate()?;
        if m.encode() != bytes {
            return Err("not in canonical encoding".into());
        }
        Ok(m)
    }

    /// Checks every rule of the format (see `docs/protocol.md`).
    pub fn validate(&self) -> Result<(), String> {
        if self.format != MANIFEST_FORMAT {
            return Err(format!(
                "format {} is not supported (this hoard reads format {MANIFEST_FORMAT})",
                self.format
            ));
        }
        let l = &self.layout;
        let expected = Layout::for_dataset(l.data_slots(), l.parity_slots(), self.size)
            .map_err(|e| format!("layout: {e}"))?;
        if expected != *l {
            return Err(format!(
                "layout has {} blocks per slot, but {} bytes over {} data slots need {}",
                l.slot_blocks(),
                self.size,
                l.data_slots(),
                expected.slot_blocks()
            ));
        }
        self.validate_entries()?;
        if self.slot_roots.len() != l.slots() {
            return Err(format!(
                "{} slot roots for {} slots",
                self.slot_roots.len(),
                l.slots()
            ));
        }
        let tree = DatasetTree::new(&self.slot_roots).map_err(|e| e.to_string())?;
        if tree.root() != self.root {
            return Err("the dataset root is not the root of the slot roots".into());
        }
        Ok(())
    }

    fn validate_entries(&self) -> Result<(), String> {
        if !self.directory {
            return match self.entries.as_slice() {
                [
                    Entry {
                        path,
                        kind: EntryKind::File { offset: 0, size },
                    },
                ] if *size == self.size && !path.contains('/') && valid_component(path) => Ok(()),
                _ => Err("a single-file dataset must hold exactly one file entry".into()),
            };
        }
        let mut dirs = HashSet::new();
        let mut offset = 0u64;
        let mut previous: Option<&str> = None;
        for e in &self.entries {
            let p = e.path.as_str();
            if p.len() > MAX_PATH_BYTES || !p.split('/').all(valid_component) {
                return Err(format!("invalid path {p:?}"));
            }
            if previous.is_some_and(|q| q >= p) {
                return Err(format!("entries not strictly sorted at {p:?}"));
            }
            previous = Some(p);
            if let Some((parent, _)) = p.rsplit_once('/')
                && !dirs.contains(parent)
            {
                return Err(format!("{p:?} is listed before its directory"));
            }
            match e.kind {
                EntryKind::Directory => {
                    dirs.insert(p);
                }
                EntryKind::File { offset: o, size } => {
                    if o != offset {
                        return Err(format!("{p:?} starts at {o}, expected {offset}"));
                    }
                    offset = offset
                        .checked_add(size)
                        .ok_or_else(|| format!("{p:?}: sizes overflow"))?;
                }
            }
        }
        if offset != self.size {
            return Err(format!(
                "files add up to {offset} bytes, manifest says {}",
                self.size
            ));
        }
        Ok(())
    }

    /// The file entries with their stream ranges.
    pub fn files(&self) -> impl Iterator<Item = (&str, u64, u64)> {
        self.entries.iter().filter_map(|e| match e.kind {
            EntryKind::File { offset, size } => Some((e.path.as_str(), offset, size)),
            EntryKind::Directory => None,
        })
    }
}

/// A path component a manifest may hold.
fn valid_component(c: &str) -> bool {
    !c.is_empty() && c != "." && c != ".." && !c.contains(['/', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Manifest {
        let layout = Layout::for_dataset(2, 1, 10).expect("valid");
        let slot_roots = vec![Hash([1; 32]), Hash([2; 32]), Hash([3; 32])];
        let root = DatasetTree::new(&slot_roots).expect("non-empty").root();
        Manifest {
            format: MANIFEST_FORMAT,
            layout,
            size: 10,
            directory: true,
            entries: vec![
                Entry {
                    path: "a".into(),
                    kind: EntryKind::Directory,
                },
                Entry {
                    path: "a/x".into(),
                    kind: EntryKind::File { offset: 0, size: 4 },
                },
                Entry {
                    path: "b".into(),
                    kind: EntryKind::File { offset: 4, size: 6 },
                },
                Entry {
                    path: "c".into(),
                    kind: EntryKind::Directory,
                },
            ],
            slot_roots,
            root,
        }
    }

    #[test]
    fn round_trip_and_id() {
        let m = sample();
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes), Ok(m.clone()));
        assert_eq!(m.id().0, <[u8; 32]>::from(Sha256::digest(&bytes)));
    }

    #[test]
    fn rejects_tampering() {
        type Tamper = Box<dyn Fn(&mut Manifest)>;
        let cases: Vec<(&str, Tamper)> = vec![
            ("format", Box::new(|m| m.format = 2)),
            ("size", Box::new(|m| m.size = 11)),
            ("root", Box::new(|m| m.root = Hash([9; 32]))),
            ("slot roots", Box::new(|m| m.slot_roots.push(Hash([4; 32])))),
            ("order", Box::new(|m| m.entries.swap(2, 3))),
            ("parent", Box::new(|m| m.entries.remove(0).path.clear())),
            ("dotdot", Box::new(|m| m.entries[2].path = "..".into())),
            (
                "offset",
                Box::new(|m| m.entries[2].kind = EntryKind::File { offset: 5, size: 5 }),
            ),
            (
                "layout",
                Box::new(|m| m.layout = Layout::new(2, 1, 2).expect("valid")),
            ),
            ("single", Box::new(|m| m.directory = false)),
        ];
        for (name, tamper) in cases {
            let mut m = sample();
            tamper(&mut m);
            assert!(m.validate().is_err(), "{name} not caught");
            assert!(Manifest::decode(&m.encode()).is_err(), "{name} decoded");
        }
    }

    #[test]
    fn rejects_non_canonical_and_garbage() {
        let mut bytes = sample().encode();
        bytes.push(0);
        assert!(Manifest::decode(&bytes).is_err());
        assert!(Manifest::decode(&[0xff; 40]).is_err());
        assert!(Manifest::decode(&[]).is_err());
    }
}
