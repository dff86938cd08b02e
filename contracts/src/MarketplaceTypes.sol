// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

/// @notice How a host proves that it still holds its slot.
/// @dev Direct: the challenged cells and a SHA-256 multiproof go on chain. Compact: one Groth16
/// proof per host per period for a batch of slots, over a Poseidon commitment per slot
/// (`submitCompactProof`; docs/protocol.md, "Compact proofs"). A deployment without compact
/// verifiers refuses compact requests with `SchemeNotSupported`.
enum ProofScheme {
    Direct,
    Compact
}

/// @notice Lifecycle of a storage request.
/// New -> Started (all slots filled) -> Finished (duration over);
/// New -> Cancelled (expiry passed before all slots were filled);
/// Started -> Failed (more than `maxSlotLoss` slots empty at once).
/// `None` is the state of an unknown request id.
enum RequestState {
    None,
    New,
    Started,
    Cancelled,
    Finished,
    Failed
}

/// @notice Lifecycle of one slot (one shard of a request).
/// Free -> Filled -> (Repair after an eviction -> Filled) -> Finished / Failed / Cancelled -> Paid.
/// Finished, Failed and Cancelled mirror the request's end state: the slot's host (if any) may
/// withdraw. `None` is the state of an unknown slot id.
enum SlotState {
    None,
    Free,
    Filled,
    Repair,
    Finished,
    Failed,
    Cancelled,
    Paid
}

/// @notice Whether the proof of one slot for one period was submitted or marked missing.
enum ProofStatus {
    None,
    Submitted,
    Missed
}

/// @notice What a renter asks for in `requestStorage`.
/// @dev Field order packs the last nine fields into two storage words.
struct RequestParams {
    /// Root of the tree over the k+m slot roots (see docs/contracts.md, "Dataset root").
    bytes32 datasetRoot;
    /// SHA-256 of the encoded manifest: the dataset id.
    bytes32 manifestId;
    /// Token base units per byte of slot per second held.
    uint256 pricePerBytePerSecond;
    /// Token base units of collateral per byte of slot, posted by each host.
    uint256 collateralPerByte;
    /// Bytes per slot; must equal cellCount * 256.
    uint64 slotSize;
    /// 256-byte cells per slot: S * 256 for a slot of S 64-KiB blocks.
    uint64 cellCount;
    /// Seconds from the request until it finishes.
    uint64 duration;
    /// Seconds the slots may take to fill before the request is cancelled; less than duration.
    uint64 expiry;
    /// A proof is required in a period with probability 1/proofProbability (1 = every period).
    uint64 proofProbability;
    /// k + m.
    uint16 slots;
    /// m: how many slots may be empty at once before a started request fails.
    uint16 maxSlotLoss;
    /// Cells sampled per proof.
    uint16 samples;
    ProofScheme scheme;
    /// Compact scheme only (zero for Direct): root of the tree over the k+m slot commitments, built
    /// like `datasetRoot` (see docs/protocol.md, "Compact proofs"); bound slot by slot at fill time.
    bytes32 compactRoot;
}

/// @notice A request as the views return it.
struct RequestInfo {
    RequestParams params;
    address renter;
    RequestState state;
    uint64 createdAt;
    /// createdAt + expiry: the last second at which a slot of a New request can be filled.
    uint64 expiresAt;
    /// createdAt + duration.
    uint64 endsAt;
    /// When the request ended (expiresAt, endsAt or the failure time); 0 while it runs.
    uint64 endedAt;
    uint16 filledSlots;
    /// Missed proofs marked on this request, all slots and hosts together.
    uint64 missedProofs;
    /// Hosts evicted from this request.
    uint32 evictions;
    /// Fills of slots in Repair (each drew one repair reward).
    uint32 repairs;
    bool renterWithdrawn;
}

/// @notice A slot as the views return it.
struct SlotInfo {
    bytes32 requestId;
    uint256 slotIndex;
    SlotState state;
    /// Current (or, once Paid, last) host; zero while Free or in Repair.
    address host;
    /// When the current host filled the slot (unix seconds).
    uint64 filledAt;
    /// Period in which the current host filled the slot; its fill proof counts for this period.
    uint64 filledPeriod;
    /// Missed proofs marked against the current host.
    uint8 missedProofs;
    /// Root of the slot tree the current host committed to.
    bytes32 slotRoot;
    /// Compact scheme: the slot's Poseidon commitment, bound at fill time; zero for Direct.
    bytes32 commitment;
}

/// @notice Deployment configuration of a Marketplace. Immutable after deployment.
struct MarketplaceConfig {
    /// ERC-20 used for escrow, collateral and payouts.
    address token;
    /// Source of period seeds (`IRandomness`).
    address randomness;
    /// Blocks per proof period (L).
    uint64 periodLength;
    /// Blocks after a period ends during which its missing proofs may be marked.
    uint64 graceBlocks;
    /// Missed proofs after which a host is evicted.
    uint8 maxMissed;
    /// Share of a slot's full collateral slashed per missed proof, in basis points.
    uint16 slashBps;
    /// Share of each slash paid to the reporter, in basis points (< 10000: less than the slash).
    uint16 reporterRewardBps;
    /// Share of a slot's full collateral paid (out of forfeited collateral) to the host that
    /// refills a slot in Repair, in basis points.
    uint16 repairRewardBps;
    /// Compact scheme: the verifier of the small batch circuit (`ICompactVerifier`), or zero.
    address compactVerifierSmall;
    /// Compact scheme: the verifier of the large batch circuit, or zero. With neither, compact
    /// requests are refused.
    address compactVerifierLarge;
}
