//! `hoard bench`: pack and unpack speed, peak memory, and proof time, on this machine.
//!
//! Each phase runs in this process with the kernel's peak-RSS counter reset before it
//! (`/proc/self/clear_refs`), so the memory figure is that phase's own peak.

use std::{
    fs,
    io::Write,
    num::NonZeroU64,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use clap::Args;
use hoard_dataset::{NoProgress, PackedDataset, pack, slot_data_file, unpack};
use hoard_prover::{Challenge, DirectProof, Seed, SlotId, SlotIndex, verify};
use serde::Serialize;

use crate::output::{Output, size};

/// Arguments of `hoard bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Size of the generated dataset in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Data slots.
    #[arg(short = 'k', long, default_value_t = 4)]
    data_slots: usize,
    /// Parity slots.
    #[arg(short = 'm', long, default_value_t = 2)]
    parity_slots: usize,
    /// Proofs to time.
    #[arg(long, default_value_t = 200)]
    proofs: u32,
    /// Samples per proof.
    #[arg(long, default_value_t = 16)]
    samples: u32,
    /// Folder for the generated files (needs about 3.5 × the dataset size free); removed after.
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Phase {
    name: &'static str,
    seconds: f64,
    mb_per_s: f64,
    peak_rss_mib: Option<f64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    dataset_bytes: u64,
    data_slots: usize,
    parity_slots: usize,
    cpus: usize,
    phases: Vec<Phase>,
    proof_samples: u32,
    proof_bytes: usize,
    proof_create_us: f64,
    proof_verify_us: f64,
}

pub(crate) fn run(args: BenchArgs, out: &Output) -> Result<()> {
    let work = match &args.dir {
        Some(d) => tempfile::Builder::new()
            .prefix("hoard-bench-")
            .tempdir_in(d),
        None => tempfile::Builder::new().prefix("hoard-bench-").tempdir(),
    }
    .context("creating the bench folder")?;
    let bytes = args.size_mib << 20;
    let input = work.path().join("input.bin");
    generate(&input, bytes)?;
    let (packed, restored) = (work.path().join("packed"), work.path().join("restored"));

    let mut phases = Vec::new();
    let mut timed = |name, f: &mut dyn FnMut() -> Result<()>| -> Result<()> {
        let peak = reset_peak_rss();
        let t = Instant::now();
        f()?;
        let seconds = t.elapsed().as_secs_f64();
        phases.push(Phase {
            name,
            seconds,
            mb_per_s: bytes as f64 / 1e6 / seconds,
            peak_rss_mib: peak.then(peak_rss_mib).flatten(),
        });
        Ok(())
    };
    timed("pack", &mut || {
        pack(
            &input,
            &packed,
            args.data_slots,
            args.parity_slots,
            &NoProgress,
        )?;
        Ok(())
    })?;
    timed("unpack", &mut || {
        unpack(&packed, &restored, &NoProgress)?;
        Ok(())
    })?;
    fs::remove_file(&restored)?;
    // Lose m data slots so that every stripe is decoded.
    for i in 0..args.parity_slots.min(args.data_slots) {
        fs::remove_file(packed.join(slot_data_file(SlotIndex(i as u16))))?;
    }
    timed("unpack, m data slots lost", &mut || {
        unpack(&packed, &restored, &NoProgress)?;
        Ok(())
    })?;
    anyhow::ensure!(
        files_equal(&input, &restored)?,
        "restored bytes differ from the input"
    );

    let (proof_bytes, create_us, verify_us) = time_proofs(&packed, &args)?;
    let report = Report {
        dataset_bytes: bytes,
        data_slots: args.data_slots,
        parity_slots: args.parity_slots,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        phases,
        proof_samples: args.samples,
        proof_bytes,
        proof_create_us: create_us,
        proof_verify_us: verify_us,
    };
    out.result(&report, || {
        let mut t = format!(
            "dataset {} , k={} m={}, {} cpus\n{:<28} {:>9} {:>10} {:>14}\n",
            size(bytes),
            report.data_slots,
            report.parity_slots,
            report.cpus,
            "phase",
            "seconds",
            "MB/s",
            "peak RSS MiB"
        );
        for p in &report.phases {
            t += &format!(
                "{:<28} {:>9.2} {:>10.0} {:>14}\n",
                p.name,
                p.seconds,
                p.mb_per_s,
                p.peak_rss_mib.map_or("n/a".into(), |m| format!("{m:.0}"))
            );
        }
        t + &format!(
            "direct proof, {} samples: {:.0} µs to create, {:.0} µs to verify, {} bytes",
            report.proof_samples,
            report.proof_create_us,
            report.proof_verify_us,
            report.proof_bytes
        )
    });
    Ok(())
}

/// Writes `bytes` of pseudo-random data (incompressible, cheap to make).
fn generate(path: &Path, bytes: u64) -> Result<()> {
    let mut f = std::io::BufWriter::new(fs::File::create(path)?);
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        for w in chunk.as_chunks_mut::<8>().0 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *w = x.to_le_bytes();
        }
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
}

/// Mean proof creation and verification time over `args.proofs` random seeds, for slot `m`
/// (a parity slot, which the unpack phase left in place), from a warm page cache.
fn time_proofs(packed: &Path, args: &BenchArgs) -> Result<(usize, f64, f64)> {
    let dataset = PackedDataset::open(packed)?;
    let slot = SlotIndex(dataset.manifest().layout.data_slots() as u16);
    let (files, tree) = dataset.slot_tree(slot)?;
    let cell_count = NonZeroU64::new(tree.cell_count()).context("empty slot")?;
    let (mut create, mut check, mut len) = (Duration::ZERO, Duration::ZERO, 0);
    for i in 0..args.proofs.max(1) {
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&i.to_le_bytes());
        let c = Challenge {
            seed: Seed(seed),
            slot_id: SlotId([1; 32]),
            samples: args.samples,
            cell_count,
        };
        let t = Instant::now();
        let proof = DirectProof::create(&tree, &c, |b, buf| files.read_blocks(b, buf))?;
        let bytes = proof.to_bytes();
        create += t.elapsed();
        let t = Instant::now();
        verify(&tree.root(), &c, &bytes)?;
        check += t.elapsed();
        len = bytes.len();
    }
    let n = f64::from(args.proofs.max(1));
    Ok((
        len,
        create.as_secs_f64() * 1e6 / n,
        check.as_secs_f64() * 1e6 / n,
    ))
}

fn files_equal(a: &Path, b: &Path) -> Result<bool> {
    use std::io::Read;
    let (mut fa, mut fb) = (fs::File::open(a)?, fs::File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba)?;
        let mut got = 0;
        while got < n {
            let r = fb.read(&mut bb[got..n])?;
            if r == 0 {
                return Ok(false);
            }
            got += r;
        }
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(fb.read(&mut bb)? == 0);
        }
    }
}

/// Resets the kernel's peak-RSS counter for this process; false where that is not possible.
fn reset_peak_rss() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Peak resident memory since the last reset, from `/proc/self/status`.
fn peak_rss_mib() -> Option<f64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}
