"""API benchmark: `GET /api/v1/vms` with 20 VMs under wrk, against `GET /api/v1/health`.

What is measured: the node's tree (`supervisors.node_tree` from `_node.memory_parts`:
resource tracker, port verifier (checks skipped), ssh_proxies, vm_lifecycle, api on
Quart-Trio + hypercorn) runs in this process's trio loop over the in-memory backend;
20 VMs are created through `POST /api/v1/vms`. Then wrk (C, another process; `-t1`,
10 keep-alive connections) loads one route for a fixed time, both routes in the same
run, interleaved round by round, medians reported:
- health: `GET /api/v1/health`, the cheapest route of the same server (baseline);
- vms:    `GET /api/v1/vms` with the operator's bearer token, so the answer lists all
          20 VMs (one `ListVms` call to the lifecycle actor, 20 `VmInfo` encoded).
Both requests carry the same `Authorization` header (health ignores it). With two or more
CPUs the server's loop is pinned to CPU 0 and wrk to CPU 1 (`taskset`), as in the stack
notes; each run waits for the machine to be idle-ish first. "server CPU" is this
process's CPU time over wall time during the run (~100 %: the loop is the bottleneck).
Logs are at `warning`, so the per-request `request` info line costs only its filtering.
Full (generation 2) garbage collections are timed with a `gc.callbacks` hook: this
process holds the whole node's imports, and a full collection stops the loop for tens
of milliseconds, which is what sets p99 when it happens inside a run.

On a small shared VM absolute req/s move by 5-15 % between runs; the ratio is steadier.
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import psutil
import trio

from golem_actor.keys import generate_ssh_keypair

from ._node import ApiNode, http, idle_gate, running_memory_api

VMS = 20
CASES = {"health": "/health", "vms": "/vms"}

_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_PERCENTILE = re.compile(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: (.*)")
_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu: float
    full_gcs: int  # gen-2 collections during the run (each stops the loop)
    longest_gc_ms: float


class GcWatch:
    """A `gc.callbacks` hook timing full (generation 2) collections."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._began)


@dataclass
class Case:
    name: str
    url: str
    samples: list[Sample] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        return float(statistics.median(getattr(s, attribute) for s in self.samples))


def parse_wrk(output: str) -> tuple[float, float, float]:
    """(req/s, p50 ms, p99 ms) from wrk's `--latency` report; errors raise."""
    if (bad := _NON_2XX.search(output)) is not None:
        raise RuntimeError(f"wrk saw {bad.group(1)} non-2xx answers:\n{output}")
    if (errors := _SOCKET_ERRORS.search(output)) is not None:
        raise RuntimeError(f"wrk saw socket errors ({errors.group(1)}):\n{output}")
    rps = _RPS.search(output)
    percentiles = {int(p): float(v) * _UNIT_MS[u] for p, v, u in _PERCENTILE.findall(output)}
    if rps is None or 50 not in percentiles or 99 not in percentiles:
        raise RuntimeError(f"cannot parse wrk's report:\n{output}")
    return float(rps.group(1)), percentiles[50], percentiles[99]


async def _wrk(url: str, token: str, seconds: float, connections: int, pin: str | None) -> str:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    argv += ["-H", f"Authorization: Bearer {token}", url]
    if pin is not None:
        argv = ["taskset", "-c", pin, *argv]
    done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True)
    return str(done.stdout.decode())


def _own_cpu() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


async def _measure(case: Case, node: ApiNode, seconds: float, conns: int, pin: str | None) -> float:
    """One wrk run of `case`; the machine's CPU use seen by the idle gate before it."""
    busy = await idle_gate()
    watch = GcWatch()
    gc.callbacks.append(watch)
    try:
        cpu_before, began = _own_cpu(), time.monotonic()
        output = await _wrk(case.url, node.token, seconds, conns, pin)
        cpu = (_own_cpu() - cpu_before) / (time.monotonic() - began)
    finally:
        gc.callbacks.remove(watch)
    rps, p50, p99 = parse_wrk(output)
    longest = max(watch.pauses, default=0.0) * 1e3
    case.samples.append(Sample(rps, p50, p99, cpu, len(watch.pauses), longest))
    return busy


def _create_vms(node: ApiNode, count: int) -> int:
    """Create `count` VMs through the API and wait until all run; the list's size in bytes."""
    _, public_key = generate_ssh_keypair("bench")
    resources = {"cpu": 1, "memory": 1, "storage": 10}
    for i in range(count):
        body = {"name": f"bench-{i:02d}", "resources": resources, "ssh_key": public_key}
        status, reply = http("POST", f"{node.url}/vms?async=true", node.token, body)
        if status != 202:
            raise RuntimeError(f"creating VM {i}: HTTP {status} {reply}")
    deadline = time.monotonic() + 30.0
    while True:
        status, listed = http("GET", f"{node.url}/vms", node.token)
        running = [vm for vm in listed if vm["status"] == "running"] if status == 200 else []
        if len(running) == count == len(listed):
            return len(msgspec.json.encode(listed))
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(running)} of {count} VMs running after 30 s: {listed}")
        time.sleep(0.05)


def _pinning() -> tuple[bool, str | None]:
    """(pin this process to CPU 0?, CPU list for wrk) when the machine allows it."""
    two = hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2
    if two and shutil.which("taskset") is not None:
        return True, "1"
    return False, None


async def run(seconds: float = 5.0, rounds: int = 3, connections: int = 10) -> dict[str, float]:
    if shutil.which("wrk") is None:
        print("api: wrk not found (apt-get install -y wrk); skipped")
        return {}
    pinned, wrk_cpu = _pinning()
    saved_affinity = os.sched_getaffinity(0) if pinned else None
    if pinned:
        os.sched_setaffinity(0, {0})  # this thread runs the trio loop: the server
    busiest = 0.0
    try:
        with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
            async with running_memory_api(Path(tmp), VMS) as node:
                size = await trio.to_thread.run_sync(_create_vms, node, VMS)
                cases = [Case(name, node.url + path) for name, path in CASES.items()]
                for case in cases:  # warm-up, not recorded
                    await _wrk(case.url, node.token, 1.0, connections, wrk_cpu)
                for _ in range(rounds):
                    for case in cases:
                        busy = await _measure(case, node, seconds, connections, wrk_cpu)
                        busiest = max(busiest, busy)
    finally:
        if saved_affinity is not None:
            os.sched_setaffinity(0, saved_affinity)
    return _report(cases, seconds, rounds, connections, pinned, size, busiest)


def _report(
    cases: list[Case],
    seconds: float,
    rounds: int,
    connections: int,
    pinned: bool,
    size: int,
    busiest: float,
) -> dict[str, float]:
    print(
        f"api: wrk -t1 -c{connections} -d{seconds:g}s --latency, median of {rounds}"
        f" interleaved rounds; GET /api/v1/vms lists {VMS} VMs ({size} bytes of JSON)"
    )
    where = "server loop on CPU 0, wrk on CPU 1 (taskset)" if pinned else "no CPU pinning"
    print(f"  {where}; machine CPU before runs <= {busiest:.0f}% (idle gate 30%)")
    head = f"  {'route':<22}{'req/s':>9}{'(min-max)':>15}{'p50 ms':>9}{'p99 ms':>9}{'srv CPU':>9}"
    print(head + f"{'full GCs':>10}{'max GC ms':>11}")
    out: dict[str, float] = {}
    for case in cases:
        rps = [s.rps for s in case.samples]
        spread = f"({min(rps):.0f}-{max(rps):.0f})"
        label = "GET /health" if case.name == "health" else f"GET /vms ({VMS} VMs)"
        print(
            f"  {label:<22}{case.median('rps'):>9.0f}{spread:>15}{case.median('p50_ms'):>9.2f}"
            f"{case.median('p99_ms'):>9.2f}{case.median('cpu') * 100:>8.0f}%"
            f"{case.median('full_gcs'):>10.0f}{case.median('longest_gc_ms'):>11.1f}"
        )
        for attribute in ("rps", "p50_ms", "p99_ms", "cpu", "full_gcs", "longest_gc_ms"):
            out[f"{case.name}_{attribute}"] = case.median(attribute)
    ratio = out["vms_rps"] / out["health_rps"]
    out["vms_vs_health_rps"] = ratio
    print(f"  vms / health req/s = {ratio:.2f}x")
    print(f"  p99: vms {out['vms_p99_ms']:.2f} ms, health {out['health_p99_ms']:.2f} ms")
    print(
        "  (full GCs: per run, median; each pauses the loop for its length, so long ones"
        " set the p99)"
    )
    return out
