// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {IMarketplace} from "../src/IMarketplace.sol";
import {MarketplaceTestBase} from "./utils/MarketplaceTestBase.sol";
import {vm} from "./utils/Vm.sol";

contract MarketplaceHostsTest is MarketplaceTestBase {
    bytes internal constant PEER =
        hex"0024080112201f4a4bd6d2e3f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4";

    function _addrs(uint256 n) internal pure returns (bytes[] memory a) {
        a = new bytes[](n);
        for (uint256 i; i < n; ++i) {
            a[i] = abi.encodePacked(hex"047f000001062328", uint8(i)); // /ip4/127.0.0.1/tcp/9000 + tag
        }
    }

    function _announce(address host, bytes memory peer, bytes[] memory addrs) internal {
        vm.prank(host);
        market.announceHost(peer, addrs);
    }

    function test_AnnounceHost_StoresAndEmits() public {
        bytes[] memory addrs = _addrs(2);
        vm.expectEmit(address(market));
        emit IMarketplace.HostAnnounced(host1, PEER, addrs);
        _announce(host1, PEER, addrs);
        (bytes memory peer, bytes[] memory got, uint64 updatedAt) = market.hostInfo(host1);
        vm.assertEq(peer, PEER);
        vm.assertEq(got.length, 2);
        vm.assertEq(got[1], addrs[1]);
        vm.assertEq(updatedAt, block.timestamp);
        vm.assertEq(market.hostCount(), 1);
        vm.assertEq(market.hosts(0, 10)[0], host1);
    }

    function test_AnnounceHost_UpdateReplaces() public {
        _announce(host1, PEER, _addrs(3));
        vm.warp(block.timestamp + 60);
        bytes[] memory addrs = _addrs(1);
        _announce(host1, hex"01", addrs);
        (bytes memory peer, bytes[] memory got, uint64 updatedAt) = market.hostInfo(host1);
        vm.assertEq(peer, hex"01");
        vm.assertEq(got.length, 1);
        vm.assertEq(updatedAt, block.timestamp);
        vm.assertEq(market.hostCount(), 1);
    }

    function test_Hosts_Pages() public {
        _announce(host1, PEER, _addrs(1));
        _announce(host2, PEER, _addrs(1));
        _announce(host3, PEER, _addrs(1));
        address[] memory page = market.hosts(1, 5);
        vm.assertEq(page.length, 2);
        vm.assertEq(page[0], host2);
        vm.assertEq(page[1], host3);
        vm.assertEq(market.hosts(3, 5).length, 0);
        vm.assertEq(market.hosts(0, 0).length, 0);
    }

    function test_RemoveHost_SwapsLastIntoPlace() public {
        _announce(host1, PEER, _addrs(1));
        _announce(host2, PEER, _addrs(1));
        _announce(host3, PEER, _addrs(1));
        vm.expectEmit(address(market));
        emit IMarketplace.HostRemoved(host1);
        vm.prank(host1);
        market.removeHost();
        vm.assertEq(market.hostCount(), 2);
        address[] memory all = market.hosts(0, 10);
        vm.assertEq(all[0], host3);
        vm.assertEq(all[1], host2);
        (bytes memory peer, bytes[] memory addrs, uint64 updatedAt) = market.hostInfo(host1);
        vm.assertEq(peer.length + addrs.length + updatedAt, 0);
        // host3 moved; it can still leave.
        vm.prank(host3);
        market.removeHost();
        vm.assertEq(market.hosts(0, 10)[0], host2);
    }

    function test_RemoveHost_KeepsSlotList() public {
        _announce(host1, PEER, _addrs(1));
        bytes32 id = _request();
        _fill(id, 0, host1);
        vm.prank(host1);
        market.removeHost();
        vm.assertEq(market.hostSlotCount(host1), 1);
        _announce(host1, PEER, _addrs(1));
        vm.assertEq(market.hostSlotCount(host1), 1);
    }

    function test_RevertWhen_AnnounceEmptyPeerId() public {
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.InvalidPeerId.selector));
        _announce(host1, "", _addrs(1));
    }

    function test_RevertWhen_AnnounceLongPeerId() public {
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.InvalidPeerId.selector));
        _announce(host1, new bytes(129), _addrs(1));
    }

    function test_RevertWhen_AnnounceNoAddresses() public {
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.InvalidAddresses.selector));
        _announce(host1, PEER, _addrs(0));
    }

    function test_RevertWhen_AnnounceTooManyAddresses() public {
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.InvalidAddresses.selector));
        _announce(host1, PEER, _addrs(9));
    }

    function test_RevertWhen_AnnounceEmptyAddress() public {
        bytes[] memory addrs = _addrs(2);
        addrs[1] = "";
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.InvalidAddresses.selector));
        _announce(host1, PEER, addrs);
    }

    function test_RevertWhen_AnnounceLongAddress() public {
        bytes[] memory addrs = _addrs(1);
        addrs[0] = new bytes(129);
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.InvalidAddresses.selector));
        _announce(host1, PEER, addrs);
    }

    function test_RevertWhen_RemoveUnannouncedHost() public {
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.HostNotAnnounced.selector, host1));
        vm.prank(host1);
        market.removeHost();
    }
}
