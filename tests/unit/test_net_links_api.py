"""The Net API's extension for networks across nodes, against the node's in-process API:
`linkSecret` and `location` checked, persisted and listed (never the secret), and the
link route refusing unknown networks and wrong secrets before any frame is taken."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import trio
import trio_websocket
from lifecycle_harness import OPERATOR_TOKEN, ApiNode, running_api

from actors.vpn_router.links import WsChannel, dial_handshake
from golem_actor.domain.vpn import link as wire

TOKEN = "alice-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "sixteen-chars-or-more"


def net(node: ApiNode) -> str:
    return node.url.removesuffix("/api/v1") + "/net-api/v1/net"


def saved_registry(data: Path) -> str:
    return next(data.rglob("vpn_networks.json")).read_text()


def ws_url(node: ApiNode, network_id: str) -> str:
    return net(node).replace("http://", "ws://") + f"/{network_id}/link"


async def test_link_secret_and_locations_are_checked_listed_and_never_echoed(
    tmp_path: Path,
) -> None:
    async with running_api(tmp_path) as node, httpx.AsyncClient(timeout=10) as client:
        plain = (await client.post(net(node), json={"ip": "10.5.0.0/24"}, headers=AUTH)).json()
        made = await client.post(
            net(node), json={"ip": "10.6.0.0/24", "linkSecret": SECRET}, headers=AUTH
        )
        assert made.status_code == 200, made.text
        assert set(made.json()) == {"id", "ip", "mask", "gateway"}
        short = await client.post(
            net(node), json={"ip": "10.7.0.0/24", "linkSecret": "short"}, headers=AUTH
        )
        assert short.status_code == 400
        network_id = made.json()["id"]
        peer = "ws://127.0.0.1:9/net-api/v1/net/abc/link"

        async def add(target: str, body: dict[str, str]) -> httpx.Response:
            return await client.post(f"{net(node)}/{target}/nodes", json=body, headers=AUTH)

        no_secret = await add(plain["id"], {"id": "vm-x", "ip": "10.5.0.3", "location": peer})
        assert no_secret.status_code == 400
        assert "linkSecret" in no_secret.json()["message"]
        bad = await add(network_id, {"id": "vm-x", "ip": "10.6.0.3", "location": "http://h/"})
        assert bad.status_code == 400
        assert (
            await add(network_id, {"id": "vm-x", "ip": "10.6.0.3", "location": peer})
        ).json() is None
        assert (await add(network_id, {"id": "0xabc", "ip": "10.6.0.4"})).status_code == 200
        # an SDK refreshing the node without the field keeps its location
        assert (await add(network_id, {"id": "vm-x", "ip": "10.6.0.3"})).status_code == 200
        listed = (await client.get(f"{net(node)}/{network_id}/nodes", headers=AUTH)).json()
        assert listed == [
            {"id": "vm-x", "ip": "10.6.0.3", "location": peer},
            {"id": "0xabc", "ip": "10.6.0.4"},
        ]
        text = (await client.get(f"{net(node)}/{network_id}", headers=AUTH)).text
        assert SECRET not in text
        saved = saved_registry(tmp_path)
        assert SECRET in saved  # persisted with the registry
        assert peer in saved


async def test_the_link_route_takes_frames_only_after_the_secret_is_proved(tmp_path: Path) -> None:
    async with running_api(tmp_path) as node, httpx.AsyncClient(timeout=10) as client:
        plain = (await client.post(net(node), json={"ip": "10.5.0.0/24"}, headers=AUTH)).json()
        made = (
            await client.post(
                net(node), json={"ip": "10.6.0.0/24", "linkSecret": SECRET}, headers=AUTH
            )
        ).json()
        for unknown in (plain["id"], "0" * 32):
            with pytest.raises(trio_websocket.ConnectionRejected) as rejected:
                async with trio_websocket.open_websocket_url(ws_url(node, unknown)):
                    pass
            assert rejected.value.status_code == 404

        async with trio_websocket.open_websocket_url(ws_url(node, made["id"])) as ws:
            with pytest.raises(trio_websocket.ConnectionClosed) as closed:
                await dial_handshake(WsChannel(ws), b"not-the-secret-at-all", made["id"])
        reason = closed.value.reason
        assert reason is not None
        assert reason.code == 1008  # policy violation: refused

        async with trio_websocket.open_websocket_url(ws_url(node, made["id"])) as ws:
            await dial_handshake(WsChannel(ws), SECRET.encode(), made["id"])
            frame = b"\x02" * 12 + b"\x08\x00" + b"\x45" + b"\x00" * 40
            await ws.send_message(wire.encode_batches([frame])[0])

            async def dropped() -> int:
                metrics = await client.get(
                    node.url.removesuffix("/api/v1") + "/metrics",
                    headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
                )
                found = re.search(
                    r'golem_vpn_dropped_frames_total\{reason="link_in_dropped"\} (\S+)',
                    metrics.text,
                )
                return int(float(found.group(1))) if found else 0

            for _ in range(100):  # the cast is routed soon after
                if await dropped() == 1:  # no remote member owns that source MAC
                    break
                await trio.sleep(0.05)
            assert await dropped() == 1


async def refused_links(client: httpx.AsyncClient, node: ApiNode) -> dict[str, int]:
    metrics = await client.get(
        node.url.removesuffix("/api/v1") + "/metrics",
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
    )
    found = re.findall(r'golem_vpn_link_refused_total\{reason="(\w+)"\} (\S+)', metrics.text)
    return {reason: int(float(value)) for reason, value in found}


async def test_unauthenticated_link_connections_are_bounded_per_source(tmp_path: Path) -> None:
    async with (
        running_api(tmp_path, api_max_pending_links_per_peer=2) as node,
        httpx.AsyncClient(timeout=10) as client,
    ):
        made = (
            await client.post(
                net(node), json={"ip": "10.6.0.0/24", "linkSecret": SECRET}, headers=AUTH
            )
        ).json()
        url = ws_url(node, made["id"])
        async with trio_websocket.open_websocket_url(url) as one:
            await one.get_message()  # the challenge: this one is pending now
            async with trio_websocket.open_websocket_url(url) as two:
                await two.get_message()
                with pytest.raises(trio_websocket.ConnectionRejected) as rejected:
                    async with trio_websocket.open_websocket_url(url):
                        pass
                assert rejected.value.status_code == 429
                headers = dict(rejected.value.headers or [])
                assert headers.get(b"retry-after") == b"2"
                assert b"waiting to authenticate" in (rejected.value.body or b"")
                # a wrong proof ends a pending connection, and is counted too
                await two.send_message(
                    wire.client_hello(b"w" * 20, made["id"], b"n" * 32, b"c" * 32)
                )
                with pytest.raises(trio_websocket.ConnectionClosed):
                    await two.get_message()
            # room again: a peer that knows the secret links, and hears what this node hosts
            async with trio_websocket.open_websocket_url(url) as three:
                await dial_handshake(WsChannel(three), SECRET.encode(), made["id"])
                hosted = await three.get_message()
                assert isinstance(hosted, bytes)
                assert wire.parse_hosted(hosted) == frozenset()
        assert await refused_links(client, node) == {
            "node_busy": 0,
            "peer_busy": 1,
            "auth": 1,
            "timeout": 0,
        }
