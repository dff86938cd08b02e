// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {Marketplace} from "../src/Marketplace.sol";
import {MarketplaceConfig} from "../src/MarketplaceTypes.sol";
import {MarketplaceTestBase} from "./utils/MarketplaceTestBase.sol";
import {vm} from "./utils/Vm.sol";

contract MarketplaceConfigTest is MarketplaceTestBase {
    function test_Config_ReturnsDeploymentValues() public view {
        MarketplaceConfig memory c = market.config();
        vm.assertEq(keccak256(abi.encode(c)), keccak256(abi.encode(defaultConfig())));
        vm.assertEq(market.deploymentBlock(), START_BLOCK);
    }

    function test_Constructor_AcceptsLongPeriodsWithHistoryContract() public {
        // With EIP-2935 the seeds reach 8191 blocks back.
        vm.etch(randomness.HISTORY(), hex"00");
        MarketplaceConfig memory c = defaultConfig();
        c.periodLength = 4096;
        c.graceBlocks = 4095;
        Marketplace m = new Marketplace(c);
        vm.assertEq(m.config().periodLength, 4096);
    }

    function _expectConfigRevert(MarketplaceConfig memory c, bytes memory err) internal {
        vm.expectRevert(err);
        new Marketplace(c);
    }

    function test_RevertWhen_TokenZero() public {
        MarketplaceConfig memory c = defaultConfig();
        c.token = address(0);
        _expectConfigRevert(c, abi.encodeWithSelector(Marketplace.ZeroAddress.selector));
    }

    function test_RevertWhen_RandomnessZero() public {
        MarketplaceConfig memory c = defaultConfig();
        c.randomness = address(0);
        _expectConfigRevert(c, abi.encodeWithSelector(Marketplace.ZeroAddress.selector));
    }

    function test_RevertWhen_PeriodTooShort() public {
        MarketplaceConfig memory c = defaultConfig();
        c.periodLength = 1;
        _expectConfigRevert(c, abi.encodeWithSelector(Marketplace.InvalidPeriodLength.selector, 1));
    }

    function test_RevertWhen_GraceZero() public {
        MarketplaceConfig memory c = defaultConfig();
        c.graceBlocks = 0;
        _expectConfigRevert(
            c, abi.encodeWithSelector(Marketplace.InvalidGraceBlocks.selector, 0, PERIOD, 256)
        );
    }

    function test_RevertWhen_GraceWindowBeyondBlockhash() public {
        MarketplaceConfig memory c = defaultConfig();
        c.periodLength = 200;
        c.graceBlocks = 57;
        _expectConfigRevert(c, abi.encodeWithSelector(Marketplace.InvalidGraceBlocks.selector, 57, 200, 256));
    }

    function test_RevertWhen_MaxMissedZero() public {
        MarketplaceConfig memory c = defaultConfig();
        c.maxMissed = 0;
        _expectConfigRevert(c, abi.encodeWithSelector(Marketplace.InvalidMaxMissed.selector, 0));
    }

    function _expectSlashingRevert(MarketplaceConfig memory c) internal {
        _expectConfigRevert(
            c,
            abi.encodeWithSelector(
                Marketplace.InvalidSlashing.selector, c.slashBps, c.reporterRewardBps, c.repairRewardBps
            )
        );
    }

    function test_RevertWhen_SlashZero() public {
        MarketplaceConfig memory c = defaultConfig();
        c.slashBps = 0;
        _expectSlashingRevert(c);
    }

    function test_RevertWhen_ReporterRewardNotBelowSlash() public {
        MarketplaceConfig memory c = defaultConfig();
        c.reporterRewardBps = 10_000;
        _expectSlashingRevert(c);
    }

    function test_RevertWhen_SlashesExceedCollateral() public {
        MarketplaceConfig memory c = defaultConfig();
        c.slashBps = 3334; // 3 x 33.34% > 100%
        _expectSlashingRevert(c);
    }

    function test_RevertWhen_RepairRewardExceedsForfeit() public {
        MarketplaceConfig memory c = defaultConfig();
        c.repairRewardBps = 9500; // 95% + 3 x 10% x 25% > 100%
        _expectSlashingRevert(c);
    }
}
