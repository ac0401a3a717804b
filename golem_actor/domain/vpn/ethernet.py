"""Ethernet II headers and ARP for IPv4 over Ethernet (RFC 826).

Frames arrive as QEMU sends them: no preamble, no FCS, no virtio header, not padded to
60 bytes. Parsers read fields in place with `struct.unpack_from` and return None for
anything truncated or not understood: a malformed frame is data, never an exception.
Builders return one `bytes` each.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "ARP_LEN",
    "ARP_REPLY",
    "ARP_REQUEST",
    "ETHERTYPE_ARP",
    "ETHERTYPE_IPV4",
    "ETHERTYPE_IPV6",
    "ETH_HEADER_LEN",
    "ArpPacket",
    "Buffer",
    "EthernetHeader",
    "build_arp",
    "build_ethernet",
    "parse_arp",
    "parse_ethernet",
]

Buffer = bytes | bytearray | memoryview

ETH_HEADER_LEN = 14
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD

ARP_LEN = 28
ARP_REQUEST = 1
ARP_REPLY = 2
_ARP_HTYPE_ETHERNET = 1

_ETH = struct.Struct("!6s6sH")
# htype, ptype, hlen, plen, op, sender MAC, sender IP, target MAC, target IP
_ARP = struct.Struct("!HHBBH6s4s6s4s")


@dataclass(frozen=True, slots=True)
class EthernetHeader:
    dst: bytes
    src: bytes
    ethertype: int


def parse_ethernet(frame: Buffer) -> EthernetHeader | None:
    if len(frame) < ETH_HEADER_LEN:
        return None
    dst, src, ethertype = _ETH.unpack_from(frame)
    return EthernetHeader(dst, src, ethertype)


def build_ethernet(dst: bytes, src: bytes, ethertype: int) -> bytes:
    return _ETH.pack(dst, src, ethertype)


@dataclass(frozen=True, slots=True)
class ArpPacket:
    op: int
    sender_mac: bytes
    sender_ip: bytes
    target_mac: bytes
    target_ip: bytes


def parse_arp(frame: Buffer, offset: int = ETH_HEADER_LEN) -> ArpPacket | None:
    """The ARP packet after the Ethernet header, if it is Ethernet/IPv4 ARP."""
    if len(frame) < offset + ARP_LEN:
        return None
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(frame, offset)
    if (htype, ptype, hlen, plen) != (_ARP_HTYPE_ETHERNET, ETHERTYPE_IPV4, 6, 4):
        return None
    return ArpPacket(op, sha, spa, tha, tpa)


def build_arp(packet: ArpPacket) -> bytes:
    """The 28-byte ARP body (no Ethernet header)."""
    return _ARP.pack(
        _ARP_HTYPE_ETHERNET,
        ETHERTYPE_IPV4,
        6,
        4,
        packet.op,
        packet.sender_mac,
        packet.sender_ip,
        packet.target_mac,
        packet.target_ip,
    )
