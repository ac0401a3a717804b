"""`ApiActor`: owns the HTTP listener for the node's API.

hypercorn's trio `serve` runs in the actor's own nursery, so a crash of the server is a
crash of the actor. A graceful stop is hypercorn's: `stop_requested` is its shutdown
trigger, so the listener closes at once and requests in flight drain within
`graceful_timeout`; `on_stop` waits for that drain to finish.
"""

from __future__ import annotations

from functools import partial
from typing import Never

import structlog
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart_trio import QuartTrio

from actors.port_verifier import Recheck
from golem_actor.kernel import Actor

from .app import create_app
from .context import ApiContext

log = structlog.get_logger("golem_actor.api")


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
        return config

    async def on_start(self) -> None:
        app = create_app(self.context)
        self.bound = await self.nursery.start(partial(self._listen, app, self._hypercorn_config()))
        log.info("api listening", binds=self.bound)
        if self.context.port_verifier is not None:
            # The first verification ran before the API listened: check it again, now.
            await self.context.port_verifier.cast(Recheck())

    async def _listen(
        self, app: QuartTrio, config: Config, *, task_status: trio.TaskStatus[list[str]]
    ) -> None:
        try:
            await serve(
                app, config, shutdown_trigger=self.stop_requested.wait, task_status=task_status
            )
        finally:
            self._served.set()

    async def on_stop(self) -> None:
        await self._served.wait()
        log.info("api stopped")
