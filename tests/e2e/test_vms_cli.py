"""`golem-provider vms ...` against a real node process with real QEMU guests.

The operator's journey: list and show a VM as a table and as JSON, stop, start and delete
it (each command returns once the VM got there), and the errors a script relies on: a VM
still being created refuses a stop (409, exit 5), a gone VM is exit 4, no node is exit 3.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from node_helpers import NodeProcess, guest_node, running, wait_status

from golem_actor.adapters.guest import GuestImage

pytestmark = pytest.mark.e2e


@pytest.fixture
async def node(tmp_path: Path, test_guest: GuestImage) -> AsyncIterator[NodeProcess]:
    async with running(guest_node(tmp_path, test_guest.kernel.parent.parent)) as process:
        yield process


async def test_operator_lists_stops_starts_and_deletes_a_vm(
    node: NodeProcess, ssh_keypair: tuple[Path, str]
) -> None:
    _, public = ssh_keypair
    async with httpx.AsyncClient(timeout=200) as client:
        created = await client.post(
            f"{node.url}/vms?async=true",
            json={"name": "ops", "size": "small", "ssh_key": public},
        )
        assert created.status_code == 202, created.text
        vm_id = created.json()["vm_id"]

        early = await node.cli("vms", "stop", vm_id, "--json")  # still creating: refused
        assert early.returncode == 5, early.stderr.decode()
        assert json.loads(early.stdout)["error"] == "conflict"

        await wait_status(client, node, vm_id, "running")

    listed = await node.cli("vms", "list")
    assert listed.returncode == 0, listed.stderr.decode()
    header, row = listed.stdout.decode().splitlines()
    assert header.split()[:3] == ["ID", "NAME", "STATUS"]
    assert row.split()[:3] == [vm_id, "ops", "running"]

    as_json = await node.cli("vms", "list", "--json")
    [view] = json.loads(as_json.stdout)
    assert (view["id"], view["status"]) == (vm_id, "running")
    assert view["ssh_port"] in node.ports

    shown = await node.cli("vms", "show", vm_id)
    assert f"ID:         {vm_id}" in shown.stdout.decode()
    assert "Status:     running" in shown.stdout.decode()

    stopped = await node.cli("vms", "stop", vm_id, "--json")
    assert stopped.returncode == 0, stopped.stderr.decode()
    assert json.loads(stopped.stdout)["status"] == "stopped"
    assert node.qemus() == []  # the command returned once the guest was off

    started = await node.cli("vms", "start", vm_id)
    assert started.returncode == 0, started.stderr.decode()
    assert "Status:     running" in started.stdout.decode()
    assert len(node.qemus()) == 1

    deleted = await node.cli("vms", "delete", vm_id)
    assert deleted.returncode == 0, deleted.stderr.decode()
    assert deleted.stdout.decode().strip() == f"VM {vm_id}: deleted"
    assert node.qemus() == []
    assert not (node.data / "vms" / vm_id).exists()

    gone = await node.cli("vms", "show", vm_id)
    assert gone.returncode == 4
    assert vm_id in gone.stderr.decode()
    empty = await node.cli("vms", "list")
    assert empty.stdout.decode() == "no VMs\n"

    await node.stop()
    no_node = await node.cli("vms", "list", "--json")
    assert no_node.returncode == 3
    assert json.loads(no_node.stdout)["error"] == "no_node"
    assert "no node running" in no_node.stderr.decode()
