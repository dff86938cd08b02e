// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {Marketplace} from "../../src/Marketplace.sol";
import {
    ProofScheme,
    RequestInfo,
    RequestParams,
    RequestState,
    SlotInfo,
    SlotState
} from "../../src/MarketplaceTypes.sol";
import {Challenges} from "../../src/libraries/Challenges.sol";
import {HoardTestToken} from "../../src/token/HoardTestToken.sol";
import {SlotBuilder} from "../utils/SlotBuilder.sol";
import {vm} from "../utils/Vm.sol";

/// @notice Drives the Marketplace through random but meaningful sequences (requests, extensions,
/// fills, proofs, missed proofs, evictions, repairs, time, withdrawals) and keeps ghost books of every token that
/// moves, who holds which slot and who was evicted, for the invariants to check.
contract MarketplaceHandler {
    uint64 internal constant PERIOD = 10;
    uint256 internal constant MAX_REQUESTS = 4;

    Marketplace internal immutable market;
    HoardTestToken internal immutable token;
    address[3] internal renters = [address(0xA1), address(0xA2), address(0xA3)];
    address[4] internal hosts = [address(0xB1), address(0xB2), address(0xB3), address(0xB4)];
    address[2] internal reporters = [address(0xC1), address(0xC2)];

    struct Req {
        bytes32 id;
        bytes32 tag;
        uint16 slots;
        uint16 samples;
        bytes32[] roots;
        uint256 tokensIn; // escrow (extensions included) + collateral brought
        uint256 tokensOut; // payouts to hosts and renter
        uint256 rewards; // reporter rewards credited out of this request's collateral
    }

    Req[] internal reqs;

    // ghost books
    uint256 public escrowIn;
    uint256 public collateralIn;
    uint256 public payouts;
    mapping(bytes32 slotId => address) public holder;
    mapping(bytes32 slotId => uint256) public holderSince;
    mapping(bytes32 slotId => mapping(address host => bool)) public wasEvicted;
    bool public filledTwice;
    bool public paidAfterEviction;
    bool public overpaid;
    bool public badExtension;
    mapping(bytes32 => uint256) internal reqIndex; // 1-based

    /// Successful actions, to see that runs reach the interesting states.
    struct Counts {
        uint256 requests;
        uint256 extensions;
        uint256 fills;
        uint256 repairs;
        uint256 proofs;
        uint256 marks;
        uint256 evictions;
        uint256 hostWithdrawals;
        uint256 renterWithdrawals;
        uint256 rewardWithdrawals;
    }

    Counts public counts;
    uint256 public calls;

    constructor(Marketplace market_, HoardTestToken token_) {
        market = market_;
        token = token_;
        address[9] memory everyone = [
            renters[0],
            renters[1],
            renters[2],
            hosts[0],
            hosts[1],
            hosts[2],
            hosts[3],
            reporters[0],
            reporters[1]
        ];
        for (uint256 i; i < everyone.length; ++i) {
            token_.faucet(everyone[i], 1_000_000 ether);
            vm.prank(everyone[i]);
            token_.approve(address(market_), type(uint256).max);
        }
    }

    // ------------------------------------------------------------------ views for the invariants

    function requestCount() external view returns (uint256) {
        return reqs.length;
    }

    function requestAt(uint256 i)
        external
        view
        returns (bytes32 id, uint16 slots, uint256 tokensIn, uint256 tokensOut, uint256 rewards)
    {
        Req storage r = reqs[i];
        return (r.id, r.slots, r.tokensIn, r.tokensOut, r.rewards);
    }

    function actors() external view returns (address[] memory all) {
        all = new address[](9);
        for (uint256 i; i < 3; ++i) {
            all[i] = renters[i];
        }
        for (uint256 i; i < 4; ++i) {
            all[3 + i] = hosts[i];
        }
        all[7] = reporters[0];
        all[8] = reporters[1];
    }

    // ------------------------------------------------------------------ actions

    function openRequest(uint256 seed) external {
        ++calls;
        if (reqs.length >= MAX_REQUESTS) return;
        bytes32 tag = keccak256(abi.encode("inv", reqs.length, seed));
        uint16 slots = uint16(2 + seed % 3);
        RequestParams memory p = RequestParams({
            datasetRoot: bytes32(0),
            manifestId: tag,
            pricePerBytePerSecond: 1 + (seed >> 8) % 1000,
            collateralPerByte: 1 + (seed >> 16) % 1e6,
            slotSize: 65_536,
            cellCount: 256,
            duration: uint64(1500 + (seed >> 24) % 4500),
            expiry: uint64(300 + (seed >> 32) % 900),
            proofProbability: uint64(1 + (seed >> 40) % 2),
            slots: slots,
            maxSlotLoss: uint16((seed >> 48) % slots),
            samples: uint16(1 + (seed >> 56) % 3),
            scheme: ProofScheme.Direct,
            compactRoot: bytes32(0)
        });
        bytes32[] memory roots = new bytes32[](slots);
        for (uint256 i; i < slots; ++i) {
            roots[i] = SlotBuilder.root(SlotBuilder.build(keccak256(abi.encode(tag, i)), 256));
        }
        p.datasetRoot = SlotBuilder.datasetRoot(roots);
        uint256 escrow = market.escrowFor(p);
        address renter = renters[seed % 3];
        vm.prank(renter);
        bytes32 id = market.requestStorage(p);
        reqs.push();
        Req storage r = reqs[reqs.length - 1];
        r.id = id;
        r.tag = tag;
        r.slots = slots;
        r.samples = p.samples;
        r.roots = roots;
        r.tokensIn = escrow;
        reqIndex[id] = reqs.length;
        escrowIn += escrow;
        counts.requests += 1;
    }

    /// The renter of a request buys `1 + secs % 3000` more seconds; refused (and nothing moves) once
    /// the request has ended.
    function extend(uint256 reqSeed, uint256 secs) external {
        ++calls;
        if (reqs.length == 0) return;
        Req storage r = reqs[reqSeed % reqs.length];
        RequestInfo memory before = market.getRequest(r.id);
        uint256 extra = 1 + secs % 3000;
        uint256 balance = token.balanceOf(before.renter);
        vm.prank(before.renter);
        try market.extendRequest(r.id, extra) {
            uint256 paid = balance - token.balanceOf(before.renter);
            RequestInfo memory info = market.getRequest(r.id);
            RequestParams memory p = before.params;
            if (
                paid != p.pricePerBytePerSecond * p.slotSize * p.slots * extra
                    || info.endsAt != before.endsAt + extra || info.params.duration != p.duration + extra
                    || info.createdAt != before.createdAt || info.expiresAt != before.expiresAt
            ) badExtension = true;
            escrowIn += paid;
            r.tokensIn += paid;
            counts.extensions += 1;
        } catch {
            if (token.balanceOf(before.renter) != balance) badExtension = true;
        }
    }

    /// Fills up to `1 + countSeed % slots` slots of one request, from slot `slotSeed` on, each by a
    /// host picked from `hostSeed`; a slot already filled is tried too (it must not fill again).
    function fill(uint256 reqSeed, uint256 slotSeed, uint256 hostSeed, uint256 countSeed) external {
        ++calls;
        if (reqs.length == 0) return;
        Req storage r = reqs[reqSeed % reqs.length];
        uint256 count = 1 + countSeed % r.slots;
        for (uint256 k; k < count; ++k) {
            _fill(r, (slotSeed % r.slots + k) % r.slots, hosts[(hostSeed % hosts.length + k) % hosts.length]);
        }
    }

    function _fill(Req storage r, uint256 index, address host) internal {
        bytes32 slot = Challenges.slotId(r.id, index);
        SlotBuilder.Slot memory tree = SlotBuilder.build(keccak256(abi.encode(r.tag, index)), 256);
        bytes32[] memory path = SlotBuilder.datasetPath(r.roots, index);
        bytes memory proof;
        try market.periodSeed(market.currentPeriod()) returns (bytes32 seed) {
            proof = SlotBuilder.proveChallenge(tree, seed, slot, r.samples);
        } catch {
            return;
        }
        uint256 before = token.balanceOf(host);
        bool occupied = holder[slot] != address(0);
        bool repair = market.getSlot(slot).state == SlotState.Repair;
        vm.prank(host);
        try market.fillSlot(r.id, index, r.roots[index], path, proof) {
            if (occupied) filledTwice = true;
            uint256 pulled = before - token.balanceOf(host);
            collateralIn += pulled;
            r.tokensIn += pulled;
            holder[slot] = host;
            holderSince[slot] = block.timestamp;
            counts.fills += 1;
            if (repair) counts.repairs += 1;
        } catch {}
    }

    /// The hosts of the slots picked by `mask` prove, where a proof is due; the others stay silent.
    function prove(uint256 reqSeed, uint256 mask) external {
        ++calls;
        if (reqs.length == 0) return;
        Req storage r = reqs[reqSeed % reqs.length];
        for (uint256 index; index < r.slots; ++index) {
            if ((mask >> index) & 1 == 0) continue;
            bytes32 slot = Challenges.slotId(r.id, index);
            if (!market.isProofRequired(slot)) continue;
            SlotBuilder.Slot memory tree = SlotBuilder.build(keccak256(abi.encode(r.tag, index)), 256);
            bytes memory proof =
                SlotBuilder.proveChallenge(tree, market.periodSeed(market.currentPeriod()), slot, r.samples);
            vm.prank(holder[slot]);
            market.submitProof(slot, proof); // must succeed: it was due and the proof is honest
            counts.proofs += 1;
        }
    }

    /// A reporter marks every slot of a request whose proof of the last (or the one before) period is
    /// missing.
    function markMissing(uint256 reqSeed, uint256 reporterSeed, uint256 back) external {
        ++calls;
        if (reqs.length == 0) return;
        Req storage r = reqs[reqSeed % reqs.length];
        uint256 period = market.currentPeriod() - 1 - back % 2;
        address reporter = reporters[reporterSeed % 2];
        for (uint256 index; index < r.slots; ++index) {
            bytes32 slot = Challenges.slotId(r.id, index);
            uint256 rewardBefore = market.rewardOf(reporter);
            address host = holder[slot];
            vm.prank(reporter);
            try market.markProofMissing(slot, period) {
                r.rewards += market.rewardOf(reporter) - rewardBefore;
                counts.marks += 1;
                if (market.getSlot(slot).host == address(0)) {
                    wasEvicted[slot][host] = true;
                    holder[slot] = address(0);
                    counts.evictions += 1;
                }
            } catch {}
        }
    }

    /// The hosts of a request stay silent for a whole period; an auditor marks them right after.
    function neglectPeriod(uint256 reqSeed, uint256 reporterSeed) external {
        uint256 next = (block.number / PERIOD + 1) * PERIOD;
        vm.warp(block.timestamp + 12 * (next - block.number));
        vm.roll(next);
        this.markMissing(reqSeed, reporterSeed, 0);
    }

    function advance(uint256 blocks) external {
        ++calls;
        blocks = 1 + blocks % (3 * PERIOD);
        vm.roll(block.number + blocks);
        vm.warp(block.timestamp + 12 * blocks);
    }

    function advanceTime(uint256 secs) external {
        ++calls;
        secs = 1 + secs % 600;
        vm.warp(block.timestamp + secs);
        vm.roll(block.number + 1 + secs / 12);
    }

    /// For every slot of a request, its host or (by `hostSeed`) any host, evicted ones included,
    /// tries to withdraw.
    function withdrawHost(uint256 reqSeed, uint256 hostSeed) external {
        ++calls;
        if (reqs.length == 0) return;
        Req storage r = reqs[reqSeed % reqs.length];
        for (uint256 index; index < r.slots; ++index) {
            bytes32 slot = Challenges.slotId(r.id, index);
            address host = (hostSeed >> index) % 2 == 0
                ? market.getSlot(slot).host
                : hosts[(hostSeed >> 8) % hosts.length];
            if (host != address(0)) _withdrawHost(r, slot, host);
        }
    }

    function _withdrawHost(Req storage r, bytes32 slot, address host) internal {
        RequestInfo memory info = market.getRequest(r.id);
        uint256 before = token.balanceOf(host);
        vm.prank(host);
        try market.withdrawSlot(slot) {
            uint256 paid = token.balanceOf(host) - before;
            if (wasEvicted[slot][host] && holder[slot] != host) paidAfterEviction = true;
            // Pay may cover at most the time since this host's fill, plus its full collateral.
            info = market.getRequest(r.id);
            uint256 cap = info.params.pricePerBytePerSecond * info.params.slotSize
                * (info.endedAt - holderSince[slot]) + market.slotCollateral(r.id);
            if (paid > cap) overpaid = true;
            payouts += paid;
            r.tokensOut += paid;
            counts.hostWithdrawals += 1;
        } catch {}
    }

    function withdrawRenter(uint256 reqSeed) external {
        ++calls;
        if (reqs.length == 0) return;
        Req storage r = reqs[reqSeed % reqs.length];
        address renter = market.getRequest(r.id).renter;
        uint256 before = token.balanceOf(renter);
        vm.prank(renter);
        try market.withdrawRequest(r.id) {
            uint256 paid = token.balanceOf(renter) - before;
            payouts += paid;
            r.tokensOut += paid;
            counts.renterWithdrawals += 1;
        } catch {}
    }

    function withdrawReward(uint256 reporterSeed) external {
        ++calls;
        address reporter = reporters[reporterSeed % 2];
        uint256 before = token.balanceOf(reporter);
        vm.prank(reporter);
        try market.withdrawReward() {
            payouts += token.balanceOf(reporter) - before;
            counts.rewardWithdrawals += 1;
        } catch {}
    }
}
