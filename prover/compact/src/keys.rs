//! Groth16 keys for a [`Shape`]: deterministic devnet set-up from a published seed, and a cache on
//! disk so a node generates each key once.
//!
//! **The devnet set-up is single-party from a published seed: anyone who knows the seed knows the
//! toxic waste and can forge proofs.** It is for the devnet and tests only; a production
//! deployment runs a phase-2 ceremony per circuit (docs/protocol.md, "Trust").

use std::{
    fs,
    io::{self, BufReader, BufWriter, Write},
    path::{Path, PathBuf},
};

use ark_bn254::Bn254;
use ark_groth16::{Groth16, PreparedVerifyingKey, ProvingKey, VerifyingKey};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use ark_snark::SNARK;
use ark_std::rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::circuit::{BatchCircuit, Shape};

/// The devnet's published set-up seed (ChaCha20). Anyone can forge proofs with it.
pub const DEVNET_SEED: [u8; 32] = *b"hoard devnet compact setup v1\0\0\0";

/// Bumped whenever the circuit's constraints change, so cached keys of an older circuit are not
/// reused (the committed-verifier test catches a forgotten bump).
pub const CIRCUIT_VERSION: u32 = 1;

/// Why keys could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Groth16 set-up failed (it does not for a well-formed shape).
    #[error("Groth16 set-up of the {shape} circuit failed: {source}")]
    Setup {
        /// The circuit.
        shape: String,
        /// arkworks' error.
        source: ark_relations::gr1cs::SynthesisError,
    },
    /// Reading or writing the cache.
    #[error("key cache {path}: {source}; delete the folder to regenerate the keys")]
    Cache {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A cached key that does not decode or does not belong with its verifying key.
    #[error("key cache {path} is damaged ({reason}); delete the folder to regenerate the keys")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The proving and verifying keys of one circuit shape.
#[derive(Debug, Clone)]
pub struct Keys {
    shape: Shape,
    pk: ProvingKey<Bn254>,
    pvk: PreparedVerifyingKey<Bn254>,
}

impl Keys {
    /// Single-party set-up from `seed`: the same seed always gives the same keys.
    pub fn setup(shape: Shape, seed: [u8; 32]) -> Result<Self, KeyError> {
        let mut rng = ChaCha20Rng::from_seed(seed);
        let (pk, vk) =
            Groth16::<Bn254>::circuit_specific_setup(BatchCircuit::blank(shape), &mut rng)
                .map_err(|source| KeyError::Setup {
                    shape: shape.name(),
                    source,
                })?;
        Ok(Self::from_parts(shape, pk, &vk))
    }

    fn from_parts(shape: Shape, pk: ProvingKey<Bn254>, vk: &VerifyingKey<Bn254>) -> Self {
        let pvk = ark_groth16::prepare_verifying_key(vk);
        Self { shape, pk, pvk }
    }

    /// The keys of `shape` from `seed`, from `cache_dir` if generated before, otherwise generated
    /// (seconds for [`Shape::SMALL`], about a minute and 4 GiB for [`Shape::LARGE`]) and cached.
    pub fn load_or_setup(shape: Shape, seed: [u8; 32], cache_dir: &Path) -> Result<Self, KeyError> {
        let dir = cache_dir.join(cache_name(shape, &seed));
        let pk_path = dir.join("proving.key");
        match fs::File::open(&pk_path) {
            Ok(f) => {
                // Unchecked: the file is our own cache; a damaged key only makes proofs that fail
                // local verification, which the node does before it sends one.
                let pk = ProvingKey::<Bn254>::deserialize_uncompressed_unchecked(BufReader::new(f))
                    .map_err(|e| KeyError::Damaged {
                        path: pk_path.clone(),
                        reason: e.to_string(),
                    })?;
                if pk.vk.gamma_abc_g1.len() != shape.public_inputs() + 1 {
                    return Err(KeyError::Damaged {
                        path: pk_path,
                        reason: "the key is for another number of public inputs".into(),
                    });
                }
                let vk = pk.vk.clone();
                Ok(Self::from_parts(shape, pk, &vk))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let keys = Self::setup(shape, seed)?;
                keys.write_cache(&dir, &pk_path)?;
                Ok(keys)
            }
            Err(source) => Err(KeyError::Cache {
                path: pk_path,
                source,
            }),
        }
    }

    fn write_cache(&self, dir: &Path, pk_path: &Path) -> Result<(), KeyError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| KeyError::Cache { path, source }
        };
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let tmp = pk_path.with_extension("tmp");
        let file = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        let mut w = BufWriter::new(file);
        self.pk
            .serialize_uncompressed(&mut w)
            .map_err(|e| KeyError::Cache {
                path: tmp.clone(),
                source: io::Error::other(e.to_string()),
            })?;
        let file = w.into_inner().map_err(|e| KeyError::Cache {
            path: tmp.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, pk_path).map_err(io_err(pk_path))?;
        // The verifying key alone, for people who only verify or want to publish it.
        let vk_path = dir.join("verifying.key");
        let mut vk = Vec::new();
        self.vk()
            .serialize_compressed(&mut vk)
            .map_err(|e| KeyError::Cache {
                path: vk_path.clone(),
                source: io::Error::other(e.to_string()),
            })?;
        fs::File::create(&vk_path)
            .and_then(|mut f| f.write_all(&vk))
            .map_err(io_err(&vk_path))
    }

    /// The circuit shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The proving key.
    pub fn proving_key(&self) -> &ProvingKey<Bn254> {
        &self.pk
    }

    /// The verifying key.
    pub fn vk(&self) -> &VerifyingKey<Bn254> {
        &self.pvk.vk
    }

    /// The verifying key prepared for pairing checks.
    pub fn prepared_vk(&self) -> &PreparedVerifyingKey<Bn254> {
        &self.pvk
    }
}

/// The cache folder name of a shape's keys from a seed.
fn cache_name(shape: Shape, seed: &[u8; 32]) -> String {
    format!(
        "hoard-compact-v{CIRCUIT_VERSION}-{}-{}",
        shape.name(),
        hex::encode(&seed[..8])
    )
}
