//! Byte and field encodings shared by the native code, the circuit and the contract
//! (`docs/protocol.md`, section "Compact proofs").

use ark_bn254::Fr;
use ark_ff::{BigInteger, PrimeField};
use hoard_prover::{CELL_SIZE, Seed};
use tiny_keccak::{Hasher, Keccak};

/// Field elements per 256-byte cell: eight of 31 bytes and one of 8.
pub const CELL_ELEMENTS: usize = 9;
/// Bytes per cell element except the last.
const CHUNK: usize = 31;

/// A cell as nine field elements: element `k < 8` is bytes `[31k, 31k + 31)` read as a
/// little-endian integer, element 8 is bytes `[248, 256)`. Every element is below 2^248 < r, so
/// the encoding is injective and needs no reduction.
pub fn cell_elements(cell: &[u8; CELL_SIZE]) -> [Fr; CELL_ELEMENTS] {
    std::array::from_fn(|k| {
        let end = ((k + 1) * CHUNK).min(CELL_SIZE);
        Fr::from_le_bytes_mod_order(&cell[k * CHUNK..end])
    })
}

/// A field element as the 32-byte big-endian word the EVM and `abi.encode` use.
pub fn fr_to_bytes(x: &Fr) -> [u8; 32] {
    let be = x.into_bigint().to_bytes_be();
    let mut out = [0u8; 32];
    out[32 - be.len()..].copy_from_slice(&be);
    out
}

/// A 32-byte big-endian word as a field element, or `None` if it is not below the modulus `r`.
pub fn fr_from_bytes(word: &[u8; 32]) -> Option<Fr> {
    let x = Fr::from_be_bytes_mod_order(word);
    (fr_to_bytes(&x) == *word).then_some(x)
}

/// The batch's first public input: `uint256(keccak256(abi.encode(seed, host))) >> 3`.
///
/// Binding the host's address into the sampling means a proof is worth nothing to anyone else
/// (not even a host holding a slot with the same data), and the shift keeps the word below `r`.
pub fn host_seed(seed: &Seed, host: &[u8; 20]) -> Fr {
    let mut word = [0u8; 32];
    word[12..].copy_from_slice(host);
    let mut k = Keccak::v256();
    k.update(&seed.0);
    k.update(&word);
    let mut h = [0u8; 32];
    k.finalize(&mut h);
    // >> 3 on the big-endian 256-bit number.
    let mut shifted = [0u8; 32];
    for i in 0..32 {
        let hi = if i == 0 { 0 } else { h[i - 1] << 5 };
        shifted[i] = hi | (h[i] >> 3);
    }
    Fr::from_be_bytes_mod_order(&shifted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::Zero;

    #[test]
    fn cell_elements_cover_every_byte_once() {
        let mut cell = [0u8; CELL_SIZE];
        cell[0] = 1;
        cell[30] = 2;
        cell[31] = 3;
        cell[255] = 4;
        let e = cell_elements(&cell);
        assert_eq!(
            e[0],
            Fr::from(1u8) + Fr::from(2u8) * Fr::from(2u8).pow_u64(240)
        );
        assert_eq!(e[1], Fr::from(3u8));
        assert_eq!(e[8], Fr::from(4u8) * Fr::from(2u8).pow_u64(56));
        assert!(e[2..8].iter().all(Zero::is_zero));
        // Every byte position changes exactly one element.
        for pos in 0..CELL_SIZE {
            let mut c = [0u8; CELL_SIZE];
            c[pos] = 0xff;
            assert_eq!(cell_elements(&c).iter().filter(|x| !x.is_zero()).count(), 1);
        }
    }

    trait PowU64 {
        fn pow_u64(self, e: u64) -> Self;
    }
    impl PowU64 for Fr {
        fn pow_u64(self, e: u64) -> Self {
            ark_ff::Field::pow(&self, [e])
        }
    }

    #[test]
    fn bytes_round_trip_and_reject_out_of_field() {
        let x = Fr::from(0x1234_5678u64);
        let b = fr_to_bytes(&x);
        assert_eq!(b[28..], [0x12, 0x34, 0x56, 0x78]);
        assert_eq!(fr_from_bytes(&b), Some(x));
        assert_eq!(fr_from_bytes(&[0xff; 32]), None);
        let minus_one = -Fr::from(1u8);
        assert_eq!(fr_from_bytes(&fr_to_bytes(&minus_one)), Some(minus_one));
    }

    #[test]
    fn host_seed_is_the_shifted_keccak() {
        // keccak256(abi.encode(bytes32(0), address(0))) = keccak256 of 64 zero bytes.
        let expected = "ad3228b676f7d3cd4284a5443f17f1962b36e491b30a40b2405849e597ba5fb5";
        let h = hex::decode(expected).expect("hex");
        let mut shifted = [0u8; 32];
        let full = num_shift(&h);
        shifted.copy_from_slice(&full);
        assert_eq!(
            host_seed(&Seed([0; 32]), &[0; 20]),
            Fr::from_be_bytes_mod_order(&shifted)
        );
        assert_ne!(
            host_seed(&Seed([0; 32]), &[1; 20]),
            host_seed(&Seed([0; 32]), &[0; 20])
        );
    }

    /// `>> 3` by way of u128 halves, independent of the byte loop above.
    fn num_shift(h: &[u8]) -> Vec<u8> {
        let hi = u128::from_be_bytes(h[..16].try_into().expect("16 bytes"));
        let lo = u128::from_be_bytes(h[16..].try_into().expect("16 bytes"));
        let (nhi, nlo) = (hi >> 3, (lo >> 3) | (hi << 125));
        [nhi.to_be_bytes(), nlo.to_be_bytes()].concat()
    }
}
