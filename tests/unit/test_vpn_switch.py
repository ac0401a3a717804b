from __future__ import annotations

from ipaddress import IPv4Network

import pytest
from vpn_frames import (
    arp_request,
    dhcp_request_frame,
    ip,
    padded_udp_frame,
    ping_frame,
    udp_frame,
)

from golem_actor.domain.vpn.addressing import BROADCAST_MAC, guest_mac, router_mac
from golem_actor.domain.vpn.dhcp import DhcpType
from golem_actor.domain.vpn.ethernet import (
    ARP_REPLY,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    ArpPacket,
    build_ethernet,
    parse_arp,
    parse_ethernet,
)
from golem_actor.domain.vpn.ipv4 import (
    ICMP_ECHO_REPLY,
    PROTO_ICMP,
    build_ipv4,
    checksum,
    parse_icmp_echo,
    parse_ipv4,
)
from golem_actor.domain.vpn.switch import (
    Drop,
    PortKind,
    Switch,
    SwitchNetwork,
    SwitchPort,
)

CIDR = IPv4Network("10.0.0.0/24")
GW = ip("10.0.0.1")


def make_switch() -> Switch:
    """Two networks with the SAME address range; a2/a3/a4 in net-a, b2/b3 in net-b."""
    switch = Switch()
    switch.add_network(SwitchNetwork("net-a", CIDR, GW))
    switch.add_network(SwitchNetwork("net-b", CIDR, GW))
    for port_id, net, addr in [
        ("a2", "net-a", "10.0.0.2"),
        ("a3", "net-a", "10.0.0.3"),
        ("a4", "net-a", "10.0.0.4"),
        ("b2", "net-b", "10.0.0.2"),
        ("b3", "net-b", "10.0.0.3"),
        ("b9", "net-b", "10.0.0.9"),
    ]:
        switch.add_port(SwitchPort(port_id, net, ip(addr)))
    return switch


def test_unicast_goes_to_the_destination_member_unchanged() -> None:
    switch = make_switch()
    frame = udp_frame(ip("10.0.0.2"), ip("10.0.0.3"))
    routed = switch.route("a2", frame)
    assert routed == [("a3", frame)]
    assert routed[0][1] is frame  # no copy on the forwarding path
    assert (switch.counters("a2").rx_frames, switch.counters("a2").rx_bytes) == (1, len(frame))
    assert (switch.counters("a3").tx_frames, switch.counters("a3").tx_bytes) == (1, len(frame))
    assert switch.route("a3", udp_frame(ip("10.0.0.3"), ip("10.0.0.2")))[0][0] == "a2"


def test_networks_with_the_same_range_never_see_each_other() -> None:
    switch = make_switch()
    assert switch.route("a2", udp_frame(ip("10.0.0.2"), ip("10.0.0.3"))) == [
        ("a3", udp_frame(ip("10.0.0.2"), ip("10.0.0.3")))
    ]
    assert [out for out, _ in switch.route("b2", udp_frame(ip("10.0.0.2"), ip("10.0.0.3")))] == [
        "b3"
    ]
    # 10.0.0.9 exists only in net-b: from net-a it is unknown
    assert switch.route("a2", udp_frame(ip("10.0.0.2"), ip("10.0.0.9"))) == []
    assert switch.counters("a2").drops[Drop.UNKNOWN_DESTINATION] == 1
    assert switch.counters("b9").tx_frames == 0
    # a broadcast in net-a reaches net-a's members only
    bcast = udp_frame(ip("10.0.0.2"), ip("10.0.0.255"), dst_mac=BROADCAST_MAC)
    assert sorted(out for out, _ in switch.route("a2", bcast)) == ["a3", "a4"]
    # ARP in net-b for an address that only net-a has is not answered
    assert switch.route("b2", arp_request(ip("10.0.0.2"), ip("10.0.0.4"))) == []
    assert switch.counters("b2").drops[Drop.UNKNOWN_DESTINATION] == 1


def test_spoofed_frames_are_dropped_and_counted() -> None:
    switch = make_switch()
    wrong_mac = udp_frame(ip("10.0.0.2"), ip("10.0.0.3"), src_mac=guest_mac(ip("10.0.0.4")))
    wrong_ip = udp_frame(ip("10.0.0.4"), ip("10.0.0.3"), src_mac=guest_mac(ip("10.0.0.2")))
    foreign_ip = udp_frame(ip("10.9.9.9"), ip("10.0.0.3"), src_mac=guest_mac(ip("10.0.0.2")))
    arp_lie = arp_request(ip("10.0.0.4"), ip("10.0.0.3"), sender_mac=guest_mac(ip("10.0.0.2")))
    bcast_lie = udp_frame(
        ip("10.0.0.4"), ip("10.0.0.255"), src_mac=guest_mac(ip("10.0.0.2")), dst_mac=BROADCAST_MAC
    )
    for frame in (wrong_mac, wrong_ip, foreign_ip, arp_lie, bcast_lie):
        assert switch.route("a2", frame) == []
    assert switch.counters("a2").drops == {Drop.SPOOFED: 5}
    assert switch.drops[Drop.SPOOFED] == 5
    assert switch.counters("a3").tx_frames == 0


def test_multicast_ipv6_and_oversized_frames_are_dropped() -> None:
    switch = make_switch()
    src = guest_mac(ip("10.0.0.2"))
    ipv4_multicast = udp_frame(ip("10.0.0.2"), ip("224.0.0.251"), dst_mac=b"\x01\x00\x5e\0\0\xfb")
    mld = build_ethernet(bytes.fromhex("333300000016"), src, ETHERTYPE_IPV6) + b"\x60" + b"\0" * 60
    ipv6_unicast = build_ethernet(guest_mac(ip("10.0.0.3")), src, ETHERTYPE_IPV6) + b"\x60" * 40
    vlan = build_ethernet(guest_mac(ip("10.0.0.3")), src, 0x8100) + b"\0" * 40
    for frame in (ipv4_multicast, mld, ipv6_unicast, vlan):
        assert switch.route("a2", frame) == []
    assert switch.counters("a2").drops == {Drop.MULTICAST: 2, Drop.UNSUPPORTED: 2}

    biggest = padded_udp_frame(ip("10.0.0.2"), ip("10.0.0.3"), 1220 + 14)
    assert switch.route("a2", biggest) == [("a3", biggest)]
    too_big = padded_udp_frame(ip("10.0.0.2"), ip("10.0.0.3"), 1220 + 15)
    assert switch.route("a2", too_big) == []
    assert switch.counters("a2").drops[Drop.TOO_BIG] == 1


def test_mtu_is_per_network() -> None:
    switch = Switch()
    switch.add_network(SwitchNetwork("jumbo", CIDR, GW, mtu=9000))
    switch.add_port(SwitchPort("j2", "jumbo", ip("10.0.0.2")))
    switch.add_port(SwitchPort("j3", "jumbo", ip("10.0.0.3")))
    big = padded_udp_frame(ip("10.0.0.2"), ip("10.0.0.3"), 9014)
    assert switch.route("j2", big) == [("j3", big)]


def arp_reply_of(routed: list[tuple[str, bytes]]) -> tuple[str, ArpPacket, bytes]:
    assert len(routed) == 1
    out, frame = routed[0]
    header = parse_ethernet(frame)
    packet = parse_arp(frame)
    assert header is not None
    assert packet is not None
    assert header.src == packet.sender_mac
    return out, packet, header.dst


def test_the_router_answers_arp_for_the_gateway_and_for_members() -> None:
    switch = make_switch()
    out, packet, eth_dst = arp_reply_of(switch.route("a2", arp_request(ip("10.0.0.2"), GW)))
    assert (out, eth_dst) == ("a2", guest_mac(ip("10.0.0.2")))
    assert packet == ArpPacket(
        ARP_REPLY, router_mac(GW), GW.packed, guest_mac(ip("10.0.0.2")), ip("10.0.0.2").packed
    )
    out, packet, _ = arp_reply_of(switch.route("a2", arp_request(ip("10.0.0.2"), ip("10.0.0.3"))))
    assert (out, packet.sender_mac, packet.sender_ip) == (
        "a2",
        guest_mac(ip("10.0.0.3")),
        ip("10.0.0.3").packed,
    )
    assert switch.counters("a3").rx_frames == 0  # nothing was flooded to the others
    assert switch.counters("a2").to_router == 2
    assert switch.counters("a2").replies == 2


def test_gratuitous_arp_and_probes_are_taken_silently() -> None:
    switch = make_switch()
    gratuitous = arp_request(ip("10.0.0.2"), ip("10.0.0.2"))
    probe = arp_request(ip("0.0.0.0"), ip("10.0.0.2"), sender_mac=guest_mac(ip("10.0.0.2")))
    assert switch.route("a2", gratuitous) == []
    assert switch.route("a2", probe) == []
    assert switch.counters("a2").to_router == 2
    assert not switch.counters("a2").drops
    # a probe for someone else's address is answered: that address is taken
    out, packet, _ = arp_reply_of(
        switch.route(
            "a2", arp_request(ip("0.0.0.0"), ip("10.0.0.3"), sender_mac=guest_mac(ip("10.0.0.2")))
        )
    )
    assert (out, packet.sender_ip, packet.target_ip) == ("a2", ip("10.0.0.3").packed, b"\0" * 4)


def test_arp_replies_are_switched_like_unicast() -> None:
    switch = make_switch()
    reply = build_ethernet(guest_mac(ip("10.0.0.3")), guest_mac(ip("10.0.0.2")), 0x0806) + bytes(
        # htype 1, ptype IPv4, 6, 4, op 2, sha, spa, tha, tpa
        b"\x00\x01\x08\x00\x06\x04\x00\x02"
        + guest_mac(ip("10.0.0.2"))
        + ip("10.0.0.2").packed
        + guest_mac(ip("10.0.0.3"))
        + ip("10.0.0.3").packed
    )
    assert switch.route("a2", reply) == [("a3", reply)]


def test_icmp_echo_to_the_gateway_is_answered() -> None:
    switch = make_switch()
    request = ping_frame(ip("10.0.0.2"), GW, router_mac(GW), data=b"0123456789" * 5, seq=42)
    routed = switch.route("a2", request)
    assert len(routed) == 1
    out, reply = routed[0]
    assert out == "a2"
    header = parse_ethernet(reply)
    assert header is not None
    assert (header.dst, header.src, header.ethertype) == (
        guest_mac(ip("10.0.0.2")),
        router_mac(GW),
        ETHERTYPE_IPV4,
    )
    ip_header = parse_ipv4(reply)  # verifies the header checksum
    assert ip_header is not None
    assert (ip_header.src, ip_header.dst, ip_header.protocol) == (
        GW.packed,
        ip("10.0.0.2").packed,
        PROTO_ICMP,
    )
    echo = parse_icmp_echo(reply, ip_header)  # verifies the ICMP checksum
    assert echo is not None
    assert (echo.type, echo.ident, echo.seq, echo.data) == (
        ICMP_ECHO_REPLY,
        0x1234,
        42,
        b"0123456789" * 5,
    )


def test_what_the_router_does_not_serve_is_dropped() -> None:
    switch = make_switch()
    bad_sum = bytearray(ping_frame(ip("10.0.0.2"), GW, router_mac(GW)))
    bad_sum[-1] ^= 0xFF
    assert switch.route("a2", bytes(bad_sum)) == []
    tcp = build_ethernet(router_mac(GW), guest_mac(ip("10.0.0.2")), ETHERTYPE_IPV4) + build_ipv4(
        ip("10.0.0.2").packed, GW.packed, 6, 20
    )
    assert switch.route("a2", tcp + b"\0" * 20) == []
    # an echo to a foreign address sent to the router's MAC: the router does not route
    assert switch.route("a2", ping_frame(ip("10.0.0.2"), ip("8.8.8.8"), router_mac(GW))) == []
    assert switch.counters("a2").drops == {Drop.MALFORMED: 1, Drop.NOT_FOR_ROUTER: 2}


def test_a_member_holding_the_gateway_address_leaves_dhcp_and_echo_to_the_router() -> None:
    """The requestor's gate on the first host, which is the default gateway too."""
    switch = make_switch()
    switch.add_port(SwitchPort("gate", "net-a", GW, mac=router_mac(GW)))
    a2 = ip("10.0.0.2")
    # Pings to the gateway: the router answers them, the gate never sees them.
    routed = switch.route("a2", ping_frame(a2, GW, router_mac(GW)))
    assert [out for out, _ in routed] == ["a2"]
    reply = parse_ipv4(routed[0][1])
    assert reply is not None
    assert (reply.src, reply.dst) == (GW.packed, a2.packed)
    # A unicast DHCP renewal (RFC 2131 RENEWING: ciaddr set, to the server): an ACK.
    renewal = dhcp_request_frame(
        guest_mac(a2), DhcpType.REQUEST, ciaddr=a2, src=a2, dst=GW, dst_mac=router_mac(GW)
    )
    routed = switch.route("a2", renewal)
    assert [out for out, _ in routed] == ["a2"]
    assert routed[0][1][6:12] == router_mac(GW)
    assert switch.counters("gate").tx_frames == 0
    assert switch.counters("a2").to_router == 2
    # Everything else to that address is the gate's: TCP, UDP to other ports, echo
    # replies (answers to the gate's own pings), on the fast path or not.
    tcp = build_ethernet(router_mac(GW), guest_mac(a2), ETHERTYPE_IPV4) + build_ipv4(
        a2.packed, GW.packed, 6, 20
    )
    tcp += b"\0" * 20
    assert switch.route("a2", tcp) == [("gate", tcp)]
    other_udp = udp_frame(a2, GW, b"to the gate", dst_mac=router_mac(GW), dport=67 + 1)
    assert switch.route("a2", other_udp) == [("gate", other_udp)]
    echo_reply = bytearray(ping_frame(a2, GW, router_mac(GW)))
    echo_reply[34] = ICMP_ECHO_REPLY  # the type; the checksum is the gate's business
    assert switch.route("a2", bytes(echo_reply)) == [("gate", bytes(echo_reply))]
    # The gate itself reaches the guests as any member does.
    back = udp_frame(GW, a2, b"from the gate", src_mac=router_mac(GW))
    assert switch.route("gate", back) == [("a2", back)]
    assert switch.counters("gate").tx_frames == 3


def test_a_member_on_another_address_gets_its_pings() -> None:
    switch = make_switch()
    switch.add_port(SwitchPort("gate", "net-a", ip("10.0.0.7"), mac=router_mac(ip("10.0.0.7"))))
    request = ping_frame(ip("10.0.0.2"), ip("10.0.0.7"), router_mac(ip("10.0.0.7")))
    assert switch.route("a2", request) == [("gate", request)]


def test_leaving_cuts_traffic_at_once_and_rejoining_restores_it() -> None:
    switch = make_switch()
    frame = udp_frame(ip("10.0.0.2"), ip("10.0.0.3"))
    assert switch.route("a2", frame) == [("a3", frame)]
    switch.remove_port("a3")
    assert switch.route("a2", frame) == []
    assert switch.route("a2", arp_request(ip("10.0.0.2"), ip("10.0.0.3"))) == []
    assert switch.counters("a2").drops[Drop.UNKNOWN_DESTINATION] == 2
    assert switch.route("a3", udp_frame(ip("10.0.0.3"), ip("10.0.0.2"))) == []
    assert switch.drops[Drop.UNKNOWN_PORT] == 1
    switch.add_port(SwitchPort("a3", "net-a", ip("10.0.0.3")))
    assert switch.route("a2", frame) == [("a3", frame)]
    switch.remove_network("net-a")
    assert switch.route("a2", frame) == []
    assert switch.drops[Drop.UNKNOWN_PORT] == 2
    assert switch.port_kind("a3") is None


def test_unlocated_and_remote_members() -> None:
    switch = make_switch()
    switch.add_port(SwitchPort("0xabc", "net-a", ip("10.0.0.5"), kind=PortKind.UNLOCATED))
    to_unlocated = udp_frame(ip("10.0.0.2"), ip("10.0.0.5"))
    assert switch.route("a2", to_unlocated) == []
    assert switch.route("a2", arp_request(ip("10.0.0.2"), ip("10.0.0.5"))) == []
    assert switch.counters("a2").drops[Drop.UNLOCATED] == 2

    switch.locate("0xabc", PortKind.REMOTE, link="node-x")
    assert switch.port_kind("0xabc") == (PortKind.REMOTE, "node-x")
    assert switch.route("a2", to_unlocated) == [("0xabc", to_unlocated)]
    _, packet, _ = arp_reply_of(switch.route("a2", arp_request(ip("10.0.0.2"), ip("10.0.0.5"))))
    assert packet.sender_mac == guest_mac(ip("10.0.0.5"))

    # frames from a link: to local members yes, back over a link never
    switch.add_port(SwitchPort("0xdef", "net-a", ip("10.0.0.6"), PortKind.REMOTE, "node-y"))
    assert switch.port_for_mac("net-a", guest_mac(ip("10.0.0.5"))) == "0xabc"
    assert switch.port_for_mac("net-b", guest_mac(ip("10.0.0.5"))) is None
    back = udp_frame(ip("10.0.0.5"), ip("10.0.0.2"))
    assert switch.route("0xabc", back) == [("a2", back)]
    assert switch.route("0xabc", udp_frame(ip("10.0.0.5"), ip("10.0.0.6"))) == []
    assert switch.counters("0xabc").drops[Drop.TRANSIT] == 1


def test_broadcasts_cross_each_link_once_and_never_come_back() -> None:
    switch = make_switch()
    switch.add_port(SwitchPort("x5", "net-a", ip("10.0.0.5"), PortKind.REMOTE, "node-x"))
    switch.add_port(SwitchPort("x6", "net-a", ip("10.0.0.6"), PortKind.REMOTE, "node-x"))
    switch.add_port(SwitchPort("y7", "net-a", ip("10.0.0.7"), PortKind.REMOTE, "node-y"))
    switch.add_port(SwitchPort("u8", "net-a", ip("10.0.0.8"), PortKind.UNLOCATED))
    bcast = udp_frame(ip("10.0.0.2"), ip("255.255.255.255"), dst_mac=BROADCAST_MAC)
    outs = [out for out, _ in switch.route("a2", bcast)]
    assert sorted(outs) == ["a3", "a4", "x5", "y7"]
    from_link = udp_frame(ip("10.0.0.6"), ip("10.0.0.255"), dst_mac=BROADCAST_MAC)
    assert sorted(out for out, _ in switch.route("x6", from_link)) == ["a2", "a3", "a4"]


def test_the_tables_refuse_what_would_corrupt_them() -> None:
    switch = make_switch()
    refused = [
        SwitchPort("a2", "net-a", ip("10.0.0.20")),  # id taken
        SwitchPort("n", "net-a", ip("10.0.0.3")),  # address taken in the network
        SwitchPort("n", "net-a", ip("10.0.1.3")),  # outside
        SwitchPort("n", "net-a", ip("10.0.0.0")),  # the network address
        SwitchPort("n", "net-a", ip("10.0.0.255")),  # the broadcast address
        SwitchPort("n", "nowhere", ip("10.0.0.3")),
        SwitchPort("n", "net-a", ip("10.0.0.30"), PortKind.REMOTE),  # remote without a link
        SwitchPort("n", "net-a", ip("10.0.0.30"), link="node-x"),  # a link on a local port
        SwitchPort("n", "net-a", ip("10.0.0.30"), mac=b"\x01\0\0\0\0\1"),  # group MAC
    ]
    for spec in refused:
        with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
            switch.add_port(spec)
    with pytest.raises(ValueError, match="exists"):
        switch.add_network(SwitchNetwork("net-a", CIDR, GW))
    with pytest.raises(ValueError, match="outside"):
        switch.add_network(SwitchNetwork("n", CIDR, ip("10.0.1.1")))
    with pytest.raises(ValueError, match="no room"):
        switch.add_network(SwitchNetwork("n", IPv4Network("10.0.0.0/31"), None))
    # the same address in another network is fine (that is what isolation is for)
    switch.add_port(SwitchPort("b4", "net-b", ip("10.0.0.4")))


def test_the_router_address_without_a_gateway_is_the_first_host() -> None:
    switch = Switch()
    switch.add_network(SwitchNetwork("n", IPv4Network("192.168.7.0/24"), None))
    switch.add_port(SwitchPort("p", "n", ip("192.168.7.10")))
    first = ip("192.168.7.1")
    _, packet, _ = arp_reply_of(switch.route("p", arp_request(ip("192.168.7.10"), first)))
    assert packet.sender_mac == router_mac(first)


def test_checksum_helper_agrees_with_replies() -> None:
    switch = make_switch()
    ((_, reply),) = switch.route("a2", ping_frame(ip("10.0.0.2"), GW, router_mac(GW)))
    assert checksum(reply[14:34]) == 0
    assert checksum(reply[34:]) == 0


def test_frames_from_an_unlocated_member_are_dropped() -> None:
    switch = make_switch()
    switch.add_port(SwitchPort("0xabc", "net-a", ip("10.0.0.5"), kind=PortKind.UNLOCATED))
    assert switch.route("0xabc", udp_frame(ip("10.0.0.5"), ip("10.0.0.2"))) == []
    assert switch.counters("0xabc").drops == {Drop.UNLOCATED: 1}
    switch.locate("0xabc", PortKind.LOCAL)
    assert [out for out, _ in switch.route("0xabc", udp_frame(ip("10.0.0.5"), ip("10.0.0.2")))] == [
        "a2"
    ]


def test_the_router_serves_only_its_own_nodes_vms() -> None:
    switch = make_switch()
    switch.add_port(SwitchPort("x5", "net-a", ip("10.0.0.5"), PortKind.REMOTE, "node-x"))
    from_link = [
        arp_request(ip("10.0.0.5"), GW),
        ping_frame(ip("10.0.0.5"), GW, router_mac(GW)),
        dhcp_request_frame(guest_mac(ip("10.0.0.5")), DhcpType.DISCOVER),
    ]
    for frame in from_link:
        assert switch.route("x5", frame) == []
    assert switch.counters("x5").drops == {Drop.NOT_FOR_ROUTER: 3}
    assert switch.counters("x5").to_router == 0
