"""Serving the port-check app with hypercorn's trio worker.

Why: one function for both the command line and tests: it binds (port 0 picks a free
port), reports the bound URLs through `task_status`, and shuts down gracefully when
`shutdown_trigger` returns (or at once when cancelled).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart_trio import QuartTrio

from .app import create_app
from .config import ServerConfig
from .probe import ProbeFn, tcp_probe

__all__ = ["run_server", "serve_app"]

log = structlog.get_logger("golem_actor.portcheck")


async def serve_app(
    app: QuartTrio,
    host: str,
    port: int,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    graceful_timeout: float = 5.0,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = None  # the app logs one structured line per request itself
    config.graceful_timeout = graceful_timeout
    await serve(app, config, shutdown_trigger=shutdown_trigger, task_status=task_status)


async def run_server(
    config: ServerConfig,
    *,
    probe: ProbeFn = tcp_probe,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `config` until `shutdown_trigger` returns or the task is cancelled."""
    app = create_app(config, probe=probe)

    async def listening(*, task_status: trio.TaskStatus[list[str]]) -> None:
        await serve_app(
            app,
            config.host,
            config.port,
            shutdown_trigger=shutdown_trigger,
            task_status=task_status,
        )

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(listening)
        log.info(
            "port checker listening",
            binds=binds,
            max_ports=config.max_ports,
            per_ip_rate=config.per_ip_rate,
            concurrency=config.concurrency,
            trusted_proxies=[str(net) for net in config.trusted_proxies],
        )
        task_status.started(binds)
