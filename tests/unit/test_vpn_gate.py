"""The Net API's gates end to end: a real websocket client, the node's real HTTP server,
the gate namespace's kernel TCP, the switch pumping real TAPs, and a "VM" that is a
network namespace with its own kernel stack (gate_world.py). Needs root (namespaces)."""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import httpx
import pytest
import trio
import trio_websocket
from gate_world import SwitchRouter, Vm, deaf_member, dropbear_argv, make_vm, run
from lifecycle_harness import running_api

from golem_actor.adapters.qemu._sandbox import vm_user
from golem_actor.adapters.vpn_gate import (
    GateError,
    GatePort,
    Gates,
    GateUnanswered,
    HelperUser,
    open_gate_namespace,
)
from golem_actor.domain.vpn.addressing import guest_mac, router_mac
from golem_actor.domain.vpn.ethernet import ETHERTYPE_IPV4, build_ethernet
from golem_actor.domain.vpn.ipv4 import (
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    PROTO_ICMP,
    IcmpEcho,
    build_icmp_echo,
    build_ipv4,
    parse_icmp_echo,
    parse_ipv4,
)
from golem_actor.domain.vpn.networks import add_address, new_network, with_mtu

pytestmark = pytest.mark.tools  # network namespaces, helper processes

ALICE, BOB = "alice-token-0123456789", "bob-token-9876543210"
VM_IP = IPv4Address("10.8.0.2")
DEAF_IP = IPv4Address("10.8.0.9")
ECHO, QUIET = 7000, 7001
MB = 1024 * 1024


@dataclass
class World:
    ws_base: str  # ws://host:port/net-api/v1/net/<id>
    http_base: str
    network_id: str
    router: SwitchRouter
    vm: Vm
    gates: Gates

    def url(self, path: str) -> str:
        return f"{self.ws_base}{path}"

    def auth(self, token: str = ALICE) -> list[tuple[bytes, bytes]]:
        return [(b"Authorization", f"Bearer {token}".encode())]


@asynccontextmanager
async def world(tmp_path: Path, cidr: str = "10.8.0.0/24") -> AsyncIterator[World]:
    assert os.geteuid() == 0, "network namespaces need root"
    router = SwitchRouter()
    gates = Gates(router)
    netns = f"ggate-{os.getpid()}"
    try:
        async with running_api(tmp_path, gates=gates) as node:
            root = node.url.removesuffix("/api/v1")
            async with httpx.AsyncClient(timeout=20) as client:
                made = await client.post(
                    f"{root}/net-api/v1/net",
                    json={"ip": cidr},
                    headers={"Authorization": f"Bearer {ALICE}"},
                )
                network = made.json()
                added = await client.post(
                    f"{root}/net-api/v1/net/{network['id']}/nodes",
                    json={"id": "0x" + "7c" * 20, "ip": str(VM_IP)},
                    headers={"Authorization": f"Bearer {ALICE}"},
                )
                assert added.status_code == 200, added.text
            net = IPv4Network(network["ip"])
            # The router learns the network from the registry (the data plane's job).
            router.add_network(network["id"], net, IPv4Address(network["gateway"]))
            vm = make_vm(router, netns, network["id"], VM_IP, net.prefixlen)
            ws_root = root.replace("http://", "ws://")
            yield World(
                f"{ws_root}/net-api/v1/net/{network['id']}",
                f"{root}/net-api/v1/net/{network['id']}",
                network["id"],
                router,
                vm,
                gates,
            )
            await gates.aclose()
    finally:
        router.stop()
        subprocess_run_quietly("ip", "netns", "delete", netns)


def subprocess_run_quietly(*argv: str) -> None:
    with suppress(Exception):
        run(*argv)


async def echo_server(listener: trio.socket.SocketType) -> None:
    conn, _ = await listener.accept()
    with conn:
        while data := await conn.recv(256 * 1024):
            view = memoryview(data)
            while view:
                sent = await conn.send(view)
                view = view[sent:]


async def test_ten_megabytes_through_the_tcp_gate_intact_and_64k_messages(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        listener = trio.socket.from_stdlib_socket(w.vm.listener(ECHO))
        payload = os.urandom(10 * MB)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo_server, listener)
            async with trio_websocket.open_websocket_url(
                w.url(f"/tcp/{VM_IP}/{ECHO}"),
                extra_headers=w.auth(),
                max_message_size=16 * MB,
            ) as ws:
                # listed while open (GET /net/{id}/tcp)
                async with httpx.AsyncClient() as client:
                    listed = (await client.get(f"{w.http_base}/tcp?authToken={ALICE}")).json()
                assert [(c["remoteIp"], c["remotePort"], c["protocol"]) for c in listed] == [
                    (str(VM_IP), ECHO, 6)
                ]
                assert listed[0]["localIp"] == "10.8.0.1"

                async def send_all() -> None:
                    await ws.send_message(payload[: 64 * 1024])  # one 64 KiB message
                    await ws.send_message("text is bytes too")
                    await ws.send_message(payload[64 * 1024 : MB])  # up to 1 MiB is fine
                    rest = payload[MB:]
                    for start in range(0, len(rest), 60_000):
                        await ws.send_message(rest[start : start + 60_000])

                nursery.start_soon(send_all)
                expected = payload[: 64 * 1024] + b"text is bytes too" + payload[64 * 1024 :]
                got = bytearray()
                while len(got) < len(expected):
                    message = await ws.get_message()
                    assert isinstance(message, bytes)
                    assert len(message) <= 64 * 1024
                    got += message
                assert hashlib.sha256(got).digest() == hashlib.sha256(expected).digest()
        listener.close()


async def test_closing_propagates_both_ways_within_a_second(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        listener = trio.socket.from_stdlib_socket(w.vm.listener(QUIET))

        # 1. the client closes the websocket: the VM reads EOF (a FIN)
        async with trio_websocket.open_websocket_url(
            w.url(f"/tcp/{VM_IP}/{QUIET}"), extra_headers=w.auth()
        ) as ws:
            conn, _ = await listener.accept()
            await ws.send_message(b"hello")
            assert await conn.recv(100) == b"hello"
            await ws.aclose(code=1000)
        with trio.fail_after(1):
            assert await conn.recv(100) == b""  # FIN, not a reset
        conn.close()

        # 2. the server pings every 5 s; a client that vanishes without a close frame
        # makes the VM get a RST
        stream = await _raw_handshake(w, f"/tcp/{VM_IP}/{QUIET}")
        conn, _ = await listener.accept()
        with trio.fail_after(6):
            assert (await stream.receive_some(2))[:1] == b"\x89"  # FIN + opcode 9: ping
        await stream.aclose()
        with trio.fail_after(1), pytest.raises(ConnectionResetError):
            await conn.recv(100)
        conn.close()

        # 3. the VM closes (FIN): the websocket closes with 1000 at once
        async with trio_websocket.open_websocket_url(
            w.url(f"/tcp/{VM_IP}/{QUIET}"), extra_headers=w.auth()
        ) as ws:
            conn, _ = await listener.accept()
            await conn.send(b"bye")
            assert await ws.get_message() == b"bye"
            conn.close()
            with trio.fail_after(1), pytest.raises(trio_websocket.ConnectionClosed) as closed:
                await ws.get_message()
            assert _code(closed.value) == 1000

        # 4. a message past 1 MiB closes the websocket (1009) and the connection
        async with trio_websocket.open_websocket_url(
            w.url(f"/tcp/{VM_IP}/{QUIET}"), extra_headers=w.auth(), max_message_size=4 * MB
        ) as ws:
            conn, _ = await listener.accept()
            await ws.send_message(b"x" * (MB + 1))
            with trio.fail_after(1), pytest.raises(trio_websocket.ConnectionClosed) as closed:
                await ws.get_message()
            assert _code(closed.value) == 1009
            with trio.fail_after(2):
                assert await conn.recv(100) == b""  # nothing of it reached the VM
            conn.close()

        # 5. the VM resets: the websocket closes with 1011 at once
        async with trio_websocket.open_websocket_url(
            w.url(f"/tcp/{VM_IP}/{QUIET}"), extra_headers=w.auth()
        ) as ws:
            conn, _ = await listener.accept()
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            with trio.fail_after(1), pytest.raises(trio_websocket.ConnectionClosed) as closed:
                await ws.get_message()
            assert _code(closed.value) == 1011
        listener.close()


def _code(closed: trio_websocket.ConnectionClosed) -> int | None:
    return None if closed.reason is None else closed.reason.code


async def _raw_handshake(w: World, path: str) -> trio.SocketStream:
    """A websocket opened by hand, so that it can end without a close frame."""
    host, _, rest = w.ws_base.removeprefix("ws://").partition("/")
    address, _, port = host.rpartition(":")
    stream = await trio.open_tcp_stream(address, int(port))
    await stream.send_all(
        f"GET /{rest}{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {ALICE}\r\n\r\n".encode()
    )
    head = await stream.receive_some(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    return stream


async def _rejected(url: str, headers: list[tuple[bytes, bytes]]) -> int:
    with pytest.raises(trio_websocket.ConnectionRejected) as rejected:
        async with trio_websocket.open_websocket_url(url, extra_headers=headers):
            pass
    return rejected.value.status_code


async def test_handshake_errors(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        deaf = deaf_member(w.router, w.network_id, DEAF_IP)
        assert await _rejected(w.url(f"/tcp/{VM_IP}/{QUIET}"), w.auth()) == 400  # refused
        v2 = w.url(f"/tcp/{VM_IP}/{QUIET}").replace("/net-api/v1/", "/net-api/v2/vpn/")
        assert await _rejected(v2, w.auth()) == 400  # the same routes under /net-api/v2/vpn
        started = trio.current_time()
        assert await _rejected(w.url(f"/tcp/{DEAF_IP}/22"), w.auth()) == 504
        assert 4.5 <= trio.current_time() - started <= 7.0  # the documented 5 s bound
        assert await _rejected(w.url(f"/tcp/{VM_IP}/22"), []) == 401
        assert await _rejected(w.url(f"/tcp/{VM_IP}/22"), w.auth(BOB)) == 404
        assert await _rejected(w.url("/tcp/10.9.0.2/22"), w.auth()) == 400  # outside
        assert await _rejected(w.url(f"/tcp/{VM_IP}/0"), w.auth()) == 400
        assert await _rejected(w.url("/tcp/not-an-ip/22"), w.auth()) == 400
        # ?authToken= is how websocket clients without headers authenticate: past auth,
        # the connect itself is refused
        assert await _rejected(w.url(f"/tcp/{VM_IP}/{QUIET}?authToken={ALICE}"), []) == 400
        deaf.close()
        # a bounded number of gate connections per network
        listener = trio.socket.from_stdlib_socket(w.vm.listener(ECHO))
        w.gates.max_connections = 1
        async with trio_websocket.open_websocket_url(
            w.url(f"/tcp/{VM_IP}/{ECHO}"), extra_headers=w.auth()
        ):
            assert await _rejected(w.url(f"/tcp/{VM_IP}/{ECHO}"), w.auth()) == 409
        listener.close()


async def test_removing_the_network_closes_its_gates(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        listener = trio.socket.from_stdlib_socket(w.vm.listener(QUIET))
        async with trio_websocket.open_websocket_url(
            w.url(f"/tcp/{VM_IP}/{QUIET}"), extra_headers=w.auth()
        ) as ws:
            conn, _ = await listener.accept()
            async with httpx.AsyncClient() as client:
                removed = await client.delete(f"{w.http_base}?authToken={ALICE}")
            assert removed.status_code == 200
            with trio.fail_after(2), pytest.raises(trio_websocket.ConnectionClosed) as closed:
                await ws.get_message()
            assert _code(closed.value) == 1001
        with trio.fail_after(2), pytest.raises(ConnectionResetError):
            await conn.recv(100)
        listener.close()


async def test_a_lost_gate_namespace_is_replaced(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        listener = trio.socket.from_stdlib_socket(w.vm.listener(QUIET))

        async def round_trip() -> None:
            async with trio_websocket.open_websocket_url(
                w.url(f"/tcp/{VM_IP}/{QUIET}"), extra_headers=w.auth()
            ) as ws:
                conn, _ = await listener.accept()
                await conn.send(b"ping")
                assert await ws.get_message() == b"ping"
                conn.close()

        await round_trip()
        helper = w.gates.namespace_of(w.network_id)
        assert helper is not None
        helper.process.kill()
        await helper.process.wait()
        await round_trip()  # a new namespace, attached in the old one's place
        assert w.gates.namespace_of(w.network_id) not in (None, helper)
        listener.close()


async def test_ssh_through_the_gate_with_a_proxy_command(tmp_path: Path) -> None:
    """OpenSSH's client, `gate_proxy` as its ProxyCommand, dropbear in the VM."""
    async with world(tmp_path) as w:
        work = tmp_path / "ssh"
        work.mkdir()
        argv, key = dropbear_argv(w.vm, work)
        server = await trio.lowlevel.open_process(argv, stdin=subprocess.DEVNULL)
        try:
            with trio.fail_after(5):
                await _until_listening(w, 22)
            proxy = f"{sys.executable} -m golem_actor.gate_proxy {w.url(f'/tcp/{VM_IP}/22')}"
            data = os.urandom(MB)
            done = await trio.run_process(
                [
                    "ssh", "-i", str(key), "-o", "BatchMode=yes",
                    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                    "-o", f"ProxyCommand={proxy}", f"gatetest@{VM_IP}",
                    "echo gate-ok; sha256sum",
                ],
                stdin=data,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                env={**os.environ, "GOLEM_NET_TOKEN": ALICE},
            )  # fmt: skip
            assert done.returncode == 0, done.stderr.decode()
            lines = done.stdout.decode().split()
            assert lines[0] == "gate-ok"
            assert lines[1] == hashlib.sha256(data).hexdigest()
        finally:
            server.kill()
            await server.wait()


async def _until_no_connections(w: World) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            listed = await client.get(f"{w.http_base}/tcp?authToken={ALICE}")
            if listed.json() == []:
                return
            await trio.sleep(0.02)
    pytest.fail("the gate connection is still listed")


async def _until_listening(w: World, port: int) -> None:
    """Knock through the gate until the VM's port accepts (the server is starting)."""
    for _ in range(100):
        try:
            async with trio_websocket.open_websocket_url(
                w.url(f"/tcp/{VM_IP}/{port}"), extra_headers=w.auth()
            ):
                return
        except trio_websocket.ConnectionRejected as rejected:
            if rejected.status_code != 400:  # 400: refused, not listening yet
                raise
        await trio.sleep(0.05)


def _echo_request(src: IPv4Address, dst: IPv4Address, dst_mac: bytes, seq: int) -> bytes:
    body = build_icmp_echo(IcmpEcho(ICMP_ECHO_REQUEST, 0, 0x4242, seq, b"raw-gate-probe"))
    return (
        build_ethernet(dst_mac, router_mac(src), ETHERTYPE_IPV4)
        + build_ipv4(src.packed, dst.packed, PROTO_ICMP, len(body))
        + body
    )


async def _echo_reply(ws: trio_websocket.WebSocketConnection, src: IPv4Address) -> IcmpEcho:
    while True:  # skip what else comes (the VM's ARP request for us, say)
        frame = await ws.get_message()
        assert isinstance(frame, bytes)
        ip = parse_ipv4(frame)
        if ip is None or ip.protocol != PROTO_ICMP or ip.src != src.packed:
            continue
        echo = parse_icmp_echo(frame, ip)
        if echo is not None and echo.type == ICMP_ECHO_REPLY:
            return echo


async def test_raw_gate_icmp_echo_to_the_gateway_and_to_a_vm(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        me = IPv4Address("10.8.0.5")
        gateway = IPv4Address("10.8.0.1")
        async with httpx.AsyncClient() as client:
            added = await client.post(
                f"{w.http_base}/addresses?authToken={ALICE}", json={"ip": str(me)}
            )
        assert added.status_code == 200
        # dst must be a node or the gateway; src must be the requestor's, not the TCP gate's
        assert await _rejected(w.url(f"/raw/from/{me}/to/10.8.0.77"), w.auth()) == 400
        assert await _rejected(w.url(f"/raw/from/10.8.0.6/to/{VM_IP}"), w.auth()) == 400
        async with trio_websocket.open_websocket_url(
            w.url(f"/raw/from/{me}/to/{gateway}"), extra_headers=w.auth()
        ) as ws:
            await ws.send_message(_echo_request(me, gateway, router_mac(gateway), 1))
            with trio.fail_after(2):
                echo = await _echo_reply(ws, gateway)
            assert (echo.ident, echo.seq, echo.data) == (0x4242, 1, b"raw-gate-probe")
            # a second raw gate from the same address is refused while this one is open
            assert await _rejected(w.url(f"/raw/from/{me}/to/{VM_IP}"), w.auth()) == 409
        async with trio_websocket.open_websocket_url(
            w.url(f"/raw/from/{me}/to/{VM_IP}"), extra_headers=w.auth()
        ) as ws:
            await ws.send_message(_echo_request(me, VM_IP, guest_mac(VM_IP), 2))
            with trio.fail_after(3):  # the VM's kernel ARPs for us first
                echo = await _echo_reply(ws, VM_IP)
            assert (echo.seq, echo.data) == (2, b"raw-gate-probe")

        # The first address (what yagna's raw-gate clients use) has one holder at a time:
        # the TCP gate's namespace while its connections are open, else a raw gate.
        first = IPv4Address("10.8.0.1")
        listener = trio.socket.from_stdlib_socket(w.vm.listener(QUIET))
        async with trio_websocket.open_websocket_url(
            w.url(f"/tcp/{VM_IP}/{QUIET}"), extra_headers=w.auth()
        ):
            conn, _ = await listener.accept()
            assert await _rejected(w.url(f"/raw/from/{first}/to/{VM_IP}"), w.auth()) == 409
        with trio.fail_after(2):
            assert await conn.recv(10) == b""  # the gate's FIN: its connection is over
        conn.close()
        await _until_no_connections(w)  # GET /tcp: the gate's handler is done with it
        async with trio_websocket.open_websocket_url(
            w.url(f"/raw/from/{first}/to/{VM_IP}"), extra_headers=w.auth()
        ) as ws:
            assert await _rejected(w.url(f"/tcp/{VM_IP}/{QUIET}"), w.auth()) == 409
            await ws.send_message(_echo_request(first, VM_IP, guest_mac(VM_IP), 3))
            with trio.fail_after(3):
                echo = await _echo_reply(ws, VM_IP)
            assert echo.seq == 3
        async with trio_websocket.open_websocket_url(  # the TCP gate's turn again
            w.url(f"/tcp/{VM_IP}/{QUIET}"), extra_headers=w.auth()
        ) as ws:
            conn, _ = await listener.accept()
            await conn.send(b"back")
            with trio.fail_after(2):
                assert await ws.get_message() == b"back"
            conn.close()
        listener.close()


async def test_a_gate_namespace_that_cannot_start_says_why() -> None:
    with pytest.raises(GateError, match=r"did not start: error .*Invalid argument"):
        await open_gate_namespace(IPv4Interface("10.8.0.1/24"), router_mac(VM_IP), mtu=10)
    namespace = await open_gate_namespace(IPv4Interface("10.8.0.1/24"), router_mac(VM_IP))
    tap = namespace.take_tap()
    with pytest.raises(GateError, match="taken already"):
        namespace.take_tap()
    os.close(tap)
    await namespace.aclose()
    assert namespace.process.returncode == 0  # it ended on the closed control socket


async def test_a_root_node_runs_the_helper_as_the_vm_user() -> None:
    runas = vm_user()
    assert runas is not None  # root: the VM user exists (created when missing)
    namespace = await open_gate_namespace(
        IPv4Interface("10.8.0.1/24"),
        router_mac(VM_IP),
        runas=HelperUser(runas.uid, runas.gid, runas.groups),
    )
    try:
        status = await trio.Path(f"/proc/{namespace.process.pid}/status").read_text()
        uids = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert uids.split()[1:] == [str(runas.uid)] * 4
        os.close(namespace.take_tap())
        namespace.connect_timeout = 0.5
        with pytest.raises(GateUnanswered):  # its sockets work: nobody is on the TAP
            await namespace.connect(VM_IP, 22)
    finally:
        await namespace.aclose()


class _HoldingRouter:
    """A router that only holds the gate's TAP (the MTU check needs no traffic)."""

    def __init__(self) -> None:
        self.fds: list[int] = []

    async def attach_port(self, port: GatePort, fd: int) -> None:
        self.fds.append(fd)

    async def detach_port(self, port_id: str) -> None:
        while self.fds:
            os.close(self.fds.pop())


async def test_a_gate_tap_takes_its_networks_mtu() -> None:
    """A network with jumbo frames gets a jumbo gate: guests and gate agree on one MSS."""
    for mtu in (1220, 9000):
        gates = Gates(_HoldingRouter(), connect_timeout=0.3)
        network = with_mtu(add_address(new_network("n1", "o", "10.8.0.0/24"), "10.8.0.5"), mtu)
        with pytest.raises(GateUnanswered):  # nobody on the TAP: the connect times out
            await gates.connect(network, VM_IP, 22)
        namespace = gates.namespace_of("n1")
        assert namespace is not None
        shown = await trio.run_process(
            ["nsenter", "-t", str(namespace.process.pid), "-n", "ip", "-o", "link", "show"],
            capture_stdout=True,
        )
        gate0 = next(line for line in shown.stdout.decode().splitlines() if "gate0:" in line)
        assert f" mtu {mtu} " in gate0
        await gates.aclose()
