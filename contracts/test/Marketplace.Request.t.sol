// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {IMarketplace} from "../src/IMarketplace.sol";
import {Marketplace} from "../src/Marketplace.sol";
import {
    ProofScheme,
    RequestInfo,
    RequestParams,
    RequestState,
    SlotInfo,
    SlotState
} from "../src/MarketplaceTypes.sol";
import {MarketplaceTestBase} from "./utils/MarketplaceTestBase.sol";
import {vm} from "./utils/Vm.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";

contract MarketplaceRequestTest is MarketplaceTestBase {
    function _expectedEscrow(RequestParams memory p) internal pure returns (uint256) {
        return p.pricePerBytePerSecond * p.slotSize * p.slots * p.duration;
    }

    function test_RequestStorage_EscrowsMaximumPrice() public {
        RequestParams memory p = _params("default", defaultParams());
        uint256 before = token.balanceOf(renter);
        vm.prank(renter);
        market.requestStorage(p);
        vm.assertEq(before - token.balanceOf(renter), _expectedEscrow(p));
        vm.assertEq(token.balanceOf(address(market)), _expectedEscrow(p));
    }

    function test_RequestStorage_EmitsStorageRequested() public {
        RequestParams memory p = _params("default", defaultParams());
        bytes32 id = market.nextRequestId(renter);
        vm.expectEmit(address(market));
        emit IMarketplace.StorageRequested(
            id,
            renter,
            p,
            _expectedEscrow(p),
            uint64(block.timestamp + p.expiry),
            uint64(block.timestamp + p.duration)
        );
        vm.prank(renter);
        bytes32 returned = market.requestStorage(p);
        vm.assertEq(returned, id);
    }

    function test_RequestStorage_StoresRequestAsNew() public {
        RequestParams memory p = _params("default", defaultParams());
        vm.prank(renter);
        bytes32 id = market.requestStorage(p);
        RequestInfo memory info = market.getRequest(id);
        vm.assertEq(info.renter, renter);
        vm.assertEq(uint256(info.state), uint256(RequestState.New));
        vm.assertEq(info.createdAt, block.timestamp);
        vm.assertEq(info.expiresAt, block.timestamp + p.expiry);
        vm.assertEq(info.endsAt, block.timestamp + p.duration);
        vm.assertEq(info.endedAt, 0);
        vm.assertEq(info.filledSlots, 0);
        vm.assertEq(keccak256(abi.encode(info.params)), keccak256(abi.encode(p)));
        vm.assertEq(uint256(market.requestState(id)), uint256(RequestState.New));
        vm.assertEq(market.slotCollateral(id), p.collateralPerByte * p.slotSize);
    }

    function test_RequestStorage_CreatesFreeSlots() public {
        bytes32 id = _request();
        for (uint256 i; i < 4; ++i) {
            SlotInfo memory s = market.getSlot(market.slotId(id, i));
            vm.assertEq(s.requestId, id);
            vm.assertEq(s.slotIndex, i);
            vm.assertEq(uint256(s.state), uint256(SlotState.Free));
            vm.assertEq(s.host, address(0));
        }
        vm.assertEq(uint256(market.slotState(market.slotId(id, 4))), uint256(SlotState.None));
    }

    function test_RequestStorage_ListsRequestsOfRenter() public {
        bytes32 first = _request();
        bytes32 second = _request("second", defaultParams());
        vm.assertTrue(first != second);
        vm.assertEq(market.renterRequestCount(renter), 2);
        bytes32[] memory all = market.renterRequests(renter, 0, 10);
        vm.assertEq(all.length, 2);
        vm.assertEq(all[0], first);
        vm.assertEq(all[1], second);
        bytes32[] memory page = market.renterRequests(renter, 1, 1);
        vm.assertEq(page.length, 1);
        vm.assertEq(page[0], second);
        vm.assertEq(market.renterRequests(renter, 2, 10).length, 0);
    }

    function test_NextRequestId_DependsOnRenterAndNonce() public {
        bytes32 a = market.nextRequestId(renter);
        vm.assertEq(a, keccak256(abi.encode(block.chainid, address(market), renter, uint256(0))));
        vm.assertTrue(a != market.nextRequestId(host1));
        _request();
        vm.assertTrue(market.nextRequestId(renter) != a);
    }

    function test_EscrowFor_MatchesPull() public view {
        RequestParams memory p = _params("default", defaultParams());
        vm.assertEq(market.escrowFor(p), _expectedEscrow(p));
    }

    function test_GetRequest_UnknownIsEmpty() public view {
        RequestInfo memory info = market.getRequest(keccak256("nope"));
        vm.assertEq(info.renter, address(0));
        vm.assertEq(uint256(info.state), uint256(RequestState.None));
        vm.assertEq(uint256(market.requestState(keccak256("nope"))), uint256(RequestState.None));
    }

    function test_RequestState_CancelledAfterExpiry() public {
        bytes32 id = _request();
        RequestInfo memory info = market.getRequest(id);
        vm.warp(info.expiresAt);
        vm.assertEq(uint256(market.requestState(id)), uint256(RequestState.New));
        vm.warp(info.expiresAt + 1);
        vm.assertEq(uint256(market.requestState(id)), uint256(RequestState.Cancelled));
        vm.assertEq(market.getRequest(id).endedAt, info.expiresAt);
        vm.assertEq(uint256(market.slotState(market.slotId(id, 0))), uint256(SlotState.Cancelled));
    }

    function test_RequestState_FinishedAtEnd() public {
        bytes32 id = _request();
        _fillAll(id);
        RequestInfo memory info = market.getRequest(id);
        vm.assertEq(uint256(info.state), uint256(RequestState.Started));
        vm.warp(info.endsAt - 1);
        vm.assertEq(uint256(market.requestState(id)), uint256(RequestState.Started));
        vm.warp(info.endsAt);
        vm.assertEq(uint256(market.requestState(id)), uint256(RequestState.Finished));
        vm.assertEq(uint256(market.slotState(market.slotId(id, 0))), uint256(SlotState.Finished));
    }

    // ------------------------------------------------------------------ bad input

    function _expectInvalid(RequestParams memory p, bytes memory err) internal {
        vm.expectRevert(err);
        vm.prank(renter);
        market.requestStorage(p);
    }

    function test_RevertWhen_ZeroSlots() public {
        RequestParams memory p = defaultParams();
        p.slots = 0;
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.ZeroSlots.selector));
    }

    function test_RevertWhen_TooManySlots() public {
        RequestParams memory p = defaultParams();
        p.slots = 257;
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.TooManySlots.selector, 257, 256));
    }

    function test_RevertWhen_MaxSlotLossNotBelowSlots() public {
        RequestParams memory p = defaultParams();
        p.maxSlotLoss = p.slots;
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.InvalidMaxSlotLoss.selector, 4, 4));
    }

    function test_RevertWhen_CellCountZero() public {
        RequestParams memory p = defaultParams();
        p.cellCount = 0;
        p.slotSize = 0;
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.InvalidCellCount.selector, 0));
    }

    function test_RevertWhen_CellCountNotWholeBlocks() public {
        RequestParams memory p = defaultParams();
        p.cellCount = 300;
        p.slotSize = 300 * 256;
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.InvalidCellCount.selector, 300));
    }

    function test_RevertWhen_CellCountTooLarge() public {
        RequestParams memory p = defaultParams();
        p.cellCount = uint64((1 << 40) + 256);
        p.slotSize = p.cellCount * 256;
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.InvalidCellCount.selector, p.cellCount));
    }

    function test_RevertWhen_SlotSizeMismatch() public {
        RequestParams memory p = defaultParams();
        p.slotSize = 65_535;
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.SlotSizeMismatch.selector, 65_535, 256));
    }

    function test_RevertWhen_DurationZero() public {
        RequestParams memory p = defaultParams();
        p.duration = 0;
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.InvalidDuration.selector, 0));
    }

    function test_RevertWhen_DurationTooLong() public {
        RequestParams memory p = defaultParams();
        p.duration = uint64(100 * 365 days + 1);
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.InvalidDuration.selector, p.duration));
    }

    function test_RevertWhen_ExpiryZero() public {
        RequestParams memory p = defaultParams();
        p.expiry = 0;
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.InvalidExpiry.selector, 0, p.duration));
    }

    function test_RevertWhen_ExpiryNotBeforeDuration() public {
        RequestParams memory p = defaultParams();
        p.expiry = p.duration;
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.InvalidExpiry.selector, p.duration, p.duration));
    }

    function test_RevertWhen_PriceZero() public {
        RequestParams memory p = defaultParams();
        p.pricePerBytePerSecond = 0;
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.ZeroPrice.selector));
    }

    function test_RevertWhen_CollateralZero() public {
        RequestParams memory p = defaultParams();
        p.collateralPerByte = 0;
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.ZeroCollateral.selector));
    }

    function test_RevertWhen_ProofProbabilityZero() public {
        RequestParams memory p = defaultParams();
        p.proofProbability = 0;
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.ZeroProofProbability.selector));
    }

    function test_RevertWhen_SamplesZero() public {
        RequestParams memory p = defaultParams();
        p.samples = 0;
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.InvalidSamples.selector, 0, 128));
    }

    function test_RevertWhen_TooManySamples() public {
        RequestParams memory p = defaultParams();
        p.samples = 129;
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.InvalidSamples.selector, 129, 128));
    }

    /// The default deployment has no compact verifiers (Marketplace.Compact.t.sol has).
    function test_RevertWhen_SchemeCompactWithoutVerifiers() public {
        RequestParams memory p = defaultParams();
        p.scheme = ProofScheme.Compact;
        p.compactRoot = bytes32(uint256(1));
        _expectInvalid(
            p, abi.encodeWithSelector(IMarketplace.SchemeNotSupported.selector, ProofScheme.Compact)
        );
    }

    function test_RevertWhen_CompactWithoutCompactRoot() public {
        RequestParams memory p = defaultParams();
        p.scheme = ProofScheme.Compact;
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.InvalidCompactRoot.selector));
    }

    function test_RevertWhen_DirectWithCompactRoot() public {
        RequestParams memory p = defaultParams();
        p.compactRoot = bytes32(uint256(1));
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.InvalidCompactRoot.selector));
    }

    function test_RevertWhen_CompactSlotOver1GiB() public {
        RequestParams memory p = defaultParams();
        p.scheme = ProofScheme.Compact;
        p.compactRoot = bytes32(uint256(1));
        p.cellCount = uint64(1 << 22) + 256;
        p.slotSize = p.cellCount * 256;
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.InvalidCellCount.selector, p.cellCount));
    }

    function test_RevertWhen_DatasetRootZero() public {
        RequestParams memory p = defaultParams();
        p.datasetRoot = bytes32(0);
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.ZeroDatasetRoot.selector));
    }

    function test_RevertWhen_ManifestIdZero() public {
        RequestParams memory p = defaultParams();
        p.manifestId = bytes32(0);
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.ZeroManifestId.selector));
    }

    function test_RevertWhen_CollateralOverflowsUint96() public {
        RequestParams memory p = defaultParams();
        p.collateralPerByte = uint256(type(uint96).max) / p.slotSize + 1;
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.CollateralOverflow.selector));
    }

    function test_RevertWhen_CollateralOverflowsUint256() public {
        RequestParams memory p = defaultParams();
        p.collateralPerByte = type(uint256).max;
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.CollateralOverflow.selector));
    }

    function test_RevertWhen_PriceOverflows() public {
        RequestParams memory p = defaultParams();
        p.pricePerBytePerSecond = type(uint256).max / p.slotSize;
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.PriceOverflow.selector));
    }

    function test_RevertWhen_PriceTimesSizeOverflows() public {
        RequestParams memory p = defaultParams();
        p.pricePerBytePerSecond = type(uint256).max;
        _expectInvalid(p, abi.encodeWithSelector(IMarketplace.PriceOverflow.selector));
    }

    function test_RevertWhen_EscrowNotApproved() public {
        RequestParams memory p = _params("default", defaultParams());
        vm.prank(renter);
        token.approve(address(market), 0);
        _expectInvalid(
            p,
            abi.encodeWithSelector(
                IERC20Errors.ERC20InsufficientAllowance.selector, address(market), 0, _expectedEscrow(p)
            )
        );
    }

    function test_RevertWhen_EscrowForInvalidParams() public {
        RequestParams memory p = defaultParams();
        p.slots = 0;
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.ZeroSlots.selector));
        market.escrowFor(p);
    }

    function testFuzz_RequestStorage_EscrowIsExactProduct(
        uint256 price,
        uint64 blocks,
        uint16 slots,
        uint64 duration
    ) public {
        price = _bound(price, 1, 1e12);
        uint64 cellCount = uint64(_bound(blocks, 1, 1 << 20)) * 256;
        slots = uint16(_bound(slots, 1, 256));
        duration = uint64(_bound(duration, 2, 10 * 365 days));
        RequestParams memory p = defaultParams();
        p.datasetRoot = keccak256("root");
        p.pricePerBytePerSecond = price;
        p.cellCount = cellCount;
        p.slotSize = cellCount * 256;
        p.slots = slots;
        p.maxSlotLoss = 0;
        p.duration = duration;
        p.expiry = 1;
        p.collateralPerByte = 1;
        uint256 escrow = uint256(price) * p.slotSize * slots * duration;
        token.faucet(renter, 1);
        vm.assume(escrow <= token.balanceOf(renter));
        uint256 before = token.balanceOf(renter);
        vm.prank(renter);
        market.requestStorage(p);
        vm.assertEq(before - token.balanceOf(renter), escrow);
    }
}
