// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {vm} from "../utils/Vm.sol";
import {AttackTestBase} from "./AttackTestBase.sol";

/// @notice A host skips proofs and reports itself through a second account, hoping to get its slash
/// back as the reporter's reward. The reward W is a share of the slash S (W < S), so the pair loses
/// S − W per mark; reporting itself up to an eviction loses its collateral less maxMissed·W, and all
/// its pay.
contract SelfReportAttackTest is AttackTestBase {
    bytes32 internal id;

    function setUp() public override {
        super.setUp();
        id = _request();
    }

    function test_SelfReport_SecondAccountGetsBackLessThanTheSlash() public {
        uint256 before = _wealth(_two(host1, sybil));
        uint256 filledAt = block.timestamp;
        _fillAll(id);
        _nextPeriod(); // the fill period is covered by the fill's proof
        _nextPeriod(); // host1 skipped the proof of the period before
        _markLast(id, 0, sybil);
        _toEnd(id);
        _withdrawSlot(id, 0, host1);
        _withdrawReward(sybil);

        int256 net = _net(_two(host1, sybil), before);
        int256 honest = int256(_perSecond(id) * (market.getRequest(id).endsAt - filledAt));
        // host1: P·(end − fill) + C − S back for C brought; sybil: W.
        vm.assertEq(net, honest - int256(_slashOf(id)) + int256(_rewardOf(id)));
        emit log_named_int("pair net", net);
        emit log_named_int("honest net", honest);
        emit log_named_int("gain over honest (W - S)", net - honest);
        _assertNotPositive(net - honest, "self-reporting loses S - W");
    }

    function test_SelfReport_UpToEvictionLosesCollateralAndPay() public {
        uint256 before = _wealth(_two(host1, sybil));
        uint256 filledAt = block.timestamp;
        _fillAll(id);
        _nextPeriod();
        for (uint256 i; i < MAX_MISSED; ++i) {
            _nextPeriod();
            _markLast(id, 0, sybil);
        }
        vm.assertEq(market.getSlot(market.slotId(id, 0)).host, address(0)); // evicted
        _toEnd(id);
        _withdrawReward(sybil);

        int256 net = _net(_two(host1, sybil), before);
        int256 honest = int256(_perSecond(id) * (market.getRequest(id).endsAt - filledAt));
        // host1 brought C and gets nothing; sybil: maxMissed·W.
        vm.assertEq(net, -int256(_collateral(id)) + int256(MAX_MISSED * _rewardOf(id)));
        emit log_named_int("pair net (-C + maxMissed*W)", net);
        emit log_named_int("gain over honest", net - honest);
        _assertNotPositive(net, "self-reporting to eviction loses the collateral");
        _assertNotPositive(net - honest, "and all the pay");
    }
}
