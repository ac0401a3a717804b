"""Renting a VM end to end: a real node process, real QEMU guests, real SSH.

The journey of the issue's acceptance: create (sync and async) with a fresh ed25519 key,
poll until running, log in as root and ubuntu and check CPUs and memory, stop (SSH
refused), start (SSH again), delete (port back in the pool, QEMU gone, disk removed).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
from node_helpers import NodeProcess, guest_node, running, ssh, wait_status

from golem_actor.adapters.guest import GuestImage

pytestmark = pytest.mark.e2e

GIB_KB = 1024 * 1024


@pytest.fixture
async def node(tmp_path: Path, test_guest: GuestImage) -> AsyncIterator[NodeProcess]:
    async with running(guest_node(tmp_path, test_guest.kernel.parent.parent, ports=8)) as process:
        yield process


def mem_total_kb(meminfo: str) -> int:
    line = next(row for row in meminfo.splitlines() if row.startswith("MemTotal:"))
    return int(line.split()[1])


async def test_rent_log_in_stop_start_delete(
    node: NodeProcess, ssh_keypair: tuple[Path, str]
) -> None:
    key, public = ssh_keypair
    async with httpx.AsyncClient(timeout=200) as client:
        created = await client.post(
            f"{node.url}/vms",
            json={
                "name": "journey",
                "resources": {"cpu": 2, "memory": 1, "storage": 10},
                "ssh_key": public,
            },
        )
        assert created.status_code == 200, created.text
        vm = created.json()
        assert vm["status"] == "running"  # only once SSH answers through the public port
        port = vm["ssh_port"]
        assert port in node.ports

        for user in ("root", "ubuntu"):
            result = await ssh(key, port, user, "nproc; cat /proc/meminfo; id -un")
            assert result.returncode == 0, result.stderr.decode()
            lines = result.stdout.decode()
            assert lines.splitlines()[0] == "2"
            assert 0.85 * GIB_KB < mem_total_kb(lines) <= GIB_KB
            assert lines.splitlines()[-1] == user

        access = (await client.get(f"{node.url}/vms/{vm['id']}/access")).json()
        assert (access["ssh_port"], access["vm_id"]) == (port, vm["id"])

        stopped = await client.post(f"{node.url}/vms/{vm['id']}/stop")
        assert (stopped.status_code, stopped.json()["status"]) == (200, "stopped")
        refused = await ssh(key, port, "root", "true")
        assert refused.returncode != 0
        assert b"Connection refused" in refused.stderr
        assert len(node.qemus()) == 0  # powered off

        started = await client.post(f"{node.url}/vms/{vm['id']}/start")
        assert (started.status_code, started.json()["status"]) == (200, "running")
        assert started.json()["ssh_port"] == port
        again = await ssh(key, port, "root", "echo back")
        assert again.stdout.decode().strip() == "back", again.stderr.decode()

        deleted = await client.delete(f"{node.url}/vms/{vm['id']}")
        assert deleted.status_code == 200, deleted.text
        assert node.qemus() == []
        assert not (node.data / "vms" / vm["id"]).exists()  # the disk went with it
        state = (await client.get(f"{node.url}/admin/state", headers=node.operator)).json()
        assert (state["vms"], state["capacity"]["vms"]) == ([], 0)
        # The port is back in the pool: the next VM gets it.
        next_vm = await client.post(
            f"{node.url}/vms?async=true",
            json={"name": "next", "size": "small", "ssh_key": public},
        )
        assert next_vm.status_code == 202
        view = (await client.get(f"{node.url}/vms/{next_vm.json()['vm_id']}")).json()
        assert view["ssh_port"] == port
        await client.delete(f"{node.url}/vms/{next_vm.json()['vm_id']}")


async def test_async_create_as_the_requestor_does_it(
    node: NodeProcess, ssh_keypair: tuple[Path, str]
) -> None:
    key, public = ssh_keypair
    async with httpx.AsyncClient(timeout=60) as client:
        created = await client.post(
            f"{node.url}/vms?async=true",
            json={
                "name": "requestor",
                "resources": {"cpu": 1, "memory": 1, "storage": 10},
                "ssh_key": public,
            },
        )
        assert created.status_code == 202, created.text
        vm_id = created.json()["vm_id"]
        with trio.fail_after(180):  # the requestor polls every 2 s, ignoring errors
            await wait_status(client, node, vm_id, "running")
        access = (await client.get(f"{node.url}/vms/{vm_id}/access")).json()
        result = await ssh(key, access["ssh_port"], "ubuntu", "nproc")
        assert result.stdout.decode().strip() == "1", result.stderr.decode()
        job = (await client.get(f"{node.url}/vms/jobs/{created.json()['job_id']}")).json()
        assert job["status"] == "ready"
        assert (await client.delete(f"{node.url}/vms/{vm_id}")).status_code == 200
        assert node.qemus() == []


async def test_sigkill_while_one_vm_runs_and_another_is_being_created(
    node: NodeProcess, ssh_keypair: tuple[Path, str]
) -> None:
    key, public = ssh_keypair
    async with httpx.AsyncClient(timeout=200) as client:
        first = (
            await client.post(
                f"{node.url}/vms",
                json={"name": "steady", "size": "small", "ssh_key": public},
            )
        ).json()
        assert first["status"] == "running"
        second = (
            await client.post(
                f"{node.url}/vms?async=true",
                json={"name": "halfway", "size": "small", "ssh_key": public},
            )
        ).json()
        await trio.sleep(0.3)  # the launch is under way
        assert (await client.get(f"{node.url}/vms/{second['vm_id']}")).json()[
            "status"
        ] == "creating"

        node.kill()  # SIGKILL: no cleanup of any kind
        await node.start()

        steady = await wait_status(client, node, first["id"], "running")
        assert steady["ssh_port"] == first["ssh_port"]  # adopted on the same port
        result = await ssh(key, first["ssh_port"], "root", "hostname")
        assert result.stdout.decode().strip() == "steady", result.stderr.decode()

        halfway = await wait_status(client, node, second["vm_id"], "running")  # completed
        result = await ssh(key, halfway["ssh_port"], "root", "hostname")
        assert result.stdout.decode().strip() == "halfway", result.stderr.decode()

        listed = (await client.get(f"{node.url}/vms", headers=node.operator)).json()
        assert sorted(v["id"] for v in listed) == sorted([first["id"], second["vm_id"]])
        assert len(node.qemus()) == 2  # no orphan QEMU
        assert first["ssh_port"] != halfway["ssh_port"]  # no port handed out twice
        assert "deleting a VM this node has no record of" not in node.log_events()
        # The books after the restart count each VM exactly once (not also as used memory).
        capacity = (await client.get(f"{node.url}/admin/state", headers=node.operator)).json()[
            "capacity"
        ]
        assert capacity["vms"] == 2
        assert capacity["allocated"] == {
            axis: sum(v["resources"][axis] for v in listed) for axis in ("cpu", "memory", "storage")
        }

        for vm_id in (first["id"], second["vm_id"]):
            assert (await client.delete(f"{node.url}/vms/{vm_id}")).status_code == 200
        assert node.qemus() == []
        assert (
            sorted(p.name for p in (node.data / "vms").iterdir() if not p.name.startswith("."))
            == []
        )
