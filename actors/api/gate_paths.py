"""The Net API's prefixes, its gates' paths and the refusal of a gate handshake: kept
apart so the request limits in front of the app (limits.py) can tell a gate handshake
apart and refuse it as the gates do, without importing the routes (which import the
API's context, which imports the limits)."""

from __future__ import annotations

import re
from collections.abc import Iterable

import msgspec
from hypercorn.typing import (
    ASGISendCallable,
    WebsocketResponseBodyEvent,
    WebsocketResponseStartEvent,
)

__all__ = ["NET_API_PREFIXES", "RAW_PATH", "TCP_PATH", "is_gate_path", "refuse_handshake"]

NET_API_PREFIXES = ("/net-api/v1", "/net-api/v2/vpn")
_PREFIXES = "|".join(re.escape(p) for p in NET_API_PREFIXES)
TCP_PATH = re.compile(rf"^(?:{_PREFIXES})/net/([^/]+)/tcp/([^/]+)/([^/]+)$")
RAW_PATH = re.compile(rf"^(?:{_PREFIXES})/net/([^/]+)/raw/from/([^/]+)/to/([^/]+)$")


def is_gate_path(path: str) -> bool:
    """A TCP or raw gate's path (a websocket there opens a connection or a port)."""
    return TCP_PATH.match(path) is not None or RAW_PATH.match(path) is not None


async def refuse_handshake(
    send: ASGISendCallable,
    status: int,
    message: str,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Answer a websocket handshake with a plain HTTP `status` instead of the upgrade,
    with the Net API's error body (`message` and `detail`, as yagna's clients read it)."""
    body = msgspec.json.encode({"message": message, "detail": message})
    head = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send(
        WebsocketResponseStartEvent(
            type="websocket.http.response.start", status=status, headers=[*head, *headers]
        )
    )
    await send(
        WebsocketResponseBodyEvent(type="websocket.http.response.body", body=body, more_body=False)
    )
