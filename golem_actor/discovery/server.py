"""Serving the discovery app: the store, hypercorn's trio worker and the cleanup timer.

Why: one function for both the command line and tests. It opens the database (adverts
of the last run come back), binds (port 0 picks a free port), reports the bound URLs and
the store through `task_status`, deletes expired adverts every `cleanup_interval`, and
on `shutdown_trigger` (or cancellation) stops serving gracefully and closes the database.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import structlog
import trio

from golem_actor.portcheck.server import serve_app

from .app import create_app
from .config import DiscoveryConfig
from .store import AdvertStore, StoreError

__all__ = ["Running", "run_server"]

log = structlog.get_logger("golem_actor.discovery")


@dataclass(frozen=True)
class Running:
    binds: list[str]
    store: AdvertStore


async def _expire(store: AdvertStore, config: DiscoveryConfig, clock: Callable[[], float]) -> None:
    while True:
        await trio.sleep(config.cleanup_interval)
        try:
            removed = await store.purge(clock() - config.ttl)
        except StoreError as exc:
            log.error("cannot delete expired adverts", error=str(exc))
            continue
        if removed:
            log.info("expired adverts deleted", count=removed, left=len(store))


async def run_server(
    config: DiscoveryConfig,
    *,
    clock: Callable[[], float] = time.time,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `config` until `shutdown_trigger` returns or the task is cancelled."""
    store = await AdvertStore.open(config.db_path)
    try:
        app = create_app(config, store, clock=clock)
        async with trio.open_nursery() as nursery:

            async def serving(*, task_status: trio.TaskStatus[list[str]]) -> None:
                await serve_app(
                    app,
                    config.host,
                    config.port,
                    shutdown_trigger=shutdown_trigger,
                    task_status=task_status,
                )
                nursery.cancel_scope.cancel()  # served until the trigger: stop the timer

            nursery.start_soon(partial(_expire, store, config, clock))
            binds: list[str] = await nursery.start(serving)
            log.info(
                "discovery service listening",
                binds=binds,
                db=str(config.db_path),
                adverts=len(store),
                allow_unsigned=config.allow_unsigned,
                ttl=config.ttl,
                trusted_proxies=[str(net) for net in config.trusted_proxies],
            )
            task_status.started(Running(binds, store))
    finally:
        await store.close()
