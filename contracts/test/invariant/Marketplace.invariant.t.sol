// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {Marketplace} from "../../src/Marketplace.sol";
import {
    MarketplaceConfig,
    RequestInfo,
    RequestState,
    SlotInfo,
    SlotState
} from "../../src/MarketplaceTypes.sol";
import {Challenges} from "../../src/libraries/Challenges.sol";
import {BlockHashRandomness} from "../../src/randomness/BlockHashRandomness.sol";
import {HoardTestToken} from "../../src/token/HoardTestToken.sol";
import {vm} from "../utils/Vm.sol";
import {MarketplaceHandler} from "./MarketplaceHandler.sol";

/// @notice Invariants of the Marketplace under random sequences of every action (see the handler).
/// `forge test --match-path 'test/invariant/*'` runs them at the default depth (CI);
/// `FOUNDRY_PROFILE=deep forge test --match-path 'test/invariant/*' -vv` runs many more and longer
/// sequences (see foundry.toml). Either way every run must reach every action (`afterInvariant`).
contract MarketplaceInvariantTest {
    uint16 internal constant SLASH_BPS = 2000;

    Marketplace internal market;
    HoardTestToken internal token;
    MarketplaceHandler internal handler;

    function setUp() public {
        vm.roll(1000);
        vm.warp(1_700_000_000);
        token = new HoardTestToken();
        market = new Marketplace(
            MarketplaceConfig({
                token: address(token),
                randomness: address(new BlockHashRandomness()),
                periodLength: 10,
                graceBlocks: 10,
                maxMissed: 2,
                slashBps: SLASH_BPS,
                reporterRewardBps: 2500,
                repairRewardBps: 1500,
                compactVerifierSmall: address(0),
                compactVerifierLarge: address(0)
            })
        );
        handler = new MarketplaceHandler(market, token);
    }

    event log_named_uint(string key, uint256 val);

    /// Forge calls only the handler (whose one non-view function is `step`).
    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// The contract holds exactly the escrow and collateral it took in, less what it paid out.
    function invariant_BalanceEqualsEscrowPlusCollateralMinusPayouts() public view {
        vm.assertEq(
            token.balanceOf(address(market)), handler.escrowIn() + handler.collateralIn() - handler.payouts()
        );
    }

    /// It can always pay what it owes: pending refunds, host payouts of ended requests and rewards.
    function invariant_BalanceCoversEverythingOwed() public view {
        uint256 owed;
        uint256 n = handler.requestCount();
        for (uint256 i; i < n; ++i) {
            (bytes32 id, uint16 slots,,,) = handler.requestAt(i);
            RequestState state = market.requestState(id);
            if (state == RequestState.New || state == RequestState.Started) continue;
            owed += market.renterRefund(id);
            for (uint256 j; j < slots; ++j) {
                (uint256 earned, uint256 collateral) = market.slotPayout(Challenges.slotId(id, j));
                owed += earned + collateral;
            }
        }
        address[] memory actors = handler.actors();
        for (uint256 i; i < actors.length; ++i) {
            owed += market.rewardOf(actors[i]);
        }
        vm.assertLe(owed, token.balanceOf(address(market)));
    }

    /// Once a request's renter and every host holding a slot at the end have withdrawn, nothing of
    /// that request is left in the contract: in = out + reporter rewards.
    function invariant_SettledRequestsLeaveNothing() public view {
        uint256 n = handler.requestCount();
        for (uint256 i; i < n; ++i) {
            (bytes32 id, uint16 slots, uint256 tokensIn, uint256 tokensOut, uint256 rewards) =
                handler.requestAt(i);
            if (!market.getRequest(id).renterWithdrawn) continue;
            bool settled = true;
            for (uint256 j; j < slots; ++j) {
                if (market.getSlot(Challenges.slotId(id, j)).host != address(0)) {
                    settled = settled && market.slotState(Challenges.slotId(id, j)) == SlotState.Paid;
                }
            }
            if (settled) vm.assertEq(tokensIn, tokensOut + rewards);
        }
    }

    /// No slot is ever filled twice, and the contract's host of each slot is the one the books know.
    function invariant_NoSlotFilledTwice() public view {
        vm.assertFalse(handler.filledTwice());
        uint256 n = handler.requestCount();
        for (uint256 i; i < n; ++i) {
            (bytes32 id, uint16 slots,,,) = handler.requestAt(i);
            uint256 filled;
            for (uint256 j; j < slots; ++j) {
                bytes32 slot = Challenges.slotId(id, j);
                SlotInfo memory s = market.getSlot(slot);
                vm.assertEq(s.host, handler.holder(slot));
                if (s.host != address(0) && s.state != SlotState.Paid) ++filled;
            }
            if (
                market.requestState(id) == RequestState.New || market.requestState(id) == RequestState.Started
            ) {
                vm.assertEq(filled, market.getRequest(id).filledSlots);
            }
        }
    }

    /// A host is never paid for a slot it was evicted from, nor for time before its own fill.
    function invariant_NoPayAfterEviction() public view {
        vm.assertFalse(handler.paidAfterEviction());
        vm.assertFalse(handler.overpaid());
    }

    /// An extension pulls exactly price · slotSize · slots · extra and moves the end and the duration
    /// by extra (nothing else); a refused one moves no token.
    function invariant_ExtensionsPayExactlyAndMoveTheEnd() public view {
        vm.assertFalse(handler.badExtension());
    }

    /// Whoever holds a slot (a repairing host included) has earned exactly P·(now or the end − its
    /// own fill) and gets back C − its own marks·S: nothing of its predecessor's time, collateral or
    /// marks. Every withdrawal paid exactly that, and a fill pulled exactly C (C − R for a repair).
    function invariant_RepairedSlotHostPaidOnlyFromItsFill() public view {
        vm.assertFalse(handler.badHostPay());
        vm.assertFalse(handler.badCollateralPulled());
        uint256 n = handler.requestCount();
        for (uint256 i; i < n; ++i) {
            (bytes32 id, uint16 slots,,,) = handler.requestAt(i);
            (uint256 perSecond, uint256 collateral) = handler.moneyOf(i);
            RequestInfo memory info = market.getRequest(id);
            uint256 end = info.endedAt == 0 ? block.timestamp : info.endedAt;
            for (uint256 j; j < slots; ++j) {
                bytes32 slot = Challenges.slotId(id, j);
                if (handler.holder(slot) == address(0) || market.slotState(slot) == SlotState.Paid) continue;
                (uint256 earned, uint256 back) = market.slotPayout(slot);
                vm.assertEq(earned, perSecond * (end - handler.holderSince(slot)), "earned from own fill");
                vm.assertEq(back, collateral - handler.holderMisses(slot) * (collateral * SLASH_BPS / 10_000));
            }
        }
    }

    /// An evicted host never got a token of the slot it was evicted from (every attempt was refused
    /// and moved nothing) and never holds it again.
    function invariant_EvictedHostNeverWithdrawsThatSlot() public view {
        vm.assertFalse(handler.paidAfterEviction());
        vm.assertFalse(handler.refusalMovedTokens());
        uint256 n = handler.evictionCount();
        for (uint256 i; i < n; ++i) {
            (bytes32 slot, address host) = handler.evictionAt(i);
            vm.assertEq(handler.paidTo(slot, host), 0);
            vm.assertTrue(market.getSlot(slot).host != host);
        }
    }

    /// Honest calls (a due proof, a due mark, a fill of a free slot, a withdrawal after the end) always
    /// succeed; false reports are always refused and credit nothing; a request fails exactly when an
    /// eviction leaves more than maxSlotLoss slots of a started request empty.
    function invariant_HonestCallsSucceedFalseReportsFail() public view {
        vm.assertFalse(handler.honestCallRefused());
        vm.assertFalse(handler.falseReportAccepted());
        vm.assertFalse(handler.badFailure());
    }

    /// Prints (with -vv) what this run reached and fails the run if any action stayed at zero: the
    /// invariants above must have been checked across proofs, marks, evictions, repairs, extensions,
    /// failures, cancellations, finishes and withdrawals.
    function afterInvariant() external {
        string[17] memory names = [
            "requests",
            "extensions",
            "fills",
            "repairs by another host",
            "proofs",
            "marks",
            "evictions",
            "failures beyond maxSlotLoss",
            "cancellations",
            "finishes",
            "host withdrawals",
            "repaired-slot host withdrawals",
            "renter withdrawals",
            "reward withdrawals",
            "refused fills (slot taken)",
            "refused false reports",
            "refused withdrawals (evicted or other host)"
        ];
        uint256[17] memory values = handler.countValues();
        emit log_named_uint("steps", handler.calls());
        for (uint256 i; i < names.length; ++i) {
            emit log_named_uint(names[i], values[i]);
        }
        for (uint256 i; i < names.length; ++i) {
            vm.assertGt(values[i], 0, string.concat("this run never reached: ", names[i]));
        }
    }
}
