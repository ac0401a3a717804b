"""The fault hook of development mode: crash one named actor of the running node.

Why a module of its own: it is the fault-injection tests' way into a real node process
(tests/faults), and it must not exist in production. `supervisors/tree.py` makes a
`FaultHook` only when ``GOLEM_PROVIDER_ENVIRONMENT=development``; without one the route
is never registered (a production node answers 404, whatever the token, and its OpenAPI
document does not list it). With one, only the operator's token may use it.

The crash itself is the kernel's `CrashChild`, sent to the supervisor of the named actor:
the root for the node's actors, ``ssh_proxies`` for a VM's ``ssh_proxy:<vm id>``. So the
restart, its log lines and the intensity window are exactly those of a real crash.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec
import structlog
from quart import Response

from golem_actor.kernel import (
    Address,
    CrashChild,
    DynamicSupervisorMsg,
    NotRunning,
    SupervisorMsg,
)

from .errors import ApiError
from .openapi import Router

if TYPE_CHECKING:
    from .context import ApiContext  # which imports this module's FaultHook

log = structlog.get_logger("golem_actor.api")

PROXY_PREFIX = "ssh_proxy:"


@dataclass(frozen=True)
class FaultHook:
    root: Callable[[], Address[SupervisorMsg]]  # the root supervisor's, once it runs
    proxies: Address[DynamicSupervisorMsg]

    async def crash(self, actor: str) -> str:
        """Crash `actor` through its supervisor; the exit reason it was given."""
        if actor.startswith(PROXY_PREFIX):
            return await self.proxies.call(CrashChild(actor))
        return await self.root().call(CrashChild(actor))


class Crashed(msgspec.Struct, frozen=True):
    actor: str
    reason: str


def register_fault_routes(
    router: Router, context: ApiContext, require_operator: Callable[[ApiContext], object]
) -> None:
    hook = context.faults
    if hook is None:
        return  # production: the route does not exist

    @router.route(
        "POST",
        "/admin/faults/crash/<actor>",
        "Crash one actor of the node (development mode only, operator only)",
        responses={200: Crashed},
        operator_only=True,
    )
    async def crash_actor(actor: str) -> Response:
        require_operator(context)
        log.warning("crash injected through the API", child=actor)
        try:
            reason = await hook.crash(actor)
        except NotRunning as exc:
            raise ApiError(404, str(exc)) from exc
        return Response(
            msgspec.json.encode(Crashed(actor=actor, reason=reason)),
            content_type="application/json",
        )
