"""A real node advertises on Golem Base (our test double) and our discovery service at
once (ADVERTISER_TYPE=both), everything on 127.0.0.1.

The node (a real process, QEMU backend, the test guest) starts with no gas on the double's
chain: it tops its account up through a local PoW faucet, then creates one entity with
upstream's annotations, signed by its key (the double recovers the sender from the
signature and checks it owns what it changes). Creating a VM updates the entity (the
same key, fewer cores), and the discovery advert follows; with a short BTL (24 blocks of
1 s) the entity is extended before it expires (the double refuses to extend an expired
entity); a node killed and started again finds its entity instead of creating a second
one; a clean stop deletes the entity and the advert.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest
import trio
from node_helpers import NodeProcess, free_block, free_port
from test_advertising import discovery, wait_advert

from golem_actor.adapters.guest import GuestImage

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))  # the local price feed
sys.path.insert(0, str(Path(__file__).parents[1] / "fakes"))
from feed_server import feed_server, prices
from golem_base_double import GolemBaseDouble, serving
from golem_base_query import Entity
from pow_faucet import KEY, PowFaucet, serving_faucet

pytestmark = pytest.mark.e2e

ETH = 10**18
INTERVAL = 12  # GOLEM_BASE_ADVERTISEMENT_INTERVAL: a check every 4 s, BTL 24 blocks of 1 s
ADVERTS = "/api/v1/advertisements"


async def wait_for(what: str, ok: Callable[[], bool], bound: float = 60) -> None:
    with trio.fail_after(bound):
        while True:
            if ok():
                return
            await trio.sleep(0.2)


def ours(double: GolemBaseDouble, provider_id: str) -> list[Entity]:
    return [e for e in double.live().values() if e.owner.lower() == provider_id.lower()]


async def test_golem_base_entity_lives_with_the_node(
    tmp_path: Path, test_guest: GuestImage, ssh_keypair: tuple[Path, str]
) -> None:
    _, public = ssh_keypair
    double = GolemBaseDouble(block_time=1.0)
    faucet = PowFaucet(fund=lambda address: double.fund(address, ETH // 100))
    async with (
        feed_server(prices(glm=0.25, eth=2000)) as feed,
        discovery(tmp_path / "adverts.db") as server,
        serving(double) as chain,
        serving_faucet(faucet),
    ):
        node = NodeProcess(
            data=tmp_path / "node",
            port=free_port(),
            ports=free_block(2),
            guest_cache=test_guest.kernel.parent.parent,
            extra_env=(
                ("GOLEM_PROVIDER_ADVERTISER_TYPE", "both"),
                ("GOLEM_PROVIDER_DISCOVERY_URL", server),
                ("GOLEM_PROVIDER_GOLEM_BASE_RPC_URL", chain.rpc_url),
                ("GOLEM_PROVIDER_GOLEM_BASE_WS_URL", chain.ws_url),
                ("GOLEM_PROVIDER_GOLEM_BASE_ADVERTISEMENT_INTERVAL", str(INTERVAL)),
                ("GOLEM_PROVIDER_FAUCET_URL", f"{faucet.url}/faucet"),
                ("GOLEM_PROVIDER_CAPTCHA_URL", faucet.url),
                ("GOLEM_PROVIDER_CAPTCHA_API_KEY", KEY),
                ("GOLEM_PROVIDER_PUBLIC_IP", "127.0.0.1"),
                ("GOLEM_PROVIDER_PROVIDER_NAME", "gb-e2e"),
                ("GOLEM_PROVIDER_COINGECKO_API_URL", feed.url),
            ),
        )
        await node.start()
        try:
            key = json.loads((node.data / "keys" / "provider_key.json").read_text())
            provider_id = key["address"]
            cpus = psutil.cpu_count(logical=True) or 1
            await wait_for("the entity", lambda: len(ours(double, provider_id)) == 1)
            assert faucet.funded == [provider_id]  # no gas at first: the faucet paid
            (entity,) = ours(double, provider_id)
            assert entity.strings["golem_provider_id"] == provider_id
            assert entity.strings["golem_provider_name"] == "gb-e2e"
            assert entity.strings["golem_network"] == "testnet"
            assert entity.strings["golem_payments_network"] == "none"
            assert entity.strings["golem_ip_address"] == "127.0.0.1"
            assert entity.strings["golem_price_glm_core_month"] == "20.0"
            assert entity.numbers["golem_cpu"] == cpus
            # What the requestor asks (market.md §3) finds it.
            found = double.dispatch(
                "golembase_queryEntities",
                [f'golem_type="provider" && golem_network="testnet" && golem_cpu>={cpus}'],
            )
            assert [item["key"] for item in found] == [entity.key]

            async with httpx.AsyncClient(timeout=200) as client:
                url = f"{server}{ADVERTS}/{provider_id}"
                await wait_advert(client, url, lambda a: a["resources"]["cpu"] == cpus)

                created = await client.post(
                    f"{node.url}/vms",
                    json={
                        "name": "advertised",
                        "resources": {"cpu": 1, "memory": 1, "storage": 10},
                        "ssh_key": public,
                    },
                )
                assert created.status_code == 200, created.text
                await wait_for(
                    "the update",
                    lambda: (
                        [e.numbers["golem_cpu"] for e in ours(double, provider_id)] == [cpus - 1]
                    ),
                )
                assert ours(double, provider_id)[0].key == entity.key  # updated, not new
                assert any(w.tx.updates for w in double.writes)
                await wait_advert(client, url, lambda a: a["resources"]["cpu"] == cpus - 1)

                # 24 blocks of 1 s: it must be extended to outlive them, and an extension
                # of an entity that expired fails in the double.
                await wait_for(
                    "an extension",
                    lambda: any(e.key == entity.key for w in double.writes for e in w.tx.extends),
                )
                assert [e.key for e in ours(double, provider_id)] == [entity.key]

                deleted = await client.delete(f"{node.url}/vms/{created.json()['id']}")
                assert deleted.status_code == 200, deleted.text
                await wait_for(
                    "the update back",
                    lambda: [e.numbers["golem_cpu"] for e in ours(double, provider_id)] == [cpus],
                )

                node.kill()  # no clean stop: the entity stays (just updated: ~24 s to live)
                creates = sum(len(w.tx.creates) for w in double.writes)
                await node.start()
                writes, calls = len(double.writes), len(double.methods)
                await wait_for("a check by the new process", lambda: len(double.methods) > calls)
                await trio.sleep(INTERVAL / 3 + 1)  # and its first check is done
                assert [e.key for e in ours(double, provider_id)] == [entity.key]
                assert sum(len(w.tx.creates) for w in double.writes) == creates
                assert len(double.writes) >= writes

                await node.stop()
                assert ours(double, provider_id) == []
                assert double.writes[-1].tx.deletes == (entity.key,)
                gone = await client.get(url)
                assert gone.status_code == 404, gone.text
            assert "advert withdrawn" in node.log_events()
        finally:
            if (node.data / "provider.pid").exists():
                await node.stop()
            for qemu in node.guest_processes():
                qemu.kill()
