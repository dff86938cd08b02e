// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.34;

import {IMarketplace} from "./IMarketplace.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @title Host announcements and the slots each host filled
/// @notice Part of the Marketplace: a host registers its libp2p peer id and addresses so renters and
/// downloaders find it without a bootstrap server, and the contract lists every slot a host filled
/// so its node can rebuild its state after a restart.
abstract contract HostRegistry is IMarketplace {
    uint256 public constant MAX_PEER_ID_LENGTH = 128;
    uint256 public constant MAX_ADDRESSES = 8;
    uint256 public constant MAX_ADDRESS_LENGTH = 128;

    /// The slot count shares a word with the announcement, so an announced host's first fill does
    /// not pay for a fresh storage word.
    struct Host {
        bytes peerId;
        bytes[] addrs;
        uint64 updatedAt;
        uint64 position; // 1-based index in `_hostList`; 0 when not announced
        uint64 slotCount; // entries in `_hostSlots`
    }

    mapping(address host => Host) internal _hosts;
    mapping(address host => mapping(uint256 index => bytes32 slotId)) internal _hostSlots;
    address[] internal _hostList;

    /// @inheritdoc IMarketplace
    function announceHost(bytes calldata peerId, bytes[] calldata addrs) external {
        if (peerId.length == 0 || peerId.length > MAX_PEER_ID_LENGTH) revert InvalidPeerId();
        if (addrs.length == 0 || addrs.length > MAX_ADDRESSES) revert InvalidAddresses();
        Host storage h = _hosts[msg.sender];
        if (h.position == 0) {
            _hostList.push(msg.sender);
            // forge-lint: disable-next-line(unsafe-typecast) one entry per address: far below 2^64
            h.position = uint64(_hostList.length);
        }
        h.peerId = peerId;
        delete h.addrs;
        for (uint256 i; i < addrs.length; ++i) {
            if (addrs[i].length == 0 || addrs[i].length > MAX_ADDRESS_LENGTH) revert InvalidAddresses();
            h.addrs.push(addrs[i]);
        }
        h.updatedAt = uint64(block.timestamp);
        emit HostAnnounced(msg.sender, peerId, addrs);
    }

    /// @inheritdoc IMarketplace
    function removeHost() external {
        Host storage h = _hosts[msg.sender];
        uint256 position = h.position;
        if (position == 0) revert HostNotAnnounced(msg.sender);
        address last = _hostList[_hostList.length - 1];
        _hostList[position - 1] = last;
        // forge-lint: disable-next-line(unsafe-typecast) position came from a uint64
        _hosts[last].position = uint64(position);
        _hostList.pop();
        delete h.peerId;
        delete h.addrs;
        h.updatedAt = 0;
        h.position = 0; // the slot list stays
        emit HostRemoved(msg.sender);
    }

    /// @inheritdoc IMarketplace
    function hostInfo(address host) external view returns (bytes memory, bytes[] memory, uint64) {
        Host storage h = _hosts[host];
        return (h.peerId, h.addrs, h.updatedAt);
    }

    /// @inheritdoc IMarketplace
    function hostCount() external view returns (uint256) {
        return _hostList.length;
    }

    /// @inheritdoc IMarketplace
    function hosts(uint256 offset, uint256 limit) external view returns (address[] memory page) {
        (uint256 start, uint256 n) = _page(_hostList.length, offset, limit);
        page = new address[](n);
        for (uint256 i; i < n; ++i) {
            page[i] = _hostList[start + i];
        }
    }

    /// @inheritdoc IMarketplace
    function hostSlots(address host, uint256 offset, uint256 limit)
        external
        view
        returns (bytes32[] memory page)
    {
        (uint256 start, uint256 n) = _page(_hosts[host].slotCount, offset, limit);
        page = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            page[i] = _hostSlots[host][start + i];
        }
    }

    /// @inheritdoc IMarketplace
    function hostSlotCount(address host) external view returns (uint256) {
        return _hosts[host].slotCount;
    }

    /// @dev Appends `slotId` to the slots `host` filled.
    function _recordSlot(address host, bytes32 slotId) internal {
        Host storage h = _hosts[host];
        uint64 count = h.slotCount;
        _hostSlots[host][count] = slotId;
        h.slotCount = count + 1;
    }

    /// @dev The part `[offset, offset + limit)` of a list of `length` entries, clamped.
    function _page(uint256 length, uint256 offset, uint256 limit)
        internal
        pure
        returns (uint256 start, uint256 n)
    {
        if (offset >= length) return (length, 0);
        return (offset, Math.min(limit, length - offset));
    }
}
