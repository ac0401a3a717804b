"""The chain RPC down, then back: a paying node keeps its VMs, refuses creates with 503,
and recovers on its own.

The node runs its own anvil (payments `local`); the outage is that anvil frozen with
SIGSTOP (its port still accepts connections, nothing answers: the RPC calls time out, the
hardest case for a client), then SIGCONT. 30 s in CI, 5 minutes with ``GOLEM_FAULTS=full``.
During it: the paying VM stays `running` and its SSH session works, the stream monitor
touches nothing, the VM list answers, and a create answers 503 naming the chain. After
it, without any restart of the node: a create with the stream refused before succeeds,
and the world is clean (`check_world`).
"""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil
import pytest
import trio
from node_helpers import NodeProcess, free_block, free_port, running, ssh

from golem_actor.adapters.guest import GuestImage

from .conftest import runs
from .invariants import check_world, listing, settle

OUTAGE = runs(ci=30, full=300)  # seconds
RATE = 10**12


@pytest.fixture
async def node(tmp_path: Path, test_guest: GuestImage) -> AsyncIterator[NodeProcess]:
    process = NodeProcess(
        data=tmp_path / "node",
        port=free_port(),
        ports=free_block(4),
        guest_cache=test_guest.kernel.parent.parent,
        extra_env=(
            ("GOLEM_PROVIDER_PAYMENTS_NETWORK", "local"),
            ("GOLEM_PROVIDER_POLYGON_RPC_URL", f"http://127.0.0.1:{free_port()}"),
            ("GOLEM_PROVIDER_STREAM_MONITOR_INTERVAL_SECONDS", "1"),
        ),
    )
    async with running(process):
        yield process


def node_anvil(node: NodeProcess) -> psutil.Process:
    port = dict(node.extra_env)["GOLEM_PROVIDER_POLYGON_RPC_URL"].rsplit(":", 1)[1]
    (anvil,) = [
        p
        for p in psutil.Process(node.pid()).children(recursive=True)
        if "anvil" in p.name() and port in " ".join(p.cmdline())
    ]
    return anvil


async def open_stream(node: NodeProcess, seconds: int = 3600) -> int:
    opened = await node.cli(
        "streams", "open", "--rate", str(RATE), "--seconds", str(seconds), "--json"
    )
    assert opened.returncode == 0, opened.stderr.decode()
    return int(json.loads(opened.stdout)["stream_id"])


async def test_a_chain_outage_stops_no_vm_and_heals_without_a_restart(
    node: NodeProcess, ssh_keypair: tuple[Path, str]
) -> None:
    key, public = ssh_keypair
    body = {"size": "small", "ssh_key": public}
    async with httpx.AsyncClient(timeout=200) as client:
        created = await client.post(
            f"{node.url}/vms", json={**body, "name": "paying", "stream_id": await open_stream(node)}
        )
        assert created.status_code == 200, created.text
        vm = created.json()
        spare = await open_stream(node)  # for a create during the outage
        pid = node.pid()
        anvil = node_anvil(node)

        anvil.send_signal(signal.SIGSTOP)
        print(f"faults: chain down for {OUTAGE} s")
        refused: list[httpx.Response] = []

        async def create_during() -> None:
            started = trio.current_time()
            reply = await client.post(
                f"{node.url}/vms", json={**body, "name": "during", "stream_id": spare}
            )
            print(
                f"faults: create during the outage: {reply.status_code} {reply.text} after "
                f"{trio.current_time() - started:.1f} s"
            )
            refused.append(reply)

        try:
            down = trio.current_time()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(create_during)
                checks = 0
                while trio.current_time() - down < OUTAGE or not refused:
                    vms = await listing(client, node)
                    assert [v["status"] for v in vms.values()] == ["running"], vms
                    login = await ssh(key, vm["ssh_port"], "root", "hostname")
                    assert login.stdout.decode().strip() == "paying", login.stderr.decode()
                    checks += 1
                    await trio.sleep(5)
        finally:
            anvil.send_signal(signal.SIGCONT)
        assert checks >= OUTAGE // 10  # the VM was seen running and serving throughout
        (reply,) = refused
        assert reply.status_code == 503, reply.text
        assert "chain" in reply.json()["detail"].lower(), reply.text
        assert "stopping a VM whose stream stopped paying" not in node.log_events()

        with trio.fail_after(60):  # the chain answers again: creates are served
            while True:
                again = await client.post(
                    f"{node.url}/vms", json={**body, "name": "after", "stream_id": spare}
                )
                if again.status_code == 200:
                    break
                assert again.status_code == 503, again.text
                await trio.sleep(2)
        assert node.pid() == pid  # no restart of the node
        vms = await settle(client, node)
        assert sorted(v["status"] for v in vms.values()) == ["running", "running"]
        assert await check_world(client, node, key, vms) == []
        for vm_id in vms:
            assert (await client.delete(f"{node.url}/vms/{vm_id}")).status_code == 200
