"""The vpn_router's data plane through its address: fd ports over socketpairs, and a VM
NIC over unix datagram socket paths (a stand-in for QEMU's `-netdev dgram`)."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio
from vpn_frames import arp_request, dhcp_request_frame, ip, ping_frame, udp_frame

from actors.vpn_router import (
    AddNode,
    AttachPort,
    CreateNetwork,
    DetachPort,
    GetNetwork,
    GetVpnStats,
    RemoveNode,
    VmsGone,
    VmsKnown,
    VpnMsg,
    VpnRouter,
)
from actors.vpn_router.ports import NIC_QEMU_SOCKET
from golem_actor.domain.tenancy import Caller
from golem_actor.domain.vpn.addressing import guest_mac, nic_mac, router_mac
from golem_actor.domain.vpn.dhcp import DhcpType, parse_dhcp
from golem_actor.domain.vpn.ipv4 import parse_ipv4, parse_udp
from golem_actor.kernel import Address, ChildSpec, Inbox, Supervisor
from golem_actor.state_store import StateStore

ALICE = Caller(tenant="a" * 64)


@asynccontextmanager
async def router(state: Path, vms: Path | None = None) -> AsyncIterator[Address[VpnMsg]]:
    vm_dir = None if vms is None else (lambda vm_id: vms / vm_id)
    spec = ChildSpec("vpn_router", lambda: VpnRouter(store=StateStore(state), vm_dir=vm_dir))
    tree = Supervisor("root", [spec], intensity=3, period=60.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(tree.run, Inbox("root"))
        yield tree.address_of(spec)
        nursery.cancel_scope.cancel()


async def receive(sock: socket.socket, seconds: float = 2.0) -> bytes:
    with trio.fail_after(seconds):
        while True:
            try:
                return sock.recv(65536)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(sock)


async def nothing(sock: socket.socket, seconds: float = 0.3) -> bool:
    await trio.sleep(seconds)
    try:
        sock.recv(65536)
    except BlockingIOError:
        return True
    return False


async def attach(
    vpn: Address[VpnMsg], endpoint: str, end: socket.socket, network_id: str, ip: str
) -> None:
    await vpn.call(AttachPort(endpoint=endpoint, fd=end.detach(), network_id=network_id, ip=ip))


def pair() -> tuple[socket.socket, socket.socket]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    return ours, theirs


async def test_two_fd_ports_talk_and_a_spoofed_frame_is_dropped_and_counted(
    tmp_path: Path,
) -> None:
    async with router(tmp_path) as vpn:
        net = await vpn.call(CreateNetwork(caller=ALICE, ip="10.8.0.0/24"))
        a, a_end = pair()
        b, b_end = pair()
        await vpn.call(
            AttachPort(endpoint="a", fd=a_end.detach(), network_id=net.id, ip="10.8.0.5")
        )
        await vpn.call(
            AttachPort(endpoint="b", fd=b_end.detach(), network_id=net.id, ip="10.8.0.6")
        )

        a.send(arp_request(ip("10.8.0.5"), ip("10.8.0.6")))
        reply = await receive(a)
        assert reply[:6] == guest_mac(ip("10.8.0.5"))
        assert reply[6:12] == guest_mac(ip("10.8.0.6"))

        frame = udp_frame(ip("10.8.0.5"), ip("10.8.0.6"), b"over the fabric")
        for _ in range(100):  # a burst: one batch, all delivered
            a.send(frame)
        for _ in range(100):
            assert await receive(b) == frame

        a.send(ping_frame(ip("10.8.0.5"), ip("10.8.0.1"), router_mac(ip("10.8.0.1"))))
        echo = await receive(a)
        assert echo[6:12] == router_mac(ip("10.8.0.1"))

        a.send(udp_frame(ip("10.8.0.99"), ip("10.8.0.6"), src_mac=guest_mac(ip("10.8.0.5"))))
        assert await nothing(b)
        stats = await vpn.call(GetVpnStats())
        assert stats.drops["spoofed"] == 1
        assert stats.members[f"a/{net.id}"]["drop_spoofed"] == 1
        assert stats.members[f"b/{net.id}"]["tx_frames"] == 100
        assert stats.totals["frames_out"] >= 102
        assert set(stats.endpoints) == {"a", "b"}

        await vpn.call(DetachPort("b"))  # traffic to it stops at once
        a.send(frame)
        assert await nothing(b)
        assert set((await vpn.call(GetVpnStats())).endpoints) == {"a"}


async def test_networks_with_the_same_range_never_see_each_other(tmp_path: Path) -> None:
    async with router(tmp_path) as vpn:
        one = await vpn.call(CreateNetwork(caller=ALICE, ip="10.9.0.0/24"))
        two = await vpn.call(CreateNetwork(caller=ALICE, ip="10.9.0.0/24"))
        a, a_end = pair()
        c, c_end = pair()
        await vpn.call(
            AttachPort(endpoint="a", fd=a_end.detach(), network_id=one.id, ip="10.9.0.5")
        )
        await vpn.call(
            AttachPort(endpoint="c", fd=c_end.detach(), network_id=two.id, ip="10.9.0.6")
        )
        a.send(arp_request(ip("10.9.0.5"), ip("10.9.0.6")))
        a.send(udp_frame(ip("10.9.0.5"), ip("10.9.0.6")))
        assert await nothing(a)
        assert await nothing(c)
        assert (await vpn.call(GetVpnStats())).drops["unknown_destination"] == 2


async def test_a_full_peer_queue_waits_and_then_drains(tmp_path: Path) -> None:
    async with router(tmp_path) as vpn:
        net = await vpn.call(CreateNetwork(caller=ALICE, ip="10.7.0.0/24"))
        a, a_end = pair()
        b, b_end = pair()
        await vpn.call(
            AttachPort(endpoint="a", fd=a_end.detach(), network_id=net.id, ip="10.7.0.5")
        )
        await vpn.call(
            AttachPort(endpoint="b", fd=b_end.detach(), network_id=net.id, ip="10.7.0.6")
        )
        frames = [udp_frame(ip("10.7.0.5"), ip("10.7.0.6"), b"%d" % i) for i in range(150)]
        for frame in frames:  # b reads nothing meanwhile: its socket fills, then its queue
            with trio.fail_after(2):
                while True:
                    try:
                        a.send(frame)
                        break
                    except BlockingIOError:
                        await trio.sleep(0.01)
        await trio.sleep(0.2)
        got = [await receive(b) for _ in range(150)]
        assert got == frames  # nothing lost or reordered: the queue (256) held the rest


async def test_a_vm_nic_over_socket_paths_gets_dhcp_and_leaves_on_delete(tmp_path: Path) -> None:
    vms = tmp_path / ("long" * 20) / "vms"  # longer than a socket address can hold
    (vms / "vm-1").mkdir(parents=True)
    assert len(str(vms / "vm-1" / "vpn-router.sock")) > 108
    directory = os.open(vms / "vm-1", os.O_PATH)
    qemu = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # what QEMU binds (relative)
    qemu.setblocking(False)
    qemu.bind(f"/proc/self/fd/{directory}/{NIC_QEMU_SOCKET}")
    mac = nic_mac("vm-1")
    async with router(tmp_path / "state", vms) as vpn:
        net = await vpn.call(CreateNetwork(caller=ALICE, ip="10.6.0.0/24"))
        await vpn.call(
            AddNode(caller=ALICE, network_id=net.id, node_id="vm-1", ip="10.6.0.7", vm=True)
        )
        with trio.fail_after(5):
            while "vm-1" not in (await vpn.call(GetVpnStats())).endpoints:  # noqa: ASYNC110
                await trio.sleep(0.05)
        target = f"/proc/self/fd/{directory}/vpn-router.sock"
        qemu.sendto(dhcp_request_frame(mac, DhcpType.DISCOVER), target)
        offer = await receive(qemu)
        header = parse_ipv4(offer)
        assert header is not None
        udp = parse_udp(offer, header)
        assert udp is not None
        message = parse_dhcp(offer, udp.payload_offset, udp.end)
        assert message is not None
        assert message.message_type is DhcpType.OFFER
        assert message.yiaddr == ip("10.6.0.7").packed
        assert message.option_address(1) == ip("255.255.255.0").packed
        assert offer.startswith(mac)

        # another socket that reaches the path cannot inject: the router's is connected
        intruder = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            intruder.sendto(dhcp_request_frame(mac, DhcpType.DISCOVER), target)
            refused = False
        except OSError:
            refused = True
        intruder.close()
        assert refused

        await vpn.call(RemoveNode(ALICE, net.id, "vm-1"))  # leaving: no answer any more
        assert "vm-1" not in (await vpn.call(GetVpnStats())).endpoints

        await vpn.call(
            AddNode(caller=ALICE, network_id=net.id, node_id="vm-1", ip="10.6.0.8", vm=True)
        )
        await vpn.cast(VmsGone(("vm-1",)))
        stats = await vpn.call(GetVpnStats())
        assert "vm-1" not in stats.endpoints
        assert not stats.members
    qemu.close()
    os.close(directory)


async def test_a_nic_survives_a_router_crash_and_a_qemu_restart(tmp_path: Path) -> None:
    vms = tmp_path / "vms"
    (vms / "vm-2").mkdir(parents=True)
    qemu_path = vms / "vm-2" / NIC_QEMU_SOCKET
    router_path = str(vms / "vm-2" / "vpn-router.sock")
    mac = nic_mac("vm-2")

    def start_qemu() -> socket.socket:
        qemu_path.unlink(missing_ok=True)  # as QEMU does: unlink, then bind
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(str(qemu_path))
        return sock

    async def offered(sock: socket.socket) -> bool:
        sock.sendto(dhcp_request_frame(mac, DhcpType.DISCOVER), router_path)
        reply = await receive(sock, 3.0)
        return reply.startswith(mac)

    qemu = start_qemu()
    spec = ChildSpec(
        "vpn_router",
        lambda: VpnRouter(store=StateStore(tmp_path / "state"), vm_dir=lambda v: vms / v),
    )
    tree = Supervisor("root", [spec], intensity=3, period=60.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(tree.run, Inbox("root"))
        vpn = tree.address_of(spec)
        net = await vpn.call(CreateNetwork(caller=ALICE, ip="10.5.0.0/24"))
        await vpn.call(
            AddNode(caller=ALICE, network_id=net.id, node_id="vm-2", ip="10.5.0.9", vm=True)
        )
        with trio.fail_after(5):
            while "vm-2" not in (await vpn.call(GetVpnStats())).endpoints:  # noqa: ASYNC110
                await trio.sleep(0.05)
        assert await offered(qemu)

        vpn.try_cast("not a message")  # type: ignore[arg-type]  # the router crashes
        with trio.fail_after(5):
            while "vm-2" not in (await vpn.call(GetVpnStats())).endpoints:  # noqa: ASYNC110
                await trio.sleep(0.05)
        assert await offered(qemu)  # the next incarnation bound the same path again

        qemu.close()
        qemu = start_qemu()  # the VM restarted: a new socket on the same path
        await trio.sleep(1.5)  # a NIC tick notices it
        assert await offered(qemu)
        nursery.cancel_scope.cancel()
    qemu.close()


async def test_memberships_of_vms_the_lifecycle_does_not_know_go(tmp_path: Path) -> None:
    async with router(tmp_path) as vpn:
        net = await vpn.call(CreateNetwork(caller=ALICE, ip="10.4.0.0/24"))
        for node_id, ip, vm in (
            ("vm-kept", ".2", True),
            ("vm-gone", ".3", True),
            ("0xabc", ".4", False),
        ):
            await vpn.call(
                AddNode(caller=ALICE, network_id=net.id, node_id=node_id, ip=f"10.4.0{ip}", vm=vm)
            )
        await vpn.cast(VmsKnown(frozenset({"vm-kept"})))
        network = await vpn.call(GetNetwork(ALICE, net.id))
        assert sorted(n.node_id for n in network.nodes) == ["0xabc", "vm-kept"]  # not VMs: kept
