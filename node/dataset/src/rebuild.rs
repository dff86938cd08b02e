//! Rebuilding one lost slot from any `k` good slots of the same dataset (what a host repairing
//! a freed slot does): decode the data shards of each stripe batch, re-encode parity if the lost
//! slot is a parity slot, and write the slot's blocks and block roots. The result is checked
//! against the manifest's slot root before it is reported done. [`rebuild_stripe`] does the same
//! for a few blocks of one slot (a host's block-level self-repair): the same blocks of `k`
//! other slots in, the lost slot's blocks out.

use std::path::Path;

use hoard_prover::{BLOCK_SIZE, Hash, SlotIndex};
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

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

/// Rebuilds the bytes of slot `target` at one place of its stripes from the bytes at the same
/// place of `k` other slots of a `k + m` layout: `shards` holds (slot index, bytes), every
/// shard the same whole number of blocks, each already checked against its block roots by the
/// caller (Reed–Solomon does not detect a wrong shard). Shards past the first `k` are ignored.
/// Returns the target's bytes, to be checked against its own roots before use.
pub fn rebuild_stripe(
    k: usize,
    m: usize,
    target: SlotIndex,
    shards: &[(SlotIndex, &[u8])],
) -> Result<Vec<u8>, DatasetError> {
    let bad = |why: String| DatasetError::Slot {
        index: target,
        problem: SlotProblem::Io(format!("cannot rebuild from these shards: {why}")),
    };
    let t = usize::from(target.0);
    if t >= k + m {
        return Err(DatasetError::Slot {
            index: target,
            problem: SlotProblem::OutOfRange,
        });
    }
    let mut chosen: Vec<(usize, &[u8])> = Vec::with_capacity(k);
    for (i, bytes) in shards {
        let i = usize::from(i.0);
        if i >= k + m || i == t || chosen.iter().any(|(c, _)| *c == i) {
            return Err(bad(format!(
                "slot {i} is out of range, the target, or given twice"
            )));
        }
        if chosen.len() < k {
            chosen.push((i, bytes));
        }
    }
    if chosen.len() < k {
        return Err(DatasetError::NotEnoughSlots {
            needed: k,
            usable: chosen.len(),
            problems: Vec::new(),
        });
    }
    let len = chosen[0].1.len();
    if len == 0 || !len.is_multiple_of(BLOCK_SIZE) || chosen.iter().any(|(_, b)| b.len() != len) {
        return Err(bad(format!(
            "shards must be the same whole number of blocks (first is {len} bytes)"
        )));
    }
    // The data shards: given, or decoded from the parity shards given.
    let mut data: Vec<Option<Vec<u8>>> = vec![None; k];
    for (i, bytes) in &chosen {
        if *i < k {
            data[*i] = Some(bytes.to_vec());
        }
    }
    if data.iter().any(Option::is_none) {
        let mut decoder =
            ReedSolomonDecoder::new(k, m, len).map_err(|e| rs_bug("creating the decoder", e))?;
        for (i, bytes) in &chosen {
            if *i < k {
                decoder.add_original_shard(*i, bytes)
            } else {
                decoder.add_recovery_shard(i - k, bytes)
            }
            .map_err(|e| rs_bug("adding a shard", e))?;
        }
        let result = decoder.decode().map_err(|e| rs_bug("decoding", e))?;
        for (i, restored) in result.restored_original_iter() {
            data[i] = Some(restored.to_vec());
        }
    }
    let mut data: Vec<Vec<u8>> = data
        .into_iter()
        .enumerate()
        .map(|(i, d)| d.ok_or_else(|| bad(format!("data slot {i} was not restored"))))
        .collect::<Result<_, _>>()?;
    if t < k {
        return Ok(std::mem::take(&mut data[t]));
    }
    let mut encoder =
        ReedSolomonEncoder::new(k, m, len).map_err(|e| rs_bug("creating the encoder", e))?;
    for d in &data {
        encoder
            .add_original_shard(d)
            .map_err(|e| rs_bug("adding a shard", e))?;
    }
    let encoded = encoder.encode().map_err(|e| rs_bug("encoding", e))?;
    encoded
        .recovery(t - k)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| bad(format!("parity slot {t} was not encoded")))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// `k + m` shards of `blocks` blocks: data from `seed`, parity encoded.
    fn stripe(k: usize, m: usize, blocks: usize, seed: u8) -> Vec<Vec<u8>> {
        let len = blocks * BLOCK_SIZE;
        let mut shards: Vec<Vec<u8>> = (0..k)
            .map(|i| {
                (0..len)
                    .map(|b| (b as u8).wrapping_mul(31).wrapping_add(seed ^ i as u8))
                    .collect()
            })
            .collect();
        let mut enc = ReedSolomonEncoder::new(k, m, len).expect("encoder");
        for s in &shards {
            enc.add_original_shard(s).expect("shard");
        }
        let out = enc.encode().expect("encode");
        shards.extend(out.recovery_iter().map(<[u8]>::to_vec));
        shards
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Any slot, data or parity, comes back from any `k` others.
        #[test]
        fn any_slot_comes_back_from_any_k_others(
            k in 1usize..5, m in 1usize..4, blocks in 1usize..3, seed: u8, pick: u64,
        ) {
            let all = stripe(k, m, blocks, seed);
            let target = (pick as usize) % (k + m);
            let mut others: Vec<usize> = (0..k + m).filter(|i| *i != target).collect();
            // A pseudo-random choice of k of the others, in a pseudo-random order.
            let n = others.len();
            others.rotate_left((pick >> 8) as usize % n);
            let given: Vec<(SlotIndex, &[u8])> = others[..k]
                .iter()
                .map(|i| (SlotIndex(*i as u16), all[*i].as_slice()))
                .collect();
            let got = rebuild_stripe(k, m, SlotIndex(target as u16), &given).expect("rebuild");
            prop_assert!(got == all[target]);
        }
    }

    /// Pack encodes whole stripe batches; a repair rebuilds one block of them. The code works
    /// position by position, so a block cut out of a batch rebuilds on its own.
    #[test]
    fn one_block_of_a_batch_encoded_together_rebuilds_alone() {
        let (k, m) = (4, 2);
        let all = stripe(k, m, 3, 42);
        let block = |i: usize| &all[i][BLOCK_SIZE..2 * BLOCK_SIZE];
        for target in [0, 3, 4, 5] {
            let given: Vec<(SlotIndex, &[u8])> = (0..k + m)
                .filter(|i| *i != target)
                .rev()
                .map(|i| (SlotIndex(i as u16), block(i)))
                .collect();
            let got = rebuild_stripe(k, m, SlotIndex(target as u16), &given).expect("rebuild");
            assert!(got == block(target), "slot {target}");
        }
    }

    #[test]
    fn too_few_uneven_or_repeated_shards_are_refused() {
        let all = stripe(3, 2, 1, 7);
        let s = |i: usize| (SlotIndex(i as u16), all[i].as_slice());
        assert!(matches!(
            rebuild_stripe(3, 2, SlotIndex(0), &[s(1), s(2)]),
            Err(DatasetError::NotEnoughSlots {
                needed: 3,
                usable: 2,
                ..
            })
        ));
        assert!(rebuild_stripe(3, 2, SlotIndex(0), &[s(1), s(1), s(2)]).is_err());
        assert!(rebuild_stripe(3, 2, SlotIndex(0), &[s(0), s(1), s(2)]).is_err());
        assert!(rebuild_stripe(3, 2, SlotIndex(5), &[s(1), s(2), s(3)]).is_err());
        let short = &all[3][..BLOCK_SIZE / 2];
        assert!(rebuild_stripe(3, 2, SlotIndex(0), &[s(1), s(2), (SlotIndex(3), short)]).is_err());
    }
}
