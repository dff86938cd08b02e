//! Progress reporting for long work, kept free of any terminal library.

/// Receives progress of a pack or unpack. Called from the working thread.
pub trait Progress: Sync {
    /// A new phase starts, with its total in bytes.
    fn phase(&self, name: &str, total: u64);
    /// `bytes` more of the current phase are done.
    fn advance(&self, bytes: u64);
}

/// Discards progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
}
