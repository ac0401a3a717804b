"""The vpn_router's data plane over real sockets (part of `python -m bench vpn`).

Two fd ports attached to a `VpnRouter` actor through `AttachPort` (unix datagram
socketpairs, one 1220-byte frame per datagram), and a sender thread pushing `N` UDP
frames from A to B as fast as B's reader thread takes them. Frames/s and MB/s from the
first frame sent to the last one read (the router's queues drop what overflows, as a NIC
does: the frames that arrived count, the drops are reported), against a bare relay in
the same run: a trio task
that does only what the fabric's loops must (wait readable, read a batch, write each
frame to the other socket, wait writable when it is full), no switch, no queue. The
ratio says what routing, queues and counters cost on top of the socket work itself.
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address
from pathlib import Path

import trio

from actors.vpn_router import AttachPort, CreateNetwork, GetVpnStats, VpnRouter
from golem_actor.domain.tenancy import Caller
from golem_actor.kernel import ChildSpec, Inbox, Supervisor
from golem_actor.state_store import StateStore

from ._frames import frame

N = 100_000
ROUNDS = 3
A, B = IPv4Address("10.0.0.2"), IPv4Address("10.0.0.3")


def _pair() -> tuple[socket.socket, socket.socket]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    for sock in (ours, theirs):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    return ours, theirs


def _send(sock: socket.socket, data: bytes, n: int) -> None:
    for _ in range(n):
        sock.send(data)  # blocking: waits while the router's queue is full


def _receive(sock: socket.socket, n: int) -> tuple[int, float]:
    """Frames read until `n` or a quiet second, and when the last one came."""
    sock.settimeout(1.0)
    count, last = 0, time.perf_counter()
    with contextlib.suppress(TimeoutError):
        while count < n:
            sock.recv(2048)
            count += 1
            last = time.perf_counter()
    return count, last


async def _timed(a: socket.socket, b: socket.socket, n: int) -> tuple[float, int]:
    """Frames per second delivered, and the number delivered."""
    data = frame(A, B)
    began = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, _send, a, data, n)
        count, ended = await trio.to_thread.run_sync(_receive, b, n)
    return count / (ended - began), count


async def _bare_relay(inner_a: socket.socket, inner_b: socket.socket) -> None:
    inner_a.setblocking(False)
    inner_b.setblocking(False)
    while True:
        await trio.lowlevel.wait_readable(inner_a)
        with contextlib.suppress(BlockingIOError):
            for _ in range(64):
                data = inner_a.recv(2048)
                while True:
                    try:
                        inner_b.send(data)
                        break
                    except BlockingIOError:
                        await trio.lowlevel.wait_writable(inner_b)


async def _bare_case(n: int) -> tuple[float, int]:
    a, inner_a = _pair()
    inner_b, b = _pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_bare_relay, inner_a, inner_b)
        measured = await _timed(a, b, n)
        nursery.cancel_scope.cancel()
    for sock in (a, b, inner_a, inner_b):
        sock.close()
    return measured


async def _fabric_case(n: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="bench-fabric-") as work:
        spec = ChildSpec("vpn_router", lambda: VpnRouter(store=StateStore(Path(work))))
        tree = Supervisor("bench", [spec], intensity=1, period=60.0)
        async with trio.open_nursery() as nursery:
            await nursery.start(tree.run, Inbox("bench"))
            vpn = tree.address_of(spec)
            net = await vpn.call(CreateNetwork(caller=Caller(operator=True), ip="10.0.0.0/24"))
            a, inner_a = _pair()
            inner_b, b = _pair()
            for name, inner, ip in (("a", inner_a, A), ("b", inner_b, B)):
                port = AttachPort(endpoint=name, fd=inner.detach(), network_id=net.id, ip=str(ip))
                await vpn.call(port)
            measured = await _timed(a, b, n)
            stats = await vpn.call(GetVpnStats())
            if stats.totals["frames_out"] + stats.totals["egress_dropped"] != n:
                raise RuntimeError(f"the fabric lost frames it did not count: {stats.totals}")
            nursery.cancel_scope.cancel()
        a.close()
        b.close()
    return measured


async def run(n: int = N, rounds: int = ROUNDS) -> dict[str, float]:
    cases: dict[str, Callable[[int], Awaitable[tuple[float, int]]]] = {
        "bare relay": _bare_case,
        "router": _fabric_case,
    }
    samples: dict[str, list[tuple[float, int]]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            samples[name].append(await case(n))
    size = len(frame(A, B))
    print(f"vpn fabric: {n} frames of {size} bytes over unix datagram sockets x {rounds}")
    result: dict[str, float] = {}
    for name, values in samples.items():
        fps = statistics.median(rate for rate, _ in values)
        lost = 1 - sum(count for _, count in values) / (n * rounds)
        result[f"{name.replace(' ', '_')}_frames_per_s"] = fps
        print(
            f"  {name:<14} {fps:>11,.0f} frames/s   {fps * size / 1e6:8.1f} MB/s"
            f"   {lost:6.2%} dropped"
        )
    ratio = result["router_frames_per_s"] / result["bare_relay_frames_per_s"]
    result["router_over_bare"] = ratio
    print(f"  router / bare relay = {ratio:.2f}x")
    return result
