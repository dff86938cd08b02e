//! The node's local store: sled for metadata, plain files for slot data.
//!
//! Slot data is never in sled (its own README warns about reliability). A host keeps each slot
//! as a one-slot packed folder (`manifest.bin`, `slot-NNN.bin`, `slot-NNN.roots`, the format of
//! `hoard-dataset`) at `<volume>/slots/<slot id>/`, written under `<volume>/tmp/` first, synced
//! and renamed; its metadata is written after the rename and flushed. A crash before the
//! metadata leaves an orphan folder that [`Store::open`] removes; after it, the slot is whole.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use alloy::primitives::{Address, B256, U256};
use hoard_chain::Cursor;
use hoard_prover::{DatasetId, Hash, RequestId, SlotId, SlotIndex};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
    #[error("database: {0}")]
    Db(#[from] sled::Error),
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A record did not decode (a bug or a damaged database).
    #[error("damaged record in {tree}: {message}")]
    Corrupt {
        /// The sled tree.
        tree: &'static str,
        /// Why.
        message: String,
    },
    /// The database is locked by another process.
    #[error(
        "the data folder {0} is in use by another hoard node (stop it, or pick another --data-dir)"
    )]
    Locked(PathBuf),
    /// The database was written by a hoard with another record format.
    #[error(
        "the database in {path} has record format {found}, this hoard reads format {FORMAT}: it was \
         written by another version — move the folder away (or `hoard devnet --clean`) and start \
         again; the chain keeps every request"
    )]
    Format {
        /// The data folder.
        path: PathBuf,
        /// The format found (0: none, from before formats were recorded).
        found: u32,
    },
}

/// The record format this code writes and reads (bumped when a record's encoding changes).
/// 2: hoard's id newtypes in every record.
pub const FORMAT: u32 = 2;

/// A storage request as the chain announced it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RequestRecord {
    /// The request id.
    pub id: RequestId,
    /// Who pays.
    pub renter: Address,
    /// The manifest's SHA-256 (the dataset id).
    pub manifest_id: DatasetId,
    /// Root over the slot roots.
    pub dataset_root: Hash,
    /// k + m.
    pub slots: u16,
    /// m.
    pub max_slot_loss: u16,
    /// Bytes per slot.
    pub slot_size: u64,
    /// Cells per slot.
    pub cell_count: u64,
    /// Samples per proof.
    pub samples: u16,
    /// A proof is required with probability 1/`proof_probability` per period.
    pub proof_probability: u64,
    /// Token base units per byte per second.
    pub price_per_byte_per_second: U256,
    /// Token base units per byte.
    pub collateral_per_byte: U256,
    /// Unix seconds when unfilled slots stop being accepted (while New).
    pub expires_at: u64,
    /// Unix seconds when the request ends.
    pub ends_at: u64,
}

/// Where a host's slot is in its life.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum HostSlotState {
    /// On disk, `fillSlot` sent or about to be: after a crash the chain says which way it went.
    Filling,
    /// On disk and filled on chain; proofs due.
    Filled,
    /// Paid out (or given up): nothing more to do; files removed.
    Done,
    /// Evicted by the marketplace.
    Evicted,
}

/// A slot this node hosts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostSlot {
    /// Slot id (`keccak(requestId, index)`).
    pub slot_id: SlotId,
    /// The request.
    pub request_id: RequestId,
    /// Slot index.
    pub index: SlotIndex,
    /// State.
    pub state: HostSlotState,
    /// The data folder (volume) that holds it.
    pub volume: PathBuf,
    /// Period of the fill (its proof counts for that period).
    pub filled_period: u64,
    /// Collateral the fill pulled, token base units.
    pub collateral: U256,
    /// Whether this was a repair of a freed slot.
    pub repair: bool,
}

/// How a period's proof of one slot went, as this host saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum ProofOutcome {
    /// Mined.
    Submitted {
        /// Transaction hash.
        tx: B256,
        /// Block it was mined in.
        block: u64,
    },
    /// Could not be built, verified or sent.
    Failed(String),
}

/// Where the background scrub is, kept so that a restart resumes there.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ScrubCursor {
    /// Unix seconds when the current pass began.
    pub pass_started: u64,
    /// Unix seconds when the last complete pass ended, if one did.
    pub last_full_pass: Option<u64>,
    /// The slot being checked (slots are checked in slot id order); `None`: none yet this pass.
    pub slot: Option<SlotId>,
    /// The next block of that slot to check.
    pub block: u64,
}

/// A dataset this node packed as a renter.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatasetRecord {
    /// The packed folder.
    pub dir: PathBuf,
    /// The request that pays for it, once posted.
    pub request_id: Option<RequestId>,
}

/// A host announcement.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostEntry {
    /// libp2p peer id bytes.
    pub peer_id: Vec<u8>,
    /// Multiaddr bytes.
    pub addrs: Vec<Vec<u8>>,
}

/// The store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    /// An exclusive `flock` on `<data_dir>/lock`, held while the store is open: a second node on
    /// the same folder is refused before sled is touched.
    _lock: Arc<std::fs::File>,
    volumes: Vec<PathBuf>,
    /// One flush at a time (see [`Store::flush`]).
    flushing: Arc<tokio::sync::Mutex<()>>,
}

const META: &str = "meta";
const REQUESTS: &str = "requests";
/// slot id → request id, for every slot of every request seen (labels events without an RPC).
const SLOT_REQUESTS: &str = "slot_requests";
const SLOTS: &str = "host_slots";
/// request id → compact root, for requests of the compact scheme.
const COMPACT_ROOTS: &str = "compact_roots";
const PROOFS: &str = "proofs";
const DATASETS: &str = "datasets";
const HOSTS: &str = "hosts";
const CURSOR: &[u8] = b"cursor";
const OFFER: &[u8] = b"offer";
const FORMAT_KEY: &[u8] = b"format";
const SCRUB: &[u8] = b"scrub";

impl Store {
    /// Opens (or creates) the store under `data_dir` with slot data in `volumes`, and removes
    /// what an interrupted write left behind.
    pub fn open(data_dir: &Path, volumes: &[PathBuf]) -> Result<Self, StoreError> {
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { what, path, source }
        };
        std::fs::create_dir_all(data_dir).map_err(io("creating", data_dir))?;
        let lock_path = data_dir.join("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("opening", &lock_path))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
            |e| match e {
                rustix::io::Errno::WOULDBLOCK => StoreError::Locked(data_dir.into()),
                e => StoreError::Io {
                    what: "locking",
                    path: lock_path.clone(),
                    source: e.into(),
                },
            },
        )?;
        let db = sled::Config::new()
            .path(data_dir.join("db"))
            .cache_capacity(64 << 20)
            .open()?;
        check_format(&db, data_dir)?;
        check_volumes(volumes)?;
        for v in volumes {
            for sub in ["slots", "datasets", "tmp"] {
                let p = v.join(sub);
                std::fs::create_dir_all(&p).map_err(io("creating", &p))?;
            }
            // Anything under tmp/ is an interrupted download or pack: its metadata was never
            // written, so nothing refers to it.
            let tmp = v.join("tmp");
            for entry in std::fs::read_dir(&tmp).map_err(io("listing", &tmp))? {
                let path = entry.map_err(io("listing", &tmp))?.path();
                let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
            }
        }
        let store = Self {
            db,
            _lock: Arc::new(lock),
            volumes: volumes.to_vec(),
            flushing: Arc::default(),
        };
        store.remove_orphan_slots()?;
        Ok(store)
    }

    /// The data folders.
    pub fn volumes(&self) -> &[PathBuf] {
        &self.volumes
    }

    /// A fresh temporary folder in `volume`, removed on the next open if never renamed.
    pub fn temp_dir(&self, volume: &Path) -> Result<tempfile::TempDir, StoreError> {
        let base = volume.join("tmp");
        tempfile::Builder::new()
            .prefix("part-")
            .tempdir_in(&base)
            .map_err(|source| StoreError::Io {
                what: "creating a folder in",
                path: base,
                source,
            })
    }

    /// The folder of a hosted slot.
    pub fn slot_dir(&self, volume: &Path, slot_id: &SlotId) -> PathBuf {
        volume.join("slots").join(hex(slot_id))
    }

    /// The folder for a packed dataset of this renter.
    pub fn dataset_dir(&self, volume: &Path, id: &DatasetId) -> PathBuf {
        volume.join("datasets").join(hex(id))
    }

    /// The volume with the most free space.
    pub fn roomiest_volume(&self) -> PathBuf {
        self.volumes
            .iter()
            .max_by_key(|v| free_bytes(v).unwrap_or(0))
            .cloned()
            .unwrap_or_default()
    }

    /// Free bytes summed over the volumes.
    pub fn free_bytes(&self) -> u64 {
        self.volumes
            .iter()
            .map(|v| free_bytes(v).unwrap_or(0))
            .sum()
    }

    fn remove_orphan_slots(&self) -> Result<(), StoreError> {
        let known: Vec<(PathBuf, SlotId)> = self
            .host_slots()?
            .into_iter()
            .filter(|s| matches!(s.state, HostSlotState::Filling | HostSlotState::Filled))
            .map(|s| (s.volume, s.slot_id))
            .collect();
        for volume in &self.volumes {
            let slots = volume.join("slots");
            let Ok(entries) = std::fs::read_dir(&slots) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let keep = known.iter().any(|(kv, id)| kv == volume && hex(id) == name);
                if !keep {
                    tracing::warn!(path = %entry.path().display(), "removing a slot folder with no record (interrupted fill)");
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        Ok(())
    }

    fn tree(&self, name: &'static str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(name)?)
    }

    fn put<T: Serialize>(
        &self,
        tree: &'static str,
        key: &[u8],
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = postcard::to_stdvec(value).map_err(|e| StoreError::Corrupt {
            tree,
            message: e.to_string(),
        })?;
        self.tree(tree)?.insert(key, bytes)?;
        Ok(())
    }

    fn get<T: DeserializeOwned>(
        &self,
        tree: &'static str,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        match self.tree(tree)?.get(key)? {
            None => Ok(None),
            Some(bytes) => decode(tree, &bytes).map(Some),
        }
    }

    fn all<T: DeserializeOwned>(&self, tree: &'static str) -> Result<Vec<T>, StoreError> {
        self.tree(tree)?
            .iter()
            .values()
            .map(|v| decode(tree, &v?))
            .collect()
    }

    /// Makes everything written so far durable.
    ///
    /// Not sled's `flush_async`: several of those at once deadlock, each waiting on sled's own
    /// I/O threads that the others fill (sled issues #1241 and #1308; it hung a renter here with
    /// 50 puts in flight). The blocking `flush` runs on tokio's blocking pool, one at a time;
    /// a caller that waited for another's flush still flushes, as its writes may be newer.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let _one = self.flushing.lock().await;
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| StoreError::Io {
                what: "flushing",
                path: PathBuf::from("the database"),
                source: std::io::Error::other(e),
            })??;
        Ok(())
    }

    /// The event cursor.
    pub fn cursor(&self) -> Result<Option<Cursor>, StoreError> {
        self.get(META, CURSOR)
    }

    /// Saves the event cursor (after the events up to it were handled).
    pub fn set_cursor(&self, cursor: &Cursor) -> Result<(), StoreError> {
        self.put(META, CURSOR, cursor)
    }

    /// Where the scrub stopped.
    pub fn scrub_cursor(&self) -> Result<Option<ScrubCursor>, StoreError> {
        self.get(META, SCRUB)
    }

    /// Saves where the scrub is.
    pub fn set_scrub_cursor(&self, cursor: &ScrubCursor) -> Result<(), StoreError> {
        self.put(META, SCRUB, cursor)
    }

    /// The offer set at run time, if any.
    pub fn offer(&self) -> Result<Option<crate::config::Offer>, StoreError> {
        // Stored as JSON: U256 fields do not round-trip through postcard's serde form.
        match self.tree(META)?.get(OFFER)? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    tree: META,
                    message: e.to_string(),
                }),
        }
    }

    /// Keeps the offer.
    pub fn set_offer(&self, offer: &crate::config::Offer) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(offer).map_err(|e| StoreError::Corrupt {
            tree: META,
            message: e.to_string(),
        })?;
        self.tree(META)?.insert(OFFER, bytes)?;
        Ok(())
    }

    /// Records a request.
    pub fn put_request(&self, r: &RequestRecord) -> Result<(), StoreError> {
        let slots = self.tree(SLOT_REQUESTS)?;
        for i in 0..r.slots {
            slots.insert(hoard_prover::slot_id(&r.id, SlotIndex(i)).0, &r.id.0)?;
        }
        self.put(REQUESTS, &r.id.0, r)
    }

    /// The request a slot belongs to, for requests this node has seen.
    pub fn request_of_slot(&self, slot: &SlotId) -> Result<Option<RequestId>, StoreError> {
        Ok(self
            .tree(SLOT_REQUESTS)?
            .get(slot.0)?
            .and_then(|v| <[u8; 32]>::try_from(v.as_ref()).ok())
            .map(RequestId))
    }

    /// A request by id.
    pub fn request(&self, id: &RequestId) -> Result<Option<RequestRecord>, StoreError> {
        self.get(REQUESTS, &id.0)
    }

    /// Every request seen, oldest id order (not time order).
    pub fn requests(&self) -> Result<Vec<RequestRecord>, StoreError> {
        self.all(REQUESTS)
    }

    /// Requests for a dataset id.
    pub fn requests_for_manifest(
        &self,
        manifest: &DatasetId,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        Ok(self
            .requests()?
            .into_iter()
            .filter(|r| r.manifest_id == *manifest)
            .collect())
    }

    /// Records that request `id` uses the compact scheme, with its compact root. Kept in a tree
    /// of its own rather than in [`RequestRecord`], so the record format (and [`FORMAT`]) stays.
    pub fn put_compact_root(&self, id: &RequestId, compact_root: &Hash) -> Result<(), StoreError> {
        self.tree(COMPACT_ROOTS)?.insert(id.0, &compact_root.0)?;
        Ok(())
    }

    /// The compact root of request `id` if it uses the compact scheme; `None` for the direct
    /// scheme (or a request never seen).
    pub fn compact_root(&self, id: &RequestId) -> Result<Option<Hash>, StoreError> {
        Ok(self
            .tree(COMPACT_ROOTS)?
            .get(id.0)?
            .and_then(|v| <[u8; 32]>::try_from(v.as_ref()).ok())
            .map(Hash))
    }

    /// Records a hosted slot.
    pub fn put_host_slot(&self, s: &HostSlot) -> Result<(), StoreError> {
        self.put(SLOTS, &s.slot_id.0, s)
    }

    /// A hosted slot by id.
    pub fn host_slot(&self, id: &SlotId) -> Result<Option<HostSlot>, StoreError> {
        self.get(SLOTS, &id.0)
    }

    /// Every slot this node hosts or hosted.
    pub fn host_slots(&self) -> Result<Vec<HostSlot>, StoreError> {
        self.all(SLOTS)
    }

    /// Records a proof outcome.
    pub fn put_proof(
        &self,
        slot: &SlotId,
        period: u64,
        outcome: &ProofOutcome,
    ) -> Result<(), StoreError> {
        self.put(PROOFS, &proof_key(slot, period), outcome)
    }

    /// Forgets a recorded proof (it was dropped by a reorg).
    pub fn forget_proof(&self, slot: &SlotId, period: u64) -> Result<(), StoreError> {
        self.tree(PROOFS)?.remove(proof_key(slot, period))?;
        Ok(())
    }

    /// The recorded outcome of a slot's proof for a period.
    pub fn proof(&self, slot: &SlotId, period: u64) -> Result<Option<ProofOutcome>, StoreError> {
        self.get(PROOFS, &proof_key(slot, period))
    }

    /// Recorded proofs of one slot, by period.
    pub fn proofs_of(&self, slot: &SlotId) -> Result<BTreeMap<u64, ProofOutcome>, StoreError> {
        let mut out = BTreeMap::new();
        for item in self.tree(PROOFS)?.scan_prefix(slot.0) {
            let (k, v) = item?;
            let period = k
                .get(32..40)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| StoreError::Corrupt {
                    tree: PROOFS,
                    message: "short key".into(),
                })?;
            out.insert(period, decode(PROOFS, &v)?);
        }
        Ok(out)
    }

    /// Records a dataset this renter packed.
    pub fn put_dataset(&self, id: &DatasetId, d: &DatasetRecord) -> Result<(), StoreError> {
        self.put(DATASETS, &id.0, d)
    }

    /// A dataset this renter packed.
    pub fn dataset(&self, id: &DatasetId) -> Result<Option<DatasetRecord>, StoreError> {
        self.get(DATASETS, &id.0)
    }

    /// Every dataset this renter packed, with its id.
    pub fn datasets(&self) -> Result<Vec<(DatasetId, DatasetRecord)>, StoreError> {
        let tree = self.tree(DATASETS)?;
        tree.iter()
            .map(|item| {
                let (k, v) = item?;
                let id = <[u8; 32]>::try_from(k.as_ref()).map_err(|_| StoreError::Corrupt {
                    tree: DATASETS,
                    message: format!("a key of {} bytes", k.len()),
                })?;
                Ok((DatasetId(id), decode(DATASETS, &v)?))
            })
            .collect()
    }

    /// Records (or removes, with `None`) a host announcement.
    pub fn put_host(&self, host: &Address, entry: Option<&HostEntry>) -> Result<(), StoreError> {
        match entry {
            Some(e) => self.put(HOSTS, host.as_slice(), e),
            None => {
                self.tree(HOSTS)?.remove(host.as_slice())?;
                Ok(())
            }
        }
    }

    /// A host's announcement.
    pub fn host(&self, host: &Address) -> Result<Option<HostEntry>, StoreError> {
        self.get(HOSTS, host.as_slice())
    }

    /// Every announced host, by address.
    pub fn hosts(&self) -> Result<Vec<(Address, HostEntry)>, StoreError> {
        let tree = self.tree(HOSTS)?;
        tree.iter()
            .map(|item| {
                let (k, v) = item?;
                Ok((Address::from_slice(&k), decode(HOSTS, &v)?))
            })
            .collect()
    }
}

/// At least one volume, and every one a folder we can write to.
fn check_volumes(volumes: &[PathBuf]) -> Result<(), StoreError> {
    if volumes.is_empty() {
        return Err(StoreError::Io {
            what: "no data folder configured:",
            path: PathBuf::new(),
            source: std::io::Error::other("set `volumes` or --data-dir"),
        });
    }
    Ok(())
}

/// Refuses a database of another record format; stamps a new one with [`FORMAT`].
fn check_format(db: &sled::Db, data_dir: &Path) -> Result<(), StoreError> {
    let meta = db.open_tree(META)?;
    let found = match meta.get(FORMAT_KEY)? {
        Some(v) => <[u8; 4]>::try_from(v.as_ref()).map_or(u32::MAX, u32::from_be_bytes),
        None => {
            let fresh = meta.is_empty()
                && [REQUESTS, SLOTS, DATASETS, HOSTS]
                    .iter()
                    .map(|t| db.open_tree(t).map(|t| t.is_empty()))
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .all(|empty| empty);
            if !fresh {
                0
            } else {
                meta.insert(FORMAT_KEY, &FORMAT.to_be_bytes())?;
                db.flush()?;
                FORMAT
            }
        }
    };
    if found != FORMAT {
        return Err(StoreError::Format {
            path: data_dir.to_path_buf(),
            found,
        });
    }
    Ok(())
}

fn proof_key(slot: &SlotId, period: u64) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(&slot.0);
    k[32..].copy_from_slice(&period.to_be_bytes());
    k
}

fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt {
        tree,
        message: e.to_string(),
    })
}

/// Lower-case hex without `0x`, for folder names.
fn hex(id: &impl AsRef<[u8]>) -> String {
    hex::encode(id)
}

/// Free bytes on the file system holding `path`.
pub(crate) fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(path)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(id: u8, state: HostSlotState, volume: &Path) -> HostSlot {
        HostSlot {
            slot_id: SlotId([id; 32]),
            request_id: RequestId([9; 32]),
            index: SlotIndex(1),
            state,
            volume: volume.to_path_buf(),
            filled_period: 3,
            collateral: U256::from(7),
            repair: false,
        }
    }

    #[test]
    fn records_survive_reopen_and_orphans_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vol = dir.path().join("vol");
        {
            let store = Store::open(dir.path(), std::slice::from_ref(&vol)).expect("open");
            store
                .put_host_slot(&slot(1, HostSlotState::Filled, &vol))
                .expect("put");
            std::fs::create_dir_all(store.slot_dir(&vol, &SlotId([1; 32]))).expect("kept");
            std::fs::create_dir_all(store.slot_dir(&vol, &SlotId([2; 32]))).expect("orphan");
            let tmp = store.temp_dir(&vol).expect("tmp").keep();
            assert!(tmp.exists());
            store
                .put_proof(&SlotId([1; 32]), 5, &ProofOutcome::Failed("x".into()))
                .expect("proof");
            store.db.flush().expect("flush");
        }
        let store = Store::open(dir.path(), std::slice::from_ref(&vol)).expect("reopen");
        assert_eq!(
            store.host_slots().expect("slots"),
            vec![slot(1, HostSlotState::Filled, &vol)]
        );
        assert!(store.slot_dir(&vol, &SlotId([1; 32])).exists());
        assert!(!store.slot_dir(&vol, &SlotId([2; 32])).exists());
        assert_eq!(std::fs::read_dir(vol.join("tmp")).expect("tmp").count(), 0);
        let proofs = store.proofs_of(&SlotId([1; 32])).expect("proofs");
        assert_eq!(proofs.keys().copied().collect::<Vec<_>>(), vec![5]);
    }

    #[test]
    fn every_slot_of_a_stored_request_maps_back_to_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vol = dir.path().join("vol");
        let store = Store::open(dir.path(), std::slice::from_ref(&vol)).expect("open");
        let id = RequestId([5; 32]);
        let record = RequestRecord {
            id,
            renter: Address::repeat_byte(1),
            manifest_id: DatasetId([2; 32]),
            dataset_root: Hash([3; 32]),
            slots: 6,
            max_slot_loss: 2,
            slot_size: 1 << 16,
            cell_count: 256,
            samples: 16,
            proof_probability: 1,
            price_per_byte_per_second: U256::from(1),
            collateral_per_byte: U256::from(1),
            expires_at: 10,
            ends_at: 20,
        };
        store.put_request(&record).expect("put");
        for i in 0..6 {
            let slot = hoard_prover::slot_id(&id, SlotIndex(i));
            assert_eq!(
                store.request_of_slot(&slot).expect("get"),
                Some(id),
                "slot {i}"
            );
        }
        let beyond = hoard_prover::slot_id(&id, SlotIndex(6));
        assert_eq!(store.request_of_slot(&beyond).expect("get"), None);
    }

    #[test]
    fn a_second_node_on_the_same_folder_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vol = dir.path().join("vol");
        let _first = Store::open(dir.path(), std::slice::from_ref(&vol)).expect("open");
        let err = Store::open(dir.path(), std::slice::from_ref(&vol)).expect_err("locked");
        assert!(matches!(err, StoreError::Locked(_)), "{err}");
    }

    #[test]
    fn a_database_of_another_format_is_refused_and_a_fresh_one_is_stamped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vol = dir.path().join("vol");
        {
            // A store from before formats were recorded: records, no format key.
            let db = sled::open(dir.path().join("db")).expect("sled");
            db.open_tree(REQUESTS)
                .expect("tree")
                .insert(b"x", b"y")
                .expect("insert");
            db.flush().expect("flush");
        }
        let err = Store::open(dir.path(), std::slice::from_ref(&vol)).expect_err("old format");
        assert!(matches!(err, StoreError::Format { found: 0, .. }), "{err}");

        let fresh = tempfile::tempdir().expect("tempdir");
        drop(Store::open(fresh.path(), std::slice::from_ref(&vol)).expect("fresh"));
        Store::open(fresh.path(), std::slice::from_ref(&vol)).expect("stamped, reopens");
    }

    /// Many tasks writing and flushing at once (a renter with 50 puts in flight) all finish.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_flushes_all_finish() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vol = dir.path().join("vol");
        let store = Store::open(dir.path(), std::slice::from_ref(&vol)).expect("open");
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..64u8 {
            let store = store.clone();
            let vol = vol.clone();
            tasks.spawn(async move {
                for round in 0..20u64 {
                    let mut s = slot(i, HostSlotState::Filled, &vol);
                    s.filled_period = round;
                    store.put_host_slot(&s)?;
                    store.flush().await?;
                }
                Ok::<_, StoreError>(())
            });
        }
        let all = async {
            while let Some(r) = tasks.join_next().await {
                r.expect("task").expect("write and flush");
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), all)
            .await
            .expect("every flush finished within a minute");
        assert_eq!(store.host_slots().expect("slots").len(), 64);
    }
}
