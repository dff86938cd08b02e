//! `hoard proof create` and `hoard proof verify`: direct storage proofs as JSON documents.

use std::{num::NonZeroU64, path::PathBuf};

use anyhow::{Context, Result, bail, ensure};
use clap::{Args, Subcommand};
use hoard_dataset::PackedDataset;
use hoard_prover::{
    Challenge, DirectProof, Hash, RequestId, Seed, SlotId, SlotIndex, slot_id, verify,
    verify_slot_path,
};
use serde::{Deserialize, Serialize};

use crate::output::Output;

/// Proof subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ProofCommand {
    /// Answer a challenge (seed, sample count) for one slot of a packed dataset.
    Create(CreateArgs),
    /// Check a proof document: cells and siblings against the slot root, and the slot root
    /// against the dataset root.
    Verify(VerifyArgs),
}

/// Arguments of `hoard proof create`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: hoard proof create ./packed --slot 0 --seed 0x$(printf '%064x' 7) --out proof.json"
)]
pub(crate) struct CreateArgs {
    /// A folder written by `hoard pack`.
    dir: PathBuf,
    /// The slot to prove (0-based).
    #[arg(long)]
    slot: u16,
    /// The period seed, 32 bytes in hex (on chain: the hash of the block before the period).
    #[arg(long)]
    seed: Seed,
    /// Cells sampled.
    #[arg(long, default_value_t = 16)]
    samples: u32,
    /// The storage request id the slot id derives from (default: the dataset id, for use off
    /// chain).
    #[arg(long)]
    request_id: Option<RequestId>,
    /// Write the proof document here instead of stdout.
    #[arg(short, long)]
    out: Option<PathBuf>,
}

/// Arguments of `hoard proof verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// A proof document written by `hoard proof create`.
    file: PathBuf,
    /// Also check the document's roots against this packed dataset's manifest.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// A proof with everything needed to check it. Field names match `testdata/vectors.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProofDocument {
    dataset_root: Hash,
    slots: usize,
    slot_index: u16,
    slot_root: Hash,
    /// Path of the slot root to the dataset root, bottom up.
    slot_path: Vec<Hash>,
    request_id: RequestId,
    slot_id: SlotId,
    seed: Seed,
    samples: u32,
    cell_count: NonZeroU64,
    /// Sample indices in challenge order (informational; the verifier derives them).
    indices: Vec<u64>,
    /// How many distinct cells `proof` holds (a count; the cells are in `proof`).
    cells: usize,
    /// How many sibling hashes `proof` holds (a count; the hashes are in `proof`).
    siblings: usize,
    /// `cells ‖ siblings`, the contract's `proof` argument.
    #[serde(with = "hex_bytes")]
    proof: Vec<u8>,
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{}", hex::encode(b)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s.strip_prefix("0x").unwrap_or(&s)).map_err(D::Error::custom)
    }
}

pub(crate) fn run(cmd: ProofCommand, out: &Output) -> Result<()> {
    match cmd {
        ProofCommand::Create(args) => create(args, out),
        ProofCommand::Verify(args) => verify_document(args, out),
    }
}

fn create(args: CreateArgs, out: &Output) -> Result<()> {
    ensure!(args.samples > 0, "--samples must be at least 1");
    let packed = PackedDataset::open(&args.dir)?;
    let m = packed.manifest();
    ensure!(
        usize::from(args.slot) < m.layout.slots(),
        "--slot {} is out of range: the dataset has slots 0 to {}",
        args.slot,
        m.layout.slots() - 1
    );
    let index = SlotIndex(args.slot);
    let (files, tree) = packed.slot_tree(index)?;
    let request_id = args.request_id.unwrap_or(RequestId(packed.id().0));
    let challenge = Challenge {
        seed: args.seed,
        slot_id: slot_id(&request_id, index),
        samples: args.samples,
        cell_count: NonZeroU64::new(tree.cell_count()).context("empty slot")?,
    };
    let proof = DirectProof::create(&tree, &challenge, |b, buf| files.read_blocks(b, buf))
        .with_context(|| format!("proving slot {index}"))?;
    let bytes = proof.to_bytes();
    // Never hand out a proof that does not verify.
    verify(&tree.root(), &challenge, &bytes).context("the new proof does not verify (a bug)")?;
    let doc = ProofDocument {
        dataset_root: m.root,
        slots: m.layout.slots(),
        slot_index: args.slot,
        slot_root: tree.root(),
        slot_path: hoard_prover::DatasetTree::new(&m.slot_roots)?
            .path(index.0.into())
            .context("slot in range")?,
        request_id,
        slot_id: challenge.slot_id,
        seed: challenge.seed,
        samples: challenge.samples,
        cell_count: challenge.cell_count,
        indices: challenge.indices().iter().map(|i| i.0).collect(),
        cells: proof.cells.len(),
        siblings: proof.siblings.len(),
        proof: bytes,
    };
    let json = serde_json::to_string_pretty(&doc)? + "\n";
    match &args.out {
        Some(path) => {
            write_atomically(path, json.as_bytes())?;
            out.result(&serde_json::json!({ "out": path, "bytes": doc.proof.len(), "cells": doc.cells, "siblings": doc.siblings }), || {
                format!(
                    "proof of slot {} ({} samples, {} distinct cells, {} siblings, {} bytes) written to {}",
                    args.slot,
                    doc.samples,
                    doc.cells,
                    doc.siblings,
                    doc.proof.len(),
                    path.display()
                )
            });
        }
        None => print!("{json}"),
    }
    Ok(())
}

fn verify_document(args: VerifyArgs, out: &Output) -> Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let doc: ProofDocument = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a proof document", args.file.display()))?;
    if slot_id(&doc.request_id, SlotIndex(doc.slot_index)) != doc.slot_id {
        bail!("slotId is not keccak256(requestId, slotIndex)");
    }
    ensure!(
        verify_slot_path(
            &doc.dataset_root,
            doc.slots,
            doc.slot_index.into(),
            &doc.slot_root,
            &doc.slot_path
        ),
        "the slot root is not slot {} of dataset root {}",
        doc.slot_index,
        doc.dataset_root
    );
    if let Some(dir) = &args.dir {
        let packed = PackedDataset::open(dir)?;
        ensure!(
            packed.manifest().root == doc.dataset_root,
            "the proof is for dataset root {}, but {} has {}",
            doc.dataset_root,
            dir.display(),
            packed.manifest().root
        );
    }
    let challenge = Challenge {
        seed: doc.seed,
        slot_id: doc.slot_id,
        samples: doc.samples,
        cell_count: doc.cell_count,
    };
    verify(&doc.slot_root, &challenge, &doc.proof).context("the proof is invalid")?;
    out.result(&serde_json::json!({ "valid": true, "slotIndex": doc.slot_index, "datasetRoot": doc.dataset_root }), || {
        format!(
            "valid: {} samples of slot {} of dataset root {}",
            doc.samples, doc.slot_index, doc.dataset_root
        )
    });
    Ok(())
}

/// Writes `bytes` to a temporary file next to `path`, syncs it and renames it into place.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(parent)
        .with_context(|| format!("creating a file in {}", parent.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
