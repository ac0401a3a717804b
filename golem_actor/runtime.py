"""Running the root supervisor as a process: readiness, stop requests, exit status.

A stop is requested by the first SIGTERM or SIGINT, or from inside the node through its
`StopHandle` (the API's shutdown route holds one): the tree then stops gracefully, children
in reverse start order, each within its bound. A signal that arrives once a stop was
requested, by either way, makes every remaining stop brutal. The exit status says how the
tree ended: 0 after a requested stop, 1 when it failed to start or the root supervisor gave
up (both logged with their reason).
"""

from __future__ import annotations

import gc
import signal
from collections.abc import Callable

import structlog
import trio

from golem_actor.kernel import Inbox, Supervisor, SupervisorGaveUp
from golem_actor.kernel._supervision import describe_exit

log = structlog.get_logger("golem_actor.node")

EXIT_OK = 0
EXIT_FAILED = 1


class StopHandle:
    """Lets the node's own parts ask it to stop, exactly as a first SIGTERM does.

    `run_node` watches the handle it is given; asking again is harmless. Create it and
    call it from the node's trio loop.
    """

    def __init__(self) -> None:
        self._requested = trio.Event()
        self.requested_by: str | None = None

    def request_stop(self, by: str) -> None:
        """Ask for a graceful stop; `by` says who asked (logged)."""
        if self.requested_by is None:
            self.requested_by = by
            self._requested.set()

    async def wait(self) -> str:
        """Until a stop is requested; who asked."""
        await self._requested.wait()
        assert self.requested_by is not None
        return self.requested_by


async def run_node(
    root: Supervisor,
    *,
    stop: StopHandle | None = None,
    on_ready: Callable[[], None] | None = None,
) -> int:
    """Run `root` until a stop request ends it or it gives up; return the exit status."""
    structlog.contextvars.bind_contextvars(actor=root.name)
    stop = StopHandle() if stop is None else stop
    failure: list[BaseException] = []
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def supervise(*, task_status: trio.TaskStatus[None]) -> None:
                try:
                    await root.run(Inbox(root.name), task_status=task_status)
                except SupervisorGaveUp as gave_up:
                    failure.append(gave_up)
                finally:
                    nursery.cancel_scope.cancel(reason="the root supervisor ended")

            async def forward_signals() -> None:
                async for signum in signals:
                    name = signal.Signals(signum).name
                    if stop.requested_by is None:
                        stop.request_stop(name)
                    else:
                        log.warning("node killing remaining children", signal=name)
                        root.request_kill()

            try:
                await nursery.start(supervise)
            except Exception as exc:
                log.error("node failed to start", reason=describe_exit(exc), exc_info=exc)
                return EXIT_FAILED
            # Everything built at start lives as long as the node: take it out of the
            # collector's sight, or full collections pause requests for 50-65 ms.
            gc.freeze()
            log.info("node ready")
            nursery.start_soon(forward_signals)
            if on_ready is not None:
                on_ready()
            log.info("node stopping", requested_by=await stop.wait())
            root.request_stop()
    if failure:
        cause = failure[0].__cause__
        log.error("node gave up", reason=str(failure[0]), cause=describe_exit(cause))
        return EXIT_FAILED
    log.info("node stopped")
    return EXIT_OK
