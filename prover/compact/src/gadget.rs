//! The Poseidon permutation in R1CS, over ark-r1cs-std's `FpVar`, with the same constants as
//! [`crate::poseidon`].
//!
//! Hand-written because ark-crypto-primitives' Poseidon sponge is not circom's (it absorbs into
//! `state[capacity..]` and squeezes `state[capacity]`, where circom returns `state[0]`). Each S-box
//! costs three constraints and everything else is linear: each round's MDS step and the next
//! round's constants become one linear combination per lane, so `t = 3` costs 240 constraints and
//! `t = 10` 417 (the capacity lane's first S-box is on a constant and free).

use ark_bn254::Fr;
use ark_ff::{One, Zero};
use ark_r1cs_std::{
    GR1CSVar,
    fields::{FieldVar, fp::AllocatedFp, fp::FpVar},
};
use ark_relations::gr1cs::{ConstraintSystemRef, SynthesisError, Variable};

use crate::poseidon::{Params, params3, params10};

/// `Σ coeffs[i]·vars[i] + constant` as one linear combination (no constraint).
fn lincomb(coeffs: &[Fr], vars: &[FpVar<Fr>], constant: Fr) -> FpVar<Fr> {
    let mut k = constant;
    let mut cs = ConstraintSystemRef::None;
    let mut cf = Vec::with_capacity(vars.len() + 1);
    let mut vs = Vec::with_capacity(vars.len() + 1);
    for (c, v) in coeffs.iter().zip(vars) {
        match v {
            FpVar::Constant(x) => k += *c * x,
            FpVar::Var(a) => {
                cs = cs.or(a.cs.clone());
                cf.push(*c);
                vs.push(a.clone());
            }
        }
    }
    if vs.is_empty() {
        return FpVar::Constant(k);
    }
    if !k.is_zero() {
        cf.push(k);
        vs.push(AllocatedFp::new(Some(Fr::one()), Variable::One, cs));
    }
    match AllocatedFp::linear_combination(cf, &vs) {
        Some(v) => FpVar::Var(v),
        // `vs` is not empty here.
        None => FpVar::Constant(k),
    }
}

/// `x^5` in three constraints (none for a constant).
fn sbox(x: &FpVar<Fr>) -> Result<FpVar<Fr>, SynthesisError> {
    let x2 = x.square()?;
    let x4 = x2.square()?;
    Ok(&x4 * x)
}

fn permute<const T: usize>(
    p: &Params<T>,
    mut state: [FpVar<Fr>; T],
) -> Result<[FpVar<Fr>; T], SynthesisError> {
    let ones = [Fr::one()];
    for (s, c) in state.iter_mut().zip(&p.ark[0]) {
        *s = lincomb(&ones, std::slice::from_ref(s), *c);
    }
    for r in 0..p.rounds() {
        if p.is_full(r) {
            for s in state.iter_mut() {
                *s = sbox(s)?;
            }
        } else {
            state[0] = sbox(&state[0])?;
        }
        let next = p.ark.get(r + 1);
        let mixed: Vec<FpVar<Fr>> = p
            .mds
            .iter()
            .enumerate()
            .map(|(i, row)| lincomb(row, &state, next.map_or(Fr::zero(), |c| c[i])))
            .collect();
        for (s, m) in state.iter_mut().zip(mixed) {
            *s = m;
        }
    }
    Ok(state)
}

/// circomlib `Poseidon(2)` in R1CS.
pub fn poseidon2(a: &FpVar<Fr>, b: &FpVar<Fr>) -> Result<FpVar<Fr>, SynthesisError> {
    let [out, ..] = permute(params3(), [FpVar::zero(), a.clone(), b.clone()])?;
    Ok(out)
}

/// circomlib `Poseidon(9)` in R1CS.
pub fn poseidon9(inputs: &[FpVar<Fr>; 9]) -> Result<FpVar<Fr>, SynthesisError> {
    let mut state: [FpVar<Fr>; 10] = std::array::from_fn(|_| FpVar::zero());
    state[1..].clone_from_slice(inputs);
    let [out, ..] = permute(params10(), state)?;
    Ok(out)
}

/// The value of a variable, or the error a circuit reports when it has none (setup mode).
pub(crate) fn value_of(x: &FpVar<Fr>) -> Result<Fr, SynthesisError> {
    x.value()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poseidon::{hash2, hash9};
    use ark_r1cs_std::{alloc::AllocVar, eq::EqGadget};
    use ark_relations::gr1cs::ConstraintSystem;

    #[test]
    fn gadget_matches_native_with_the_minimum_constraint_count() {
        let a = Fr::from(1u8);
        let b = Fr::from(2u8);
        let cs = ConstraintSystem::<Fr>::new_ref();
        let va = FpVar::new_witness(cs.clone(), || Ok(a)).expect("alloc");
        let vb = FpVar::new_witness(cs.clone(), || Ok(b)).expect("alloc");
        let out = poseidon2(&va, &vb).expect("synthesis");
        assert_eq!(out.value().expect("prove mode"), hash2(a, b));
        assert_eq!(cs.num_constraints(), 240);
        let expected = FpVar::new_input(cs.clone(), || Ok(hash2(a, b))).expect("alloc");
        out.enforce_equal(&expected).expect("synthesis");
        assert!(cs.is_satisfied().expect("satisfiable check"));

        let nine: [Fr; 9] = std::array::from_fn(|i| Fr::from(i as u64 * 1000 + 17));
        let cs = ConstraintSystem::<Fr>::new_ref();
        let vars = nine.map(|x| FpVar::new_witness(cs.clone(), || Ok(x)).expect("alloc"));
        let out = poseidon9(&vars).expect("synthesis");
        assert_eq!(out.value().expect("prove mode"), hash9(&nine));
        assert_eq!(cs.num_constraints(), 417);
        assert!(cs.is_satisfied().expect("satisfiable check"));
    }

    #[test]
    fn a_wrong_output_is_unsatisfied() {
        let cs = ConstraintSystem::<Fr>::new_ref();
        let va = FpVar::new_witness(cs.clone(), || Ok(Fr::from(1u8))).expect("alloc");
        let vb = FpVar::new_witness(cs.clone(), || Ok(Fr::from(2u8))).expect("alloc");
        let out = poseidon2(&va, &vb).expect("synthesis");
        let wrong = FpVar::new_input(cs.clone(), || Ok(Fr::from(3u8))).expect("alloc");
        out.enforce_equal(&wrong).expect("synthesis");
        assert!(!cs.is_satisfied().expect("satisfiable check"));
    }
}
