"""`CrashChild`, the fault-injection hook: the child fails as an exception would make it."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from kernel_helpers import Incarnation, Ping, Slow, recorder_spec, running

from golem_actor.kernel import (
    CallFailed,
    CrashChild,
    DynamicSupervisor,
    GetStatistics,
    Inbox,
    NotRunning,
    StartChild,
    Supervisor,
    SupervisorGaveUp,
)


async def test_a_crashed_child_is_cut_short_and_restarted_alone() -> None:
    journal: list[str] = []
    sup = Supervisor("root", [recorder_spec(n, journal) for n in ("a", "b", "c")], intensity=3)
    async with running(sup) as nursery:
        b = sup.child_address("b")
        failed = trio.Event()

        async def slow_call() -> None:
            with pytest.raises(CallFailed):
                await b.call(Slow(60))
            failed.set()

        nursery.start_soon(slow_call)
        await trio.testing.wait_all_tasks_blocked()
        journal.clear()
        reason = await sup.address.call(CrashChild("b"))
        assert "crash injected into b" in reason
        with trio.fail_after(1):
            await failed.wait()  # the call in flight failed at once, as after a crash
        await trio.testing.wait_all_tasks_blocked()
        assert journal == ["start b"]  # no graceful stop of b; a and c untouched
        assert await b.call(Incarnation()) == 2
        stats = await sup.address.call(GetStatistics())
        assert stats.restarts_in_window == 1
        child = {c.id: c for c in stats.children}["b"]
        assert "InjectedCrash" in str(child.last_exit)
        assert await sup.child_address("a").call(Ping("x")) == "a:x"


async def test_injected_crashes_count_against_the_intensity() -> None:
    journal: list[str] = []
    sup = Supervisor("root", [recorder_spec("a", journal)], intensity=2, period=60.0)
    caught: list[SupervisorGaveUp] = []
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run, Inbox("root"))
            for _ in range(3):
                await sup.address.call(CrashChild("a"))
                await trio.testing.wait_all_tasks_blocked()
            await trio.sleep_forever()
    except* SupervisorGaveUp as group:
        caught.extend(e for e in group.exceptions if isinstance(e, SupervisorGaveUp))
    (gave_up,) = caught
    assert (gave_up.supervisor, gave_up.child) == ("root", "a")  # the third crash, in 60 s


async def test_only_a_running_child_can_be_crashed() -> None:
    sup = Supervisor("root", [recorder_spec("a", [])])
    async with running(sup):
        with pytest.raises(NotRunning, match="no running child 'z'"):
            await sup.address.call(CrashChild("z"))


async def test_a_dynamic_child_can_be_crashed_too() -> None:
    journal: list[str] = []
    sup = DynamicSupervisor("dyn", intensity=3, period=60.0)
    async with running(sup):
        address = await sup.address.call(StartChild(recorder_spec("p", journal)))
        await sup.address.call(CrashChild("p"))
        await trio.testing.wait_all_tasks_blocked()
        assert await address.call(Incarnation()) == 2
