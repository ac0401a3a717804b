"""Whatever bytes a guest sends, `route` never raises, and every frame is accounted for."""

from __future__ import annotations

from ipaddress import IPv4Network

from hypothesis import given, settings, strategies as st
from vpn_frames import arp_request, dhcp_request_frame, ip, ping_frame, udp_frame

from golem_actor.domain.vpn.addressing import BROADCAST_MAC, guest_mac, router_mac
from golem_actor.domain.vpn.dhcp import DhcpType
from golem_actor.domain.vpn.switch import Switch, SwitchNetwork, SwitchPort

GW = ip("10.0.0.1")
ME = ip("10.0.0.2")
MAC = guest_mac(ME)

VALID = [
    udp_frame(ME, ip("10.0.0.3")),
    udp_frame(ME, ip("10.0.0.255"), dst_mac=BROADCAST_MAC),
    arp_request(ME, GW),
    arp_request(ME, ip("10.0.0.3")),
    ping_frame(ME, GW, router_mac(GW)),
    dhcp_request_frame(MAC, DhcpType.DISCOVER),
    dhcp_request_frame(MAC, DhcpType.REQUEST, requested=ME),
]


def make_switch() -> Switch:
    switch = Switch()
    switch.add_network(SwitchNetwork("a", IPv4Network("10.0.0.0/24"), GW))
    switch.add_network(SwitchNetwork("b", IPv4Network("10.0.0.0/24"), GW))
    switch.add_port(SwitchPort("me", "a", ME))
    switch.add_port(SwitchPort("peer", "a", ip("10.0.0.3")))
    switch.add_port(SwitchPort("other", "b", ip("10.0.0.3")))
    return switch


def check(switch: Switch, frame: bytes) -> None:
    before = switch.counters("me")
    drops, taken = before.drops.total(), before.to_router
    routed = switch.route("me", frame)
    after = switch.counters("me")
    assert {out for out, _ in routed} <= {"me", "peer"}  # never into network b
    for out, sent in routed:
        if out == "peer":
            assert sent is frame
    outcomes = (
        (after.drops.total() - drops)
        + (after.to_router - taken)
        + bool(routed and routed[0][0] == "peer")
    )
    assert outcomes == 1, (frame.hex(), routed, after)


mutations = st.tuples(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4),
    st.integers(0, 400),
)


@settings(max_examples=1500, deadline=None)
@given(mutations)
def test_mutated_and_truncated_frames(case: tuple[bytes, list[tuple[int, int]], int]) -> None:
    frame, flips, cut = case
    data = bytearray(frame)
    for at, value in flips:
        if at < len(data):
            data[at] = value
    check(make_switch(), bytes(data[: max(cut, 0)] if cut < len(data) else data))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=1300))
def test_random_bytes_behind_our_own_header(tail: bytes) -> None:
    for ethertype in (b"\x08\x00", b"\x08\x06"):
        for dst in (BROADCAST_MAC, guest_mac(ip("10.0.0.3")), router_mac(GW)):
            check(make_switch(), dst + MAC + ethertype + tail)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes(frame: bytes) -> None:
    check(make_switch(), frame)
