"""JSON-RPC 2.0 over HTTP (`POST /rpc`, single requests and batches) and over a WebSocket
(`/rpc/ws`, one message per exchange) on 127.0.0.1, for test doubles of chain nodes.

The double gives a `dispatch(method, params)` that returns a result or raises `RpcFault`
(its code and message become the error object, as a node's would); a `TypeError` (wrong
params) is `-32602`, an unknown shape `-32600`, undecodable JSON `-32700`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import msgspec
import trio
from quart import request, websocket
from quart_trio import QuartTrio

from golem_actor.portcheck.server import serve_app

__all__ = ["Dispatch", "RpcFault", "answer", "serving_rpc"]

Dispatch = Callable[[str, list[Any]], Any]


class RpcFault(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _one(dispatch: Dispatch, item: Any) -> dict[str, Any]:
    request_id = item.get("id") if isinstance(item, dict) else None
    try:
        if not isinstance(item, dict) or not isinstance(item.get("method"), str):
            raise RpcFault(-32600, "invalid request")
        result = dispatch(item["method"], list(item.get("params") or []))
    except RpcFault as fault:
        error = {"code": fault.code, "message": fault.message}
        return {"jsonrpc": "2.0", "id": request_id, "error": error}
    except TypeError as exc:
        error = {"code": -32602, "message": f"invalid params: {exc}"}
        return {"jsonrpc": "2.0", "id": request_id, "error": error}
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def answer(dispatch: Dispatch, body: bytes) -> bytes:
    """One JSON-RPC exchange (a request or a batch), encoded."""
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        error = {"code": -32700, "message": "parse error"}
        return msgspec.json.encode({"jsonrpc": "2.0", "id": None, "error": error})
    if isinstance(decoded, list):
        return msgspec.json.encode([_one(dispatch, item) for item in decoded])
    return msgspec.json.encode(_one(dispatch, decoded))


def _app(dispatch: Dispatch) -> QuartTrio:
    app = QuartTrio("jsonrpc_double")

    @app.post("/rpc")
    async def rpc() -> tuple[bytes, int, dict[str, str]]:
        body = await request.get_data(as_text=False)
        assert isinstance(body, bytes)
        return answer(dispatch, body), 200, {"content-type": "application/json"}

    @app.websocket("/rpc/ws")
    async def rpc_ws() -> None:
        while True:
            message = await websocket.receive()
            raw = message.encode() if isinstance(message, str) else message
            await websocket.send(answer(dispatch, raw).decode())

    return app


@asynccontextmanager
async def serving_rpc(dispatch: Dispatch) -> AsyncIterator[tuple[str, str]]:
    """`dispatch` served on a free port of 127.0.0.1: (HTTP URL, WebSocket URL)."""
    async with trio.open_nursery() as nursery:
        app = _app(dispatch)
        binds: list[str] = await nursery.start(partial(serve_app, app, "127.0.0.1", 0))
        base = binds[0]
        yield f"{base}/rpc", base.replace("http://", "ws://") + "/rpc/ws"
        nursery.cancel_scope.cancel()
