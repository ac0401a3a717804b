"""A CoinGecko-compatible price feed on 127.0.0.1 for tests: plain HTTP/1.1 on a trio socket.

The test sets what the next answers are (`answer`: a JSON document, or `(status, raw
bytes)`, or `HANG` to never answer), how long each answer takes (`delay`, seconds) and
reads the request paths it received.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

HANG = "hang"


def prices(glm: float | None = None, eth: float | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {}
    if glm is not None:
        document["golem"] = {"usd": glm}
    if eth is not None:
        document["ethereum"] = {"usd": eth}
    return document


@dataclass
class FeedServer:
    answer: Any = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    port: int = 0
    delay: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v3"

    async def handle(self, stream: trio.SocketStream) -> None:
        data = b""
        with trio.move_on_after(5):
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    return
                data += chunk
        self.requests.append(data.split(b"\r\n", 1)[0].decode().split(" ")[1])
        await trio.sleep(self.delay)
        answer = self.answer
        if answer == HANG:
            await trio.sleep_forever()
        if isinstance(answer, tuple):
            status, body = answer
        else:
            status, body = 200, json.dumps(answer).encode()
        head = (
            f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        with suppress(trio.BrokenResourceError):
            await stream.send_all(head.encode() + body)
        await stream.aclose()


@asynccontextmanager
async def feed_server(answer: Any = None, delay: float = 0.0) -> AsyncIterator[FeedServer]:
    server = FeedServer(answer=answer if answer is not None else {}, delay=delay)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1"))
        server.port = listeners[0].socket.getsockname()[1]
        yield server
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def dead_port() -> AsyncIterator[str]:
    """A URL on 127.0.0.1 where nothing listens (the port is held closed meanwhile)."""
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        yield f"http://127.0.0.1:{port}/api/v3"
