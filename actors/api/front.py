"""The API's listener: hypercorn's trio worker, with a fast lane for the hottest requests.

Why: measured under wrk, hypercorn's own HTTP/1.1 machinery (h11 parsing and
serialising, a task and several cancel scopes per request, its idle timers) costs about
what the upstream FastAPI service spends on a whole request (an empty ASGI app on
hypercorn-trio: 330-400 us of CPU per request here, upstream 330-355 us), so no work
inside the app could make the node's trivial routes cheaper than upstream's. A plain
trio loop answering the same bytes costs about 30 us. So each connection starts in a
small lane of our own that answers plain `GET`s of the routes `FastRoutes` knows, and
hands the connection to hypercorn, for good, at the first request it does not take.

What the lane takes, and what it does not (anything not taken goes to hypercorn with
the bytes read so far, so hypercorn sees the connection as if it had read them itself):
- a request head that arrives whole within the keep-alive timeout, as hypercorn's idle
  timer requires (past it the connection closes silently, as hypercorn closes it; a head
  past hypercorn's incomplete-size bound, or one ending in bare LFs, goes to hypercorn,
  which refuses or parses it), `GET <path> HTTP/1.1` with a path of plain characters
  (no percent-escapes, no absolute form), header lines of visible ASCII, exactly one
  `Host`, no `Connection` header and no body (`Content-Length`, `Transfer-Encoding`);
- a route `FastRoutes.answer` answers (otherwise: the app's business, even its errors);
- `RequestLimits.admits` it (the head size bound, the client's read bucket; a refusal is
  hypercorn's and the app's to answer, with its 429 or 431 and its log line).
The answer is what hypercorn would write: status line `HTTP/1.1 200 `, the app's
headers, then `date` and `server` as hypercorn's config adds them. Idle connections
close after `keep_alive_timeout` as hypercorn's do, and at shutdown at once.

The rest of `serve` is hypercorn's `worker_serve` (hypercorn is pinned: it builds on its
`TCPServer`, `Lifespan` and `WorkerContext`): lifespan, listening sockets from the
config, a graceful stop when `shutdown_trigger` returns.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from functools import partial
from wsgiref.handlers import format_date_time

import trio
from hypercorn.config import Config
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ASGIFramework, ConnectionState, HTTPScope
from hypercorn.utils import (
    ShutdownError,
    parse_socket_addr,
    raise_shutdown,
    repr_socket_addr,
    wrap_app,
)

from .fast import FastRoutes
from .limits import RequestLimits, client_key

_MAX_RECV = 2**16
_HEAD_END = b"\r\n\r\n"
_REQUEST_LINE = re.compile(rb"GET (/[A-Za-z0-9/_.~-]*)(?:\?([\x21-\x7e]*))? HTTP/1\.1")
_HEADER_LINE = re.compile(
    rb"([-!#$%&'*+.^_`|~0-9a-zA-Z]+):[ \t]*([\x21-\x7e]+(?:[ \t]+[\x21-\x7e]+)*)?[ \t]*"
)
_NOT_IN_LANE = frozenset({b"connection", b"content-length", b"transfer-encoding"})


def _maybe_head_end(data: bytes) -> bool:
    """Does `data` hold a head end that h11 accepts and the lane does not (bare LFs)?"""
    return b"\n\n" in data or b"\n\r\n" in data


Handover = Callable[[trio.abc.HalfCloseableStream], Awaitable[None]]


class Replayed(trio.abc.HalfCloseableStream):
    """A socket stream whose first reads return bytes already taken from it."""

    def __init__(self, stream: trio.SocketStream, head: bytes) -> None:
        self.stream = stream
        self.socket = stream.socket  # hypercorn reads the addresses from it
        self._head = head

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._head:
            size = len(self._head) if max_bytes is None else max_bytes
            data, self._head = self._head[:size], self._head[size:]
            await trio.lowlevel.checkpoint()
            return data
        return bytes(await self.stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.stream.send_eof()

    async def aclose(self) -> None:
        await self.stream.aclose()


class FastLane:
    """Serves each connection's plain hot GETs, then hands it to hypercorn."""

    def __init__(self, routes: FastRoutes, limits: RequestLimits, config: Config) -> None:
        self.routes = routes
        self.limits = limits
        self.keep_alive_timeout = config.keep_alive_timeout
        self.max_incomplete = config.h11_max_incomplete_size
        self._date = config.include_date_header
        self._server = b"server: hypercorn-h11\r\n" if config.include_server_header else b""
        self._second: tuple[int, bytes] = (-1, b"")
        self._idle: set[trio.CancelScope] = set()
        self._closing = False

    def close_idle(self) -> None:
        """Shutdown: idle connections close now, and none waits for a request again."""
        self._closing = True
        for scope in self._idle:
            scope.cancel()

    async def connection(self, stream: trio.SocketStream, *, handover: Handover) -> None:
        try:
            rest = await self._serve(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            rest = None
        if rest is None:
            with trio.CancelScope(shield=True):
                await stream.aclose()
            return
        await handover(Replayed(stream, rest))

    async def _serve(self, stream: trio.SocketStream) -> bytes | None:
        """Answer requests until one is not for the lane: the bytes from it on (None:
        the connection is over)."""
        sock = stream.socket
        client = parse_socket_addr(sock.family, sock.getpeername())
        key: str | None = None
        buffer = b""
        while True:
            # As hypercorn's idle timer: from the last answer until a whole head is in.
            deadline = trio.current_time() + self.keep_alive_timeout
            while (end := buffer.find(_HEAD_END)) < 0:
                if _maybe_head_end(buffer) or len(buffer) > self.max_incomplete:
                    return buffer  # h11 decides what these are
                data = await self._receive(stream, deadline)
                if data is None:  # idle too long, or shutting down: closed silently
                    return None
                if not data:  # the client's EOF: hypercorn answers what came before it
                    return buffer or None
                buffer += data
            started = time.perf_counter()
            scope = self._scope(buffer[:end], client)
            answer = None if scope is None else self.routes.answer(scope)
            if scope is None or answer is None:
                return buffer
            if key is None:
                key = client_key(scope)
            if not self.limits.admits(scope, key):
                return buffer
            buffer = buffer[end + len(_HEAD_END) :]
            self.routes.log(scope["path"], started)
            body, headers = answer
            await stream.send_all(self._response(body, headers))

    async def _receive(self, stream: trio.SocketStream, deadline: float) -> bytes | None:
        """The next bytes; b"" at EOF; None when the deadline passed or the server stops."""
        if self._closing:
            return None
        with trio.CancelScope(deadline=deadline) as idle:
            self._idle.add(idle)
            try:
                return bytes(await stream.receive_some(_MAX_RECV))
            finally:
                self._idle.discard(idle)
        return None

    @staticmethod
    def _scope(head: bytes, client: tuple[str, int] | None) -> HTTPScope | None:
        lines = head.split(b"\r\n")
        request = _REQUEST_LINE.fullmatch(lines[0])
        if request is None:
            return None
        headers: list[tuple[bytes, bytes]] = []
        hosts = 0
        for line in lines[1:]:
            field = _HEADER_LINE.fullmatch(line)
            if field is None:
                return None
            name = field.group(1).lower()
            if name in _NOT_IN_LANE:
                return None
            hosts += name == b"host"
            headers.append((name, field.group(2) or b""))
        if hosts != 1:
            return None
        raw_path, query = request.group(1), request.group(2) or b""
        scope: HTTPScope = {
            "type": "http",
            "asgi": {"spec_version": "2.1", "version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": raw_path.decode("ascii"),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": headers,
            "client": client,
            "server": None,
            "extensions": {},
            "state": ConnectionState({}),
        }
        return scope

    def _response(self, body: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
        parts = [b"HTTP/1.1 200 \r\n"]
        parts.extend(b"%s: %s\r\n" % (name, value) for name, value in headers)
        if self._date:
            parts.append(self._date_line())
        parts.append(self._server)
        parts.append(b"\r\n")
        parts.append(body)
        return b"".join(parts)

    def _date_line(self) -> bytes:
        now = int(time.time())
        second = self._second
        if second[0] != now:
            second = (now, b"date: %s\r\n" % format_date_time(now).encode("ascii"))
            self._second = second
        return second[1]


async def serve(
    app: ASGIFramework,
    config: Config,
    lane: FastLane,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]],
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """hypercorn's trio `serve` of `app` (ASGI), each connection starting in `lane`."""
    config.set_statsd_logger_class(StatsdLogger)
    wrapped = wrap_app(app, config.wsgi_max_body_size, "asgi")
    lifespan_state: dict[str, object] = {}
    lifespan = Lifespan(wrapped, config, lifespan_state)
    context = WorkerContext(None)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as server_nursery:
            sockets = config.create_sockets()
            listeners = []
            binds = []
            for sock in sockets.insecure_sockets:
                sock.listen(config.backlog)
                listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
                binds.append(f"http://{repr_socket_addr(sock.family, sock.getsockname())}")
            handover = partial(
                TCPServer, wrapped, config, context, ConnectionState(lifespan_state.copy())
            )
            task_status.started(binds)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(raise_shutdown, shutdown_trigger)
                    nursery.start_soon(raise_shutdown, context.terminate.wait)
                    nursery.start_soon(
                        partial(
                            trio.serve_listeners,
                            partial(lane.connection, handover=handover),
                            listeners,
                            handler_nursery=server_nursery,
                        )
                    )
                    await trio.sleep_forever()
            except BaseExceptionGroup as error:
                _, others = error.split((ShutdownError, KeyboardInterrupt))
                if others is not None:
                    raise others from None
            finally:
                await context.terminated.set()
                lane.close_idle()
                server_nursery.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
