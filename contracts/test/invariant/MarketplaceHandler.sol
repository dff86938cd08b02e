// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {Marketplace} from "../../src/Marketplace.sol";
import {RequestInfo, RequestState, SlotState} from "../../src/MarketplaceTypes.sol";
import {HoardTestToken} from "../../src/token/HoardTestToken.sol";
import {MarketplaceActions} from "./MarketplaceActions.sol";

/// @notice Drives the Marketplace through random but meaningful sequences of the actions in
/// `MarketplaceActions`, which keeps the ghost books the invariants check.
///
/// Forge calls only `step`. Half of the steps take a random action (open, fill, prove, neglect a slot
/// or a whole request, a false report, extend, move time, jump to a request's end, withdrawals by the
/// right and the wrong accounts); the other half push toward the first action this run has not
/// reached yet (see `_push`), so that every run of the configured depth reaches proofs, marks,
/// evictions, repairs by another host, extensions, failures beyond maxSlotLoss, cancellations,
/// finishes and every kind of withdrawal. The test's `afterInvariant` fails a run in which any of
/// them stayed at zero.
contract MarketplaceHandler is MarketplaceActions {
    /// Marks a test-only contract (as forge-std's `Test` does): `forge build --sizes` leaves it out
    /// of the EIP-170 check, which a handler of this many actions exceeds and never needs to meet.
    bool public constant IS_TEST = true;

    constructor(Marketplace market_, HoardTestToken token_) MarketplaceActions(market_, token_) {}

    // ------------------------------------------------------------------ the one entry point

    function step(uint256 seed) external {
        ++calls;
        uint256 a = uint256(keccak256(abi.encode(seed, 1)));
        uint256 b = uint256(keccak256(abi.encode(seed, 2)));
        if (seed % 2 == 1 || !_push(a, b)) _random((seed >> 1) % 24, a, b);
        _noteEnds();
    }

    /// One random action. Actions on a running request pick a running one, withdrawals an ended one;
    /// with none of the kind the step opens a request (or, at the limit, moves time).
    function _random(uint256 action, uint256 a, uint256 b) internal {
        if (action == 0) {
            if (!_open(a)) _advanceBlocks(1 + b % periodLength);
            return;
        }
        if (action >= 19 && action <= 22) {
            uint256 e = _findEnded(a);
            if (e == 0) {
                _advanceTime(1 + b % 600);
            } else if (action <= 20) {
                _withdrawHost(reqs[e - 1], b % reqs[e - 1].slots);
            } else if (action == 21) {
                _withdrawWrong(b);
            } else {
                _withdrawRenter(reqs[e - 1]);
            }
            return;
        }
        if (action == 23) {
            _withdrawReward(b);
            return;
        }
        if (action >= 15 && action <= 17) {
            if (action == 17) _advanceTime(1 + b % 300);
            else _advanceBlocks(1 + b % (2 * periodLength));
            return;
        }
        if (action == 18) {
            // Jump to the end of a started request only: a jump past a New one's expiry cancels it,
            // which time does often enough.
            uint256 started = _findRunning(a, RequestState.Started);
            if (started != 0) _finish(reqs[started - 1]);
            else _towardStart(a);
            return;
        }
        uint256 i = _findRunning(a, RequestState.None);
        if (i == 0) {
            if (!_open(a)) _advanceBlocks(1 + b % periodLength);
            return;
        }
        Req storage r = reqs[i - 1];
        if (action <= 4) {
            // Mostly toward a start (the New request closest to it), else any open slot of `r`.
            if (action <= 2 && _findRunning(a, RequestState.New) != 0) _towardStart(a);
            else if (!_fillOpen(r, b)) _fillRandom(r, b);
        } else if (action == 5) {
            _fillRandom(r, b);
        } else if (action <= 9) {
            _prove(r, b);
        } else if (action <= 11) {
            _neglect(r, uint256(1) << (b % r.slots), b >> 8);
        } else if (action == 12) {
            _neglect(r, type(uint256).max, b >> 8);
        } else if (action == 13) {
            _falseReport(r, b);
        } else {
            _extend(r, b);
        }
    }

    /// Index (1-based, 0 if none) of an ended request, starting the search at `from`.
    function _findEnded(uint256 from) internal view returns (uint256) {
        uint256 n = reqs.length;
        for (uint256 k; k < n; ++k) {
            uint256 i = (from + k) % n;
            if (_ended(reqs[i])) return i + 1;
        }
        return 0;
    }

    /// Fills a Free or Repair slot of `r` (from slot `seed` on) by a host never evicted from it.
    function _fillOpen(Req storage r, uint256 seed) internal returns (bool) {
        for (uint256 k; k < r.slots; ++k) {
            uint256 index = (seed + k) % r.slots;
            bytes32 slot = _slot(r, index);
            SlotState s = market.slotState(slot);
            if (s != SlotState.Free && s != SlotState.Repair) continue;
            address host = _freshHost(slot, seed >> 8);
            if (host == address(0)) continue;
            _fill(r, index, host);
            return true;
        }
        return false;
    }

    // ------------------------------------------------------------------ pushing toward coverage

    /// Takes one action toward the first count of this run that is still zero; false if all are
    /// reached (the step is then random).
    function _push(uint256 a, uint256 b) internal returns (bool) {
        Counts storage c = counts;
        if (c.requests == 0) return _openOrMakeRoom(a);
        if (c.fills == 0) return _towardFill(a, false);
        if (c.proofs == 0) return _towardProof(a);
        if (c.evictions == 0 || c.marks == 0) return _towardEviction(a, true);
        if (c.repairs == 0) return _towardRepair(a);
        if (c.extensions == 0) return _towardExtension(a, b);
        if (c.failures == 0) return _towardFailure(a);
        if (c.cancellations == 0) return _towardEnd(a, RequestState.New);
        if (c.finishes == 0) return _towardEnd(a, RequestState.Started);
        if (c.repairedHostWithdrawals == 0 || c.hostWithdrawals == 0) return _towardHostWithdrawal(a);
        if (c.renterWithdrawals == 0) return _towardRenterWithdrawal(a);
        if (c.rewardWithdrawals == 0) return _towardRewardWithdrawal(a, b);
        if (c.refusedFills == 0) return _towardRefusedFill(a);
        if (c.refusedReports == 0) return _towardRefusedReport(a, b);
        if (c.refusedWithdrawals == 0) return _towardRefusedWithdrawal(a);
        return false;
    }

    /// Opens a request; if three are running already, jumps to the end of one instead. False only
    /// once the run has opened all its requests.
    function _openOrMakeRoom(uint256 a) internal returns (bool) {
        if (_open(a)) return true;
        uint256 i = _findRunning(a, RequestState.None);
        if (reqs.length >= MAX_REQUESTS || i == 0) return false;
        _finish(reqs[i - 1]);
        return true;
    }

    /// Index (1-based, 0 if none) of a running request in state `want` (None: either), starting the
    /// search at `from`.
    function _findRunning(uint256 from, RequestState want) internal view returns (uint256) {
        uint256 n = reqs.length;
        for (uint256 k; k < n; ++k) {
            uint256 i = (from + k) % n;
            RequestState s = market.requestState(reqs[i].id);
            if (s != RequestState.New && s != RequestState.Started) continue;
            if (want == RequestState.None || s == want) return i + 1;
        }
        return 0;
    }

    /// Fills a free (or, with `repairOnly`, a Repair) slot of a running request; opens one if none.
    function _towardFill(uint256 a, bool repairOnly) internal returns (bool) {
        uint256 n = reqs.length;
        for (uint256 k; k < n; ++k) {
            Req storage r = reqs[(a + k) % n];
            if (!_running(r)) continue;
            for (uint256 i; i < r.slots; ++i) {
                SlotState s = market.slotState(_slot(r, i));
                if (s == SlotState.Repair || (!repairOnly && s == SlotState.Free)) {
                    address host = _freshHost(_slot(r, i), a >> 8);
                    if (host != address(0)) {
                        _fill(r, i, host);
                        return true;
                    }
                }
            }
        }
        return _openOrMakeRoom(a);
    }

    function _towardProof(uint256 a) internal returns (bool) {
        uint256 i = _findRunning(a, RequestState.None);
        if (i == 0) return _towardFill(a, false);
        Req storage r = reqs[i - 1];
        if (market.getRequest(r.id).filledSlots == 0) return _towardFill(a, false);
        for (uint256 j; j < r.slots; ++j) {
            if (market.isProofRequired(_slot(r, j))) {
                _prove(r, type(uint256).max);
                return true;
            }
        }
        _nextPeriod();
        return true;
    }

    /// Neglects one filled slot, preferring one already marked and one whose eviction leaves the
    /// request running (so that it can be repaired).
    function _towardEviction(uint256 a, bool keepRunning) internal returns (bool) {
        uint256 n = reqs.length;
        uint256 best;
        uint256 bestScore;
        for (uint256 k; k < n; ++k) {
            uint256 ri = (a + k) % n;
            Req storage r = reqs[ri];
            if (!_running(r)) continue;
            RequestInfo memory info = market.getRequest(r.id);
            bool survives = info.state == RequestState.New
                || uint256(r.slots) - info.filledSlots + 1 <= info.params.maxSlotLoss;
            for (uint256 i; i < r.slots; ++i) {
                bytes32 slot = _slot(r, i);
                if (holder[slot] == address(0)) continue;
                uint256 score = 1 + holderMisses[slot] * 2 + (survives || !keepRunning ? 4 : 0);
                if (score > bestScore) {
                    bestScore = score;
                    best = (ri << 8) | (i + 1);
                }
            }
        }
        if (best == 0) return _towardFill(a, false);
        Req storage target = reqs[best >> 8];
        _neglect(target, uint256(1) << ((best & 0xff) - 1), a >> 16);
        return true;
    }

    function _towardRepair(uint256 a) internal returns (bool) {
        for (uint256 k; k < reqs.length; ++k) {
            Req storage r = reqs[k];
            if (!_running(r)) continue;
            for (uint256 i; i < r.slots; ++i) {
                if (market.slotState(_slot(r, i)) == SlotState.Repair) return _towardFill(k, true);
            }
        }
        return _towardEviction(a, true);
    }

    function _towardExtension(uint256 a, uint256 b) internal returns (bool) {
        uint256 i = _findRunning(a, RequestState.None);
        if (i == 0) return _openOrMakeRoom(a);
        _extend(reqs[i - 1], b);
        return true;
    }

    /// Neglects every slot of a started request; fills toward a start if none has started.
    function _towardFailure(uint256 a) internal returns (bool) {
        uint256 i = _findRunning(a, RequestState.Started);
        if (i == 0) return _towardStart(a);
        _neglect(reqs[i - 1], type(uint256).max, a >> 8);
        return true;
    }

    /// Fills a free slot of the New request closest to starting; opens one if none.
    function _towardStart(uint256 a) internal returns (bool) {
        uint256 best;
        uint256 bestFilled;
        for (uint256 k; k < reqs.length; ++k) {
            if (market.requestState(reqs[k].id) != RequestState.New) continue;
            uint256 filled = market.getRequest(reqs[k].id).filledSlots + 1;
            if (filled > bestFilled) {
                bestFilled = filled;
                best = k + 1;
            }
        }
        if (best == 0) return _openOrMakeRoom(a);
        Req storage r = reqs[best - 1];
        for (uint256 i; i < r.slots; ++i) {
            bytes32 slot = _slot(r, i);
            SlotState s = market.slotState(slot);
            if (s != SlotState.Free && s != SlotState.Repair) continue;
            address host = _freshHost(slot, a >> 8);
            if (host != address(0)) {
                _fill(r, i, host);
                return true;
            }
        }
        return _openOrMakeRoom(a);
    }

    /// Jumps to the end of a running request in state `want` (New: past its expiry, Started: its end).
    function _towardEnd(uint256 a, RequestState want) internal returns (bool) {
        uint256 i = _findRunning(a, want);
        if (i != 0) {
            _finish(reqs[i - 1]);
            return true;
        }
        if (want == RequestState.Started) return _towardStart(a);
        return _openOrMakeRoom(a);
    }

    function _towardHostWithdrawal(uint256 a) internal returns (bool) {
        bool wantRepaired = counts.repairedHostWithdrawals == 0;
        for (uint256 k; k < reqs.length; ++k) {
            Req storage r = reqs[(a + k) % reqs.length];
            bool ended = _ended(r);
            for (uint256 i; i < r.slots; ++i) {
                bytes32 slot = _slot(r, i);
                if (holder[slot] == address(0) || market.slotState(slot) == SlotState.Paid) continue;
                if (wantRepaired && !holderRepaired[slot]) continue;
                if (ended) {
                    _withdrawHost(r, i);
                } else {
                    _finish(r);
                }
                return true;
            }
        }
        return wantRepaired ? _towardRepair(a) : _towardFill(a, false);
    }

    function _towardRenterWithdrawal(uint256 a) internal returns (bool) {
        for (uint256 k; k < reqs.length; ++k) {
            Req storage r = reqs[(a + k) % reqs.length];
            if (market.getRequest(r.id).renterWithdrawn) continue;
            if (_ended(r)) _withdrawRenter(r);
            else _finish(r);
            return true;
        }
        return _openOrMakeRoom(a);
    }

    function _towardRewardWithdrawal(uint256 a, uint256 b) internal returns (bool) {
        for (uint256 k; k < reporters.length; ++k) {
            if (market.rewardOf(reporters[k]) != 0) {
                _withdrawReward(k);
                return true;
            }
        }
        return _towardEviction(a ^ b, false);
    }

    function _towardRefusedFill(uint256 a) internal returns (bool) {
        for (uint256 k; k < reqs.length; ++k) {
            Req storage r = reqs[(a + k) % reqs.length];
            if (!_running(r)) continue;
            for (uint256 i; i < r.slots; ++i) {
                bytes32 slot = _slot(r, i);
                if (holder[slot] != address(0)) {
                    _fill(r, i, _otherHost(holder[slot], a >> 8));
                    return true;
                }
            }
        }
        return _towardFill(a, false);
    }

    function _towardRefusedReport(uint256 a, uint256 b) internal returns (bool) {
        for (uint256 k; k < reqs.length; ++k) {
            Req storage r = reqs[(a + k) % reqs.length];
            if (!_running(r)) continue;
            for (uint256 i; i < r.slots; ++i) {
                if (holder[_slot(r, i)] != address(0)) {
                    _falseReport(r, i + r.slots * (b >> 8));
                    return true;
                }
            }
        }
        return _towardFill(a, false);
    }

    function _towardRefusedWithdrawal(uint256 a) internal returns (bool) {
        if (evictions.length == 0) return _towardEviction(a, false);
        _withdrawWrong(a);
        return true;
    }
}
