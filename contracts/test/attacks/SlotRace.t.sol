// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {IMarketplace} from "../../src/IMarketplace.sol";
import {SlotState} from "../../src/MarketplaceTypes.sol";
import {vm} from "../utils/Vm.sol";
import {AttackTestBase} from "./AttackTestBase.sol";

/// @notice Two hosts race for the same slot with equally valid fills in the same block. The one
/// mined second reverts `SlotNotFree` before any proof is hashed or any token moves: it loses no
/// collateral, only the gas of one reverted call (measured here with cold storage, as in a fresh
/// transaction; on chain add 21,000 and the calldata).
contract SlotRaceAttackTest is AttackTestBase {
    function test_SlotRace_LoserLosesNoCollateralOnlyOneRevertedCall() public {
        bytes32 id = _request();
        bytes32 slot = market.slotId(id, 0);
        bytes32 root = fixtures[id].roots[0];
        bytes32[] memory path = _path(id, 0);
        bytes memory proof = _currentProof(id, 0);
        uint256 winnerBefore = token.balanceOf(host1);
        uint256 loserBefore = _wealth(_one(host2));

        vm.cool(address(market));
        vm.prank(host1);
        uint256 g = gasleft();
        market.fillSlot(id, 0, root, path, proof);
        uint256 winnerGas = g - gasleft();

        vm.cool(address(market));
        vm.cool(address(token));
        vm.prank(host2);
        g = gasleft();
        try market.fillSlot(id, 0, root, path, proof) {
            revert("the second fill of a slot must fail");
        } catch (bytes memory err) {
            uint256 loserGas = g - gasleft();
            vm.assertEq(
                err, abi.encodeWithSelector(IMarketplace.SlotNotFree.selector, slot, SlotState.Filled)
            );
            int256 loserNet = _net(_one(host2), loserBefore);
            vm.assertEq(loserNet, 0, "the loser keeps all its tokens");
            vm.assertEq(winnerBefore - token.balanceOf(host1), _collateral(id));
            vm.assertEq(market.getSlot(slot).host, host1);
            emit log_named_int("loser net, tokens", loserNet);
            emit log_named_uint("loser's reverted call, execution gas", loserGas);
            emit log_named_uint("winner's fill, execution gas", winnerGas);
            // The revert comes from the slot's state, read before the dataset path and the proof.
            vm.assertLt(loserGas, 15_000, "one cheap reverted call");
            vm.assertLt(loserGas * 5, winnerGas);
        }
    }
}
