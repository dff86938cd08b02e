// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {IMarketplace} from "../../src/IMarketplace.sol";
import {SlotState} from "../../src/MarketplaceTypes.sol";
import {vm} from "../utils/Vm.sol";
import {AttackTestBase} from "./AttackTestBase.sol";

/// @notice A host fills a slot (it had the data for the fill's proof) and then never proves: it
/// squats the slot, storing nothing. After maxMissed marks it is evicted and loses its whole
/// collateral C, is paid nothing, and the slot goes to repair. Even crediting it the full price for
/// the storage it did not pay for while it squatted, it loses: C > P × the time to eviction.
contract NeverProveAttackTest is AttackTestBase {
    function test_NeverProve_EvictedAndLosesItsCollateral() public {
        uint256 renterBefore = _wealth(_one(renter));
        bytes32 id = _request();
        bytes32 slot = market.slotId(id, 0);
        uint256 before = _wealth(_one(host1));
        uint256 filledAt = block.timestamp;
        _fillAll(id);
        _nextPeriod();
        _missAndMark(id, 0, MAX_MISSED);
        uint256 heldFor = block.timestamp - filledAt;
        vm.assertEq(uint256(market.slotState(slot)), uint256(SlotState.Repair));

        _toEnd(id);
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.NotSlotHost.selector, host1, address(0)));
        vm.prank(host1);
        market.withdrawSlot(slot);
        _withdrawRenter(id);

        uint256 c = _collateral(id);
        int256 net = _net(_one(host1), before);
        vm.assertEq(net, -int256(c), "the squatter loses C");
        uint256 saved = _perSecond(id) * heldFor;
        emit log_named_int("squatter net", net);
        emit log_named_uint("storage it skipped, at the full price", saved);
        _assertNotPositive(net + int256(saved), "squatting does not pay");
        // The renter was not charged for the squatted time and got C − maxMissed·W of the collateral.
        int256 renterNet = _net(_one(renter), renterBefore);
        uint256 paidToOthers = 3 * _perSecond(id) * (market.getRequest(id).endsAt - filledAt);
        vm.assertEq(renterNet, int256(c - MAX_MISSED * _rewardOf(id)) - int256(paidToOthers));
    }
}
