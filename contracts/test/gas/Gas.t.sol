// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {Marketplace} from "../../src/Marketplace.sol";
import {MarketplaceConfig, ProofScheme, RequestParams} from "../../src/MarketplaceTypes.sol";
import {Periods} from "../../src/libraries/Periods.sol";
import {BlockHashRandomness} from "../../src/randomness/BlockHashRandomness.sol";
import {HoardTestToken} from "../../src/token/HoardTestToken.sol";
import {MarketplaceHarness} from "../utils/MarketplaceHarness.sol";
import {SlotBuilder} from "../utils/SlotBuilder.sol";
import {Vectors} from "../utils/Vectors.sol";
import {vm} from "../utils/Vm.sol";

/// @notice Execution gas of the hot calls on the 1 GiB vector cases, checked against the targets
/// (the whole-transaction figures on anvil come from script/gas-anvil.sh). The committed
/// .gas-snapshot records these tests.
contract GasTest {
    event log_named_uint(string key, uint256 val);

    uint64 internal constant PERIOD = 10;
    uint256 internal constant SLOTS = 16; // k = 10, m = 6

    HoardTestToken internal token;
    MarketplaceHarness internal market;
    address internal renter = address(0xA11CE);
    address internal host = address(0xB0B1);
    address internal reporter = address(0xCAFE);
    string internal json;

    function setUp() public {
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
        address[3] memory actors = [renter, host, reporter];
        for (uint256 i; i < actors.length; ++i) {
            token.faucet(actors[i], 1_000_000 ether);
            vm.prank(actors[i]);
            token.approve(address(market), type(uint256).max);
        }
        json = Vectors.load();
    }

    /// @dev Opens a 16-slot request under the vector's id, with the vector's slot root at its index.
    function _open(Vectors.ProofCase memory c) internal returns (bytes32[] memory path) {
        bytes32[] memory roots = new bytes32[](SLOTS);
        for (uint256 i; i < SLOTS; ++i) {
            roots[i] = i == c.slotIndex ? c.slotRoot : keccak256(abi.encode("filler", i));
        }
        RequestParams memory p = RequestParams({
            datasetRoot: SlotBuilder.datasetRoot(roots),
            manifestId: keccak256("manifest"),
            pricePerBytePerSecond: 1,
            collateralPerByte: 1000,
            slotSize: uint64(c.cellCount * 256),
            cellCount: uint64(c.cellCount),
            duration: 30 days,
            expiry: 1 days,
            proofProbability: 1,
            slots: uint16(SLOTS),
            maxSlotLoss: 6,
            samples: uint16(c.samples),
            scheme: ProofScheme.Direct,
            compactRoot: bytes32(0)
        });
        vm.prank(renter);
        market.requestStorageWithId(c.requestId, p);
        _seedCurrentPeriod(c.seed);
        return SlotBuilder.datasetPath(roots, c.slotIndex);
    }

    function _seedCurrentPeriod(bytes32 seed) internal {
        vm.setBlockhash(Periods.seedBlock(block.number / PERIOD, PERIOD), seed);
    }

    function _nextPeriod(bytes32 seed) internal {
        vm.roll((block.number / PERIOD + 1) * PERIOD);
        vm.warp(block.timestamp + 120);
        _seedCurrentPeriod(seed);
    }

    function _fill(Vectors.ProofCase memory c, bytes32[] memory path) internal returns (uint256 used) {
        vm.prank(host);
        uint256 before = gasleft();
        market.fillSlot(c.requestId, c.slotIndex, c.slotRoot, path, c.proof);
        used = before - gasleft();
    }

    function _fillCase(string memory name, uint256 target) internal {
        Vectors.ProofCase memory c = Vectors.proofCaseNamed(json, name);
        uint256 used = _fill(c, _open(c));
        emit log_named_uint(string.concat("fillSlot execution gas, ", name), used);
        vm.assertLe(used, target);
    }

    function _submitCase(string memory name, uint256 target) internal {
        Vectors.ProofCase memory c = Vectors.proofCaseNamed(json, name);
        _fill(c, _open(c));
        _nextPeriod(c.seed);
        vm.prank(host);
        uint256 before = gasleft();
        market.submitProof(c.slotId, c.proof);
        uint256 used = before - gasleft();
        emit log_named_uint(string.concat("submitProof execution gas, ", name), used);
        vm.assertLe(used, target);
    }

    function _markCase(uint256 marksBefore) internal returns (uint256 used) {
        Vectors.ProofCase memory c = Vectors.proofCaseNamed(json, "1 GiB slot, 5 samples");
        _fill(c, _open(c));
        _nextPeriod(c.seed); // the fill's proof covers the fill period
        for (uint256 i; i <= marksBefore; ++i) {
            uint256 period = block.number / PERIOD;
            _nextPeriod(c.seed);
            vm.prank(reporter);
            uint256 before = gasleft();
            market.markProofMissing(c.slotId, period);
            used = before - gasleft();
        }
    }

    function test_Gas_FillSlot_OneBlock1Sample() public {
        _fillCase("one block, 1 sample", 150_000);
    }

    function test_Gas_FillSlot_1GiB5Samples() public {
        _fillCase("1 GiB slot, 5 samples", 250_000);
    }

    function test_Gas_FillSlot_1GiB16Samples() public {
        _fillCase("1 GiB slot, 16 samples", 450_000);
    }

    function test_Gas_SubmitProof_1GiB5Samples() public {
        _submitCase("1 GiB slot, 5 samples", 5 * 40_000);
    }

    function test_Gas_SubmitProof_1GiB16Samples() public {
        _submitCase("1 GiB slot, 16 samples", 16 * 40_000);
    }

    function test_Gas_MarkProofMissing() public {
        uint256 used = _markCase(0);
        emit log_named_uint("markProofMissing execution gas", used);
        vm.assertLe(used, 100_000);
    }

    function test_Gas_MarkProofMissing_Evicts() public {
        uint256 used = _markCase(2);
        emit log_named_uint("markProofMissing (eviction) execution gas", used);
        vm.assertLe(used, 100_000);
    }

    function test_Gas_ExtendRequest() public {
        Vectors.ProofCase memory c = Vectors.proofCaseNamed(json, "1 GiB slot, 16 samples");
        _fill(c, _open(c));
        vm.warp(block.timestamp + 1 days);
        vm.prank(renter);
        uint256 before = gasleft();
        market.extendRequest(c.requestId, 30 days);
        uint256 used = before - gasleft();
        emit log_named_uint("extendRequest execution gas", used);
        vm.assertLe(used, 60_000);
    }
}
