// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {IMarketplace} from "../../src/IMarketplace.sol";
import {MarketplaceConfig, ProofScheme, RequestParams} from "../../src/MarketplaceTypes.sol";
import {HoardTestToken} from "../../src/token/HoardTestToken.sol";
import {CompactVerifier4} from "../../src/verifiers/CompactVerifier4.sol";
import {FixedRandomness} from "./FixedRandomness.sol";
import {MarketplaceHarness} from "./MarketplaceHarness.sol";
import {vm} from "./Vm.sol";

/// @notice The compact vectors of testdata/vectors.json (key `compact`, written by hoard-compact)
/// set up on a Marketplace with the committed 4-slot verifier: requests A and B of one 4-slot
/// dataset, A filled by host 1, B by host 2, then the first block of the next period with the
/// vectors' proof seed.
abstract contract CompactFixture {
    uint64 internal constant PERIOD = 10;
    string internal constant K = ".compact";

    string internal json;
    HoardTestToken internal token;
    FixedRandomness internal randomness;
    CompactVerifier4 internal verifier;
    MarketplaceHarness internal market;
    address internal renter = address(0xA11CE);
    address internal host1;
    address internal host2;
    address internal reporter = address(0xCAFE);
    bytes32[2] internal requestIds;
    uint256 internal fillPeriod;

    struct Batch {
        string name;
        address host;
        uint256 request;
        uint256[] slots;
        bool valid;
        uint256[8] proof;
    }

    function setUp() public virtual {
        json = vm.readFile("../testdata/vectors.json");
        vm.roll(1000);
        vm.warp(1_700_000_000);
        token = new HoardTestToken();
        randomness = new FixedRandomness();
        verifier = new CompactVerifier4();
        market = new MarketplaceHarness(
            MarketplaceConfig({
                token: address(token),
                randomness: address(randomness),
                periodLength: PERIOD,
                graceBlocks: PERIOD,
                maxMissed: 3,
                slashBps: 1000,
                reporterRewardBps: 2500,
                repairRewardBps: 1000,
                compactVerifierSmall: address(verifier),
                compactVerifierLarge: address(0)
            })
        );
        host1 = vm.parseJsonAddress(json, string.concat(K, ".hosts[0]"));
        host2 = vm.parseJsonAddress(json, string.concat(K, ".hosts[1]"));
        address[4] memory people = [renter, host1, host2, address(0xB0B3)];
        for (uint256 i; i < people.length; ++i) {
            token.faucet(people[i], 1_000_000 ether);
            vm.prank(people[i]);
            token.approve(address(market), type(uint256).max);
        }
        for (uint256 r; r < 2; ++r) {
            requestIds[r] = _b32(string.concat(".requests[", vm.toString(r), "].requestId"));
            vm.prank(renter);
            market.requestStorageWithId(requestIds[r], compactParams());
        }
        randomness.setSeed(_b32(".fillSeed"));
        fillPeriod = market.currentPeriod();
        for (uint256 i; i < 4; ++i) {
            _fill(host1, 0, i);
            _fill(host2, 1, i);
        }
        vm.roll((block.number / PERIOD + 1) * PERIOD);
        randomness.setSeed(_b32(".seed"));
    }

    function compactParams() internal view returns (RequestParams memory) {
        return RequestParams({
            datasetRoot: _b32(".dataset.datasetRoot"),
            manifestId: keccak256("manifest"),
            pricePerBytePerSecond: 1,
            collateralPerByte: 1,
            slotSize: uint64(vm.parseJsonUint(json, string.concat(K, ".dataset.cellCount")) * 256),
            cellCount: uint64(vm.parseJsonUint(json, string.concat(K, ".dataset.cellCount"))),
            duration: 30 days,
            expiry: 1 days,
            proofProbability: 1,
            slots: 4,
            maxSlotLoss: 2,
            samples: uint16(vm.parseJsonUint(json, string.concat(K, ".dataset.samples"))),
            scheme: ProofScheme.Compact,
            compactRoot: _b32(".dataset.compactRoot")
        });
    }

    function _b32(string memory key) internal view returns (bytes32) {
        return vm.parseJsonBytes32(json, string.concat(K, key));
    }

    function _at(string memory key, uint256 i) internal pure returns (string memory) {
        return string.concat(key, "[", vm.toString(i), "]");
    }

    function _fill(address host, uint256 r, uint256 i) internal {
        string memory req = _at(".requests", r);
        vm.prank(host);
        market.fillCompactSlot(
            requestIds[r],
            i,
            _b32(_at(".dataset.slotRoots", i)),
            vm.parseJsonBytes32Array(json, string.concat(K, _at(".dataset.rootPaths", i))),
            vm.parseJsonBytes(json, string.concat(K, req, _at(".fillProofs", i))),
            _b32(_at(".dataset.commitments", i)),
            vm.parseJsonBytes32Array(json, string.concat(K, _at(".dataset.commitmentPaths", i)))
        );
    }

    /// @notice Slot `i` of request `r`.
    function slotId(uint256 r, uint256 i) internal view returns (bytes32) {
        return market.slotId(requestIds[r], i);
    }

    function batch(string memory name) internal view returns (Batch memory b) {
        uint256 n = abi.decode(vm.parseJson(json, string.concat(K, ".batches[*].name")), (string[])).length;
        for (uint256 i; i < n; ++i) {
            string memory k = string.concat(K, _at(".batches", i));
            if (
                keccak256(bytes(vm.parseJsonString(json, string.concat(k, ".name"))))
                    != keccak256(bytes(name))
            ) {
                continue;
            }
            b.name = name;
            b.host = vm.parseJsonAddress(json, string.concat(k, ".host"));
            b.request = vm.parseJsonUint(json, string.concat(k, ".request"));
            b.slots = vm.parseJsonUintArray(json, string.concat(k, ".slots"));
            b.valid = vm.parseJsonBool(json, string.concat(k, ".valid"));
            bytes32[] memory words = vm.parseJsonBytes32Array(json, string.concat(k, ".proof"));
            for (uint256 w; w < 8; ++w) {
                b.proof[w] = uint256(words[w]);
            }
            return b;
        }
        revert(string.concat("no compact batch named ", name));
    }

    /// @notice The batch's slot ids, in its order.
    function ids(Batch memory b) internal view returns (bytes32[] memory out) {
        out = new bytes32[](b.slots.length);
        for (uint256 i; i < out.length; ++i) {
            out[i] = slotId(b.request, b.slots[i]);
        }
    }

    function submit(address host, bytes32[] memory slots, uint256[8] memory proof) internal {
        uint256 period = market.currentPeriod();
        vm.prank(host);
        market.submitCompactProof(period, slots, proof);
    }

    function expectSubmitRevert(
        address host,
        bytes32[] memory slots,
        uint256[8] memory proof,
        bytes memory err
    ) internal {
        uint256 period = market.currentPeriod();
        vm.expectRevert(err);
        vm.prank(host);
        market.submitCompactProof(period, slots, proof);
    }

    function errorOf(bytes4 selector) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector);
    }

    function invalidProof() internal pure returns (bytes memory) {
        return abi.encodeWithSelector(IMarketplace.InvalidProof.selector);
    }
}
