// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.34;

import {IMarketplace} from "./IMarketplace.sol";
import {ProofScheme, ProofStatus, RequestParams, RequestState, SlotState} from "./MarketplaceTypes.sol";

/// @title The Marketplace's storage, shared with the code it runs by delegatecall
/// @notice `Marketplace` inherits this first, so these variables sit at the same slots in the
/// Marketplace and in `CompactProofs`, whose code runs on the Marketplace's storage.
/// @dev Add state here, never in a contract that inherits it after its first base.
abstract contract MarketplaceStorage {
    /// @notice The BN254 scalar field modulus: commitments and public inputs are below it.
    uint256 internal constant SNARK_FIELD =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;
    /// @dev Set in a stored commitment when the request's proofProbability is above 1, so a compact
    /// proof reads the request only for such slots. Commitments are below 2^254.
    uint256 internal constant SAMPLED = 1 << 255;

    /// Words 0-2 are non-zero from creation on, so no later call pays for a fresh word, and they hold
    /// everything fills, proofs and marks read; `params` keeps the request as asked, for views and
    /// payouts.
    struct Request {
        // word 0: what fills and evictions update
        address renter;
        RequestState state; // New, Started or Failed; Cancelled/Finished are written when settled
        uint16 filledSlots;
        bool renterWithdrawn;
        uint48 sumFilledAt; // sum of filledAt over the slots filled now
        ProofScheme scheme;
        // word 1: times and counters
        uint40 expiresAt;
        uint40 endsAt;
        uint40 endedAt; // set when the request fails, or when a Cancelled/Finished one is settled
        uint48 missedProofs;
        uint32 evictions;
        uint32 repairs;
        // word 2: the challenge and the collateral
        uint96 slotCollateral; // collateralPerByte * slotSize
        uint64 cellCount;
        uint64 proofProbability;
        uint16 samples;
        uint16 slots;
        RequestParams params;
    }

    struct Slot {
        // word 0, written by requestStorage
        bytes32 requestId;
        // word 1, written by requestStorage (index, Free) and by every fill and eviction
        address host;
        uint40 filledAt;
        uint32 filledPeriod;
        SlotState state; // None, Free, Filled, Repair or Paid; the end states come from the request
        uint8 missedProofs;
        uint8 index;
        // word 2
        bytes32 slotRoot;
        // word 3, compact slots only: the commitment, with SAMPLED set for proofProbability > 1
        uint256 commitment;
    }

    mapping(bytes32 requestId => Request) internal _requests;
    mapping(bytes32 slotId => Slot) internal _slots;
    /// Two bits (a `ProofStatus`) per slot and period: 128 periods per word.
    mapping(bytes32 slotId => mapping(uint256 word => uint256 bits)) internal _proofMarks;
    mapping(address renter => bytes32[]) internal _renterRequests;
    mapping(address reporter => uint256) internal _rewards;

    function _requireFilled(bytes32 id, SlotState state) internal pure {
        if (state == SlotState.None) revert IMarketplace.UnknownSlot(id);
        if (state != SlotState.Filled) revert IMarketplace.SlotNotFilled(id, state);
    }

    function _proofStatus(bytes32 id, uint256 period) internal view returns (ProofStatus) {
        return ProofStatus((_proofMarks[id][period >> 7] >> ((period & 127) << 1)) & 3);
    }

    /// @dev Marks slot `id` proven for `period` unless it has a mark already (then returns false and
    /// changes nothing): one read and one write of the marks word, where `_proofStatus` then
    /// `_setProofStatus` read it twice.
    function _markSubmitted(bytes32 id, uint256 period) internal returns (bool marked) {
        mapping(uint256 word => uint256 bits) storage marks = _proofMarks[id];
        uint256 word = marks[period >> 7];
        uint256 shift = (period & 127) << 1;
        if ((word >> shift) & 3 != 0) return false;
        marks[period >> 7] = word | (uint256(ProofStatus.Submitted) << shift);
        return true;
    }

    function _setProofStatus(bytes32 id, uint256 period, ProofStatus status) internal {
        _proofMarks[id][period >> 7] |= uint256(status) << ((period & 127) << 1);
    }
}
