//! The Reed–Solomon code of `docs/protocol.md` §2.1 written out the slow way: GF(2^16) in the
//! polynomial basis, symbols mapped through the Cantor basis, parity by Lagrange interpolation.
//! No FFT and nothing of reed-solomon-simd: this is the document as code.

/// GF(2^16) = GF(2)[x] / (x^16 + x^5 + x^3 + x^2 + 1), elements as bit vectors of coefficients.
pub(crate) mod gf {
    pub(crate) const POLYNOMIAL: u32 = 0x1_002D;
    /// β_0 … β_15, in the polynomial basis.
    pub(crate) const CANTOR_BASIS: [u16; 16] = [
        0x0001, 0xACCA, 0x3C0E, 0x163E, 0xC582, 0xED2E, 0x914C, 0x4012, 0x6C98, 0x10D8, 0x6A72,
        0xB900, 0xFDB8, 0xFB34, 0xFF38, 0x991E,
    ];

    /// Carry-less multiplication reduced by [`POLYNOMIAL`].
    pub(crate) fn mul(a: u16, b: u16) -> u16 {
        let (mut a, mut b, mut r) = (u32::from(a), u32::from(b), 0u32);
        while b != 0 {
            if b & 1 != 0 {
                r ^= a;
            }
            b >>= 1;
            a <<= 1;
            if a & 0x1_0000 != 0 {
                a ^= POLYNOMIAL;
            }
        }
        r as u16
    }

    /// `a^(2^16 - 2)`, the inverse of a non-zero `a`.
    pub(crate) fn inv(a: u16) -> u16 {
        assert_ne!(a, 0, "0 has no inverse");
        let (mut base, mut e, mut r) = (a, 65534u32, 1u16);
        while e != 0 {
            if e & 1 != 0 {
                r = mul(r, base);
            }
            base = mul(base, base);
            e >>= 1;
        }
        r
    }

    /// φ: the field element a 16-bit value stands for, `⊕ β_l` over the bits `l` set in it.
    pub(crate) fn phi(v: u16) -> u16 {
        (0..16)
            .filter(|l| v >> l & 1 == 1)
            .fold(0, |acc, l| acc ^ CANTOR_BASIS[l])
    }

    /// φ⁻¹ as a table (φ is a bijection: the β_l are a basis).
    pub(crate) fn phi_inverse() -> Vec<u16> {
        let mut t = vec![0u16; 1 << 16];
        for v in 0..=u16::MAX {
            t[usize::from(phi(v))] = v;
        }
        t
    }

    /// `ℓ_i(y)`: Lagrange basis polynomial `i` of the points `φ(0), …, φ(n − 1)`, at `y`.
    pub(crate) fn lagrange(n: usize, i: usize, y: u16) -> u16 {
        let xi = phi(i as u16);
        (0..n).filter(|s| *s != i).fold(1, |acc, s| {
            let xs = phi(s as u16);
            mul(acc, mul(y ^ xs, inv(xi ^ xs)))
        })
    }
}

/// Which encoder reed-solomon-simd 3 picks (`true`: high rate). With
/// `K = next_pow2(k)`, `M = next_pow2(m)`: high if `K > M`, low if `K < M`, and if `K = M` high
/// iff `k ≤ m` (both give the same bytes then; [`tie_rule_does_not_change_bytes`] checks it).
pub(crate) fn high_rate(k: usize, m: usize) -> bool {
    let (kp, mp) = (k.next_power_of_two(), m.next_power_of_two());
    kp > mp || (kp == mp && k <= m)
}

/// `G[r][j]`: recovery symbol `r` is `Σ_j G[r][j] · φ(original symbol j)`, mapped back by φ⁻¹.
///
/// High rate (`n = next_pow2(m)`): originals sit at the points `φ(n + j)`, recovery at `φ(r)`,
/// and `G[r][j] = ℓ_r(φ(n + j))` over the points `φ(0 … n−1)`.
/// Low rate (`n = next_pow2(k)`): originals sit at `φ(j)` (zero at `φ(k … n−1)`), recovery at
/// `φ(n + r)`, and `G[r][j] = ℓ_j(φ(n + r))`.
pub(crate) fn generator(k: usize, m: usize, high: bool) -> Vec<Vec<u16>> {
    let point = |i: usize| gf::phi(i as u16);
    if high {
        let n = m.next_power_of_two();
        (0..m)
            .map(|r| (0..k).map(|j| gf::lagrange(n, r, point(n + j))).collect())
            .collect()
    } else {
        let n = k.next_power_of_two();
        (0..m)
            .map(|r| (0..k).map(|j| gf::lagrange(n, j, point(n + r))).collect())
            .collect()
    }
}

/// The 16-bit symbols of a shard: in each 64-byte chunk, symbol `t` (0 ≤ t < 32) has its low
/// byte at `t` and its high byte at `32 + t`.
pub(crate) fn symbols(shard: &[u8]) -> Vec<u16> {
    assert_eq!(shard.len() % 64, 0, "shards are whole 64-byte chunks");
    shard
        .chunks_exact(64)
        .flat_map(|c| (0..32).map(move |t| u16::from(c[t]) | u16::from(c[32 + t]) << 8))
        .collect()
}

/// The inverse of [`symbols`].
pub(crate) fn bytes(symbols: &[u16]) -> Vec<u8> {
    symbols
        .chunks_exact(32)
        .flat_map(|c| {
            let lo = c.iter().map(|s| *s as u8);
            let hi = c.iter().map(|s| (*s >> 8) as u8);
            lo.chain(hi).collect::<Vec<_>>()
        })
        .collect()
}

/// The `m` recovery shards of the `k` original shards, from the definition.
pub(crate) fn encode(k: usize, m: usize, original: &[&[u8]]) -> Vec<Vec<u8>> {
    assert_eq!(original.len(), k);
    let g = generator(k, m, high_rate(k, m));
    let unphi = gf::phi_inverse();
    let data: Vec<Vec<u16>> = original
        .iter()
        .map(|s| symbols(s).into_iter().map(gf::phi).collect())
        .collect();
    let count = data[0].len();
    g.iter()
        .map(|row| {
            let out: Vec<u16> = (0..count)
                .map(|t| {
                    let p = row
                        .iter()
                        .zip(&data)
                        .fold(0, |acc, (gij, d)| acc ^ gf::mul(*gij, d[t]));
                    unphi[usize::from(p)]
                })
                .collect();
            bytes(&out)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use hoard_dataset::{NoProgress, pack, slot_data_file};
    use hoard_prover::{BLOCK_SIZE, SlotIndex};

    use super::*;
    use crate::{crate_encode, xorshift};

    #[test]
    fn field_and_layout_basics() {
        // x · x^15 = x^16 = x^5 + x^3 + x^2 + 1.
        assert_eq!(gf::mul(0x0002, 0x8000), 0x002D);
        for a in [1u16, 2, 0x1234, 0xffff] {
            assert_eq!(gf::mul(a, gf::inv(a)), 1);
        }
        assert_eq!(gf::phi(1), 1);
        assert_eq!(gf::phi(3), 0xACCA ^ 1);
        let shard: Vec<u8> = (0..128).map(|i| i as u8).collect();
        let s = symbols(&shard);
        assert_eq!((s[0], s[31], s[32]), (0x2000, 0x3f1f, 0x6040));
        assert_eq!(bytes(&s), shard);
    }

    /// The definition gives the crate's bytes for both encoders, one chunk or several, full or
    /// partial, across the k and m hoard allows.
    #[test]
    fn definition_matches_the_crate() {
        let mut seen = [false; 2];
        for (k, m) in [
            (1, 1),
            (2, 1),
            (1, 2),
            (2, 2),
            (3, 2),
            (4, 2),
            (4, 3),
            (3, 4),
            (2, 4),
            (3, 5),
            (5, 3),
            (10, 6),
            (3, 7),
            (1, 5),
            (7, 1),
            (17, 3),
        ] {
            let shards: Vec<Vec<u8>> = (0..k)
                .map(|j| xorshift((k * 100 + m + j) as u64, 128))
                .collect();
            let original: Vec<&[u8]> = shards.iter().map(Vec::as_slice).collect();
            seen[usize::from(high_rate(k, m))] = true;
            assert_eq!(
                encode(k, m, &original),
                crate_encode(k, m, &original),
                "k = {k}, m = {m}, high rate = {}",
                high_rate(k, m)
            );
        }
        assert_eq!(seen, [true, true], "both encoders exercised");
    }

    /// When `next_pow2(k) = next_pow2(m)` both encoders give the same parity; otherwise they
    /// differ, so the rule matters.
    #[test]
    fn tie_rule_does_not_change_bytes() {
        for (k, m, same) in [
            (3, 4, true),
            (4, 3, true),
            (2, 2, true),
            (5, 7, true),
            (4, 2, false),
            (2, 4, false),
            (3, 2, false),
        ] {
            assert_eq!(
                generator(k, m, false) == generator(k, m, true),
                same,
                "k = {k}, m = {m}"
            );
        }
    }

    /// What `pack` writes in the parity slots is the definition's parity of the data slots,
    /// whole slots at once (stripes batched), with both encoders.
    #[test]
    fn pack_writes_the_parity_the_definition_gives() {
        for (k, m) in [(3, 2), (2, 3)] {
            let tmp = tempfile::TempDir::new().expect("tmp");
            let input = tmp.path().join("data.bin");
            std::fs::write(&input, xorshift(k as u64, k * 2 * BLOCK_SIZE - 1000)).expect("write");
            let packed = tmp.path().join("packed");
            let p = pack(&input, &packed, k, m, &NoProgress).expect("pack");
            assert_eq!(p.manifest.layout.slot_blocks(), 2);
            let slot = |i: usize| {
                std::fs::read(packed.join(slot_data_file(SlotIndex(i as u16)))).expect("slot")
            };
            let data: Vec<Vec<u8>> = (0..k).map(slot).collect();
            let parity: Vec<Vec<u8>> = (k..k + m).map(slot).collect();
            let original: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
            assert!(
                encode(k, m, &original) == parity,
                "k = {k}, m = {m}: parity slots differ from the definition"
            );
        }
    }

    /// The committed `erasure` vectors are the definition's parity.
    #[test]
    fn committed_vectors_follow_the_definition() {
        let vectors = crate::shared::committed();
        let cases = vectors["erasure"].as_array().expect("an erasure array");
        assert!(cases.len() >= 6);
        for c in cases {
            let (k, m) = (
                c["k"].as_u64().expect("k") as usize,
                c["m"].as_u64().expect("m") as usize,
            );
            let hex = |v: &serde_json::Value| -> Vec<Vec<u8>> {
                v.as_array()
                    .expect("array")
                    .iter()
                    .map(|s| crate::shared::unhex(s.as_str().expect("hex")))
                    .collect()
            };
            let (original, recovery) = (hex(&c["original"]), hex(&c["recovery"]));
            let refs: Vec<&[u8]> = original.iter().map(Vec::as_slice).collect();
            let encoder = if high_rate(k, m) { "high" } else { "low" };
            assert_eq!(c["encoder"].as_str(), Some(encoder), "{}", c["name"]);
            assert_eq!(encode(k, m, &refs), recovery, "{}", c["name"]);
        }
    }
}
