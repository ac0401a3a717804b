"""Router-to-router links: the IO of `golem_actor.domain.vpn.link` over websockets.

Theory of operation
-------------------
A *link* is our way to the VMs of one network on one peer node: one per (network,
location) pair of the registry, for networks that have a `linkSecret`. Its endpoint id
is `link-<digest>`; in the fabric it is an ordinary endpoint whose fd is one end of a
unix datagram socketpair, and the remote VMs reached through it are its members (ports
of kind REMOTE while the link is up, UNLOCATED while it is down, so the switch drops
their traffic and counts it). The switch keeps split horizon (no frame from a link goes
back out on a link) and sends a broadcast once per link.

`carry` is the life of one connected link: it reads the frames the fabric wrote into
the socketpair (bounded: the socket buffer, then the fabric's egress queues which drop
the newest), packs them into length-prefixed batches, and sends each batch as one
websocket message. It pings the peer every `PING_EVERY` seconds and gives up when a pong
takes longer than `PING_BOUND`; it returns when the connection ends for any reason, so
the actor marks the link down and dials again after `backoff`. The only messages the peer
sends on it are its lists of the node ids it hosts, handed to the `hosted` callback.

Frames from a peer arrive on the connection the *peer* dialed (the Net API's link route,
actors/api/net_links.py) and are handed to `deliver`: each frame is routed from the
member that owns its source MAC, which must be a remote member of that network (a peer
cannot speak for this node's VMs); anything else is dropped and counted.

The handshake functions take any `MessageChannel`, so tests drive them over memory
channels; the actor passes trio-websocket connections.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import trio
import trio.lowlevel
import trio_websocket

from golem_actor.domain.vpn import link as wire

from .fabric import Fabric
from .ports import MAX_FRAME, FdPort

__all__ = [
    "PING_BOUND",
    "PING_EVERY",
    "Dialer",
    "LinkCounters",
    "LinkDown",
    "LinkSpec",
    "MessageChannel",
    "WsChannel",
    "accept_handshake",
    "carry",
    "close",
    "deliver",
    "dial",
    "dial_handshake",
    "link_endpoint",
    "open_link_pair",
]

PING_EVERY = 5.0
PING_BOUND = 10.0
DIAL_BOUND = 10.0  # seconds for the TCP connect, the websocket upgrade and the handshake
READ_BATCH = 64
CLOSE_BOUND = 1.0


class MessageChannel(Protocol):
    """One message at a time, both ways (a websocket, or memory channels in tests)."""

    async def send(self, message: bytes) -> None: ...

    async def receive(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """A wanted link: network `network_id` of ours to `location` with `secret`."""

    endpoint: str
    network_id: str
    location: str
    secret: bytes
    target: str  # the peer's network id: the last but one segment of the location's path


@dataclass(slots=True)
class LinkCounters:
    up: bool = False
    dials: int = 0
    failures: int = 0
    drops: int = 0  # connections that ended after they were up
    frames_out: int = 0
    messages_out: int = 0
    last_error: str = ""
    attempt: int = 0  # failed dials since the last success (for the backoff)
    hosted: frozenset[str] | None = None  # what the peer said it hosts (None: not said)
    reported: tuple[str, ...] = ()  # the unhosted nodes last warned about


def link_endpoint(network_id: str, location: str) -> str:
    digest = hashlib.sha256(f"{network_id}|{location}".encode()).hexdigest()[:16]
    return f"link-{digest}"


def target_of(location: str) -> str:
    """The peer's network id from `…/net/<id>/link` (empty when the path has no such
    segment: the handshake then binds to the empty id, and the peer refuses it)."""
    segments = [s for s in location.split("?", maxsplit=1)[0].split("/") if s]
    return segments[-2] if len(segments) >= 2 and segments[-1] == "link" else ""


def open_link_pair() -> tuple[FdPort, socket.socket]:
    """The fabric's end (an FdPort) and the link's end of a fresh datagram socketpair."""
    fabric_end, link_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    fd = fabric_end.detach()
    link_end.setblocking(False)
    return FdPort(fd), link_end


# -- handshake ------------------------------------------------------------------------------


async def dial_handshake(channel: MessageChannel, secret: bytes, target: str) -> None:
    """The client's half; raises LinkAuthError when the server is not the network's."""
    server_nonce = wire.parse_challenge(await channel.receive())
    client_nonce = os.urandom(wire.NONCE_LEN)
    await channel.send(wire.client_hello(secret, target, server_nonce, client_nonce))
    expected = wire.server_proof(secret, target, server_nonce, client_nonce)
    wire.parse_server_proof(await channel.receive(), expected)


async def accept_handshake(channel: MessageChannel, secret: bytes, target: str) -> None:
    """The server's half; raises LinkAuthError when the client does not know the secret."""
    server_nonce = os.urandom(wire.NONCE_LEN)
    await channel.send(wire.challenge(server_nonce))
    client_nonce, proof = wire.parse_client_hello(await channel.receive())
    expected = wire.client_proof(secret, target, server_nonce, client_nonce)
    if not hmac.compare_digest(proof, expected):
        raise wire.LinkAuthError("the client does not know the network's secret")
    await channel.send(wire.MAGIC + wire.server_proof(secret, target, server_nonce, client_nonce))


class WsChannel:
    """A trio-websocket connection as a MessageChannel (text messages taken as bytes)."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws

    async def send(self, message: bytes) -> None:
        await self.ws.send_message(message)

    async def receive(self) -> bytes:
        message = await self.ws.get_message()
        return message.encode() if isinstance(message, str) else message


Dialer = Callable[[trio.Nursery, "LinkSpec"], Awaitable[trio_websocket.WebSocketConnection]]


class LinkDown(Exception):
    """A dial failed, or a connected link ended: why, for the log and the stats."""


async def dial(nursery: trio.Nursery, spec: LinkSpec) -> trio_websocket.WebSocketConnection:
    """Connect to the peer and authenticate (within DIAL_BOUND); LinkDown otherwise."""
    ws: trio_websocket.WebSocketConnection | None = None
    done = False
    try:
        with trio.fail_after(DIAL_BOUND):
            ws = await trio_websocket.connect_websocket_url(
                nursery, spec.location, message_queue_size=4
            )
            await dial_handshake(WsChannel(ws), spec.secret, spec.target)
    except (
        OSError,
        trio.TooSlowError,
        trio.BrokenResourceError,
        trio_websocket.HandshakeError,
    ) as exc:
        raise LinkDown(f"dial failed: {exc!r}") from exc
    except trio_websocket.ConnectionClosed as exc:
        raise LinkDown(f"refused by the peer: {exc.reason}") from exc
    except wire.LinkAuthError as exc:
        raise LinkDown(f"authentication failed: {exc}") from exc
    else:
        done = True
    finally:
        if ws is not None and not done:  # failed or cancelled: its reader task ends too
            await close(ws)
    return ws


async def carry(
    ws: trio_websocket.WebSocketConnection,
    link_end: socket.socket,
    counters: LinkCounters,
    hosted: Callable[[frozenset[str]], Awaitable[None]],
) -> str:
    """Send what the fabric writes for this link until the connection ends; why it did."""
    reasons: list[str] = []

    async def send_frames() -> None:
        while True:
            await trio.lowlevel.wait_readable(link_end)
            frames = _read_batch(link_end)
            for message in wire.encode_batches(frames):
                await ws.send_message(message)
                counters.messages_out += 1
            counters.frames_out += len(frames)

    async def keep_alive() -> None:
        while True:
            await trio.sleep(PING_EVERY)
            with trio.fail_after(PING_BOUND):
                await ws.ping()

    async def watch() -> None:
        while True:
            message = await ws.get_message()
            data = message.encode() if isinstance(message, str) else message
            with contextlib.suppress(wire.LinkAuthError):  # a newer peer's: not ours to read
                await hosted(wire.parse_hosted(data))

    async def until_it_ends(task: Callable[[], Awaitable[None]], scope: trio.CancelScope) -> None:
        try:
            await task()
        except trio_websocket.ConnectionClosed as exc:
            reasons.append(f"closed: {exc.reason}")
        except trio.TooSlowError:
            reasons.append(f"no pong within {PING_BOUND:g} s")
        except (OSError, trio.BrokenResourceError) as exc:
            reasons.append(f"socket error: {exc!r}")
        scope.cancel()  # one way ended: the link is down

    try:
        async with trio.open_nursery() as nursery:
            for task in (send_frames, keep_alive, watch):
                nursery.start_soon(until_it_ends, task, nursery.cancel_scope)
    finally:
        await close(ws)
    return reasons[0] if reasons else "closed"


async def close(ws: trio_websocket.WebSocketConnection) -> None:
    """Close within CLOSE_BOUND, even when cancelled (a peer that never answers the close
    handshake must not hold a link, or the node's stop, forever)."""
    with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_BOUND):
        await ws.aclose()


def _read_batch(link_end: socket.socket) -> list[bytes]:
    frames: list[bytes] = []
    try:
        while len(frames) < READ_BATCH:
            frames.append(link_end.recv(MAX_FRAME))
    except (BlockingIOError, InterruptedError):
        pass
    return frames


# -- inbound -----------------------------------------------------------------------------------


def deliver(
    fabric: Fabric, network_id: str, message: bytes, is_remote: Callable[[str], bool]
) -> int:
    """Route the frames of one message a peer sent for `network_id`; the number dropped
    here (malformed batch, or a source MAC that is not a remote member's)."""
    frames, whole = wire.decode_batch(message)
    dropped = 0 if whole else 1
    switch = fabric.switch
    route, push, counters = switch.route, fabric.queues.push_all, fabric.counters
    for frame in frames:
        mid = switch.port_for_mac(network_id, frame[6:12])
        if mid is None or not is_remote(mid):
            dropped += 1
            continue
        counters.frames_in += 1
        routed = route(mid, frame)
        if routed:
            counters.egress_dropped += push(routed)
    fabric.flush()
    return dropped
