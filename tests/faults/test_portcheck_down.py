"""The port-check server down, then back: the node says why its ports are unverified, keeps
serving, and is healthy again at the next check, without a restart.

A real node process checked every 2 s by one port-check server of ours (the product's
`port-checker serve`, on 127.0.0.2). The server is killed: `golem-provider status` turns
`error` and its verdict names the server that did not answer; the API keeps answering.
The server is started again on the same address: the next check makes the node healthy.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio
from node_helpers import CLI, NodeProcess, free_block, free_port

CHECK_EVERY = 2


@asynccontextmanager
async def port_checker(host: str, port: int) -> AsyncIterator[None]:
    async with trio.open_nursery() as nursery:
        argv = [CLI, "port-checker", "serve", "--host", host, "--port", str(port)]
        process = await nursery.start(partial(trio.run_process, argv, check=False))
        async with httpx.AsyncClient() as client:
            with trio.fail_after(20):
                while True:
                    try:
                        if (await client.get(f"http://{host}:{port}/health")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        await trio.sleep(0.1)
        try:
            yield
        finally:
            process.kill()


async def overall(node: NodeProcess) -> dict[str, Any]:
    result = await node.cli("status", "--json")
    return dict(json.loads(result.stdout)["overall"])


async def wait_overall(node: NodeProcess, status: str) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []
    for _ in range(8 * CHECK_EVERY + 10):  # seconds: several checks
        seen.append(await overall(node))
        if seen[-1]["status"] == status:
            return seen[-1]
        await trio.sleep(1)
    raise AssertionError(f"never {status}: {seen[-3:]}")


async def test_port_checks_down_say_why_and_heal(tmp_path: Path) -> None:
    host, port = "127.0.0.2", free_port()
    node = NodeProcess(
        data=tmp_path / "node",
        port=free_port(),
        ports=free_block(4),
        guest_cache=tmp_path / "no-guest-needed",
        checkers=(f"http://{host}:{port}",),
        extra_env=(("GOLEM_PROVIDER_PORT_CHECK_INTERVAL_SECONDS", str(CHECK_EVERY)),),
    )
    node.guest_cache.mkdir()
    async with port_checker(host, port):
        await node.start()
    try:
        pid = node.pid()
        verdict = await wait_overall(node, "error")  # the server is gone
        why = [i for i in verdict["issues"] if i.startswith("Ports not verified:")]
        assert len(why) == 1, verdict
        assert f"http://{host}:{port}" in why[0], verdict
        async with httpx.AsyncClient() as client:
            health = await client.get(f"{node.url}/health")
            assert health.status_code == 200
            listed = await client.get(f"{node.url}/vms", headers=node.operator)
            assert listed.status_code == 200

        async with port_checker(host, port):
            assert (await wait_overall(node, "healthy"))["issues"] == []
        assert node.pid() == pid  # healed without a restart
        assert "ports verified" in node.log_events()
    finally:
        await node.stop()
