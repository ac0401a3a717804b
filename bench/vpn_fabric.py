"""The vpn_router's data plane over real sockets (part of `python -m bench vpn`).

Two fd ports attached to a `VpnRouter` actor through `AttachPort` (unix datagram
socketpairs, one 1220-byte frame per datagram), and a load process (`_frame_load`: the
router keeps its interpreter, hence its core, to itself) pushing `N` UDP frames from A
to B as fast as its reader takes them at B. Frames/s and MB/s from the
first frame sent to the last one read (the router's queues drop what overflows, as a NIC
does: the frames that arrived count, the drops are reported), against a bare relay in
the same run: a trio task
that does only what the fabric's loops must (wait readable, read a batch, write each
frame to the other socket, wait writable when it is full), no switch, no queue. The
ratio says what routing, queues and counters cost on top of the socket work itself.
"""

from __future__ import annotations

import contextlib
import json
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Sample:
    rate: float  # frames delivered per second
    count: int  # frames delivered
    cpu: float  # this process's CPU seconds meanwhile: the router's (or relay's) work


async def _timed(a: socket.socket, b: socket.socket, n: int) -> Sample:
    """What one run delivered: the load runs in a process of its own (`_frame_load`), so
    the router keeps its interpreter to itself, and this process's CPU time is its own."""
    data = frame(A, B)
    cpu = time.process_time()
    command = [sys.executable, "-m", "bench._frame_load"]
    command += [str(a.fileno()), str(b.fileno()), str(n), data.hex()]
    result = await trio.run_process(
        command, pass_fds=(a.fileno(), b.fileno()), capture_stdout=True, check=True
    )
    cpu = time.process_time() - cpu
    measured = json.loads(result.stdout)
    return Sample(measured["count"] / measured["seconds"], int(measured["count"]), cpu)


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


async def _bare_case(n: int) -> Sample:
    a, inner_a = _pair()
    inner_b, b = _pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_bare_relay, inner_a, inner_b)
        measured = await _timed(a, b, n)
        nursery.cancel_scope.cancel()
    for sock in (a, b, inner_a, inner_b):
        sock.close()
    return measured


async def _fabric_case(n: int) -> Sample:
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
    cases: dict[str, Callable[[int], Awaitable[Sample]]] = {
        "bare relay": _bare_case,
        "router": _fabric_case,
    }
    samples: dict[str, list[Sample]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            samples[name].append(await case(n))
    size = len(frame(A, B))
    print(f"vpn fabric: {n} frames of {size} bytes over unix datagram sockets x {rounds}")
    result: dict[str, float] = {}
    for name, values in samples.items():
        fps = statistics.median(sample.rate for sample in values)
        delivered = sum(sample.count for sample in values)
        lost = 1 - delivered / (n * rounds)
        per_cpu = delivered / sum(sample.cpu for sample in values)
        key = name.replace(" ", "_")
        result[f"{key}_frames_per_s"] = fps
        result[f"{key}_frames_per_cpu_s"] = per_cpu
        result[f"{key}_dropped"] = lost
        print(
            f"  {name:<14} {fps:>11,.0f} frames/s   {fps * size / 1e6:8.1f} MB/s"
            f"   {lost:6.2%} dropped   {per_cpu:>11,.0f} frames per CPU second"
        )
    ratio = result["router_frames_per_s"] / result["bare_relay_frames_per_s"]
    result["router_over_bare"] = ratio
    print(f"  router / bare relay = {ratio:.2f}x")
    return result
