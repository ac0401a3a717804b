"""What a process holds, sampled from outside, and the verdict "flat or grown" of the load benches.

Why from outside: the load benches run the node as a process of its own
(`bench._api_server`), so what they read (psutil on its pid) is the node's alone, not the
bench's load generator. A `Usage` is one sample: resident memory, open file descriptors,
threads, and inet sockets (listening ones are the node's ports: the API and one SSH relay
per VM; all of them include connections in flight).

`Tolerance` states how much a sample may exceed the baseline (the first sample) before
the bench calls it growth. The bounds are absolute, not ratios: a leak of one fd or one
port per cycle shows as hundreds after a thousand cycles, while the interpreter's own
caches and the allocator's arenas move RSS by a few MiB whatever the load.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil

MIB = 1 << 20


@dataclass(frozen=True)
class Usage:
    rss: int  # bytes
    fds: int
    threads: int
    listening: int  # listening inet sockets: the node's ports
    sockets: int  # every inet socket, listening or connected

    @classmethod
    def of(cls, pid: int) -> Usage:
        proc = psutil.Process(pid)
        with proc.oneshot():
            connections = proc.net_connections(kind="inet")
            return cls(
                rss=proc.memory_info().rss,
                fds=proc.num_fds(),
                threads=proc.num_threads(),
                listening=sum(1 for c in connections if c.status == psutil.CONN_LISTEN),
                sockets=len(connections),
            )


def settled(pid: int, *, bound: float = 15.0, interval: float = 0.5) -> Usage:
    """A sample once the process stopped closing things: its fds and sockets the same
    over `interval` (a busy node closes a thousand connections over a while), or the
    last one after `bound` seconds. Blocks: run it in a worker thread."""
    last = Usage.of(pid)
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        time.sleep(interval)
        now = Usage.of(pid)
        if (now.fds, now.sockets) == (last.fds, last.sockets):
            return now
        last = now
    return last


@dataclass(frozen=True)
class Tolerance:
    rss: int = 16 * MIB
    fds: int = 4
    threads: int = 4  # trio's worker threads come and go (idle ones exit after 10 s)
    listening: int = 0
    sockets: int = 4

    def growth(self, baseline: Usage, sample: Usage) -> list[str]:
        """What grew past its bound from `baseline` to `sample` (empty: flat)."""
        grown = []
        for name in ("rss", "fds", "threads", "listening", "sockets"):
            delta = getattr(sample, name) - getattr(baseline, name)
            if delta > getattr(self, name):
                shown = f"{delta / MIB:+.1f} MiB" if name == "rss" else f"{delta:+d}"
                grown.append(f"{name} {shown} (tolerance {self._show(name)})")
        return grown

    def _show(self, name: str) -> str:
        bound: int = getattr(self, name)
        return f"{bound / MIB:g} MiB" if name == "rss" else str(bound)


def header(label: str) -> str:
    return f"  {label:>10}{'RSS MiB':>10}{'fds':>7}{'threads':>9}{'listening':>11}{'sockets':>9}"


def row(label: str, usage: Usage) -> str:
    return (
        f"  {label:>10}{usage.rss / MIB:>10.1f}{usage.fds:>7}{usage.threads:>9}"
        f"{usage.listening:>11}{usage.sockets:>9}"
    )


def as_metrics(prefix: str, usage: Usage) -> dict[str, float]:
    return {
        f"{prefix}_rss_mib": usage.rss / MIB,
        f"{prefix}_fds": float(usage.fds),
        f"{prefix}_threads": float(usage.threads),
        f"{prefix}_listening": float(usage.listening),
        f"{prefix}_sockets": float(usage.sockets),
    }
