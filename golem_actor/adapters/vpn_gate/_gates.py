"""`Gates`: the node's gate namespaces and raw gate ports, and their seam to the router.

One gate namespace per network, opened on the first TCP gate connection into it and kept
until the network is removed (`close_network`) or the node stops (`aclose`). Its TAP is
handed to the router through `RouterPorts.attach_port` as the port of the requestor's
first address (`a0:13:<ip>`, golem-vpn.md §2.3). A raw gate is a `socketpair(AF_UNIX,
SOCK_DGRAM)`: one end is attached the same way, the other carries the websocket's frames.
Every open TCP gate connection is listed (`GET /net/{id}/tcp`) and is ended when its
network is removed.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from typing import Protocol

import structlog
import trio

from golem_actor.domain.vpn.addressing import router_mac
from golem_actor.domain.vpn.networks import VpnNetwork, first_host

from ._namespace import (
    CONNECT_TIMEOUT,
    GateError,
    GateNamespace,
    HelperUser,
    NamespaceGone,
    open_gate_namespace,
)

__all__ = [
    "MAX_CONNECTIONS",
    "AddressBusy",
    "GateConnection",
    "GatePort",
    "Gates",
    "RawPort",
    "RouterPorts",
    "TooManyConnections",
]

log = structlog.get_logger("golem_actor.vpn_gate")
RAW_BUFFER = 256 * 1024  # socket buffers of a raw gate's pair: a few hundred frames
_RESET_GRACE = 2.0  # how long a removed network's gate connections get to send their RSTs
_DRAIN = 0.2  # then how long the router gets to take them off the TAP
MAX_CONNECTIONS = 256  # open TCP gate connections per network (each a socket and two tasks)


@dataclass(frozen=True)
class GatePort:
    """A port the gate asks the router for: a member `ip`/`mac` of `network_id`."""

    network_id: str
    port_id: str
    ip: IPv4Address
    mac: bytes


class RouterPorts(Protocol):
    """What the router offers the gates (its data plane attaches fds as switch ports)."""

    async def attach_port(self, port: GatePort, fd: int) -> None:
        """Route `port` through `fd`, one Ethernet frame per read or write, from now on.
        The router owns `fd` from this call on (even when it raises) and closes it when
        the port is detached."""

    async def detach_port(self, port_id: str) -> None:
        """Stop routing `port_id` and close its fd; unknown ids are ignored."""


@dataclass(eq=False)
class GateConnection:
    """One open TCP gate connection (`Connection` in yagna's model)."""

    network_id: str
    local: tuple[str, int]
    remote: tuple[str, int]
    cancel: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)  # set by `Gates.forget`


@dataclass(eq=False)
class RawPort:
    """A raw gate's end: one datagram is one Ethernet frame to or from the router."""

    port: GatePort
    sock: trio.socket.SocketType


@dataclass(eq=False)
class _Network:
    namespace: GateNamespace | None = None
    lock: trio.Lock = field(default_factory=trio.Lock)
    connections: set[GateConnection] = field(default_factory=set)
    connecting: int = 0  # connects under way (each holds a socket for up to 5 s)
    raw: dict[IPv4Address, RawPort] = field(default_factory=dict)


class AddressBusy(GateError):
    """The address is held by another gate (a raw one, or the TCP gate's connections)."""


class TooManyConnections(GateError):
    """The network has `MAX_CONNECTIONS` gate connections open already."""


class Gates:
    def __init__(
        self,
        router: RouterPorts,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        runas: HelperUser | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.router = router
        self.max_connections = max_connections
        self.runas = runas  # the namespaces' helpers run as this user (a root node)
        self.connect_timeout = connect_timeout
        self._networks: dict[str, _Network] = {}

    def _network(self, network_id: str) -> _Network:
        return self._networks.setdefault(network_id, _Network())

    async def _namespace(self, network: VpnNetwork) -> GateNamespace:
        entry = self._network(network.id)
        async with entry.lock:
            self._check_first_host_free(network, entry)
            if entry.namespace is None:
                ip = first_host(network.net)
                port = GatePort(network.id, f"gate:{network.id}", ip, router_mac(ip))
                namespace = await open_gate_namespace(
                    IPv4Interface(f"{ip}/{network.net.prefixlen}"),
                    port.mac,
                    mtu=network.mtu,  # the TAP's MTU is the guests': one MSS both ways
                    connect_timeout=self.connect_timeout,
                    runas=self.runas,
                )
                try:
                    await self.router.attach_port(port, namespace.take_tap())
                except BaseException:
                    with trio.CancelScope(shield=True):
                        await namespace.aclose()
                    raise
                entry.namespace = namespace
                log.info("gate namespace opened", network_id=network.id, ip=str(ip))
            return entry.namespace

    @staticmethod
    def _check_first_host_free(network: VpnNetwork, entry: _Network) -> None:
        first = first_host(network.net)
        if first in entry.raw:
            raise AddressBusy(f"a raw gate holds {first}, the TCP gate's address")

    async def connect(
        self, network: VpnNetwork, ip: IPv4Address, port: int
    ) -> tuple[trio.SocketStream, GateConnection]:
        """A TCP connection from the requestor's first address to `ip:port` (GateError).

        A namespace whose helper died is replaced once, transparently."""
        entry = self._network(network.id)
        self._check_first_host_free(network, entry)
        if len(entry.connections) + entry.connecting >= self.max_connections:
            raise TooManyConnections(
                f"at most {self.max_connections} gate connections per network are open or"
                " opening at once"
            )
        entry.connecting += 1
        try:
            namespace = await self._namespace(network)
            try:
                stream = await namespace.connect(ip, port)
            except NamespaceGone:
                log.warning("gate namespace lost: reopening", network_id=network.id)
                await self._drop_namespace(network.id, namespace)
                stream = await (await self._namespace(network)).connect(ip, port)
        finally:
            entry.connecting -= 1
        if self._networks.get(network.id) is not entry:  # removed while we connected
            stream.socket.close()
            raise GateError(f"network {network.id} was removed")
        local = stream.socket.getsockname()
        connection = GateConnection(network.id, (local[0], local[1]), (str(ip), port))
        entry.connections.add(connection)
        return stream, connection

    async def _drop_namespace(self, network_id: str, namespace: GateNamespace) -> None:
        entry = self._network(network_id)
        async with entry.lock:
            if entry.namespace is namespace:
                entry.namespace = None
                with trio.CancelScope(shield=True):
                    await self.router.detach_port(f"gate:{network_id}")
                    await namespace.aclose()

    def forget(self, connection: GateConnection) -> None:
        connection.done.set()
        entry = self._networks.get(connection.network_id)
        if entry is not None:
            entry.connections.discard(connection)

    def namespace_of(self, network_id: str) -> GateNamespace | None:
        entry = self._networks.get(network_id)
        return None if entry is None else entry.namespace

    def connections(self, network_id: str) -> list[GateConnection]:
        entry = self._networks.get(network_id)
        return [] if entry is None else sorted(entry.connections, key=lambda c: c.local)

    async def open_raw(self, network: VpnNetwork, src: IPv4Address) -> RawPort:
        """A raw gate port holding the requestor's address `src` (GateError if held).

        The first address is the gate namespace's while TCP gate connections are open
        (`AddressBusy`); otherwise the raw gate takes it over, and the namespace is closed
        (the next TCP gate after the raw gate opens a new one)."""
        if str(src) not in network.addresses:
            raise GateError(f"{src} is not an address of the requestor in this network")
        entry = self._network(network.id)
        if src in entry.raw:
            raise AddressBusy(f"a raw gate from {src} is open already")
        if src == first_host(network.net):
            async with entry.lock:
                if entry.connections or entry.connecting:
                    raise AddressBusy(
                        f"TCP gate connections use {src}: close them, or open the raw gate"
                        " from another of your addresses (POST /addresses)"
                    )
                if src in entry.raw:
                    raise AddressBusy(f"a raw gate from {src} is open already")
                namespace, entry.namespace = entry.namespace, None
                if namespace is not None:
                    with trio.CancelScope(shield=True):
                        await self.router.detach_port(f"gate:{network.id}")
                        await namespace.aclose()
                return await self._attach_raw(entry, network.id, src)
        return await self._attach_raw(entry, network.id, src)

    async def _attach_raw(self, entry: _Network, network_id: str, src: IPv4Address) -> RawPort:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for end in (ours, theirs):
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RAW_BUFFER)
            end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RAW_BUFFER)
        port = GatePort(network_id, f"raw:{network_id}:{src}", src, router_mac(src))
        raw = RawPort(port, trio.socket.from_stdlib_socket(ours))
        entry.raw[src] = raw
        try:
            await self.router.attach_port(port, theirs.detach())
        except BaseException:
            del entry.raw[src]
            raw.sock.close()
            raise
        return raw

    async def close_raw(self, raw: RawPort) -> None:
        entry = self._networks.get(raw.port.network_id)
        if entry is not None and entry.raw.get(raw.port.ip) is raw:
            del entry.raw[raw.port.ip]
        with trio.CancelScope(shield=True):
            await self.router.detach_port(raw.port.port_id)
        raw.sock.close()

    async def close_network(self, network_id: str) -> None:
        """The network is gone: end its connections and raw gates, detach its namespace."""
        entry = self._networks.pop(network_id, None)
        if entry is None:
            return
        open_now = list(entry.connections)
        for connection in open_now:
            connection.cancel.cancel()
        with trio.CancelScope(shield=True):
            with trio.move_on_after(_RESET_GRACE):  # their RSTs must leave before the TAP
                for connection in open_now:
                    await connection.done.wait()
            if open_now:
                # The RSTs sit in the TAP's queue until the router reads them: give it a
                # moment before the port (and so the queue) goes.
                await trio.sleep(_DRAIN)
            for raw in list(entry.raw.values()):
                await self.router.detach_port(raw.port.port_id)
                raw.sock.close()
            async with entry.lock:
                if entry.namespace is not None:
                    await self.router.detach_port(f"gate:{network_id}")
                    await entry.namespace.aclose()
                    log.info("gate namespace closed", network_id=network_id)

    async def aclose(self) -> None:
        for network_id in list(self._networks):
            await self.close_network(network_id)
