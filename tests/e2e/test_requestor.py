"""Acceptance: the requestor users already have (PyPI request-vm-on-golem 0.1.58, unchanged,
in its own venv: `.ci/install-requestor.sh`) finds our node.

`golem vm providers --json` with GOLEM_REQUESTOR_DISCOVERY_DRIVER=central lists a real node
(a process, advertising with ADVERTISER_TYPE=discovery_server) from our discovery service
(`golem-provider discovery serve`, a process) and from the upstream discovery server
(golem-vm-discovery 0.1.25), with the resources the node offers and its prices; on ours
the requestor's table (which needs `provider_name`) shows it too. Everything on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from node_helpers import CLI, SSH_OPTIONS, NodeProcess, free_block, free_port, running
from test_discovery_upstream import upstream, upstream_venv

from golem_actor.adapters.guest import GuestImage

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))  # the local price feed
from feed_server import feed_server, prices

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
REQUESTOR_PORT = 7466  # the requestor's: fixed
ADVERTS = "/api/v1/advertisements"
# At 0.25 USD/GLM the default USD prices (5 / 2 / 0.1) are 20 / 8 / 0.4 GLM.
PRICING = {
    "usd_per_core_month": 5.0,
    "usd_per_gb_ram_month": 2.0,
    "usd_per_gb_storage_month": 0.1,
    "glm_per_core_month": 20.0,
    "glm_per_gb_ram_month": 8.0,
    "glm_per_gb_storage_month": 0.4,
}

__all__ = ["upstream_venv"]  # a fixture of this module too


@pytest.fixture(scope="module")
def requestor() -> Path:
    """The `golem` command of the requestor's own venv."""
    subprocess.run(["bash", str(REPO / ".ci" / "install-requestor.sh")], check=True)
    return REPO / ".tools" / "requestor" / "bin" / "golem"


def requestor_env(home: Path, discovery: str) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOLEM_", "PYTHON", "VIRTUAL"))}
    env.update(
        HOME=str(home),  # its config, keys and database live in ~/.golem/requestor
        GOLEM_REQUESTOR_DISCOVERY_DRIVER="central",
        GOLEM_REQUESTOR_DISCOVERY_URL=discovery,
    )
    return env


async def golem(
    command: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [str(command), *args], env=env, capture_stdout=True, capture_stderr=True, check=False
    )


@asynccontextmanager
async def our_discovery(data: Path) -> AsyncIterator[str]:
    """`golem-provider discovery serve` as its own process on a loopback port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [CLI, "discovery", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--db", str(data / "discovery.sqlite3"), "--log-format", "json"]
    process = await trio.lowlevel.open_process(command)
    try:
        async with httpx.AsyncClient() as client:
            with trio.fail_after(30):
                while True:
                    try:
                        if (await client.get(url + "/health")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await trio.sleep(0.1)
        yield url
    finally:
        process.terminate()
        with trio.fail_after(10):
            await process.wait()


def advertising_node(tmp_path: Path, guest: GuestImage, discovery: str, feed: str) -> NodeProcess:
    return NodeProcess(
        data=tmp_path / "node",
        port=free_port(),
        ports=free_block(2),
        guest_cache=guest.kernel.parent.parent,
        extra_env=(
            ("GOLEM_PROVIDER_ADVERTISER_TYPE", "discovery_server"),
            ("GOLEM_PROVIDER_DISCOVERY_URL", discovery),
            ("GOLEM_PROVIDER_PUBLIC_IP", "127.0.0.1"),
            ("GOLEM_PROVIDER_PROVIDER_NAME", "acceptance-node"),
            ("GOLEM_PROVIDER_COINGECKO_API_URL", feed),
        ),
    )


def provider_id(node: NodeProcess) -> str:
    key = json.loads((node.data / "keys" / "provider_key.json").read_text())
    address: str = key["address"]
    return address


async def offered(client: httpx.AsyncClient, node: NodeProcess) -> dict[str, int]:
    reply = await client.get(f"{node.url}/admin/state", headers=node.operator)
    free: dict[str, int] = reply.json()["capacity"]["free"]
    return free


def close_to(listed: dict[str, int], offer: dict[str, int]) -> bool:
    """The listed resources are the node's offer: cores exactly; memory and disk within a
    GB, since the offer follows the host's live usage (other tests' guests and images come
    and go) and the advert follows it a debounce period later."""
    return (
        listed["cpu"] == offer["cpu"]
        and abs(listed["memory"] - offer["memory"]) <= 1
        and abs(listed["storage"] - offer["storage"]) <= 1
    )


async def listed_by_the_requestor(
    command: Path, env: dict[str, str], node: NodeProcess, discovery: str
) -> dict[str, Any]:
    """Our node's row in `golem vm providers --json`, once its advert is up and shows
    what the node offers now (the offer moves with the host's load)."""
    seen: list[object] = []  # what the last look found, for the failure's message
    async with httpx.AsyncClient(timeout=30) as client:
        with trio.move_on_after(90):
            while True:
                advert = await client.get(f"{discovery}{ADVERTS}/{provider_id(node)}")
                status = await client.get(f"{node.url}/admin/status", headers=node.operator)
                seen = [advert.status_code, advert.text[:300], status.json().get("advert")]
                if advert.status_code == 200:
                    result = await golem(command, env, "vm", "providers", "--json")
                    assert result.returncode == 0, result.stderr.decode()
                    rows = json.loads(result.stdout)["providers"]
                    ours = [row for row in rows if row["provider_id"] == provider_id(node)]
                    offer = await offered(client, node)
                    seen = [rows, offer]
                    if ours and close_to(ours[0]["resources"], offer):
                        row: dict[str, Any] = ours[0]
                        return row
                # Upstream's server allows 100 requests a minute per address (everything
                # here is 127.0.0.1, the node's posts included), and its 429 then fails as
                # a 500: two requests every 2 s stay well inside.
                await trio.sleep(2.0)
    raise AssertionError(f"the requestor never listed the node's offer: {seen}")


async def test_the_requestor_lists_our_node_from_our_discovery_service_and_upstreams(
    tmp_path: Path, test_guest: GuestImage, requestor: Path, upstream_venv: Path
) -> None:
    # The feed answers slowly, so the node's first advert attempt finds no price yet: the
    # price arriving must bring the advert (within the debounce), not the next interval
    # 4 min later (CI once met that race by chance).
    async with feed_server(prices(glm=0.25, eth=2000), delay=3.0) as feed:
        # Ours: `golem-provider discovery serve`; the table needs provider_name.
        async with our_discovery(tmp_path) as discovery:
            node = advertising_node(tmp_path / "a", test_guest, discovery, feed.url)
            env = requestor_env(tmp_path / "home-a", discovery)
            async with running(node):
                row = await listed_by_the_requestor(requestor, env, node, discovery)
                assert row["provider_name"] == "acceptance-node"
                assert row["ip_address"] == "127.0.0.1"
                assert row["platform"] == "x86_64"
                assert row["country"] == "SE"
                assert row["pricing"] == PRICING
                table = await golem(requestor, env, "vm", "providers")
                assert table.returncode == 0, table.stderr.decode()
                assert provider_id(node) in table.stdout.decode()
                assert "acceptance-node" in table.stdout.decode()
                # The requestor's filters reach our service: too big a VM finds nothing.
                too_big = await golem(
                    requestor, env, "vm", "providers", "--json", "--cpu", "100000"
                )
                assert json.loads(too_big.stdout)["providers"] == []

        # Upstream's server, unchanged: the same node, the same row (without the fields
        # its answers lack).
        (tmp_path / "upstream").mkdir()
        async with upstream(upstream_venv, tmp_path / "upstream") as discovery:
            node = advertising_node(tmp_path / "b", test_guest, discovery, feed.url)
            env = requestor_env(tmp_path / "home-b", discovery)
            async with running(node):
                row = await listed_by_the_requestor(requestor, env, node, discovery)
                assert row["ip_address"] == "127.0.0.1"
                assert row["country"] == "SE"
                assert row["pricing"] == PRICING


REQUESTOR_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil #1
REQUESTOR_ADDRESS = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
UNREACHABLE = "http://127.0.0.1:9"  # the requestor's faucet and captcha: never the internet


def own_loopback_address() -> str:
    """A loopback address nobody else uses, with port 7466 free: the requestor talks to
    `http://<advertised ip>:7466`, whatever the advert says."""
    for _ in range(100):
        host = (
            f"127.{random.randrange(64, 250)}.{random.randrange(1, 250)}.{random.randrange(2, 250)}"
        )
        with socket.socket() as probe:
            try:
                probe.bind((host, REQUESTOR_PORT))
            except OSError:
                continue
        return host
    raise RuntimeError("no free loopback address with port 7466")


async def create_failures(client: httpx.AsyncClient, node: NodeProcess) -> dict[str, float]:
    """The node's refused creates by reason, from its /metrics."""
    root = node.url.removesuffix("/api/v1")
    text = (await client.get(f"{root}/metrics", headers=node.operator)).text
    found = {}
    for line in text.splitlines():
        if line.startswith("golem_vm_create_failures_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            found[reason] = float(line.rsplit(" ", 1)[1])
    return found


def rental_node(
    tmp_path: Path, guest: GuestImage, host: str, chain: str, discovery: str, *extra: str
) -> NodeProcess:
    """A node in local mode (its own anvil, our contract) on `host`:7466, advertised there."""
    settings = (
        ("PAYMENTS_NETWORK", "local"),
        ("POLYGON_RPC_URL", chain),
        ("SSH_LISTEN_HOST", host),
        ("ADVERTISER_TYPE", "discovery_server"),
        ("DISCOVERY_URL", discovery),
        ("PUBLIC_IP", host),
        ("PROVIDER_NAME", "rental-node"),
        *zip(extra[::2], extra[1::2], strict=True),
    )
    return NodeProcess(
        data=tmp_path / "node",
        port=REQUESTOR_PORT,
        ports=free_block(2),
        guest_cache=guest.kernel.parent.parent,
        host=host,
        extra_env=tuple((f"GOLEM_PROVIDER_{name}", value) for name, value in settings),
    )


# An explicit wei price (the override) far above what the requestor's formula pays: it pays
# the advertised GLM amounts (20 / 8 / 0.4 a month at the local profile's 0.25 USD/GLM) in
# the local chain's native token, about 32 ETH a month for 1 core, 1 GB, 10 GB.
DEAR = ("PRICE_WEI_PER_CORE_MONTH", str(100 * 10**18))


async def test_a_whole_rental_by_the_unchanged_requestor(
    tmp_path: Path, test_guest: GuestImage, requestor: Path
) -> None:
    host = own_loopback_address()
    chain = f"http://127.0.0.1:{free_port()}"
    home = tmp_path / "home"
    spec = ("--cpu", "1", "--memory", "1", "--storage", "10")
    create = ("vm", "create")
    async with our_discovery(tmp_path) as discovery, httpx.AsyncClient(timeout=30) as client:
        env = requestor_env(home, discovery)
        env.update(
            GOLEM_REQUESTOR_POLYGON_RPC_URL=chain,
            GOLEM_REQUESTOR_ETHEREUM_PRIVATE_KEY=REQUESTOR_KEY,
            GOLEM_REQUESTOR_L2_FAUCET_URL=UNREACHABLE,
            GOLEM_REQUESTOR_CAPTCHA_URL=UNREACHABLE,
        )

        # A stream below the node's price: the requestor opens it and is refused (400).
        node = rental_node(tmp_path, test_guest, host, chain, discovery, *DEAR)
        async with running(node):
            ours = provider_id(node)
            row = await listed_by_the_requestor(requestor, env, node, discovery)
            assert (row["ip_address"], row["provider_name"]) == (host, "rental-node")
            assert row["pricing"]["glm_per_core_month"] == 20.0
            cheap = await golem(requestor, env, *create, "cheap", "--provider-id", ours, *spec)
            output = (cheap.stdout + cheap.stderr).decode()
            assert cheap.returncode != 0, output
            assert "invalid stream: rate below price" in output, output
            assert (await create_failures(client, node)).get("StreamRefused") == 1.0
            assert (await client.get(f"{node.url}/vms", headers=node.operator)).json() == []

        # At the node's USD prices the same requestor pays enough: a whole rental.
        node = rental_node(tmp_path, test_guest, host, chain, discovery)
        async with running(node):
            await listed_by_the_requestor(requestor, env, node, discovery)
            made = await golem(requestor, env, *create, "web", "--provider-id", ours, *spec)
            output = (made.stdout + made.stderr).decode()
            assert "Opened stream id=" in output, output
            # request-vm-on-golem 0.1.58 records the VM in its own database twice (INSERT
            # "creating", then INSERT "running", name as primary key): after the VM runs and
            # its access was read, its bookkeeping fails, whatever the provider answered.
            assert made.returncode == 1, output
            assert "Failed to save VM: UNIQUE constraint failed: vms.name" in output, output

            # The rental itself went through: the VM runs on the requestor's own stream...
            (vm,) = (await client.get(f"{node.url}/vms", headers=node.operator)).json()
            assert (vm["name"], vm["status"]) == ("web", "running")
            info = await golem(requestor, env, "vm", "info", "web", "--json")
            assert info.returncode == 0, info.stderr.decode()
            details = json.loads(info.stdout)
            assert (details["provider_ip"], details["vm_id"]) == (host, vm["id"])
            # ... and plain ssh with the requestor's key reaches it at the advertised address.
            access = (await client.get(f"{node.url}/vms/{vm['id']}/access")).json()
            assert access["ssh_host"] == host
            key = home / ".golem" / "requestor" / "ssh" / "golem_id_rsa"
            login = ["ssh", "-i", str(key), "-p", str(access["ssh_port"]), *SSH_OPTIONS]
            reached = await trio.run_process(
                [*login, f"ubuntu@{host}", "nproc"],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
            assert reached.stdout.strip() == b"1", reached.stderr.decode()

            stream = (await client.get(f"{node.url}/vms/{vm['id']}/stream")).json()
            assert stream["verified"] is True, stream
            assert stream["chain"]["recipient"].lower() == ours.lower()
            assert stream["chain"]["sender"].lower() == REQUESTOR_ADDRESS
            # The requestor's own formula on the advertised GLM prices (20 + 8 + 10 x 0.4).
            assert stream["chain"]["ratePerSecond"] == int(32.0 / (730.0 * 3600.0) * 10**18)

            gone = await golem(requestor, env, "vm", "destroy", "web")
            assert gone.returncode == 0, (gone.stdout + gone.stderr).decode()
            assert (await client.get(f"{node.url}/vms", headers=node.operator)).json() == []
