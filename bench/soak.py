"""`python -m bench soak`: `GET /api/v1/vms` with 20 VMs under load for 60 s, no error.

What is run: our node as a process of its own (`bench._api_server`, the node's tree on
the Multipass fake, its default logs: one JSON line per request, to a file), with `vms`
VMs made through the API. wrk (C, `-t1`, `connections` keep-alive connections, 10 s
request timeout) then loads `GET /api/v1/vms` with the operator's token (the answer
lists every VM) for `seconds`, in `windows` consecutive runs, so a slow drift (a leak, a
growing list, a queue) shows as a trend from the first window to the last.

Baseline, in the same run and before the soak: one window's length of `GET /api/v1/health`
(the cheapest route of the same server) with the same connections. Reported per window:
req/s, p50/p99 latency, errors (non-2xx answers and wrk's socket errors: connect, read,
write, timeout). The node process's RSS, fds, threads and inet sockets are sampled before
the soak and after each window (once the node closed the connections wrk left,
`bench._usage.settled`); the
verdict is "flat" when the last sample is within `bench._usage.Tolerance` of the first and
no request failed.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trio

from . import _upstream, _usage
from ._load import create_vms
from ._node import MEMORY_TOKEN
from ._usage import Tolerance, Usage, settled

_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_REQUESTS = re.compile(r"(\d+) requests in")
_PERCENTILE = re.compile(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


@dataclass(frozen=True)
class Window:
    label: str
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    errors: int


def parse_wrk(label: str, output: str) -> Window:
    """One window from wrk's `--latency` report; a report it cannot read raises."""
    rps, done = _RPS.search(output), _REQUESTS.search(output)
    percentiles = {int(p): float(v) * _UNIT_MS[u] for p, v, u in _PERCENTILE.findall(output)}
    if rps is None or done is None or 50 not in percentiles or 99 not in percentiles:
        raise RuntimeError(f"cannot parse wrk's report:\n{output}")
    errors = 0
    if (bad := _NON_2XX.search(output)) is not None:
        errors += int(bad.group(1))
    if (sockets := _SOCKET_ERRORS.search(output)) is not None:
        errors += sum(int(count) for count in sockets.groups())
    return Window(
        label, float(rps.group(1)), int(done.group(1)), percentiles[50], percentiles[99], errors
    )


async def _wrk(url: str, seconds: float, connections: int) -> str:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "--latency"]
    argv += ["-H", f"Authorization: Bearer {MEMORY_TOKEN}", url]
    done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True)
    return str(done.stdout.decode())


async def run(
    seconds: float = 60.0,
    windows: int = 6,
    vms: int = 20,
    connections: int = 10,
    tolerance: Tolerance | None = None,
) -> dict[str, float]:
    if shutil.which("wrk") is None:
        print("soak: wrk not found (apt-get install -y wrk); skipped")
        return {}
    tolerance = tolerance or Tolerance()
    length = seconds / windows
    results: list[Window] = []
    samples: list[tuple[str, Usage]] = []
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        multipass = _upstream.multipass_wrapper(Path(tmp))
        server = _upstream.ours(Path(tmp), multipass, vms, None)
        await trio.to_thread.run_sync(server.start)
        try:
            await trio.to_thread.run_sync(create_vms, server, vms, "soak")
            health = await _wrk(f"{server.url}/health", length, connections)
            results.append(parse_wrk("health", health))
            samples.append(("start", await trio.to_thread.run_sync(settled, server.pid)))
            for index in range(windows):
                output = await _wrk(f"{server.url}/vms", length, connections)
                label = f"{index * length:g}-{(index + 1) * length:g}s"
                results.append(parse_wrk(label, output))
                samples.append((label, await trio.to_thread.run_sync(settled, server.pid)))
        finally:
            await trio.to_thread.run_sync(server.stop)
    return _report(results, samples, seconds, vms, connections, tolerance)


def _report(
    results: list[Window],
    samples: list[tuple[str, Usage]],
    seconds: float,
    vms: int,
    connections: int,
    tolerance: Tolerance,
) -> dict[str, float]:
    print(
        f"soak: GET /api/v1/vms listing {vms} VMs for {seconds:g} s in {len(results) - 1}"
        f" windows, wrk -t1 -c{connections}; baseline: GET /api/v1/health for one window"
    )
    print(f"  {'window':<14}{'req/s':>9}{'requests':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for window in results:
        label = "health (base)" if window.label == "health" else f"vms {window.label}"
        print(
            f"  {label:<14}{window.rps:>9.0f}{window.requests:>10}{window.p50_ms:>9.2f}"
            f"{window.p99_ms:>9.2f}{window.errors:>8}"
        )
    base, soaked = results[0], results[1:]
    requests = sum(w.requests for w in soaked)
    errors = sum(w.errors for w in soaked)
    rps = requests / seconds
    p50 = sorted(w.p50_ms for w in soaked)[len(soaked) // 2]
    p99 = max(w.p99_ms for w in soaked)
    print(
        f"  all of GET /vms: {requests} requests, {rps:.0f} req/s, p50 {p50:.2f} ms (median"
        f" window), p99 {p99:.2f} ms (worst window), errors {errors}"
    )
    print(
        f"  vms / health req/s = {rps / base.rps:.2f}x;"
        f" last / first window req/s = {soaked[-1].rps / soaked[0].rps:.2f}x"
    )
    print("  node process:")
    print(_usage.header("after"))
    for label, sample in samples:
        print(_usage.row(label, sample))
    grown = tolerance.growth(samples[0][1], samples[-1][1])
    verdict = "flat" if not grown and not errors else "GROWTH" if grown else "ERRORS"
    print(f"  verdict: {verdict} ({'; '.join(grown) or 'nothing past tolerance'})")
    out = {
        "requests": float(requests),
        "rps": rps,
        "p50_ms": p50,
        "p99_ms": p99,
        "errors": float(errors + base.errors),
        "health_rps": base.rps,
        "grown": float(len(grown)),
    }
    return (
        out | _usage.as_metrics("start", samples[0][1]) | _usage.as_metrics("end", samples[-1][1])
    )
