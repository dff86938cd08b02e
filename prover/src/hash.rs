//! SHA-256 tree hashing with RFC 6962-style domain separation, and the 32-byte newtypes.

#[doc(hidden)]
pub use hex;
use sha2::{Digest, Sha256, digest::generic_array::GenericArray};

use crate::layout::CELL_SIZE;

mod pair;

/// Prefix of a leaf hash: `leaf = SHA-256(0x00 ‖ cell)`.
pub const LEAF_PREFIX: u8 = 0x00;
/// Prefix of an interior node hash: `node = SHA-256(0x01 ‖ left ‖ right)`.
pub const NODE_PREFIX: u8 = 0x01;

/// Error parsing a 32-byte value from hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 32 bytes as 64 hex digits (optionally 0x-prefixed): {0}")]
pub struct ParseBytes32Error(#[doc(hidden)] pub String);

/// Declares a 32-byte newtype that prints and parses as `0x`-prefixed lowercase hex and has a
/// short form for logs.
///
/// Serde: in human-readable formats (JSON, TOML: `is_human_readable()` is true) the value is the
/// `0x…` hex string; in binary formats (postcard, CBOR) it is exactly what `[u8; 32]` is, a
/// fixed-size tuple of 32 bytes with no length prefix (in postcard: the 32 raw bytes). So every
/// hoard id type encodes like the raw array it wraps, and swapping one for the other in a binary
/// message or record changes no byte (`docs/protocol.md` §4).
#[macro_export]
macro_rules! bytes32 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// First four bytes in hex, for logs.
            pub fn short(&self) -> String {
                $crate::hash::hex::encode(&self.0[..4])
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "0x{}", $crate::hash::hex::encode(self.0))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::hash::ParseBytes32Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let digits = s.strip_prefix("0x").unwrap_or(s);
                let mut out = [0u8; 32];
                $crate::hash::hex::decode_to_slice(digits, &mut out)
                    .map_err(|e| $crate::hash::ParseBytes32Error(format!("{s:?}: {e}")))?;
                Ok(Self(out))
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl From<[u8; 32]> for $name {
            fn from(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.collect_str(self)
                } else {
                    ::serde::Serialize::serialize(&self.0, s)
                }
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                    s.parse().map_err(::serde::de::Error::custom)
                } else {
                    <[u8; 32]>::deserialize(d).map(Self)
                }
            }
        }
    };
}

bytes32! {
    /// A SHA-256 tree hash: a cell leaf, an interior node, a block root, a slot root or a dataset
    /// root.
    Hash
}

/// SHA-256's initial state.
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// SHA-256 of a message already laid out with its padding in `N` 64-byte blocks.
///
/// Leaves and nodes are fixed-length messages, so their padding is known in advance and each
/// hash is one `compress256` call; sha2's streaming API (buffering, length tracking, padding per
/// call) made block hashing about a third slower, and block hashing is the hot path of packing,
/// restoring and proving. The tests check both against the streaming API.
fn sha256_padded<const N: usize>(blocks: &[[u8; 64]; N]) -> Hash {
    let mut state = SHA256_IV;
    let blocks = blocks.map(GenericArray::from);
    sha2::compress256(&mut state, &blocks);
    digest(state)
}

/// Two [`sha256_padded`] at once, interleaved on one core (see [`pair`]).
fn sha256_padded_pair<const N: usize>(a: &[[u8; 64]; N], b: &[[u8; 64]; N]) -> (Hash, Hash) {
    let (mut sa, mut sb) = (SHA256_IV, SHA256_IV);
    pair::compress_pair(&mut sa, &mut sb, a, b);
    (digest(sa), digest(sb))
}

/// The digest of a final SHA-256 state.
fn digest(state: [u32; 8]) -> Hash {
    let mut out = [0u8; 32];
    for (chunk, word) in out.as_chunks_mut::<4>().0.iter_mut().zip(state) {
        *chunk = word.to_be_bytes();
    }
    Hash(out)
}

/// Lays out `message` with SHA-256 padding (0x80, zeros, bit length) in `N` blocks.
fn pad<const N: usize>(parts: &[&[u8]]) -> [[u8; 64]; N] {
    let mut flat = [[0u8; 64]; N];
    let bytes = flat.as_flattened_mut();
    let mut len = 0;
    for p in parts {
        bytes[len..len + p.len()].copy_from_slice(p);
        len += p.len();
    }
    bytes[len] = 0x80;
    let total = bytes.len();
    bytes[total - 8..].copy_from_slice(&(len as u64 * 8).to_be_bytes());
    flat
}

/// `SHA-256(0x00 ‖ cell)`: 257 bytes, five blocks with padding.
pub fn leaf_hash(cell: &[u8; CELL_SIZE]) -> Hash {
    sha256_padded(&pad::<5>(&[&[LEAF_PREFIX], cell]))
}

/// `SHA-256(0x01 ‖ left ‖ right)`: 65 bytes, two blocks with padding.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256_padded(&pad::<2>(&[&[NODE_PREFIX], &left.0, &right.0]))
}

/// [`leaf_hash`] of two cells, computed together (about 1.5 times the speed of two calls where
/// the CPU has SHA-NI).
pub fn leaf_hash_pair(a: &[u8; CELL_SIZE], b: &[u8; CELL_SIZE]) -> (Hash, Hash) {
    sha256_padded_pair(
        &pad::<5>(&[&[LEAF_PREFIX], a]),
        &pad::<5>(&[&[LEAF_PREFIX], b]),
    )
}

/// [`node_hash`] of two pairs of children, computed together.
pub fn node_hash_pair(a: [&Hash; 2], b: [&Hash; 2]) -> (Hash, Hash) {
    sha256_padded_pair(
        &pad::<2>(&[&[NODE_PREFIX], &a[0].0, &a[1].0]),
        &pad::<2>(&[&[NODE_PREFIX], &b[0].0, &b[1].0]),
    )
}

/// merkle_light's hashing, pinned to our scheme.
///
/// merkle_light's default `leaf()` hashes `0x00 ‖ item` where the item is already 32 bytes; our
/// leaves are 256-byte cells, so callers hash cells with [`leaf_hash`] and hand the tree finished
/// leaf hashes: `leaf()` is the identity here. `node()` keeps merkle_light's default,
/// `SHA-256(0x01 ‖ left ‖ right)`, which is [`node_hash`].
#[derive(Debug, Clone, Default)]
pub(crate) struct TreeHasher(Sha256);

impl std::hash::Hasher for TreeHasher {
    fn finish(&self) -> u64 {
        // merkle_light only calls `Algorithm::hash`; `finish` is required by the trait alone.
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl merkle_light::hash::Algorithm<[u8; 32]> for TreeHasher {
    fn hash(&mut self) -> [u8; 32] {
        self.0.finalize_reset().into()
    }

    fn leaf(&mut self, leaf: [u8; 32]) -> [u8; 32] {
        leaf
    }

    fn node(&mut self, left: [u8; 32], right: [u8; 32]) -> [u8; 32] {
        node_hash(&Hash(left), &Hash(right)).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use merkle_light::hash::Algorithm;

    fn streaming(parts: &[&[u8]]) -> Hash {
        let mut h = Sha256::new();
        parts.iter().for_each(|p| h.update(p));
        Hash(h.finalize().into())
    }

    #[test]
    fn fixed_length_hashes_match_the_streaming_api() {
        let mut cell = [0u8; CELL_SIZE];
        for seed in 0..=255u8 {
            cell.iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = seed ^ i as u8);
            assert_eq!(leaf_hash(&cell), streaming(&[&[0x00], &cell]));
            let (l, r) = (Hash([seed; 32]), Hash([seed.wrapping_mul(7); 32]));
            assert_eq!(node_hash(&l, &r), streaming(&[&[0x01], &l.0, &r.0]));
        }
    }

    #[test]
    fn pairs_match_single_hashes() {
        let mut a = [0u8; CELL_SIZE];
        let mut b = [0u8; CELL_SIZE];
        for seed in 0..=255u8 {
            a.iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x = seed.wrapping_mul(29) ^ (i as u8).rotate_left(3));
            b.iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x = seed ^ i as u8);
            assert_eq!(leaf_hash_pair(&a, &b), (leaf_hash(&a), leaf_hash(&b)));
            let (l, r) = (Hash([seed; 32]), Hash([seed ^ 0x5a; 32]));
            let (x, y) = (
                Hash(a[..32].try_into().expect("32")),
                Hash(b[..32].try_into().expect("32")),
            );
            assert_eq!(
                node_hash_pair([&l, &r], [&x, &y]),
                (node_hash(&l, &r), node_hash(&x, &y))
            );
        }
        // Where the CPU lacks SHA-NI the pair is sha2 twice: the same digests.
        let (blocks_a, blocks_b) = (
            pad::<5>(&[&[LEAF_PREFIX], &a]),
            pad::<5>(&[&[LEAF_PREFIX], &b]),
        );
        let (mut sa, mut sb) = (SHA256_IV, SHA256_IV);
        pair::portable(&mut sa, &mut sb, &blocks_a, &blocks_b);
        assert_eq!((digest(sa), digest(sb)), (leaf_hash(&a), leaf_hash(&b)));
    }

    #[test]
    fn merkle_light_node_matches_node_hash() {
        let (l, r) = (Hash([1; 32]), Hash([2; 32]));
        let mut a = TreeHasher::default();
        assert_eq!(Hash(a.node(l.0, r.0)), streaming(&[&[0x01], &l.0, &r.0]));
        assert_eq!(a.leaf([7; 32]), [7; 32]);
    }

    #[test]
    fn leaf_hash_is_domain_separated() {
        let cell = [0u8; CELL_SIZE];
        let mut plain = Sha256::new();
        plain.update(cell);
        let plain: [u8; 32] = plain.finalize().into();
        assert_ne!(leaf_hash(&cell).0, plain);
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let h = Hash([0xab; 32]);
        let s = h.to_string();
        assert!(s.starts_with("0xabab"));
        assert_eq!(s.parse::<Hash>(), Ok(h));
        assert_eq!(s[2..].parse::<Hash>(), Ok(h));
        assert!("0x1234".parse::<Hash>().is_err());
        assert!(format!("0x{}", "zz".repeat(32)).parse::<Hash>().is_err());
        assert_eq!(serde_json::to_string(&h).ok(), Some(format!("\"{s}\"")));
        assert_eq!(
            serde_json::from_str::<Hash>(&format!("\"{s}\"")).ok(),
            Some(h)
        );
    }

    #[test]
    fn binary_formats_get_the_32_raw_bytes() {
        let mut bytes = [0u8; 32];
        bytes.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
        let h = Hash(bytes);
        // Fixed size: no length prefix, exactly the bytes, and the same as the bare array.
        let encoded = postcard::to_stdvec(&h).expect("encodes");
        assert_eq!(encoded, bytes.to_vec());
        assert_eq!(encoded, postcard::to_stdvec(&bytes).expect("encodes"));
        assert_eq!(postcard::from_bytes::<Hash>(&encoded), Ok(h));
        // Inside a sequence: the sequence's length, then 32 bytes per item.
        let two = postcard::to_stdvec(&vec![h, Hash([0xff; 32])]).expect("encodes");
        assert_eq!(two.len(), 1 + 64);
        assert_eq!((two[0], two[1], two[32], two[33]), (2, 0, 31, 0xff));
        // Short input is an error, not a panic; the hex text form is not accepted in binary.
        assert!(postcard::from_bytes::<Hash>(&encoded[..31]).is_err());
        let text = postcard::to_stdvec(&h.to_string()).expect("encodes");
        assert_ne!(postcard::from_bytes::<Hash>(&text).ok(), Some(h));
    }
}
