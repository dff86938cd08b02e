// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {Marketplace} from "../../src/Marketplace.sol";
import {
    MarketplaceConfig,
    ProofScheme,
    RequestInfo,
    RequestParams,
    RequestState,
    SlotState
} from "../../src/MarketplaceTypes.sol";
import {Challenges} from "../../src/libraries/Challenges.sol";
import {Periods} from "../../src/libraries/Periods.sol";
import {HoardTestToken} from "../../src/token/HoardTestToken.sol";
import {SlotBuilder} from "../utils/SlotBuilder.sol";
import {vm} from "../utils/Vm.sol";

/// @notice The invariant handler's state, ghost books and actions (see `MarketplaceHandler` for how
/// the runs pick them): every token that moves, who holds which slot since when, with how many
/// marks, and who was evicted from which slot, for the invariants to check; and the findings each
/// action records when the Marketplace answers other than an honest model says it must.
///
/// Slots are four trees of one block (256 cells) built once in the constructor and kept in storage;
/// slot i of request r uses tree (r + i) % 4, so the slot roots of a request differ. Proofs are made
/// from the stored tree (a few sibling reads), never by rebuilding it.
abstract contract MarketplaceActions {
    uint256 internal constant MAX_REQUESTS = 24;
    uint256 internal constant MAX_RUNNING = 3;
    uint256 internal constant CELLS = 256;
    uint256 internal constant DEPTH = 8; // log2(CELLS)
    uint256 internal constant TREES = 4;
    uint256 internal constant BLOCK_TIME = 12;
    uint256 internal constant SLOT_SIZE = CELLS * 256;

    Marketplace internal immutable market;
    HoardTestToken internal immutable token;
    uint256 internal immutable periodLength;
    uint256 internal immutable graceBlocks;
    uint256 internal immutable slashBps;
    uint256 internal immutable repairBps;

    address[3] internal renters = [address(0xA1), address(0xA2), address(0xA3)];
    address[4] internal hosts = [address(0xB1), address(0xB2), address(0xB3), address(0xB4)];
    address[2] internal reporters = [address(0xC1), address(0xC2)];

    bytes32[TREES] internal treeContent;
    bytes32[TREES] internal treeRoot;
    /// Every level of tree t, leaves first: level l starts at 2·CELLS − 2·CELLS >> l.
    mapping(uint256 tree => bytes32[]) internal treeNodes;

    struct Req {
        bytes32 id;
        uint16 slots;
        uint16 samples;
        uint256 tree0; // slot i uses tree (tree0 + i) % TREES
        uint256 perSecond; // P = price · slotSize
        uint256 collateral; // C
        uint256 tokensIn; // escrow (extensions included) + collateral brought
        uint256 tokensOut; // payouts to hosts and renter
        uint256 rewards; // reporter rewards credited out of this request's collateral
        bool endNoted;
    }

    Req[] internal reqs;

    // ghost books
    uint256 public escrowIn;
    uint256 public collateralIn;
    uint256 public payouts;
    mapping(bytes32 slotId => address) public holder;
    mapping(bytes32 slotId => uint256) public holderSince;
    mapping(bytes32 slotId => uint256) public holderMisses;
    mapping(bytes32 slotId => bool) public holderRepaired;
    mapping(bytes32 slotId => uint256) internal lastProved; // period + 1 of the holder's last proof
    mapping(bytes32 slotId => mapping(address host => bool)) public wasEvicted;
    mapping(bytes32 slotId => mapping(address host => uint256)) public paidTo;

    struct Eviction {
        bytes32 slot;
        address host;
    }

    Eviction[] internal evictions;

    // findings (each must stay false)
    bool public filledTwice;
    bool public paidAfterEviction;
    bool public overpaid;
    bool public badExtension;
    bool public badHostPay;
    bool public badCollateralPulled;
    bool public refusalMovedTokens;
    bool public honestCallRefused;
    bool public falseReportAccepted;
    bool public badFailure;

    /// Successful (and, for the refused kinds, correctly refused) actions of this run.
    struct Counts {
        uint256 requests;
        uint256 extensions;
        uint256 fills;
        uint256 repairs;
        uint256 proofs;
        uint256 marks;
        uint256 evictions;
        uint256 failures;
        uint256 cancellations;
        uint256 finishes;
        uint256 hostWithdrawals;
        uint256 repairedHostWithdrawals;
        uint256 renterWithdrawals;
        uint256 rewardWithdrawals;
        uint256 refusedFills;
        uint256 refusedReports;
        uint256 refusedWithdrawals;
    }

    Counts internal counts;
    uint256 public calls;

    constructor(Marketplace market_, HoardTestToken token_) {
        market = market_;
        token = token_;
        MarketplaceConfig memory cfg = market_.config();
        periodLength = cfg.periodLength;
        graceBlocks = cfg.graceBlocks;
        slashBps = cfg.slashBps;
        repairBps = cfg.repairRewardBps;
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
        for (uint256 t; t < TREES; ++t) {
            bytes32 content = keccak256(abi.encode("invariant tree", t));
            SlotBuilder.Slot memory tree = SlotBuilder.build(content, CELLS);
            treeContent[t] = content;
            treeRoot[t] = SlotBuilder.root(tree);
            bytes32[] storage nodes = treeNodes[t];
            for (uint256 l; l <= DEPTH; ++l) {
                for (uint256 i; i < tree.levels[l].length; ++i) {
                    nodes.push(tree.levels[l][i]);
                }
            }
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

    /// P (price · slotSize) and C (full collateral) of request i.
    function moneyOf(uint256 i) external view returns (uint256 perSecond, uint256 collateral) {
        return (reqs[i].perSecond, reqs[i].collateral);
    }

    function evictionCount() external view returns (uint256) {
        return evictions.length;
    }

    function evictionAt(uint256 i) external view returns (bytes32 slot, address host) {
        return (evictions[i].slot, evictions[i].host);
    }

    /// The counts in the order of `Counts` (a getter of 17 values would not fit the stack).
    function countValues() external view returns (uint256[17] memory v) {
        Counts storage c = counts;
        v = [
            c.requests,
            c.extensions,
            c.fills,
            c.repairs,
            c.proofs,
            c.marks,
            c.evictions,
            c.failures,
            c.cancellations,
            c.finishes,
            c.hostWithdrawals,
            c.repairedHostWithdrawals,
            c.renterWithdrawals,
            c.rewardWithdrawals,
            c.refusedFills,
            c.refusedReports,
            c.refusedWithdrawals
        ];
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

    function _open(uint256 seed) internal returns (bool) {
        if (reqs.length >= MAX_REQUESTS) return false;
        uint256 running;
        for (uint256 k; k < reqs.length; ++k) {
            if (_running(reqs[k])) ++running;
        }
        if (running >= MAX_RUNNING) return false;
        uint16 slots = uint16(2 + seed % 3);
        uint256 tree0 = reqs.length % TREES;
        bytes32[] memory roots = new bytes32[](slots);
        for (uint256 i; i < slots; ++i) {
            roots[i] = treeRoot[(tree0 + i) % TREES];
        }
        RequestParams memory p = RequestParams({
            datasetRoot: SlotBuilder.datasetRoot(roots),
            manifestId: keccak256(abi.encode("inv", reqs.length, seed)),
            pricePerBytePerSecond: 1 + (seed >> 8) % 1000,
            collateralPerByte: 1 + (seed >> 16) % 1e6,
            slotSize: uint64(SLOT_SIZE),
            cellCount: uint64(CELLS),
            duration: uint64(4000 + (seed >> 24) % 8000),
            expiry: uint64(1200 + (seed >> 40) % 2400),
            proofProbability: uint64(1 + (seed >> 56) % 2),
            slots: slots,
            maxSlotLoss: uint16((seed >> 64) % slots),
            samples: uint16(1 + (seed >> 72) % 3),
            scheme: ProofScheme.Direct,
            compactRoot: bytes32(0)
        });
        uint256 escrow = market.escrowFor(p);
        vm.prank(renters[(seed >> 80) % 3]);
        bytes32 id = market.requestStorage(p);
        reqs.push();
        Req storage r = reqs[reqs.length - 1];
        r.id = id;
        r.slots = slots;
        r.samples = p.samples;
        r.tree0 = tree0;
        r.perSecond = p.pricePerBytePerSecond * SLOT_SIZE;
        r.collateral = p.collateralPerByte * SLOT_SIZE;
        r.tokensIn = escrow;
        escrowIn += escrow;
        counts.requests += 1;
        return true;
    }

    /// The renter buys `1 + secs % 3000` more seconds; refused (and nothing moves) once the request
    /// has ended.
    function _extend(Req storage r, uint256 secs) internal {
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
            if (_running(r)) honestCallRefused = true;
        }
    }

    /// A random slot of `r` (free, repair or taken) by a random host.
    function _fillRandom(Req storage r, uint256 seed) internal {
        uint256 index = seed % r.slots;
        bytes32 slot = _slot(r, index);
        address host = hosts[(seed >> 8) % hosts.length];
        if (wasEvicted[slot][host]) host = _freshHost(slot, seed >> 16);
        if (host != address(0)) _fill(r, index, host);
    }

    function _fill(Req storage r, uint256 index, address host) internal {
        bytes32 slot = _slot(r, index);
        bytes memory proof = _proof(r, index, market.periodSeed(market.currentPeriod()));
        uint256 before = token.balanceOf(host);
        SlotState state = market.slotState(slot);
        bool open = (state == SlotState.Free || state == SlotState.Repair) && _running(r);
        bytes32 root = treeRoot[(r.tree0 + index) % TREES];
        bytes32[] memory path = _datasetPath(r, index);
        vm.prank(host);
        try market.fillSlot(r.id, index, root, path, proof) {
            if (holder[slot] != address(0) || !open) filledTwice = true;
            uint256 pulled = before - token.balanceOf(host);
            bool repair = state == SlotState.Repair;
            uint256 expected = repair ? r.collateral - r.collateral * repairBps / 10_000 : r.collateral;
            if (pulled != expected) badCollateralPulled = true;
            collateralIn += pulled;
            r.tokensIn += pulled;
            holder[slot] = host;
            holderSince[slot] = block.timestamp;
            holderMisses[slot] = 0;
            holderRepaired[slot] = repair;
            lastProved[slot] = 0;
            counts.fills += 1;
            if (repair) counts.repairs += 1;
        } catch {
            if (token.balanceOf(host) != before) refusalMovedTokens = true;
            if (open) honestCallRefused = true;
            else counts.refusedFills += 1;
        }
    }

    /// The hosts of the slots picked by `mask` prove, where a proof is due.
    function _prove(Req storage r, uint256 mask) internal {
        for (uint256 index; index < r.slots; ++index) {
            if ((mask >> index) & 1 == 0) continue;
            bytes32 slot = _slot(r, index);
            if (!market.isProofRequired(slot)) continue;
            uint256 period = market.currentPeriod();
            bytes memory proof = _proof(r, index, market.periodSeed(period));
            vm.prank(holder[slot]);
            market.submitProof(slot, proof); // must succeed: it was due and the proof is honest
            lastProved[slot] = period + 1;
            counts.proofs += 1;
        }
    }

    /// The hosts of the slots in `mask` stay silent through the next period that requires a proof of
    /// one of them (looking up to four periods ahead; the others prove or not, by `seed`), and a
    /// reporter marks each silent slot right after that period.
    function _neglect(Req storage r, uint256 mask, uint256 seed) internal {
        for (uint256 tries; tries < 4; ++tries) {
            if (!_running(r)) return;
            uint256 due;
            for (uint256 index; index < r.slots; ++index) {
                if ((mask >> index) & 1 == 1 && market.isProofRequired(_slot(r, index))) due |= 1 << index;
            }
            if ((seed >> tries) & 1 == 1) _prove(r, ~mask);
            uint256 period = market.currentPeriod();
            _nextPeriod();
            if (due == 0) continue;
            for (uint256 index; index < r.slots; ++index) {
                if ((due >> index) & 1 == 1) _mark(r, index, period, reporters[(seed >> (8 + index)) % 2]);
            }
            return;
        }
    }

    /// Marks the proof of `period` missing: it was due and is absent, so the mark must succeed while
    /// the request runs.
    function _mark(Req storage r, uint256 index, uint256 period, address reporter) internal {
        bytes32 slot = _slot(r, index);
        address host = holder[slot];
        RequestState before = market.requestState(r.id);
        uint256 rewardBefore = market.rewardOf(reporter);
        vm.prank(reporter);
        try market.markProofMissing(slot, period) {
            r.rewards += market.rewardOf(reporter) - rewardBefore;
            holderMisses[slot] += 1;
            counts.marks += 1;
            if (market.getSlot(slot).host == address(0)) _noteEviction(r, slot, host, before);
        } catch {
            if (_running(r)) honestCallRefused = true;
        }
    }

    function _noteEviction(Req storage r, bytes32 slot, address host, RequestState before) internal {
        wasEvicted[slot][host] = true;
        evictions.push(Eviction({slot: slot, host: host}));
        holder[slot] = address(0);
        holderMisses[slot] = 0;
        holderRepaired[slot] = false;
        counts.evictions += 1;
        RequestInfo memory info = market.getRequest(r.id);
        bool shouldFail =
            before == RequestState.Started && uint256(r.slots) - info.filledSlots > info.params.maxSlotLoss;
        if (shouldFail != (info.state == RequestState.Failed)) badFailure = true;
        if (shouldFail) {
            counts.failures += 1;
            r.endNoted = true;
        }
    }

    /// A report the handler knows to be false: of the period still running, of a period whose proof
    /// was submitted, of a period whose window has closed, or of a period that required no proof.
    /// The Marketplace must refuse it and credit nothing.
    function _falseReport(Req storage r, uint256 seed) internal {
        bytes32 slot = _slot(r, seed % r.slots);
        if (holder[slot] == address(0) || !_running(r)) return;
        uint256 current = market.currentPeriod();
        uint256 kind = (seed >> 8) % 4;
        uint256 period = current;
        if (kind == 1 && lastProved[slot] != 0 && lastProved[slot] - 1 < current) {
            period = lastProved[slot] - 1; // proof submitted
        } else if (kind == 2 && current >= 3) {
            period = current - 3; // window closed: it ended at (p + 1)·L − 1 + G < current·L
            if (Periods.lastBlock(period, periodLength) + graceBlocks >= block.number) period = current;
        } else if (kind == 3 && current >= 1) {
            (, bool required,) = market.challenge(slot, current - 1);
            if (!required) period = current - 1; // not required
        }
        address reporter = reporters[(seed >> 16) % 2];
        uint256 rewardBefore = market.rewardOf(reporter);
        uint256 misses = market.getSlot(slot).missedProofs;
        vm.prank(reporter);
        try market.markProofMissing(slot, period) {
            falseReportAccepted = true;
        } catch {
            if (market.rewardOf(reporter) != rewardBefore || market.getSlot(slot).missedProofs != misses) {
                falseReportAccepted = true;
            }
            counts.refusedReports += 1;
        }
    }

    function _nextPeriod() internal {
        uint256 next = (block.number / periodLength + 1) * periodLength;
        _advanceBlocks(next - block.number);
    }

    function _advanceBlocks(uint256 blocks) internal {
        vm.roll(block.number + blocks);
        vm.warp(block.timestamp + BLOCK_TIME * blocks);
    }

    function _advanceTime(uint256 secs) internal {
        vm.warp(block.timestamp + secs);
        vm.roll(block.number + 1 + secs / BLOCK_TIME);
    }

    /// Jumps to the end of `r`: past its expiry while New, to its end while Started.
    function _finish(Req storage r) internal {
        RequestInfo memory info = market.getRequest(r.id);
        uint256 target;
        if (info.state == RequestState.New) target = uint256(info.expiresAt) + 1;
        else if (info.state == RequestState.Started) target = info.endsAt;
        else return;
        if (target <= block.timestamp) return;
        _advanceBlocks((target - block.timestamp + BLOCK_TIME - 1) / BLOCK_TIME);
    }

    /// Records requests that ended with time (Cancelled or Finished).
    function _noteEnds() internal {
        for (uint256 k; k < reqs.length; ++k) {
            Req storage r = reqs[k];
            if (r.endNoted) continue;
            RequestState s = market.requestState(r.id);
            if (s == RequestState.Cancelled) counts.cancellations += 1;
            else if (s == RequestState.Finished) counts.finishes += 1;
            else if (s != RequestState.Failed) continue;
            r.endNoted = true;
        }
    }

    /// The holder of slot `index` withdraws: after the end it must be paid exactly its own tenure,
    /// P·(end − its fill) + C − its marks·S; before the end (or twice) it is refused.
    function _withdrawHost(Req storage r, uint256 index) internal {
        bytes32 slot = _slot(r, index);
        address host = holder[slot];
        if (host == address(0)) return;
        bool payable_ = _ended(r) && market.slotState(slot) != SlotState.Paid;
        uint256 before = token.balanceOf(host);
        vm.prank(host);
        try market.withdrawSlot(slot) {
            uint256 paid = token.balanceOf(host) - before;
            RequestInfo memory info = market.getRequest(r.id);
            uint256 expected = r.perSecond * (info.endedAt - holderSince[slot]) + r.collateral
                - holderMisses[slot] * (r.collateral * slashBps / 10_000);
            if (paid != expected) badHostPay = true;
            if (paid > r.perSecond * (info.endedAt - holderSince[slot]) + r.collateral) overpaid = true;
            if (wasEvicted[slot][host]) paidAfterEviction = true;
            if (!payable_) honestCallRefused = true; // paid although not due
            paidTo[slot][host] += paid;
            payouts += paid;
            r.tokensOut += paid;
            counts.hostWithdrawals += 1;
            if (holderRepaired[slot]) counts.repairedHostWithdrawals += 1;
        } catch {
            if (token.balanceOf(host) != before) refusalMovedTokens = true;
            if (payable_) honestCallRefused = true;
        }
    }

    /// A host that does not hold a slot tries to withdraw it: an evicted host (its own former slot)
    /// or any other host. It must be refused and get nothing.
    function _withdrawWrong(uint256 seed) internal {
        bytes32 slot;
        address host;
        if (evictions.length != 0 && seed % 2 == 0) {
            Eviction storage e = evictions[(seed >> 8) % evictions.length];
            (slot, host) = (e.slot, e.host);
        } else {
            if (reqs.length == 0) return;
            Req storage r = reqs[(seed >> 8) % reqs.length];
            slot = _slot(r, (seed >> 16) % r.slots);
            host = _otherHost(holder[slot], seed >> 24);
        }
        if (host == holder[slot]) return;
        uint256 before = token.balanceOf(host);
        vm.prank(host);
        try market.withdrawSlot(slot) {
            if (wasEvicted[slot][host]) paidAfterEviction = true;
            else overpaid = true;
            uint256 paid = token.balanceOf(host) - before;
            paidTo[slot][host] += paid;
            payouts += paid;
        } catch {
            if (token.balanceOf(host) != before) refusalMovedTokens = true;
            counts.refusedWithdrawals += 1;
        }
    }

    function _withdrawRenter(Req storage r) internal {
        address renter = market.getRequest(r.id).renter;
        bool payable_ = _ended(r) && !market.getRequest(r.id).renterWithdrawn;
        uint256 before = token.balanceOf(renter);
        vm.prank(renter);
        try market.withdrawRequest(r.id) {
            uint256 paid = token.balanceOf(renter) - before;
            if (!payable_) honestCallRefused = true;
            payouts += paid;
            r.tokensOut += paid;
            counts.renterWithdrawals += 1;
        } catch {
            if (token.balanceOf(renter) != before) refusalMovedTokens = true;
            if (payable_) honestCallRefused = true;
        }
    }

    function _withdrawReward(uint256 seed) internal {
        address reporter = reporters[seed % 2];
        uint256 owed = market.rewardOf(reporter);
        uint256 before = token.balanceOf(reporter);
        vm.prank(reporter);
        try market.withdrawReward() {
            uint256 paid = token.balanceOf(reporter) - before;
            if (paid != owed) overpaid = true;
            payouts += paid;
            counts.rewardWithdrawals += 1;
        } catch {
            if (owed != 0) honestCallRefused = true;
        }
    }

    // ------------------------------------------------------------------ slots, trees and proofs

    function _running(Req storage r) internal view returns (bool) {
        RequestState s = market.requestState(r.id);
        return s == RequestState.New || s == RequestState.Started;
    }

    function _ended(Req storage r) internal view returns (bool) {
        return !_running(r);
    }

    function _slot(Req storage r, uint256 index) internal view returns (bytes32) {
        return Challenges.slotId(r.id, index);
    }

    /// A host never evicted from `slot` (the current holder included), or zero if all were.
    function _freshHost(bytes32 slot, uint256 seed) internal view returns (address) {
        for (uint256 k; k < hosts.length; ++k) {
            address h = hosts[(seed + k) % hosts.length];
            if (!wasEvicted[slot][h]) return h;
        }
        return address(0);
    }

    function _otherHost(address not_, uint256 seed) internal view returns (address) {
        address h = hosts[seed % hosts.length];
        return h == not_ ? hosts[(seed + 1) % hosts.length] : h;
    }

    function _datasetPath(Req storage r, uint256 index) internal view returns (bytes32[] memory) {
        bytes32[] memory roots = new bytes32[](r.slots);
        for (uint256 i; i < r.slots; ++i) {
            roots[i] = treeRoot[(r.tree0 + i) % TREES];
        }
        return SlotBuilder.datasetPath(roots, index);
    }

    /// The direct proof of slot `index` under `seed`, from the stored tree: SlotBuilder.prove's
    /// layout (cells, then the siblings level by level), reading only the nodes it needs.
    function _proof(Req storage r, uint256 index, bytes32 seed) internal view returns (bytes memory proof) {
        uint256 t = (r.tree0 + index) % TREES;
        uint256[] memory known = SlotBuilder.uniqueSamples(seed, _slot(r, index), r.samples, CELLS);
        uint256 n = known.length;
        for (uint256 i; i < n; ++i) {
            proof = bytes.concat(proof, SlotBuilder.cell(treeContent[t], CELLS, known[i]));
        }
        bytes32[] storage nodes = treeNodes[t];
        for (uint256 level; level < DEPTH; ++level) {
            uint256 offset = 2 * CELLS - ((2 * CELLS) >> level);
            uint256 k;
            uint256 i;
            while (i < n) {
                uint256 idx = known[i];
                if (idx & 1 == 0 && i + 1 < n && known[i + 1] == idx + 1) {
                    i += 2;
                } else {
                    proof = bytes.concat(proof, nodes[offset + (idx ^ 1)]);
                    i += 1;
                }
                known[k++] = idx >> 1;
            }
            n = k;
        }
    }
}
