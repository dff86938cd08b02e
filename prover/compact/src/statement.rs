//! What a compact proof states, computed natively: the sample indices of a slot and the public
//! inputs of a batch. The circuit ([`crate::circuit`]) derives the same indices in R1CS.
//!
//! For a batch of `S` slots proven by `host` in the period with `seed`:
//! - `x0 = uint256(keccak256(abi.encode(seed, host))) >> 3` ([`crate::host_seed`]);
//! - slot `i`'s commitment `c_i` (zero for a padding position);
//! - `u_0 = Poseidon(2)(x0, c_i)`, `u_t = Poseidon(2)(u_0, t)` for `t ≥ 1`;
//! - sample `j` takes the 40-bit chunk `j mod 6` of `u_{j div 6}` (bits `[40·(j mod 6), +40)` of
//!   its canonical integer) and reduces it modulo the slot's cell count.

use ark_bn254::Fr;
use ark_ff::{BigInteger, PrimeField};

use crate::poseidon::hash2;

/// Bits of hash output per sample index.
pub const CHUNK_BITS: usize = 40;
/// Sample indices cut from one Poseidon output (6 × 40 = 240 of its 254 bits).
pub const CHUNKS_PER_HASH: usize = 6;

/// The Poseidon outputs the indices of `samples` samples are cut from.
pub fn sample_hashes(x0: Fr, commitment: Fr, samples: usize) -> Vec<Fr> {
    let u0 = hash2(x0, commitment);
    let count = samples.div_ceil(CHUNKS_PER_HASH).max(1);
    std::iter::once(u0)
        .chain((1..count).map(|t| hash2(u0, Fr::from(t as u64))))
        .collect()
}

/// Bits `[offset, offset + CHUNK_BITS)` of `x`'s canonical integer.
pub(crate) fn chunk(x: &Fr, offset: usize) -> u64 {
    let bits = x.into_bigint().to_bits_le();
    bits[offset..offset + CHUNK_BITS]
        .iter()
        .rev()
        .fold(0u64, |acc, b| (acc << 1) | u64::from(*b))
}

/// The cell indices of a slot's samples, in sample order (repeats possible).
///
/// `cell_count` is the slot's (1 ..= 2^22); zero gives no indices.
pub fn sample_indices(x0: Fr, commitment: Fr, cell_count: u64, samples: usize) -> Vec<u64> {
    if cell_count == 0 {
        return Vec::new();
    }
    let hashes = sample_hashes(x0, commitment, samples);
    (0..samples)
        .map(|j| {
            let u = &hashes[j / CHUNKS_PER_HASH];
            chunk(u, CHUNK_BITS * (j % CHUNKS_PER_HASH)) % cell_count
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_the_low_bits_first() {
        let x = Fr::from((0xabcu64 << 40) | 0x12_3456_789a);
        assert_eq!(chunk(&x, 0), 0x12_3456_789a);
        assert_eq!(chunk(&x, 40), 0xabc);
    }

    #[test]
    fn indices_stay_in_range_and_depend_on_every_input() {
        let x0 = Fr::from(7u8);
        let c = Fr::from(9u8);
        let i = sample_indices(x0, c, 1000, 13);
        assert_eq!(i.len(), 13);
        assert!(i.iter().all(|x| *x < 1000));
        assert_eq!(sample_hashes(x0, c, 13).len(), 3);
        assert_ne!(i, sample_indices(Fr::from(8u8), c, 1000, 13));
        assert_ne!(i, sample_indices(x0, Fr::from(10u8), 1000, 13));
        assert!(sample_indices(x0, c, 0, 5).is_empty());
        assert!(sample_indices(x0, c, 1, 5).iter().all(|x| *x == 0));
    }
}
