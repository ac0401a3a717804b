"""`python -m bench connections`: 1000 concurrent TCP connections through 10 VMs' SSH relays.

What is run: an echo server (`bench._echo`, a process of its own) stands in for the
guests' sshd: it says an SSH banner, then echoes. Our node (`bench._api_server`, a process
of its own, on the Multipass fake) makes `vms` VMs whose SSH endpoint is that server, so
each VM's relay (its `ssh_proxy` actor, on the VM's public port) forwards to it. The load
generator is this process's trio loop. One round opens `connections` connections at once,
spread evenly over the VMs' ports; each reads the banner and has 1 KiB echoed (setup
latency: from the connect to the echo), then waits until *all* of them got there (so they
are all open together), then has 1 KiB echoed again (echo latency) and closes. Any refused
or reset connection, wrong byte, or step slower than `step_bound` seconds is an error.

Baseline, in the same run, rounds interleaved: the same connections straight to the echo
server (no relay). Reported per path: errors, time until all were open, setup and echo
latency p50/p99 (medians over the rounds). The node process's RSS, fds, threads and inet
sockets are sampled before the first round, at the peak of each relayed round and after
it, once the node has stopped closing connections (`bench._usage.settled`). The first
round sets the high-water marks (RSS), so the baseline is the sample after it; the
verdict is "flat" when the sample after the last round is within `bench._usage.Tolerance`
of it and no connection failed.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio

from . import _upstream, _usage
from ._load import create_vms, percentile, raise_fd_limit
from ._node import HOST
from ._usage import Tolerance, Usage, settled

PAYLOAD = 1024


@dataclass
class Round:
    """One round of one path: what every connection saw."""

    total: int
    setup_ms: list[float] = field(default_factory=list)
    echo_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    all_open_s: float = math.nan
    ready: int = 0
    all_ready: trio.Event = field(default_factory=trio.Event)
    release: trio.Event = field(default_factory=trio.Event)


async def _exchange(stream: trio.SocketStream, payload: bytes) -> None:
    await stream.send_all(payload)
    received = bytearray()
    while len(received) < len(payload):
        chunk = await stream.receive_some(len(payload) - len(received))
        if not chunk:
            raise ConnectionError(f"closed after {len(received)} of {len(payload)} echoed bytes")
        received += chunk
    if received != payload:
        raise ConnectionError("the echo differs from what was sent")


async def _banner(stream: trio.SocketStream) -> None:
    received = b""
    while not received.endswith(b"\n"):
        chunk = await stream.receive_some(256)
        if not chunk:
            raise ConnectionError(f"closed before the banner ended: {received!r}")
        received += chunk
    if not received.startswith(b"SSH-"):
        raise ConnectionError(f"not an SSH banner: {received!r}")


async def _connection(port: int, index: int, state: Round, step_bound: float) -> None:
    payload = (f"{index:07d}\n".encode() * (PAYLOAD // 8))[:PAYLOAD]
    step = "connect"
    try:
        with trio.fail_after(step_bound):
            began = time.perf_counter()
            stream = await trio.open_tcp_stream(HOST, port)
        async with stream:
            with trio.fail_after(step_bound):
                step = "banner"
                await _banner(stream)
                step = "first echo"
                await _exchange(stream, payload)
                state.setup_ms.append((time.perf_counter() - began) * 1e3)
            _arrived(state)
            await state.release.wait()
            with trio.fail_after(step_bound):
                step = "second echo"
                began = time.perf_counter()
                await _exchange(stream, payload)
                state.echo_ms.append((time.perf_counter() - began) * 1e3)
    except (OSError, trio.BrokenResourceError, trio.TooSlowError) as exc:
        state.errors.append(f"#{index} port {port} {step}: {type(exc).__name__}: {exc}")
        _arrived(state)


def _arrived(state: Round) -> None:
    state.ready += 1
    if state.ready == state.total:
        state.all_ready.set()


async def one_round(
    ports: list[int],
    connections: int,
    step_bound: float,
    at_peak: Callable[[], None] | None = None,
) -> Round:
    """`connections` connections over `ports` at once; `at_peak()` runs while all of them
    are open (it blocks this loop: the connections wait for it)."""
    state = Round(connections)
    began = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for index in range(connections):
            port = ports[index % len(ports)]
            nursery.start_soon(_connection, port, index, state, step_bound)
        await state.all_ready.wait()
        state.all_open_s = time.perf_counter() - began
        if at_peak is not None:
            at_peak()
        state.release.set()
    return state


def _start_echo() -> tuple[subprocess.Popen[bytes], int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench._echo"],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.strip():
        process.kill()
        raise RuntimeError("the echo server did not start")
    return process, int(line)


@dataclass
class PathStats:
    name: str
    rounds: list[Round] = field(default_factory=list)

    def median(self, values: list[float]) -> float:
        return statistics.median(values) if values else math.nan


async def run(
    connections: int = 1000,
    vms: int = 10,
    rounds: int = 4,
    step_bound: float = 30.0,
    tolerance: Tolerance | None = None,
) -> dict[str, float]:
    tolerance = tolerance or Tolerance()
    per_vm = math.ceil(connections / vms)
    limit = raise_fd_limit(2 * connections + 1024)  # the node holds two fds per relayed one
    echo, echo_port = await trio.to_thread.run_sync(_start_echo)
    direct, relayed = PathStats("direct"), PathStats("relayed")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-connections-") as tmp:
            multipass = _upstream.multipass_wrapper(Path(tmp))
            server = _upstream.ours(
                Path(tmp), multipass, vms, None, sshd_port=echo_port, max_connections=per_vm
            )
            await trio.to_thread.run_sync(server.start)
            try:
                made = await trio.to_thread.run_sync(create_vms, server, vms, "relay")
                ports = [int(vm["ssh_port"]) for vm in made]
                pid = server.pid
                samples = [("before", Usage.of(pid))]
                for index in range(1, rounds + 1):
                    direct.rounds.append(await one_round([echo_port], connections, step_bound))
                    peak = partial(_sample, samples, f"peak {index}", pid)
                    relayed.rounds.append(await one_round(ports, connections, step_bound, peak))
                    after = await trio.to_thread.run_sync(settled, pid)
                    samples.append((f"after {index}", after))
            finally:
                await trio.to_thread.run_sync(server.stop)
    finally:
        echo.kill()
        await trio.to_thread.run_sync(echo.wait)
    return _report(direct, relayed, connections, vms, samples, tolerance, limit)


def _sample(samples: list[tuple[str, Usage]], label: str, pid: int) -> None:
    samples.append((label, Usage.of(pid)))


def _report(
    direct: PathStats,
    relayed: PathStats,
    connections: int,
    vms: int,
    samples: list[tuple[str, Usage]],
    tolerance: Tolerance,
    limit: int,
) -> dict[str, float]:
    rounds = len(direct.rounds)
    print(
        f"connections: {connections} concurrent TCP connections, each: banner, 1 KiB echoed,"
        f" wait for all, 1 KiB echoed, close; {rounds} interleaved rounds, medians"
    )
    print(
        f"  relayed: through the SSH relays of {vms} VMs ({connections // vms} per VM) to a"
        f" loopback echo server; direct: the same connections to it (baseline); fd limit {limit}"
    )
    head = f"  {'path':<10}{'errors':>8}{'all open s':>12}{'setup p50':>11}{'setup p99':>11}"
    print(head + f"{'echo p50':>10}{'echo p99':>10}   (ms)")
    out: dict[str, float] = {}
    for path in (direct, relayed):
        errors = sum(len(r.errors) for r in path.rounds)
        values = {
            "all_open_s": path.median([r.all_open_s for r in path.rounds]),
            "setup_p50_ms": path.median([percentile(r.setup_ms, 0.5) for r in path.rounds]),
            "setup_p99_ms": path.median([percentile(r.setup_ms, 0.99) for r in path.rounds]),
            "echo_p50_ms": path.median([percentile(r.echo_ms, 0.5) for r in path.rounds]),
            "echo_p99_ms": path.median([percentile(r.echo_ms, 0.99) for r in path.rounds]),
        }
        print(
            f"  {path.name:<10}{errors:>8}{values['all_open_s']:>12.2f}"
            f"{values['setup_p50_ms']:>11.1f}{values['setup_p99_ms']:>11.1f}"
            f"{values['echo_p50_ms']:>10.1f}{values['echo_p99_ms']:>10.1f}"
        )
        for error in [e for r in path.rounds for e in r.errors][:5]:
            print(f"    {error}")
        out |= {f"{path.name}_{key}": value for key, value in values.items()}
        out[f"{path.name}_errors"] = float(errors)
    ratio = out["relayed_setup_p50_ms"] / out["direct_setup_p50_ms"]
    print(f"  relayed / direct setup p50 = {ratio:.2f}x")
    print("  node process:")
    print(_usage.header(""))
    for label, sample in samples:
        print(_usage.row(label, sample))
    # The first round's peak sets the high-water marks (RSS); growth is what later rounds add.
    baseline, end = samples[2][1], samples[-1][1]
    grown = tolerance.growth(baseline, end)
    failed = out["relayed_errors"] + out["direct_errors"]
    verdict = "flat" if not grown and not failed else "GROWTH" if grown else "ERRORS"
    shown = "; ".join(grown) or "nothing past tolerance"
    print(f"  verdict: {verdict} ({shown}; after the last round against after the first)")
    peak = max((sample for label, sample in samples if label.startswith("peak")), key=_sockets)
    out |= _usage.as_metrics("start", baseline) | _usage.as_metrics("peak", peak)
    out |= _usage.as_metrics("end", end)
    out["grown"] = float(len(grown))
    return out


def _sockets(usage: Usage) -> int:
    return usage.sockets
