"""The data directory's filesystem full: clear errors, no half-written state, recovery.

The node's data directory is a small tmpfs the test mounts (root is needed, as for the
other QEMU tests). With one VM running, a file fills the filesystem; then a create and a
stop are refused with an error that says the disk is full (a create may be refused by the
books, 409 naming storage, when a host-load reading saw the disk full first), the node
keeps answering and the running VM keeps serving SSH, and every state file still parses
and still says what was true before. Once the file is gone, the same requests succeed,
without a restart.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import trio
from node_helpers import NodeProcess, free_block, free_port, running, ssh

from golem_actor.adapters.guest import GuestImage

from .invariants import check_world, listing, settle, state_files

# Room for two VMs of 1 GiB storage each (the resource tracker books against the
# filesystem's size; their sparse disks use a few MB), filled in a second or two.
SIZE_MB = 2100
READING = 1  # seconds between the node's host-load readings


@contextlib.contextmanager
def small_filesystem(where: Path) -> Iterator[Path]:
    where.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs", str(where)], check=True
    )
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
async def node(tmp_path: Path, test_guest: GuestImage) -> AsyncIterator[NodeProcess]:
    with small_filesystem(tmp_path / "mnt") as mount:
        process = NodeProcess(
            data=mount / "node",
            port=free_port(),
            ports=free_block(4),
            guest_cache=test_guest.kernel.parent.parent,
            extra_env=(
                ("GOLEM_PROVIDER_MIN_STORAGE_GB", "1"),
                # The storage threshold follows host readings: a full disk keeps the offer
                # at zero until the first reading after space is back.
                ("GOLEM_PROVIDER_RESOURCE_MONITOR_INTERVAL_SECONDS", str(READING)),
            ),
        )
        async with running(process):
            yield process


def fill(path: Path) -> None:
    """Write `path` until the filesystem is full (unbuffered: nothing left to flush)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):  # whole MiBs, then what is left
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)


async def test_a_full_data_directory_refuses_clearly_and_recovers(
    node: NodeProcess, ssh_keypair: tuple[Path, str]
) -> None:
    key, public = ssh_keypair
    body = {"resources": {"cpu": 1, "memory": 1, "storage": 1}, "ssh_key": public}
    async with httpx.AsyncClient(timeout=200) as client:
        created = await client.post(f"{node.url}/vms", json={**body, "name": "before"})
        assert created.status_code == 200, created.text
        vm = created.json()
        registry = (node.data / "state" / "vms.json").read_bytes()
        pid = node.pid()

        filler = node.data / "filler"
        await trio.to_thread.run_sync(fill, filler)
        try:
            refused = await client.post(f"{node.url}/vms", json={**body, "name": "during"})
            print(f"faults: create on a full disk: {refused.status_code} {refused.text}")
            # Two right answers, by which comes first: the host-load reading (every
            # second, so one may fall inside the fill) sees the disk full and the books
            # refuse with 409 naming storage, or the state write fails and it is 503
            detail = refused.json()["detail"].lower()
            if refused.status_code == 409:
                assert "not enough storage" in detail, refused.text
                assert "host storage at" in detail, refused.text
            else:
                assert refused.status_code == 503, refused.text
                assert "space" in detail, refused.text
            stop = await client.post(f"{node.url}/vms/{vm['id']}/stop")
            print(f"faults: stop on a full disk: {stop.status_code} {stop.text}")
            assert stop.status_code == 503, stop.text
            assert "space" in stop.json()["detail"].lower(), stop.text

            vms = await listing(client, node)  # still answering, nothing changed
            assert {i: v["status"] for i, v in vms.items()} == {vm["id"]: "running"}
            login = await ssh(key, vm["ssh_port"], "root", "hostname")
            assert login.stdout.decode().strip() == "before", login.stderr.decode()
            assert (node.data / "state" / "vms.json").read_bytes() == registry
            assert state_files(node) == []
        finally:
            filler.unlink()

        await trio.sleep(2 * READING)  # a reading of the disk with space again
        again = await client.post(f"{node.url}/vms", json={**body, "name": "after"})
        assert again.status_code == 200, again.text
        stopped = await client.post(f"{node.url}/vms/{vm['id']}/stop")
        assert (stopped.status_code, stopped.json()["status"]) == (200, "stopped")
        assert node.pid() == pid  # recovered without a restart
        vms = await settle(client, node)
        assert await check_world(client, node, key, vms) == []
        for vm_id in vms:
            assert (await client.delete(f"{node.url}/vms/{vm_id}")).status_code == 200
