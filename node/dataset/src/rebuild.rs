//! Rebuilding one lost slot from any `k` good slots of the same dataset (what a host repairing
//! a freed slot does): decode the data shards of each stripe batch, re-encode parity if the lost
//! slot is a parity slot, and write the slot's blocks and block roots. The result is checked
//! against the manifest's slot root before it is reported done.

use std::path::Path;

use hoard_prover::{BLOCK_SIZE, Hash, SlotIndex};
use reed_solomon_simd::ReedSolomonEncoder;

use crate::{
    error::{DatasetError, SlotProblem},
    hashing,
    pack::{SlotWriter, batch_stripes, encode, rs_bug},
    packed::{PackedDataset, SlotFiles},
    progress::Progress,
    unpack::decode,
};

/// Writes slot `target` into `dir` (which holds the manifest and at least `k` other good
/// slots). Returns the rebuilt slot's root, equal to the manifest's.
pub fn rebuild_slot(
    dir: &Path,
    target: SlotIndex,
    progress: &dyn Progress,
) -> Result<Hash, DatasetError> {
    let packed = PackedDataset::open(dir)?;
    let manifest = packed.manifest();
    let layout = manifest.layout;
    let (k, m) = (layout.data_slots(), layout.parity_slots());
    let want = *manifest
        .slot_roots
        .get(usize::from(target.0))
        .ok_or(DatasetError::Slot {
            index: target,
            problem: SlotProblem::OutOfRange,
        })?;
    let mut usable: Vec<(usize, SlotFiles)> = Vec::new();
    let mut problems = Vec::new();
    for i in (0..layout.slots()).filter(|i| *i != usize::from(target.0)) {
        match packed.open_slot(SlotIndex(i as u16)) {
            Ok(f) if usable.len() < k => usable.push((i, f)),
            Ok(_) => {}
            Err(p) => problems.push((SlotIndex(i as u16), p)),
        }
    }
    if usable.len() < k {
        return Err(DatasetError::NotEnoughSlots {
            needed: k,
            usable: usable.len(),
            problems,
        });
    }
    let chosen: Vec<usize> = usable.iter().map(|(i, _)| *i).collect();
    let stripes = batch_stripes(k + m, layout.slot_blocks());
    let mut buffers = vec![vec![0u8; stripes * BLOCK_SIZE]; k + m];
    let mut roots = vec![Hash::default(); stripes];
    let mut encoder = ReedSolomonEncoder::new(k, m, stripes * BLOCK_SIZE)
        .map_err(|e| rs_bug("creating the encoder", e))?;
    let mut writer = SlotWriter::create(dir, target)?;
    progress.phase("rebuilding", layout.slot_bytes());
    let mut first = 0u64;
    while first < layout.slot_blocks() {
        let n = (layout.slot_blocks() - first).min(stripes as u64) as usize;
        let len = n * BLOCK_SIZE;
        for (c, (index, files)) in usable.iter().enumerate() {
            let slot_err = |problem| DatasetError::Slot {
                index: SlotIndex(*index as u16),
                problem,
            };
            files
                .read_blocks(first, &mut buffers[c][..len])
                .map_err(slot_err)?;
            files.read_roots(first, &mut roots[..n]).map_err(slot_err)?;
            let got = &hashing::block_roots(&[&buffers[c][..len]])[0];
            if let Some(b) = got.iter().zip(&roots).position(|(g, w)| g != w) {
                return Err(slot_err(SlotProblem::CorruptBlock {
                    block: first + b as u64,
                }));
            }
        }
        if chosen.iter().any(|i| *i >= k) {
            decode(k, m, &chosen, &mut buffers[..k], len)?;
        }
        // buffers[0..k] now hold the data shards.
        let t = usize::from(target.0);
        if t >= k {
            encode(&mut encoder, k, m, &mut buffers, len)?;
        }
        let block_roots = &hashing::block_roots(&[&buffers[t][..len]])[0];
        writer.append(&buffers[t][..len], block_roots)?;
        first += n as u64;
        progress.advance(len as u64);
    }
    let root = writer.finish()?;
    if root != want {
        return Err(DatasetError::Slot {
            index: target,
            problem: SlotProblem::Foreign,
        });
    }
    Ok(root)
}
