"""`python -m bench api --against-upstream`: our API against the provider it replaces.

Why: issue 13's yardstick. Every performance claim about the API is a ratio against
upstream's `golem-vm-provider` (FastAPI on uvicorn) measured in the same run, on the same
fake `multipass`, with the same capacity (see bench/_upstream.py for how each is started).

One round, per server (the order alternates round by round): start it (start-up time:
process start until `GET /api/v1/provider/info` answers 200), read its idle RSS, then with
0 VMs run wrk (C, `-t1`, keep-alive) on `GET /api/v1/provider/info` and `GET /api/v1/vms`
at 4 and 32 connections; create `VMS` VMs one by one (create latency: `POST /vms?async=true`
until `GET /vms/{name}` says `running`); the same four wrk runs with `VMS` VMs; delete them
one by one (delete latency: `DELETE /vms/{name}` until `GET /vms/{name}` is 404); stop it.
Server CPU per request is the server process's CPU time (with its reaped children, the
multipass calls) over the run, divided by the requests wrk completed. With two or more
CPUs the servers (and their children) are pinned to CPU 0 and wrk to CPU 1.
The table shows ours / upstream of the medians over the rounds, and the range of the
per-round ratios of requests/s.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
import trio

from golem_actor.keys import generate_ssh_keypair

from . import _upstream
from ._node import MEMORY_TOKEN, idle_gate
from ._upstream import Server

VMS = 20
ROUTES = {"info": "/provider/info", "vms": "/vms"}
CONNECTIONS = (4, 32)

_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_REQUESTS = re.compile(r"(\d+) requests in")
_PERCENTILE = re.compile(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_TIMEOUTS = re.compile(r"Socket errors:.*timeout (\d+)")
_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}

Samples = dict[str, list[float]]  # metric key -> one value per round


def parse_wrk(output: str) -> tuple[float, int, float, float, int]:
    """(req/s, requests, p50 ms, p99 ms, timeouts); non-2xx answers raise."""
    if (bad := _NON_2XX.search(output)) is not None:
        raise RuntimeError(f"wrk saw {bad.group(1)} non-2xx answers:\n{output}")
    rps, done = _RPS.search(output), _REQUESTS.search(output)
    percentiles = {int(p): float(v) * _UNIT_MS[u] for p, v, u in _PERCENTILE.findall(output)}
    if rps is None or done is None:
        raise RuntimeError(f"cannot parse wrk's report:\n{output}")
    timeouts = _TIMEOUTS.search(output)
    return (
        float(rps.group(1)),
        int(done.group(1)),
        percentiles.get(50, float("nan")),
        percentiles.get(99, float("nan")),
        int(timeouts.group(1)) if timeouts else 0,
    )


async def _wrk(server: Server, path: str, conns: int, seconds: float, pin: str | None) -> str:
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", "--timeout", "10s", "--latency"]
    argv += ["-H", f"Authorization: Bearer {MEMORY_TOKEN}", server.url + path]
    if pin is not None:
        argv = ["taskset", "-c", pin, *argv]
    done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True)
    return str(done.stdout.decode())


async def _load(
    server: Server, vms: int, seconds: float, pin: str | None, out: Samples, notes: set[str]
) -> float:
    """The four wrk runs at `vms` VMs; the busiest machine CPU the idle gate saw."""
    busiest = 0.0
    for route, path in ROUTES.items():
        for conns in CONNECTIONS:
            busiest = max(busiest, await idle_gate(bound=3.0))
            cpu_before = server.cpu_seconds()
            output = await _wrk(server, path, conns, seconds, pin)
            cpu = server.cpu_seconds() - cpu_before
            rps, requests, p50, p99, timeouts = parse_wrk(output)
            key = f"{route}_{vms}vms_c{conns}"
            out[f"{server.name}:{key}:rps"].append(rps)
            out[f"{server.name}:{key}:p50"].append(p50)
            out[f"{server.name}:{key}:p99"].append(p99)
            out[f"{server.name}:{key}:cpu_ms"].append(1e3 * cpu / max(requests, 1))
            if timeouts:
                notes.add(f"{server.name} {key}: {timeouts} requests over wrk's 10 s timeout")
    return busiest


def _wait_status(client: httpx.Client, url: str, want: int, status: str | None) -> None:
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        reply = client.get(url)
        if reply.status_code == want and (status is None or reply.json()["status"] == status):
            return
        time.sleep(0.01)
    raise RuntimeError(f"{url}: no {want} {status or ''} within 60 s")


def _create_all(server: Server, key: str) -> tuple[list[float], list[str]]:
    """Create `VMS` VMs one by one: (latencies, the ids the server gave them)."""
    latencies, ids = [], []
    resources = {"cpu": 1, "memory": 1, "storage": 10}
    headers = {"Authorization": f"Bearer {MEMORY_TOKEN}"}
    with httpx.Client(timeout=60.0, headers=headers) as client:
        for i in range(VMS):
            name = f"bench-{i:02d}"
            body = {"name": name, "resources": resources, "ssh_key": key}
            began = time.monotonic()
            reply = client.post(f"{server.url}/vms", params={"async": "true"}, json=body)
            if reply.status_code not in (200, 201, 202):
                raise RuntimeError(
                    f"{server.name}: create {name}: {reply.status_code} {reply.text}"
                )
            answer = reply.json()
            vm_id = str(answer.get("vm_id") or answer["id"])  # upstream: the name; ours: vm-...
            _wait_status(client, f"{server.url}/vms/{vm_id}", 200, "running")
            latencies.append(time.monotonic() - began)
            ids.append(vm_id)
        listed = client.get(f"{server.url}/vms").json()
        if len(listed) != VMS:
            raise RuntimeError(f"{server.name} lists {len(listed)} VMs, not {VMS}")
    return latencies, ids


def _delete_all(server: Server, ids: list[str]) -> list[float]:
    latencies = []
    headers = {"Authorization": f"Bearer {MEMORY_TOKEN}"}
    with httpx.Client(timeout=60.0, headers=headers) as client:
        for vm_id in ids:
            began = time.monotonic()
            reply = client.delete(f"{server.url}/vms/{vm_id}")
            if reply.status_code not in (200, 202, 204):
                raise RuntimeError(
                    f"{server.name}: delete {vm_id}: {reply.status_code} {reply.text}"
                )
            _wait_status(client, f"{server.url}/vms/{vm_id}", 404, None)
            latencies.append(time.monotonic() - began)
    return latencies


async def _one_server(
    server: Server, key: str, seconds: float, pin: str | None, out: Samples, notes: set[str]
) -> float:
    await trio.to_thread.run_sync(server.start)
    try:
        out[f"{server.name}:startup_s"].append(server.startup_s)
        out[f"{server.name}:rss_mib"].append(server.idle_rss / 2**20)
        busiest = await _load(server, 0, seconds, pin, out, notes)
        creates, ids = await trio.to_thread.run_sync(_create_all, server, key)
        out[f"{server.name}:create_s"].append(statistics.median(creates))
        busiest = max(busiest, await _load(server, VMS, seconds, pin, out, notes))
        deletes = await trio.to_thread.run_sync(_delete_all, server, ids)
        out[f"{server.name}:delete_s"].append(statistics.median(deletes))
    finally:
        await trio.to_thread.run_sync(server.stop)
    return busiest


async def run(seconds: float = 4.0, rounds: int = 3) -> dict[str, float]:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk not found: run .ci/install-bench-deps.sh")
    binary = await trio.to_thread.run_sync(_upstream.install_upstream)
    pinned = shutil.which("taskset") is not None and len(_affinity()) >= 2
    server_cpus, wrk_cpu = ({0}, "1") if pinned else (None, None)
    _, key = generate_ssh_keypair("bench")
    out: Samples = defaultdict(list)
    notes: set[str] = set()
    busiest = 0.0
    for round_ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="bench-api-upstream-") as name:
            tmp = Path(name)
            multipass = _upstream.multipass_wrapper(tmp)
            servers = [
                _upstream.ours(tmp, multipass, VMS, server_cpus),
                _upstream.upstream(tmp, binary, multipass, VMS, server_cpus),
            ]
            for server in servers if round_ % 2 == 0 else servers[::-1]:
                busy = await _one_server(server, key, seconds, wrk_cpu, out, notes)
                busiest = max(busiest, busy)
    return _report(out, notes, seconds, rounds, pinned, busiest)


def _affinity() -> set[int]:
    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()


def _median(out: Samples, who: str, key: str) -> float:
    return float(statistics.median(out[f"{who}:{key}"]))


def _ratio(out: Samples, key: str) -> float:
    """ours / upstream of the medians; inf when upstream's is 0 (no request completed)."""
    theirs = _median(out, "upstream", key)
    return _median(out, "ours", key) / theirs if theirs else float("inf")


def _report(
    out: Samples, notes: set[str], seconds: float, rounds: int, pinned: bool, busiest: float
) -> dict[str, float]:
    print(
        f"api --against-upstream: golem-vm-provider 0.1.63 (FastAPI/uvicorn) vs ours, same fake"
        f" multipass, capacity {VMS} VMs; wrk -t1 -d{seconds:g}s, {rounds} interleaved rounds"
    )
    where = "servers on CPU 0, wrk on CPU 1" if pinned else "no CPU pinning"
    print(f"  {where}; machine CPU before runs <= {busiest:.0f}% (idle gate 30%, 3 s bound)")
    print(
        f"  {'ours / upstream':<30}{'req/s':>8} {'(per round)':>19} {'p50':>9} {'p99':>9}"
        f" {'CPU/req':>9}{'ours req/s':>12}{'up req/s':>10}{'ours p99':>10}{'up p99':>9}"
        f"{'ours CPU':>10}{'up CPU':>11}"
    )
    result: dict[str, float] = {}
    for vms in (0, VMS):
        for route, path in ROUTES.items():
            for conns in CONNECTIONS:
                key = f"{route}_{vms}vms_c{conns}"
                ours, theirs = out[f"ours:{key}:rps"], out[f"upstream:{key}:rps"]
                per_round = [
                    a / b if b else float("inf") for a, b in zip(ours, theirs, strict=True)
                ]
                spread = f"({min(per_round):.3g}-{max(per_round):.3g})"
                label = f"GET {path} {vms:>2} VMs c{conns}"
                ratios = {m: _ratio(out, f"{key}:{m}") for m in ("rps", "p50", "p99", "cpu_ms")}
                if not min(theirs):
                    notes.add(f"upstream completed no request of {label} in a {seconds:g} s run")
                print(
                    f"  {label:<30}{ratios['rps']:>7.3g}x {spread:>19} {ratios['p50']:>8.3g}x"
                    f" {ratios['p99']:>8.3g}x {ratios['cpu_ms']:>8.3g}x"
                    f"{statistics.median(ours):>12.0f}{statistics.median(theirs):>10.1f}"
                    f"{_median(out, 'ours', key + ':p99'):>8.1f}ms"
                    f"{_median(out, 'upstream', key + ':p99'):>7.1f}ms"
                    f"{1e3 * _median(out, 'ours', key + ':cpu_ms'):>8.0f}us"
                    f"{1e3 * _median(out, 'upstream', key + ':cpu_ms'):>9.0f}us"
                )
                for metric, value in ratios.items():
                    result[f"{key}_{metric}_ratio"] = value
    print(f"  {'':<30}{'ours':>10}{'upstream':>10}{'ratio':>8}")
    for key, label, unit, scale in (
        ("create_s", "create (POST -> running)", "ms", 1e3),
        ("delete_s", "delete (DELETE -> 404)", "ms", 1e3),
        ("startup_s", "start-up (-> API answers)", "s", 1.0),
        ("rss_mib", "idle RSS", "MiB", 1.0),
    ):
        ours_v, up_v = _median(out, "ours", key) * scale, _median(out, "upstream", key) * scale
        print(f"  {label:<30}{ours_v:>8.1f}{unit:<2}{up_v:>8.1f}{unit:<2}{ours_v / up_v:>7.2f}x")
        result[f"{key}_ratio"] = ours_v / up_v
    print(
        "  Ratios are ours / upstream of the medians over rounds (req/s: higher is better;"
        " p50, p99, CPU/req, latencies, start-up, RSS: lower is better). CPU/req counts the"
        " server process and its reaped children (multipass calls)."
    )
    print(
        "  Upstream offline: payments off (zero payment address), advertiser discovery_server"
        " at a closed loopback port, pricing/monitor off, psutil sizes it for"
        f" {VMS} VMs, non-loopback DNS fails at once (its start-up asks public IP services);"
        " it ignores the bearer token (no auth). Ours: bench._api_server, the node's tree on"
        " the multipass backend, VM SSH endpoints redirected to a loopback banner server."
    )
    print(
        "  Upstream's start-up includes its L3 faucet balance check (a Golem Base client on"
        " the closed loopback RPC/WS), which we read as most of its ~20 s offline: not its"
        " on-line start-up time."
    )
    for note in sorted(notes):
        print(f"  note: {note}")
    return result
