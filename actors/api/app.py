"""The HTTP application: routes only translate HTTP into messages and back.

Every error leaves as JSON `{"detail": ...}` with an honest status: Quart's default HTML
error pages never reach a client, and an unexpected exception is a 500 with a generic
detail (its traceback goes to the log, not to the client).
"""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from quart import Response
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

log = structlog.get_logger("golem_actor.api")

API_PREFIX = "/api/v1"


class Health(msgspec.Struct, frozen=True):
    status: str
    version: str


class ErrorBody(msgspec.Struct, frozen=True):
    detail: str


_encoder = msgspec.json.Encoder()


def json_response(body: Any, status: int = 200) -> Response:
    return Response(_encoder.encode(body), status=status, content_type="application/json")


def create_app(*, version: str) -> QuartTrio:
    app = QuartTrio("golem_actor.api")

    @app.get(f"{API_PREFIX}/health")
    async def health() -> Response:
        return json_response(Health(status="ok", version=version))

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        return json_response(ErrorBody(detail=error.description or error.name), error.code or 500)

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        log.error("request failed", exc_info=error)
        return json_response(ErrorBody(detail="internal error"), 500)

    return app
