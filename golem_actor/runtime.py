"""Running the root supervisor as a process: readiness, signals, exit status.

The first SIGTERM or SIGINT asks the tree to stop gracefully (children stop in reverse
start order, each within its bound); a second one makes every remaining stop brutal. The
exit status says how the tree ended: 0 after a requested stop, 1 when it failed to start
or the root supervisor gave up (both logged with their reason).
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


async def run_node(root: Supervisor, *, on_ready: Callable[[], None] | None = None) -> int:
    """Run `root` until a signal stops it or it gives up; return the exit status."""
    structlog.contextvars.bind_contextvars(actor=root.name)
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

            try:
                await nursery.start(supervise)
            except Exception as exc:
                log.error("node failed to start", reason=describe_exit(exc), exc_info=exc)
                return EXIT_FAILED
            # Everything built at start lives as long as the node: take it out of the
            # collector's sight, or full collections pause requests for 50-65 ms.
            gc.freeze()
            log.info("node ready")
            if on_ready is not None:
                on_ready()
            received = 0
            async for signum in signals:
                received += 1
                name = signal.Signals(signum).name
                if received == 1:
                    log.info("node stopping", signal=name)
                    root.request_stop()
                else:
                    log.warning("node killing remaining children", signal=name)
                    root.request_kill()
    if failure:
        cause = failure[0].__cause__
        log.error("node gave up", reason=str(failure[0]), cause=describe_exit(cause))
        return EXIT_FAILED
    log.info("node stopped")
    return EXIT_OK
