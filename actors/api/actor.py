"""`ApiActor`: owns the HTTP listener for the node's API.

hypercorn's trio `serve` runs in the actor's own nursery, so a crash of the server is a
crash of the actor. A graceful stop is hypercorn's: `stop_requested` is its shutdown
trigger, so the listener closes at once and requests in flight drain within
`graceful_timeout`; `on_stop` waits for that drain to finish.
"""

from __future__ import annotations

from functools import partial

import msgspec
import structlog
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart_trio import QuartTrio

from golem_actor.kernel import Actor

from .app import create_app

log = structlog.get_logger("golem_actor.api")


class ApiConfig(msgspec.Struct, frozen=True, kw_only=True):
    host: str
    port: int
    version: str
    graceful_timeout: float = 5.0


class ApiActor(Actor[object]):
    def __init__(self, config: ApiConfig) -> None:
        super().__init__()
        self.config = config
        self.bound: list[str] = []
        self._served = trio.Event()

    def _hypercorn_config(self) -> Config:
        config = Config()
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        config.bind = [f"{host}:{self.config.port}"]
        config.accesslog = None
        config.errorlog = None  # failures are logged by the app as structured lines
        config.graceful_timeout = self.config.graceful_timeout
        return config

    async def on_start(self) -> None:
        app = create_app(version=self.config.version)
        server = partial(self._listen, app, self._hypercorn_config())
        self.bound = await self.nursery.start(server)
        log.info("api listening", binds=self.bound)

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
