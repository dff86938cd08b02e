// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {IMarketplace} from "../src/IMarketplace.sol";
import {MarketplaceConfig, ProofScheme, RequestParams, RequestState} from "../src/MarketplaceTypes.sol";
import {Challenges} from "../src/libraries/Challenges.sol";
import {Periods} from "../src/libraries/Periods.sol";
import {BlockHashRandomness} from "../src/randomness/BlockHashRandomness.sol";
import {HoardTestToken} from "../src/token/HoardTestToken.sol";
import {LibHarness} from "./utils/LibHarness.sol";
import {MarketplaceHarness} from "./utils/MarketplaceHarness.sol";
import {SlotBuilder} from "./utils/SlotBuilder.sol";
import {Vectors} from "./utils/Vectors.sol";
import {vm} from "./utils/Vm.sol";

/// @notice The prover crate's shared vectors (testdata/vectors.json): the contracts compute the
/// same slot ids, challenges and sample indices, accept every valid proof and dataset path, and
/// reject every tampered one (wrong cell byte, wrong path node, wrong index, wrong period,
/// replayed proof). The Marketplace itself accepts each vector proof through fillSlot and
/// submitProof.
contract VectorsTest {
    uint64 internal constant PERIOD = 10;

    LibHarness internal lib;
    string internal json;
    HoardTestToken internal token;
    MarketplaceHarness internal market;
    address internal renter = address(0xA11CE);
    address internal host = address(0xB0B1);

    function setUp() public {
        lib = new LibHarness();
        json = Vectors.load();
        vm.roll(1000);
        vm.warp(1_700_000_000);
        token = new HoardTestToken();
        market = new MarketplaceHarness(
            MarketplaceConfig({
                token: address(token),
                randomness: address(new BlockHashRandomness()),
                periodLength: PERIOD,
                graceBlocks: PERIOD,
                maxMissed: 3,
                slashBps: 1000,
                reporterRewardBps: 2500,
                repairRewardBps: 1000,
                compactVerifierSmall: address(0),
                compactVerifierLarge: address(0)
            })
        );
        token.faucet(renter, 1_000_000 ether);
        token.faucet(host, 1_000_000 ether);
        vm.prank(renter);
        token.approve(address(market), type(uint256).max);
        vm.prank(host);
        token.approve(address(market), type(uint256).max);
    }

    function _verify(Vectors.ProofCase memory c, bytes32 seed, bytes memory proof)
        internal
        view
        returns (bool)
    {
        return lib.verifyChallenge(c.slotRoot, c.cellCount, seed, c.slotId, c.samples, proof);
    }

    // ------------------------------------------------------------------ proofs

    function test_Vectors_HaveTheExpectedCases() public view {
        vm.assertGe(Vectors.proofCount(json), 7);
        vm.assertGe(Vectors.datasetCount(json), 4);
        vm.assertEq(vm.parseJsonUint(json, ".version"), 1);
        // The gas figures depend on these two.
        vm.assertEq(Vectors.proofCaseNamed(json, "1 GiB slot, 5 samples").cellCount, 4_194_304);
        vm.assertEq(Vectors.proofCaseNamed(json, "1 GiB slot, 16 samples").samples, 16);
    }

    function test_Vectors_ChallengesMatch() public view {
        uint256 n = Vectors.proofCount(json);
        for (uint256 i; i < n; ++i) {
            Vectors.ProofCase memory c = Vectors.proofCase(json, i);
            vm.assertEq(Challenges.slotId(c.requestId, c.slotIndex), c.slotId, c.name);
            vm.assertEq(Challenges.isRequired(c.seed, c.slotId, c.proofProbability), c.required, c.name);
            vm.assertEq(Challenges.sampleIndices(c.seed, c.slotId, c.samples, c.cellCount), c.indices, c.name);
            uint256 unique = Challenges.sortUnique(c.indices).length;
            vm.assertEq(unique, c.cells, c.name);
            vm.assertEq(c.proof.length, 256 * c.cells + 32 * c.siblings, c.name);
        }
    }

    function test_Vectors_AcceptEveryValidProof() public view {
        uint256 n = Vectors.proofCount(json);
        for (uint256 i; i < n; ++i) {
            Vectors.ProofCase memory c = Vectors.proofCase(json, i);
            vm.assertTrue(_verify(c, c.seed, c.proof), c.name);
        }
    }

    function test_Vectors_RejectWrongCellByte() public view {
        uint256 n = Vectors.proofCount(json);
        for (uint256 i; i < n; ++i) {
            Vectors.ProofCase memory c = Vectors.proofCase(json, i);
            for (uint256 k; k < c.cells; ++k) {
                bytes memory proof = bytes.concat(c.proof);
                proof[k * 256 + (k * 37) % 256] ^= 0x01; // one byte of every cell in turn
                vm.assertFalse(_verify(c, c.seed, proof), c.name);
            }
        }
    }

    function test_Vectors_RejectWrongPathNode() public view {
        uint256 n = Vectors.proofCount(json);
        for (uint256 i; i < n; ++i) {
            Vectors.ProofCase memory c = Vectors.proofCase(json, i);
            for (uint256 k; k < c.siblings; ++k) {
                bytes memory proof = bytes.concat(c.proof);
                proof[c.cells * 256 + k * 32 + k % 32] ^= 0x80; // every sibling in turn
                vm.assertFalse(_verify(c, c.seed, proof), c.name);
            }
        }
    }

    function test_Vectors_RejectWrongIndex() public view {
        uint256 n = Vectors.proofCount(json);
        for (uint256 i; i < n; ++i) {
            Vectors.ProofCase memory c = Vectors.proofCase(json, i);
            // The same proof claimed for the neighbour of its first cell.
            uint256[] memory indices = Challenges.sortUnique(c.indices);
            uint256 moved = indices[0] ^ 1;
            bool taken;
            for (uint256 k; k < indices.length; ++k) {
                if (indices[k] == moved) taken = true;
            }
            if (taken) moved = indices[0] == 0 ? c.cellCount - 1 : indices[0] - 1;
            indices[0] = moved;
            indices = Challenges.sortUnique(indices);
            vm.assertFalse(lib.verifyIndices(c.slotRoot, c.cellCount, indices, c.proof), c.name);
            // And for another slot of the same request (its challenge differs).
            bytes32 other = Challenges.slotId(c.requestId, c.slotIndex + 1);
            vm.assertFalse(
                lib.verifyChallenge(c.slotRoot, c.cellCount, c.seed, other, c.samples, c.proof), c.name
            );
        }
    }

    function test_Vectors_RejectWrongPeriod() public view {
        uint256 n = Vectors.proofCount(json);
        for (uint256 i; i < n; ++i) {
            Vectors.ProofCase memory c = Vectors.proofCase(json, i);
            bytes32 nextSeed = keccak256(abi.encode(c.seed, "next period"));
            vm.assertFalse(_verify(c, nextSeed, c.proof), c.name);
        }
    }

    function test_Vectors_RejectWrongLength() public view {
        uint256 n = Vectors.proofCount(json);
        for (uint256 i; i < n; ++i) {
            Vectors.ProofCase memory c = Vectors.proofCase(json, i);
            vm.assertFalse(_verify(c, c.seed, bytes.concat(c.proof, bytes32(0))), c.name);
            bytes memory cut = bytes.concat(c.proof);
            assembly ("memory-safe") {
                mstore(cut, sub(mload(cut), 32))
            }
            vm.assertFalse(_verify(c, c.seed, cut), c.name);
        }
    }

    function test_Vectors_RejectWrongRoot() public view {
        uint256 n = Vectors.proofCount(json);
        for (uint256 i; i < n; ++i) {
            Vectors.ProofCase memory c = Vectors.proofCase(json, i);
            vm.assertFalse(
                lib.verifyChallenge(
                    keccak256(abi.encode(c.slotRoot)), c.cellCount, c.seed, c.slotId, c.samples, c.proof
                ),
                c.name
            );
        }
    }

    // ------------------------------------------------------------------ dataset paths

    function test_Vectors_AcceptEveryDatasetPath() public view {
        uint256 n = Vectors.datasetCount(json);
        for (uint256 d; d < n; ++d) {
            Vectors.DatasetCase memory c = Vectors.datasetCase(json, d);
            uint256 slots = c.slotRoots.length;
            vm.assertEq(SlotBuilder.datasetRoot(c.slotRoots), c.datasetRoot, c.name);
            for (uint256 i; i < slots; ++i) {
                vm.assertTrue(lib.verifyPath(c.datasetRoot, slots, i, c.slotRoots[i], c.paths[i]), c.name);
            }
        }
    }

    function test_Vectors_RejectTamperedDatasetPaths() public view {
        uint256 n = Vectors.datasetCount(json);
        for (uint256 d; d < n; ++d) {
            Vectors.DatasetCase memory c = Vectors.datasetCase(json, d);
            uint256 slots = c.slotRoots.length;
            for (uint256 i; i < slots; ++i) {
                bytes32[] memory path = c.paths[i];
                for (uint256 k; k < path.length; ++k) {
                    bytes32 saved = path[k];
                    path[k] = bytes32(uint256(saved) ^ 1);
                    vm.assertFalse(lib.verifyPath(c.datasetRoot, slots, i, c.slotRoots[i], path), c.name);
                    path[k] = saved;
                }
                uint256 other = (i + 1) % slots;
                if (other != i) {
                    vm.assertFalse(lib.verifyPath(c.datasetRoot, slots, other, c.slotRoots[i], path), c.name);
                }
                bytes32 wrongRoot = keccak256(abi.encode(c.slotRoots[i]));
                vm.assertFalse(lib.verifyPath(c.datasetRoot, slots, i, wrongRoot, path), c.name);
            }
        }
    }

    // ------------------------------------------------------------------ through the Marketplace

    /// Opens a request under the vector's id whose slot `slotIndex` is the vector's slot root, with the
    /// vector's seed as the current period's block hash; returns the fill arguments.
    function _open(Vectors.ProofCase memory c) internal returns (bytes32[] memory path) {
        uint256 slots = c.slotIndex + 2;
        bytes32[] memory roots = new bytes32[](slots);
        for (uint256 i; i < slots; ++i) {
            roots[i] = i == c.slotIndex ? c.slotRoot : keccak256(abi.encode("filler", i));
        }
        RequestParams memory p = RequestParams({
            datasetRoot: SlotBuilder.datasetRoot(roots),
            manifestId: keccak256("manifest"),
            pricePerBytePerSecond: 1,
            collateralPerByte: 1,
            slotSize: uint64(c.cellCount * 256),
            cellCount: uint64(c.cellCount),
            duration: 30 days,
            expiry: 1 days,
            proofProbability: uint64(c.proofProbability),
            slots: uint16(slots),
            maxSlotLoss: 1,
            samples: uint16(c.samples),
            scheme: ProofScheme.Direct,
            compactRoot: bytes32(0)
        });
        vm.prank(renter);
        market.requestStorageWithId(c.requestId, p);
        _seedPeriod(c.seed);
        return SlotBuilder.datasetPath(roots, c.slotIndex);
    }

    function _seedPeriod(bytes32 seed) internal {
        vm.setBlockhash(Periods.seedBlock(block.number / PERIOD, PERIOD), seed);
    }

    function _nextPeriod(bytes32 seed) internal {
        vm.roll((block.number / PERIOD + 1) * PERIOD);
        _seedPeriod(seed);
    }

    function test_Vectors_MarketplaceAcceptsEveryProof() public {
        uint256 n = Vectors.proofCount(json);
        for (uint256 i; i < n; ++i) {
            Vectors.ProofCase memory c = Vectors.proofCase(json, i);
            bytes32[] memory path = _open(c);
            vm.prank(host);
            market.fillSlot(c.requestId, c.slotIndex, c.slotRoot, path, c.proof);
            vm.assertEq(market.getSlot(c.slotId).host, host, c.name);
            (, bool required, uint256[] memory indices) = market.challenge(c.slotId, market.currentPeriod());
            vm.assertEq(indices, c.indices, c.name);
            vm.assertEq(required, c.required, c.name);
            // The same seed next period: a required vector's proof is accepted once more.
            _nextPeriod(c.seed);
            if (c.required) {
                vm.prank(host);
                market.submitProof(c.slotId, c.proof);
            } else {
                vm.expectRevert(
                    abi.encodeWithSelector(
                        IMarketplace.ProofNotRequired.selector, c.slotId, market.currentPeriod()
                    )
                );
                vm.prank(host);
                market.submitProof(c.slotId, c.proof);
            }
        }
    }

    function test_Vectors_MarketplaceRejectsReplayedProof() public {
        Vectors.ProofCase memory c = Vectors.proofCaseNamed(json, "1 GiB slot, 16 samples");
        bytes32[] memory path = _open(c);
        vm.prank(host);
        market.fillSlot(c.requestId, c.slotIndex, c.slotRoot, path, c.proof);
        _nextPeriod(c.seed);
        vm.prank(host);
        market.submitProof(c.slotId, c.proof);
        // Again in the same period.
        vm.expectRevert(
            abi.encodeWithSelector(
                IMarketplace.ProofAlreadySubmitted.selector, c.slotId, market.currentPeriod()
            )
        );
        vm.prank(host);
        market.submitProof(c.slotId, c.proof);
        // In the next period, whose seed is another.
        vm.roll((block.number / PERIOD + 1) * PERIOD);
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.InvalidProof.selector));
        vm.prank(host);
        market.submitProof(c.slotId, c.proof);
        vm.assertEq(uint256(market.requestState(c.requestId)), uint256(RequestState.New));
    }

    function test_Vectors_MarketplaceRejectsTamperedProof() public {
        Vectors.ProofCase memory c = Vectors.proofCaseNamed(json, "1 GiB slot, 5 samples");
        bytes32[] memory path = _open(c);
        bytes memory proof = bytes.concat(c.proof);
        proof[100] ^= 0x01;
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.InvalidProof.selector));
        vm.prank(host);
        market.fillSlot(c.requestId, c.slotIndex, c.slotRoot, path, proof);
        path[0] = bytes32(uint256(path[0]) ^ 1);
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.InvalidSlotRootPath.selector));
        vm.prank(host);
        market.fillSlot(c.requestId, c.slotIndex, c.slotRoot, path, c.proof);
    }
}
