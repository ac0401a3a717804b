"""DynamicSupervisor: children added and removed at run time."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from kernel_helpers import Crash, Incarnation, Ping, Quit, recorder_spec, running

from golem_actor.kernel import (
    ActorGone,
    CallFailed,
    ChildAddress,
    ChildAlreadyStarted,
    ChildStartFailed,
    DynamicSupervisor,
    Inbox,
    NoSuchChild,
    Restart,
    StartChild,
    SupervisorGaveUp,
    TerminateChild,
    WhichChildren,
)


async def test_start_call_and_terminate_children() -> None:
    journal: list[str] = []
    dyn = DynamicSupervisor("proxies")
    async with running(dyn):
        sup = dyn.address
        one = await sup.call(StartChild(recorder_spec("vm-1", journal)))
        two = await sup.call(StartChild(recorder_spec("vm-2", journal)))
        assert await one.call(Ping("x")) == "vm-1:x"
        assert await sup.call(WhichChildren()) == ("vm-1", "vm-2")
        found = await sup.call(ChildAddress("vm-2"))
        assert await found.call(Ping("found")) == "vm-2:found"
        await sup.call(TerminateChild("vm-1"))
        assert await sup.call(WhichChildren()) == ("vm-2",)
        with pytest.raises(ActorGone):
            await one.call(Ping("gone"))
        assert await two.call(Ping("y")) == "vm-2:y"  # untouched by its sibling's removal
        with pytest.raises(NoSuchChild):
            await sup.call(TerminateChild("vm-1"))
        with pytest.raises(NoSuchChild):
            await sup.call(ChildAddress("vm-1"))
    assert journal == ["start vm-1", "start vm-2", "stop vm-1", "stop vm-2"]


async def test_duplicate_ids_and_start_failures_are_refused_not_crashes() -> None:
    dyn = DynamicSupervisor("proxies")
    async with running(dyn):
        await dyn.address.call(StartChild(recorder_spec("vm-1", [])))
        with pytest.raises(ChildAlreadyStarted):
            await dyn.address.call(StartChild(recorder_spec("vm-1", [])))
        with pytest.raises(ChildStartFailed, match="cannot start"):
            await dyn.address.call(StartChild(recorder_spec("bad", [], fail_on_start=True)))
        assert await dyn.address.call(WhichChildren()) == ("vm-1",)


async def test_one_crash_never_touches_another_child() -> None:
    dyn = DynamicSupervisor("proxies")
    async with running(dyn):
        one = await dyn.address.call(StartChild(recorder_spec("vm-1", [])))
        two = await dyn.address.call(StartChild(recorder_spec("vm-2", [])))
        with pytest.raises(CallFailed):
            await one.call(Crash())
        await trio.testing.wait_all_tasks_blocked()
        assert await one.call(Incarnation()) == 2
        assert await two.call(Incarnation()) == 1


async def test_children_that_are_done_are_removed() -> None:
    dyn = DynamicSupervisor("proxies")
    async with running(dyn):
        spec = recorder_spec("vm-1", [], restart=Restart.TRANSIENT)
        one = await dyn.address.call(StartChild(spec))
        await one.cast(Quit())
        await trio.testing.wait_all_tasks_blocked()
        assert await dyn.address.call(WhichChildren()) == ()
        with pytest.raises(ActorGone):
            await one.cast(Quit())
        # the id is free again
        await dyn.address.call(StartChild(recorder_spec("vm-1", [])))


async def test_children_stop_concurrently_each_within_its_bound(
    autojump_clock: trio.abc.Clock,
) -> None:
    journal: list[str] = []
    dyn = DynamicSupervisor("proxies")
    async with trio.open_nursery() as nursery:
        await nursery.start(dyn.run, Inbox("proxies"))
        for n in range(3):
            spec = recorder_spec(f"vm-{n}", journal, shutdown=2.0, hang_on_stop=True)
            await dyn.address.call(StartChild(spec))
        began = trio.current_time()
        dyn.request_stop()
    assert trio.current_time() - began == pytest.approx(2.0)  # not 3 x 2 s
    assert sorted(line for line in journal if line.startswith("stop")) == [
        "stop vm-0",
        "stop vm-1",
        "stop vm-2",
    ]


async def test_shared_intensity_makes_the_dynamic_supervisor_give_up() -> None:
    dyn = DynamicSupervisor("proxies", intensity=1, period=60)
    caught: list[SupervisorGaveUp] = []
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(dyn.run, Inbox("proxies"))
            one = await dyn.address.call(StartChild(recorder_spec("vm-1", [])))
            two = await dyn.address.call(StartChild(recorder_spec("vm-2", [])))
            for child in (one, two):  # one crash each: two restarts in the window
                with pytest.raises(CallFailed):
                    await child.call(Crash())
                await trio.testing.wait_all_tasks_blocked()
            await trio.sleep_forever()
    except* SupervisorGaveUp as group:
        caught.extend(e for e in group.exceptions if isinstance(e, SupervisorGaveUp))
    assert [(e.supervisor, e.child) for e in caught] == [("proxies", "vm-2")]
