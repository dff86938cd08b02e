//! The JSON bodies of `/api/v1`, in the order of docs/api.md.

use std::path::PathBuf;

use alloy::primitives::{Address, B256, U256};
use hoard_prover::{DatasetId, RequestId, SlotId, SlotIndex};
use serde::{Deserialize, Serialize};

/// The body of every error answer: `{"error": "…"}`, worded for the person who has to act.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong and what to do about it.
    pub error: String,
}

/// `GET /api/v1/node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// hoard version.
    pub version: String,
    /// libp2p peer id.
    pub peer_id: String,
    /// Addresses libp2p listens on.
    pub listen: Vec<String>,
    /// Chain account.
    pub address: Address,
    /// Chain id.
    pub chain_id: u64,
    /// Marketplace contract.
    pub marketplace: Address,
    /// Head block.
    pub block: u64,
    /// Current period.
    pub period: u64,
    /// Host role on.
    pub host: bool,
    /// Validator role on.
    pub validator: bool,
    /// Connected peers.
    pub peers: usize,
}

/// What a host accepts (`[host.offer]` in the config; `PUT /api/v1/host/offer`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Offer {
    /// Bytes of slot data this host will hold.
    pub capacity_bytes: u64,
    /// Lowest price accepted, token base units per byte per second.
    #[serde(deserialize_with = "token_amount::deserialize")]
    pub min_price_per_byte_per_second: U256,
    /// Most collateral put up for one slot, token base units.
    #[serde(deserialize_with = "token_amount::deserialize")]
    pub max_collateral_per_slot: U256,
}

impl Default for Offer {
    fn default() -> Self {
        Self {
            capacity_bytes: 10 << 30,
            min_price_per_byte_per_second: U256::from(1),
            max_collateral_per_slot: U256::from(10u64).pow(U256::from(21)),
        }
    }
}

/// Token amounts as people write them: a TOML (or JSON) integer, `1000`, or a string, decimal
/// `"1000"` or hex `"0x3e8"`, for amounts past what a TOML integer holds (2⁶³ − 1; the toml crate
/// reads larger ones too, but other TOML tools do not). `U256`'s own serde form takes strings
/// only, and its error ("expected a 32 byte hex string") misleads. Amounts are still written as
/// `U256` writes them (hex strings), which this reads back.
mod token_amount {
    use std::fmt;

    use alloy::primitives::U256;
    use serde::{
        Deserializer,
        de::{self, Unexpected, Visitor},
    };

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        d.deserialize_any(AmountVisitor)
    }

    struct AmountVisitor;

    impl Visitor<'_> for AmountVisitor {
        type Value = U256;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(
                "a token amount in base units: a whole number (1000), or a string, decimal \
                 (\"1000\") or hex (\"0x3e8\")",
            )
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<U256, E> {
            Ok(U256::from(v))
        }

        fn visit_u128<E: de::Error>(self, v: u128) -> Result<U256, E> {
            Ok(U256::from(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<U256, E> {
            u64::try_from(v)
                .map(U256::from)
                .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
        }

        // The toml crate hands over integers past i64 this way.
        fn visit_i128<E: de::Error>(self, v: i128) -> Result<U256, E> {
            u128::try_from(v)
                .map(U256::from)
                .map_err(|_| E::invalid_value(Unexpected::Other("a negative integer"), &self))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<U256, E> {
            let t = v.trim();
            if t.is_empty() {
                return Err(E::invalid_value(Unexpected::Str(v), &self));
            }
            t.parse()
                .map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
        }
    }
}

/// One hosted slot in `GET /api/v1/host`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSlotView {
    /// Slot id.
    pub slot_id: SlotId,
    /// Request.
    pub request_id: RequestId,
    /// Index.
    pub index: SlotIndex,
    /// `Filling`, `Filled`, `Done`, `Evicted`.
    pub state: String,
    /// Period of the fill.
    pub filled_period: u64,
    /// Proofs mined.
    pub proofs_submitted: usize,
    /// Proofs that failed.
    pub proofs_failed: usize,
    /// Proofs marked missing on chain.
    pub missed_proofs: u64,
    /// Pay earned so far (token base units).
    pub earned: U256,
    /// Collateral that would come back (token base units): at risk until the end.
    pub collateral: U256,
}

/// `GET /api/v1/host`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStatus {
    /// Host role on.
    pub enabled: bool,
    /// The offer.
    pub offer: Offer,
    /// Slots.
    pub slots: Vec<HostSlotView>,
    /// Sum of `collateral` over held slots.
    pub collateral_at_risk: U256,
    /// Sum of `earned` over held slots.
    pub earned: U256,
    /// Token balance.
    pub balance: U256,
    /// The scrub and self-repair (absent from nodes older than this field).
    #[serde(default)]
    pub health: HostHealth,
}

/// The scrub and self-repair of a host, in `GET /api/v1/host`. Counters are since the node
/// started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostHealth {
    /// The background scrub runs (`host.scrub.interval_secs` not 0).
    pub scrub_enabled: bool,
    /// Unix seconds when the current scrub pass began.
    pub scrub_pass_started: u64,
    /// Unix seconds when the last complete pass ended, if one did.
    pub scrub_last_full_pass: Option<u64>,
    /// Bytes the current pass has checked.
    pub scrub_pass_done_bytes: u64,
    /// Bytes a pass covers (every hosted slot).
    pub scrub_pass_total_bytes: u64,
    /// The scrub's pace, bytes per second.
    pub scrub_bytes_per_sec: u64,
    /// Damaged blocks the scrub found.
    pub scrub_corrupt_blocks: u64,
    /// Self-repair is on (`host.self_repair`).
    pub self_repair: bool,
    /// Blocks rebuilt from the other slots and written back.
    pub repaired_blocks: u64,
    /// Slots rebuilt whole.
    pub rebuilt_slots: u64,
    /// Repair attempts that failed.
    pub repair_failures: u64,
    /// Slots with damage not yet repaired, with why the last attempt failed (if one did).
    pub damaged: Vec<DamagedSlot>,
}

/// A hosted slot with damage not yet repaired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamagedSlot {
    /// The slot.
    pub slot_id: SlotId,
    /// Why the last repair failed, if one was tried and failed.
    pub last_error: Option<String>,
}

/// `POST /api/v1/host/withdraw`: every slot whose request ended was withdrawn (or had been).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawResult {
    /// Always true: failures answer with an error instead.
    pub ok: bool,
}

/// What `hoard put` asks for (`POST /api/v1/datasets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutRequest {
    /// File or folder to store (on the node's machine).
    pub path: PathBuf,
    /// Data slots (k).
    pub data_slots: u16,
    /// Parity slots (m): the slots that may be lost.
    pub parity_slots: u16,
    /// Seconds of storage.
    pub duration: u64,
    /// Seconds hosts have to fill every slot.
    pub expiry: u64,
    /// Token base units per byte per second.
    pub price_per_byte_per_second: U256,
    /// Collateral hosts put up, token base units per byte.
    pub collateral_per_byte: U256,
    /// A proof is required in one period of this many, on average.
    pub proof_probability: u64,
    /// Cells sampled per proof (the compact scheme's circuits fix it: 5, whatever this says).
    pub samples: u16,
    /// How hosts prove the storage (default direct).
    #[serde(default)]
    pub scheme: Scheme,
    /// Post a new request even if this node has an open or running request for the same
    /// dataset, or a put of the same path under way (by default, the put returns that one).
    #[serde(default)]
    pub new_request: bool,
}

/// How hosts prove that they still hold a dataset's slots (docs/protocol.md §9.6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// The challenged cells and their SHA-256 paths on chain: no set-up, any slot size.
    #[default]
    Direct,
    /// One Groth16 proof per host per period for a batch of slots, over a Poseidon commitment of
    /// each slot: far less gas per slot, slots up to 1 GiB, a slower pack.
    Compact,
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Direct => "direct",
            Self::Compact => "compact",
        })
    }
}

impl std::str::FromStr for Scheme {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "direct" => Ok(Self::Direct),
            "compact" => Ok(Self::Compact),
            other => Err(format!(
                "unknown proof scheme {other:?}: use direct or compact"
            )),
        }
    }
}

/// The answer of a call that starts a job (`put`, `get`): poll `GET /api/v1/jobs/{job}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStarted {
    /// Job id.
    pub job: String,
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// `hoard put`: pack, request, serve until filled.
    Put,
    /// `hoard get`: download and restore.
    Get,
}

/// `GET /api/v1/jobs/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobStatus {
    /// Job id.
    pub id: String,
    /// `put` or `get`.
    pub kind: JobKind,
    /// What it is doing now (`packing`, `requesting storage`, `waiting for hosts`,
    /// `downloading`, …).
    pub phase: String,
    /// Units done in this phase (bytes, or slots while waiting for hosts).
    pub done: u64,
    /// Units in this phase.
    pub total: u64,
    /// Finished, successfully or not.
    pub finished: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// What it produced so far: `dataset`, `request`, `tx` for a put; `out`, `size`,
    /// `decoded_stripes` for a get.
    pub result: serde_json::Value,
}

/// One slot of a request, as `hoard status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotStatus {
    /// Index.
    pub index: SlotIndex,
    /// Slot id.
    pub slot_id: SlotId,
    /// `free`, `filled`, `repair`, `finished`, `failed`, `cancelled`, `paid`.
    pub state: String,
    /// Current host.
    pub host: Option<Address>,
    /// Proofs marked missing against the current host.
    pub missed_proofs: u64,
    /// Proofs this node recorded (when it is the host).
    pub proofs_recorded: usize,
}

/// A request as `hoard status` shows it (`GET /api/v1/datasets/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestStatus {
    /// Dataset id.
    pub dataset: DatasetId,
    /// Request id.
    pub request: RequestId,
    /// `new`, `started`, `cancelled`, `finished`, `failed`.
    pub state: String,
    /// Slots needed to rebuild (k).
    pub needed: u16,
    /// Slots.
    pub slots: Vec<SlotStatus>,
    /// Unix time the request ends.
    pub ends_at: u64,
    /// Current period.
    pub period: u64,
}

/// How one host answered an audit challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    /// A proof that verifies against the slot root on chain.
    Ok,
    /// A wrong proof, or a refusal.
    Failed,
    /// No host, not announced, or no answer.
    Unreachable,
}

/// One host's answer (`POST /api/v1/datasets/{id}/audit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditResult {
    /// Slot index.
    pub slot: SlotIndex,
    /// The host.
    pub host: Option<Address>,
    /// `ok`, `failed` (wrong or no proof) or `unreachable`.
    pub outcome: AuditOutcome,
    /// Details.
    pub detail: String,
    /// Round-trip time.
    pub millis: u64,
}

/// Body of `POST /api/v1/datasets/{id}/extend`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    /// Seconds to add to the request's duration.
    pub duration: u64,
}

/// What an extension did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendResult {
    /// Dataset id.
    pub dataset: DatasetId,
    /// The request that was extended.
    pub request: RequestId,
    /// Seconds added.
    pub extra_seconds: u64,
    /// The end before (unix seconds).
    pub previous_ends_at: u64,
    /// The new end (unix seconds).
    pub ends_at: u64,
    /// Tokens paid into escrow for the extra time (token base units).
    pub payment: U256,
    /// The `extendRequest` transaction.
    pub tx: B256,
}

/// `POST /api/v1/downloads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadRequest {
    /// Dataset id.
    pub dataset: DatasetId,
    /// Where to write it (on the node's machine): absent or an empty folder, or the output of
    /// an interrupted download of the same dataset and paths, which is resumed.
    pub out: PathBuf,
    /// Only these files or folders (a folder picks everything under it); empty: the whole
    /// dataset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
}

/// `POST /api/v1/requests/{id}/withdraw`: the renter's refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundResult {
    /// Tokens refunded (token base units, decimal).
    pub refund: String,
    /// The `withdrawRequest` transaction.
    pub tx: B256,
}

/// `POST /api/v1/validator/withdraw`: the reporter's rewards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardWithdrawal {
    /// Tokens withdrawn (token base units, decimal).
    pub amount: String,
    /// The `withdrawReward` transaction.
    pub tx: B256,
}

/// `GET/PUT /api/v1/validator`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorState {
    /// Whether the validator runs.
    pub enabled: bool,
    /// Missed proofs marked by this node since it started.
    #[serde(default)]
    pub marks: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_take_integers_and_strings_and_read_back_their_own_form() {
        let o: Offer = serde_json::from_str(
            r#"{"min_price_per_byte_per_second": 1000, "max_collateral_per_slot": "0x3e8"}"#,
        )
        .expect("integer and hex string");
        assert_eq!(o.min_price_per_byte_per_second, U256::from(1000));
        assert_eq!(o.max_collateral_per_slot, U256::from(1000));
        assert_eq!(o.capacity_bytes, Offer::default().capacity_bytes);
        let json = serde_json::to_string(&o).expect("to JSON");
        assert_eq!(serde_json::from_str::<Offer>(&json).expect("back"), o);
        let err = serde_json::from_str::<Offer>(r#"{"max_collateral_per_slot": -1}"#)
            .expect_err("negative");
        assert!(
            err.to_string().starts_with("invalid value: integer `-1`"),
            "{err}"
        );
    }

    #[test]
    fn enums_travel_as_lowercase_words() {
        assert_eq!(
            serde_json::to_string(&AuditOutcome::Unreachable).expect("json"),
            r#""unreachable""#
        );
        assert_eq!(
            serde_json::to_string(&JobKind::Put).expect("json"),
            r#""put""#
        );
    }
}

/// `GET /api/v1/cache`: the node's reader cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStatus {
    /// Bytes the cache may hold (all volumes).
    pub capacity_bytes: u64,
    /// Bytes it holds.
    pub used_bytes: u64,
    /// Each dataset with blocks in it, most recently used first.
    pub datasets: Vec<CachedDataset>,
}

/// One dataset in the reader cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedDataset {
    /// Dataset id.
    pub dataset: DatasetId,
    /// The volume holding it.
    pub volume: PathBuf,
    /// Blocks held (64 KiB each).
    pub blocks: u64,
    /// Bytes those take, their Merkle paths included.
    pub bytes: u64,
    /// Unix seconds of the last read or write.
    pub last_used: u64,
    /// Announced in Kademlia as provided: other readers find this node and fetch from it.
    pub announced: bool,
}

/// `DELETE /api/v1/cache[/{id}]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheCleared {
    /// Bytes freed.
    pub freed_bytes: u64,
}

/// One entry of a dataset listing (`GET /api/v1/datasets/{id}/files[/{folder}]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path inside the dataset.
    pub path: String,
    /// `file`, `dir` or `link`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Bytes (files, and links to files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// What a link leads to (a path inside the dataset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Where the gateway serves it (absolute on this node).
    pub url: String,
}

/// `GET /api/v1/datasets/{id}/files[/{folder}]`: a folder's entries (the whole dataset for
/// the route without a folder).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// Dataset id.
    pub dataset: DatasetId,
    /// The folder listed (`""` for the root).
    pub path: String,
    /// Its entries (direct children; everything for the whole-dataset route), by path.
    pub entries: Vec<FileEntry>,
}
