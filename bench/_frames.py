"""Synthetic VPN frames for the vpn benchmarks: UDP/IPv4 in Ethernet, 1220 bytes."""

from __future__ import annotations

from ipaddress import IPv4Address

from golem_actor.domain.vpn.addressing import guest_mac
from golem_actor.domain.vpn.ethernet import ETHERTYPE_IPV4, build_ethernet
from golem_actor.domain.vpn.ipv4 import PROTO_UDP, build_ipv4, build_udp

FRAME_SIZE = 1220


def frame(src: IPv4Address, dst: IPv4Address) -> bytes:
    payload = b"\xa5" * (FRAME_SIZE - 14 - 20 - 8)
    datagram = build_udp(src.packed, dst.packed, 40000, 5201, payload)
    return (
        build_ethernet(guest_mac(dst), guest_mac(src), ETHERTYPE_IPV4)
        + build_ipv4(src.packed, dst.packed, PROTO_UDP, len(datagram))
        + datagram
    )
