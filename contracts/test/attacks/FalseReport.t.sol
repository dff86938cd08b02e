// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {IMarketplace} from "../../src/IMarketplace.sol";
import {ProofStatus, RequestParams} from "../../src/MarketplaceTypes.sol";
import {Periods} from "../../src/libraries/Periods.sol";
import {vm} from "../utils/Vm.sol";
import {AttackTestBase} from "./AttackTestBase.sol";

/// @notice A reporter marks proofs that were not missing, hoping for the reward (and to hurt the
/// host): a submitted proof, a period that required none, a period outside the marking window, a
/// period still running, the fill period, a period before the host's fill. Each is refused before
/// anything changes: the reporter's net is zero tokens (it pays the gas of one reverted call) and
/// the host keeps its whole collateral.
contract FalseReportAttackTest is AttackTestBase {
    bytes32 internal id;
    bytes32 internal slot0;

    function setUp() public override {
        super.setUp();
        id = _request();
        _fillAll(id);
        slot0 = market.slotId(id, 0);
    }

    /// Expects the report of `period` to revert with `err` and checks that nothing moved.
    function _refused(bytes32 slot, uint256 period, bytes memory err) internal {
        uint256 before = _wealth(_one(reporter));
        (, uint256 collateralBack) = market.slotPayout(slot);
        ProofStatus status = market.proofStatus(slot, period);
        vm.expectRevert(err);
        vm.prank(reporter);
        market.markProofMissing(slot, period);
        int256 net = _net(_one(reporter), before);
        vm.assertEq(net, 0);
        (, uint256 after_) = market.slotPayout(slot);
        vm.assertEq(after_, collateralBack, "host keeps its collateral");
        vm.assertEq(uint256(market.proofStatus(slot, period)), uint256(status));
        vm.assertEq(market.getSlot(slot).missedProofs, 0);
        emit log_named_int("false reporter net", net);
    }

    function test_FalseReport_ProofSubmitted() public {
        _nextPeriod();
        uint256 period = market.currentPeriod();
        _submit(id, 0, host1);
        _nextPeriod();
        _refused(
            slot0, period, abi.encodeWithSelector(IMarketplace.ProofWasSubmitted.selector, slot0, period)
        );
    }

    function test_FalseReport_ProofNotRequired() public {
        RequestParams memory p = defaultParams();
        p.proofProbability = 4;
        bytes32 sparse = _request("sparse", p);
        _fillAll(sparse);
        bytes32 slot = market.slotId(sparse, 0);
        _nextPeriod();
        (, bool required,) = market.challenge(slot, market.currentPeriod());
        while (required) {
            _nextPeriod();
            (, required,) = market.challenge(slot, market.currentPeriod());
        }
        uint256 period = market.currentPeriod();
        _nextPeriod();
        _refused(slot, period, abi.encodeWithSelector(IMarketplace.ProofNotRequired.selector, slot, period));
    }

    function test_FalseReport_OutsideTheWindow() public {
        _nextPeriod();
        uint256 period = market.currentPeriod(); // host1 really misses this one
        uint256 lastBlock = Periods.lastBlock(period, PERIOD) + GRACE;
        vm.roll(lastBlock + 1);
        _refused(
            slot0,
            period,
            abi.encodeWithSelector(IMarketplace.MarkingWindowClosed.selector, period, lastBlock)
        );
    }

    function test_FalseReport_BeforeThePeriodEnded() public {
        _nextPeriod();
        uint256 period = market.currentPeriod();
        _refused(slot0, period, abi.encodeWithSelector(IMarketplace.PeriodNotEnded.selector, period, period));
        // The host still proves in time; the early report changed nothing.
        _submit(id, 0, host1);
        vm.assertEq(uint256(market.proofStatus(slot0, period)), uint256(ProofStatus.Submitted));
    }

    function test_FalseReport_FillPeriod() public {
        uint256 period = market.currentPeriod(); // the fill's proof counts for it
        _nextPeriod();
        _refused(
            slot0, period, abi.encodeWithSelector(IMarketplace.ProofWasSubmitted.selector, slot0, period)
        );
    }

    function test_FalseReport_BeforeTheHostsFill() public {
        // host1 is evicted; host5 repairs; the periods host1 missed are not host5's.
        _nextPeriod();
        _missAndMark(id, 0, MAX_MISSED);
        uint256 missedByPredecessor = market.currentPeriod() - 1; // still inside its marking window
        _fill(id, 0, host5);
        uint256 filledPeriod = market.currentPeriod();
        _refused(
            slot0,
            missedByPredecessor,
            abi.encodeWithSelector(IMarketplace.PeriodBeforeFill.selector, missedByPredecessor, filledPeriod)
        );
    }
}
