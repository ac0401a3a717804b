"""SIGKILL of one VM's QEMU under a paying node: seen within the check interval, reported
`stopped` with the reason (never `running` meanwhile), its disk and data kept, and `start`
brings it back; the stream monitor neither restarts it nor counts it as stopped for
payment, and the other VM on the node never notices.

The node runs its own local chain (payments `local`), with the stream monitor every
second, so several monitor rounds pass while the VM is down.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import trio
from node_helpers import NodeProcess, free_block, free_port, running, ssh

from golem_actor.adapters.guest import GuestImage

from .invariants import check_world, listing, qemu_owners, settle

CHECK_INTERVAL = 5.0  # vm_lifecycle's look at the backend (supervisors/parts.py)
SEEN_WITHIN = CHECK_INTERVAL + 2.0  # one look, plus its own time on a loaded host
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


async def rent(
    client: httpx.AsyncClient, node: NodeProcess, name: str, public: str
) -> dict[str, Any]:
    opened = await node.cli("streams", "open", "--rate", str(RATE), "--seconds", "3600", "--json")
    assert opened.returncode == 0, opened.stderr.decode()
    body = {"name": name, "size": "small", "ssh_key": public}
    created = await client.post(
        f"{node.url}/vms", json={**body, "stream_id": json.loads(opened.stdout)["stream_id"]}
    )
    assert created.status_code == 200, created.text
    return dict(created.json())


async def test_a_killed_qemu_is_reported_stopped_and_starts_again_with_its_data(
    node: NodeProcess, ssh_keypair: tuple[Path, str]
) -> None:
    key, public = ssh_keypair
    async with httpx.AsyncClient(timeout=200) as client:
        victim = await rent(client, node, "victim", public)
        bystander = await rent(client, node, "bystander", public)
        wrote = await ssh(key, victim["ssh_port"], "root", "echo kept > /root/keep.txt; sync")
        assert wrote.returncode == 0, wrote.stderr.decode()
        disk = node.data / "vms" / victim["id"] / "disk.qcow2"

        (qemu,) = [q for q in node.qemus() if psutil.Process(q.pid).cwd().endswith(victim["id"])]
        qemu.kill()
        killed = trio.current_time()
        seen: list[str] = []
        with trio.fail_after(SEEN_WITHIN):
            while not seen or seen[-1] != "stopped":
                view = (await listing(client, node))[victim["id"]]
                seen.append(view["status"])
                await trio.sleep(0.2)
        print(f"faults: QEMU SIGKILL seen in {trio.current_time() - killed:.1f} s")
        assert set(seen) <= {"running", "stopped"}, seen  # nothing in between, no error
        assert view["error_message"].startswith("QEMU ended while the guest ran"), view
        assert disk.exists()
        assert (await ssh(key, victim["ssh_port"], "root", "true")).returncode != 0

        await trio.sleep(4)  # four stream monitor rounds over a stopped, paying VM
        vms = await listing(client, node)
        assert vms[victim["id"]]["status"] == "stopped"  # not restarted behind the tenant
        monitor = node.data / "state" / "stream_monitor.json"  # written once it stops a VM
        assert not monitor.exists() or victim["id"] not in monitor.read_text()
        assert "stopping a VM whose stream stopped paying" not in node.log_events()
        assert vms[bystander["id"]]["status"] == "running"
        assert qemu_owners(node) == [bystander["id"]]
        assert await check_world(client, node, key, vms) == []

        started = await client.post(f"{node.url}/vms/{victim['id']}/start")
        assert (started.status_code, started.json()["status"]) == (200, "running"), started.text
        assert started.json()["error_message"] is None
        assert started.json()["ssh_port"] == victim["ssh_port"]
        back = await ssh(key, victim["ssh_port"], "root", "cat /root/keep.txt")
        assert back.stdout.decode() == "kept\n", back.stderr.decode()
        await trio.sleep(2)  # the monitor leaves the paying VM running
        vms = await settle(client, node)
        assert {vm["status"] for vm in vms.values()} == {"running"}
        assert await check_world(client, node, key, vms) == []
        for vm_id in vms:
            assert (await client.delete(f"{node.url}/vms/{vm_id}")).status_code == 200
