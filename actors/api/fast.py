"""`FastRoutes`: the API's hottest read-only answers, without Quart's per-request machinery.

Why: `GET /provider/info` and `GET /vms` are what clients and the market ask most, and
through Quart each paid for a request context, werkzeug header and URL parsing, routing,
before/after hooks and a response object: most of a trivial request's CPU. This ASGI
layer sits between `RequestLimits` (so rate limits, header and body bounds apply as
before) and the Quart app, and answers those routes itself, byte for byte as the app
does: the same JSON body, the same headers (content type, length, the CORS pair), the
same `request` log line.

It only takes the plain case and hands everything else to the app unchanged (the app
stays the one place that defines every route's behaviour, including errors):
- method exactly GET (HEAD, OPTIONS, ... go to Quart) and a path it knows;
- no request body announced (`content-length` / `transfer-encoding`);
- for `GET /vms`, an `Authorization` header that is absent or a valid bearer token (a
  malformed one goes to the app, which answers its 401).
`GET /vms` reads the lifecycle's published snapshot (actors/vm_lifecycle/listing.py), and
keeps each caller's encoded answer until the snapshot changes: with nothing changing,
listing 20 VMs costs what listing none does.
"""

from __future__ import annotations

import time

import msgspec
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPScope,
    Scope,
)

from actors.vm_lifecycle import VmListing
from golem_actor.domain.tenancy import Caller
from golem_actor.logs import info_line

from .app import API_PREFIX, caller_from, vm_info
from .context import ApiContext
from .errors import ApiError
from .schemas import Health

_BODY_HEADERS = frozenset({b"content-length", b"transfer-encoding"})
_encoder = msgspec.json.Encoder()  # as the app's: the same bytes for the same answer
_CACHED_CALLERS = 1024  # encoded `GET /vms` answers kept per snapshot (one per caller)

Headers = list[tuple[bytes, bytes]]
Answer = tuple[bytes, Headers]


def json_headers(body: bytes) -> Headers:
    """What the app's answers carry: see `create_app`'s `cors_and_log`."""
    return [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"access-control-allow-origin", b"*"),
        (b"access-control-allow-headers", b"Authorization, Content-Type"),
    ]


class FastRoutes:
    """The ASGI app that answers the hot GETs of `context`, and passes on the rest."""

    def __init__(self, app: ASGIFramework, context: ApiContext) -> None:
        self.app = app
        self._listing: VmListing | None = context.listing
        self._operator_token = context.operator_token
        fixed = {
            f"{API_PREFIX}/provider/info": _encoder.encode(context.provider),
            f"{API_PREFIX}/health": _encoder.encode(Health(status="ok", version=context.version)),
        }
        self._fixed: dict[str, Answer] = {
            path: (body, json_headers(body)) for path, body in fixed.items()
        }
        self._vms_path = f"{API_PREFIX}/vms"
        self._vms_version = -1
        self._vms_cache: dict[Caller, Answer] = {}

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            started = time.perf_counter()
            answer = self.answer(scope)
            if answer is not None:
                self.log(scope["path"], started)
                body, headers = answer
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": headers,
                        "trailers": False,
                    }
                )
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
        await self.app(scope, receive, send)

    @staticmethod
    def log(path: str, started: float) -> None:
        """The app's `request` line for a 200 answered here (see `create_app`)."""
        info_line(
            "request",
            status=200,
            ms=round((time.perf_counter() - started) * 1000, 1),
            request_method="GET",
            request_started=started,
            request_path=path,
        )

    def answer(self, scope: HTTPScope) -> Answer | None:
        """The answer to a GET with this scope, or None: the app answers it. It reads
        only the scope's `path` and `headers`, and changes nothing but its caches."""
        path = scope["path"]
        fixed = self._fixed.get(path)
        vms = fixed is None and path == self._vms_path and self._listing is not None
        if fixed is None and not vms:
            return None
        authorization: bytes | None = None
        for name, value in scope["headers"]:
            lowered = name.lower()
            if lowered in _BODY_HEADERS:
                return None
            if lowered == b"authorization" and authorization is None:
                authorization = value
        if fixed is not None:
            return fixed
        try:
            header = None if authorization is None else authorization.decode("latin-1")
            caller = caller_from(header, self._operator_token)
        except ApiError:
            return None
        return self._vms_answer(caller)

    def _vms_answer(self, caller: Caller) -> Answer:
        listing = self._listing
        assert listing is not None
        if listing.version != self._vms_version:
            self._vms_cache.clear()
            self._vms_version = listing.version
        answer = self._vms_cache.get(caller)
        if answer is None:
            body = _encoder.encode([vm_info(view) for view in listing.visible(caller)])
            answer = (body, json_headers(body))
            if len(self._vms_cache) >= _CACHED_CALLERS:
                self._vms_cache.clear()
            self._vms_cache[caller] = answer
        return answer
