// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {
    MarketplaceConfig,
    ProofScheme,
    ProofStatus,
    RequestInfo,
    RequestParams,
    RequestState,
    SlotInfo,
    SlotState
} from "./MarketplaceTypes.sol";

/// @title hoard Marketplace
/// @notice Renters escrow payment for k+m erasure-coded slots of a dataset; hosts fill slots with
/// collateral, prove storage in the periods the chain's randomness picks, and are paid for the
/// time they held their slot when the request ends. See docs/contracts.md for the state machines,
/// money formulas and threat model.
interface IMarketplace {
    // ------------------------------------------------------------------ events

    /// @notice A host announced (or updated) how to reach it over libp2p.
    event HostAnnounced(address indexed host, bytes peerId, bytes[] addrs);
    /// @notice A host withdrew its announcement.
    event HostRemoved(address indexed host);
    /// @notice A renter opened a request and escrowed `escrow` tokens.
    event StorageRequested(
        bytes32 indexed requestId,
        address indexed renter,
        RequestParams params,
        uint256 escrow,
        uint64 expiresAt,
        uint64 endsAt
    );
    /// @notice A host filled a slot. `repair` is true when the slot was in Repair.
    event SlotFilled(
        bytes32 indexed requestId,
        bytes32 indexed slotId,
        address indexed host,
        uint256 slotIndex,
        bool repair
    );
    /// @notice A host proved its slot for `period`.
    event ProofSubmitted(bytes32 indexed slotId, address indexed host, uint256 indexed period);
    /// @notice A host proved the compact slots `slotIds` for `period` with one proof (one event per
    /// batch instead of one `ProofSubmitted` per slot).
    event CompactProofSubmitted(address indexed host, uint256 indexed period, bytes32[] slotIds);
    /// @notice `reporter` marked the proof of `period` missing; `slashed` left the host's collateral,
    /// `reward` of it went to the reporter. `missedProofs` counts the host's marks so far.
    event ProofMissed(
        bytes32 indexed slotId,
        address indexed host,
        uint256 indexed period,
        address reporter,
        uint256 slashed,
        uint256 reward,
        uint256 missedProofs
    );
    /// @notice `host` was evicted from a slot; the slot is in Repair now.
    event SlotFreed(
        bytes32 indexed requestId, bytes32 indexed slotId, address indexed host, uint256 slotIndex
    );
    /// @notice Every slot of the request is filled.
    event RequestStarted(bytes32 indexed requestId);
    /// @notice The request ran its duration. Emitted by the first withdrawal after the end.
    event RequestFinished(bytes32 indexed requestId);
    /// @notice More than maxSlotLoss slots were empty at once.
    event RequestFailed(bytes32 indexed requestId);
    /// @notice The request expired before all slots were filled. Emitted by the first withdrawal
    /// after the expiry.
    event RequestCancelled(bytes32 indexed requestId);
    /// @notice The renter extended a running request by `extraSeconds`: it now ends at `endsAt`, and
    /// `payment` more tokens are in escrow (`pricePerBytePerSecond * slotSize * slots * extraSeconds`).
    event RequestExtended(bytes32 indexed requestId, uint256 extraSeconds, uint64 endsAt, uint256 payment);
    /// @notice Tokens left the contract: to a host (`slotId` set), to a renter (`slotId` zero) or
    /// to a reporter (`requestId` and `slotId` zero).
    event Withdrawn(
        address indexed account, bytes32 indexed requestId, bytes32 indexed slotId, uint256 amount
    );

    // ------------------------------------------------------------------ errors

    error ZeroSlots();
    error TooManySlots(uint256 slots, uint256 max);
    error InvalidMaxSlotLoss(uint256 maxSlotLoss, uint256 slots);
    error InvalidCellCount(uint256 cellCount);
    error SlotSizeMismatch(uint256 slotSize, uint256 cellCount);
    error InvalidDuration(uint256 duration);
    error InvalidExpiry(uint256 expiry, uint256 duration);
    error ZeroPrice();
    error ZeroCollateral();
    error ZeroProofProbability();
    error InvalidSamples(uint256 samples, uint256 max);
    error SchemeNotSupported(ProofScheme scheme);
    error ZeroDatasetRoot();
    error ZeroManifestId();
    error PriceOverflow();
    error CollateralOverflow();
    /// @notice `extendRequest`: `extraSeconds` must be 1 .. `maxExtraSeconds` (what keeps the whole
    /// duration within `MAX_DURATION`).
    error InvalidExtension(uint256 extraSeconds, uint256 maxExtraSeconds);

    error UnknownRequest(bytes32 requestId);
    error UnknownSlot(bytes32 slotId);
    error InvalidSlotIndex(uint256 slotIndex, uint256 slots);
    error RequestNotActive(bytes32 requestId, RequestState state);
    error RequestNotEnded(bytes32 requestId, RequestState state);
    error SlotNotFree(bytes32 slotId, SlotState state);
    error SlotNotFilled(bytes32 slotId, SlotState state);
    error ZeroSlotRoot();
    error InvalidSlotRootPath();
    error InvalidProof();
    error NotSlotHost(address caller, address host);
    error NotRenter(address caller, address renter);
    error ProofAlreadySubmitted(bytes32 slotId, uint256 period);
    error ProofNotRequired(bytes32 slotId, uint256 period);
    error PeriodNotEnded(uint256 period, uint256 currentPeriod);
    error MarkingWindowClosed(uint256 period, uint256 lastBlock);
    error PeriodBeforeFill(uint256 period, uint256 filledPeriod);
    error ProofWasSubmitted(bytes32 slotId, uint256 period);
    error ProofAlreadyMarked(bytes32 slotId, uint256 period);
    error AlreadyWithdrawn();
    error NothingToWithdraw();
    error InvalidPeerId();
    error InvalidAddresses();
    error HostNotAnnounced(address host);
    error FuturePeriod(uint256 period, uint256 currentPeriod);
    /// @notice A compact request without a compact root, or a direct request with one.
    error InvalidCompactRoot();
    /// @notice The deployment's compact verifiers disagree (samples) or are not small < large.
    error InvalidCompactVerifiers();
    /// @notice `fillSlot` on a compact request or `fillCompactSlot` on a direct one.
    error WrongScheme(bytes32 requestId, ProofScheme scheme);
    /// @notice A slot commitment that is zero or not below the BN254 scalar field modulus.
    error InvalidCommitment();
    /// @notice The slot commitment's path does not lead to the request's compact root.
    error InvalidCommitmentPath();
    /// @notice `submitCompactProof` with a slot of the direct scheme.
    error NotCompact(bytes32 slotId);
    /// @notice `submitCompactProof` with the same slot twice.
    error DuplicateSlot(bytes32 slotId);
    /// @notice `submitCompactProof` with no slots.
    error EmptyBatch();
    /// @notice More slots than the deployment's largest compact circuit takes.
    error BatchTooLarge(uint256 slots, uint256 max);
    /// @notice A compact proof names a period other than the current one.
    error NotCurrentPeriod(uint256 period, uint256 currentPeriod);
    /// @notice The compact proof's points are not on the curve (or its coordinates not in the field).
    error MalformedProof();
    /// @notice From the randomness source (`IRandomness`), passed through: the seed of a period is not,
    /// or no longer, readable on chain.
    error SeedUnavailable(uint256 blockNumber);

    // ------------------------------------------------------------------ hosts

    /// @notice Announces (or replaces) how to reach the calling host.
    /// @param peerId libp2p peer id, binary (`PeerId::to_bytes`), 1..128 bytes.
    /// @param addrs 1..8 binary multiaddrs (`Multiaddr::to_vec`), 1..128 bytes each.
    function announceHost(bytes calldata peerId, bytes[] calldata addrs) external;

    /// @notice Removes the calling host's announcement.
    function removeHost() external;

    /// @notice The announcement of `host`; empty arrays if it never announced.
    function hostInfo(address host)
        external
        view
        returns (bytes memory peerId, bytes[] memory addrs, uint64 updatedAt);

    /// @notice Number of announced hosts.
    function hostCount() external view returns (uint256);

    /// @notice Announced hosts `[offset, offset + limit)` (clamped to the list).
    function hosts(uint256 offset, uint256 limit) external view returns (address[] memory);

    // ------------------------------------------------------------------ requests

    /// @notice Opens a storage request and escrows its maximum price
    /// (`pricePerBytePerSecond * slotSize * slots * duration`) with `transferFrom`: approve it first.
    /// @return requestId `keccak256(abi.encode(chainid, marketplace, renter, nonce))`, see `nextRequestId`.
    function requestStorage(RequestParams calldata params) external returns (bytes32 requestId);

    /// @notice Extends a running request (New or Started) by `extraSeconds`, which must keep its whole
    /// duration within `MAX_DURATION` (else `InvalidExtension`) and the whole escrow within 256 bits
    /// (else `PriceOverflow`). Only the renter may call it (`NotRenter`). Pulls
    /// `pricePerBytePerSecond * slotSize * slots * extraSeconds` with `transferFrom` (approve it
    /// first; `extensionCost` computes it), moves `endsAt` and the stored `params.duration` by
    /// `extraSeconds` (so `getRequest` shows the whole duration, and `createdAt` stays put), and
    /// emits `RequestExtended`. `expiresAt` does not change: a New request must still be filled by
    /// then, or it is cancelled and the whole escrow, extension included, is refunded. Hosts are paid
    /// up to the new end and must prove until then.
    function extendRequest(bytes32 requestId, uint256 extraSeconds) external;

    /// @notice Fills a Free or Repair slot of an active request. Checks the slot root's path to the
    /// dataset root and a first direct proof against the current period's seed, then pulls the
    /// collateral (`collateralPerByte * slotSize`, less the repair reward for a slot in Repair).
    /// @param rootPath the slot root's sibling path to the dataset root, bottom up.
    /// @param proof direct proof bytes (`cells ‖ siblings`) for the current period.
    function fillSlot(
        bytes32 requestId,
        uint256 slotIndex,
        bytes32 slotRoot,
        bytes32[] calldata rootPath,
        bytes calldata proof
    ) external;

    /// @notice `fillSlot` for a compact request: also binds the slot's Poseidon commitment, checked
    /// against the request's `compactRoot` by its path (bottom up, as `rootPath`). The first proof
    /// is a direct one, as in `fillSlot`.
    function fillCompactSlot(
        bytes32 requestId,
        uint256 slotIndex,
        bytes32 slotRoot,
        bytes32[] calldata rootPath,
        bytes calldata proof,
        bytes32 commitment,
        bytes32[] calldata commitmentPath
    ) external;

    /// @notice Proves the caller's slot for the current period (accepted once per period, only
    /// when the period requires a proof).
    function submitProof(bytes32 slotId, bytes calldata proof) external;

    /// @notice Proves the caller's compact slots `slotIds` for the current `period` with one Groth16
    /// proof (`[A.x, A.y, B.x1, B.x0, B.y1, B.y0, C.x, C.y]`). Each slot must be Filled, compact,
    /// held by the caller, required and not yet proven in the period; the public inputs are built
    /// from storage (`docs/protocol.md`, "Compact proofs") and the smallest deployed circuit that
    /// takes the batch verifies it, the positions past the batch being padding. Records a proof for
    /// every slot and emits one `CompactProofSubmitted`; any failure reverts the whole batch.
    function submitCompactProof(uint256 period, bytes32[] calldata slotIds, uint256[8] calldata proof)
        external;

    /// @notice Marks the required but absent proof of `period` as missing. Anyone may call it after
    /// the period ends and until `graceBlocks` blocks later. Slashes the host, credits the caller a
    /// reward (withdraw with `withdrawReward`), and evicts the host at `maxMissed` marks.
    function markProofMissing(bytes32 slotId, uint256 period) external;

    /// @notice Pays the caller, host of `slotId`, its earnings and remaining collateral once the
    /// request has ended (Finished, Failed or Cancelled).
    function withdrawSlot(bytes32 slotId) external;

    /// @notice Pays the renter what no host earned plus what is left of forfeited collateral, once
    /// the request has ended.
    function withdrawRequest(bytes32 requestId) external;

    /// @notice Pays the caller its reporter rewards.
    function withdrawReward() external;

    // ------------------------------------------------------------------ views

    /// @notice The deployment configuration.
    function config() external view returns (MarketplaceConfig memory);

    /// @notice Block in which the Marketplace was deployed (start of event backfill).
    function deploymentBlock() external view returns (uint256);

    /// @notice Current period: `block.number / periodLength`.
    function currentPeriod() external view returns (uint256);

    /// @notice Seed of `period`: the hash of block `period * periodLength - 1` (block 0 for period 0).
    /// Reverts once it is older than the randomness source's horizon or before it exists.
    function periodSeed(uint256 period) external view returns (bytes32);

    /// @notice `keccak256(abi.encode(requestId, slotIndex))`.
    function slotId(bytes32 requestId, uint256 slotIndex) external pure returns (bytes32);

    /// @notice The id the next request of `renter` will get.
    function nextRequestId(address renter) external view returns (bytes32);

    /// @notice A request; `state` is `None` for an unknown id.
    function getRequest(bytes32 requestId) external view returns (RequestInfo memory);

    /// @notice A request's state, with Cancelled and Finished applied as soon as time says so.
    function requestState(bytes32 requestId) external view returns (RequestState);

    /// @notice A slot; `state` is `None` for an unknown id.
    function getSlot(bytes32 slotId) external view returns (SlotInfo memory);

    /// @notice A slot's state, with the request's end state applied.
    function slotState(bytes32 slotId) external view returns (SlotState);

    /// @notice Whether the host of `slotId` must still submit a proof in the current period.
    function isProofRequired(bytes32 slotId) external view returns (bool);

    /// @notice The challenge of `slotId` in `period`: its seed, whether the period's coin says a
    /// proof is required (whatever the slot's state), and the sample indices in `j` order.
    function challenge(bytes32 slotId, uint256 period)
        external
        view
        returns (bytes32 seed, bool required, uint256[] memory indices);

    /// @notice Whether the proof of `slotId` for `period` was submitted or marked missing.
    function proofStatus(bytes32 slotId, uint256 period) external view returns (ProofStatus);

    /// @notice Slots the host ever filled, oldest first (a slot appears again after a refill).
    function hostSlots(address host, uint256 offset, uint256 limit) external view returns (bytes32[] memory);

    /// @notice Length of the `hostSlots` list.
    function hostSlotCount(address host) external view returns (uint256);

    /// @notice Requests of a renter, oldest first.
    function renterRequests(address renter, uint256 offset, uint256 limit)
        external
        view
        returns (bytes32[] memory);

    /// @notice Length of the `renterRequests` list.
    function renterRequestCount(address renter) external view returns (uint256);

    /// @notice Escrow that `requestStorage` pulls for `params`: price * slotSize * slots * duration.
    function escrowFor(RequestParams calldata params) external pure returns (uint256);

    /// @notice What `extendRequest(requestId, extraSeconds)` pulls from the renter:
    /// price * slotSize * slots * extraSeconds. Reverts as `extendRequest` would for an unknown or
    /// ended request or an invalid extension (whoever the caller is).
    function extensionCost(bytes32 requestId, uint256 extraSeconds) external view returns (uint256);

    /// @notice Full collateral backing one slot of the request: collateralPerByte * slotSize.
    function slotCollateral(bytes32 requestId) external view returns (uint256);

    /// @notice What the current host of `slotId` has earned so far (up to the request's end) and
    /// the collateral it would get back; both zero once paid or while no host holds the slot.
    function slotPayout(bytes32 slotId) external view returns (uint256 earned, uint256 collateral);

    /// @notice What `withdrawRequest` pays the renter; zero until the request has ended and after
    /// the renter withdrew.
    function renterRefund(bytes32 requestId) external view returns (uint256);

    /// @notice Reporter rewards `account` can withdraw.
    function rewardOf(address account) external view returns (uint256);
}
