// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {RequestState} from "../src/MarketplaceTypes.sol";
import {MarketplaceTestBase} from "./utils/MarketplaceTestBase.sol";
import {vm} from "./utils/Vm.sol";

contract SmokeTest is MarketplaceTestBase {
    function test_Smoke() public {
        bytes32 id = _request();
        _fillAll(id);
        vm.assertEq(uint256(market.requestState(id)), uint256(RequestState.Started));
        _nextPeriod();
        _submit(id, 0, host1);
    }
}
