"""`Gates`' raw ports over a fake router: which addresses a raw gate may hold, what the
router is asked to attach and detach, and that the pair really carries frames."""

from __future__ import annotations

import os
from ipaddress import IPv4Address

import pytest
import trio

from golem_actor.adapters.vpn_gate import AddressBusy, GateError, GatePort, Gates
from golem_actor.domain.vpn.networks import VpnNetwork, add_address, new_network


class FakeRouter:
    def __init__(self, *, refuse: bool = False) -> None:
        self.refuse = refuse
        self.fds: dict[str, int] = {}
        self.ports: dict[str, GatePort] = {}
        self.detached: list[str] = []

    async def attach_port(self, port: GatePort, fd: int) -> None:
        if self.refuse:
            os.close(fd)  # the router owns the fd even when it refuses
            raise RuntimeError("no such network in the router")
        self.fds[port.port_id] = fd
        self.ports[port.port_id] = port

    async def detach_port(self, port_id: str) -> None:
        self.detached.append(port_id)
        fd = self.fds.pop(port_id, None)
        if fd is not None:
            os.close(fd)


def network() -> VpnNetwork:
    made = new_network("n1", "owner", "10.8.0.0/24")
    return add_address(made, "10.8.0.5")


async def test_a_raw_gate_is_a_port_of_its_own_that_carries_frames() -> None:
    router = FakeRouter()
    gates = Gates(router)
    raw = await gates.open_raw(network(), IPv4Address("10.8.0.5"))
    port = router.ports["raw:n1:10.8.0.5"]
    assert (port.network_id, port.ip, port.mac.hex()) == (
        "n1",
        IPv4Address("10.8.0.5"),
        "a0130a080005",
    )
    frame = b"\x90\x13\x0a\x08\x00\x02" + b"\xa0\x13\x0a\x08\x00\x05" + b"\x08\x00" + b"x" * 50
    await raw.sock.send(frame)
    assert os.read(router.fds[port.port_id], 2048) == frame  # one datagram, one frame
    os.write(router.fds[port.port_id], b"reply-frame")
    with trio.fail_after(1):
        assert await raw.sock.recv(2048) == b"reply-frame"
    with pytest.raises(GateError, match="open already"):
        await gates.open_raw(network(), IPv4Address("10.8.0.5"))
    await gates.close_raw(raw)
    assert router.detached == ["raw:n1:10.8.0.5"]
    assert raw.sock.fileno() == -1
    again = await gates.open_raw(network(), IPv4Address("10.8.0.5"))  # free again
    await gates.close_network("n1")
    assert router.detached == ["raw:n1:10.8.0.5", "raw:n1:10.8.0.5"]
    assert again.sock.fileno() == -1


async def test_a_raw_gate_holds_only_an_address_of_the_requestor() -> None:
    router = FakeRouter()
    with pytest.raises(GateError, match="not an address of the requestor"):
        await Gates(router).open_raw(network(), IPv4Address("10.8.0.6"))
    assert router.ports == {}


async def test_the_first_address_has_one_holder() -> None:
    router = FakeRouter()
    gates = Gates(router)
    raw = await gates.open_raw(network(), IPv4Address("10.8.0.1"))  # no TCP gate open
    assert router.ports["raw:n1:10.8.0.1"].mac.hex() == "a0130a080001"
    with pytest.raises(AddressBusy, match=r"raw gate holds 10\.8\.0\.1"):
        await gates.connect(network(), IPv4Address("10.8.0.2"), 22)
    with pytest.raises(AddressBusy, match="open already"):
        await gates.open_raw(network(), IPv4Address("10.8.0.1"))
    await gates.close_raw(raw)


async def test_a_port_the_router_refuses_leaves_nothing_behind() -> None:
    gates = Gates(FakeRouter(refuse=True))
    with pytest.raises(RuntimeError):
        await gates.open_raw(network(), IPv4Address("10.8.0.5"))
    ok = FakeRouter()
    gates.router = ok
    raw = await gates.open_raw(network(), IPv4Address("10.8.0.5"))  # not "open already"
    await gates.close_raw(raw)
    assert gates.connections("n1") == []
    await gates.aclose()
