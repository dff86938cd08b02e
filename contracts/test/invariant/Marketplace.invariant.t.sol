// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {Marketplace} from "../../src/Marketplace.sol";
import {MarketplaceConfig, RequestState, SlotInfo, SlotState} from "../../src/MarketplaceTypes.sol";
import {Challenges} from "../../src/libraries/Challenges.sol";
import {BlockHashRandomness} from "../../src/randomness/BlockHashRandomness.sol";
import {HoardTestToken} from "../../src/token/HoardTestToken.sol";
import {vm} from "../utils/Vm.sol";
import {MarketplaceHandler} from "./MarketplaceHandler.sol";

/// @notice Invariants of the Marketplace under random sequences of every action (see the handler).
contract MarketplaceInvariantTest {
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
                slashBps: 2000,
                reporterRewardBps: 2500,
                repairRewardBps: 1500,
                compactVerifierSmall: address(0),
                compactVerifierLarge: address(0)
            })
        );
        handler = new MarketplaceHandler(market, token);
    }

    event log_named_uint(string key, uint256 val);

    /// Forge calls only the handler.
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

    /// Shows (with -vv) how far the runs got; the totals accumulate over all runs of one invariant.
    function afterInvariant() external {
        (
            uint256 requests,
            uint256 extensions,
            uint256 fills,
            uint256 repairs,
            uint256 proofs,
            uint256 marks,
            uint256 evictions,
            uint256 hostWithdrawals,
            uint256 renterWithdrawals,
            uint256 rewardWithdrawals
        ) = handler.counts();
        emit log_named_uint("requests", requests);
        emit log_named_uint("extensions", extensions);
        emit log_named_uint("fills", fills);
        emit log_named_uint("repairs", repairs);
        emit log_named_uint("proofs", proofs);
        emit log_named_uint("marks", marks);
        emit log_named_uint("evictions", evictions);
        emit log_named_uint("host withdrawals", hostWithdrawals);
        emit log_named_uint("renter withdrawals", renterWithdrawals);
        emit log_named_uint("reward withdrawals", rewardWithdrawals);
    }
}
