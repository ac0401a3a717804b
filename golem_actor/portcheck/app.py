"""The port-check HTTP application (Quart-Trio): `POST /check-ports` and `GET /health`.

Why: a provider needs someone outside to tell it whether its ports are reachable; this
server is that someone, and it must never be usable against anybody else. So a request is
handled in this order: find the caller (the TCP peer, or the client of a trusted proxy),
charge its token bucket (429 + Retry-After past the rate), refuse a third simultaneous
request of the same source, decode the body strictly, refuse a `provider_ip` that is not
the caller (403), collapse duplicate ports and cap their number (422), then probe the
caller's address only, under the global probe limiter and the request's deadline.
Every answer is JSON; every request leaves exactly one structured log line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec
import structlog
import trio
from quart import Response, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from golem_actor import __version__
from golem_actor.ratelimit import InFlight, RateLimiter

from .addressing import CallerError, IpAddress, caller_address, source_key, target
from .config import ServerConfig
from .probe import ProbeFn, probe_ports, tcp_probe
from .schemas import (
    CheckPortsBody,
    CheckPortsReply,
    ErrorBody,
    Health,
    PortResult,
    openapi_document,
)

__all__ = ["Refused", "create_app", "install_request_log", "json_response"]

log = structlog.get_logger("golem_actor.portcheck")
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(CheckPortsBody)


class Refused(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        _encoder.encode(body), status=status, content_type="application/json", headers=headers
    )


def _peer() -> str | None:
    client = request.scope.get("client")
    return None if not client else str(client[0])


def create_app(
    config: ServerConfig,
    *,
    probe: ProbeFn = tcp_probe,
    clock: Callable[[], float] = trio.current_time,
) -> QuartTrio:
    """The app; `probe` and `clock` are replaceable for tests (the defaults are real)."""
    app = QuartTrio("golem_actor.portcheck")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body
    limiter = trio.CapacityLimiter(config.concurrency)
    rates = RateLimiter(config.per_ip_rate, config.burst, max_sources=config.max_sources)
    running = InFlight(config.max_inflight_per_source)

    def admit() -> tuple[IpAddress, str]:
        caller = caller_address(
            _peer(), request.headers.getlist("X-Forwarded-For"), config.trusted_proxies
        )
        g.source = str(caller)
        key = source_key(caller)
        wait = rates.acquire(key, clock())
        if wait is not None:
            raise Refused(
                429,
                f"too many requests from {caller}; retry in {wait:.1f} s",
                {"Retry-After": RateLimiter.retry_after_header(wait)},
            )
        if running.full(key):
            raise Refused(
                429,
                f"{config.max_inflight_per_source} checks from {caller} are still running",
                {"Retry-After": "1"},
            )
        return caller, key

    @app.post("/check-ports")
    async def check_ports() -> Response:
        caller, key = admit()
        with running.hold(key):
            body = _decoder.decode(await request.get_data())
            host = str(target(caller, body.provider_ip))
            ports = list(dict.fromkeys(body.ports))
            g.ports = len(ports)
            if len(ports) > config.max_ports:
                raise Refused(
                    422, f"at most {config.max_ports} distinct ports per request, got {len(ports)}"
                )
            results = await probe_ports(
                host,
                ports,
                limiter=limiter,
                probe_timeout=config.probe_timeout,
                deadline=config.request_timeout,
                probe=probe,
            )
        reachable = sum(1 for r in results.values() if r.accessible)
        g.reachable, g.unreachable = reachable, len(results) - reachable
        reply = CheckPortsReply(
            success=reachable > 0,
            results={str(p): PortResult(r.accessible, r.error) for p, r in results.items()},
            message=f"Successfully verified {reachable} out of {len(results)} ports",
        )
        return json_response(reply)

    @app.get("/health")
    async def health() -> Response:
        return json_response(Health(status="ok"))

    @app.get("/openapi.json")
    async def openapi() -> Response:
        return json_response(openapi_document(__version__))

    _install_hooks(app)
    return app


def install_request_log(
    app: QuartTrio, emit: Callable[[dict[str, Any]], None], extras: tuple[str, ...]
) -> None:
    """One log line per request: method, path, status, peer, ms, and the `extras` set in `g`.

    The (capped) body is read before any answer, so an early refusal cannot leave half a
    body on a keep-alive connection.
    """

    @app.before_request
    async def started() -> None:
        g.started = time.perf_counter()
        await request.get_data()

    @app.after_request
    async def log_request(response: Response) -> Response:
        fields: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "peer": _peer(),
            "ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 1),
        }
        for name in extras:
            if name in g:
                fields[name] = g.get(name)
        emit(fields)
        return response


def _install_hooks(app: QuartTrio) -> None:
    """The per-request log line and the JSON answers of every refusal."""

    def emit(fields: dict[str, Any]) -> None:
        if fields["path"] == "/check-ports":
            log.info("check-ports", **fields)
        else:
            log.debug("request", **fields)

    install_request_log(app, emit, ("source", "ports", "reachable", "unreachable", "detail"))

    def refusal(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
        g.detail = detail
        return json_response(ErrorBody(detail=detail), status, headers)

    @app.errorhandler(Refused)
    async def refused(error: Refused) -> Response:
        return refusal(error.status, error.detail, error.headers)

    @app.errorhandler(CallerError)
    async def bad_caller(error: CallerError) -> Response:
        return refusal(error.status, error.detail)

    @app.errorhandler(msgspec.ValidationError)
    async def invalid(error: msgspec.ValidationError) -> Response:
        return refusal(422, str(error))

    @app.errorhandler(msgspec.DecodeError)
    async def malformed(error: msgspec.DecodeError) -> Response:
        return refusal(400, f"the body must be JSON: {error}")

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        return refusal(error.code or 500, error.description or error.name)

    @app.errorhandler(Exception)
    async def failure(error: Exception) -> Response:
        log.error("request failed", exc_info=error)
        return refusal(500, "internal error")
