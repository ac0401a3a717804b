"""Wire models of the port-check protocol, and their OpenAPI description.

Why: existing providers speak the upstream checker's protocol, so the names and shapes
are exactly its own: `POST /check-ports` takes `{provider_ip, ports}` and answers
`{success, results: {"<port>": {accessible, error}}, message}` (port numbers as string
keys, `error` null when reachable); `GET /health` answers `{"status": "ok"}`. Decoding is
strict (no type coercion, ports in 1..65535); unknown request fields are ignored, as the
upstream did, so newer clients keep working. `provider_ip` may be left out: the caller's
own address is the only one ever checked.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

__all__ = [
    "CheckPortsBody",
    "CheckPortsReply",
    "ErrorBody",
    "Health",
    "PortResult",
    "openapi_document",
]

Port = Annotated[int, Meta(ge=1, le=65535)]


class CheckPortsBody(msgspec.Struct, frozen=True, kw_only=True):
    ports: list[Port]
    provider_ip: (
        Annotated[str, Meta(max_length=64, description="must be the caller's own address")] | None
    ) = None


class PortResult(msgspec.Struct, frozen=True):
    accessible: bool
    error: str | None = None


class CheckPortsReply(msgspec.Struct, frozen=True, kw_only=True):
    success: bool  # at least one port was reachable
    results: dict[str, PortResult]
    message: str


class Health(msgspec.Struct, frozen=True):
    status: str


class ErrorBody(msgspec.Struct, frozen=True):
    detail: str


def openapi_document(version: str) -> dict[str, Any]:
    kinds: list[Any] = [CheckPortsBody, CheckPortsReply, Health, ErrorBody]
    schemas, components = msgspec.json.schema_components(
        kinds, ref_template="#/components/schemas/{name}"
    )
    body, reply, health, error = schemas

    def content(schema: dict[str, Any]) -> dict[str, Any]:
        return {"application/json": {"schema": schema}}

    def refusal(text: str) -> dict[str, Any]:
        return {"description": text, "content": content(error)}

    return {
        "openapi": "3.1.0",
        "info": {"title": "golem-actor port checker", "version": version},
        "paths": {
            "/check-ports": {
                "post": {
                    "summary": "Check which of the caller's TCP ports accept connections",
                    "operationId": "check_ports",
                    "requestBody": {"required": True, "content": content(body)},
                    "responses": {
                        "200": {
                            "description": "one result per distinct port",
                            "content": content(reply),
                        },
                        "400": refusal("malformed request or forwarding headers"),
                        "403": refusal("provider_ip is not the caller's address"),
                        "413": refusal("request body too large"),
                        "422": refusal("invalid ports or too many of them"),
                        "429": refusal("too many requests from this source; see Retry-After"),
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness",
                    "operationId": "health",
                    "responses": {"200": {"description": "alive", "content": content(health)}},
                }
            },
        },
        "components": {"schemas": components},
    }
