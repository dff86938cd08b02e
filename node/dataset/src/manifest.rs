//! The manifest: what a dataset holds and how it is laid out, in a canonical binary encoding.
//!
//! Encoding: postcard 1.x (a documented, stable serde wire format) of [`Manifest`], hashes as
//! their 32 raw bytes (`hoard_prover::bytes32!`). Decoding is strict and bounded: the format
//! number is read first, then after validation the value is re-encoded and must give back the
//! exact input bytes, so every manifest has exactly one encoding and the dataset id,
//! `SHA-256(encoding)`, is canonical. Entries are files, directories and links to other entries
//! (never out of the dataset); `docs/protocol.md` §4 is the specification.

use std::collections::HashMap;

use hoard_prover::{DatasetTree, Hash, Layout};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use hoard_prover::DatasetId;

/// The manifest format this code writes for the direct scheme, and reads.
///
/// Format 1 wrote every hash as its 66-character `0x…` text; format 2 writes the 32 raw bytes
/// (`docs/protocol.md` §4, "Versions"). Format 1 is not read: no dataset of it was ever stored on
/// chain, and re-packing gives the format 2 manifest.
pub const MANIFEST_FORMAT: u16 = 2;
/// The manifest format of a dataset packed for the compact scheme, also read: a format 2
/// manifest followed by the `k + m` Poseidon slot commitments ([`Manifest::commitments`]). Direct
/// datasets stay format 2, so their ids do not change.
pub const COMPACT_MANIFEST_FORMAT: u16 = 3;
/// Most blocks per slot of a compact dataset (2^22 cells of 256 bytes: 1 GiB), the depth of the
/// compact circuits' cell tree.
pub const COMPACT_MAX_SLOT_BLOCKS: u64 = 1 << 14;
/// The BN254 scalar field modulus `r`, big-endian: every commitment is a field element below it.
const SNARK_FIELD: [u8; 32] = [
    0x30, 0x64, 0x4e, 0x72, 0xe1, 0x31, 0xa0, 0x29, 0xb8, 0x50, 0x45, 0xb6, 0x81, 0x81, 0x58, 0x5d,
    0x28, 0x33, 0xe8, 0x48, 0x79, 0xb9, 0x70, 0x91, 0x43, 0xe1, 0xf5, 0x93, 0xf0, 0x00, 0x00, 0x01,
];
/// Largest encoded manifest accepted (a bound for untrusted input).
pub const MAX_MANIFEST_BYTES: usize = 64 << 20;
/// Longest relative path accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// One file, directory or symlink of a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Path relative to the dataset root, `/`-separated UTF-8. For a single-file dataset, the
    /// file's name.
    pub path: String,
    /// File, directory or link.
    pub kind: EntryKind,
}

/// What an entry is. The variant order is part of the encoding (postcard writes the index).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// A symbolic link to another entry of the same dataset (a file or a directory, never a
    /// link), holding no bytes of the stream. `target` is that entry's path, relative to the
    /// dataset root like every path here; unpack writes it as a relative symlink.
    Link {
        /// The path of the entry linked to.
        target: String,
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
    /// Format 3 (compact scheme) only: the `k + m` Poseidon slot commitments in slot order, each
    /// a non-zero field element below `r` as a 32-byte big-endian word (`docs/protocol.md` §9.2);
    /// empty in format 2. Encoded after `root` (not by the derived serde impls, which skip it, so
    /// the first seven fields keep the format 2 layout).
    #[serde(skip)]
    pub commitments: Vec<Hash>,
}

impl Manifest {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = postcard::to_stdvec(self).expect("serialising to a Vec cannot fail");
        if self.format == COMPACT_MANIFEST_FORMAT {
            out.extend(
                postcard::to_stdvec(&self.commitments).expect("serialising to a Vec cannot fail"),
            );
        }
        out
    }

    /// The compact root (`RequestParams.compactRoot`): the dataset tree over the commitments, for a
    /// format 3 manifest; `None` for the direct scheme.
    pub fn compact_root(&self) -> Option<Hash> {
        if self.commitments.is_empty() {
            return None;
        }
        DatasetTree::new(&self.commitments).ok().map(|t| t.root())
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
        // The format comes first, so a manifest of another format is named as such rather
        // than failing somewhere in the middle.
        let (format, _) = postcard::take_from_bytes::<u16>(bytes)
            .map_err(|e| format!("undecodable format number: {e}"))?;
        check_format(format)?;
        let (mut m, rest): (Self, _) =
            postcard::take_from_bytes(bytes).map_err(|e| format!("undecodable: {e}"))?;
        if format == COMPACT_MANIFEST_FORMAT {
            m.commitments =
                postcard::from_bytes(rest).map_err(|e| format!("undecodable commitments: {e}"))?;
        }
        m.validate()?;
        if m.encode() != bytes {
            return Err("not in canonical encoding".into());
        }
        Ok(m)
    }

    /// Checks every rule of the format (see `docs/protocol.md`).
    pub fn validate(&self) -> Result<(), String> {
        check_format(self.format)?;
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
        self.validate_commitments()
    }

    /// Format 2 has no commitments; format 3 one per slot, each a non-zero field element, and
    /// slots of at most [`COMPACT_MAX_SLOT_BLOCKS`].
    fn validate_commitments(&self) -> Result<(), String> {
        if self.format != COMPACT_MANIFEST_FORMAT {
            return match self.commitments.is_empty() {
                true => Ok(()),
                false => Err(format!(
                    "format {} has no commitments; compact datasets are format {COMPACT_MANIFEST_FORMAT}",
                    self.format
                )),
            };
        }
        let l = &self.layout;
        if l.slot_blocks() > COMPACT_MAX_SLOT_BLOCKS {
            return Err(format!(
                "a compact dataset's slots hold at most {COMPACT_MAX_SLOT_BLOCKS} blocks (1 GiB), this one {}",
                l.slot_blocks()
            ));
        }
        if self.commitments.len() != l.slots() {
            return Err(format!(
                "{} commitments for {} slots",
                self.commitments.len(),
                l.slots()
            ));
        }
        if let Some(i) = self
            .commitments
            .iter()
            .position(|c| c.0 == [0; 32] || c.0 >= SNARK_FIELD)
        {
            return Err(format!(
                "commitment {i} is not a non-zero element of the BN254 scalar field"
            ));
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
        // Every entry so far by path: a parent must be a directory (never a link, so nothing
        // is ever written through a link on restore), and a link's target a file or directory.
        let mut listed: HashMap<&str, &EntryKind> = HashMap::new();
        let mut offset = 0u64;
        let mut previous: Option<&str> = None;
        for e in &self.entries {
            let p = e.path.as_str();
            if !valid_path(p) {
                return Err(format!("invalid path {p:?}"));
            }
            if previous.is_some_and(|q| q >= p) {
                return Err(format!("entries not strictly sorted at {p:?}"));
            }
            previous = Some(p);
            if let Some((parent, _)) = p.rsplit_once('/')
                && !matches!(listed.get(parent), Some(EntryKind::Directory))
            {
                return Err(format!("{p:?} is listed before its directory"));
            }
            listed.insert(p, &e.kind);
            match e.kind {
                EntryKind::Directory | EntryKind::Link { .. } => {}
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
        // Targets may come after their links in path order, so they are checked last.
        for e in &self.entries {
            let EntryKind::Link { target } = &e.kind else {
                continue;
            };
            let link = &e.path;
            if !valid_path(target) {
                return Err(format!("{link:?} links to the invalid path {target:?}"));
            }
            match listed.get(target.as_str()) {
                Some(EntryKind::Directory | EntryKind::File { .. }) => {}
                Some(EntryKind::Link { .. }) => {
                    return Err(format!(
                        "{link:?} links to {target:?}, itself a link (a link names its final target)"
                    ));
                }
                None => {
                    return Err(format!(
                        "{link:?} links to {target:?}, which is not in the dataset"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The file entries with their stream ranges.
    pub fn files(&self) -> impl Iterator<Item = (&str, u64, u64)> {
        self.entries.iter().filter_map(|e| match e.kind {
            EntryKind::File { offset, size } => Some((e.path.as_str(), offset, size)),
            EntryKind::Directory | EntryKind::Link { .. } => None,
        })
    }
}

/// The text of the relative symlink that makes `link` point at `target`, both valid manifest
/// paths: `..` once per folder of `link` not shared with `target`, then the rest of `target`
/// (`.` when nothing is left: `target` is the link's own folder).
///
/// Both paths are made of plain components only, so the text never leads out of the dataset.
pub(crate) fn link_text(link: &str, target: &str) -> String {
    let mut folder: Vec<&str> = link.split('/').collect();
    folder.pop();
    let to: Vec<&str> = target.split('/').collect();
    let common = folder.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let parts: Vec<&str> = std::iter::repeat_n("..", folder.len() - common)
        .chain(to[common..].iter().copied())
        .collect();
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// A relative path a manifest may hold: at most [`MAX_PATH_BYTES`], plain components only.
fn valid_path(p: &str) -> bool {
    p.len() <= MAX_PATH_BYTES && p.split('/').all(valid_component)
}

/// Refuses every format but [`MANIFEST_FORMAT`], saying what to do.
fn check_format(format: u16) -> Result<(), String> {
    match format {
        MANIFEST_FORMAT | COMPACT_MANIFEST_FORMAT => Ok(()),
        1 => Err(
            "format 1 (hashes written as hex text) is no longer read: pack the dataset \
                  again with this hoard to get its format 2 manifest and new dataset id"
                .into(),
        ),
        other => Err(format!(
            "format {other} is not supported (this hoard reads formats {MANIFEST_FORMAT} and \
             {COMPACT_MANIFEST_FORMAT}; a newer hoard may read it)"
        )),
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
            commitments: Vec::new(),
        }
    }

    /// [`sample`] packed for the compact scheme.
    fn compact() -> Manifest {
        let mut m = sample();
        m.format = COMPACT_MANIFEST_FORMAT;
        m.commitments = vec![Hash([5; 32]), Hash([6; 32]), Hash([7; 32])];
        m
    }

    #[test]
    fn compact_manifests_are_format_2_then_the_commitments() {
        let m = compact();
        let bytes = m.encode();
        let direct = sample().encode();
        // The format number, the same fields, then the varint 3 and 3 × 32 raw bytes.
        assert_eq!(bytes[0], 3);
        assert_eq!(bytes[1..direct.len()], direct[1..]);
        assert_eq!(bytes.len(), direct.len() + 1 + 3 * 32);
        assert_eq!(bytes[direct.len()], 3);
        assert_eq!(Manifest::decode(&bytes), Ok(m.clone()));
        assert_ne!(m.id(), sample().id());
        assert_eq!(
            m.compact_root(),
            Some(DatasetTree::new(&m.commitments).expect("three").root())
        );
        assert_eq!(sample().compact_root(), None);
    }

    #[test]
    fn rejects_bad_commitments() {
        type Tamper = Box<dyn Fn(&mut Manifest)>;
        let cases: Vec<(&str, Tamper)> = vec![
            (
                "missing",
                Box::new(|m| {
                    m.commitments.pop();
                }),
            ),
            ("extra", Box::new(|m| m.commitments.push(Hash([8; 32])))),
            ("none", Box::new(|m| m.commitments.clear())),
            ("zero", Box::new(|m| m.commitments[1] = Hash([0; 32]))),
            (
                "not in field",
                Box::new(|m| m.commitments[2] = Hash(SNARK_FIELD)),
            ),
            ("in format 2", Box::new(|m| m.format = MANIFEST_FORMAT)),
        ];
        for (name, tamper) in cases {
            let mut m = compact();
            tamper(&mut m);
            assert!(m.validate().is_err(), "{name} not caught");
            // Format 2 does not carry commitments: it reads back as the plain direct manifest.
            let expected = match name {
                "in format 2" => Ok(sample()),
                _ => Err(()),
            };
            assert_eq!(
                Manifest::decode(&m.encode()).map_err(drop),
                expected,
                "{name}"
            );
        }
        // r − 1 is the largest field element.
        let mut m = compact();
        let mut top = SNARK_FIELD;
        top[31] -= 1;
        m.commitments[0] = Hash(top);
        assert!(m.validate().is_ok());
        // Bytes after the commitments, or commitments after a format 2 manifest.
        let mut bytes = compact().encode();
        bytes.push(0);
        assert!(Manifest::decode(&bytes).is_err());
        let mut bytes = sample().encode();
        bytes.extend([1; 33]);
        assert!(Manifest::decode(&bytes).is_err());
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
            ("format", Box::new(|m| m.format = 3)),
            ("old format", Box::new(|m| m.format = 1)),
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

    fn with_links() -> Manifest {
        let mut m = sample();
        m.entries.extend([
            Entry {
                path: "c/l".into(),
                kind: EntryKind::Link {
                    target: "a/x".into(),
                },
            },
            Entry {
                path: "d".into(),
                kind: EntryKind::Link { target: "a".into() },
            },
        ]);
        m
    }

    #[test]
    fn links_round_trip() {
        let m = with_links();
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes), Ok(m.clone()));
        assert_eq!(m.files().count(), 2, "links hold no stream bytes");
        // Variant 2, then the target as a postcard string.
        assert!(bytes.ends_with(&[&[1, b'd', 2, 1, b'a'][..], &m.slot_roots_bytes()].concat()));
    }

    impl Manifest {
        /// The encoded slot roots and root: what follows the entries.
        fn slot_roots_bytes(&self) -> Vec<u8> {
            let mut out = vec![self.slot_roots.len() as u8];
            self.slot_roots.iter().for_each(|r| out.extend(r.0));
            out.extend(self.root.0);
            out
        }
    }

    #[test]
    fn rejects_bad_links() {
        type Tamper = Box<dyn Fn(&mut Manifest)>;
        let target = |t: &'static str| -> Tamper {
            Box::new(move |m| {
                m.entries[4].kind = EntryKind::Link { target: t.into() };
            })
        };
        let cases: Vec<(&str, Tamper)> = vec![
            ("absent target", target("a/y")),
            ("link to a link", target("d")),
            ("link to itself", target("c/l")),
            ("parent escape", target("../x")),
            ("inner escape", target("a/../../x")),
            ("absolute", target("/etc/passwd")),
            ("dot", target(".")),
            ("empty", target("")),
            (
                "entry under a link",
                Box::new(|m| {
                    m.entries.push(Entry {
                        path: "d/z".into(),
                        kind: EntryKind::Directory,
                    });
                }),
            ),
            (
                "link in a single-file dataset",
                Box::new(|m| {
                    m.directory = false;
                    m.entries = vec![
                        Entry {
                            path: "f".into(),
                            kind: EntryKind::File {
                                offset: 0,
                                size: 10,
                            },
                        },
                        Entry {
                            path: "g".into(),
                            kind: EntryKind::Link { target: "f".into() },
                        },
                    ];
                }),
            ),
        ];
        assert!(with_links().validate().is_ok());
        for (name, tamper) in cases {
            let mut m = with_links();
            tamper(&mut m);
            assert!(m.validate().is_err(), "{name} not caught");
            assert!(Manifest::decode(&m.encode()).is_err(), "{name} decoded");
        }
    }

    #[test]
    fn link_text_stays_relative_and_inside() {
        for (link, target, text) in [
            ("l", "f", "f"),
            ("l", "a/b/f", "a/b/f"),
            ("a/l", "a/f", "f"),
            ("a/b/l", "c/f", "../../c/f"),
            ("a/b/l", "a/c/f", "../c/f"),
            ("a/b/l", "a/b", "."),
            ("a/b/l", "a", ".."),
            ("ab/l", "a/f", "../a/f"),
        ] {
            assert_eq!(link_text(link, target), text, "{link} -> {target}");
        }
    }

    #[test]
    fn old_and_unknown_formats_are_named() {
        let mut bytes = sample().encode();
        bytes[0] = 1;
        let err = Manifest::decode(&bytes).expect_err("format 1");
        assert!(
            err.contains("format 1") && err.contains("pack the dataset again"),
            "{err}"
        );
        bytes[0] = 9;
        let err = Manifest::decode(&bytes).expect_err("format 9");
        assert!(err.contains("format 9 is not supported"), "{err}");
        assert!(Manifest::decode(&[0x80]).is_err(), "truncated varint");
    }

    proptest::proptest! {
        /// Untrusted bytes: a manifest with any byte changed, cut short or grown never panics
        /// the decoder, and whatever it accepts re-encodes to the same bytes.
        #[test]
        fn decoding_damaged_manifests_never_panics(
            at in 0usize..400, byte: u8, cut in 0usize..400, extra in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..8),
        ) {
            let mut bytes = with_links().encode();
            let at = at % bytes.len();
            bytes[at] = byte;
            bytes.truncate(cut.max(1));
            bytes.extend(extra);
            if let Ok(m) = Manifest::decode(&bytes) {
                proptest::prop_assert_eq!(m.encode(), bytes);
            }
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
