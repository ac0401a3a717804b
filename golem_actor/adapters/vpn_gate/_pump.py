"""The TCP gate's pump: a websocket carries one TCP connection's bytes, both ways.

Theory of operation
-------------------
Two loops in one nursery, one per direction, each moving one message or one chunk at a
time, so neither side is ever read faster than the other side takes it (backpressure):

- websocket -> TCP: every message, binary or text (text as its UTF-8 bytes: message
  boundaries mean nothing, as in yagna), is written whole before the next is read;
- TCP -> websocket: at most `CHUNK` bytes are read, then sent as one binary message; the
  next read waits until the websocket took it.

Closing propagates at once, in both directions (yagna does neither, golem-vpn.md §7.5b):

- the client closes the websocket: the VM gets a FIN (`TcpSide.finish`); a websocket that
  ends without a close handshake (the client vanished) is an abort: the VM gets a RST
  (`TcpSide.abort`);
- the VM sends a FIN: the websocket is closed with 1000; a RST: closed with 1011.

There is no half-close: a websocket cannot say "no more from me" and keep reading, so a
FIN either way ends both directions. The sides are protocols so that the logic is tested
over fakes; the real ones are the ASGI websocket (actors/api/gates.py) and `SocketTcp`.
"""

from __future__ import annotations

import contextlib
import enum
import socket
import struct
from dataclasses import dataclass
from typing import Protocol

import trio

__all__ = [
    "CHUNK",
    "CLOSE_NORMAL",
    "CLOSE_RESET",
    "GateEnd",
    "SocketTcp",
    "TcpSide",
    "WsEnded",
    "WsSide",
    "pump",
]

CHUNK = 64 * 1024  # one websocket message at most (what yapapi and yagna expect per message)
CLOSE_NORMAL = 1000
CLOSE_RESET = 1011
_FIN_GRACE = 1.0  # after our FIN, how long the VM's last bytes are drained before close


@dataclass(frozen=True)
class WsEnded:
    """The websocket is over: `clean` when the client closed it with a close frame."""

    clean: bool


class WsSide(Protocol):
    async def receive(self) -> bytes | WsEnded: ...

    async def send(self, data: bytes) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class TcpSide(Protocol):
    async def receive_some(self, max_bytes: int) -> bytes: ...

    async def send_all(self, data: bytes) -> None: ...

    async def finish(self) -> None:
        """Send a FIN, let the VM's last bytes drain a moment, close."""

    def abort(self) -> None:
        """Close with a RST."""


class GateEnd(enum.StrEnum):
    CLIENT_CLOSED = "client_closed"
    CLIENT_ABORTED = "client_aborted"
    VM_CLOSED = "vm_closed"
    VM_RESET = "vm_reset"


@dataclass
class _Tally:
    end: GateEnd | None = None
    to_vm: int = 0
    from_vm: int = 0


async def pump(ws: WsSide, tcp: TcpSide) -> tuple[GateEnd, int, int]:
    """Carry bytes until one side ends; returns how it ended, bytes to and from the VM."""
    tally = _Tally()
    async with trio.open_nursery() as nursery:

        def ended(end: GateEnd) -> None:
            if tally.end is None:
                tally.end = end
            nursery.cancel_scope.cancel()

        async def to_vm() -> None:
            while True:
                got = await ws.receive()
                if isinstance(got, WsEnded):
                    ended(GateEnd.CLIENT_CLOSED if got.clean else GateEnd.CLIENT_ABORTED)
                    return
                try:
                    await tcp.send_all(got)
                except trio.BrokenResourceError:
                    ended(GateEnd.VM_RESET)
                    return
                tally.to_vm += len(got)

        async def from_vm() -> None:
            while True:
                try:
                    data = await tcp.receive_some(CHUNK)
                except trio.BrokenResourceError:
                    ended(GateEnd.VM_RESET)
                    return
                if not data:
                    ended(GateEnd.VM_CLOSED)
                    return
                await ws.send(data)
                tally.from_vm += len(data)

        nursery.start_soon(to_vm)
        nursery.start_soon(from_vm)
    assert tally.end is not None  # only `ended` cancels the nursery
    with trio.CancelScope(shield=True):  # the ends must go out even when we are cancelled
        match tally.end:
            case GateEnd.CLIENT_CLOSED:
                await tcp.finish()
            case GateEnd.CLIENT_ABORTED:
                tcp.abort()
            case GateEnd.VM_CLOSED:
                await ws.close(CLOSE_NORMAL, "the VM closed the connection")
                await tcp.finish()
            case GateEnd.VM_RESET:
                await ws.close(CLOSE_RESET, "the VM reset the connection")
                tcp.abort()
    return tally.end, tally.to_vm, tally.from_vm


class SocketTcp:
    """`TcpSide` over a connected trio socket stream."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream

    async def receive_some(self, max_bytes: int) -> bytes:
        return await self.stream.receive_some(max_bytes)

    async def send_all(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def finish(self) -> None:
        sock = self.stream.socket
        try:
            sock.shutdown(socket.SHUT_WR)
            with trio.move_on_after(_FIN_GRACE):  # unread bytes at close would mean a RST
                while await sock.recv(CHUNK):
                    pass
        except OSError:
            pass  # reset meanwhile: it is over either way
        sock.close()

    def abort(self) -> None:
        sock = self.stream.socket
        with contextlib.suppress(OSError):  # closed already
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
