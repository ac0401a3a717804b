"""A real node advertises itself on our discovery service, both on 127.0.0.1.

The node (a real process, QEMU backend, the test guest) has ADVERTISER_TYPE=
discovery_server, a DISCOVERY_URL pointing at our server running in this process, and a
price feed on loopback. Its signed advert appears with the node's free resources and
prices and is verified by the server (the signature recovers to the node's key); a
create and a delete change it (debounced, a few seconds later); a clean stop deletes it.
A real memory hog above a (low) MEMORY_THRESHOLD shrinks the offer: creates are refused
saying so, and the advert follows within one debounce period.
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


async def node_state(client: httpx.AsyncClient, node: NodeProcess) -> dict[str, Any]:
    reply = await client.get(f"{node.url}/admin/state", headers=node.operator)
    assert reply.status_code == 200, reply.text
    state: dict[str, Any] = reply.json()
    return state


async def offered(client: httpx.AsyncClient, node: NodeProcess) -> tuple[int, int, int]:
    """What the node offers now (`/admin/state`'s capacity.free), as an advert shows it."""
    free = (await node_state(client, node))["capacity"]["free"]
    return free["cpu"], free["memory"], free["storage"]


async def advert_shows_the_offer(
    client: httpx.AsyncClient, url: str, node: NodeProcess
) -> tuple[int, int, int]:
    """The advert and the node's offer agree (both move with the host's readings)."""
    with trio.fail_after(30):
        while True:
            advert = (await client.get(url)).json()
            if resources(advert) == await offered(client, node):
                return resources(advert)
            await trio.sleep(0.3)


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
            cpus = psutil.cpu_count(logical=True) or 1
            async with httpx.AsyncClient(timeout=200) as client:
                advert = await wait_advert(client, url, lambda _: True)
                assert advert["provider_id"] == provider_id
                assert advert["verified"] is True  # the server recovered the node's key
                assert advert["provider_name"] == "advert-e2e"
                assert advert["ip_address"] == "127.0.0.1"
                assert advert["country"] == "SE"
                assert advert["platform"] == "x86_64"
                # What the node offers: the books, and the room below the thresholds.
                await advert_shows_the_offer(client, url, node)
                assert resources(advert)[0] == cpus
                assert 0 < resources(advert)[1] <= psutil.virtual_memory().total // GIB
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

                # `status` shows where the advert is, when it was last taken, and the prices.
                shown = await node.cli("status", "--json")
                document = json.loads(shown.stdout)
                assert document["advert"]["phase"] == "advertised", document["advert"]
                assert document["advert"]["target"] == server
                assert 0 <= document["advert"]["last_accepted_age_seconds"] < 60
                assert document["advert"]["resources"] == advert["resources"]
                glm_usd = document["pricing"]["glm_usd"]
                assert (glm_usd["state"], glm_usd["usd"]) == ("known", "0.25")
                assert 0 <= glm_usd["age_seconds"] < 60
                tty = (await node.cli("status")).stdout.decode()
                assert f"Advert          ✅ advertised — {server}\n" in tty
                assert "  GLM rate      0.25 USD — known, confirmed " in tty

                created = await client.post(
                    f"{node.url}/vms",
                    json={
                        "name": "advertised",
                        "resources": {"cpu": 1, "memory": 1, "storage": 10},
                        "ssh_key": public,
                    },
                )
                assert created.status_code == 200, created.text
                advert = await wait_advert(client, url, lambda a: resources(a)[0] == cpus - 1)
                assert advert["verified"] is True

                deleted = await client.delete(f"{node.url}/vms/{created.json()['id']}")
                assert deleted.status_code == 200, deleted.text
                await wait_advert(client, url, lambda a: resources(a)[0] == cpus)

                await node.stop()
                gone = await client.get(url)
                assert gone.status_code == 404, gone.text
            assert "advert withdrawn" in node.log_events()
        finally:
            if (node.data / "provider.pid").exists():
                await node.stop()
            for qemu in node.guest_processes():
                qemu.kill()


HOG_PROGRAM = """
import sys
hog = b"\\x01" * int(sys.argv[1])  # written, so every page is resident
print("ready", flush=True)
sys.stdin.read()
"""


@asynccontextmanager
async def memory_hog(size: int) -> AsyncIterator[None]:
    """A process holding `size` bytes of resident memory until the block ends."""
    async with trio.open_nursery() as nursery:
        hog = await nursery.start(
            partial(
                trio.run_process,
                [sys.executable, "-c", HOG_PROGRAM, str(size)],
                stdin=-1,
                stdout=-1,
                check=False,
            )
        )
        try:
            assert hog.stdout is not None
            with trio.fail_after(60):
                assert (await hog.stdout.receive_some(16)).startswith(b"ready")
            yield
        finally:
            hog.kill()


async def until_offered(
    client: httpx.AsyncClient, node: NodeProcess, ok: Callable[[tuple[int, int, int]], bool]
) -> None:
    with trio.fail_after(30):  # readings come every second
        while not ok(await offered(client, node)):  # noqa: ASYNC110 (another process)
            await trio.sleep(0.2)


async def test_a_memory_hog_above_the_threshold_shrinks_the_offer_and_the_advert(
    tmp_path: Path, test_guest: GuestImage, ssh_keypair: tuple[Path, str]
) -> None:
    _, public = ssh_keypair
    memory = psutil.virtual_memory()
    # The machine is shared: a low threshold (4 GiB above what the host uses now) and
    # bounded hogs (2 GiB, then 3 GiB more) rather than filling its memory.
    threshold = round(100 * (memory.total - memory.available + 4 * GIB) / memory.total, 1)
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
                ("GOLEM_PROVIDER_COINGECKO_API_URL", feed.url),
                ("GOLEM_PROVIDER_MEMORY_THRESHOLD", str(threshold)),
                ("GOLEM_PROVIDER_RESOURCE_MONITOR_INTERVAL_SECONDS", "1"),
            ),
        )
        await node.start()
        try:
            key = json.loads((node.data / "keys" / "provider_key.json").read_text())
            url = f"{server}{ADVERTS}/{key['address']}"
            async with httpx.AsyncClient(timeout=200) as client:
                await wait_advert(client, url, lambda _: True)
                before = await advert_shows_the_offer(client, url, node)
                assert 3 <= before[1] <= 4  # the room below the threshold, not the host's
                state = await node_state(client, node)
                assert state["capacity"]["load"]["memory_threshold"] == threshold

                async with memory_hog(2 * GIB):
                    await until_offered(client, node, lambda now: now[1] <= before[1] - 2)
                    seen = trio.current_time()
                    after = await advert_shows_the_offer(client, url, node)
                    assert trio.current_time() - seen <= 5.0 + 2.0  # one debounce period
                    assert after[1] <= before[1] - 2
                    refused = await client.post(
                        f"{node.url}/vms",
                        json={
                            "name": "too-big",
                            "resources": {"cpu": 1, "memory": before[1], "storage": 10},
                            "ssh_key": public,
                        },
                    )
                    assert refused.status_code == 409, refused.text
                    detail = refused.json()["detail"]
                    assert "not enough memory" in detail
                    assert "(threshold: host memory at" in detail

                    async with memory_hog(3 * GIB):  # past the threshold: nothing to sell
                        await until_offered(client, node, lambda now: now[1] == 0)
                        with trio.fail_after(5.0 + 2.0):  # one debounce period
                            while (await client.get(url)).status_code != 404:  # noqa: ASYNC110
                                await trio.sleep(0.2)
                        state = await node_state(client, node)
                        assert any(
                            reason.startswith("memory: host memory at")
                            for reason in state["capacity"]["limited"]
                        )

                # The hogs gone, the offer and the advert come back.
                await until_offered(client, node, lambda now: now[1] >= before[1] - 1)
                await wait_advert(client, url, lambda _: True)
                await advert_shows_the_offer(client, url, node)
            events = node.log_events()
            assert "host above a threshold: selling no more of it" in events
            assert "host back below a threshold" in events
        finally:
            if (node.data / "provider.pid").exists():
                await node.stop()
