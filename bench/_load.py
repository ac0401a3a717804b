"""Helpers shared by the load benches (`cycles`, `connections`, `soak`).

The node runs as a process of its own (bench/_upstream.py `ours`); these run in the
bench's process: VMs made through the API (blocking httpx: run them in a worker thread),
percentiles, and a file-descriptor limit high enough for a thousand sockets.
"""

from __future__ import annotations

import math
import resource
from typing import Any

import httpx

from golem_actor.keys import generate_ssh_keypair

from ._node import MEMORY_TOKEN
from ._upstream import Server

RESOURCES = {"cpu": 1, "memory": 1, "storage": 10}


def create_vms(server: Server, count: int, prefix: str) -> list[dict[str, Any]]:
    """`count` VMs made one by one with synchronous creates (each answers once it runs)."""
    _, key = generate_ssh_keypair(prefix)
    headers = {"Authorization": f"Bearer {MEMORY_TOKEN}"}
    made = []
    with httpx.Client(timeout=60.0, headers=headers) as client:
        for i in range(count):
            body = {"name": f"{prefix}-{i:02d}", "resources": RESOURCES, "ssh_key": key}
            reply = client.post(f"{server.url}/vms", json=body)
            if reply.status_code != 200:
                raise RuntimeError(f"creating VM {i}: HTTP {reply.status_code} {reply.text}")
            made.append(reply.json())
    return made


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (`share` in 0..1) of `values`; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def raise_fd_limit(needed: int) -> int:
    """Raise this process's soft fd limit (children inherit it) to `needed` if the hard
    limit allows; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft
