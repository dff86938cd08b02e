// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {RequestParams} from "../../src/MarketplaceTypes.sol";
import {MarketplaceTestBase} from "../utils/MarketplaceTestBase.sol";
import {vm} from "../utils/Vm.sol";

/// @notice What every attack test shares: the request's money (P, C, S, W, R as in
/// docs/contracts.md, "Money"), token balances of a set of accounts taken before and after, and
/// time jumps. Each attack test writes the attacker's net out as `tokens out − tokens in` (plus, where
/// the attack saves the attacker a cost, the most it can save) and asserts it is ≤ 0, or ≤ what the
/// same accounts would have had by playing honestly.
abstract contract AttackTestBase is MarketplaceTestBase {
    uint256 internal constant BLOCK_TIME = 12;

    event log_named_uint(string key, uint256 val);
    event log_named_int(string key, int256 val);

    address internal sybil = address(0x5B1);
    address internal sybil2 = address(0x5B2);

    function setUp() public virtual override {
        super.setUp();
        address[2] memory extra = [sybil, sybil2];
        for (uint256 i; i < extra.length; ++i) {
            token.faucet(extra[i], 1_000_000 ether);
            vm.prank(extra[i]);
            token.approve(address(market), type(uint256).max);
        }
    }

    /// P: a slot's price per second.
    function _perSecond(bytes32 id) internal view returns (uint256) {
        RequestParams memory p = market.getRequest(id).params;
        return p.pricePerBytePerSecond * p.slotSize;
    }

    /// C: a slot's full collateral.
    function _collateral(bytes32 id) internal view returns (uint256) {
        return market.slotCollateral(id);
    }

    /// S: the slash of one missed proof.
    function _slashOf(bytes32 id) internal view returns (uint256) {
        return _collateral(id) * SLASH_BPS / 10_000;
    }

    /// W: the reporter's cut of one slash.
    function _rewardOf(bytes32 id) internal view returns (uint256) {
        return _slashOf(id) * REPORTER_BPS / 10_000;
    }

    /// R: the repair reward.
    function _repairOf(bytes32 id) internal view returns (uint256) {
        return _collateral(id) * REPAIR_BPS / 10_000;
    }

    /// Sum of the token balances of `accounts` (and their unwithdrawn reporter rewards).
    function _wealth(address[] memory accounts) internal view returns (uint256 sum) {
        for (uint256 i; i < accounts.length; ++i) {
            sum += token.balanceOf(accounts[i]) + market.rewardOf(accounts[i]);
        }
    }

    function _one(address a) internal pure returns (address[] memory list) {
        list = new address[](1);
        list[0] = a;
    }

    function _two(address a, address b) internal pure returns (address[] memory list) {
        list = new address[](2);
        list[0] = a;
        list[1] = b;
    }

    function _three(address a, address b, address c) internal pure returns (address[] memory list) {
        list = new address[](3);
        list[0] = a;
        list[1] = b;
        list[2] = c;
    }

    /// Net of `accounts` since `before` (a `_wealth`), signed.
    function _net(address[] memory accounts, uint256 before) internal view returns (int256) {
        return int256(_wealth(accounts)) - int256(before);
    }

    /// Moves to the first block whose timestamp is at least `t` (12 s blocks).
    function _warpTo(uint256 t) internal {
        if (t <= block.timestamp) return;
        uint256 blocks = (t - block.timestamp + BLOCK_TIME - 1) / BLOCK_TIME;
        vm.roll(block.number + blocks);
        vm.warp(block.timestamp + blocks * BLOCK_TIME);
    }

    function _toEnd(bytes32 id) internal {
        _warpTo(market.getRequest(id).endsAt);
    }

    /// (Every argument is computed before the prank: a prank, like an expectRevert, applies to the
    /// next external call, views included.)
    function _withdrawSlot(bytes32 id, uint256 index, address host) internal {
        bytes32 slot = market.slotId(id, index);
        vm.prank(host);
        market.withdrawSlot(slot);
    }

    function _withdrawReward(address account) internal {
        vm.prank(account);
        market.withdrawReward();
    }

    function _withdrawRenter(bytes32 id) internal {
        address renter_ = market.getRequest(id).renter;
        vm.prank(renter_);
        market.withdrawRequest(id);
    }

    /// Marks the proof of the period that just ended missing, by `by`.
    function _markLast(bytes32 id, uint256 index, address by) internal {
        uint256 period = market.currentPeriod() - 1;
        bytes32 slot = market.slotId(id, index);
        vm.prank(by);
        market.markProofMissing(slot, period);
    }

    function _assertNotPositive(int256 net, string memory what) internal pure {
        vm.assertTrue(net <= 0, what);
    }
}
