"""run_node: readiness, signals, exit statuses (real signals sent to this process)."""

from __future__ import annotations

import os
import signal

import structlog
import trio
import trio.lowlevel
import trio.testing
from kernel_helpers import Recorder, recorder_spec

from golem_actor.kernel import ChildSpec, Supervisor
from golem_actor.runtime import EXIT_FAILED, EXIT_OK, run_node


async def test_first_signal_stops_the_tree_gracefully_in_reverse_order() -> None:
    journal: list[str] = []
    root = Supervisor("node", [recorder_spec(n, journal) for n in ("a", "b", "c")])

    def ready() -> None:
        journal.append("ready")
        os.kill(os.getpid(), signal.SIGTERM)

    with structlog.testing.capture_logs() as logs:
        assert await run_node(root, on_ready=ready) == EXIT_OK
    assert journal == ["start a", "start b", "start c", "ready", "stop c", "stop b", "stop a"]
    events = [entry["event"] for entry in logs]
    assert events[0] == "node ready"
    assert events[-1] == "node stopped"


async def test_second_signal_kills_what_is_still_stopping() -> None:
    journal: list[str] = []
    root = Supervisor(
        "node",
        [recorder_spec("a", journal), recorder_spec("b", journal, hang_on_stop=True, shutdown=60)],
    )

    async def signal_twice() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        await trio.testing.wait_all_tasks_blocked()  # b hangs in its graceful stop
        os.kill(os.getpid(), signal.SIGINT)

    async with trio.open_nursery() as nursery:
        with trio.fail_after(10):  # real time: the kill must not wait for b's 60 s bound
            status = await run_node(root, on_ready=lambda: nursery.start_soon(signal_twice))
    assert status == EXIT_OK
    assert journal == ["start a", "start b", "stop b"]  # a was killed before its on_stop


async def test_a_tree_that_gives_up_exits_non_zero_with_a_logged_reason() -> None:
    class AlwaysCrashes(Recorder):
        async def on_start(self) -> None:
            await super().on_start()
            self.nursery.start_soon(self._crash)

        async def _crash(self) -> None:
            await trio.lowlevel.checkpoint()
            raise OSError("disk on fire")

    journal: list[str] = []
    root = Supervisor(
        "node", [ChildSpec("x", lambda: AlwaysCrashes("x", journal))], intensity=2, period=60
    )
    with structlog.testing.capture_logs() as logs:
        assert await run_node(root) == EXIT_FAILED
    assert journal.count("start x") == 3  # first run + 2 restarts, then it gives up
    gave_up = [entry for entry in logs if entry["event"] == "node gave up"]
    assert len(gave_up) == 1
    assert "more than 2 restart(s)" in gave_up[0]["reason"]
    assert gave_up[0]["cause"] == "OSError: disk on fire"


async def test_a_tree_that_cannot_start_exits_non_zero() -> None:
    root = Supervisor("node", [recorder_spec("a", [], fail_on_start=True)])
    with structlog.testing.capture_logs() as logs:
        assert await run_node(root) == EXIT_FAILED
    (failed,) = [entry for entry in logs if entry["event"] == "node failed to start"]
    assert failed["reason"] == "RuntimeError: a cannot start"
