// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.34;

import {IMarketplace} from "./IMarketplace.sol";
import {MarketplaceStorage} from "./MarketplaceStorage.sol";
import {MarketplaceConfig, SlotState} from "./MarketplaceTypes.sol";
import {Challenges} from "./libraries/Challenges.sol";
import {Periods} from "./libraries/Periods.sol";
import {IRandomness} from "./randomness/IRandomness.sol";
import {ICompactVerifier} from "./verifiers/ICompactVerifier.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @title The Marketplace's compact proof check
/// @notice Created by the Marketplace's constructor; `Marketplace.submitCompactProof` runs this code
/// by delegatecall on the Marketplace's own storage (`MarketplaceStorage`). A contract of its own
/// only so that the Marketplace stays under the 24,576-byte code limit (EIP-170). Called directly,
/// it sees its own, empty storage and accepts nothing.
contract CompactProofs is MarketplaceStorage {
    IRandomness internal immutable _randomness;
    uint64 internal immutable _periodLength;
    ICompactVerifier internal immutable _verifierSmall;
    ICompactVerifier internal immutable _verifierLarge;
    uint256 internal immutable _smallSlots;
    uint256 internal immutable _largeSlots;
    /// @notice Samples per slot of the compact circuits; zero without any.
    uint256 public immutable samples;

    /// @param cfg the Marketplace's configuration. Either verifier may be zero; with both, they must
    /// sample alike and the small one must take fewer slots.
    constructor(MarketplaceConfig memory cfg) {
        _randomness = IRandomness(cfg.randomness);
        _periodLength = cfg.periodLength;
        (uint256 smallSlots, uint256 smallSamples) = _shape(cfg.compactVerifierSmall);
        (uint256 largeSlots, uint256 largeSamples) = _shape(cfg.compactVerifierLarge);
        if (smallSlots != 0 && largeSlots != 0 && (smallSamples != largeSamples || smallSlots >= largeSlots))
        {
            revert IMarketplace.InvalidCompactVerifiers();
        }
        _verifierSmall = ICompactVerifier(cfg.compactVerifierSmall);
        _verifierLarge = ICompactVerifier(cfg.compactVerifierLarge);
        _smallSlots = smallSlots;
        _largeSlots = largeSlots;
        samples = smallSlots != 0 ? smallSamples : largeSamples;
    }

    /// @dev Slots and samples of a compact verifier; zeros for none.
    function _shape(address verifier) private view returns (uint256 slots, uint256 perSlot) {
        if (verifier == address(0)) return (0, 0);
        slots = ICompactVerifier(verifier).slots();
        perSlot = ICompactVerifier(verifier).samples();
        // At most 1,024 slots per proof: the loop and the verifier's inputs stay small.
        if (slots == 0 || perSlot == 0 || slots > 1024) revert IMarketplace.InvalidCompactVerifiers();
    }

    /// @notice See `IMarketplace.submitCompactProof`.
    /// @dev Reads two words per slot (state and commitment) plus the marks word, and the request only
    /// for slots sampled with proofProbability > 1. It does not check that the request still runs:
    /// a mark on an ended request changes nothing (marks are only read by `markProofMissing`,
    /// which requires a running request), and the check would cost two more reads per slot.
    function submitCompactProof(uint256 period, bytes32[] calldata slotIds, uint256[8] calldata proof)
        external
    {
        uint256 n = slotIds.length;
        if (n == 0) revert IMarketplace.EmptyBatch();
        ICompactVerifier verifier = _verifierSmall;
        uint256 size = _smallSlots;
        if (n > size) (verifier, size) = (_verifierLarge, _largeSlots);
        if (n > size) revert IMarketplace.BatchTooLarge(n, Math.max(_smallSlots, _largeSlots));
        uint256 current = block.number / _periodLength;
        if (period != current) revert IMarketplace.NotCurrentPeriod(period, current);
        bytes32 seed = _randomness.seedAt(Periods.seedBlock(period, _periodLength));

        // [x0, c_1 .. c_n, 0 ..]: the zeros are the circuit's padding.
        uint256[] memory input = new uint256[](size + 1);
        input[0] = uint256(keccak256(abi.encode(seed, msg.sender))) >> 3;
        for (uint256 i; i < n; ++i) {
            input[i + 1] = _markCompact(slotIds, i, period, seed);
        }

        // The verifier is immutable and the call static: marking before it is safe, and a failure
        // reverts every mark.
        (bool ok, bytes memory ret) =
            address(verifier).staticcall(abi.encodeCall(ICompactVerifier.verifyProof, (proof, input)));
        if (!ok || ret.length != 32) revert IMarketplace.MalformedProof();
        if (!abi.decode(ret, (bool))) revert IMarketplace.InvalidProof();
        emit IMarketplace.CompactProofSubmitted(msg.sender, period, slotIds);
    }

    /// @dev Checks slot `slotIds[i]` for a compact proof of `period`, marks it proven and returns its
    /// public input (the commitment).
    function _markCompact(bytes32[] calldata slotIds, uint256 i, uint256 period, bytes32 seed)
        internal
        returns (uint256 c)
    {
        bytes32 id = slotIds[i];
        Slot storage s = _slots[id];
        (address host, uint256 filledPeriod, SlotState state) = _slotWord(s);
        _requireFilled(id, state);
        if (msg.sender != host) revert IMarketplace.NotSlotHost(msg.sender, host);
        c = s.commitment;
        if (c == 0) revert IMarketplace.NotCompact(id);
        if (c & SAMPLED != 0) {
            if (!Challenges.isRequired(seed, id, _requests[s.requestId].proofProbability)) {
                revert IMarketplace.ProofNotRequired(id, period);
            }
            c ^= SAMPLED;
        }
        if (period == filledPeriod) revert IMarketplace.ProofAlreadySubmitted(id, period);
        if (!_markSubmitted(id, period)) {
            // Only the first copy of a duplicated slot finds no mark.
            for (uint256 j; j < i; ++j) {
                if (slotIds[j] == id) revert IMarketplace.DuplicateSlot(id);
            }
            revert IMarketplace.ProofAlreadySubmitted(id, period);
        }
    }

    /// @dev The host, fill period and state of slot `s` from one read of its word 1, where reading
    /// the three fields reads the word three times (the batch pays that once per slot). Tied to the
    /// field order of `Slot` (host: bits 0-159, filledAt: 160-199, filledPeriod: 200-231, state:
    /// 232-239); the compact tests fail if it drifts (every valid batch would be refused).
    function _slotWord(Slot storage s)
        private
        view
        returns (address host, uint256 filledPeriod, SlotState state)
    {
        uint256 w;
        assembly ("memory-safe") {
            w := sload(add(s.slot, 1))
        }
        host = address(uint160(w));
        filledPeriod = uint32(w >> 200);
        state = SlotState(uint8(w >> 232));
    }
}
