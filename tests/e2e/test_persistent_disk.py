"""A rented VM keeps its data and its SSH host key, as a machine does.

A real node process and a real QEMU test guest: files written in ``/root`` and
``/home/ubuntu`` and the host key the requestor's ssh sees survive a stop/start, a SIGKILL
of the node with a restart (the running guest is adopted), and a stop/start through the
restarted node; ``df`` shows the requested storage under ``/root``; delete removes the disk.
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

STORAGE_GIB = 10  # the node's smallest accepted VM


@pytest.fixture
async def node(tmp_path: Path, test_guest: GuestImage) -> AsyncIterator[NodeProcess]:
    async with running(guest_node(tmp_path, test_guest.kernel.parent.parent)) as process:
        yield process


async def host_key(port: int) -> str:
    """The ed25519 host key a client is shown on ``port`` (as ``ssh-keyscan`` prints it)."""
    result = await trio.run_process(
        ["ssh-keyscan", "-T", "20", "-t", "ed25519", "-p", str(port), "127.0.0.1"],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    lines = [line for line in result.stdout.decode().splitlines() if " ssh-ed25519 " in line]
    assert len(lines) == 1, result.stderr.decode()
    return lines[0]


async def guest_view(key: Path, port: int) -> tuple[str, str]:
    """What the tenant finds: (root's file, ubuntu's file)."""
    as_root = await ssh(key, port, "root", "cat /root/keep.txt")
    assert as_root.returncode == 0, as_root.stderr.decode()
    as_ubuntu = await ssh(key, port, "ubuntu", "cat ~/keep.txt; stat -c %U ~/keep.txt")
    assert as_ubuntu.returncode == 0, as_ubuntu.stderr.decode()
    return as_root.stdout.decode(), as_ubuntu.stdout.decode()


async def test_files_and_host_key_survive_stop_start_and_node_restart(
    node: NodeProcess, ssh_keypair: tuple[Path, str]
) -> None:
    key, public = ssh_keypair
    async with httpx.AsyncClient(timeout=200) as client:
        created = await client.post(
            f"{node.url}/vms",
            json={
                "name": "keeper",
                "resources": {"cpu": 1, "memory": 1, "storage": STORAGE_GIB},
                "ssh_key": public,
            },
        )
        assert created.status_code == 200, created.text
        vm_id, port = created.json()["id"], created.json()["ssh_port"]

        wrote = await ssh(key, port, "root", "echo written-by-root > /root/keep.txt; df -k /root")
        assert wrote.returncode == 0, wrote.stderr.decode()
        size_kib = int(wrote.stdout.decode().splitlines()[-1].split()[1])
        assert size_kib >= 0.9 * STORAGE_GIB * 1024 * 1024, wrote.stdout.decode()
        wrote = await ssh(key, port, "ubuntu", "echo written-by-ubuntu > ~/keep.txt")
        assert wrote.returncode == 0, wrote.stderr.decode()
        expected = ("written-by-root\n", "written-by-ubuntu\nubuntu\n")
        assert await guest_view(key, port) == expected
        first_key = await host_key(port)

        async def stop_start() -> None:
            stopped = await client.post(f"{node.url}/vms/{vm_id}/stop")
            assert (stopped.status_code, stopped.json()["status"]) == (200, "stopped")
            assert node.qemus() == []  # the next boot is a fresh QEMU on the same disk
            started = await client.post(f"{node.url}/vms/{vm_id}/start")
            assert (started.status_code, started.json()["status"]) == (200, "running")

        await stop_start()
        assert await guest_view(key, port) == expected
        assert await host_key(port) == first_key

        node.kill()  # SIGKILL: the guest keeps running and the next node adopts it
        await node.start()
        assert (await wait_status(client, node, vm_id, "running"))["ssh_port"] == port
        assert await guest_view(key, port) == expected
        assert await host_key(port) == first_key

        await stop_start()  # the restarted node boots the VM again from its kept disk
        assert await guest_view(key, port) == expected
        assert await host_key(port) == first_key

        deleted = await client.delete(f"{node.url}/vms/{vm_id}")
        assert deleted.status_code == 200, deleted.text
        assert not (node.data / "vms" / vm_id).exists()  # the disk went with the VM
