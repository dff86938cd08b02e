// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {IMarketplace} from "../src/IMarketplace.sol";
import {Marketplace} from "../src/Marketplace.sol";
import {ProofStatus, RequestParams, RequestState, SlotState} from "../src/MarketplaceTypes.sol";
import {Challenges} from "../src/libraries/Challenges.sol";
import {Periods} from "../src/libraries/Periods.sol";
import {IRandomness} from "../src/randomness/IRandomness.sol";
import {MarketplaceTestBase} from "./utils/MarketplaceTestBase.sol";
import {vm} from "./utils/Vm.sol";

contract MarketplaceProofsTest is MarketplaceTestBase {
    bytes32 internal id;
    bytes32 internal slot0;

    function setUp() public override {
        super.setUp();
        id = _request();
        _fillAll(id);
        slot0 = market.slotId(id, 0);
        _nextPeriod();
    }

    function _expectSubmitRevert(address caller, bytes32 slot, bytes memory proof, bytes memory err)
        internal
    {
        vm.expectRevert(err);
        vm.prank(caller);
        market.submitProof(slot, proof);
    }

    /// A request proven with probability 1/`probability`, filled, and moved to a period in which
    /// slot 0's proof is (or is not) required.
    function _sparseRequest(uint64 probability, bool required) internal returns (bytes32 rid, bytes32 slot) {
        RequestParams memory p = defaultParams();
        p.proofProbability = probability;
        rid = _request("sparse", p);
        _fillAll(rid);
        slot = market.slotId(rid, 0);
        for (uint256 i; i < 200; ++i) {
            _nextPeriod();
            (, bool r,) = market.challenge(slot, market.currentPeriod());
            if (r == required) return (rid, slot);
        }
        revert("no such period in 200");
    }

    // ------------------------------------------------------------------ periods and seeds

    function test_CurrentPeriod_IsBlockOverPeriodLength() public {
        vm.roll(12_345);
        vm.assertEq(market.currentPeriod(), 12_345 / PERIOD);
    }

    function test_PeriodSeed_IsHashOfBlockBeforePeriod() public view {
        uint256 period = market.currentPeriod();
        vm.assertEq(market.periodSeed(period), blockhash(period * PERIOD - 1));
        vm.assertEq(market.periodSeed(period - 1), blockhash((period - 1) * PERIOD - 1));
    }

    function test_PeriodSeed_SetByBlockHash() public {
        uint256 period = market.currentPeriod();
        vm.setBlockhash(period * PERIOD - 1, keccak256("beacon"));
        vm.assertEq(market.periodSeed(period), keccak256("beacon"));
    }

    function test_PeriodSeed_PeriodZeroUsesGenesis() public {
        vm.roll(5);
        vm.assertEq(market.periodSeed(0), blockhash(0));
    }

    function test_RevertWhen_PeriodSeedOfFuturePeriod() public {
        uint256 period = market.currentPeriod();
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.FuturePeriod.selector, period + 1, period));
        market.periodSeed(period + 1);
    }

    function test_RevertWhen_PeriodSeedTooOld() public {
        uint256 period = market.currentPeriod();
        _advancePeriods(30); // 300 blocks: past blockhash's reach
        vm.expectRevert(abi.encodeWithSelector(IRandomness.SeedUnavailable.selector, period * PERIOD - 1));
        market.periodSeed(period);
    }

    function test_Challenge_MatchesBrief() public view {
        uint256 period = market.currentPeriod();
        (bytes32 seed, bool required, uint256[] memory indices) = market.challenge(slot0, period);
        vm.assertEq(seed, market.periodSeed(period));
        vm.assertTrue(required); // proofProbability 1
        vm.assertEq(indices.length, 5);
        for (uint256 j; j < indices.length; ++j) {
            vm.assertEq(indices[j], uint256(keccak256(abi.encode(seed, slot0, j))) % 256);
        }
    }

    function test_RevertWhen_ChallengeOfUnknownSlot() public {
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.UnknownSlot.selector, bytes32("x")));
        market.challenge("x", 1);
    }

    function test_RevertWhen_ChallengeOfFuturePeriod() public {
        uint256 period = market.currentPeriod();
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.FuturePeriod.selector, period + 1, period));
        market.challenge(slot0, period + 1);
    }

    function test_SlotId_IsKeccakOfRequestAndIndex() public view {
        vm.assertEq(market.slotId(id, 3), keccak256(abi.encode(id, uint256(3))));
    }

    // ------------------------------------------------------------------ submitProof

    function test_SubmitProof_AcceptsValidProof() public {
        uint256 period = market.currentPeriod();
        vm.assertTrue(market.isProofRequired(slot0));
        bytes memory proof = _currentProof(id, 0);
        vm.expectEmit(address(market));
        emit IMarketplace.ProofSubmitted(slot0, host1, period);
        vm.prank(host1);
        market.submitProof(slot0, proof);
        vm.assertEq(uint256(market.proofStatus(slot0, period)), uint256(ProofStatus.Submitted));
        vm.assertFalse(market.isProofRequired(slot0));
    }

    function test_SubmitProof_EveryPeriod() public {
        for (uint256 i; i < 3; ++i) {
            _submit(id, 0, host1);
            _nextPeriod();
        }
        vm.assertTrue(market.isProofRequired(slot0));
    }

    function test_SubmitProof_AcceptedInLastBlockOfPeriod() public {
        uint256 period = market.currentPeriod();
        vm.roll(Periods.lastBlock(period, PERIOD));
        _submit(id, 0, host1);
        vm.assertEq(uint256(market.proofStatus(slot0, period)), uint256(ProofStatus.Submitted));
    }

    function test_SubmitProof_WithDuplicateSamples() public {
        // 128 samples of 256 cells: duplicates are all but certain; the proof carries each cell once.
        RequestParams memory p = defaultParams();
        p.samples = 128;
        bytes32 rid = _request("dups", p);
        _fill(rid, 1, host2);
        _nextPeriod();
        (,, uint256[] memory indices) = market.challenge(market.slotId(rid, 1), market.currentPeriod());
        vm.assertLt(Challenges.sortUnique(indices).length, 128);
        _submit(rid, 1, host2);
    }

    function test_IsProofRequired_FalseInFillPeriod() public {
        bytes32 rid = _request("later", defaultParams());
        _fill(rid, 0, host1);
        vm.assertFalse(market.isProofRequired(market.slotId(rid, 0)));
    }

    function test_IsProofRequired_FalseForFreeAndUnknownSlots() public {
        bytes32 rid = _request("later", defaultParams());
        vm.assertFalse(market.isProofRequired(market.slotId(rid, 0)));
        vm.assertFalse(market.isProofRequired("unknown"));
    }

    function test_IsProofRequired_FollowsProbability() public {
        (, bytes32 slot) = _sparseRequest(3, false);
        vm.assertFalse(market.isProofRequired(slot));
        (, slot) = _sparseRequest(3, true);
        vm.assertTrue(market.isProofRequired(slot));
    }

    function test_ProofStatus_NoneByDefault() public view {
        vm.assertEq(uint256(market.proofStatus(slot0, 12)), uint256(ProofStatus.None));
    }

    // ------------------------------------------------------------------ bad input

    function test_RevertWhen_SubmitForUnknownSlot() public {
        _expectSubmitRevert(
            host1, "x", "", abi.encodeWithSelector(IMarketplace.UnknownSlot.selector, bytes32("x"))
        );
    }

    function test_RevertWhen_SubmitForFreeSlot() public {
        bytes32 rid = _request("free", defaultParams());
        bytes32 slot = market.slotId(rid, 0);
        _expectSubmitRevert(
            host1, slot, "", abi.encodeWithSelector(IMarketplace.SlotNotFilled.selector, slot, SlotState.Free)
        );
    }

    function test_RevertWhen_SubmitByOtherAccount() public {
        bytes memory proof = _currentProof(id, 0);
        _expectSubmitRevert(
            host2, slot0, proof, abi.encodeWithSelector(IMarketplace.NotSlotHost.selector, host2, host1)
        );
    }

    function test_RevertWhen_SubmitAfterRequestFinished() public {
        vm.warp(market.getRequest(id).endsAt);
        bytes memory proof = _currentProof(id, 0);
        _expectSubmitRevert(
            host1,
            slot0,
            proof,
            abi.encodeWithSelector(IMarketplace.RequestNotActive.selector, id, RequestState.Finished)
        );
    }

    function test_RevertWhen_SubmitTwiceInPeriod() public {
        _submit(id, 0, host1);
        bytes memory proof = _currentProof(id, 0);
        _expectSubmitRevert(
            host1,
            slot0,
            proof,
            abi.encodeWithSelector(IMarketplace.ProofAlreadySubmitted.selector, slot0, market.currentPeriod())
        );
    }

    function test_RevertWhen_SubmitInFillPeriod() public {
        bytes32 rid = _request("later", defaultParams());
        _fill(rid, 0, host1);
        bytes32 slot = market.slotId(rid, 0);
        bytes memory proof = _currentProof(rid, 0);
        _expectSubmitRevert(
            host1,
            slot,
            proof,
            abi.encodeWithSelector(IMarketplace.ProofAlreadySubmitted.selector, slot, market.currentPeriod())
        );
    }

    function test_RevertWhen_SubmitNotRequired() public {
        (bytes32 rid, bytes32 slot) = _sparseRequest(3, false);
        bytes memory proof = _currentProof(rid, 0);
        _expectSubmitRevert(
            host1,
            slot,
            proof,
            abi.encodeWithSelector(IMarketplace.ProofNotRequired.selector, slot, market.currentPeriod())
        );
    }

    function test_RevertWhen_SubmitTamperedCell() public {
        bytes memory proof = _currentProof(id, 0);
        proof[300] ^= 0x80;
        _expectSubmitRevert(host1, slot0, proof, abi.encodeWithSelector(IMarketplace.InvalidProof.selector));
    }

    function test_RevertWhen_SubmitTamperedSibling() public {
        bytes memory proof = _currentProof(id, 0);
        proof[proof.length - 1] ^= 0x01;
        _expectSubmitRevert(host1, slot0, proof, abi.encodeWithSelector(IMarketplace.InvalidProof.selector));
    }

    function test_RevertWhen_SubmitTruncatedProof() public {
        bytes memory proof = _currentProof(id, 0);
        assembly ("memory-safe") {
            mstore(proof, sub(mload(proof), 32))
        }
        _expectSubmitRevert(host1, slot0, proof, abi.encodeWithSelector(IMarketplace.InvalidProof.selector));
    }

    function test_RevertWhen_SubmitProofWithTrailingBytes() public {
        bytes memory proof = bytes.concat(_currentProof(id, 0), bytes32(0));
        _expectSubmitRevert(host1, slot0, proof, abi.encodeWithSelector(IMarketplace.InvalidProof.selector));
    }

    function test_RevertWhen_SubmitEmptyProof() public {
        _expectSubmitRevert(host1, slot0, "", abi.encodeWithSelector(IMarketplace.InvalidProof.selector));
    }

    function test_RevertWhen_SubmitProofOfPreviousPeriod() public {
        bytes memory stale = _currentProof(id, 0);
        _nextPeriod();
        _expectSubmitRevert(host1, slot0, stale, abi.encodeWithSelector(IMarketplace.InvalidProof.selector));
    }

    function test_RevertWhen_SubmitReplayedProof() public {
        bytes memory proof = _currentProof(id, 0);
        vm.prank(host1);
        market.submitProof(slot0, proof);
        _nextPeriod();
        _expectSubmitRevert(host1, slot0, proof, abi.encodeWithSelector(IMarketplace.InvalidProof.selector));
    }
}
