"""Golem VPN across two nodes: two node processes on loopback, one QEMU test guest each.

The requestor creates the network on both nodes with the same `linkSecret`, adds its own
VM on each node, and on each node the other node's VM with that node's link URL as its
`location`. The routers link to each other (websockets, HMAC handshake) and the guests
ping each other and talk TCP by virtual IP, node to node. Then node B's process is
SIGKILLed (its guest keeps running) and started again: both routers dial again with
backoff, and traffic resumes without the requestor doing anything. Along the way: a
location naming a VM that node B does not host is listed by A as `hosted: false` (B's
own VM as `true`), and strangers that never authenticate are refused past the bound per
source while the link carries on.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio_websocket
from node_helpers import NodeProcess, free_block, free_port, running
from test_vpn_data_plane import create_vms, pings, run, until, wait_address

from golem_actor.adapters.guest import GuestImage

pytestmark = pytest.mark.e2e

NET = "/net-api/v1/net"
SECRET = "a-secret-the-requestor-chose-0123"
LINK_BOUND = 30.0  # seconds for a link to come up (dial backoff is at most 12.5 s)
PENDING_PER_PEER = 8  # the default API_MAX_PENDING_LINKS_PER_PEER


def base(node: NodeProcess) -> str:
    return f"http://127.0.0.1:{node.port}"


def link_url(node: NodeProcess, network_id: str) -> str:
    return f"ws://127.0.0.1:{node.port}{NET}/{network_id}/link"


@pytest.fixture
async def nodes(
    tmp_path: Path, test_guest: GuestImage
) -> AsyncIterator[tuple[NodeProcess, NodeProcess]]:
    cache = test_guest.kernel.parent.parent
    one = NodeProcess(tmp_path / "a", free_port(), free_block(3), cache)
    two = NodeProcess(tmp_path / "b", free_port(), free_block(3), cache)
    async with running(one) as a, running(two) as b:
        yield a, b


async def test_vms_on_two_nodes_talk_over_a_link_that_survives_a_node_kill(
    nodes: tuple[NodeProcess, NodeProcess], ssh_keypair: tuple[Path, str]
) -> None:
    node_a, node_b = nodes
    key, public = ssh_keypair
    async with httpx.AsyncClient(timeout=200) as client:
        vms: dict[str, dict[str, Any]] = {}

        async def make(node: NodeProcess, name: str) -> None:
            vms.update(await create_vms(client, node, public, [name]))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(make, node_a, "link-a")
            nursery.start_soon(make, node_b, "link-b")
        a, b = vms["link-a"], vms["link-b"]

        networks = {}
        for node in (node_a, node_b):
            reply = await client.post(
                f"{base(node)}{NET}",
                json={"ip": "10.30.0.0/24", "linkSecret": SECRET},
                headers=node.operator,
            )
            assert reply.status_code == 200, reply.text
            assert "linkSecret" not in reply.json()  # never echoed
            networks[node.port] = reply.json()["id"]
        net_a, net_b = networks[node_a.port], networks[node_b.port]

        async def add(node: NodeProcess, network: str, body: dict[str, str]) -> None:
            reply = await client.post(
                f"{base(node)}{NET}/{network}/nodes", json=body, headers=node.operator
            )
            assert reply.status_code == 200, reply.text

        await add(node_a, net_a, {"id": a["id"], "ip": "10.30.0.2"})
        await add(
            node_a, net_a, {"id": b["id"], "ip": "10.30.0.3", "location": link_url(node_b, net_b)}
        )
        await add(node_b, net_b, {"id": b["id"], "ip": "10.30.0.3"})
        await add(
            node_b, net_b, {"id": a["id"], "ip": "10.30.0.2", "location": link_url(node_a, net_a)}
        )
        # a location naming a VM that node B does not host is reported once B has said so
        await add(
            node_a,
            net_a,
            {"id": "vm-not-on-b", "ip": "10.30.0.9", "location": link_url(node_b, net_b)},
        )

        async def hosting_reported() -> bool:
            listed = (
                await client.get(f"{base(node_a)}{NET}/{net_a}/nodes", headers=node_a.operator)
            ).json()
            return {n["id"]: n.get("hosted") for n in listed} == {
                a["id"]: None,
                b["id"]: True,
                "vm-not-on-b": False,
            }

        await until(hosting_reported, LINK_BOUND, "A lists what B hosts")
        stats = await vpn_links(client, node_a)
        assert stats[0]["unhosted"] == 1, stats

        await wait_address(key, a, "10.30.0.2")
        await wait_address(key, b, "10.30.0.3")

        async def a_reaches_b() -> bool:
            return await pings(key, a, "10.30.0.3", count=1)

        await until(a_reaches_b, LINK_BOUND, "A pings B on the other node")
        assert await pings(key, b, "10.30.0.2")

        # TCP by virtual IP, node to node
        listen = "sleep 20 | nc -l -p 5000 > /tmp/tcp.txt"
        await run(key, b, f"setsid sh -c '{listen}' </dev/null >/dev/null 2>&1 &")

        async def sent() -> bool:
            code, _ = await run(key, a, "echo hello-over-the-link | nc -w 3 10.30.0.3 5000")
            return code == 0

        await until(sent, 10, "A connects to B's TCP listener")

        async def received() -> bool:
            _, out = await run(key, b, "cat /tmp/tcp.txt")
            return out.strip() == "hello-over-the-link"

        await until(received, 10, "B received the TCP message")

        # the frames went node to node: each router counts frames sent over its link
        for node in (node_a, node_b):
            stats = await vpn_links(client, node)
            assert len(stats) == 1, stats
            assert stats[0]["up"] == 1, stats
            assert stats[0]["frames_out"] > 0, stats

        # SIGKILL of node B (its guest keeps running), then a restart: the links come back
        node_b.kill()
        await until(_not(a_reaches_b), 10, "A no longer reaches B while node B is down")

        async def a_shows_the_link_down() -> bool:  # what `golem-provider status` shows
            status = await client.get(f"{node_a.url}/admin/status", headers=node_a.operator)
            links = status.json()["vpn"]["links"]
            return len(links) == 1 and not links[0]["up"] and bool(links[0]["last_error"])

        await until(a_shows_the_link_down, 10, "A's status shows its link down, and why")
        await node_b.start()
        await until(a_reaches_b, LINK_BOUND, "A pings B after node B's restart")
        assert await pings(key, b, "10.30.0.2")
        stats_a = await vpn_links(client, node_a)
        assert stats_a[0]["drops"] >= 1, stats_a
        status = await client.get(f"{node_a.url}/admin/status", headers=node_a.operator)
        vpn = status.json()["vpn"]
        assert [link["up"] for link in vpn["links"]] == [True], vpn
        assert (vpn["networks"], vpn["vm_addresses"]) == (1, 1), vpn

        # strangers who never authenticate are bounded per source: the next one is refused
        async with trio.open_nursery() as strangers:
            opened = trio.Semaphore(0)
            for _ in range(PENDING_PER_PEER):
                strangers.start_soon(_stranger, link_url(node_a, net_a), opened)
            for _ in range(PENDING_PER_PEER):
                await opened.acquire()
            with pytest.raises(trio_websocket.ConnectionRejected) as rejected:
                async with trio_websocket.open_websocket_url(link_url(node_a, net_a)):
                    pass
            assert rejected.value.status_code == 429
            strangers.cancel_scope.cancel()
        metrics = (await client.get(f"{base(node_a)}/metrics", headers=node_a.operator)).text
        refused = re.search(r'golem_vpn_link_refused_total\{reason="peer_busy"\} (\S+)', metrics)
        assert refused is not None, metrics
        assert float(refused.group(1)) >= 1, metrics
        assert await pings(key, a, "10.30.0.3")  # the link itself was never in the way


async def _stranger(url: str, opened: trio.Semaphore) -> None:
    """Connect to the link route, take the challenge, and never answer it."""
    async with trio_websocket.open_websocket_url(url) as ws:
        await ws.get_message()
        opened.release()
        await trio.sleep_forever()


def _not(check: Any) -> Any:
    async def negated() -> bool:
        return not await check()

    return negated


async def vpn_links(client: httpx.AsyncClient, node: NodeProcess) -> list[dict[str, Any]]:
    """The node's links from /metrics: one dict per link with up, frames_out, drops."""
    reply = await client.get(f"{base(node)}/metrics", headers=node.operator)
    assert reply.status_code == 200, reply.text
    links: dict[str, dict[str, Any]] = {}
    for name, key in (
        ("golem_vpn_link_up", "up"),
        ("golem_vpn_link_frames_out_total", "frames_out"),
        ("golem_vpn_link_drops_total", "drops"),
        ("golem_vpn_link_unhosted_nodes", "unhosted"),
    ):
        for found in re.finditer(rf'^{name}\{{link="([^"]+)"[^}}]*\}} (\S+)$', reply.text, re.M):
            links.setdefault(found.group(1), {})[key] = int(float(found.group(2)))
    return list(links.values())
