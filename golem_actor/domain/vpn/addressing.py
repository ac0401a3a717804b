"""MAC addresses derived from IPv4 addresses (the Golem convention, golem-vpn.md §2.3).

A guest's VPN NIC gets `90:13:<4 octets of its IP>` and the router's (and a requestor's)
interface `a0:13:<4 octets>`. Because every MAC follows from an IP, the router needs no
MAC learning: it knows each member's MAC before the first frame, can answer DHCP for a
MAC it derived, and can answer ARP for every member itself.
"""

from __future__ import annotations

import hashlib
from ipaddress import IPv4Address

__all__ = [
    "BROADCAST_MAC",
    "GUEST_MAC_PREFIX",
    "ROUTER_MAC_PREFIX",
    "format_mac",
    "guest_mac",
    "is_group_mac",
    "nic_mac",
    "parse_mac",
    "router_mac",
]

GUEST_MAC_PREFIX = b"\x90\x13"
ROUTER_MAC_PREFIX = b"\xa0\x13"
BROADCAST_MAC = b"\xff" * 6


def guest_mac(ip: IPv4Address) -> bytes:
    """The MAC of a guest's VPN NIC holding `ip`."""
    return GUEST_MAC_PREFIX + ip.packed


def router_mac(ip: IPv4Address) -> bytes:
    """The MAC the router answers with for its own address `ip` (the gateway)."""
    return ROUTER_MAC_PREFIX + ip.packed


def is_group_mac(mac: bytes) -> bool:
    """Broadcast or multicast: the I/G bit of the first octet is set."""
    return bool(mac[0] & 1)


def format_mac(mac: bytes) -> str:
    return ":".join(f"{octet:02x}" for octet in mac)


def parse_mac(text: str) -> bytes:
    """`90:13:0a:00:00:02` (or `-` separated) to 6 bytes; ValueError when it is not a MAC."""
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(part) == 2 for part in parts):
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(part, 16) for part in parts)


NIC_MAC_PREFIX = b"\x92\x13"  # locally administered, unicast: never a vendor's MAC


def nic_mac(vm_id: str) -> bytes:
    """The MAC of a VM's VPN NIC, fixed when QEMU starts, before any network is joined.

    A guest's MAC cannot follow its IP (`90:13:<ip>`): the IP is picked by a join that
    may come while the VM runs, and QEMU's NIC MAC is set at launch. So the NIC's MAC is
    derived from the VM id instead, and the switch's port carries it (ARP answers and
    the DHCP client check use it): `92:13:` + 4 bytes of SHA-256 of the id.
    """
    return NIC_MAC_PREFIX + hashlib.sha256(vm_id.encode()).digest()[:4]
