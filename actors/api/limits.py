"""Per-client limits in front of the node's API: request rates and concurrent creates.

Why: one client must not be able to use up the node's work for everyone else. A client is
its TCP source address (an IPv6 /64 counts as one); each gets two token buckets, one for
reading routes and one for mutating ones, and at most a few synchronous creates running
at once. Past a limit the answer is 429 with `Retry-After` and a JSON `detail`, before the
app reads anything. The operator's token is exempt: the host's own operator is not
throttled by their node. This is an ASGI wrapper around the app, so the routes know
nothing of it; the buckets are the ones the port-check and discovery servers use
(golem_actor.ratelimit). The connection-level bounds (idle, header and read timeouts,
header size) are hypercorn's, set by the actor from the same `ApiLimits`.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

import msgspec
import structlog
import trio
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPScope,
    Scope,
)

from golem_actor.portcheck.addressing import source_key
from golem_actor.ratelimit import InFlight, RateLimiter

from .schemas import ErrorBody

log = structlog.get_logger("golem_actor.api")

READING_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, kw_only=True)
class ApiLimits:
    """The API's bounds; the defaults are those of config/defaults.toml."""

    read_per_minute: float = 600.0
    read_burst: int = 100
    write_per_minute: float = 60.0
    write_burst: int = 20
    max_concurrent_creates: int = 4  # synchronous creates one client has running at once
    keep_alive_timeout: float = 5.0  # an idle connection, or unfinished headers, is closed
    read_timeout: int = 10  # seconds of silence while a request is arriving
    max_header_bytes: int = 16 * 1024
    max_clients: int = 10_000  # buckets kept; the least recently seen are forgotten


@dataclass(frozen=True)
class _Refusal:
    detail: str
    retry_after: str


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
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        else:
            await self._http(scope, receive, send)

    async def _http(
        self, scope: HTTPScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        head = len(scope["raw_path"]) + len(scope["query_string"])
        head += sum(len(name) + len(value) + 4 for name, value in scope["headers"])
        if head > self.limits.max_header_bytes:
            detail = f"the request's headers exceed {self.limits.max_header_bytes} bytes"
            await self._refuse(431, detail, None, receive, send)
            return
        if self._is_operator(scope):
            await self.app(scope, receive, send)
            return
        key = _client_key(scope)
        reading = scope["method"].upper() in READING_METHODS
        refusal = self._admit(key, reading)
        creating = not reading and scope["method"].upper() == "POST"
        creating = creating and scope["path"].rstrip("/") == self.create_path
        if refusal is None and creating and self.creates.full(key):
            refusal = _Refusal(
                f"{self.limits.max_concurrent_creates} creates from {key} are still running;"
                " retry once one of them has answered",
                "1",
            )
        if refusal is not None:
            self._note_refusal(key, scope["path"], refusal.detail)
            await self._refuse(429, refusal.detail, refusal.retry_after, receive, send)
            return
        self._limited.discard(key)
        if creating:
            with self.creates.hold(key):
                await self.app(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _note_refusal(self, key: str, path: str, detail: str) -> None:
        """One log line when a client starts being refused, not one per refusal: a flood
        must not turn into a flood of log lines."""
        if key in self._limited:
            return
        if len(self._limited) >= self.limits.max_clients:
            self._limited.clear()
        self._limited.add(key)
        log.warning("client limited", client=key, path=path, detail=detail)

    def _is_operator(self, scope: HTTPScope) -> bool:
        for name, value in scope["headers"]:
            if name.lower() == b"authorization":
                scheme, _, token = value.partition(b" ")
                token = token.strip()
                return scheme.lower() == b"bearer" and hmac.compare_digest(
                    token, self.operator_token
                )
        return False

    def _admit(self, key: str, reading: bool) -> _Refusal | None:
        bucket = self.reads if reading else self.writes
        wait = bucket.acquire(key, trio.current_time())
        if wait is None:
            return None
        kind = "reading" if reading else "changing"
        return _Refusal(
            f"too many requests {kind} the node from {key}; retry in {wait:.1f} s",
            RateLimiter.retry_after_header(wait),
        )

    async def _refuse(
        self,
        status: int,
        detail: str,
        retry_after: str | None,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
    ) -> None:
        # Take the (small) body first: an answer while it still arrives can make hypercorn
        # lose the next request on the connection. A slow body is given up on.
        with trio.move_on_after(self.limits.read_timeout):
            received = 0
            while received <= self.max_body:
                event = await receive()
                if event["type"] != "http.request":
                    break
                received += len(event.get("body", b""))
                if not event.get("more_body", False):
                    break
        body = _encoder.encode(ErrorBody(detail=detail))
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"access-control-allow-origin", b"*"),
        ]
        if retry_after is not None:
            headers.append((b"retry-after", retry_after.encode()))
        await send(
            {"type": "http.response.start", "status": status, "headers": headers, "trailers": False}
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _client_key(scope: HTTPScope) -> str:
    client = scope["client"]
    if not client:
        return "unknown"
    try:
        return source_key(ipaddress.ip_address(client[0]))
    except ValueError:
        return str(client[0])
