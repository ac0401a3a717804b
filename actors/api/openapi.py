"""Routes declared once, with their types, so the OpenAPI document cannot drift.

Each route records its method, path, body type, query parameters and response types;
the same types decode requests strictly (msgspec) and encode answers, and
`openapi_document` builds an OpenAPI 3.1 document whose component schemas come from
`msgspec.json.schema_components`, so nested types resolve (quart-schema's document had
dangling `$ref`s for them).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .schemas import ErrorBody

Handler = Callable[..., Awaitable[Any]]

ERROR_STATUSES = {
    400: "malformed request",
    401: "missing or wrong credentials",
    404: "not found",
    409: "conflict with the VM's state or another VM",
    422: "invalid request",
    429: "too many requests from this client (see Retry-After)",
    503: "temporarily unable (capacity, ports, or the node is busy)",
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # Quart syntax: /vms/<vm_id>
    summary: str
    handler: Handler
    body: type | None
    responses: dict[int, type | None]
    query: dict[str, str] = field(default_factory=dict)  # name -> description (booleans)
    operator_only: bool = False

    @property
    def openapi_path(self) -> str:
        return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", self.path)

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"<(?:\w+:)?(\w+)>", self.path)


class Router:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.routes: list[Route] = []

    def route(
        self,
        method: str,
        path: str,
        summary: str,
        *,
        body: type | None = None,
        responses: dict[int, type | None],
        query: dict[str, str] | None = None,
        operator_only: bool = False,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(
                Route(
                    method,
                    self.prefix + path,
                    summary,
                    handler,
                    body,
                    responses,
                    query or {},
                    operator_only,
                )
            )
            return handler

        return register


def openapi_document(router: Router, *, title: str, version: str) -> dict[str, Any]:
    types: list[Any] = [ErrorBody]
    for route in router.routes:
        if route.body is not None:
            types.append(route.body)
        types.extend(t for t in route.responses.values() if t is not None)
    unique = list(dict.fromkeys(types))
    schemas, components = msgspec.json.schema_components(
        unique, ref_template="#/components/schemas/{name}"
    )
    schema_of = dict(zip(unique, schemas, strict=True))

    def content(kind: type) -> dict[str, Any]:
        return {"application/json": {"schema": schema_of[kind]}}

    paths: dict[str, dict[str, Any]] = {}
    for route in router.routes:
        operation: dict[str, Any] = {
            "summary": route.summary,
            "operationId": route.handler.__name__,
            "responses": {},
        }
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in route.path_params
        ]
        parameters += [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": text,
                "schema": {"type": "boolean"},
            }
            for name, text in route.query.items()
        ]
        if parameters:
            operation["parameters"] = parameters
        if route.body is not None:
            operation["requestBody"] = {"required": True, "content": content(route.body)}
        if route.operator_only:
            operation["security"] = [{"operator": []}]
        else:
            operation["security"] = [{}, {"tenant": []}]
        for status, kind in route.responses.items():
            response: dict[str, Any] = {"description": "success"}
            if kind is not None:
                response["content"] = content(kind)
            operation["responses"][str(status)] = response
        for status, text in ERROR_STATUSES.items():
            operation["responses"].setdefault(
                str(status), {"description": text, "content": content(ErrorBody)}
            )
        paths.setdefault(route.openapi_path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "tenant": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "optional: binds VMs to the token",
                },
                "operator": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the token in <data dir>/operator.token",
                },
            },
        },
    }
