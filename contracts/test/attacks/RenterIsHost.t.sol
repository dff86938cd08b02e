// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {RequestState} from "../../src/MarketplaceTypes.sol";
import {vm} from "../utils/Vm.sol";
import {AttackTestBase} from "./AttackTestBase.sol";

/// @notice The renter hosts slots of its own request (under its own and other accounts). It pays
/// itself for its own slots, and whatever its hosts forfeit comes back to it as the renter, so its
/// accounts together can only lose: the honest hosts' pay and collateral are never touched.
///
/// The second test shows the one lever this gives it: by holding more than maxSlotLoss slots and
/// letting them be evicted (marking them itself), the renter fails its own started request early and
/// gets back the escrow of the unused time, at no cost beyond gas: in effect the cancellation of a
/// started request that a plain renter cannot do. Honest hosts still get their collateral back and
/// pay for every second they held their slot; they lose only the income they expected after that.
contract RenterIsHostAttackTest is AttackTestBase {
    function test_RenterIsHost_SelfHostingNetsExactlyThePayOfTheOthers() public {
        address[] memory own = _one(renter);
        uint256 before = _wealth(own);
        bytes32 id = _request();
        uint256 filledAt = block.timestamp;
        _fill(id, 0, renter);
        _fill(id, 1, host2);
        _fill(id, 2, host3);
        _fill(id, 3, host4);
        _toEnd(id);
        _withdrawSlot(id, 0, renter);
        _withdrawRenter(id);
        int256 net = _net(own, before);
        uint256 othersPay = 3 * _perSecond(id) * (market.getRequest(id).endsAt - filledAt);
        vm.assertEq(net, -int256(othersPay));
        emit log_named_int("renter net", net);
    }

    function test_RenterIsHost_FailingItsOwnRequestRecoversOnlyTheUnusedEscrow() public {
        // maxSlotLoss is 1: the renter holds slots 0 and 1 (itself and a second account) and marks
        // its own misses through a third account.
        address[] memory own = _three(renter, sybil, sybil2);
        uint256 before = _wealth(own);
        uint256 honestBefore = _wealth(_two(host3, host4));
        bytes32 id = _request();
        uint256 filledAt = block.timestamp;
        _fill(id, 0, renter);
        _fill(id, 1, sybil);
        _fill(id, 2, host3);
        _fill(id, 3, host4);
        _nextPeriod();
        for (uint256 i; i < MAX_MISSED; ++i) {
            _nextPeriod();
            _submit(id, 2, host3);
            _submit(id, 3, host4);
            _markLast(id, 0, sybil2);
            _markLast(id, 1, sybil2);
        }
        vm.assertEq(uint256(market.requestState(id)), uint256(RequestState.Failed));
        uint256 failedAt = block.timestamp;
        _withdrawSlot(id, 2, host3);
        _withdrawSlot(id, 3, host4);
        _withdrawRenter(id);
        _withdrawReward(sybil2);

        uint256 honestPay = 2 * _perSecond(id) * (failedAt - filledAt);
        int256 honestNet = _net(_two(host3, host4), honestBefore);
        vm.assertEq(honestNet, int256(honestPay), "honest hosts: collateral back and paid for their time");
        int256 net = _net(own, before);
        vm.assertEq(net, -int256(honestPay), "the renter's accounts pay exactly the time served");
        emit log_named_int("renter's accounts net", net);
        emit log_named_int("honest hosts net", honestNet);
        emit log_named_uint("duration left unpaid (s)", market.getRequest(id).endsAt - failedAt);
    }
}
