// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {IMarketplace} from "../src/IMarketplace.sol";
import {Marketplace} from "../src/Marketplace.sol";
import {
    MarketplaceConfig,
    ProofStatus,
    RequestInfo,
    RequestParams,
    RequestState
} from "../src/MarketplaceTypes.sol";
import {MarketplaceTestBase} from "./utils/MarketplaceTestBase.sol";
import {vm} from "./utils/Vm.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";

/// @notice `extendRequest` and `extensionCost`: the renter buys more time for a running request.
contract MarketplaceExtendTest is MarketplaceTestBase {
    uint256 internal constant MAX_DURATION = 100 * 365 days;

    bytes32 internal id;
    RequestParams internal p;
    uint256 internal collateral;
    uint256[4] internal hostBefore;
    uint256[4] internal filledAt;

    function setUp() public override {
        super.setUp();
        id = _request();
        p = market.getRequest(id).params;
        collateral = market.slotCollateral(id);
    }

    /// P: one slot's price per second.
    function _perSecond() internal view returns (uint256) {
        return p.pricePerBytePerSecond * p.slotSize;
    }

    function _cost(uint256 extra) internal view returns (uint256) {
        return _perSecond() * p.slots * extra;
    }

    function _extend(uint256 extra) internal {
        vm.prank(renter);
        market.extendRequest(id, extra);
    }

    function _expectExtendRevert(address caller, uint256 extra, bytes memory err) internal {
        vm.expectRevert(err);
        vm.prank(caller);
        market.extendRequest(id, extra);
    }

    function _withdrawSlot(uint256 index, address host) internal returns (uint256) {
        uint256 before = token.balanceOf(host);
        vm.prank(host);
        market.withdrawSlot(_slotId(id, index));
        return token.balanceOf(host) - before;
    }

    function _withdrawRenter() internal returns (uint256) {
        uint256 before = token.balanceOf(renter);
        vm.prank(renter);
        market.withdrawRequest(id);
        return token.balanceOf(renter) - before;
    }

    // ------------------------------------------------------------------ what it changes

    function test_ExtendRequest_MovesEndAndDurationPullsPayment() public {
        RequestInfo memory before = market.getRequest(id);
        uint256 renterBefore = token.balanceOf(renter);
        uint256 marketBefore = token.balanceOf(address(market));
        vm.warp(block.timestamp + 1 hours);
        _extend(7 days);
        RequestInfo memory info = market.getRequest(id);
        vm.assertEq(info.endsAt, before.endsAt + 7 days);
        vm.assertEq(info.params.duration, p.duration + 7 days);
        vm.assertEq(info.createdAt, before.createdAt);
        vm.assertEq(info.expiresAt, before.expiresAt);
        vm.assertEq(uint256(info.state), uint256(RequestState.New));
        vm.assertEq(renterBefore - token.balanceOf(renter), _cost(7 days));
        vm.assertEq(token.balanceOf(address(market)) - marketBefore, _cost(7 days));
    }

    function test_ExtendRequest_EmitsRequestExtended() public {
        uint64 endsAt = market.getRequest(id).endsAt;
        vm.expectEmit(address(market));
        emit IMarketplace.RequestExtended(id, 1 days, endsAt + 1 days, _cost(1 days));
        _extend(1 days);
    }

    function test_ExtendRequest_TwiceAddsUp() public {
        uint64 endsAt = market.getRequest(id).endsAt;
        uint256 renterBefore = token.balanceOf(renter);
        _extend(1 days);
        _extend(2 days);
        vm.assertEq(market.getRequest(id).endsAt, endsAt + 3 days);
        vm.assertEq(market.getRequest(id).params.duration, p.duration + 3 days);
        vm.assertEq(renterBefore - token.balanceOf(renter), _cost(3 days));
    }

    function test_ExtendRequest_UpToMaxDuration() public {
        uint256 maxExtra = MAX_DURATION - p.duration;
        _extend(maxExtra);
        vm.assertEq(market.getRequest(id).params.duration, MAX_DURATION);
        vm.assertEq(market.getRequest(id).endsAt, market.getRequest(id).createdAt + MAX_DURATION);
    }

    function test_ExtensionCost_MatchesPull() public {
        uint256 cost = market.extensionCost(id, 5 days);
        vm.assertEq(cost, _cost(5 days));
        uint256 before = token.balanceOf(renter);
        _extend(5 days);
        vm.assertEq(before - token.balanceOf(renter), cost);
    }

    function testFuzz_ExtendRequest_PaymentIsExactProduct(uint256 extra, uint256 wait) public {
        extra = _bound(extra, 1, MAX_DURATION - p.duration);
        vm.warp(block.timestamp + _bound(wait, 0, p.expiry));
        uint256 cost = _cost(extra);
        vm.assume(cost <= token.balanceOf(renter));
        uint64 endsAt = market.getRequest(id).endsAt;
        uint256 before = token.balanceOf(renter);
        _extend(extra);
        vm.assertEq(before - token.balanceOf(renter), cost);
        vm.assertEq(market.getRequest(id).endsAt, endsAt + extra);
    }

    // ------------------------------------------------------------------ money at the end

    /// Hosts fill at different times, the renter extends a Started request, the hosts prove past
    /// the original end and are paid up to the new one; the renter pays exactly what they earned.
    function test_ExtendRequest_StartedHostsPaidUntilNewEnd() public {
        address[4] memory hs = [host1, host2, host3, host4];
        uint256 renterBefore = token.balanceOf(renter) + _cost(p.duration); // before the escrow
        uint256 created = market.getRequest(id).createdAt;
        for (uint256 i; i < 4; ++i) {
            hostBefore[i] = token.balanceOf(hs[i]);
            vm.warp(created + 1000 * (i + 1));
            filledAt[i] = block.timestamp;
            _fill(id, i, hs[i]);
        }
        uint256 oldEnd = market.getRequest(id).endsAt;
        _extend(10 days);

        // Past the old end the request still runs: proofs are due and accepted, misses marked.
        vm.warp(oldEnd + 1);
        _nextPeriod();
        vm.assertEq(uint256(market.requestState(id)), uint256(RequestState.Started));
        uint256 period = market.currentPeriod();
        for (uint256 i; i < 3; ++i) {
            vm.assertTrue(market.isProofRequired(_slotId(id, i)));
            _submit(id, i, hs[i]);
            vm.assertEq(uint256(market.proofStatus(_slotId(id, i), period)), uint256(ProofStatus.Submitted));
        }
        _nextPeriod();
        vm.prank(reporter);
        market.markProofMissing(_slotId(id, 3), period);

        // The old end is no end: withdrawals still wait for the new one.
        vm.expectRevert(
            abi.encodeWithSelector(IMarketplace.RequestNotEnded.selector, id, RequestState.Started)
        );
        vm.prank(host1);
        market.withdrawSlot(_slotId(id, 0));

        uint256 end = oldEnd + 10 days;
        vm.warp(end);
        vm.assertEq(uint256(market.requestState(id)), uint256(RequestState.Finished));
        uint256 slash = collateral * SLASH_BPS / 10_000;
        uint256 paid;
        for (uint256 i; i < 4; ++i) {
            uint256 pay = _perSecond() * (end - filledAt[i]);
            uint256 back = i == 3 ? collateral - slash : collateral;
            vm.assertEq(_withdrawSlot(i, hs[i]), pay + back);
            vm.assertEq(token.balanceOf(hs[i]) + collateral, hostBefore[i] + pay + back);
            paid += pay;
        }
        uint256 forfeited = slash - slash * REPORTER_BPS / 10_000;
        vm.assertEq(_withdrawRenter(), _cost(p.duration + 10 days) - paid + forfeited);
        vm.assertEq(token.balanceOf(renter), renterBefore - paid + forfeited);
        vm.prank(reporter);
        market.withdrawReward();
        vm.assertEq(token.balanceOf(address(market)), 0);
    }

    /// An eviction and a repair before the extension, another eviction after it: the refund keeps
    /// the formula of docs/contracts.md with the extended escrow, and nothing stays behind.
    function test_ExtendRequest_RefundAfterExtensionWithEvictions() public {
        _fillAll(id);
        uint256 startedAt = block.timestamp;
        _nextPeriod();
        _missAndMark(id, 0, MAX_MISSED); // host1 evicted
        uint256 repairedAt = block.timestamp;
        _fill(id, 0, host5);
        _extend(3 days);
        _nextPeriod();
        _missAndMark(id, 1, MAX_MISSED); // host2 evicted after the extension
        vm.assertEq(uint256(market.requestState(id)), uint256(RequestState.Started));

        uint256 end = market.getRequest(id).endsAt;
        vm.assertEq(end, startedAt + p.duration + 3 days); // filled in the creation block
        vm.warp(end);
        uint256 host5Pay = _perSecond() * (end - repairedAt);
        vm.assertEq(_withdrawSlot(0, host5), host5Pay + collateral);
        uint256 held = _perSecond() * (end - startedAt);
        vm.assertEq(_withdrawSlot(2, host3), held + collateral);
        vm.assertEq(_withdrawSlot(3, host4), held + collateral);
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.NotSlotHost.selector, host2, address(0)));
        vm.prank(host2);
        market.withdrawSlot(_slotId(id, 1));

        uint256 slash = collateral * SLASH_BPS / 10_000;
        uint256 reward = slash * REPORTER_BPS / 10_000;
        uint256 repairReward = collateral * REPAIR_BPS / 10_000;
        uint256 escrow = _cost(p.duration + 3 days);
        uint256 forfeited = 2 * (collateral - MAX_MISSED * reward) - repairReward;
        uint256 refund = escrow - host5Pay - 2 * held + forfeited;
        vm.assertEq(market.renterRefund(id), refund);
        vm.assertEq(_withdrawRenter(), refund);
        vm.prank(reporter);
        market.withdrawReward();
        vm.assertEq(market.rewardOf(reporter), 0);
        vm.assertEq(token.balanceOf(address(market)), 0);
    }

    /// Extending a New request that is never filled: at expiry the whole escrow, extension
    /// included, goes back, less the pay of the one host that filled.
    function test_ExtendRequest_CancelledRefundsExtension() public {
        _extend(2 days);
        vm.warp(block.timestamp + 600);
        uint256 filled = block.timestamp;
        _fill(id, 1, host2);
        uint256 expiresAt = market.getRequest(id).expiresAt;
        vm.warp(expiresAt + 1);
        vm.assertEq(uint256(market.requestState(id)), uint256(RequestState.Cancelled));
        uint256 pay = _perSecond() * (expiresAt - filled);
        vm.assertEq(_withdrawRenter(), _cost(p.duration + 2 days) - pay);
        vm.assertEq(_withdrawSlot(1, host2), pay + collateral);
        vm.assertEq(token.balanceOf(address(market)), 0);
    }

    // ------------------------------------------------------------------ reverts

    function test_RevertWhen_ExtendUnknownRequest() public {
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.UnknownRequest.selector, bytes32("nope")));
        vm.prank(renter);
        market.extendRequest("nope", 1 days);
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.UnknownRequest.selector, bytes32("nope")));
        market.extensionCost("nope", 1 days);
    }

    function test_RevertWhen_ExtendByOtherAccount() public {
        _expectExtendRevert(
            host1, 1 days, abi.encodeWithSelector(IMarketplace.NotRenter.selector, host1, renter)
        );
    }

    function test_RevertWhen_ExtendByZeroSeconds() public {
        uint256 maxExtra = MAX_DURATION - p.duration;
        bytes memory err = abi.encodeWithSelector(IMarketplace.InvalidExtension.selector, 0, maxExtra);
        _expectExtendRevert(renter, 0, err);
        vm.expectRevert(err);
        market.extensionCost(id, 0);
    }

    function test_RevertWhen_ExtendPastMaxDuration() public {
        uint256 maxExtra = MAX_DURATION - p.duration;
        bytes memory err =
            abi.encodeWithSelector(IMarketplace.InvalidExtension.selector, maxExtra + 1, maxExtra);
        _expectExtendRevert(renter, maxExtra + 1, err);
        vm.expectRevert(err);
        market.extensionCost(id, maxExtra + 1);
        // No overflow on absurd values either.
        _expectExtendRevert(
            renter,
            type(uint256).max,
            abi.encodeWithSelector(IMarketplace.InvalidExtension.selector, type(uint256).max, maxExtra)
        );
    }

    function test_RevertWhen_ExtendedEscrowOverflows() public {
        // A price whose escrow fits 256 bits for the duration asked but not for a day more; no
        // token holds that much, so this market's token takes any transfer.
        Marketplace free = new Marketplace(_configWithToken(address(new AcceptingToken())));
        RequestParams memory q = _params("big", defaultParams());
        q.duration = 2 days;
        q.pricePerBytePerSecond = type(uint256).max / (uint256(q.slotSize) * q.slots * q.duration);
        vm.prank(renter);
        bytes32 big = free.requestStorage(q);
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.PriceOverflow.selector));
        vm.prank(renter);
        free.extendRequest(big, 1 days);
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.PriceOverflow.selector));
        free.extensionCost(big, 1 days);
    }

    function _configWithToken(address t) internal view returns (MarketplaceConfig memory cfg) {
        cfg = defaultConfig();
        cfg.token = t;
    }

    function test_RevertWhen_ExtendFinished() public {
        _fillAll(id);
        vm.warp(market.getRequest(id).endsAt);
        _expectExtendRevert(
            renter,
            1 days,
            abi.encodeWithSelector(IMarketplace.RequestNotActive.selector, id, RequestState.Finished)
        );
        vm.expectRevert(
            abi.encodeWithSelector(IMarketplace.RequestNotActive.selector, id, RequestState.Finished)
        );
        market.extensionCost(id, 1 days);
    }

    function test_RevertWhen_ExtendCancelled() public {
        vm.warp(market.getRequest(id).expiresAt + 1);
        _expectExtendRevert(
            renter,
            1 days,
            abi.encodeWithSelector(IMarketplace.RequestNotActive.selector, id, RequestState.Cancelled)
        );
    }

    function test_RevertWhen_ExtendFailed() public {
        _fillAll(id);
        _nextPeriod();
        _missAndMark(id, 0, MAX_MISSED);
        _missAndMark(id, 1, MAX_MISSED);
        vm.assertEq(uint256(market.requestState(id)), uint256(RequestState.Failed));
        _expectExtendRevert(
            renter,
            1 days,
            abi.encodeWithSelector(IMarketplace.RequestNotActive.selector, id, RequestState.Failed)
        );
    }

    function test_RevertWhen_ExtendWithdrawn() public {
        vm.warp(market.getRequest(id).expiresAt + 1);
        _withdrawRenter();
        _expectExtendRevert(
            renter,
            1 days,
            abi.encodeWithSelector(IMarketplace.RequestNotActive.selector, id, RequestState.Cancelled)
        );
    }

    function test_RevertWhen_ExtensionNotApproved() public {
        vm.prank(renter);
        token.approve(address(market), 0);
        _expectExtendRevert(
            renter,
            1 days,
            abi.encodeWithSelector(
                IERC20Errors.ERC20InsufficientAllowance.selector, address(market), 0, _cost(1 days)
            )
        );
    }

    function test_RevertWhen_ExtensionUnaffordable() public {
        uint256 balance = token.balanceOf(renter);
        vm.prank(renter);
        token.transfer(host1, balance);
        _expectExtendRevert(
            renter,
            1 days,
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, renter, 0, _cost(1 days))
        );
        // Nothing changed.
        vm.assertEq(market.getRequest(id).params.duration, p.duration);
    }
}

/// @notice A token whose `transferFrom` always succeeds and moves nothing: lets a test open a
/// request with an escrow no real balance could cover.
contract AcceptingToken {
    function transferFrom(address, address, uint256) external pure returns (bool) {
        return true;
    }
}
