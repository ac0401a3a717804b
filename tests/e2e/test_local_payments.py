"""Streaming payments end to end: the node's own local chain, a real QEMU guest, real SSH.

The node runs with the `local` payments profile: it starts anvil itself, deploys
StreamPayment and serves payment-gated rentals fully offline. A requestor opens a
native-ETH stream to the provider (from anvil's public development account #1), rents a
VM, runs out of runway (time moved forward on the chain), tops up, and gets it back.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil
import pytest
import trio
from node_helpers import NodeProcess, free_block, free_port, running, ssh, wait_status

from actors.local_chain import LOCAL_STREAM_PAYMENT
from golem_actor.adapters.chain.rpc import RpcClient
from golem_actor.adapters.chain.stream_payment import StreamPaymentClient
from golem_actor.adapters.chain.transactions import TransactionSender
from golem_actor.adapters.guest import GuestImage

pytestmark = pytest.mark.e2e

REQUESTOR_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil #1
RATE = 10**12
RUNWAY = 1_000
MIN_REMAINING = 600


@pytest.fixture
async def node(tmp_path: Path, test_guest: GuestImage) -> AsyncIterator[NodeProcess]:
    chain_port = free_port()
    process = NodeProcess(
        data=tmp_path / "node",
        port=free_port(),
        ports=free_block(4),
        guest_cache=test_guest.kernel.parent.parent,
        extra_env=(
            ("GOLEM_PROVIDER_PAYMENTS_NETWORK", "local"),
            ("GOLEM_PROVIDER_POLYGON_RPC_URL", f"http://127.0.0.1:{chain_port}"),
            ("GOLEM_PROVIDER_STREAM_MONITOR_INTERVAL_SECONDS", "1"),
            ("GOLEM_PROVIDER_STREAM_MIN_REMAINING_SECONDS", str(MIN_REMAINING)),
        ),
    )
    async with running(process):
        yield process


def anvils(port: int) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if "anvil" in (process.info["name"] or "") and f"--port {port}" in command:
            found.append(process)
    return found


async def test_a_paid_rental_on_the_nodes_own_chain(
    node: NodeProcess, ssh_keypair: tuple[Path, str]
) -> None:
    key, public = ssh_keypair
    rpc_url = dict(node.extra_env)["GOLEM_PROVIDER_POLYGON_RPC_URL"]
    async with httpx.AsyncClient(timeout=200) as client, RpcClient(rpc_url) as rpc:
        info = (await client.get(f"{node.url}/provider/info")).json()
        assert info["stream_payment_address"] == LOCAL_STREAM_PAYMENT
        assert (node.data / "deployments" / "local.json").exists()
        contract = StreamPaymentClient(rpc, info["stream_payment_address"])
        requestor = TransactionSender(rpc, REQUESTOR_KEY, max_fee_cap_wei=10**12)
        opened = await node.cli(
            "streams", "open", "--rate", str(RATE), "--seconds", str(RUNWAY), "--json"
        )
        assert opened.returncode == 0, opened.stderr.decode()
        stream_id = json.loads(opened.stdout)["stream_id"]
        assert json.loads(opened.stdout)["recipient"] == info["provider_id"]

        body = {
            "name": "paid",
            "resources": {"cpu": 1, "memory": 1, "storage": 10},
            "ssh_key": public,
        }
        unpaid = await client.post(f"{node.url}/vms", json=body)
        assert (unpaid.status_code, unpaid.json()["detail"]) == (
            400,
            "stream_id required when payments are enabled",
        )
        created = await client.post(f"{node.url}/vms", json={**body, "stream_id": stream_id})
        assert created.status_code == 200, created.text
        vm = created.json()
        assert (await ssh(key, vm["ssh_port"], "ubuntu", "nproc")).stdout.strip() == b"1"
        status = (await client.get(f"{node.url}/vms/{vm['id']}/stream")).json()
        assert (status["verified"], status["chain"]["ratePerSecond"]) == (True, RATE)

        await rpc.call("evm_increaseTime", [RUNWAY - MIN_REMAINING + 10])
        await rpc.call("evm_mine", [])
        await wait_status(client, node, vm["id"], "stopped", bound=60)
        assert (await ssh(key, vm["ssh_port"], "root", "true")).returncode != 0

        await requestor.send(contract.top_up_tx(stream_id, RATE * RUNWAY))
        await wait_status(client, node, vm["id"], "running", bound=120)
        again = await ssh(key, vm["ssh_port"], "root", "echo paid")
        assert again.stdout.strip() == b"paid", again.stderr.decode()

        assert (await client.delete(f"{node.url}/vms/{vm['id']}")).status_code == 200
        last_block = int(await rpc.call("eth_blockNumber", []), 16)
    chain_port = int(rpc_url.rsplit(":", 1)[1])
    assert len(anvils(chain_port)) == 1  # the node's own chain
    await node.stop()
    assert anvils(chain_port) == []  # stopped with the node

    await node.start()  # the chain's state survived the restart
    async with RpcClient(rpc_url) as rpc:
        stream = await StreamPaymentClient(rpc, LOCAL_STREAM_PAYMENT).get_stream(stream_id)
        assert int(await rpc.call("eth_blockNumber", []), 16) >= last_block  # no reset
    assert stream is not None
    assert stream.deposit == 2 * RATE * RUNWAY
    # The empty blocks mined every 2 s were dropped from the state file at the restart.
    assert "local chain state compacted" in node.log_events()


HOUR = 3_600
SHORT = 20  # seconds of runway above MIN_REMAINING: a stream that runs dry during the test


async def test_chain_time_moves_without_transactions(
    node: NodeProcess, ssh_keypair: tuple[Path, str]
) -> None:
    """anvil mines on its own: runway falls, funds vest, a dry stream's VM is stopped."""
    _, public = ssh_keypair

    async def open_stream(seconds: int) -> int:
        opened = await node.cli(
            "streams", "open", "--rate", str(RATE), "--seconds", str(seconds), "--json"
        )
        assert opened.returncode == 0, opened.stderr.decode()
        return int(json.loads(opened.stdout)["stream_id"])

    body = {"resources": {"cpu": 1, "memory": 1, "storage": 10}, "ssh_key": public}
    async with httpx.AsyncClient(timeout=200) as client:
        short = await open_stream(MIN_REMAINING + SHORT)
        created = await client.post(
            f"{node.url}/vms", json={**body, "name": "short", "stream_id": short}
        )
        assert created.status_code == 200, created.text
        dry = created.json()
        hour = await open_stream(HOUR)
        created = await client.post(
            f"{node.url}/vms", json={**body, "name": "hour", "stream_id": hour}
        )
        assert created.status_code == 200, created.text
        paid = created.json()
        assert paid["status"] == "running"

        # Nobody transacts from here on: only anvil's own blocks move chain time.
        with trio.fail_after(30):
            while True:
                status = (await client.get(f"{node.url}/vms/{paid['id']}/stream")).json()
                if status["computed"]["now"] - status["chain"]["startTime"] >= 10:
                    break
                await trio.sleep(0.5)
        assert status["computed"]["remaining_seconds"] < HOUR
        assert status["computed"]["vested_wei"] > 0
        listed = await node.cli("streams", "list", "--json")
        assert listed.returncode == 0, listed.stderr.decode()
        (entry,) = [s for s in json.loads(listed.stdout)["streams"] if s["vm_id"] == paid["id"]]
        assert entry["remaining"] <= status["computed"]["remaining_seconds"] < HOUR
        assert entry["withdrawable"] >= status["computed"]["vested_wei"] > 0

        await wait_status(client, node, dry["id"], "stopped", bound=SHORT + 30)
        status = (await client.get(f"{node.url}/vms/{dry['id']}/stream")).json()
        assert status["reason"].startswith("runway too short"), status
        assert (await client.get(f"{node.url}/vms/{paid['id']}")).json()["status"] == "running"

        withdrawn = await node.cli("streams", "withdraw", "--vm-id", paid["id"], "--json")
        assert withdrawn.returncode == 0, withdrawn.stderr.decode()
        (result,) = json.loads(withdrawn.stdout)["results"]
        assert (result["status"], result["stream_id"]) == ("withdrawn", hour), result
        assert result["amount_wei"] >= entry["withdrawable"]
