//! Two SHA-256 compressions run side by side on one core.
//!
//! Written by hand because no kept crate does it: sha2 (and ring, and OpenSSL's public API) hash
//! one message at a time. With the SHA-NI instructions one message is bound by the latency of
//! `sha256rnds2` (each pair of rounds waits for the last); two independent messages interleaved
//! fill the gaps. On this project's machine (AMD EPYC, Zen 3) that takes the compression from
//! about 1.5 to 2.3 GB/s per core, and a block's 256 leaves and 255 nodes are all independent in
//! pairs. Sixteen XMM registers hold exactly two messages' state and schedule, so two is the
//! width. Without SHA-NI (or off x86-64) the pair is two calls of sha2's `compress256`.
//!
//! The one `unsafe` of the workspace lives here: calling the `target_feature` function once the
//! CPU is known to have the features, and unaligned 16-byte loads and stores inside fixed-size
//! arrays. The tests check every path against sha2.
#![allow(unsafe_code)]

use sha2::digest::generic_array::GenericArray;

/// Compresses `a` into `sa` and `b` into `sb` (two messages of `N` blocks each).
pub(super) fn compress_pair<const N: usize>(
    sa: &mut [u32; 8],
    sb: &mut [u32; 8],
    a: &[[u8; 64]; N],
    b: &[[u8; 64]; N],
) {
    #[cfg(target_arch = "x86_64")]
    if shani::available() {
        // SAFETY: the CPU has every feature `shani::compress_pair` enables.
        unsafe { shani::compress_pair(sa, sb, a, b) };
        return;
    }
    portable(sa, sb, a, b);
}

/// The pair without SHA-NI: sha2 on each message.
pub(super) fn portable<const N: usize>(
    sa: &mut [u32; 8],
    sb: &mut [u32; 8],
    a: &[[u8; 64]; N],
    b: &[[u8; 64]; N],
) {
    sha2::compress256(sa, &a.map(GenericArray::from));
    sha2::compress256(sb, &b.map(GenericArray::from));
}

#[cfg(target_arch = "x86_64")]
mod shani {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_loadu_si128, _mm_set_epi32,
        _mm_set_epi64x, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32,
        _mm_shuffle_epi8, _mm_shuffle_epi32, _mm_storeu_si128,
    };
    use std::sync::OnceLock;

    /// The round constants, four per 128-bit word.
    const K: [u32; 64] = [
        0x428a_2f98,
        0x7137_4491,
        0xb5c0_fbcf,
        0xe9b5_dba5,
        0x3956_c25b,
        0x59f1_11f1,
        0x923f_82a4,
        0xab1c_5ed5,
        0xd807_aa98,
        0x1283_5b01,
        0x2431_85be,
        0x550c_7dc3,
        0x72be_5d74,
        0x80de_b1fe,
        0x9bdc_06a7,
        0xc19b_f174,
        0xe49b_69c1,
        0xefbe_4786,
        0x0fc1_9dc6,
        0x240c_a1cc,
        0x2de9_2c6f,
        0x4a74_84aa,
        0x5cb0_a9dc,
        0x76f9_88da,
        0x983e_5152,
        0xa831_c66d,
        0xb003_27c8,
        0xbf59_7fc7,
        0xc6e0_0bf3,
        0xd5a7_9147,
        0x06ca_6351,
        0x1429_2967,
        0x27b7_0a85,
        0x2e1b_2138,
        0x4d2c_6dfc,
        0x5338_0d13,
        0x650a_7354,
        0x766a_0abb,
        0x81c2_c92e,
        0x9272_2c85,
        0xa2bf_e8a1,
        0xa81a_664b,
        0xc24b_8b70,
        0xc76c_51a3,
        0xd192_e819,
        0xd699_0624,
        0xf40e_3585,
        0x106a_a070,
        0x19a4_c116,
        0x1e37_6c08,
        0x2748_774c,
        0x34b0_bcb5,
        0x391c_0cb3,
        0x4ed8_aa4a,
        0x5b9c_ca4f,
        0x682e_6ff3,
        0x748f_82ee,
        0x78a5_636f,
        0x84c8_7814,
        0x8cc7_0208,
        0x90be_fffa,
        0xa450_6ceb,
        0xbef9_a3f7,
        0xc671_78f2,
    ];

    pub(super) fn available() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::is_x86_feature_detected!("sha")
                && std::is_x86_feature_detected!("sse4.1")
                && std::is_x86_feature_detected!("ssse3")
        })
    }

    /// Unaligned load of 16 bytes.
    #[target_feature(enable = "sse2")]
    fn load(bytes: &[u8; 16]) -> __m128i {
        // SAFETY: `bytes` is 16 readable bytes; the load has no alignment requirement.
        unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
    }

    /// SHA-256 state `[a..h]` as the two words `sha256rnds2` works on (ABEF, CDGH).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn unpack(state: &[u32; 8]) -> (__m128i, __m128i) {
        let s = state.map(|w| w as i32);
        let dcba = _mm_set_epi32(s[3], s[2], s[1], s[0]);
        let hgfe = _mm_set_epi32(s[7], s[6], s[5], s[4]);
        let cdab = _mm_shuffle_epi32(dcba, 0xB1);
        let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
        (
            _mm_alignr_epi8(cdab, efgh, 8),
            _mm_blend_epi16(efgh, cdab, 0xF0),
        )
    }

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn pack(abef: __m128i, cdgh: __m128i, state: &mut [u32; 8]) {
        let feba = _mm_shuffle_epi32(abef, 0x1B);
        let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
        let mut out = [0u32; 8];
        // SAFETY: `out` is 32 writable bytes; the stores have no alignment requirement.
        unsafe {
            _mm_storeu_si128(out.as_mut_ptr().cast(), _mm_blend_epi16(feba, dchg, 0xF0));
            _mm_storeu_si128(
                out.as_mut_ptr().add(4).cast(),
                _mm_alignr_epi8(dchg, feba, 8),
            );
        }
        *state = out;
    }

    /// The message words of a 64-byte block, big-endian, four per 128-bit word.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn words(block: &[u8; 64]) -> [__m128i; 4] {
        let swap = _mm_set_epi64x(
            0x0C0D_0E0F_0809_0A0Bu64 as i64,
            0x0405_0607_0001_0203u64 as i64,
        );
        let chunks = block.as_chunks::<16>().0;
        [0, 1, 2, 3].map(|i| _mm_shuffle_epi8(load(&chunks[i]), swap))
    }

    /// Four rounds of one message; with `$schedule`, its next four words first (`$w0` becomes
    /// W[i..i+4] from the four words before it).
    macro_rules! quad {
        ($k:expr, $abef:ident, $cdgh:ident, $w0:ident, $w1:ident, $w2:ident, $w3:ident, $schedule:expr) => {{
            if $schedule {
                let t = _mm_add_epi32(_mm_sha256msg1_epu32($w0, $w1), _mm_alignr_epi8($w3, $w2, 4));
                $w0 = _mm_sha256msg2_epu32(t, $w3);
            }
            let t = _mm_add_epi32($w0, $k);
            $cdgh = _mm_sha256rnds2_epu32($cdgh, $abef, t);
            $abef = _mm_sha256rnds2_epu32($abef, $cdgh, _mm_shuffle_epi32(t, 0x0E));
        }};
    }

    /// Callable only where the CPU has SHA-NI, SSE2, SSSE3 and SSE4.1 ([`available`]).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) fn compress_pair<const N: usize>(
        sa: &mut [u32; 8],
        sb: &mut [u32; 8],
        a: &[[u8; 64]; N],
        b: &[[u8; 64]; N],
    ) {
        let (mut abef_a, mut cdgh_a) = unpack(sa);
        let (mut abef_b, mut cdgh_b) = unpack(sb);
        // Rounds `4i .. 4i + 4` of both messages, interleaved instruction by instruction.
        macro_rules! both {
            ($i:expr, $a0:ident $a1:ident $a2:ident $a3:ident, $b0:ident $b1:ident $b2:ident $b3:ident) => {{
                let k = _mm_set_epi32(
                    K[4 * $i + 3] as i32,
                    K[4 * $i + 2] as i32,
                    K[4 * $i + 1] as i32,
                    K[4 * $i] as i32,
                );
                quad!(k, abef_a, cdgh_a, $a0, $a1, $a2, $a3, $i >= 4);
                quad!(k, abef_b, cdgh_b, $b0, $b1, $b2, $b3, $i >= 4);
            }};
        }
        for (block_a, block_b) in a.iter().zip(b) {
            let saved = (abef_a, cdgh_a, abef_b, cdgh_b);
            let [mut a0, mut a1, mut a2, mut a3] = words(block_a);
            let [mut b0, mut b1, mut b2, mut b3] = words(block_b);
            both!(0, a0 a1 a2 a3, b0 b1 b2 b3);
            both!(1, a1 a2 a3 a0, b1 b2 b3 b0);
            both!(2, a2 a3 a0 a1, b2 b3 b0 b1);
            both!(3, a3 a0 a1 a2, b3 b0 b1 b2);
            both!(4, a0 a1 a2 a3, b0 b1 b2 b3);
            both!(5, a1 a2 a3 a0, b1 b2 b3 b0);
            both!(6, a2 a3 a0 a1, b2 b3 b0 b1);
            both!(7, a3 a0 a1 a2, b3 b0 b1 b2);
            both!(8, a0 a1 a2 a3, b0 b1 b2 b3);
            both!(9, a1 a2 a3 a0, b1 b2 b3 b0);
            both!(10, a2 a3 a0 a1, b2 b3 b0 b1);
            both!(11, a3 a0 a1 a2, b3 b0 b1 b2);
            both!(12, a0 a1 a2 a3, b0 b1 b2 b3);
            both!(13, a1 a2 a3 a0, b1 b2 b3 b0);
            both!(14, a2 a3 a0 a1, b2 b3 b0 b1);
            both!(15, a3 a0 a1 a2, b3 b0 b1 b2);
            abef_a = _mm_add_epi32(abef_a, saved.0);
            cdgh_a = _mm_add_epi32(cdgh_a, saved.1);
            abef_b = _mm_add_epi32(abef_b, saved.2);
            cdgh_b = _mm_add_epi32(cdgh_b, saved.3);
        }
        pack(abef_a, cdgh_a, sa);
        pack(abef_b, cdgh_b, sb);
    }
}
