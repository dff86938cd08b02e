//! The dataset pipeline's errors: each names the file or slot at fault and what to do.

use std::{fmt, io, path::PathBuf};

use hoard_prover::{LayoutError, SlotIndex};

/// Why a pack, unpack or slot read failed.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A file system call failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("reading", "creating", …).
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The input path does not exist.
    #[error("{} does not exist", .0.display())]
    NotFound(PathBuf),
    /// The input holds no bytes.
    #[error("{} holds no data: there is nothing to store", .0.display())]
    Empty(PathBuf),
    /// A path in the input is not valid UTF-8 (manifests store UTF-8 paths).
    #[error("{}: file names must be valid UTF-8", .0.display())]
    NonUtf8Path(PathBuf),
    /// Something in the input is neither a regular file, a directory nor a symlink to one.
    #[error("{}: only regular files, directories and symlinks to them can be packed (devices, sockets and FIFOs cannot)", .0.display())]
    Unsupported(PathBuf),
    /// A symlink in the input cannot be packed.
    #[error("{}: {problem}", path.display())]
    Link {
        /// The symlink.
        path: PathBuf,
        /// Why it cannot be packed, and what to do.
        problem: LinkProblem,
    },
    /// The k/m/size combination is not allowed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The output exists and is not an empty directory.
    #[error("output {} already exists and is not empty; choose a new path or remove it", .0.display())]
    OutputExists(PathBuf),
    /// The folder is not a packed dataset.
    #[error("{} has no manifest: is it the output of `hoard pack`?", .0.display())]
    NoManifest(PathBuf),
    /// The manifest is not a valid encoding.
    #[error("the manifest {} is invalid: {reason}", path.display())]
    BadManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Fewer than `k` slots are usable.
    #[error(
        "cannot restore: {needed} good slots are needed, {usable} usable\n{}",
        SlotProblems(problems)
    )]
    NotEnoughSlots {
        /// `k`.
        needed: usize,
        /// Slots that passed every check.
        usable: usize,
        /// What is wrong with each unusable slot.
        problems: Vec<(SlotIndex, SlotProblem)>,
    },
    /// A single slot asked for by index is unusable.
    #[error("slot {index}: {problem}")]
    Slot {
        /// The slot.
        index: SlotIndex,
        /// What is wrong with it.
        problem: SlotProblem,
    },
    /// A path asked for is not a valid dataset path (empty, `.`/`..` components, absolute, NUL).
    #[error(
        "{0:?} is not a path inside a dataset: use `/`-separated names without `.`, `..` or a leading `/`"
    )]
    BadPath(String),
    /// A path asked for names nothing in the dataset.
    #[error("the dataset has no file or folder {0:?} (`hoard ls` lists them)")]
    NoSuchPath(String),
    /// A restore was committed before every block it needs was written.
    #[error("the restore into {} is missing {missing} blocks", out.display())]
    Incomplete {
        /// The output.
        out: PathBuf,
        /// Blocks not written yet.
        missing: u64,
    },
}

/// Why a symlink in a dataset cannot be packed (`docs/protocol.md` §4, "Symlinks").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkProblem {
    /// The link (or a link it leads to) points at nothing.
    Dangling,
    /// Following the link never ends (links pointing at each other).
    Loop,
    /// The link leads to a directory outside the dataset, which is never followed.
    OutsideDirectory {
        /// Where it leads.
        target: PathBuf,
    },
    /// The link leads to the dataset's own root folder.
    DatasetRoot,
}

impl fmt::Display for LinkProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dangling => write!(
                f,
                "the symlink points at nothing (dangling); remove it or point it at a file"
            ),
            Self::Loop => write!(
                f,
                "the symlink never resolves (links that point at each other); remove it"
            ),
            Self::OutsideDirectory { target } => write!(
                f,
                "the symlink leads to the folder {}, outside the dataset; links out of the \
                 dataset are followed only to files: copy the folder in, or pack it on its own",
                target.display()
            ),
            Self::DatasetRoot => write!(
                f,
                "the symlink leads to the dataset's own root folder; remove it"
            ),
        }
    }
}

/// What is wrong with one slot of a packed dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotProblem {
    /// The slot's data file is absent.
    Missing,
    /// The data file has the wrong length (truncated or padded).
    WrongSize {
        /// Bytes the layout requires.
        expected: u64,
        /// Bytes on disk.
        actual: u64,
    },
    /// The block-roots file is absent or the wrong length.
    RootsUnreadable(String),
    /// The block roots hash to another slot's root of this dataset: the files were swapped.
    Swapped {
        /// The slot whose files these are.
        holds: SlotIndex,
    },
    /// The block roots hash to no slot root of this dataset.
    Foreign,
    /// A block's bytes do not match its root: the data file is corrupted.
    CorruptBlock {
        /// The first bad block found.
        block: u64,
    },
    /// Reading failed.
    Io(String),
    /// No such slot in this dataset.
    OutOfRange,
}

impl fmt::Display for SlotProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => write!(f, "missing"),
            Self::WrongSize { expected, actual } => write!(
                f,
                "{actual} bytes instead of {expected} (truncated or altered)"
            ),
            Self::RootsUnreadable(why) => write!(f, "block roots unreadable: {why}"),
            Self::Swapped { holds } => write!(f, "holds slot {holds}'s data (files swapped)"),
            Self::Foreign => write!(
                f,
                "its block roots belong to no slot of this dataset (another dataset, or corrupted)"
            ),
            Self::CorruptBlock { block } => {
                write!(f, "block {block} does not match its root (corrupted)")
            }
            Self::Io(e) => write!(f, "read error: {e}"),
            Self::OutOfRange => write!(f, "no such slot in this dataset"),
        }
    }
}

struct SlotProblems<'a>(&'a [(SlotIndex, SlotProblem)]);

impl fmt::Display for SlotProblems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0 {
            writeln!(f, "  slot {i}: {p}")?;
        }
        Ok(())
    }
}

/// Attaches the path and action to an I/O error.
pub(crate) trait IoContext<T> {
    fn ctx(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T, DatasetError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T, DatasetError> {
        self.map_err(|source| DatasetError::Io {
            action,
            path: path.into(),
            source,
        })
    }
}

impl std::error::Error for SlotProblem {}
