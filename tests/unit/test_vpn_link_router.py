"""The vpn_router's links over in-memory streams: frames out in batches, frames in from a
peer, a drop (the member becomes UNLOCATED), and the reconnect with backoff."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import trio
import trio.testing
import trio_websocket
from structlog.testing import capture_logs
from vpn_frames import ip, udp_frame

from actors.vpn_router import AddNode, AttachPort, CreateNetwork, GetVpnStats, VpnMsg, VpnRouter
from actors.vpn_router.link_messages import GetLinkHosting, LinkFrames
from actors.vpn_router.links import (
    LinkDown,
    LinkSpec,
    WsChannel,
    accept_handshake,
    dial_handshake,
)
from golem_actor.domain.tenancy import Caller
from golem_actor.domain.vpn import link as wire
from golem_actor.domain.vpn.addressing import guest_mac, nic_mac
from golem_actor.kernel import Address, ChildSpec, Inbox, Supervisor
from golem_actor.state_store import StateStore

ALICE = Caller(tenant="a" * 64)
SECRET = "the-requestors-secret"
REMOTE_VM = "vm-remote"
LOCATION = "ws://peer.invalid/net-api/v1/net/peernet/link"


class Peer:
    """The other node's link route, in memory: accepts dials while `up`, keeps what it got."""

    def __init__(self) -> None:
        self.up = True
        self.dials = 0
        self.received: list[bytes] = []
        self.connection: trio_websocket.WebSocketConnection | None = None
        self.connected = trio.Event()
        self.hosts: frozenset[str] | None = None  # what it says it hosts (None: says nothing)

    async def dial(
        self, nursery: trio.Nursery, spec: LinkSpec
    ) -> trio_websocket.WebSocketConnection:
        self.dials += 1
        if not self.up:
            raise LinkDown("dial failed: connection refused")
        assert spec.target == "peernet"
        assert spec.secret == SECRET.encode()
        client_stream, server_stream = trio.testing.memory_stream_pair()
        nursery.start_soon(self._serve, nursery, server_stream)
        ws = await trio_websocket.wrap_client_stream(
            nursery,
            client_stream,  # type: ignore[arg-type]
            "peer",
            "/link",
        )
        await dial_handshake(WsChannel(ws), spec.secret, spec.target)
        return ws

    async def _serve(self, nursery: trio.Nursery, stream: trio.abc.Stream) -> None:
        request = await trio_websocket.wrap_server_stream(nursery, stream)
        ws = await request.accept()
        await accept_handshake(WsChannel(ws), SECRET.encode(), "peernet")
        if self.hosts is not None:
            await ws.send_message(wire.hosted_message(self.hosts))
        self.connection = ws
        self.connected.set()
        try:
            while True:
                message = await ws.get_message()
                assert isinstance(message, bytes)
                self.received.extend(wire.decode_batch(message)[0])
        except trio_websocket.ConnectionClosed:
            pass


@asynccontextmanager
async def router(state: Path, peer: Peer) -> AsyncIterator[Address[VpnMsg]]:
    spec = ChildSpec(
        "vpn_router", lambda: VpnRouter(store=StateStore(state), link_dialer=peer.dial)
    )
    tree = Supervisor("root", [spec], intensity=3, period=60.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(tree.run, Inbox("root"))
        yield tree.address_of(spec)
        nursery.cancel_scope.cancel()


async def until(check: Callable[[], Awaitable[bool]], what: str, bound: float = 5.0) -> None:
    """Poll `check` (a router's stats, a peer's state) until it holds, within `bound`."""
    with trio.move_on_after(bound):
        while True:
            if await check():
                return
            await trio.sleep(0.02)
    raise AssertionError(f"not within {bound:g} s: {what}")


async def receive(sock: socket.socket, seconds: float = 2.0) -> bytes:
    with trio.fail_after(seconds):
        while True:
            try:
                return sock.recv(65536)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(sock)


async def test_frames_cross_the_link_both_ways_and_it_comes_back_after_a_drop(
    tmp_path: Path,
) -> None:
    peer = Peer()
    with trio.fail_after(30):
        await _scenario(tmp_path, peer)


async def _scenario(tmp_path: Path, peer: Peer) -> None:
    async with router(tmp_path, peer) as vpn:
        net = await vpn.call(CreateNetwork(caller=ALICE, ip="10.9.0.0/24", link_secret=SECRET))
        local, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        local.setblocking(False)
        await vpn.call(
            AttachPort(endpoint="here", fd=theirs.detach(), network_id=net.id, ip="10.9.0.2")
        )
        await vpn.call(
            AddNode(
                caller=ALICE,
                network_id=net.id,
                node_id=REMOTE_VM,
                ip="10.9.0.3",
                vm=False,
                location=LOCATION,
            )
        )
        await peer.connected.wait()

        async def link() -> dict[str, int | str]:
            return next(iter((await vpn.call(GetVpnStats())).links.values()))

        async def is_up() -> bool:
            return (await link())["up"] == 1

        await until(is_up, "the link is up")
        out = udp_frame(ip("10.9.0.2"), ip("10.9.0.3"), b"to the peer", dst_mac=nic_mac(REMOTE_VM))
        for _ in range(20):
            local.send(out)

        async def all_sent() -> bool:
            return len(peer.received) == 20

        await until(all_sent, "the peer got every frame")
        assert set(peer.received) == {out}
        assert int((await link())["messages_out"]) < 20  # batched

        # from the peer: routed from the remote member to the local port
        back = udp_frame(ip("10.9.0.3"), ip("10.9.0.2"), b"back", src_mac=nic_mac(REMOTE_VM))
        await vpn.cast(LinkFrames(net.id, wire.encode_batches([back])[0]))
        assert await receive(local) == back
        # a peer cannot speak for this node's own members, nor send garbage
        spoofed = udp_frame(ip("10.9.0.2"), ip("10.9.0.2"), b"x", dst_mac=guest_mac(ip("10.9.0.2")))
        await vpn.cast(LinkFrames(net.id, wire.encode_batches([spoofed])[0] + b"\x00"))
        stats = await vpn.call(GetVpnStats())
        assert stats.totals["link_in_dropped"] == 2

        # the peer goes away: the link drops, the remote member is unlocated, dials fail
        peer.up = False
        peer.connected = trio.Event()
        assert peer.connection is not None
        await peer.connection.aclose()

        async def is_down() -> bool:
            return (await link())["up"] == 0

        await until(is_down, "the link is down")
        local.send(out)
        await trio.sleep(0.1)
        stats = await vpn.call(GetVpnStats())
        assert stats.drops["unlocated"] >= 1
        await until(lambda: _true_after(peer.dials >= 3), "dials again with backoff", 10)

        # the peer is back: the next dial links up, traffic resumes
        peer.up = True
        peer.received.clear()
        await until(is_up, "the link is up again", 15)
        local.send(out)
        await until(lambda: _true_after(peer.received == [out]), "frames flow again")
        state = await link()
        assert state["drops"] == 1
        assert int(state["failures"]) >= 2


async def _true_after(value: bool) -> bool:
    return value


async def test_located_nodes_the_peer_does_not_host_are_reported(tmp_path: Path) -> None:
    peer = Peer()
    peer.hosts = frozenset({REMOTE_VM})
    with trio.fail_after(30), capture_logs() as logs:
        async with router(tmp_path, peer) as vpn:
            net = await vpn.call(CreateNetwork(caller=ALICE, ip="10.9.0.0/24", link_secret=SECRET))
            for node_id, address in ((REMOTE_VM, "10.9.0.3"), ("vm-elsewhere", "10.9.0.4")):
                await vpn.call(
                    AddNode(
                        caller=ALICE,
                        network_id=net.id,
                        node_id=node_id,
                        ip=address,
                        vm=False,
                        location=LOCATION,
                    )
                )

            async def hosting_is(expected: dict[str, bool]) -> bool:
                return await vpn.call(GetLinkHosting(net.id)) == expected

            await until(
                lambda: hosting_is({REMOTE_VM: True, "vm-elsewhere": False}), "the peer told"
            )
            link = next(iter((await vpn.call(GetVpnStats())).links.values()))
            assert link["unhosted"] == "vm-elsewhere"
            # the peer gets that VM later: reported as hosted, no new warning
            assert peer.connection is not None
            await peer.connection.send_message(wire.hosted_message([REMOTE_VM, "vm-elsewhere"]))
            await until(lambda: hosting_is({REMOTE_VM: True, "vm-elsewhere": True}), "updated")
            link = next(iter((await vpn.call(GetVpnStats())).links.values()))
            assert link["unhosted"] == ""
    warned = [e for e in logs if e["event"] == "vpn link peer lacks nodes"]
    assert [e["node_ids"] for e in warned] == [["vm-elsewhere"]]


async def test_a_peer_that_says_nothing_leaves_hosting_unknown(tmp_path: Path) -> None:
    peer = Peer()
    with trio.fail_after(30):
        async with router(tmp_path, peer) as vpn:
            net = await vpn.call(CreateNetwork(caller=ALICE, ip="10.9.0.0/24", link_secret=SECRET))
            await vpn.call(
                AddNode(
                    caller=ALICE,
                    network_id=net.id,
                    node_id=REMOTE_VM,
                    ip="10.9.0.3",
                    vm=False,
                    location=LOCATION,
                )
            )
            await peer.connected.wait()
            await trio.sleep(0.2)
            assert await vpn.call(GetLinkHosting(net.id)) == {}
            link = next(iter((await vpn.call(GetVpnStats())).links.values()))
            assert link["up"] == 1
            assert link["unhosted"] == ""


async def test_every_vm_of_the_peer_node_is_reached_over_its_one_link(tmp_path: Path) -> None:
    peer = Peer()
    others = {REMOTE_VM: "10.9.0.3", "vm-remote-two": "10.9.0.4"}
    with trio.fail_after(30):
        async with router(tmp_path, peer) as vpn:
            net = await vpn.call(CreateNetwork(caller=ALICE, ip="10.9.0.0/24", link_secret=SECRET))
            local, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            local.setblocking(False)
            await vpn.call(
                AttachPort(endpoint="here", fd=theirs.detach(), network_id=net.id, ip="10.9.0.2")
            )
            for node_id, address in others.items():
                await vpn.call(
                    AddNode(
                        caller=ALICE,
                        network_id=net.id,
                        node_id=node_id,
                        ip=address,
                        vm=False,
                        location=LOCATION,
                    )
                )
            stats = await vpn.call(GetVpnStats())
            assert len(stats.links) == 1  # one peer node, one link
            await peer.connected.wait()
            frames = {
                node_id: udp_frame(ip("10.9.0.2"), ip(address), b"hi", dst_mac=nic_mac(node_id))
                for node_id, address in others.items()
            }

            async def both_arrived() -> bool:
                return set(peer.received) == set(frames.values())

            for frame in frames.values():
                local.send(frame)
            await until(both_arrived, "frames to both remote VMs went over the link")
            for node_id, address in others.items():  # and each one's frames come back in
                back = udp_frame(
                    ip(address), ip("10.9.0.2"), node_id.encode(), src_mac=nic_mac(node_id)
                )
                await vpn.cast(LinkFrames(net.id, wire.encode_batches([back])[0]))
                assert await receive(local) == back
