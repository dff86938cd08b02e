// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {IMarketplace} from "../src/IMarketplace.sol";
import {ProofStatus, RequestParams, RequestState, SlotInfo, SlotState} from "../src/MarketplaceTypes.sol";
import {Periods} from "../src/libraries/Periods.sol";
import {MarketplaceTestBase} from "./utils/MarketplaceTestBase.sol";
import {vm} from "./utils/Vm.sol";

contract MarketplaceMissingTest is MarketplaceTestBase {
    bytes32 internal id;
    bytes32 internal slot0;
    uint256 internal collateral;
    uint256 internal slash;
    uint256 internal reward;

    function setUp() public override {
        super.setUp();
        id = _request();
        _fillAll(id);
        slot0 = market.slotId(id, 0);
        collateral = market.slotCollateral(id);
        slash = collateral * SLASH_BPS / 10_000;
        reward = slash * REPORTER_BPS / 10_000;
        _nextPeriod();
    }

    function _expectMarkRevert(bytes32 slot, uint256 period, bytes memory err) internal {
        vm.expectRevert(err);
        vm.prank(reporter);
        market.markProofMissing(slot, period);
    }

    function _mark(bytes32 slot, uint256 period) internal {
        vm.prank(reporter);
        market.markProofMissing(slot, period);
    }

    function test_MarkProofMissing_SlashesAndRewards() public {
        uint256 period = market.currentPeriod();
        _nextPeriod();
        vm.expectEmit(address(market));
        emit IMarketplace.ProofMissed(slot0, host1, period, reporter, slash, reward, 1);
        _mark(slot0, period);
        vm.assertEq(market.rewardOf(reporter), reward);
        vm.assertEq(uint256(market.proofStatus(slot0, period)), uint256(ProofStatus.Missed));
        SlotInfo memory s = market.getSlot(slot0);
        vm.assertEq(s.missedProofs, 1);
        vm.assertEq(s.host, host1);
        (, uint256 back) = market.slotPayout(slot0);
        vm.assertEq(back, collateral - slash);
        vm.assertEq(market.getRequest(id).missedProofs, 1);
    }

    function test_MarkProofMissing_RewardSmallerThanSlash() public view {
        vm.assertGt(reward, 0);
        vm.assertLt(reward, slash);
    }

    function test_MarkProofMissing_AnyoneMayReport() public {
        uint256 period = market.currentPeriod();
        _nextPeriod();
        vm.prank(host2); // another host, or the renter, may report too
        market.markProofMissing(slot0, period);
        vm.assertEq(market.rewardOf(host2), reward);
    }

    function test_MarkProofMissing_AtLastBlockOfGraceWindow() public {
        uint256 period = market.currentPeriod();
        vm.roll(Periods.lastBlock(period, PERIOD) + GRACE);
        _mark(slot0, period);
        vm.assertEq(uint256(market.proofStatus(slot0, period)), uint256(ProofStatus.Missed));
    }

    function test_MarkProofMissing_EvictsAfterMaxMissed() public {
        _missAndMark(id, 0, MAX_MISSED - 1);
        uint256 period = market.currentPeriod();
        _nextPeriod();
        vm.expectEmit(address(market));
        emit IMarketplace.SlotFreed(id, slot0, host1, 0);
        _mark(slot0, period);
        SlotInfo memory s = market.getSlot(slot0);
        vm.assertEq(uint256(s.state), uint256(SlotState.Repair));
        vm.assertEq(s.host, address(0));
        vm.assertEq(s.missedProofs, 0);
        vm.assertEq(market.getRequest(id).filledSlots, 3);
        vm.assertEq(market.getRequest(id).evictions, 1);
        vm.assertEq(uint256(market.requestState(id)), uint256(RequestState.Started)); // 1 <= maxSlotLoss
        vm.assertEq(market.rewardOf(reporter), 3 * reward);
        vm.assertFalse(market.isProofRequired(slot0));
    }

    function test_MarkProofMissing_FailsRequestBeyondMaxSlotLoss() public {
        _missAndMark(id, 0, MAX_MISSED);
        // Slot 1 too: two slots lost at once, maxSlotLoss is 1.
        bytes32 slot1 = market.slotId(id, 1);
        uint256[] memory periods = new uint256[](MAX_MISSED);
        for (uint256 i; i < MAX_MISSED; ++i) {
            periods[i] = market.currentPeriod();
            _nextPeriod();
            if (i + 1 < MAX_MISSED) _mark(slot1, periods[i]);
        }
        vm.expectEmit(address(market));
        emit IMarketplace.RequestFailed(id);
        _mark(slot1, periods[MAX_MISSED - 1]);
        vm.assertEq(uint256(market.requestState(id)), uint256(RequestState.Failed));
        vm.assertEq(market.getRequest(id).endedAt, block.timestamp);
        vm.assertEq(uint256(market.slotState(market.slotId(id, 2))), uint256(SlotState.Failed));
    }

    function test_MarkProofMissing_RepairBeforeSecondLossKeepsRequest() public {
        _missAndMark(id, 0, MAX_MISSED);
        _fill(id, 0, host5);
        _missAndMark(id, 1, MAX_MISSED);
        vm.assertEq(uint256(market.requestState(id)), uint256(RequestState.Started));
    }

    function test_MarkProofMissing_EvictionWhileNewDoesNotFail() public {
        RequestParams memory p = defaultParams();
        p.maxSlotLoss = 0;
        bytes32 rid = _request("new", p);
        _fill(rid, 0, host1);
        _nextPeriod();
        _missAndMark(rid, 0, MAX_MISSED);
        vm.assertEq(uint256(market.requestState(rid)), uint256(RequestState.New));
        vm.assertEq(uint256(market.slotState(market.slotId(rid, 0))), uint256(SlotState.Repair));
    }

    function test_MarkProofMissing_NewHostNotBlamedForOldPeriods() public {
        _missAndMark(id, 0, MAX_MISSED - 1);
        uint256 last = market.currentPeriod();
        _nextPeriod();
        _mark(slot0, last); // eviction
        _fill(id, 0, host5);
        // The period before the refill is still in its grace window, but it was not host5's.
        _expectMarkRevert(
            slot0,
            last,
            abi.encodeWithSelector(IMarketplace.PeriodBeforeFill.selector, last, market.currentPeriod())
        );
    }

    // ------------------------------------------------------------------ bad input

    function test_RevertWhen_MarkUnknownSlot() public {
        _expectMarkRevert("x", 1, abi.encodeWithSelector(IMarketplace.UnknownSlot.selector, bytes32("x")));
    }

    function test_RevertWhen_MarkFreeSlot() public {
        bytes32 rid = _request("free", defaultParams());
        bytes32 slot = market.slotId(rid, 0);
        _expectMarkRevert(
            slot, 1, abi.encodeWithSelector(IMarketplace.SlotNotFilled.selector, slot, SlotState.Free)
        );
    }

    function test_RevertWhen_MarkAfterRequestFinished() public {
        uint256 period = market.currentPeriod();
        _nextPeriod();
        vm.warp(market.getRequest(id).endsAt);
        _expectMarkRevert(
            slot0,
            period,
            abi.encodeWithSelector(IMarketplace.RequestNotActive.selector, id, RequestState.Finished)
        );
    }

    function test_RevertWhen_MarkCurrentPeriod() public {
        uint256 period = market.currentPeriod();
        _expectMarkRevert(
            slot0, period, abi.encodeWithSelector(IMarketplace.PeriodNotEnded.selector, period, period)
        );
    }

    function test_RevertWhen_MarkFuturePeriod() public {
        uint256 period = market.currentPeriod();
        _expectMarkRevert(
            slot0,
            period + 5,
            abi.encodeWithSelector(IMarketplace.PeriodNotEnded.selector, period + 5, period)
        );
    }

    function test_RevertWhen_MarkAfterGraceWindow() public {
        uint256 period = market.currentPeriod();
        uint256 last = Periods.lastBlock(period, PERIOD) + GRACE;
        vm.roll(last + 1);
        _expectMarkRevert(
            slot0, period, abi.encodeWithSelector(IMarketplace.MarkingWindowClosed.selector, period, last)
        );
    }

    function test_RevertWhen_MarkSubmittedProof() public {
        uint256 period = market.currentPeriod();
        _submit(id, 0, host1);
        _nextPeriod();
        _expectMarkRevert(
            slot0, period, abi.encodeWithSelector(IMarketplace.ProofWasSubmitted.selector, slot0, period)
        );
    }

    function test_RevertWhen_MarkFillPeriod() public {
        bytes32 rid = _request("later", defaultParams());
        _fill(rid, 0, host1);
        bytes32 slot = market.slotId(rid, 0);
        uint256 period = market.currentPeriod();
        _nextPeriod();
        _expectMarkRevert(
            slot, period, abi.encodeWithSelector(IMarketplace.ProofWasSubmitted.selector, slot, period)
        );
    }

    function test_RevertWhen_MarkPeriodBeforeFill() public {
        bytes32 rid = _request("later", defaultParams());
        uint256 before = market.currentPeriod();
        _nextPeriod();
        _fill(rid, 0, host1); // `before` is still inside its grace window
        bytes32 slot = market.slotId(rid, 0);
        _expectMarkRevert(
            slot, before, abi.encodeWithSelector(IMarketplace.PeriodBeforeFill.selector, before, before + 1)
        );
    }

    function test_RevertWhen_MarkTwice() public {
        uint256 period = market.currentPeriod();
        _nextPeriod();
        _mark(slot0, period);
        _expectMarkRevert(
            slot0, period, abi.encodeWithSelector(IMarketplace.ProofAlreadyMarked.selector, slot0, period)
        );
    }

    function test_RevertWhen_MarkNotRequired() public {
        RequestParams memory p = defaultParams();
        p.proofProbability = 3;
        bytes32 rid = _request("sparse", p);
        _fillAll(rid);
        bytes32 slot = market.slotId(rid, 0);
        for (uint256 i; i < 200; ++i) {
            _nextPeriod();
            (, bool required,) = market.challenge(slot, market.currentPeriod());
            if (!required) break;
        }
        uint256 period = market.currentPeriod();
        _nextPeriod();
        _expectMarkRevert(
            slot, period, abi.encodeWithSelector(IMarketplace.ProofNotRequired.selector, slot, period)
        );
    }
}
