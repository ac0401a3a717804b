"""SIGKILL of the node at random points of create, stop, start and delete, then a restart.

The node pays its way on its own local chain (payments `local`: every VM has a stream,
and every restart restarts the chain, ending the anvil the killed node left). One node
data directory lives through every run, so what one crash leaves behind is the next
run's starting point (as on a real host). A run picks an operation that makes sense for
the VMs there are (at most two), sends it, kills the node (SIGKILL, no cleanup) after a
random delay within the operation's usual duration, starts the node again and waits until
every VM settled. Then no VM may be in error, every VM that existed before is still there
(less the one being deleted) with at most the one being created added, and
`check_world` must find nothing: no orphan QEMU or pasta, no listener in the SSH port
range but the running VMs', no stray VM directory, stream mapping, booking or state file,
and every running VM answers SSH on its port with its own hostname.

Runs: 10 in CI, 50 with ``GOLEM_FAULTS=full``; the seed is printed.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from node_helpers import NodeProcess, free_block, free_port, running

from golem_actor.adapters.guest import GuestImage

from .conftest import runs
from .invariants import anvils, check_world, settle

RUNS = runs(ci=10, full=50)
MAX_VMS = 2
# How long after sending it an operation is killed, at most: about its usual duration on
# a 2-core host under TCG, so the kill lands before, inside or just after its work.
KILL_WITHIN = {"create": 6.0, "start": 5.0, "stop": 3.0, "delete": 1.0}


@pytest.fixture
async def node(tmp_path: Path, test_guest: GuestImage) -> AsyncIterator[NodeProcess]:
    """A paying node on its own chain: every restart also restarts (and adopts) that."""
    process = NodeProcess(
        data=tmp_path / "node",
        port=free_port(),
        ports=free_block(6),
        guest_cache=test_guest.kernel.parent.parent,
        extra_env=(
            ("GOLEM_PROVIDER_PAYMENTS_NETWORK", "local"),
            ("GOLEM_PROVIDER_POLYGON_RPC_URL", f"http://127.0.0.1:{free_port()}"),
        ),
    )
    async with running(process):
        yield process


async def open_stream(node: NodeProcess) -> int:
    opened = await node.cli("streams", "open", "--rate", str(10**12), "--seconds", "3600", "--json")
    assert opened.returncode == 0, opened.stderr.decode()
    return int(json.loads(opened.stdout)["stream_id"])


def choose(rng: random.Random, vms: dict[str, dict[str, Any]]) -> tuple[str, str | None]:
    """An operation that makes sense now, and its VM (None for a create)."""
    choices: list[tuple[str, str | None]] = []
    if len(vms) < MAX_VMS:
        choices.append(("create", None))
    for vm_id, vm in sorted(vms.items()):
        choices.append(("stop" if vm["status"] == "running" else "start", vm_id))
        choices.append(("delete", vm_id))
    return rng.choice(choices)


async def send(
    client: httpx.AsyncClient, node: NodeProcess, op: str, vm_id: str | None, body: dict[str, Any]
) -> None:
    """The request; its answer is lost when the node dies under it, which is the point."""
    try:
        match op:
            case "create":
                await client.post(f"{node.url}/vms", json=body)
            case "delete":
                await client.delete(f"{node.url}/vms/{vm_id}")
            case _:
                await client.post(f"{node.url}/vms/{vm_id}/{op}")
    except httpx.TransportError:
        pass


async def test_node_sigkill_at_random_points_leaves_nothing_behind(
    node: NodeProcess, ssh_keypair: tuple[Path, str], rng: random.Random
) -> None:
    key, public = ssh_keypair
    chain_port = int(dict(node.extra_env)["GOLEM_PROVIDER_POLYGON_RPC_URL"].rsplit(":", 1)[1])
    tally: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=200) as client:
        vms = await settle(client, node)
        for run in range(RUNS):
            op, vm_id = choose(rng, vms)
            delay = rng.uniform(0, KILL_WITHIN[op])
            print(f"run {run}: {op} {vm_id or ''} killed after {delay:.2f} s")
            body: dict[str, Any] = {}
            if op == "create":
                body = {"name": f"vm{run}", "size": "small", "ssh_key": public}
                body["stream_id"] = await open_stream(node)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send, client, node, op, vm_id, body)
                await trio.sleep(delay)
                node.kill()
            await node.start()
            after = await settle(client, node)

            kept = set(vms) - {vm_id} if op == "delete" else set(vms)
            assert kept <= set(after), f"run {run}: VMs lost: {kept - set(after)}"
            added = set(after) - set(vms)
            assert len(added) <= (op == "create"), f"run {run}: VMs appeared: {added}"
            for new in added:
                assert after[new]["name"] == f"vm{run}"
            findings = await check_world(client, node, key, after)
            chains = len(anvils(chain_port))
            if chains != 1:
                findings.append(f"{chains} anvils on the chain's port")
            assert findings == [], f"run {run} ({op} after {delay:.2f} s): {findings}"
            tally[op] = tally.get(op, 0) + 1
            vms = after

        print(f"faults: {RUNS} node SIGKILLs {tally}: 0 orphans, 0 leaks, 0 unreachable VMs")
        assert len(anvils(chain_port)) == 1
        for vm_id in vms:
            assert (await client.delete(f"{node.url}/vms/{vm_id}")).status_code == 200
        assert node.qemus() == []
        assert await check_world(client, node, key, {}) == []
