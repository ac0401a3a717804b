"""A real node advertises itself on our discovery service, both on 127.0.0.1.

The node (a real process, QEMU backend, the test guest) has ADVERTISER_TYPE=
discovery_server, a DISCOVERY_URL pointing at our server running in this process, and a
price feed on loopback. Its signed advert appears with the node's free resources and
prices and is verified by the server (the signature recovers to the node's key); a
create and a delete change it (debounced, a few seconds later); a clean stop deletes it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import trio
from node_helpers import NodeProcess, free_block, free_port

from golem_actor.adapters.guest import GuestImage
from golem_actor.discovery import DiscoveryConfig, run_server

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))  # the local price feed
from feed_server import feed_server, prices

pytestmark = pytest.mark.e2e

GIB = 1024**3
ADVERTS = "/api/v1/advertisements"


@asynccontextmanager
async def discovery(db: Path) -> AsyncIterator[str]:
    config = DiscoveryConfig(host="127.0.0.1", port=0, db_path=db)
    async with trio.open_nursery() as nursery:
        running = await nursery.start(partial(run_server, config))
        yield running.binds[0]
        nursery.cancel_scope.cancel()


async def wait_advert(
    client: httpx.AsyncClient, url: str, ok: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    with trio.fail_after(30):
        while True:
            reply = await client.get(url)
            if reply.status_code == 200 and ok(reply.json()):
                advert: dict[str, Any] = reply.json()
                return advert
            await trio.sleep(0.3)


def resources(advert: dict[str, Any]) -> tuple[int, int, int]:
    found = advert["resources"]
    return found["cpu"], found["memory"], found["storage"]


async def test_the_advert_is_signed_true_to_capacity_and_withdrawn_on_stop(
    tmp_path: Path, test_guest: GuestImage, ssh_keypair: tuple[Path, str]
) -> None:
    _, public = ssh_keypair
    async with (
        feed_server(prices(glm=0.25, eth=2000)) as feed,
        discovery(tmp_path / "adverts.db") as server,
    ):
        node = NodeProcess(
            data=tmp_path / "node",
            port=free_port(),
            ports=free_block(2),
            guest_cache=test_guest.kernel.parent.parent,
            extra_env=(
                ("GOLEM_PROVIDER_ADVERTISER_TYPE", "discovery_server"),
                ("GOLEM_PROVIDER_DISCOVERY_URL", server),
                ("GOLEM_PROVIDER_PUBLIC_IP", "127.0.0.1"),
                ("GOLEM_PROVIDER_PROVIDER_NAME", "advert-e2e"),
                ("GOLEM_PROVIDER_COINGECKO_API_URL", feed.url),
            ),
        )
        await node.start()
        try:
            key = json.loads((node.data / "keys" / "provider_key.json").read_text())
            provider_id = key["address"]
            url = f"{server}{ADVERTS}/{provider_id}"
            host = (
                psutil.cpu_count(logical=True) or 1,
                psutil.virtual_memory().total // GIB,
                psutil.disk_usage(str(node.data)).total // GIB,
            )
            async with httpx.AsyncClient(timeout=200) as client:
                advert = await wait_advert(client, url, lambda _: True)
                assert advert["provider_id"] == provider_id
                assert advert["verified"] is True  # the server recovered the node's key
                assert advert["provider_name"] == "advert-e2e"
                assert advert["ip_address"] == "127.0.0.1"
                assert advert["country"] == "SE"
                assert advert["platform"] == "x86_64"
                assert resources(advert) == host
                assert advert["pricing"] == {
                    "usd_per_core_month": 5.0,
                    "usd_per_gb_ram_month": 2.0,
                    "usd_per_gb_storage_month": 0.1,
                    "glm_per_core_month": 20.0,
                    "glm_per_gb_ram_month": 8.0,
                    "glm_per_gb_storage_month": 0.4,
                }
                listed = (await client.get(f"{server}{ADVERTS}")).json()
                assert [item["provider_id"] for item in listed] == [provider_id]

                created = await client.post(
                    f"{node.url}/vms",
                    json={
                        "name": "advertised",
                        "resources": {"cpu": 1, "memory": 1, "storage": 10},
                        "ssh_key": public,
                    },
                )
                assert created.status_code == 200, created.text
                less = (host[0] - 1, host[1] - 1, host[2] - 10)
                advert = await wait_advert(client, url, lambda a: resources(a) == less)
                assert advert["verified"] is True

                deleted = await client.delete(f"{node.url}/vms/{created.json()['id']}")
                assert deleted.status_code == 200, deleted.text
                await wait_advert(client, url, lambda a: resources(a) == host)

                await node.stop()
                gone = await client.get(url)
                assert gone.status_code == 404, gone.text
            assert "advert withdrawn" in node.log_events()
        finally:
            if (node.data / "provider.pid").exists():
                await node.stop()
            for qemu in node.guest_processes():
                qemu.kill()
