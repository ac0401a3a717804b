"""hypercorn reports every client-side websocket end as 1006: tell a close from an abort.

hypercorn 0.18's `WSStream` answers a client's close frame and then handles its own
`StreamClosed`, where any stream it did not close itself gets `websocket.disconnect`
with 1006 (abnormal closure), so an app cannot tell a client that closed the websocket
from one whose connection just died. The TCP gate needs the difference (a close is a FIN
to the VM, an abort a RST). After a completed close handshake the stream's wsproto
connection is CLOSED; with this patch such a stream is marked closed before hypercorn
picks the code, so the app sees 1000. Nothing else changes (hypercorn ignores an app's
sends after the end either way). `tests/unit/test_gate_pump.py` checks both codes
against the installed hypercorn, so an upgrade that changes this shows up at once.
"""

from __future__ import annotations

from typing import Any

from hypercorn.protocol.events import StreamClosed
from hypercorn.protocol.ws_stream import ASGIWebsocketState, WSStream
from wsproto.connection import ConnectionState

__all__ = ["report_clean_websocket_close"]

_PATCHED = "_golem_actor_clean_close"


def report_clean_websocket_close() -> None:
    """Patch `WSStream.handle` once per process (idempotent)."""
    if getattr(WSStream, _PATCHED, False):
        return
    original = WSStream.handle

    async def handle(self: WSStream, event: Any) -> None:
        if (
            isinstance(event, StreamClosed)
            and not self.closed
            and self.state == ASGIWebsocketState.CONNECTED
            and getattr(self, "connection", None) is not None
            and self.connection.state is ConnectionState.CLOSED
        ):
            self.state = ASGIWebsocketState.CLOSED  # a close handshake: 1000, not 1006
        await original(self, event)

    WSStream.handle = handle  # type: ignore[method-assign]
    setattr(WSStream, _PATCHED, True)
