"""A VM whose offered VPN address changes gets its VPN link bounced, through the node's
own tree: the vpn_router names it (once its NIC is open, or at once when it has no
address left), vm_lifecycle takes the link down and up through the backend. A guest's
DHCP client then asks again at once instead of at its lease's renewal."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import trio
from lifecycle_harness import OPERATOR, running_node
from test_vm_lifecycle import create

from actors.vm_lifecycle import StopVm
from actors.vpn_router import AddNode, CreateNetwork, GetVpnStats, RemoveNode
from actors.vpn_router.ports import NIC_QEMU_SOCKET
from golem_actor.adapters.backend.memory import MemoryBackend
from golem_actor.domain.tenancy import Caller
from golem_actor.domain.vm_machine import VmStatus

ALICE = Caller(tenant="a" * 64)


def bounces(backend: MemoryBackend, vm_id: str) -> list[str]:
    return [op for op, vm in backend.calls if vm == vm_id and op.startswith("vpn_link")]


async def bounced(backend: MemoryBackend, vm_id: str, times: int) -> None:
    """Until the link went down and came back up `times` times in all (a NIC tick and a
    1 s bounce: about 2 s; the bound leaves room for a loaded machine)."""
    with trio.fail_after(15):
        while bounces(backend, vm_id) != ["vpn_link_down", "vpn_link_up"] * times:  # noqa: ASYNC110
            await trio.sleep(0.05)


def qemu_end(data: Path, vm_id: str) -> socket.socket:
    """QEMU's end of the VPN NIC, where the QEMU backend's VM directory has it."""
    directory = data / "vms" / vm_id
    directory.mkdir(parents=True)
    fd = os.open(directory, os.O_PATH)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(f"/proc/self/fd/{fd}/{NIC_QEMU_SOCKET}")
    os.close(fd)
    return sock


async def test_joins_moves_and_the_last_leave_bounce_the_link(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        vm_id = (await node.lifecycle.call(create("web"))).vm_id
        await node.wait_status(vm_id, VmStatus.RUNNING)
        qemu = qemu_end(tmp_path, vm_id)
        vpn = node.wiring.vpn_router
        made = [await vpn.call(CreateNetwork(caller=ALICE, ip=f"10.{i}.0.0/24")) for i in (6, 7)]
        (low, low_net), (high, high_net) = sorted((n.id, n.network.split(".")[1]) for n in made)
        low_ip, high_ip = f"10.{low_net}.0.7", f"10.{high_net}.0.7"

        # The first join: bounced once the router listens on the NIC (within its 1 s tick).
        await vpn.call(AddNode(caller=ALICE, network_id=high, node_id=vm_id, ip=high_ip, vm=True))
        await bounced(node.backend, vm_id, 1)
        assert vm_id in (await vpn.call(GetVpnStats())).endpoints

        # A network of lower id: DHCP now offers its address, so the guest must ask again.
        await vpn.call(AddNode(caller=ALICE, network_id=low, node_id=vm_id, ip=low_ip, vm=True))
        await bounced(node.backend, vm_id, 2)

        # Leaving the network of higher id changes nothing the guest is offered.
        await vpn.call(RemoveNode(ALICE, high, vm_id))
        await trio.sleep(1.5)
        assert bounces(node.backend, vm_id) == ["vpn_link_down", "vpn_link_up"] * 2

        # Leaving the last one: bounced at once, so the guest drops its address.
        await vpn.call(RemoveNode(ALICE, low, vm_id))
        await bounced(node.backend, vm_id, 3)

        # A stopped VM has no link to bounce: its guest asks when it boots.
        await node.lifecycle.call(StopVm(OPERATOR, vm_id))
        await node.wait_status(vm_id, VmStatus.STOPPED)
        await vpn.call(
            AddNode(caller=ALICE, network_id=low, node_id=vm_id, ip=f"10.{low_net}.0.8", vm=True)
        )
        await trio.sleep(1.5)
        assert bounces(node.backend, vm_id) == ["vpn_link_down", "vpn_link_up"] * 3
        qemu.close()


async def test_a_failed_bounce_still_brings_the_link_up(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        vm_id = (await node.lifecycle.call(create("web"))).vm_id
        await node.wait_status(vm_id, VmStatus.RUNNING)
        vpn = node.wiring.vpn_router
        net = (await vpn.call(CreateNetwork(caller=ALICE, ip="10.6.0.0/24"))).id
        await vpn.call(AddNode(caller=ALICE, network_id=net, node_id=vm_id, ip="10.6.0.7", vm=True))
        node.backend.fail_next["vpn_link_down"] = "QMP 'set_link' failed: timeout"
        await vpn.call(RemoveNode(ALICE, net, vm_id))  # no NIC needed: told at once
        await bounced(node.backend, vm_id, 1)  # the down failed, the up still came


async def test_a_restarted_node_brings_up_links_a_crash_may_have_left_down(
    tmp_path: Path,
) -> None:
    backend: MemoryBackend | None = None
    async with running_node(tmp_path) as node:
        vm_id = (await node.lifecycle.call(create("web"))).vm_id
        await node.wait_status(vm_id, VmStatus.RUNNING)
        backend = node.backend
    assert backend is not None
    backend.calls.clear()
    async with running_node(tmp_path, backend) as node:
        await node.wait_status(vm_id, VmStatus.RUNNING)
        with trio.fail_after(5):
            while bounces(backend, vm_id) != ["vpn_link_up"]:  # noqa: ASYNC110
                await trio.sleep(0.05)
