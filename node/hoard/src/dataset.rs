//! `hoard pack` and `hoard unpack`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::output::{Output, size};

/// Arguments of `hoard pack`.
#[derive(Debug, Args)]
#[command(
    after_help = "Any k of the k+m slots restore the dataset. The output folder holds \
manifest.bin, and per slot slot-NNN.bin (data) and slot-NNN.roots (block roots).\n\n\
Example: hoard pack ./my-dataset --data-slots 4 --parity-slots 2 --out ./packed"
)]
pub(crate) struct PackArgs {
    /// The file or directory to pack.
    path: PathBuf,
    /// k: slots holding the data itself (1 to 255).
    #[arg(short = 'k', long, default_value_t = 4)]
    data_slots: usize,
    /// m: parity slots; any m slots may be lost (at least 1, k + m ≤ 256).
    #[arg(short = 'm', long, default_value_t = 2)]
    parity_slots: usize,
    /// Output folder; must not exist or be empty.
    #[arg(short, long)]
    out: PathBuf,
}

/// Arguments of `hoard unpack`.
#[derive(Debug, Args)]
#[command(
    after_help = "Slots may be missing or damaged: each is checked against the manifest \
and every block against its root, and the dataset is rebuilt from any k good slots.\n\n\
Example: hoard unpack ./packed --out ./restored"
)]
pub(crate) struct UnpackArgs {
    /// A folder written by `hoard pack`.
    dir: PathBuf,
    /// Where to restore: a new (or empty) folder for a directory dataset; for a single file, a
    /// new file path, or an existing folder to restore the file into under its own name.
    #[arg(short, long)]
    out: PathBuf,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PackReport<'a> {
    dataset_id: String,
    dataset_root: String,
    out: &'a std::path::Path,
    size: u64,
    files: usize,
    data_slots: usize,
    parity_slots: usize,
    slot_bytes: u64,
    cell_count: u64,
    slot_roots: &'a [hoard_prover::Hash],
}

pub(crate) fn pack(args: PackArgs, out: &Output) -> Result<()> {
    let bar = out.progress();
    let packed = hoard_dataset::pack(
        &args.path,
        &args.out,
        args.data_slots,
        args.parity_slots,
        &bar,
    )?;
    drop(bar);
    let m = &packed.manifest;
    let report = PackReport {
        dataset_id: packed.id.to_string(),
        dataset_root: m.root.to_string(),
        out: &args.out,
        size: m.size,
        files: m.files().count(),
        data_slots: m.layout.data_slots(),
        parity_slots: m.layout.parity_slots(),
        slot_bytes: m.layout.slot_bytes(),
        cell_count: m.layout.cell_count(),
        slot_roots: &m.slot_roots,
    };
    out.result(&report, || {
        format!(
            "packed {} ({} in {} file(s)) into {} + {} slots of {} in {}\ndataset id   {}\ndataset root {}",
            args.path.display(),
            size(m.size),
            report.files,
            report.data_slots,
            report.parity_slots,
            size(report.slot_bytes),
            args.out.display(),
            report.dataset_id,
            report.dataset_root,
        )
    });
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UnpackReport {
    dataset_id: String,
    out: PathBuf,
    size: u64,
    decoded_stripes: u64,
    bad_slots: Vec<BadSlot>,
}

#[derive(Serialize)]
struct BadSlot {
    slot: u16,
    problem: String,
}

pub(crate) fn unpack(args: UnpackArgs, out: &Output) -> Result<()> {
    let bar = out.progress();
    let u = hoard_dataset::unpack(&args.dir, &args.out, &bar)?;
    drop(bar);
    let report = UnpackReport {
        dataset_id: u.id.to_string(),
        out: u.out.clone(),
        size: u.size,
        decoded_stripes: u.decoded_stripes,
        bad_slots: u
            .problems
            .iter()
            .map(|(i, p)| BadSlot {
                slot: i.0,
                problem: p.to_string(),
            })
            .collect(),
    };
    out.result(&report, || {
        let mut text = format!(
            "restored {} ({}) to {}",
            report.dataset_id,
            size(u.size),
            u.out.display()
        );
        if !u.problems.is_empty() {
            text += &format!(
                "\nrebuilt {} stripe(s) around {} unusable slot(s):",
                u.decoded_stripes,
                u.problems.len()
            );
            for (i, p) in &u.problems {
                text += &format!("\n  slot {i}: {p}");
            }
        }
        text
    });
    Ok(())
}
