// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {IMarketplace} from "../../src/IMarketplace.sol";
import {Marketplace} from "../../src/Marketplace.sol";
import {
    MarketplaceConfig,
    ProofScheme,
    RequestParams,
    RequestState,
    SlotState
} from "../../src/MarketplaceTypes.sol";
import {Challenges} from "../../src/libraries/Challenges.sol";
import {BlockHashRandomness} from "../../src/randomness/BlockHashRandomness.sol";
import {HoardTestToken} from "../../src/token/HoardTestToken.sol";
import {SlotBuilder} from "./SlotBuilder.sol";
import {vm} from "./Vm.sol";

/// @notice Shared fixture: a token, block-hash randomness, a Marketplace with short periods, funded
/// actors, and small datasets whose slots the SlotBuilder can prove.
abstract contract MarketplaceTestBase {
    uint64 internal constant PERIOD = 10;
    uint64 internal constant GRACE = 10;
    uint8 internal constant MAX_MISSED = 3;
    uint16 internal constant SLASH_BPS = 1000;
    uint16 internal constant REPORTER_BPS = 2500;
    uint16 internal constant REPAIR_BPS = 1000;
    uint256 internal constant START_TIME = 1_700_000_000;
    uint256 internal constant START_BLOCK = 1000;

    HoardTestToken internal token;
    BlockHashRandomness internal randomness;
    Marketplace internal market;

    address internal renter = address(0xA11CE);
    address internal host1 = address(0xB0B1);
    address internal host2 = address(0xB0B2);
    address internal host3 = address(0xB0B3);
    address internal host4 = address(0xB0B4);
    address internal host5 = address(0xB0B5);
    address internal reporter = address(0xCAFE);

    /// What the tests know about each request they opened, to rebuild its slots.
    struct Fixture {
        bytes32 tag;
        uint64 cellCount;
        uint16 samples;
        bytes32[] roots;
    }

    mapping(bytes32 requestId => Fixture) internal fixtures;

    function setUp() public virtual {
        vm.roll(START_BLOCK);
        vm.warp(START_TIME);
        token = new HoardTestToken();
        randomness = new BlockHashRandomness();
        market = _deploy(defaultConfig());
        address[7] memory actors = [renter, host1, host2, host3, host4, host5, reporter];
        for (uint256 i; i < actors.length; ++i) {
            token.faucet(actors[i], 1_000_000 ether);
            vm.prank(actors[i]);
            token.approve(address(market), type(uint256).max);
        }
    }

    function _deploy(MarketplaceConfig memory cfg) internal virtual returns (Marketplace) {
        return new Marketplace(cfg);
    }

    function defaultConfig() internal view returns (MarketplaceConfig memory) {
        return MarketplaceConfig({
            token: address(token),
            randomness: address(randomness),
            periodLength: PERIOD,
            graceBlocks: GRACE,
            maxMissed: MAX_MISSED,
            slashBps: SLASH_BPS,
            reporterRewardBps: REPORTER_BPS,
            repairRewardBps: REPAIR_BPS,
            compactVerifierSmall: address(0),
            compactVerifierLarge: address(0)
        });
    }

    // ------------------------------------------------------------------ datasets and requests

    function _slotTree(bytes32 tag, uint256 index, uint64 cellCount)
        internal
        view
        returns (SlotBuilder.Slot memory)
    {
        return SlotBuilder.build(keccak256(abi.encode(tag, index)), cellCount);
    }

    function _roots(bytes32 tag, uint16 slots, uint64 cellCount)
        internal
        view
        returns (bytes32[] memory roots)
    {
        roots = new bytes32[](slots);
        for (uint256 i; i < slots; ++i) {
            roots[i] = SlotBuilder.root(_slotTree(tag, i, cellCount));
        }
    }

    /// @notice Parameters of a 4-slot (k=3, m=1), one-block-per-slot request proven every period.
    function defaultParams() internal pure returns (RequestParams memory) {
        return RequestParams({
            datasetRoot: bytes32(uint256(1)), // replaced by _params
            manifestId: keccak256("manifest"),
            pricePerBytePerSecond: 1000,
            collateralPerByte: 1e9,
            slotSize: 256 * 256,
            cellCount: 256,
            duration: 30 days,
            expiry: 1 days,
            proofProbability: 1,
            slots: 4,
            maxSlotLoss: 1,
            samples: 5,
            scheme: ProofScheme.Direct,
            compactRoot: bytes32(0)
        });
    }

    /// @notice `p` with the dataset root of slots built from `tag`.
    function _params(bytes32 tag, RequestParams memory p) internal view returns (RequestParams memory) {
        p.datasetRoot = SlotBuilder.datasetRoot(_roots(tag, p.slots, p.cellCount));
        return p;
    }

    function _request(bytes32 tag, RequestParams memory p) internal returns (bytes32 requestId) {
        p = _params(tag, p);
        vm.prank(renter);
        requestId = market.requestStorage(p);
        Fixture storage f = fixtures[requestId];
        f.tag = tag;
        f.cellCount = p.cellCount;
        f.samples = p.samples;
        f.roots = _roots(tag, p.slots, p.cellCount);
    }

    function _request() internal returns (bytes32) {
        return _request("default", defaultParams());
    }

    // ------------------------------------------------------------------ proofs and fills

    function _slotId(bytes32 requestId, uint256 index) internal pure returns (bytes32) {
        return Challenges.slotId(requestId, index);
    }

    /// @notice The proof of slot `index` for `period` (whose seed must be readable).
    function _proof(bytes32 requestId, uint256 index, uint256 period) internal view returns (bytes memory) {
        Fixture storage f = fixtures[requestId];
        SlotBuilder.Slot memory tree = _slotTree(f.tag, index, f.cellCount);
        return
            SlotBuilder.proveChallenge(tree, market.periodSeed(period), _slotId(requestId, index), f.samples);
    }

    function _currentProof(bytes32 requestId, uint256 index) internal view returns (bytes memory) {
        return _proof(requestId, index, market.currentPeriod());
    }

    function _path(bytes32 requestId, uint256 index) internal view returns (bytes32[] memory) {
        return SlotBuilder.datasetPath(fixtures[requestId].roots, index);
    }

    function _fill(bytes32 requestId, uint256 index, address host) internal {
        bytes32 root = fixtures[requestId].roots[index];
        bytes32[] memory path = _path(requestId, index);
        bytes memory proof = _currentProof(requestId, index);
        vm.prank(host);
        market.fillSlot(requestId, index, root, path, proof);
    }

    /// @notice Fills every slot, slot i by host i+1 (up to five hosts, then round robin).
    function _fillAll(bytes32 requestId) internal {
        address[5] memory hs = [host1, host2, host3, host4, host5];
        uint256 slots = market.getRequest(requestId).params.slots;
        for (uint256 i; i < slots; ++i) {
            _fill(requestId, i, hs[i % 5]);
        }
    }

    function _submit(bytes32 requestId, uint256 index, address host) internal {
        bytes memory proof = _currentProof(requestId, index);
        vm.prank(host);
        market.submitProof(_slotId(requestId, index), proof);
    }

    // ------------------------------------------------------------------ time

    /// @notice Moves to the first block of the next period (and 12 s per block).
    function _nextPeriod() internal {
        uint256 next = (block.number / PERIOD + 1) * PERIOD;
        vm.warp(block.timestamp + (next - block.number) * 12);
        vm.roll(next);
    }

    function _advancePeriods(uint256 n) internal {
        for (uint256 i; i < n; ++i) {
            _nextPeriod();
        }
    }

    /// @notice Misses `n` periods of slot `index` and marks each as missing (proofProbability 1).
    function _missAndMark(bytes32 requestId, uint256 index, uint256 n) internal {
        bytes32 id = _slotId(requestId, index);
        for (uint256 i; i < n; ++i) {
            uint256 period = market.currentPeriod();
            _nextPeriod();
            vm.prank(reporter);
            market.markProofMissing(id, period);
        }
    }

    function _bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        if (max <= min) return min;
        return min + x % (max - min + 1);
    }
}
