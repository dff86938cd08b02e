// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {IMarketplace} from "../../src/IMarketplace.sol";
import {RequestParams, RequestState} from "../../src/MarketplaceTypes.sol";
import {SlotBuilder} from "../utils/SlotBuilder.sol";
import {vm} from "../utils/Vm.sol";
import {AttackTestBase} from "./AttackTestBase.sol";

/// @notice A renter that withholds its data, lets its request expire half filled, or tries to back
/// out of a started one. Hosts lose nothing beyond gas: nobody can fill without the data (and then
/// nobody pays anything), a host that filled gets its collateral back with pay for every second it
/// held the slot, and a started request runs to its end.
contract RenterGriefingAttackTest is AttackTestBase {
    function test_RenterWithholdsData_NobodyFillsAndNobodyLoses() public {
        uint256 renterBefore = _wealth(_one(renter));
        bytes32 id = _request();
        // A host that never got the data can only guess: the dataset path or the proof fails, and
        // the failed fill pulls nothing.
        uint256 hostBefore = _wealth(_one(host1));
        SlotBuilder.Slot memory guess = SlotBuilder.build(keccak256("not the data"), 256);
        bytes32 seed = market.periodSeed(market.currentPeriod());
        bytes memory proof = SlotBuilder.proveChallenge(guess, seed, market.slotId(id, 0), 5);
        bytes32[] memory path = _path(id, 0);
        vm.expectRevert(IMarketplace.InvalidSlotRootPath.selector);
        vm.prank(host1);
        market.fillSlot(id, 0, SlotBuilder.root(guess), path, proof);
        // With the right root (public in the dataset tree) but without the cells, the proof fails.
        bytes32 root = fixtures[id].roots[0];
        vm.expectRevert(IMarketplace.InvalidProof.selector);
        vm.prank(host1);
        market.fillSlot(id, 0, root, path, proof);
        vm.assertEq(_net(_one(host1), hostBefore), 0);

        _warpTo(market.getRequest(id).expiresAt + 1);
        vm.assertEq(uint256(market.requestState(id)), uint256(RequestState.Cancelled));
        _withdrawRenter(id);
        int256 renterNet = _net(_one(renter), renterBefore);
        vm.assertEq(renterNet, 0, "the renter gets its escrow back");
        emit log_named_int("host net", _net(_one(host1), hostBefore));
        emit log_named_int("renter net", renterNet);
    }

    function test_RenterLetsRequestExpire_HostsGetCollateralAndPayForTheirTime() public {
        RequestParams memory p = defaultParams();
        p.expiry = 600; // five periods
        uint256 renterBefore = _wealth(_one(renter));
        bytes32 id = _request("expire", p);
        address[3] memory hs = [host1, host2, host3];
        uint256[3] memory before;
        for (uint256 i; i < 3; ++i) {
            before[i] = _wealth(_one(hs[i]));
        }
        uint256 filledAt = block.timestamp;
        for (uint256 i; i < 3; ++i) {
            _fill(id, i, hs[i]); // the renter serves three slots and withholds the fourth
        }
        // The hosts prove every period until the expiry (a New request is proven like a started one).
        uint256 expiresAt = market.getRequest(id).expiresAt;
        _nextPeriod();
        while (block.timestamp <= expiresAt) {
            for (uint256 i; i < 3; ++i) {
                _submit(id, i, hs[i]);
            }
            _nextPeriod();
        }
        vm.assertEq(uint256(market.requestState(id)), uint256(RequestState.Cancelled));
        for (uint256 i; i < 3; ++i) {
            _withdrawSlot(id, i, hs[i]);
        }
        _withdrawRenter(id);

        uint256 pay = _perSecond(id) * (expiresAt - filledAt);
        for (uint256 i; i < 3; ++i) {
            int256 net = _net(_one(hs[i]), before[i]);
            vm.assertEq(net, int256(pay), "collateral back plus pay until the expiry");
            emit log_named_int("host net", net);
        }
        int256 renterNet = int256(_wealth(_one(renter))) - int256(renterBefore);
        vm.assertEq(renterNet, -int256(3 * pay), "the renter pays only for the time served");
        emit log_named_int("renter net", renterNet);
    }

    function test_RenterBacksOutOfStartedRequest_ItRunsToTheEnd() public {
        bytes32 id = _request();
        uint256 before = _wealth(_one(host1));
        uint256 filledAt = block.timestamp;
        _fillAll(id);
        // There is no cancel; the renter cannot take its escrow back, nor shorten the request.
        vm.expectRevert(
            abi.encodeWithSelector(IMarketplace.RequestNotEnded.selector, id, RequestState.Started)
        );
        vm.prank(renter);
        market.withdrawRequest(id);
        uint256 maxExtra = market.MAX_DURATION() - market.getRequest(id).params.duration;
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.InvalidExtension.selector, 0, maxExtra));
        vm.prank(renter);
        market.extendRequest(id, 0);
        _toEnd(id);
        _withdrawSlot(id, 0, host1);
        int256 net = _net(_one(host1), before);
        vm.assertEq(net, int256(_perSecond(id) * (market.getRequest(id).endsAt - filledAt)));
        emit log_named_int("host net, whole duration", net);
    }
}
