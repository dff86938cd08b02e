//! The sample dataset (a README and four pseudo-random parts, the same bytes on every run) and
//! the byte-for-byte check of a fetched copy against it.

use std::{
    fs::{self, File},
    io::{self, BufWriter, Read, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::{Plan, remove_any};

/// Sizes of the sample's files: a README and parts summing to `--size-mib`: four unequal ones
/// (40/30/20/10 %) by default, or `parts` of equal size (the last takes the remainder).
fn sample_files(size_mib: u64, parts: Option<u32>) -> Vec<(String, u64)> {
    let total = size_mib << 20;
    let lens: Vec<u64> = match parts {
        None => vec![total * 4 / 10, total * 3 / 10, total * 2 / 10],
        Some(n) => vec![total / u64::from(n); n as usize - 1],
    };
    let rest = total - lens.iter().sum::<u64>();
    let mut files = vec![("README.txt".to_string(), 0)];
    for (i, len) in lens.into_iter().chain([rest]).enumerate() {
        files.push((format!("data/part-{i}.bin"), len));
    }
    files
}

const SAMPLE_README: &str = "A sample dataset made by `hoard devnet`: pseudo-random parts \
                             (xorshift64, one seed per file), the same on every run.\n";

/// Writes DIR/sample unless a sample of this size is already there; returns (files, bytes).
pub(super) async fn ensure_sample(plan: &Plan) -> anyhow::Result<(usize, u64)> {
    let dir = plan.path("sample");
    let marker = plan.path("sample.json");
    let want = json!({ "size_mib": plan.size_mib, "parts": plan.sample_files, "version": 1 });
    let files = sample_files(plan.size_mib, plan.sample_files);
    let bytes = files.iter().map(|f| f.1).sum::<u64>() + SAMPLE_README.len() as u64;
    let have: Option<Value> = fs::read(&marker)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if have.as_ref() == Some(&want) && dir.is_dir() {
        return Ok((files.len(), bytes));
    }
    remove_any(&dir)?;
    let n = files.len();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        for (seed, (name, len)) in files.into_iter().enumerate() {
            let path = dir.join(&name);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            if name == "README.txt" {
                fs::write(&path, SAMPLE_README)?;
                continue;
            }
            let mut out = BufWriter::new(
                File::create(&path).with_context(|| format!("creating {}", path.display()))?,
            );
            let mut x =
                0x9e37_79b9_7f4a_7c15u64 ^ (seed as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let mut left = len;
            let mut buf = vec![0u8; 1 << 20];
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                for chunk in buf[..n].chunks_mut(8) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
                }
                out.write_all(&buf[..n])?;
                left -= n as u64;
            }
            out.flush()?;
        }
        Ok(())
    })
    .await??;
    fs::write(&marker, serde_json::to_vec(&want)?)?;
    Ok((n, bytes))
}

/// Checks that `b` holds exactly the files of `a`, byte for byte; returns (files, bytes).
pub(super) fn compare_trees(a: &Path, b: &Path) -> anyhow::Result<(usize, u64)> {
    let (fa, fb) = (list_files(a)?, list_files(b)?);
    if let Some(missing) = fa.iter().find(|f| !fb.contains(f)) {
        bail!("the fetched copy lacks {}", missing.display());
    }
    if let Some(extra) = fb.iter().find(|f| !fa.contains(f)) {
        bail!(
            "the fetched copy has a file the sample lacks: {}",
            extra.display()
        );
    }
    let mut bytes = 0;
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    for rel in &fa {
        let (mut x, mut y) = (File::open(a.join(rel))?, File::open(b.join(rel))?);
        let mut offset = 0u64;
        loop {
            let n = read_full(&mut x, &mut ba)?;
            let m = read_full(&mut y, &mut bb)?;
            if n != m || ba[..n] != bb[..m] {
                bail!(
                    "the fetched {} differs from the sample near byte {offset}",
                    rel.display()
                );
            }
            if n == 0 {
                break;
            }
            offset += n as u64;
        }
        bytes += offset;
    }
    Ok((fa.len(), bytes))
}

fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Files under `root`, relative, sorted.
fn list_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(root)?.to_path_buf());
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_sizes_add_up() {
        for mib in [1, 4, 16, 1000] {
            let files = sample_files(mib, None);
            assert_eq!(files.iter().map(|f| f.1).sum::<u64>(), mib << 20);
            assert_eq!(files.len(), 5);
            for parts in [1, 3, 20] {
                let files = sample_files(mib, Some(parts));
                assert_eq!(files.iter().map(|f| f.1).sum::<u64>(), mib << 20);
                assert_eq!(files.len(), parts as usize + 1, "README and {parts} parts");
                assert!(
                    files[1..]
                        .iter()
                        .all(|f| f.1 >= (mib << 20) / u64::from(parts))
                );
            }
        }
    }
}
