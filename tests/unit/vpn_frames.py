"""Frames a guest would send, built for the VPN switch's tests."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

from golem_actor.domain.vpn.addressing import BROADCAST_MAC, guest_mac
from golem_actor.domain.vpn.dhcp import CLIENT_PORT, SERVER_PORT, DhcpType
from golem_actor.domain.vpn.ethernet import (
    ARP_REQUEST,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    ArpPacket,
    build_arp,
    build_ethernet,
)
from golem_actor.domain.vpn.ipv4 import (
    ICMP_ECHO_REQUEST,
    PROTO_ICMP,
    PROTO_UDP,
    IcmpEcho,
    build_icmp_echo,
    build_ipv4,
    build_udp,
)

ANY = IPv4Address("0.0.0.0")
LIMITED = IPv4Address("255.255.255.255")


def ip(text: str) -> IPv4Address:
    return IPv4Address(text)


def udp_frame(
    src: IPv4Address,
    dst: IPv4Address,
    payload: bytes = b"hello",
    *,
    src_mac: bytes | None = None,
    dst_mac: bytes | None = None,
    sport: int = 4000,
    dport: int = 5000,
) -> bytes:
    datagram = build_udp(src.packed, dst.packed, sport, dport, payload)
    return (
        build_ethernet(
            dst_mac if dst_mac is not None else guest_mac(dst),
            src_mac if src_mac is not None else guest_mac(src),
            ETHERTYPE_IPV4,
        )
        + build_ipv4(src.packed, dst.packed, PROTO_UDP, len(datagram))
        + datagram
    )


def padded_udp_frame(src: IPv4Address, dst: IPv4Address, size: int) -> bytes:
    """A UDP frame of exactly `size` bytes."""
    return udp_frame(src, dst, b"x" * (size - 14 - 20 - 8))


def ping_frame(
    src: IPv4Address, dst: IPv4Address, dst_mac: bytes, data: bytes = b"ping!", seq: int = 1
) -> bytes:
    body = build_icmp_echo(IcmpEcho(ICMP_ECHO_REQUEST, 0, 0x1234, seq, data))
    return (
        build_ethernet(dst_mac, guest_mac(src), ETHERTYPE_IPV4)
        + build_ipv4(src.packed, dst.packed, PROTO_ICMP, len(body))
        + body
    )


def arp_request(
    sender: IPv4Address, target: IPv4Address, *, sender_mac: bytes | None = None
) -> bytes:
    mac = sender_mac if sender_mac is not None else guest_mac(sender)
    packet = ArpPacket(ARP_REQUEST, mac, sender.packed, b"\0" * 6, target.packed)
    return build_ethernet(BROADCAST_MAC, mac, ETHERTYPE_ARP) + build_arp(packet)


def dhcp_request_frame(
    mac: bytes,
    kind: DhcpType,
    *,
    xid: int = 0x01020304,
    requested: IPv4Address | None = None,
    server: IPv4Address | None = None,
    ciaddr: IPv4Address = ANY,
    src: IPv4Address = ANY,
    dst: IPv4Address = LIMITED,
    dst_mac: bytes = BROADCAST_MAC,
    broadcast_flag: bool = False,
    extra_options: bytes = b"",
) -> bytes:
    """A client message as udhcpc sends it (options built by hand, not by the server code)."""
    fixed = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        1,
        1,
        6,
        0,
        xid,
        0,
        0x8000 if broadcast_flag else 0,
        ciaddr.packed,
        b"\0" * 4,
        b"\0" * 4,
        b"\0" * 4,
        mac + b"\0" * 10,
        b"",
        b"",
    )
    options = bytes((53, 1, kind))
    if requested is not None:
        options += bytes((50, 4)) + requested.packed
    if server is not None:
        options += bytes((54, 4)) + server.packed
    options += bytes((55, 4, 1, 3, 26, 51)) + extra_options + b"\xff"
    payload = fixed + b"\x63\x82\x53\x63" + options
    datagram = build_udp(src.packed, dst.packed, CLIENT_PORT, SERVER_PORT, payload)
    return (
        build_ethernet(dst_mac, mac, ETHERTYPE_IPV4)
        + build_ipv4(src.packed, dst.packed, PROTO_UDP, len(datagram))
        + datagram
    )
