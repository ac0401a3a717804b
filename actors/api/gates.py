"""The Net API's gates as websocket routes, below Quart: plain ASGI on hypercorn.

Why not Quart's websocket: it cancels a handler when the client goes away and hides the
close code, and the TCP gate must tell a close (FIN to the VM) from an abort (RST); here
the ASGI events are read directly (with hypercorn's close code fixed by
golem_actor.adapters.hypercorn_ws). `GateRoutes` wraps the app: websocket requests on
a gate path come here, everything else (plain HTTP GETs of those paths included) goes
to the app.

Handshake, in order, each failure a plain HTTP answer before any upgrade (clients see a
handshake error with the status, as with yagna): 401 no token; 400 an ip or port that is
not one; 404 a network that does not exist or is not the caller's; 400 an address
outside the network; 501 a node without gates; then the TCP connect inside the network:
400 refused, 504 no answer within `CONNECT_TIMEOUT` (5 s), 409 past `MAX_CONNECTIONS`
open gates in the network. Only a connected gate is
upgraded (101). The raw gate checks `src` (one of the requestor's addresses, else 400; 409
while another raw gate holds it, or for the first address while TCP gate connections use
it; a TCP gate is 409 while a raw gate holds the first address) and `dst` (a node's
address or the gateway, as yagna requires a known destination).

Raw gate data: one binary message is one Ethernet frame to the router (text messages
are dropped, as yagna drops them); every frame the router sends to `src` is one binary
message. The router checks the frames like any member's (source MAC `a0:13:<src>` and
source IP `src`, at most MTU + 14 bytes).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from ipaddress import AddressValueError, IPv4Address
from typing import Any
from urllib.parse import parse_qs

import structlog
import trio
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    Scope,
    WebsocketAcceptEvent,
    WebsocketCloseEvent,
    WebsocketScope,
    WebsocketSendEvent,
)

from actors.vpn_router import GetNetwork, NetworkNotFound
from golem_actor.adapters.vpn_gate import (
    AddressBusy,
    GateEnd,
    GateError,
    GateRefused,
    Gates,
    GateUnanswered,
    RawPort,
    SocketTcp,
    TooManyConnections,
    WsEnded,
    pump,
)
from golem_actor.domain.vpn.networks import VpnNetwork
from golem_actor.kernel import CallTimeout

from .context import ApiContext
from .gate_paths import RAW_PATH, TCP_PATH, refuse_handshake
from .net_api import NetApiError, caller_from

__all__ = ["GateRoutes"]

log = structlog.get_logger("golem_actor.api")
CLOSE_GONE = 1001  # the network was removed under the gate
MAX_FRAME = 65535


class AsgiWebsocket:
    """`WsSide` over one ASGI websocket connection (hypercorn's)."""

    def __init__(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        self._receive = receive
        self._send = send
        self.ended: WsEnded | None = None

    async def receive(self) -> bytes | WsEnded:
        if self.ended is not None:
            return self.ended
        while True:
            event: Any = await self._receive()
            if event["type"] == "websocket.receive":
                data = event.get("bytes")
                if data is not None:
                    return bytes(data)
                return str(event.get("text") or "").encode()
            if event["type"] == "websocket.disconnect":
                self.ended = WsEnded(clean=event.get("code") != 1006)
                return self.ended

    async def receive_frame(self) -> bytes | WsEnded | None:
        """For the raw gate: a binary message, None for a text one, or the end."""
        if self.ended is not None:
            return self.ended
        while True:
            event: Any = await self._receive()
            if event["type"] == "websocket.receive":
                data = event.get("bytes")
                return None if data is None else bytes(data)
            if event["type"] == "websocket.disconnect":
                self.ended = WsEnded(clean=event.get("code") != 1006)
                return self.ended

    async def send(self, data: bytes) -> None:
        await self._send(WebsocketSendEvent(type="websocket.send", bytes=data, text=None))

    async def close(self, code: int, reason: str) -> None:
        await self._send(WebsocketCloseEvent(type="websocket.close", code=code, reason=reason))

    async def accept(self) -> None:
        await self._send(
            WebsocketAcceptEvent(type="websocket.accept", subprotocol=None, headers=[])
        )

    async def reject(self, status: int, message: str) -> None:
        await refuse_handshake(self._send, status, message)


Gate = Callable[[AsgiWebsocket, WebsocketScope, tuple[str, ...]], Awaitable[None]]


class GateRoutes:
    """The ASGI app: gate websockets here, the rest to `app`."""

    def __init__(self, app: ASGIFramework, context: ApiContext) -> None:
        self.app = app
        self.context = context

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "websocket":
            path = scope["path"]
            gates: tuple[tuple[re.Pattern[str], Gate], ...] = (
                (TCP_PATH, self._tcp),
                (RAW_PATH, self._raw),
            )
            for pattern, gate in gates:
                found = pattern.match(path)
                if found is not None:
                    ws = AsgiWebsocket(receive, send)
                    await receive()  # websocket.connect
                    try:
                        await gate(ws, scope, found.groups())
                    except NetApiError as error:
                        await ws.reject(error.status, error.message)
                    return
        await self.app(scope, receive, send)

    async def _network(self, scope: WebsocketScope, network_id: str) -> VpnNetwork:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = parse_qs(scope["query_string"].decode("latin-1"))
        token = (query.get("authToken") or [""])[0]
        who = caller_from(headers.get("authorization"), token, self.context.operator_token)
        try:
            return await self.context.vpn_router.call(GetNetwork(who, network_id))
        except NetworkNotFound as error:
            raise NetApiError(404, str(error)) from error
        except CallTimeout as error:
            raise NetApiError(503, "the node is busy; try again") from error

    def _gates(self) -> Gates:
        if self.context.gates is None:
            raise NetApiError(501, "this node has no VPN data plane, so no gates")
        return self.context.gates

    async def _tcp(self, ws: AsgiWebsocket, scope: WebsocketScope, params: tuple[str, ...]) -> None:
        network_id, raw_ip, raw_port = params
        network = await self._network(scope, network_id)
        ip = _ip(raw_ip)
        if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
            raise NetApiError(400, f"Invalid port: {raw_port!r} (1 to 65535)")
        port = int(raw_port)
        if ip not in network.net:
            raise NetApiError(400, f"{ip} is outside the network {network.network}")
        gates = self._gates()
        try:
            stream, connection = await gates.connect(network, ip, port)
        except GateRefused as error:
            raise NetApiError(400, f"Socket closed: {error}") from error
        except GateUnanswered as error:
            raise NetApiError(504, str(error)) from error
        except (TooManyConnections, AddressBusy) as error:
            raise NetApiError(409, str(error)) from error
        except GateError as error:
            raise NetApiError(503, str(error)) from error
        tcp = SocketTcp(stream)
        log.info("gate connected", network_id=network_id, remote=f"{ip}:{port}")
        try:
            await ws.accept()
            end: GateEnd | None = None
            with connection.cancel:
                end, to_vm, from_vm = await pump(ws, tcp)
            if end is None:  # the network was removed under the gate
                tcp.abort()
                with trio.CancelScope(shield=True):
                    await ws.close(CLOSE_GONE, "the network was removed")
            else:
                log.info(
                    "gate closed",
                    network_id=network_id,
                    remote=f"{ip}:{port}",
                    end=str(end),
                    bytes_to_vm=to_vm,
                    bytes_from_vm=from_vm,
                )
        finally:
            gates.forget(connection)
            if stream.socket.fileno() != -1:  # ended before the pump could close it
                tcp.abort()

    async def _raw(self, ws: AsgiWebsocket, scope: WebsocketScope, params: tuple[str, ...]) -> None:
        network_id, raw_src, raw_dst = params
        network = await self._network(scope, network_id)
        src, dst = _ip(raw_src), _ip(raw_dst)
        if str(dst) not in {network.gateway, *(n.ip for n in network.nodes)}:
            raise NetApiError(400, f"destination address not found: {dst}")
        if str(src) not in network.addresses:
            raise NetApiError(400, f"{src} is not one of your addresses in this network")
        gates = self._gates()
        try:
            raw = await gates.open_raw(network, src)
        except AddressBusy as error:
            raise NetApiError(409, str(error)) from error
        except GateError as error:
            raise NetApiError(503, str(error)) from error
        log.info("raw gate opened", network_id=network_id, src=str(src), dst=str(dst))
        try:
            await ws.accept()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_frames_to_router, ws, raw, nursery.cancel_scope)
                nursery.start_soon(_frames_from_router, ws, raw, nursery.cancel_scope)
            if ws.ended is None:  # the port went away under the gate (network removed)
                with trio.CancelScope(shield=True):
                    await ws.close(CLOSE_GONE, "the raw gate's port is gone")
        finally:
            await gates.close_raw(raw)
            log.info("raw gate closed", network_id=network_id, src=str(src))


async def _frames_to_router(ws: AsgiWebsocket, raw: RawPort, done: trio.CancelScope) -> None:
    while True:
        frame = await ws.receive_frame()
        if isinstance(frame, WsEnded):
            done.cancel()
            return
        if frame is not None and 14 <= len(frame) <= MAX_FRAME:
            try:
                await raw.sock.send(frame)  # waits while the router's end is full
            except (trio.ClosedResourceError, OSError):
                done.cancel()  # the router detached the port, or the network went
                return


async def _frames_from_router(ws: AsgiWebsocket, raw: RawPort, done: trio.CancelScope) -> None:
    while True:
        try:
            frame = await raw.sock.recv(MAX_FRAME)
        except (trio.ClosedResourceError, OSError):
            done.cancel()  # closed under us: the network was removed
            return
        await ws.send(frame)


def _ip(raw: str) -> IPv4Address:
    try:
        return IPv4Address(raw)
    except AddressValueError as error:
        raise NetApiError(400, f"Invalid IP address: {raw!r}") from error
