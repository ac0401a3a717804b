"""Relay benchmark: bulk TCP throughput through our SSH proxy, against socat and no proxy.

What is measured: iperf3 (C, one client process and one server process, pinned to CPU 1
when the machine has two or more) pushes bulk data for a fixed time, with 1 stream and
with 50 concurrent streams, over each path, all in the same run, cases interleaved round
by round, medians reported:
- direct:      iperf3 client -> iperf3 server (loopback baseline, no proxy);
- socat:       through `socat TCP-LISTEN:p,fork,reuseaddr TCP:127.0.0.1:q` (its defaults:
               8 KiB buffer, one forked process per connection), pinned to CPU 0;
- socat -b256k: the same with `-b 262144` (socat's best case; for information);
- ours:        through an `SshProxy` actor run by a `DynamicSupervisor` in this process
               (trio event loop pinned to CPU 0; iperf3 runs in other processes, so the
               load generator never shares the proxy's loop).
Throughput is iperf3's received goodput (MB = 10^6 bytes per second, warm-up second
omitted). "proxy CPU" is the proxy's CPU time over wall time (socat: the listener and its
forked children; ours: this process), so "MB/s per proxy core" estimates capacity when
the proxy is not the bottleneck. The iperf3 control connection goes through the proxy
too. Target: ours >= socat with one stream.

On a small VM everything (sender, receiver, proxy, kernel loopback) competes for a few
cores: absolute numbers move from run to run by 10-30 %; read the ratios, and the CPU.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import psutil
import trio

from actors.ssh_proxy import GetProxyStats, ProxyConfig, ProxyStats, proxy_child_spec
from golem_actor.adapters.backend import Endpoint
from golem_actor.adapters.tcp_relay import SPLICE_AVAILABLE
from golem_actor.kernel import DynamicSupervisor, Inbox, StartChild

HOST = "127.0.0.1"
STREAMS = (1, 50)
TARGET_RATIO_P1 = 1.0


@dataclass
class Case:
    name: str
    port: int
    cpu_seconds: Callable[[], float] | None  # cumulative CPU of the proxy, None: no proxy
    mbps: dict[int, list[float]] = field(default_factory=dict)
    cpu: dict[int, list[float]] = field(default_factory=dict)


def _listening(port: int) -> bool:
    """Whether something listens on `port` (from /proc: probing would disturb iperf3)."""
    needle = f":{port:04X} "
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) > 3 and parts[3] == "0A" and (parts[1] + " ").endswith(needle):
                        return True
        except FileNotFoundError:
            continue
    return False


async def _wait_listening(port: int, what: str) -> None:
    """Poll /proc until `what` listens (an outside process: there is nothing to wait on)."""
    for _ in range(500):
        if _listening(port):
            return
        await trio.sleep(0.02)
    raise RuntimeError(f"{what} is not listening on port {port} after 10 s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _process_cpu(pid: int, *, with_children: bool) -> Callable[[], float]:
    proc = psutil.Process(pid)

    def read() -> float:
        t = proc.cpu_times()
        total = t.user + t.system
        if with_children:  # socat forks one process per connection
            total += t.children_user + t.children_system
            for child in proc.children():
                try:
                    c = child.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                total += c.user + c.system
        return total

    return read


async def _iperf(port: int, streams: int, seconds: float, pin: str | None) -> float:
    argv = ["iperf3", "-c", HOST, "-p", str(port), "-t", str(seconds), "-O", "1"]
    argv += ["-P", str(streams), "-J"]
    if pin is not None:
        argv += ["-A", pin]
    done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True)
    report = json.loads(done.stdout)
    bits: float = report["end"]["sum_received"]["bits_per_second"]
    return bits / 8 / 1e6


async def _measure(case: Case, streams: int, seconds: float, pin: str | None) -> None:
    before = case.cpu_seconds() if case.cpu_seconds else 0.0
    began = trio.current_time()
    mbps = await _iperf(case.port, streams, seconds, pin)
    wall = trio.current_time() - began
    case.mbps.setdefault(streams, []).append(mbps)
    if case.cpu_seconds is not None:
        if case.name.startswith("socat"):
            await trio.sleep(0.7)  # socat's children linger 0.5 s after a half-close
        case.cpu.setdefault(streams, []).append((case.cpu_seconds() - before) / wall)


async def run(seconds: float = 2.0, rounds: int = 3) -> dict[str, float]:
    if shutil.which("iperf3") is None:
        print("relay: iperf3 not found (apt-get install -y iperf3); skipped")
        return {}
    have_socat = shutil.which("socat") is not None
    two_cores = hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2
    pin_load = "1" if two_cores else None
    saved_affinity = os.sched_getaffinity(0) if two_cores else None
    if two_cores:
        os.sched_setaffinity(0, {0})  # the proxies (this loop, socat) on CPU 0
    server_port = _free_port()
    cases: list[Case] = [Case("direct", server_port, None)]
    proxy_stats: ProxyStats | None = None
    try:
        async with trio.open_nursery() as nursery:
            server_argv = ["iperf3", "-s", "-p", str(server_port)]
            if pin_load is not None:
                server_argv += ["-A", pin_load]
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            await nursery.start(partial(trio.run_process, server_argv, check=False, **quiet))
            await _wait_listening(server_port, "iperf3 server")
            if have_socat:
                for name, extra in (("socat", []), ("socat -b256k", ["-b", "262144"])):
                    port = _free_port()
                    argv = ["socat", *extra, f"TCP-LISTEN:{port},fork,reuseaddr"]
                    argv.append(f"TCP:{HOST}:{server_port}")
                    # stderr: socat reports iperf3's resets at the end of each test
                    socat = partial(trio.run_process, argv, check=False, **quiet)
                    proc = await nursery.start(socat)
                    await _wait_listening(port, name)
                    cases.append(Case(name, port, _process_cpu(proc.pid, with_children=True)))
            sup = DynamicSupervisor("ssh_proxies")
            await nursery.start(sup.run, Inbox("ssh_proxies"))
            config = ProxyConfig(
                vm_id="bench",
                listen_host=HOST,
                listen_port=0,
                target=Endpoint(HOST, server_port),
                max_connections=128,
            )
            proxy = await sup.address.call(StartChild(proxy_child_spec(config)))
            stats: ProxyStats = await proxy.call(GetProxyStats())
            cases.append(
                Case("ours", stats.listen_port, _process_cpu(os.getpid(), with_children=False))
            )

            for _ in range(rounds):
                for streams in STREAMS:
                    for case in cases:
                        await _measure(case, streams, seconds, pin_load)
            proxy_stats = await proxy.call(GetProxyStats())
            sup.request_stop()
            nursery.cancel_scope.cancel()  # the iperf3 server and socat
    finally:
        if saved_affinity is not None:
            os.sched_setaffinity(0, saved_affinity)
    return _report(cases, seconds, rounds, two_cores, proxy_stats, have_socat)


def _report(
    cases: list[Case],
    seconds: float,
    rounds: int,
    pinned: bool,
    proxy_stats: ProxyStats | None,
    have_socat: bool,
) -> dict[str, float]:
    engine = "os.splice" if SPLICE_AVAILABLE else "receive/send stream pump"
    print(
        f"relay: iperf3 bulk TCP over 127.0.0.1, {seconds:g}s per run (+1s warm-up omitted),"
        f" median of {rounds} interleaved rounds; MB = 10^6 bytes"
    )
    where = "iperf3 on CPU 1, proxy on CPU 0" if pinned else "no CPU pinning"
    print(f"  {where}; our relay engine: {engine}")
    if not have_socat:
        print("  socat not found (apt-get install -y socat): socat rows skipped")
    out: dict[str, float] = {}
    header = f"  {'path':<14}{'streams':>8}{'MB/s':>10}{'vs direct':>11}"
    print(header + f"{'proxy CPU':>11}{'MB/s per core':>15}")
    for streams in STREAMS:
        direct = statistics.median(cases[0].mbps[streams])
        for case in cases:
            mbps = statistics.median(case.mbps[streams])
            key = case.name.replace(" ", "").replace("-", "_")
            out[f"{key}_p{streams}_mbps"] = mbps
            line = f"  {case.name:<14}{streams:>8}{mbps:>10.0f}{mbps / direct:>10.2f}x"
            if case.cpu.get(streams):
                cpu = statistics.median(case.cpu[streams])
                out[f"{key}_p{streams}_cpu"] = cpu
                line += f"{cpu * 100:>10.0f}%{mbps / max(cpu, 1e-9):>15.0f}"
            print(line)
    for streams in STREAMS:
        if have_socat:
            ratio = out[f"ours_p{streams}_mbps"] / out[f"socat_p{streams}_mbps"]
            out[f"ours_vs_socat_p{streams}"] = ratio
            target = f" (target >= {TARGET_RATIO_P1:g}x)" if streams == 1 else ""
            print(f"  ours / socat, {streams} stream(s) = {ratio:.2f}x{target}")
    if proxy_stats is not None:
        moved = (proxy_stats.bytes_in + proxy_stats.bytes_out) / 1e9
        print(
            f"  our proxy relayed {moved:.1f} GB over {proxy_stats.total_connections}"
            f" connections, refused {proxy_stats.refused_connections}"
        )
    return out


if __name__ == "__main__":
    from golem_actor.logs import configure_logging

    configure_logging(fmt="console", level="warning")
    trio.run(run)
