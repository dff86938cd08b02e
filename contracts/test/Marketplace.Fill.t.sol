// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {IMarketplace} from "../src/IMarketplace.sol";
import {RequestParams, RequestState, SlotInfo, SlotState} from "../src/MarketplaceTypes.sol";
import {MarketplaceTestBase} from "./utils/MarketplaceTestBase.sol";
import {SlotBuilder} from "./utils/SlotBuilder.sol";
import {vm} from "./utils/Vm.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";

contract MarketplaceFillTest is MarketplaceTestBase {
    bytes32 internal id;

    function setUp() public override {
        super.setUp();
        id = _request();
    }

    /// Arguments of a valid fill of slot `index` in the current period.
    function _args(uint256 index)
        internal
        view
        returns (bytes32 root, bytes32[] memory path, bytes memory proof)
    {
        return (fixtures[id].roots[index], _path(id, index), _currentProof(id, index));
    }

    function _expectFillRevert(
        uint256 index,
        bytes32 root,
        bytes32[] memory path,
        bytes memory proof,
        bytes memory err
    ) internal {
        vm.expectRevert(err);
        vm.prank(host1);
        market.fillSlot(id, index, root, path, proof);
    }

    function test_FillSlot_PullsCollateral() public {
        uint256 before = token.balanceOf(host1);
        _fill(id, 2, host1);
        vm.assertEq(before - token.balanceOf(host1), market.slotCollateral(id));
    }

    function test_FillSlot_RecordsHostAndRoot() public {
        vm.warp(block.timestamp + 100);
        _fill(id, 2, host1);
        SlotInfo memory s = market.getSlot(market.slotId(id, 2));
        vm.assertEq(uint256(s.state), uint256(SlotState.Filled));
        vm.assertEq(s.host, host1);
        vm.assertEq(s.filledAt, block.timestamp);
        vm.assertEq(s.filledPeriod, market.currentPeriod());
        vm.assertEq(s.slotRoot, fixtures[id].roots[2]);
        vm.assertEq(s.missedProofs, 0);
        vm.assertEq(market.getRequest(id).filledSlots, 1);
        vm.assertEq(uint256(market.requestState(id)), uint256(RequestState.New));
    }

    function test_FillSlot_EmitsSlotFilled() public {
        (bytes32 root, bytes32[] memory path, bytes memory proof) = _args(1);
        vm.expectEmit(address(market));
        emit IMarketplace.SlotFilled(id, market.slotId(id, 1), host1, 1, false);
        vm.prank(host1);
        market.fillSlot(id, 1, root, path, proof);
    }

    function test_FillSlot_ListsSlotsOfHost() public {
        _fill(id, 3, host1);
        _fill(id, 0, host1);
        vm.assertEq(market.hostSlotCount(host1), 2);
        bytes32[] memory slots = market.hostSlots(host1, 0, 10);
        vm.assertEq(slots.length, 2);
        vm.assertEq(slots[0], market.slotId(id, 3));
        vm.assertEq(slots[1], market.slotId(id, 0));
        vm.assertEq(market.hostSlots(host1, 1, 10).length, 1);
        vm.assertEq(market.hostSlots(host1, 5, 10).length, 0);
        vm.assertEq(market.hostSlotCount(host2), 0);
    }

    function test_FillSlot_LastSlotStartsRequest() public {
        _fill(id, 0, host1);
        _fill(id, 1, host2);
        _fill(id, 2, host3);
        (bytes32 root, bytes32[] memory path, bytes memory proof) = _args(3);
        vm.expectEmit(address(market));
        emit IMarketplace.RequestStarted(id);
        vm.prank(host4);
        market.fillSlot(id, 3, root, path, proof);
        vm.assertEq(uint256(market.requestState(id)), uint256(RequestState.Started));
    }

    function test_FillSlot_WorksForPaddedDatasetAndSlots() public {
        // 3 slots (dataset tree padded to 4) of 3 blocks (slot tree padded to 1024 cells).
        bytes32 tag = "padded";
        bytes32 rid = _request(tag, _shape(3, 1, 768, 7));
        for (uint256 i; i < 3; ++i) {
            _fill(rid, i, host1);
        }
        vm.assertEq(uint256(market.requestState(rid)), uint256(RequestState.Started));
    }

    function test_FillSlot_SingleSlotRequestHasEmptyPath() public {
        bytes32 rid = _request("single", _shape(1, 0, 256, 3));
        vm.assertEq(_path(rid, 0).length, 0);
        _fill(rid, 0, host1);
        vm.assertEq(uint256(market.requestState(rid)), uint256(RequestState.Started));
    }

    function test_FillSlot_RepairPaysRewardThroughCollateral() public {
        _fillAll(id);
        _nextPeriod();
        _missAndMark(id, 0, MAX_MISSED);
        bytes32 slot = market.slotId(id, 0);
        vm.assertEq(uint256(market.slotState(slot)), uint256(SlotState.Repair));
        uint256 collateral = market.slotCollateral(id);
        uint256 reward = collateral * REPAIR_BPS / 10_000;
        uint256 before = token.balanceOf(host5);
        (bytes32 root, bytes32[] memory path, bytes memory proof) = _args(0);
        vm.expectEmit(address(market));
        emit IMarketplace.SlotFilled(id, slot, host5, 0, true);
        vm.prank(host5);
        market.fillSlot(id, 0, root, path, proof);
        vm.assertEq(before - token.balanceOf(host5), collateral - reward);
        vm.assertEq(market.getRequest(id).repairs, 1);
        (, uint256 back) = market.slotPayout(slot);
        vm.assertEq(back, collateral);
    }

    // ------------------------------------------------------------------ bad input

    function test_RevertWhen_FillUnknownRequest() public {
        (bytes32 root, bytes32[] memory path, bytes memory proof) = _args(0);
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.UnknownRequest.selector, bytes32("nope")));
        vm.prank(host1);
        market.fillSlot("nope", 0, root, path, proof);
    }

    function test_RevertWhen_FillCancelledRequest() public {
        vm.warp(market.getRequest(id).expiresAt + 1);
        (bytes32 root, bytes32[] memory path, bytes memory proof) = _args(0);
        _expectFillRevert(
            0,
            root,
            path,
            proof,
            abi.encodeWithSelector(IMarketplace.RequestNotActive.selector, id, RequestState.Cancelled)
        );
    }

    function test_RevertWhen_FillFinishedRequest() public {
        _fillAll(id);
        _nextPeriod();
        _missAndMark(id, 0, MAX_MISSED);
        vm.warp(market.getRequest(id).endsAt);
        (bytes32 root, bytes32[] memory path, bytes memory proof) = _args(0);
        _expectFillRevert(
            0,
            root,
            path,
            proof,
            abi.encodeWithSelector(IMarketplace.RequestNotActive.selector, id, RequestState.Finished)
        );
    }

    function test_RevertWhen_FillSlotIndexOutOfRange() public {
        (bytes32 root, bytes32[] memory path, bytes memory proof) = _args(0);
        _expectFillRevert(
            4, root, path, proof, abi.encodeWithSelector(IMarketplace.InvalidSlotIndex.selector, 4, 4)
        );
    }

    function test_RevertWhen_FillFilledSlot() public {
        _fill(id, 0, host2);
        (bytes32 root, bytes32[] memory path, bytes memory proof) = _args(0);
        _expectFillRevert(
            0,
            root,
            path,
            proof,
            abi.encodeWithSelector(IMarketplace.SlotNotFree.selector, market.slotId(id, 0), SlotState.Filled)
        );
    }

    function test_RevertWhen_FillZeroSlotRoot() public {
        (, bytes32[] memory path, bytes memory proof) = _args(0);
        _expectFillRevert(
            0, bytes32(0), path, proof, abi.encodeWithSelector(IMarketplace.ZeroSlotRoot.selector)
        );
    }

    function test_RevertWhen_FillWrongSlotRoot() public {
        (, bytes32[] memory path, bytes memory proof) = _args(0);
        _expectFillRevert(
            0,
            fixtures[id].roots[1],
            path,
            proof,
            abi.encodeWithSelector(IMarketplace.InvalidSlotRootPath.selector)
        );
    }

    function test_RevertWhen_FillWrongPathNode() public {
        (bytes32 root, bytes32[] memory path, bytes memory proof) = _args(0);
        path[1] = bytes32(uint256(path[1]) ^ 1);
        _expectFillRevert(
            0, root, path, proof, abi.encodeWithSelector(IMarketplace.InvalidSlotRootPath.selector)
        );
    }

    function test_RevertWhen_FillPathTooShort() public {
        (bytes32 root, bytes32[] memory path, bytes memory proof) = _args(0);
        bytes32[] memory short = new bytes32[](1);
        short[0] = path[0];
        _expectFillRevert(
            0, root, short, proof, abi.encodeWithSelector(IMarketplace.InvalidSlotRootPath.selector)
        );
    }

    function test_RevertWhen_FillPathOfOtherIndex() public {
        // Slot 1's root and path, claimed for slot 0.
        (bytes32 root, bytes32[] memory path,) = _args(1);
        (,, bytes memory proof) = _args(0);
        _expectFillRevert(
            0, root, path, proof, abi.encodeWithSelector(IMarketplace.InvalidSlotRootPath.selector)
        );
    }

    function test_RevertWhen_FillWithTamperedProof() public {
        (bytes32 root, bytes32[] memory path, bytes memory proof) = _args(0);
        proof[7] ^= 0x01;
        _expectFillRevert(0, root, path, proof, abi.encodeWithSelector(IMarketplace.InvalidProof.selector));
    }

    function test_RevertWhen_FillWithProofOfPreviousPeriod() public {
        (bytes32 root, bytes32[] memory path, bytes memory proof) = _args(0);
        _nextPeriod();
        _expectFillRevert(0, root, path, proof, abi.encodeWithSelector(IMarketplace.InvalidProof.selector));
    }

    function test_RevertWhen_FillWithProofOfOtherSlot() public {
        (bytes32 root, bytes32[] memory path,) = _args(0);
        (,, bytes memory proof) = _args(1);
        _expectFillRevert(0, root, path, proof, abi.encodeWithSelector(IMarketplace.InvalidProof.selector));
    }

    function test_RevertWhen_FillWithoutCollateralApproval() public {
        vm.prank(host1);
        token.approve(address(market), 0);
        (bytes32 root, bytes32[] memory path, bytes memory proof) = _args(0);
        _expectFillRevert(
            0,
            root,
            path,
            proof,
            abi.encodeWithSelector(
                IERC20Errors.ERC20InsufficientAllowance.selector,
                address(market),
                0,
                market.slotCollateral(id)
            )
        );
    }

    // ------------------------------------------------------------------ helpers

    function _shape(uint16 slots, uint16 maxLoss, uint64 cellCount, uint16 samples)
        internal
        pure
        returns (RequestParams memory p)
    {
        p = defaultParams();
        p.slots = slots;
        p.maxSlotLoss = maxLoss;
        p.cellCount = cellCount;
        p.slotSize = cellCount * 256;
        p.samples = samples;
    }
}
