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

use ark_bn254::{Bn254, Fr};
use ark_groth16::{Groth16, PreparedVerifyingKey, ProvingKey, VerifyingKey};
use ark_relations::{
    gr1cs::{
        ConstraintSynthesizer, ConstraintSystem, OptimizationGoal, R1CS_PREDICATE_LABEL,
        SynthesisError, SynthesisMode,
    },
    utils::matrix::Matrix,
};
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

/// The proving and verifying keys of one circuit shape, with its constraint matrices.
#[derive(Debug, Clone)]
pub struct Keys {
    shape: Shape,
    pk: ProvingKey<Bn254>,
    pvk: PreparedVerifyingKey<Bn254>,
    r1cs: Matrices,
}

/// A circuit shape's R1CS matrices `A`, `B`, `C` and its variable counts.
///
/// They depend on the shape only, so they are built once with the keys: a proof then synthesises
/// the circuit for its assignment alone (no constraints recorded, no linear combinations inlined),
/// which was a tenth of an S = 32 proof.
#[derive(Debug, Clone)]
pub(crate) struct Matrices {
    /// `[A, B, C]`, one row per constraint: `(coefficient, variable)` pairs.
    pub(crate) abc: Vec<Matrix<Fr>>,
    /// Instance variables, the constant one included.
    pub(crate) instance: usize,
    /// Witness variables.
    pub(crate) witness: usize,
    /// Constraints.
    pub(crate) constraints: usize,
}

impl Matrices {
    /// Synthesises `shape`'s blank circuit in set-up mode, as ark-groth16's generator does.
    fn of(shape: Shape) -> Result<Self, SynthesisError> {
        let cs = ConstraintSystem::<Fr>::new_ref();
        cs.set_optimization_goal(OptimizationGoal::Constraints);
        cs.set_mode(SynthesisMode::Setup);
        BatchCircuit::blank(shape).generate_constraints(cs.clone())?;
        cs.finalize();
        let abc = cs
            .to_matrices()?
            .remove(R1CS_PREDICATE_LABEL)
            .ok_or(SynthesisError::MissingCS)?;
        Ok(Self {
            abc,
            instance: cs.num_instance_variables(),
            witness: cs.num_witness_variables(),
            constraints: cs.num_constraints(),
        })
    }
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
        Self::from_parts(shape, pk, &vk)
    }

    fn from_parts(
        shape: Shape,
        pk: ProvingKey<Bn254>,
        vk: &VerifyingKey<Bn254>,
    ) -> Result<Self, KeyError> {
        let pvk = ark_groth16::prepare_verifying_key(vk);
        let r1cs = Matrices::of(shape).map_err(|source| KeyError::Setup {
            shape: shape.name(),
            source,
        })?;
        Ok(Self {
            shape,
            pk,
            pvk,
            r1cs,
        })
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
                Self::from_parts(shape, pk, &vk)
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

    /// The verifying key of `shape` from `seed` if [`Keys::load_or_setup`] cached it in
    /// `cache_dir` before (its small `verifying.key`, read without the proving key); `None` if
    /// not cached yet. Lets a node check a deployed verifier against its key at start without
    /// loading, or generating, the proving key.
    pub fn cached_verifying_key(
        shape: Shape,
        seed: [u8; 32],
        cache_dir: &Path,
    ) -> Result<Option<VerifyingKey<Bn254>>, KeyError> {
        let dir = cache_dir.join(cache_name(shape, &seed));
        let path = dir.join("verifying.key");
        // The proving key is renamed into place first and the verifying key written after it:
        // without the proving key, a verifying key is a leftover of an interrupted write.
        if !dir.join("proving.key").is_file() {
            return Ok(None);
        }
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(KeyError::Cache { path, source }),
        };
        let vk = VerifyingKey::<Bn254>::deserialize_compressed(&bytes[..]).map_err(|e| {
            KeyError::Damaged {
                path: path.clone(),
                reason: e.to_string(),
            }
        })?;
        if vk.gamma_abc_g1.len() != shape.public_inputs() + 1 {
            return Err(KeyError::Damaged {
                path,
                reason: "the key is for another number of public inputs".into(),
            });
        }
        Ok(Some(vk))
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

    /// The circuit's constraint matrices.
    pub(crate) fn matrices(&self) -> &Matrices {
        &self.r1cs
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_gives_back_the_keys_and_their_verifying_key_alone() {
        // One slot, one sample: a few thousand constraints, set up in well under a second.
        let shape = Shape {
            slots: 1,
            samples: 1,
        };
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(
            Keys::cached_verifying_key(shape, DEVNET_SEED, dir.path())
                .expect("nothing cached is no error")
                .is_none()
        );
        let made = Keys::load_or_setup(shape, DEVNET_SEED, dir.path()).expect("set-up");
        let vk = Keys::cached_verifying_key(shape, DEVNET_SEED, dir.path())
            .expect("readable")
            .expect("cached now");
        assert_eq!(&vk, made.vk());
        let loaded = Keys::load_or_setup(shape, DEVNET_SEED, dir.path()).expect("from the cache");
        assert_eq!(loaded.vk(), made.vk());
        // Another seed is another cache entry, and another key.
        let other = [7u8; 32];
        assert!(
            Keys::cached_verifying_key(shape, other, dir.path())
                .expect("readable")
                .is_none()
        );
        // A damaged verifying key is named, not taken.
        let name = cache_name(shape, &DEVNET_SEED);
        fs::write(dir.path().join(name).join("verifying.key"), b"junk").expect("write");
        assert!(matches!(
            Keys::cached_verifying_key(shape, DEVNET_SEED, dir.path()),
            Err(KeyError::Damaged { .. })
        ));
    }
}
