"""`golem-provider status` and our port-check server, as real processes on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
from node_helpers import CLI, NodeProcess, free_block, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
async def checkers() -> AsyncIterator[tuple[str, str]]:
    """Two port-check servers of ours on 127.0.0.2 and 127.0.0.3, through the product's CLI."""
    urls = []
    async with trio.open_nursery() as nursery:
        processes = []
        for host in ("127.0.0.2", "127.0.0.3"):
            port = free_port()
            processes.append(
                await nursery.start(
                    trio.run_process,
                    [CLI, "port-checker", "serve", "--host", host, "--port", str(port)],
                )
            )
            urls.append(f"http://{host}:{port}")
        async with httpx.AsyncClient() as client:
            for url in urls:
                with trio.fail_after(20):
                    while True:
                        try:
                            if (await client.get(f"{url}/health")).status_code == 200:
                                break
                        except httpx.HTTPError:
                            await trio.sleep(0.1)
        yield urls[0], urls[1]
        for process in processes:
            process.terminate()


async def status(node: NodeProcess, *extra: str) -> tuple[int, str]:
    result = await node.cli("status", *extra)
    return result.returncode, result.stdout.decode()


async def test_status_with_and_without_the_node(tmp_path: Path, checkers: tuple[str, str]) -> None:
    node = NodeProcess(
        data=tmp_path / "node",
        port=free_port(),
        ports=free_block(6),
        guest_cache=tmp_path / "no-guest-needed",
        checkers=checkers,
    )
    node.guest_cache.mkdir()
    # Without a running node the command runs the checks itself.
    # The API port is free: it is held open while the checker probes it.
    code, text = await status(node, "--json")
    offline = json.loads(text)
    assert code == 0, text
    assert offline["ports"]["provider"]["local_detail"] == "port is free (bindable)"
    assert offline["ports"]["provider"]["status"] == "reachable"
    assert offline["ports"]["ssh"]["usable_free"] == 6
    assert offline["advert"]["phase"] == "disabled"
    assert offline["advert"]["why"] == "the node is not running"
    assert "vpn" not in offline  # only a running node has a VPN to sum up

    await node.start()
    try:
        code, text = await status(node, "--json")
        document = json.loads(text)
        assert code == 0, text
        assert document["overall"] == {"status": "healthy", "issues": []}
        provider = document["ports"]["provider"]
        assert (provider["port"], provider["host"], provider["status"]) == (
            node.port,
            "127.0.0.1",
            "reachable",
        )
        ssh = document["ports"]["ssh"]
        assert ssh["range"] == [node.ports.start, node.ports.stop]
        assert (ssh["status"], ssh["usable_free"], ssh["in_use"]) == ("ok", 6, 0)
        assert ssh["issues"] == {"unreachable": 0, "not_listening": 0}
        assert [p["status"] for p in ssh["ports"]] == ["reachable"] * 6
        assert document["backend"]["kind"] == "qemu"
        assert document["version"]["update_available"] is False  # the index is unreachable
        assert document["advert"]["why"] != "the node is not running"  # the node's own
        vpn = document["vpn"]
        assert (vpn["networks"], vpn["vm_addresses"], vpn["links"]) == (0, 0, [])
        code, tty = await status(node)
        assert tty.startswith("Overall         Healthy\n")
        assert f"SSH Ports       {node.ports.start}-{node.ports.stop - 1} — OK" in tty
        assert "update check unavailable" in tty
        assert "VPN             ✅ 0 networks, 0 VM addresses, 0 ports open\n" in tty
    finally:
        await node.stop()
