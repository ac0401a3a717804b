"""DHCP through the switch: client messages built by hand, replies parsed back by hand."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Network

from vpn_frames import dhcp_request_frame, ip

from golem_actor.domain.vpn.addressing import BROADCAST_MAC, guest_mac, router_mac
from golem_actor.domain.vpn.dhcp import DhcpType
from golem_actor.domain.vpn.ipv4 import parse_ipv4, parse_udp
from golem_actor.domain.vpn.switch import Drop, Switch, SwitchNetwork, SwitchPort

MAC = guest_mac(ip("10.8.0.2"))
GW = ip("10.8.0.1")


@dataclass
class Reply:
    eth_dst: bytes
    ip_src: bytes
    ip_dst: bytes
    sport: int
    dport: int
    op: int
    xid: int
    flags: int
    ciaddr: bytes
    yiaddr: bytes
    siaddr: bytes
    chaddr: bytes
    options: dict[int, bytes]
    bootp_len: int


def decode(frame: bytes) -> Reply:
    """An independent reading of the reply (struct offsets from RFC 2131, not the server's)."""
    header = parse_ipv4(frame)
    assert header is not None, "bad IPv4 header or checksum"
    udp = parse_udp(frame, header)
    assert udp is not None, "bad UDP header or checksum"
    assert udp.checksum != 0
    bootp = frame[udp.payload_offset : udp.end]
    op, _htype, _hlen, _hops, xid, _secs, flags = struct.unpack_from("!BBBBIHH", bootp)
    ciaddr, yiaddr, siaddr = bootp[12:16], bootp[16:20], bootp[20:24]
    assert bootp[236:240] == b"\x63\x82\x53\x63"
    options: dict[int, bytes] = {}
    at = 240
    while bootp[at] != 255:
        if bootp[at] == 0:
            at += 1
            continue
        code, length = bootp[at], bootp[at + 1]
        options[code] = bootp[at + 2 : at + 2 + length]
        at += 2 + length
    return Reply(
        frame[0:6],
        header.src,
        header.dst,
        udp.src_port,
        udp.dst_port,
        op,
        xid,
        flags,
        ciaddr,
        yiaddr,
        siaddr,
        bootp[28:34],
        options,
        len(bootp),
    )


def make_switch(gateway: bool = True, mtu: int = 1220) -> Switch:
    switch = Switch()
    network = SwitchNetwork(
        "n", IPv4Network("10.8.0.0/16"), GW if gateway else None, mtu=mtu, lease_seconds=600
    )
    switch.add_network(network)
    switch.add_port(SwitchPort("vm", "n", ip("10.8.0.2")))
    return switch


def only_reply(switch: Switch, frame: bytes) -> Reply:
    routed = switch.route("vm", frame)
    assert len(routed) == 1, switch.counters("vm")
    out, reply = routed[0]
    assert out == "vm"
    return decode(reply)


def test_discover_gets_an_offer_of_the_ports_address() -> None:
    switch = make_switch()
    offer = only_reply(switch, dhcp_request_frame(MAC, DhcpType.DISCOVER, xid=0xCAFE))
    assert (offer.op, offer.xid, offer.yiaddr, offer.chaddr) == (
        2,
        0xCAFE,
        ip("10.8.0.2").packed,
        MAC,
    )
    assert (offer.sport, offer.dport) == (67, 68)
    assert (offer.ip_src, offer.ip_dst, offer.eth_dst) == (GW.packed, ip("10.8.0.2").packed, MAC)
    assert offer.siaddr == GW.packed
    assert offer.options == {
        53: bytes((DhcpType.OFFER,)),
        54: GW.packed,
        51: (600).to_bytes(4, "big"),
        58: (300).to_bytes(4, "big"),
        59: (525).to_bytes(4, "big"),
        1: ip("255.255.0.0").packed,
        28: ip("10.8.255.255").packed,
        3: GW.packed,
        26: (1220).to_bytes(2, "big"),
    }
    assert offer.bootp_len >= 300
    assert switch.counters("vm").to_router == 1


def test_request_gets_an_ack_and_a_wrong_address_a_nak() -> None:
    switch = make_switch(mtu=1400)
    ack = only_reply(
        switch,
        dhcp_request_frame(MAC, DhcpType.REQUEST, requested=ip("10.8.0.2"), server=GW),
    )
    assert ack.options[53] == bytes((DhcpType.ACK,))
    assert ack.yiaddr == ip("10.8.0.2").packed
    assert ack.options[26] == (1400).to_bytes(2, "big")
    nak = only_reply(switch, dhcp_request_frame(MAC, DhcpType.REQUEST, requested=ip("10.8.0.7")))
    assert nak.options == {53: bytes((DhcpType.NAK,)), 54: GW.packed}
    assert (nak.yiaddr, nak.eth_dst, nak.ip_dst) == (b"\0" * 4, BROADCAST_MAC, b"\xff" * 4)


def test_renewal_is_unicast_to_the_router_and_answered_to_ciaddr() -> None:
    switch = make_switch()
    renew = dhcp_request_frame(
        MAC,
        DhcpType.REQUEST,
        ciaddr=ip("10.8.0.2"),
        src=ip("10.8.0.2"),
        dst=GW,
        dst_mac=router_mac(GW),
    )
    ack = only_reply(switch, renew)
    assert ack.options[53] == bytes((DhcpType.ACK,))
    assert (ack.ciaddr, ack.ip_dst, ack.eth_dst) == (ip("10.8.0.2").packed,) * 2 + (MAC,)


def test_broadcast_flag_gets_a_broadcast_reply() -> None:
    switch = make_switch()
    offer = only_reply(switch, dhcp_request_frame(MAC, DhcpType.DISCOVER, broadcast_flag=True))
    assert (offer.eth_dst, offer.ip_dst, offer.flags) == (BROADCAST_MAC, b"\xff" * 4, 0x8000)


def test_no_router_option_without_a_gateway() -> None:
    switch = make_switch(gateway=False)
    offer = only_reply(switch, dhcp_request_frame(MAC, DhcpType.DISCOVER))
    assert 3 not in offer.options
    assert offer.options[54] == ip("10.8.0.1").packed  # the router still serves from the first host


def test_messages_taken_without_an_answer() -> None:
    switch = make_switch()
    for frame in (
        dhcp_request_frame(MAC, DhcpType.RELEASE, ciaddr=ip("10.8.0.2"), src=ip("10.8.0.2")),
        dhcp_request_frame(MAC, DhcpType.DECLINE, requested=ip("10.8.0.2")),
        dhcp_request_frame(MAC, DhcpType.REQUEST, requested=ip("10.8.0.2"), server=ip("10.8.0.9")),
    ):
        assert switch.route("vm", frame) == []
    assert switch.counters("vm").to_router == 3
    assert not switch.counters("vm").drops


def test_dhcp_for_another_mac_or_from_another_ip_is_spoofing() -> None:
    switch = make_switch()
    other = guest_mac(ip("10.8.0.3"))
    # Ethernet source is ours but the client hardware address is another's
    frame = dhcp_request_frame(MAC, DhcpType.DISCOVER)
    chaddr_at = 14 + 20 + 8 + 28
    forged = frame[:chaddr_at] + other + frame[chaddr_at + 6 :]
    forged = forged[:40] + b"\0\0" + forged[42:]  # UDP checksum 0: not computed
    assert switch.route("vm", forged) == []
    from_other_ip = dhcp_request_frame(MAC, DhcpType.DISCOVER, src=ip("10.8.0.3"))
    assert switch.route("vm", from_other_ip) == []
    assert switch.counters("vm").drops == {Drop.SPOOFED: 2}


def test_truncated_or_garbled_dhcp_is_malformed() -> None:
    switch = make_switch()
    frame = dhcp_request_frame(MAC, DhcpType.DISCOVER)
    no_end = dhcp_request_frame(MAC, DhcpType.DISCOVER, extra_options=b"\x0c\x20abc")
    assert switch.route("vm", no_end) == []
    wrong_cookie = frame[:278] + b"\0" + frame[279:]
    wrong_cookie = wrong_cookie[:40] + b"\0\0" + wrong_cookie[42:]
    assert switch.route("vm", wrong_cookie) == []
    assert switch.counters("vm").drops == {Drop.MALFORMED: 2}
