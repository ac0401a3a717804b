"""The gates' ports on the real vpn_router (RouterGatePorts): attached through the
router's address, kept across its restarts, closed on detach or refusal."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio
from test_vpn_fabric import nothing, pair, receive
from vpn_frames import ip, udp_frame

from actors.vpn_router import CreateNetwork, GetVpnStats, NetworkNotFound, VpnMsg, VpnRouter
from actors.vpn_router.gate_ports import RouterGatePorts
from actors.vpn_router.kept import KeptPorts
from golem_actor.adapters.vpn_gate import GatePort
from golem_actor.domain.tenancy import Caller
from golem_actor.domain.vpn.addressing import guest_mac
from golem_actor.kernel import Address, ChildSpec, Inbox, Supervisor
from golem_actor.state_store import StateStore

ALICE = Caller(tenant="a" * 64)


@asynccontextmanager
async def router(state: Path) -> AsyncIterator[tuple[Supervisor, Address[VpnMsg]]]:
    factory = partial(VpnRouter, store=StateStore(state), kept=KeptPorts())
    spec = ChildSpec("vpn_router", factory)
    tree = Supervisor("root", [spec], intensity=3, period=60.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(tree.run, Inbox("root"))
        yield tree, tree.address_of(spec)
        nursery.cancel_scope.cancel()


def port(network_id: str, name: str, address: str) -> GatePort:
    return GatePort(network_id, f"raw:{network_id}:{name}", ip(address), guest_mac(ip(address)))


def is_closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


async def test_gate_ports_survive_a_router_restart(tmp_path: Path) -> None:
    async with router(tmp_path) as (tree, vpn):
        ports = RouterGatePorts(vpn)
        net = await vpn.call(CreateNetwork(caller=ALICE, ip="10.9.0.0/24"))
        a, a_end = pair()
        b, b_end = pair()
        await ports.attach_port(port(net.id, "a", "10.9.0.5"), a_end.detach())
        await ports.attach_port(port(net.id, "b", "10.9.0.6"), b_end.detach())
        frame = udp_frame(ip("10.9.0.5"), ip("10.9.0.6"), b"before")
        a.send(frame)
        assert await receive(b) == frame

        first = tree.child_actor("vpn_router")
        vpn.try_cast("not a message")  # type: ignore[arg-type]  # crashes the actor
        stats = await vpn.call(GetVpnStats())  # the next incarnation
        assert tree.child_actor("vpn_router") is not first
        assert set(stats.endpoints) == {f"raw:{net.id}:a", f"raw:{net.id}:b"}
        frame = udp_frame(ip("10.9.0.5"), ip("10.9.0.6"), b"after the restart")
        a.send(frame)
        assert await receive(b) == frame

        await ports.detach_port(f"raw:{net.id}:b")
        assert await nothing(b)
        with pytest.raises(ConnectionRefusedError):  # both router-side fds are closed
            b.send(b"x")
        await ports.detach_port("never attached")  # ignored


async def test_a_refused_port_has_its_fd_closed(tmp_path: Path) -> None:
    async with router(tmp_path) as (_, vpn):
        ports = RouterGatePorts(vpn)
        theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)[1]
        fd = theirs.detach()
        with pytest.raises(NetworkNotFound):
            await ports.attach_port(port("0" * 32, "a", "10.9.0.5"), fd)
        assert is_closed(fd)
