"""The load benches (`python -m bench cycles|connections|soak`), bounded, so they stay runnable.

Each runs its real set-up (the node as a process on the fake `multipass`, an echo server,
wrk) with small counts and asserts behaviour, never timings: no failed request or
connection, and nothing in the node process (fds, threads, ports, sockets, RSS) grown
past the bench's stated tolerance (bench/_usage.py `Tolerance`).
"""

from __future__ import annotations

import pytest

from bench import connections, cycles, soak

pytestmark = pytest.mark.tools  # the node runs as a process, with wrk and the fake multipass


async def test_create_delete_cycles_leave_nothing_behind() -> None:
    result = await cycles.run(cycles=40, every=10, workers=4, warmup=8)
    assert result["errors"] == 0
    assert result["grown"] == 0, result
    # Between batches no VM exists: no relay is left listening.
    assert result["end_listening"] == result["start_listening"]


async def test_concurrent_connections_through_the_relays_all_get_their_echo() -> None:
    result = await connections.run(connections=200, vms=4, rounds=2)
    assert result["direct_errors"] == 0
    assert result["relayed_errors"] == 0
    # At the peak every relayed connection held two sockets in the node (client, guest).
    assert result["peak_sockets"] >= result["start_sockets"] + 2 * 200
    assert result["grown"] == 0, result
    # None left behind (one fewer is fine: the node's own idle keep-alive connections,
    # such as a port check's, may close meanwhile).
    assert result["end_sockets"] <= result["start_sockets"]


async def test_list_route_under_load_answers_every_request() -> None:
    result = await soak.run(seconds=3.0, windows=3, vms=5, connections=4)
    assert result, "wrk is missing (.ci/install-bench-deps.sh installs it)"
    assert result["requests"] > 0
    assert result["errors"] == 0
    assert result["grown"] == 0, result
