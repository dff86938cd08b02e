// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {IMarketplace} from "../src/IMarketplace.sol";
import {RequestInfo, RequestParams, RequestState, SlotState} from "../src/MarketplaceTypes.sol";
import {MarketplaceTestBase} from "./utils/MarketplaceTestBase.sol";
import {vm} from "./utils/Vm.sol";

contract MarketplacePayoutsTest is MarketplaceTestBase {
    bytes32 internal id;
    RequestParams internal p;
    uint256 internal collateral;

    function setUp() public override {
        super.setUp();
        id = _request();
        p = market.getRequest(id).params;
        collateral = market.slotCollateral(id);
    }

    function _perSecond() internal view returns (uint256) {
        return p.pricePerBytePerSecond * p.slotSize;
    }

    function _escrow() internal view returns (uint256) {
        return _perSecond() * p.slots * p.duration;
    }

    function _withdrawSlot(uint256 index, address host) internal returns (uint256 amount) {
        uint256 before = token.balanceOf(host);
        vm.prank(host);
        market.withdrawSlot(_slotId(id, index));
        return token.balanceOf(host) - before;
    }

    function _withdrawRenter() internal returns (uint256 amount) {
        uint256 before = token.balanceOf(renter);
        vm.prank(renter);
        market.withdrawRequest(id);
        return token.balanceOf(renter) - before;
    }

    // ------------------------------------------------------------------ lifecycles

    function test_Finished_HostsPaidForTimeHeldAndRenterGetsRest() public {
        uint256 created = block.timestamp;
        uint256[4] memory filledAt;
        address[4] memory hs = [host1, host2, host3, host4];
        for (uint256 i; i < 4; ++i) {
            vm.warp(created + 1000 * (i + 1));
            filledAt[i] = block.timestamp;
            _fill(id, i, hs[i]);
        }
        uint256 endsAt = market.getRequest(id).endsAt;
        vm.warp(endsAt + 5 days); // late withdrawals earn nothing more
        uint256 paid;
        for (uint256 i; i < 4; ++i) {
            uint256 pay = _perSecond() * (endsAt - filledAt[i]);
            vm.assertEq(_withdrawSlot(i, hs[i]), pay + collateral);
            paid += pay;
        }
        vm.assertEq(_withdrawRenter(), _escrow() - paid);
        vm.assertEq(token.balanceOf(address(market)), 0);
    }

    function test_Finished_FirstWithdrawalEmitsRequestFinishedOnce() public {
        _fillAll(id);
        vm.warp(market.getRequest(id).endsAt);
        vm.expectEmit(address(market));
        emit IMarketplace.RequestFinished(id);
        _withdrawSlot(0, host1);
        vm.recordLogs();
        _withdrawSlot(1, host2);
        vm.assertEq(vm.getRecordedLogs().length, 2); // Withdrawn and the token's Transfer
        vm.assertEq(uint256(market.getRequest(id).state), uint256(RequestState.Finished));
    }

    function test_Cancelled_FillersPaidUntilExpiry() public {
        vm.warp(block.timestamp + 600);
        uint256 filledAt = block.timestamp;
        _fill(id, 1, host2);
        uint256 expiresAt = market.getRequest(id).expiresAt;
        vm.warp(expiresAt + 1);
        vm.assertEq(uint256(market.requestState(id)), uint256(RequestState.Cancelled));
        vm.assertEq(uint256(market.slotState(_slotId(id, 1))), uint256(SlotState.Cancelled));
        uint256 pay = _perSecond() * (expiresAt - filledAt);
        vm.expectEmit(address(market));
        emit IMarketplace.RequestCancelled(id);
        vm.assertEq(_withdrawRenter(), _escrow() - pay);
        vm.assertEq(_withdrawSlot(1, host2), pay + collateral);
        vm.assertEq(token.balanceOf(address(market)), 0);
    }

    function test_Cancelled_UnfilledRequestRefundsEverything() public {
        vm.warp(market.getRequest(id).expiresAt + 1);
        vm.assertEq(market.renterRefund(id), _escrow());
        vm.assertEq(_withdrawRenter(), _escrow());
        vm.assertEq(market.renterRefund(id), 0);
    }

    function test_Failed_SurvivorsPaidUntilFailureEvictedForfeit() public {
        _fillAll(id);
        uint256 startedAt = block.timestamp;
        _nextPeriod();
        // Hosts of slots 0 and 1 stop proving; 2 and 3 keep their data but need not prove to be paid.
        _missAndMark(id, 0, MAX_MISSED);
        _missAndMark(id, 1, MAX_MISSED);
        RequestInfo memory info = market.getRequest(id);
        vm.assertEq(uint256(info.state), uint256(RequestState.Failed));
        uint256 failedAt = info.endedAt;

        uint256 pay = _perSecond() * (failedAt - startedAt);
        vm.assertEq(_withdrawSlot(2, host3), pay + collateral);
        vm.assertEq(_withdrawSlot(3, host4), pay + collateral);

        vm.expectRevert(abi.encodeWithSelector(IMarketplace.NotSlotHost.selector, host1, address(0)));
        vm.prank(host1);
        market.withdrawSlot(_slotId(id, 0));

        uint256 slash = collateral * SLASH_BPS / 10_000;
        uint256 reward = slash * REPORTER_BPS / 10_000;
        // Each evicted host forfeits its whole collateral; the reporter got its rewards out of it.
        uint256 forfeited = 2 * (collateral - MAX_MISSED * reward);
        vm.assertEq(market.renterRefund(id), _escrow() - 2 * pay + forfeited);
        vm.assertEq(_withdrawRenter(), _escrow() - 2 * pay + forfeited);
        vm.prank(reporter);
        market.withdrawReward();
        vm.assertEq(token.balanceOf(address(market)), 0);
    }

    function test_Slashed_HostKeepsRestOfCollateralRenterGetsSlash() public {
        _fillAll(id);
        uint256 startedAt = block.timestamp;
        _nextPeriod();
        _missAndMark(id, 0, 2);
        uint256 slash = collateral * SLASH_BPS / 10_000;
        uint256 reward = slash * REPORTER_BPS / 10_000;
        uint256 endsAt = market.getRequest(id).endsAt;
        vm.warp(endsAt);
        uint256 pay = _perSecond() * (endsAt - startedAt);
        vm.assertEq(_withdrawSlot(0, host1), pay + collateral - 2 * slash);
        vm.assertEq(_withdrawRenter(), _escrow() - 4 * pay + 2 * (slash - reward));
    }

    function test_Repaired_RepairerEarnsRewardEvictedForfeitsPay() public {
        _fillAll(id);
        uint256 startedAt = block.timestamp;
        _nextPeriod();
        _missAndMark(id, 0, MAX_MISSED);
        uint256 repairedAt = block.timestamp;
        _fill(id, 0, host5);
        uint256 endsAt = market.getRequest(id).endsAt;
        vm.warp(endsAt);
        uint256 repairReward = collateral * REPAIR_BPS / 10_000;
        // host5 brought collateral - repairReward and gets collateral back.
        vm.assertEq(_withdrawSlot(0, host5), _perSecond() * (endsAt - repairedAt) + collateral);
        uint256 slash = collateral * SLASH_BPS / 10_000;
        uint256 reward = slash * REPORTER_BPS / 10_000;
        uint256 owed = _perSecond() * (endsAt - repairedAt) + 3 * _perSecond() * (endsAt - startedAt);
        uint256 forfeited = collateral - MAX_MISSED * reward - repairReward;
        vm.assertEq(_withdrawRenter(), _escrow() - owed + forfeited);
    }

    function test_SlotPayout_AccruesWhileActive() public {
        _fill(id, 0, host1);
        vm.warp(block.timestamp + 3600);
        (uint256 earned, uint256 back) = market.slotPayout(_slotId(id, 0));
        vm.assertEq(earned, _perSecond() * 3600);
        vm.assertEq(back, collateral);
        (earned, back) = market.slotPayout(_slotId(id, 1));
        vm.assertEq(earned + back, 0);
    }

    function test_SlotPayout_ZeroOncePaid() public {
        _fillAll(id);
        vm.warp(market.getRequest(id).endsAt);
        _withdrawSlot(0, host1);
        (uint256 earned, uint256 back) = market.slotPayout(_slotId(id, 0));
        vm.assertEq(earned + back, 0);
        vm.assertEq(uint256(market.slotState(_slotId(id, 0))), uint256(SlotState.Paid));
    }

    function test_RenterRefund_ZeroWhileActive() public {
        _fillAll(id);
        vm.assertEq(market.renterRefund(id), 0);
        vm.assertEq(market.renterRefund("unknown"), 0);
    }

    function test_WithdrawReward_PaysAndEmits() public {
        _fillAll(id);
        _nextPeriod();
        _missAndMark(id, 0, 1);
        uint256 amount = market.rewardOf(reporter);
        uint256 before = token.balanceOf(reporter);
        vm.expectEmit(address(market));
        emit IMarketplace.Withdrawn(reporter, bytes32(0), bytes32(0), amount);
        vm.prank(reporter);
        market.withdrawReward();
        vm.assertEq(token.balanceOf(reporter) - before, amount);
        vm.assertEq(market.rewardOf(reporter), 0);
    }

    function test_WithdrawSlot_Emits() public {
        _fillAll(id);
        uint256 endsAt = market.getRequest(id).endsAt;
        (uint256 earned,) = market.slotPayout(_slotId(id, 2));
        earned += _perSecond() * (endsAt - block.timestamp);
        vm.warp(endsAt);
        vm.expectEmit(address(market));
        emit IMarketplace.Withdrawn(host3, id, _slotId(id, 2), earned + collateral);
        vm.prank(host3);
        market.withdrawSlot(_slotId(id, 2));
    }

    // ------------------------------------------------------------------ bad input

    function test_RevertWhen_WithdrawSlotUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.UnknownSlot.selector, bytes32("x")));
        vm.prank(host1);
        market.withdrawSlot("x");
    }

    function test_RevertWhen_WithdrawSlotByOtherAccount() public {
        _fillAll(id);
        vm.warp(market.getRequest(id).endsAt);
        bytes32 slot = _slotId(id, 0);
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.NotSlotHost.selector, renter, host1));
        vm.prank(renter);
        market.withdrawSlot(slot);
    }

    function test_RevertWhen_WithdrawSlotBeforeEnd() public {
        _fillAll(id);
        bytes32 slot = _slotId(id, 0);
        vm.expectRevert(
            abi.encodeWithSelector(IMarketplace.RequestNotEnded.selector, id, RequestState.Started)
        );
        vm.prank(host1);
        market.withdrawSlot(slot);
    }

    function test_RevertWhen_WithdrawSlotTwice() public {
        _fillAll(id);
        vm.warp(market.getRequest(id).endsAt);
        _withdrawSlot(0, host1);
        bytes32 slot = _slotId(id, 0);
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.AlreadyWithdrawn.selector));
        vm.prank(host1);
        market.withdrawSlot(slot);
    }

    function test_RevertWhen_WithdrawRequestUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.UnknownRequest.selector, bytes32("x")));
        vm.prank(renter);
        market.withdrawRequest("x");
    }

    function test_RevertWhen_WithdrawRequestByOtherAccount() public {
        vm.warp(market.getRequest(id).expiresAt + 1);
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.NotRenter.selector, host1, renter));
        vm.prank(host1);
        market.withdrawRequest(id);
    }

    function test_RevertWhen_WithdrawRequestBeforeEnd() public {
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.RequestNotEnded.selector, id, RequestState.New));
        vm.prank(renter);
        market.withdrawRequest(id);
    }

    function test_RevertWhen_WithdrawRequestTwice() public {
        vm.warp(market.getRequest(id).expiresAt + 1);
        _withdrawRenter();
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.AlreadyWithdrawn.selector));
        vm.prank(renter);
        market.withdrawRequest(id);
    }

    function test_RevertWhen_WithdrawRewardWithNone() public {
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.NothingToWithdraw.selector));
        vm.prank(reporter);
        market.withdrawReward();
    }

    function test_RevertWhen_WithdrawRewardTwice() public {
        _fillAll(id);
        _nextPeriod();
        _missAndMark(id, 0, 1);
        vm.prank(reporter);
        market.withdrawReward();
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.NothingToWithdraw.selector));
        vm.prank(reporter);
        market.withdrawReward();
    }

    // ------------------------------------------------------------------ fuzz: the money adds up

    struct Ledger {
        bytes32 rid;
        uint256 perSecond;
        uint256 collateral;
        uint256 slash;
        uint256 reward;
        uint256 end;
        uint256[4] filledAt;
        uint256[4] missed;
        bool[4] evicted;
        bool[4] repaired; // refilled by host5
        uint256 marks;
        uint256 evictions;
        uint256 repairs;
        uint256 owed;
    }

    Ledger internal l;

    /// Random prices, collateral, fill times, misses, evictions and repairs; then every party
    /// withdraws. Each payout matches the formula computed here independently, and the contract ends
    /// with nothing.
    function testFuzz_Payouts_SettleExactly(
        uint256 price,
        uint256 collateralPerByte,
        uint32[4] memory fillDelays,
        uint8[4] memory misses,
        bool repair
    ) public {
        uint256 held = token.balanceOf(address(market)); // the escrow of setUp's request
        _fuzzOpen(price, collateralPerByte, fillDelays);
        _fuzzMiss(misses);
        if (repair) _fuzzRepair();
        vm.warp(market.getRequest(l.rid).endsAt + 1);
        _fuzzWithdrawHosts();
        _fuzzWithdrawRenter();
        vm.assertEq(token.balanceOf(address(market)), held, "dust left");
    }

    function _fuzzOpen(uint256 price, uint256 collateralPerByte, uint32[4] memory fillDelays) internal {
        RequestParams memory q = defaultParams();
        q.pricePerBytePerSecond = _bound(price, 1, 1e9);
        q.collateralPerByte = _bound(collateralPerByte, 1, 1e12);
        q.maxSlotLoss = 2;
        l.rid = _request("fuzz", q);
        l.perSecond = q.pricePerBytePerSecond * q.slotSize;
        l.collateral = q.collateralPerByte * q.slotSize;
        l.slash = l.collateral * SLASH_BPS / 10_000;
        l.reward = l.slash * REPORTER_BPS / 10_000;
        address[4] memory hs = [host1, host2, host3, host4];
        for (uint256 i; i < 4; ++i) {
            vm.warp(block.timestamp + _bound(fillDelays[i], 0, q.expiry / 4));
            l.filledAt[i] = block.timestamp;
            _fill(l.rid, i, hs[i]);
        }
        _nextPeriod();
    }

    function _fuzzMiss(uint8[4] memory misses) internal {
        for (uint256 i; i < 4; ++i) {
            if (market.requestState(l.rid) != RequestState.Started) break;
            uint256 n = _bound(misses[i], 0, MAX_MISSED);
            _missAndMark(l.rid, i, n);
            l.marks += n;
            if (n == MAX_MISSED) {
                l.evicted[i] = true;
                l.evictions += 1;
            } else {
                l.missed[i] = n;
            }
        }
        RequestInfo memory info = market.getRequest(l.rid);
        l.end = info.state == RequestState.Failed ? info.endedAt : info.endsAt;
    }

    function _fuzzRepair() internal {
        if (market.requestState(l.rid) != RequestState.Started) return;
        for (uint256 i; i < 4; ++i) {
            if (!l.evicted[i]) continue;
            l.filledAt[i] = block.timestamp;
            _fill(l.rid, i, host5);
            l.repaired[i] = true;
            l.repairs += 1;
        }
    }

    function _fuzzWithdrawHosts() internal {
        address[4] memory hs = [host1, host2, host3, host4];
        for (uint256 i; i < 4; ++i) {
            if (l.evicted[i] && !l.repaired[i]) continue;
            address h = l.repaired[i] ? host5 : hs[i];
            uint256 pay = l.perSecond * (l.end - l.filledAt[i]);
            uint256 back = l.collateral - (l.repaired[i] ? 0 : l.missed[i] * l.slash);
            uint256 before = token.balanceOf(h);
            vm.prank(h);
            market.withdrawSlot(_slotId(l.rid, i));
            vm.assertEq(token.balanceOf(h) - before, pay + back, "host payout");
            l.owed += pay;
        }
    }

    function _fuzzWithdrawRenter() internal {
        uint256 forfeited = l.marks * (l.slash - l.reward) + l.evictions
            * (l.collateral - MAX_MISSED * l.slash) - l.repairs * (l.collateral * REPAIR_BPS / 10_000);
        uint256 escrow = l.perSecond * 4 * market.getRequest(l.rid).params.duration;
        uint256 before = token.balanceOf(renter);
        vm.prank(renter);
        market.withdrawRequest(l.rid);
        vm.assertEq(token.balanceOf(renter) - before, escrow - l.owed + forfeited, "renter refund");
        vm.assertEq(market.rewardOf(reporter), l.marks * l.reward, "rewards");
        if (l.marks > 0) {
            vm.prank(reporter);
            market.withdrawReward();
        }
    }

    /// Host pay never exceeds what the escrow reserved for its slot, whatever the times.
    function testFuzz_Payouts_HostPayBoundedByEscrowShare(uint32 fillDelay, uint8 slotIndex) public {
        uint256 index = _bound(slotIndex, 0, 3);
        vm.warp(block.timestamp + _bound(fillDelay, 0, p.expiry));
        _fill(id, index, host1);
        vm.warp(block.timestamp + 400 days);
        (uint256 earned,) = market.slotPayout(_slotId(id, index));
        vm.assertLe(earned, _perSecond() * p.duration);
    }
}
