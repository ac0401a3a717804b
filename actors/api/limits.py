"""Per-client limits in front of the node's API: request rates and concurrent creates.

Why: one client must not be able to use up the node's work for everyone else. A client is
its TCP source address (an IPv6 /64 counts as one); each gets two token buckets, one for
reading routes and one for mutating ones, and at most a few synchronous creates running
at once. Past a limit the answer is 429 with `Retry-After` and a JSON `detail`, before the
app reads anything. A Net API gate handshake (a websocket that opens a TCP connection
inside a network, or a raw port) takes a token of the changing bucket too, refused with a
429 before the upgrade; the links between nodes have their own admission
(link_admission.py), since a node's reconnects must not starve behind its tenants. The
operator's token is exempt: the host's own operator is not throttled by their node. This
is an ASGI wrapper around the app, so the routes know nothing of it; the buckets are the
ones the port-check and discovery servers use (golem_actor.ratelimit). The head size
(hypercorn's own bound only covers a head still arriving) and the time a body may take
are checked here too; the idle and header timeouts are hypercorn's, set by the actor
from the same `ApiLimits`.
"""

from __future__ import annotations

import collections
import hmac
from dataclasses import dataclass

import msgspec
import structlog
import trio
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    ASGISendEvent,
    HTTPScope,
    Scope,
    WebsocketScope,
)

from golem_actor.ratelimit import InFlight, RateLimiter

from .gate_paths import is_gate_path, refuse_handshake
from .link_admission import peer_key
from .schemas import ErrorBody

log = structlog.get_logger("golem_actor.api")

READING_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, kw_only=True)
class ApiLimits:
    """The API's bounds; the defaults are those of config/defaults.toml."""

    read_per_minute: float = 1200.0
    read_burst: int = 200
    write_per_minute: float = 120.0
    write_burst: int = 60
    max_concurrent_creates: int = 4  # synchronous creates one client has running at once
    keep_alive_timeout: float = 5.0  # an idle connection, or unfinished headers, is closed
    body_timeout: float = 10.0  # a request body must have arrived within this
    max_header_bytes: int = 16 * 1024
    max_clients: int = 10_000  # buckets kept; the least recently seen are forgotten
    max_pending_links: int = 64  # link route connections not yet authenticated, in all
    max_pending_links_per_peer: int = 8  # ... from one source address


@dataclass(frozen=True)
class _Refusal:
    status: int
    detail: str
    retry_after: str | None = None


class RequestLimits:
    """The ASGI app that admits a request to `app` or answers 429 itself."""

    def __init__(
        self,
        app: ASGIFramework,
        limits: ApiLimits,
        *,
        operator_token: str,
        create_path: str,
        max_body: int,
    ) -> None:
        self.app = app
        self.limits = limits
        self.operator_token = operator_token.encode()
        self.create_path = create_path
        self.max_body = max_body
        self.reads = RateLimiter(
            limits.read_per_minute, limits.read_burst, max_sources=limits.max_clients
        )
        self.writes = RateLimiter(
            limits.write_per_minute, limits.write_burst, max_sources=limits.max_clients
        )
        self.creates = InFlight(limits.max_concurrent_creates)
        self._limited: set[str] = set()  # clients refused since their last admitted request

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket" and is_gate_path(scope["path"]):
            await self._gate(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _gate(
        self, scope: WebsocketScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        key = client_key(scope)
        wait = None if self._is_operator(scope) else self.writes.acquire(key, trio.current_time())
        if wait is None:
            self._limited.discard(key)
            await self.app(scope, receive, send)
            return
        detail = f"too many gate connections opened from {key}; retry in {wait:.1f} s"
        self._note_refusal(key, scope["path"], detail)
        retry = RateLimiter.retry_after_header(wait).encode()
        await refuse_handshake(send, 429, detail, [(b"retry-after", retry)])

    async def _http(
        self, scope: HTTPScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        key = client_key(scope)
        operator = self._is_operator(scope)
        creating = scope["method"].upper() == "POST"
        creating = creating and scope["path"].rstrip("/") == self.create_path
        refusal = self._refusal(scope, key, operator=operator, creating=creating)
        # The whole (small) body is read before anyone answers: an answer while a body
        # still arrives can make hypercorn lose the next request on the connection. A
        # body that trickles is cut here, and an answer to an unfinished request closes
        # its connection. (Not left to Quart's BODY_TIMEOUT: its 408 races the close.)
        events, unread = await self._read_body(receive)
        refusal = refusal or unread
        if refusal is not None:
            if refusal.status == 429:
                self._note_refusal(key, scope["path"], refusal.detail)
            await self._answer(refusal, send)
            return
        self._limited.discard(key)
        replay = _Replay(events, receive)
        if creating and not operator:
            with self.creates.hold(key):
                await self.app(scope, replay, send)
        else:
            await self.app(scope, replay, send)

    def admits(self, scope: HTTPScope, key: str) -> bool:
        """Would a request of `scope` (a read, from the client `key`, no body) be let
        through? If so it is counted as `__call__` counts it; if not, nothing changed,
        and `__call__` is the one to answer it."""
        if self._refusal(scope, key, operator=self._is_operator(scope), creating=False):
            return False
        self._limited.discard(key)
        return True

    def _refusal(
        self, scope: HTTPScope, key: str, *, operator: bool, creating: bool
    ) -> _Refusal | None:
        head = len(scope["raw_path"]) + len(scope["query_string"])
        head += sum(len(name) + len(value) + 4 for name, value in scope["headers"])
        if head > self.limits.max_header_bytes:
            detail = f"the request's headers exceed {self.limits.max_header_bytes} bytes"
            return _Refusal(431, detail)
        if operator:
            return None
        reading = scope["method"].upper() in READING_METHODS
        bucket = self.reads if reading else self.writes
        wait = bucket.acquire(key, trio.current_time())
        if wait is not None:
            kind = "reading" if reading else "changing"
            return _Refusal(
                429,
                f"too many requests {kind} the node from {key}; retry in {wait:.1f} s",
                RateLimiter.retry_after_header(wait),
            )
        if creating and self.creates.full(key):
            return _Refusal(
                429,
                f"{self.limits.max_concurrent_creates} creates from {key} are still running;"
                " retry once one of them has answered",
                "1",
            )
        return None

    def _note_refusal(self, key: str, path: str, detail: str) -> None:
        """One log line when a client starts being refused, not one per refusal: a flood
        must not turn into a flood of log lines."""
        if key in self._limited:
            return
        if len(self._limited) >= self.limits.max_clients:
            self._limited.clear()
        self._limited.add(key)
        log.warning("client limited", client=key, path=path, detail=detail)

    def _is_operator(self, scope: HTTPScope | WebsocketScope) -> bool:
        for name, value in scope["headers"]:
            if name.lower() == b"authorization":
                scheme, _, token = value.partition(b" ")
                token = token.strip()
                return scheme.lower() == b"bearer" and hmac.compare_digest(
                    token, self.operator_token
                )
        return False

    async def _read_body(
        self, receive: ASGIReceiveCallable
    ) -> tuple[list[ASGIReceiveEvent], _Refusal | None]:
        """The request's events up to its last body chunk (or a disconnect), or why not."""
        events: list[ASGIReceiveEvent] = []
        size = 0
        with trio.move_on_after(self.limits.body_timeout):
            while True:
                event = await receive()
                events.append(event)
                if event["type"] != "http.request" or not event.get("more_body", False):
                    return events, None
                size += len(event.get("body", b""))
                if size > self.max_body:
                    return events, _Refusal(413, f"the body exceeds {self.max_body} bytes")
        seconds = f"{self.limits.body_timeout:g}"
        return events, _Refusal(408, f"the request body did not arrive within {seconds} s")

    async def _answer(self, refusal: _Refusal, send: ASGISendCallable) -> None:
        body = _encoder.encode(ErrorBody(detail=refusal.detail))
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"access-control-allow-origin", b"*"),
        ]
        if refusal.retry_after is not None:
            headers.append((b"retry-after", refusal.retry_after.encode()))
        start: ASGISendEvent = {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": headers,
            "trailers": False,
        }
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})


class _Replay:
    """The ASGI `receive` the app gets: the events already read, then the live ones."""

    def __init__(self, events: list[ASGIReceiveEvent], receive: ASGIReceiveCallable) -> None:
        self._events = collections.deque(events)
        self._receive = receive

    async def __call__(self) -> ASGIReceiveEvent:
        if self._events:
            return self._events.popleft()
        return await self._receive()


def client_key(scope: HTTPScope | WebsocketScope) -> str:
    """Whose buckets a request uses: its source address (an IPv6 /64 as one)."""
    return peer_key(scope["client"])
