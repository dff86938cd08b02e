//! Native Poseidon over the BN254 scalar field with circom's parameters (x^5, R_F = 8, the R_P of
//! circomlib per width), round constants and MDS matrices taken from light-poseidon 0.5.
//!
//! Two widths are used: `t = 3` ([`hash2`]: tree nodes, the commitment, sample derivation) and
//! `t = 10` ([`hash9`]: one 256-byte cell as nine field elements). Outputs are circomlib's: the
//! state starts as `[0, inputs…]` and the result is `state[0]` after the permutation.
//!
//! Hand-written on fixed-size arrays rather than calling `light_poseidon::Poseidon`, because that
//! one allocates a vector per MDS step and the slot commitment hashes 2^23 times per GiB. The tests
//! check every width against light-poseidon and circomlib's known answer.

use std::sync::OnceLock;

use ark_bn254::Fr;
use ark_ff::{Field, Zero};

/// One width's constants as fixed arrays.
#[derive(Debug, Clone)]
pub(crate) struct Params<const T: usize> {
    /// Round constants, one row per round.
    pub(crate) ark: Vec<[Fr; T]>,
    /// MDS matrix, row-major.
    pub(crate) mds: [[Fr; T]; T],
    /// Full rounds (R_F), half before and half after the partial rounds.
    pub(crate) full_rounds: usize,
    /// Partial rounds (R_P).
    pub(crate) partial_rounds: usize,
}

impl<const T: usize> Params<T> {
    fn load() -> Self {
        let width = u8::try_from(T).expect("Poseidon widths used here are small");
        // The widths used here (3 and 10) are within light-poseidon's circom tables (2..=13).
        let p = light_poseidon::parameters::bn254_x5::get_poseidon_parameters::<Fr>(width)
            .expect("circom parameters exist for t = 3 and t = 10");
        assert_eq!(p.alpha, 5, "circom Poseidon uses x^5");
        let ark = p
            .ark
            .chunks_exact(T)
            .map(|row| std::array::from_fn(|i| row[i]))
            .collect();
        let mds = std::array::from_fn(|i| std::array::from_fn(|j| p.mds[i][j]));
        Self {
            ark,
            mds,
            full_rounds: p.full_rounds,
            partial_rounds: p.partial_rounds,
        }
    }

    /// Rounds in all.
    pub(crate) fn rounds(&self) -> usize {
        self.full_rounds + self.partial_rounds
    }

    /// Whether round `r` is a full round (every lane through the S-box).
    pub(crate) fn is_full(&self, r: usize) -> bool {
        let half = self.full_rounds / 2;
        r < half || r >= half + self.partial_rounds
    }

    /// The permutation, in place.
    fn permute(&self, state: &mut [Fr; T]) {
        for r in 0..self.rounds() {
            for (s, c) in state.iter_mut().zip(&self.ark[r]) {
                *s += c;
            }
            if self.is_full(r) {
                state.iter_mut().for_each(|s| *s = sbox(*s));
            } else {
                state[0] = sbox(state[0]);
            }
            let old = *state;
            for (s, row) in state.iter_mut().zip(&self.mds) {
                *s = old
                    .iter()
                    .zip(row)
                    .fold(Fr::zero(), |acc, (a, m)| acc + *a * m);
            }
        }
    }

    /// circomlib's `Poseidon(T - 1)`: the state `[0, inputs…]`, permuted, lane 0.
    fn hash(&self, inputs: &[Fr; T]) -> Fr {
        // `inputs[0]` is the capacity lane and is always zero here; see the callers.
        let mut state = *inputs;
        self.permute(&mut state);
        state[0]
    }
}

/// `x^5`.
#[inline(always)]
fn sbox(x: Fr) -> Fr {
    let x2 = x.square();
    x2.square() * x
}

/// Constants of the `t = 3` permutation (two inputs).
pub(crate) fn params3() -> &'static Params<3> {
    static P: OnceLock<Params<3>> = OnceLock::new();
    P.get_or_init(Params::load)
}

/// Constants of the `t = 10` permutation (nine inputs).
pub(crate) fn params10() -> &'static Params<10> {
    static P: OnceLock<Params<10>> = OnceLock::new();
    P.get_or_init(Params::load)
}

/// circomlib `Poseidon(2)`: `poseidon([a, b])`.
pub fn hash2(a: Fr, b: Fr) -> Fr {
    params3().hash(&[Fr::zero(), a, b])
}

/// circomlib `Poseidon(9)`: `poseidon([e0, …, e8])`.
pub fn hash9(inputs: &[Fr; 9]) -> Fr {
    let mut state = [Fr::zero(); 10];
    state[1..].copy_from_slice(inputs);
    params10().hash(&state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::PrimeField;
    use light_poseidon::{Poseidon, PoseidonHasher};

    fn fr(s: &str) -> Fr {
        s.parse().expect("decimal field element")
    }

    #[test]
    fn circomlib_known_answer() {
        // circomlib test vector: poseidon([1, 2]).
        assert_eq!(
            hash2(Fr::from(1u8), Fr::from(2u8)),
            fr("7853200120776062878684798364095072458815029376092732009249414926327459813530")
        );
    }

    #[test]
    fn matches_light_poseidon() {
        let mut lp2 = Poseidon::<Fr>::new_circom(2).expect("t = 3");
        let mut lp9 = Poseidon::<Fr>::new_circom(9).expect("t = 10");
        for k in 0..20u64 {
            let a = Fr::from(k * 7919 + 1).pow([k + 3]);
            let b = -Fr::from(k + 11);
            assert_eq!(hash2(a, b), lp2.hash(&[a, b]).expect("two inputs"));
            let nine: [Fr; 9] = std::array::from_fn(|i| a * Fr::from(i as u64) + b);
            assert_eq!(hash9(&nine), lp9.hash(&nine).expect("nine inputs"));
        }
        // Zero inputs are the padding leaf's; they too must agree.
        assert_eq!(
            hash9(&[Fr::zero(); 9]),
            lp9.hash(&[Fr::zero(); 9]).expect("nine inputs")
        );
        assert!(hash2(Fr::zero(), Fr::zero()).into_bigint() != Fr::zero().into_bigint());
    }

    #[test]
    fn round_structure_is_circoms() {
        assert_eq!((params3().full_rounds, params3().partial_rounds), (8, 57));
        assert_eq!((params10().full_rounds, params10().partial_rounds), (8, 60));
        assert!(params3().is_full(3) && !params3().is_full(4) && params3().is_full(61));
    }
}
