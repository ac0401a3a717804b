"""VPN router benchmark: the switch's hot path (`Switch.route`) on 1220-byte frames.

What is measured, all in one process on one core, cases interleaved round by round,
medians reported (frames/s and MB/s, MB = 10^6 bytes):
- dict switch (baseline): the least any Python switch can do per frame, a dict lookup of
  the destination MAC (`table.get(frame[:6])`) and one `(port, frame)` pair in a list;
- copy (baseline): the same plus copying the frame once (`bytes(memoryview(frame))`),
  what a switch pays if it copies frames instead of passing the received `bytes` on;
- route: `Switch.route` with all its checks (size, source MAC and IP, ethertype,
  isolation, counters), UDP/IPv4 frames alternating between two ports of one network;
- route + queue: route, then the per-port egress queue (`EgressQueues.push_all`) and
  the drain (`take`) in batches of 64, what the actor will run per frame.
Target (issue 11): route >= 100k frames/s on one core. The ratio route / dict switch
says what the rules cost over a bare switch; sockets and the event loop are not part
of it. Then `vpn_fabric`: the router actor itself between two socketpair ports, against
a bare relay; and `vpn_vms`: TCP between two real guests through the router, against the
same guests' user networking (skipped without QEMU, or with GOLEM_BENCH_VPN_VMS=0).
The gate against the SSH relay is `python -m bench vpn_gate` (bench/vpn_gate.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network

from golem_actor.domain.vpn.addressing import guest_mac
from golem_actor.domain.vpn.egress import EgressQueues
from golem_actor.domain.vpn.switch import Switch, SwitchNetwork, SwitchPort

from . import vpn_fabric, vpn_vms
from ._frames import FRAME_SIZE, frame
from ._timing import Measure, compare

TARGET_FRAMES_PER_S = 100_000
BATCH = 64

A, B = IPv4Address("10.0.0.2"), IPv4Address("10.0.0.3")


def make_switch() -> Switch:
    switch = Switch()
    switch.add_network(SwitchNetwork("net", IPv4Network("10.0.0.0/24"), IPv4Address("10.0.0.1")))
    switch.add_network(SwitchNetwork("other", IPv4Network("10.0.0.0/24"), None))
    for n, (port, net) in enumerate([("a", "net"), ("b", "net"), ("c", "other"), ("d", "other")]):
        switch.add_port(SwitchPort(port, net, IPv4Address(f"10.0.0.{2 + n % 2}")))
    return switch


def traffic(n: int) -> list[tuple[str, bytes]]:
    ab, ba = frame(A, B), frame(B, A)
    return [("a", ab) if i % 2 == 0 else ("b", ba) for i in range(n)]


def _clocked(loop: Callable[[list[tuple[str, bytes]]], int]) -> Measure:
    async def measure(n: int) -> float:
        frames = traffic(n)
        began = time.perf_counter()
        sent = loop(frames)
        elapsed = time.perf_counter() - began
        if sent != n:
            raise AssertionError(f"{sent} of {n} frames switched")
        return elapsed

    return measure


def dict_switch(frames: list[tuple[str, bytes]]) -> int:
    table = {guest_mac(A): "a", guest_mac(B): "b"}
    sent = 0
    for _port, data in frames:
        out = table.get(data[:6])
        routed = [(out, data)]
        sent += len(routed)
    return sent


def copy_switch(frames: list[tuple[str, bytes]]) -> int:
    table = {guest_mac(A): "a", guest_mac(B): "b"}
    sent = 0
    for _port, data in frames:
        out = table.get(data[:6])
        routed = [(out, bytes(memoryview(data)))]
        sent += len(routed)
    return sent


def route(frames: list[tuple[str, bytes]]) -> int:
    switch_route = make_switch().route
    sent = 0
    for port, data in frames:
        sent += len(switch_route(port, data))
    return sent


def route_and_queue(frames: list[tuple[str, bytes]]) -> int:
    switch_route = make_switch().route
    queues = EgressQueues(max_frames=4 * BATCH)
    push_all, take = queues.push_all, queues.take
    sent = 0
    for i, (port, data) in enumerate(frames, 1):
        push_all(switch_route(port, data))
        if i % BATCH == 0:
            sent += len(take("a", BATCH)) + len(take("b", BATCH))
    return sent + len(take("a", BATCH)) + len(take("b", BATCH))


async def run(n: int = 50_000, rounds: int = 9) -> dict[str, float]:
    cases = {
        "dict switch": _clocked(dict_switch),
        "copy": _clocked(copy_switch),
        "route": _clocked(route),
        "route + queue": _clocked(route_and_queue),
    }
    per_frame = await compare(cases, n, rounds)
    print(f"vpn: {n} frames of {FRAME_SIZE} bytes x {rounds} rounds, median per frame")
    for name, seconds in per_frame.items():
        fps = 1 / seconds
        print(
            f"  {name:<14} {seconds * 1e6:7.3f} us   {fps:>11,.0f} frames/s"
            f"   {fps * FRAME_SIZE / 1e6:8.1f} MB/s"
        )
    route_fps = 1 / per_frame["route"]
    ratio = per_frame["route"] / per_frame["dict switch"]
    queue_ratio = per_frame["route + queue"] / per_frame["dict switch"]
    verdict = "met" if route_fps >= TARGET_FRAMES_PER_S else "MISSED"
    print(f"  route / dict switch         = {ratio:.2f}x")
    print(f"  route + queue / dict switch = {queue_ratio:.2f}x")
    print(f"  route: {route_fps:,.0f} frames/s, target >= {TARGET_FRAMES_PER_S:,}: {verdict}")
    return {
        "route_frames_per_s": route_fps,
        "route_ratio": ratio,
        "queue_ratio": queue_ratio,
        **per_frame,
        **(await vpn_fabric.run()),
        **(await vpn_vms.run()),
    }


if __name__ == "__main__":
    import trio

    trio.run(run)
