"""`ApiActor`: owns the HTTP listener for the node's API.

hypercorn's trio `serve` runs in the actor's own nursery, so a crash of the server is a
crash of the actor. A graceful stop is hypercorn's: `stop_requested` is its shutdown
trigger, so the listener closes at once and requests in flight drain within
`graceful_timeout`; `on_stop` waits for that drain to finish. The app is served behind
`RequestLimits`, and connections that idle or trickle are closed (`ApiLimits`); between
the two, `FastRoutes` answers the hottest read-only routes without Quart (fast.py), and
each connection starts in a `FastLane` that answers those without hypercorn's HTTP
machinery either, until a request it does not take (front.py). The Net API's gate
websockets are routed below the app (`GateRoutes`) and pinged every 5 s.
"""

from __future__ import annotations

from functools import partial
from typing import Never

import structlog
import trio
from hypercorn.config import Config

from actors.port_verifier import Recheck
from golem_actor.adapters.hypercorn_ws import report_clean_websocket_close
from golem_actor.kernel import Actor

from .app import API_PREFIX, MAX_BODY, create_app
from .context import ApiContext
from .fast import FastRoutes
from .front import FastLane, serve
from .gates import GateRoutes
from .limits import RequestLimits

log = structlog.get_logger("golem_actor.api")
WEBSOCKET_PING_INTERVAL = 5.0  # the gates' keep-alive, as yagna's (golem-vpn.md §7.5)
# A gate message may be 16 times yagna's 64 KiB; hypercorn's 16 MiB default would let one
# connection park 160 MiB in its queue of 10 messages. Past it: close 1009.
WEBSOCKET_MAX_MESSAGE = 1024 * 1024


class ApiActor(Actor[Never]):
    """Accepts no messages: it serves HTTP, and stops when its supervisor says so."""

    def __init__(
        self, context: ApiContext, *, host: str, port: int, graceful_timeout: float = 5.0
    ) -> None:
        super().__init__()
        self.context = context
        self.host = host
        self.port = port
        self.graceful_timeout = graceful_timeout
        self.bound: list[str] = []
        self._served = trio.Event()

    def _hypercorn_config(self) -> Config:
        config = Config()
        host = f"[{self.host}]" if ":" in self.host else self.host
        config.bind = [f"{host}:{self.port}"]
        config.accesslog = None
        config.errorlog = None  # failures are logged by the app as structured lines
        config.graceful_timeout = self.graceful_timeout
        limits = self.context.limits
        # Headers must be complete, and a connection between requests must speak again,
        # within the keep-alive timeout. No `read_timeout`: it would also cut a client that
        # waits silently for a long answer (a synchronous create); a slow body is bounded
        # by `RequestLimits` instead.
        config.keep_alive_timeout = limits.keep_alive_timeout
        config.h11_max_incomplete_size = limits.max_header_bytes
        config.h2_max_header_list_size = limits.max_header_bytes
        config.websocket_ping_interval = WEBSOCKET_PING_INTERVAL
        config.websocket_max_message_size = WEBSOCKET_MAX_MESSAGE
        return config

    def _app(self, config: Config) -> tuple[RequestLimits, FastLane]:
        report_clean_websocket_close()  # the TCP gate tells a close from an abort
        routes = FastRoutes(GateRoutes(create_app(self.context), self.context), self.context)
        limits = RequestLimits(
            routes,
            self.context.limits,
            operator_token=self.context.operator_token,
            create_path=f"{API_PREFIX}/vms",
            max_body=MAX_BODY,
        )
        return limits, FastLane(routes, limits, config)

    async def on_start(self) -> None:
        config = self._hypercorn_config()
        app, lane = self._app(config)
        self.bound = await self.nursery.start(partial(self._listen, app, lane, config))
        log.info("api listening", binds=self.bound)
        if self.context.port_verifier is not None:
            # The first verification ran before the API listened: check it again, now.
            await self.context.port_verifier.cast(Recheck())

    async def _listen(
        self,
        app: RequestLimits,
        lane: FastLane,
        config: Config,
        *,
        task_status: trio.TaskStatus[list[str]],
    ) -> None:
        try:
            await serve(
                app,
                config,
                lane,
                shutdown_trigger=self.stop_requested.wait,
                task_status=task_status,
            )
        finally:
            self._served.set()

    async def on_stop(self) -> None:
        await self._served.wait()
        if self.context.gates is not None:
            await self.context.gates.aclose()
        log.info("api stopped")
