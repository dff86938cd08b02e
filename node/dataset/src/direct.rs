//! Direct I/O (`O_DIRECT`) writes: the bytes go from our buffer to the disk without a copy into
//! fresh page-cache pages. A reader writes every downloaded byte twice (its output and its
//! reader cache); on this project's machine those buffered copies were a quarter to a third of
//! its CPU, and the cost swings with how expensive touching fresh memory is on the host.
//!
//! Direct writes need file offsets, lengths and memory aligned to the device's block size:
//! [`ALIGN`] (4096) covers every common device. Writes that are not aligned stay buffered, and so
//! does everything on a filesystem without direct I/O (tmpfs): [`open`] returns `None` there.

use std::{
    fs::{File, OpenOptions},
    os::unix::fs::OpenOptionsExt,
    path::Path,
};

/// Alignment of direct writes: file offset, length and buffer address.
pub const ALIGN: usize = 4096;

/// `path` opened again for direct writes, or `None` where the filesystem refuses.
pub fn open(path: &Path) -> Option<File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(path)
        .ok()
}

/// `len` bytes of `buffer`, starting at an [`ALIGN`]ed address (the buffer grows if it must and
/// is meant to be reused, so that writes do not fault in fresh pages).
pub fn aligned(buffer: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buffer.len() < len + ALIGN {
        buffer.resize(len + ALIGN, 0);
    }
    let start = buffer.as_ptr().align_offset(ALIGN);
    &mut buffer[start..start + len]
}

/// Whether a failed direct write is one the kernel refused for its alignment or flags (then the
/// same bytes can be written buffered).
pub fn refused(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::InvalidInput
}

/// Buffers for direct writes, reused (at most `KEEP` kept).
#[derive(Debug, Default)]
pub struct Buffers(std::sync::Mutex<Vec<Vec<u8>>>);

impl Buffers {
    const KEEP: usize = 4;

    /// A buffer to fill (empty if none is kept).
    pub fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut v| v.pop())
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Gives a buffer back for the next write.
    pub fn give(&self, buffer: Vec<u8>) {
        if let Ok(mut kept) = self.0.lock()
            && kept.len() < Self::KEEP
        {
            kept.push(buffer);
        }
    }
}
