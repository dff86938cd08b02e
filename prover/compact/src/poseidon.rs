//! Native Poseidon over the BN254 scalar field with circom's parameters (x^5, R_F = 8, the R_P of
//! circomlib per width), round constants and MDS matrices taken from light-poseidon 0.5.
//!
//! Two widths are used: `t = 3` ([`hash2`]: tree nodes, the commitment, sample derivation) and
//! `t = 10` ([`hash9`]: one 256-byte cell as nine field elements). Outputs are circomlib's: the
//! state starts as `[0, inputs…]` and the result is `state[0]` after the permutation.
//!
//! Hand-written on fixed-size arrays rather than calling `light_poseidon::Poseidon`, because that
//! one allocates a vector per MDS step and the slot commitment hashes 2^23 times per GiB. The
//! native hash runs the permutation rearranged as in the Poseidon paper's appendix B ([`Fast`]):
//! the same function with about a third of the multiplications, since a partial round then costs
//! one lane-0 constant and a sparse matrix (2T - 1 products) instead of a dense one (T^2). The
//! circuit ([`crate::gadget`]) keeps the plain form, whose linear layers cost no constraints. The
//! tests check the fast form against the plain one, and both against light-poseidon and
//! circomlib's known answer.

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

    /// The permutation, in place, in its plain form (the reference [`Fast`] is checked against).
    #[cfg(test)]
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
            *state = mul_vec(&self.mds, state);
        }
    }
}

/// `m · v`.
#[inline(always)]
fn mul_vec<const T: usize>(m: &[[Fr; T]; T], v: &[Fr; T]) -> [Fr; T] {
    std::array::from_fn(|i| dot(&m[i], v))
}

/// `a · b`, through ark-ff's `sum_of_products`, which reduces once per three products instead of
/// once per product (BN254's modulus leaves two spare bits in four limbs).
#[inline(always)]
fn dot<const T: usize>(a: &[Fr; T], b: &[Fr; T]) -> Fr {
    Fr::sum_of_products(a, b)
}

/// `a · b` for square matrices.
fn mul_mat<const T: usize>(a: &[[Fr; T]; T], b: &[[Fr; T]; T]) -> [[Fr; T]; T] {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..T).map(|k| a[i][k] * b[k][j]).sum()))
}

/// The inverse of a square matrix (Gauss–Jordan), `None` if it is singular.
fn invert(m: &[Vec<Fr>]) -> Option<Vec<Vec<Fr>>> {
    let n = m.len();
    let mut a: Vec<Vec<Fr>> = m.to_vec();
    let mut inv: Vec<Vec<Fr>> = (0..n)
        .map(|i| (0..n).map(|j| Fr::from(u8::from(i == j))).collect())
        .collect();
    for col in 0..n {
        let pivot = (col..n).find(|&r| !a[r][col].is_zero())?;
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let scale = a[col][col].inverse()?;
        for x in a[col].iter_mut().chain(inv[col].iter_mut()) {
            *x *= scale;
        }
        for r in (0..n).filter(|&r| r != col) {
            let f = a[r][col];
            if f.is_zero() {
                continue;
            }
            for j in 0..n {
                let (da, di) = (a[col][j] * f, inv[col][j] * f);
                a[r][j] -= da;
                inv[r][j] -= di;
            }
        }
    }
    Some(inv)
}

/// The permutation of [`Params`] rearranged for speed, computing lane 0 only (the hash output).
///
/// Two rewrites, both exact (the tests compare against the plain form):
/// - **Constants.** In a partial round only lane 0 goes through the S-box, so the other lanes' round
///   constant can be added after it and carried through the matrix into the next round's constant:
///   each partial round keeps one lane-0 constant, and the first full round after them absorbs
///   what is left.
/// - **Matrices.** A round matrix `A = [[a00, a^T], [b, Â]]` factors as `D · S` with
///   `D = diag(1, Â)` and the sparse `S = [[a00, a^T], [Â⁻¹ b, I]]`. `D` leaves lane 0 alone, so it
///   commutes with the next partial round's lane-0 constant and S-box and folds into that round's
///   matrix (`M · D`). Every partial round but the last then applies a sparse `S`; the last applies
///   the accumulated dense matrix.
#[derive(Debug, Clone)]
pub(crate) struct Fast<const T: usize> {
    /// Constants of the full rounds before the partial ones.
    head: Vec<[Fr; T]>,
    /// Lane-0 constant of each partial round.
    partial: Vec<Fr>,
    /// Sparse matrix of every partial round but the last: row 0 of `S`, and `Â⁻¹ b` (its lane 0
    /// unused).
    sparse: Vec<([Fr; T], [Fr; T])>,
    /// Matrix of the last partial round.
    last_partial: [[Fr; T]; T],
    /// Constants of the full rounds after the partial ones (the first also adds what the partial
    /// rounds carried).
    tail: Vec<[Fr; T]>,
    mds: [[Fr; T]; T],
}

impl<const T: usize> Fast<T> {
    fn new(p: &Params<T>) -> Self {
        let half = p.full_rounds / 2;
        let partials = half..half + p.partial_rounds;
        let mut carry = [Fr::zero(); T];
        let mut partial = Vec::with_capacity(p.partial_rounds);
        for r in partials.clone() {
            let mut c: [Fr; T] = std::array::from_fn(|i| p.ark[r][i] + carry[i]);
            partial.push(c[0]);
            c[0] = Fr::zero();
            carry = mul_vec(&p.mds, &c);
        }
        let mut tail = p.ark[partials.end..].to_vec();
        for (t, c) in tail[0].iter_mut().zip(carry) {
            *t += c;
        }

        let mut a = p.mds;
        let mut sparse = Vec::with_capacity(p.partial_rounds - 1);
        for _ in 1..p.partial_rounds {
            let hat: Vec<Vec<Fr>> = a[1..].iter().map(|row| row[1..].to_vec()).collect();
            // Every square submatrix of an MDS matrix is invertible, and `Â` is a product of such.
            let hat_inv = invert(&hat).expect("the lower-right block of a Poseidon matrix");
            let mut w = [Fr::zero(); T];
            for (i, row) in hat_inv.iter().enumerate() {
                w[i + 1] = row.iter().zip(&a[1..]).map(|(x, r)| *x * r[0]).sum();
            }
            sparse.push((a[0], w));
            let mut d = [[Fr::zero(); T]; T];
            d[0][0] = Fr::from(1u8);
            for (i, row) in hat.iter().enumerate() {
                d[i + 1][1..].copy_from_slice(row);
            }
            a = mul_mat(&p.mds, &d);
        }
        Self {
            head: p.ark[..half].to_vec(),
            partial,
            sparse,
            last_partial: a,
            tail,
            mds: p.mds,
        }
    }

    /// Lane 0 of the permuted `state`: circomlib's hash output.
    fn permute_lane0(&self, mut state: [Fr; T]) -> Fr {
        for c in &self.head {
            full_round(&mut state, c);
            state = mul_vec(&self.mds, &state);
        }
        let (last_c, partial) = self.partial.split_last().expect("R_P > 0");
        for (c, (row0, w)) in partial.iter().zip(&self.sparse) {
            state[0] = sbox(state[0] + c);
            let s0 = state[0];
            state[0] = dot(row0, &state);
            for (s, w) in state.iter_mut().zip(w).skip(1) {
                *s += *w * s0;
            }
        }
        state[0] = sbox(state[0] + last_c);
        state = mul_vec(&self.last_partial, &state);
        let (last, tail) = self.tail.split_last().expect("R_F > 0");
        for c in tail {
            full_round(&mut state, c);
            state = mul_vec(&self.mds, &state);
        }
        full_round(&mut state, last);
        dot(&self.mds[0], &state)
    }
}

/// A full round's constants and S-boxes (its matrix is the caller's).
#[inline(always)]
fn full_round<const T: usize>(state: &mut [Fr; T], c: &[Fr; T]) {
    for (s, c) in state.iter_mut().zip(c) {
        *s = sbox(*s + c);
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

fn fast3() -> &'static Fast<3> {
    static F: OnceLock<Fast<3>> = OnceLock::new();
    F.get_or_init(|| Fast::new(params3()))
}

fn fast10() -> &'static Fast<10> {
    static F: OnceLock<Fast<10>> = OnceLock::new();
    F.get_or_init(|| Fast::new(params10()))
}

/// circomlib `Poseidon(2)`: `poseidon([a, b])` (the state `[0, a, b]`, permuted, lane 0).
pub fn hash2(a: Fr, b: Fr) -> Fr {
    fast3().permute_lane0([Fr::zero(), a, b])
}

/// circomlib `Poseidon(9)`: `poseidon([e0, …, e8])`.
pub fn hash9(inputs: &[Fr; 9]) -> Fr {
    let mut state = [Fr::zero(); 10];
    state[1..].copy_from_slice(inputs);
    fast10().permute_lane0(state)
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
    fn fast_form_is_the_plain_permutation() {
        fn check<const T: usize>(p: &Params<T>, fast: &Fast<T>) {
            for k in 0..10u64 {
                let state: [Fr; T] =
                    std::array::from_fn(|i| Fr::from(k * 31 + i as u64 + 1).pow([k + 5]));
                let mut plain = state;
                p.permute(&mut plain);
                assert_eq!(fast.permute_lane0(state), plain[0], "t = {T}, k = {k}");
            }
        }
        check(params3(), fast3());
        check(params10(), fast10());
        // A wrong carried constant or matrix would change lane 0 for some state; so would a
        // dropped round. Inverting is exact too:
        let m: Vec<Vec<Fr>> = params3().mds.iter().map(|r| r.to_vec()).collect();
        let inv = invert(&m).expect("MDS is invertible");
        for (i, row) in m.iter().enumerate() {
            for j in 0..3 {
                let e: Fr = row.iter().zip(&inv).map(|(x, r)| *x * r[j]).sum();
                assert_eq!(e, Fr::from(u8::from(i == j)));
            }
        }
        assert!(invert(&[vec![Fr::zero()]]).is_none());
    }

    #[test]
    fn round_structure_is_circoms() {
        assert_eq!((params3().full_rounds, params3().partial_rounds), (8, 57));
        assert_eq!((params10().full_rounds, params10().partial_rounds), (8, 60));
        assert!(params3().is_full(3) && !params3().is_full(4) && params3().is_full(61));
    }
}
