// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {vm} from "../utils/Vm.sol";
import {AttackTestBase} from "./AttackTestBase.sol";

/// @notice A host gets itself evicted (its second account reporting every miss) so that the second
/// account can repair the slot and collect the repair reward R. The pair brought C + (C − R), gets
/// back C + its pay after the refill and maxMissed·W: net −C + R + maxMissed·W + pay after the refill.
/// The constructor keeps R + maxMissed·W ≤ C, so the pair does worse than simply staying honest, by
/// at least the pay of the time between the fill and the refill.
contract SybilRepairAttackTest is AttackTestBase {
    function test_SybilRepair_EvictedHostsSecondAccountDoesNotProfit() public {
        bytes32 id = _request();
        address[] memory pair = _two(host1, sybil);
        uint256 before = _wealth(pair);
        uint256 filledAt = block.timestamp;
        _fillAll(id);
        _nextPeriod();
        for (uint256 i; i < MAX_MISSED; ++i) {
            _nextPeriod();
            _markLast(id, 0, sybil);
        }
        vm.assertEq(market.getSlot(market.slotId(id, 0)).host, address(0));
        uint256 refilledAt = block.timestamp;
        _fill(id, 0, sybil); // the repair
        _toEnd(id);
        _withdrawSlot(id, 0, sybil);
        _withdrawReward(sybil);

        uint256 endsAt = market.getRequest(id).endsAt;
        uint256 perSecond = _perSecond(id);
        int256 net = _net(pair, before);
        vm.assertEq(
            net,
            -int256(_collateral(id)) + int256(_repairOf(id) + MAX_MISSED * _rewardOf(id))
                + int256(perSecond * (endsAt - refilledAt))
        );
        int256 honest = int256(perSecond * (endsAt - filledAt));
        emit log_named_int("pair net", net);
        emit log_named_int("honest net", honest);
        emit log_named_int("gain over honest", net - honest);
        _assertNotPositive(net - honest, "churning a slot through a second account does not pay");
        vm.assertLe(_repairOf(id) + MAX_MISSED * _rewardOf(id), _collateral(id));
    }
}
