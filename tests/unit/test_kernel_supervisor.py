"""Supervisor semantics: strategies, restart types, intensity, ordered shutdown."""

from __future__ import annotations

import math
from typing import Any

import pytest
import structlog
import trio
import trio.testing
from kernel_helpers import Boom, Crash, Incarnation, Note, Ping, Quit, Slow, recorder_spec, running

from golem_actor.kernel import (
    CallFailed,
    ChildSpec,
    GetStatistics,
    Inbox,
    Restart,
    Strategy,
    Supervisor,
    SupervisorGaveUp,
)


def three(journal: list[str], **restarts: Restart) -> list[ChildSpec[Any]]:
    return [
        recorder_spec(name, journal, restart=restarts.get(name, Restart.PERMANENT))
        for name in ("a", "b", "c")
    ]


async def crash_and_settle(sup: Supervisor, child: str) -> None:
    with pytest.raises(CallFailed):
        await sup.child_address(child).call(Crash())
    await trio.testing.wait_all_tasks_blocked()


async def test_children_start_in_order_and_stop_in_reverse() -> None:
    journal: list[str] = []
    sup = Supervisor("root", three(journal))
    async with running(sup):
        assert journal == ["start a", "start b", "start c"]
    assert journal[3:] == ["stop c", "stop b", "stop a"]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (Strategy.ONE_FOR_ONE, ["start b"]),
        (Strategy.ONE_FOR_ALL, ["stop c", "stop a", "start a", "start b", "start c"]),
        (Strategy.REST_FOR_ONE, ["stop c", "start b", "start c"]),
    ],
)
async def test_strategy_restarts_exactly_the_right_children_in_order(
    strategy: Strategy, expected: list[str]
) -> None:
    journal: list[str] = []
    sup = Supervisor("root", three(journal), strategy=strategy)
    async with running(sup):
        journal.clear()
        await crash_and_settle(sup, "b")
        assert journal == expected
        incarnations = {c.id: c.incarnations for c in sup.statistics().children}
        restarted = {line.split()[1] for line in expected if line.startswith("start")}
        assert incarnations == {n: 2 if n in restarted else 1 for n in ("a", "b", "c")}


async def test_permanent_child_is_restarted_even_after_a_normal_exit() -> None:
    journal: list[str] = []
    sup = Supervisor("root", [recorder_spec("p", journal)])
    async with running(sup):
        await sup.child_address("p").cast(Quit())
        await trio.testing.wait_all_tasks_blocked()
        assert await sup.child_address("p").call(Incarnation()) == 2


async def test_transient_child_is_restarted_only_after_a_crash() -> None:
    journal: list[str] = []
    sup = Supervisor("root", [recorder_spec("t", journal, restart=Restart.TRANSIENT)])
    async with running(sup):
        t = sup.child_address("t")
        await crash_and_settle(sup, "t")
        assert await t.call(Incarnation()) == 2
        await t.cast(Quit())
        await trio.testing.wait_all_tasks_blocked()
        child = sup.statistics().children[0]
        assert (child.running, child.incarnations) == (False, 2)


async def test_temporary_child_is_never_restarted_not_even_by_a_sibling() -> None:
    journal: list[str] = []
    specs = three(journal, c=Restart.TEMPORARY)
    sup = Supervisor("root", specs, strategy=Strategy.ONE_FOR_ALL)
    async with running(sup):
        journal.clear()
        await crash_and_settle(sup, "a")
        # c was stopped by a's restart and stays down; a and b came back.
        assert journal == ["stop c", "stop b", "start a", "start b"]
        running_children = {c.id for c in sup.statistics().children if c.running}
        assert running_children == {"a", "b"}
        await crash_and_settle(sup, "b")
        assert not sup.statistics().children[2].running


async def test_temporary_child_crash_is_not_restarted() -> None:
    journal: list[str] = []
    sup = Supervisor("root", [recorder_spec("tmp", journal, restart=Restart.TEMPORARY)])
    async with running(sup):
        await crash_and_settle(sup, "tmp")
        child = sup.statistics().children[0]
        assert (child.running, child.incarnations) == (False, 1)
        assert child.last_exit == "RuntimeError: tmp crashed"


async def test_messages_queued_during_a_restart_reach_the_next_incarnation(
    autojump_clock: trio.abc.Clock,
) -> None:
    journal: list[str] = []
    # b stops slowly, so a one_for_all restart takes time while messages queue up for a.
    specs = [recorder_spec("a", journal), recorder_spec("b", journal, hang_on_stop=True)]
    sup = Supervisor("root", specs, strategy=Strategy.ONE_FOR_ALL)
    async with running(sup) as nursery:
        a = sup.child_address("a")
        nursery.start_soon(crash_and_settle, sup, "b")
        await trio.sleep(1.0)  # b is hanging in on_stop, a is already stopped
        assert "stop a" in journal
        await a.cast(Note("queued during restart"))
        answer = await a.call(Incarnation())  # waits in the inbox for incarnation 2
        assert answer == 2
        assert "a got queued during restart" in journal
        assert journal.index("a got queued during restart") > journal.index("start b")
        sup.child_address("b")  # addresses are still the same objects' views
        b_child = sup.statistics().children[1]
        assert b_child.incarnations == 2


async def test_hung_stop_is_cancelled_after_its_bound(autojump_clock: trio.abc.Clock) -> None:
    journal: list[str] = []
    specs = [
        recorder_spec("a", journal, shutdown=1.0),
        recorder_spec("hung", journal, shutdown=0.3, hang_on_stop=True),
    ]
    sup = Supervisor("root", specs)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run, Inbox("root"))
        stop_began = trio.current_time()
        sup.request_stop()
    assert trio.current_time() - stop_began == pytest.approx(0.3)
    assert journal[-2:] == ["stop hung", "stop a"]


async def test_supervisor_waits_for_a_child_with_infinite_shutdown() -> None:
    journal: list[str] = []
    inner = Supervisor("inner", [recorder_spec("leaf", journal)])
    outer = Supervisor("outer", [ChildSpec("inner", lambda: inner, shutdown=math.inf)])
    async with running(outer):
        assert await inner.child_address("leaf").call(Ping("x")) == "leaf:x"
    assert journal == ["start leaf", "stop leaf"]


async def test_intensity_escalates_through_nested_supervisors(
    autojump_clock: trio.abc.Clock,
) -> None:
    journal: list[str] = []
    inner = Supervisor("inner", [recorder_spec("leaf", journal)], intensity=1, period=10)
    outer = Supervisor(
        "outer",
        [recorder_spec("sibling", journal), ChildSpec("inner", lambda: inner, shutdown=math.inf)],
        strategy=Strategy.ONE_FOR_ONE,
        intensity=1,
        period=10,
    )
    leaf = inner.child_address("leaf")
    caught: list[SupervisorGaveUp] = []
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(outer.run, Inbox("outer"))
            await crash_and_settle(inner, "leaf")  # 1st: the inner restarts the leaf
            assert await leaf.call(Incarnation()) == 2
            await crash_and_settle(inner, "leaf")  # 2nd: the inner gives up, outer restarts it
            assert await leaf.call(Incarnation()) == 3  # same address, the inner's new run
            await crash_and_settle(inner, "leaf")  # inner restarts leaf: its window was reset
            await crash_and_settle(inner, "leaf")  # inner gives up again: outer's 2nd restart
            await trio.sleep_forever()
    except* SupervisorGaveUp as group:
        caught.extend(e for e in group.exceptions if isinstance(e, SupervisorGaveUp))
    (gave_up,) = caught
    assert (gave_up.supervisor, gave_up.child) == ("outer", "inner")
    assert isinstance(gave_up.__cause__, SupervisorGaveUp)
    assert gave_up.__cause__.child == "leaf"
    assert journal[-1] == "stop sibling"  # the outer stopped its remaining child on giving up


async def test_restarts_outside_the_period_do_not_count(autojump_clock: trio.abc.Clock) -> None:
    sup = Supervisor("root", [recorder_spec("a", [])], intensity=1, period=5)
    async with running(sup):
        for expected in (2, 3, 4):
            await crash_and_settle(sup, "a")
            assert await sup.child_address("a").call(Incarnation()) == expected
            await trio.sleep(6)
        assert sup.statistics().restarts_in_window == 0


async def test_crash_in_a_cast_handler_restarts_the_child() -> None:
    journal: list[str] = []
    sup = Supervisor("root", [recorder_spec("a", journal)])
    async with running(sup):
        a = sup.child_address("a")
        await a.cast(Boom())
        await a.cast(Note("after the crash"))
        assert await a.call(Incarnation()) == 2
        assert "a got after the crash" in journal


async def test_a_start_failure_fails_the_supervisor_start_and_stops_the_others() -> None:
    journal: list[str] = []
    specs = [recorder_spec("a", journal), recorder_spec("b", journal, fail_on_start=True)]
    sup = Supervisor("root", specs)
    start_failed = pytest.RaisesGroup(
        pytest.RaisesExc(RuntimeError, match="b cannot start"), flatten_subgroups=True
    )
    with start_failed:
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run, Inbox("root"))
    assert journal == ["start a", "stop a"]


async def test_kill_skips_the_grace_periods(autojump_clock: trio.abc.Clock) -> None:
    journal: list[str] = []
    specs = [
        recorder_spec("a", journal, shutdown=30.0, hang_on_stop=True),
        recorder_spec("b", journal, shutdown=30.0, hang_on_stop=True),
    ]
    sup = Supervisor("root", specs)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run, Inbox("root"))
        began = trio.current_time()
        sup.request_stop()
        await trio.sleep(1.0)  # b is hanging in its graceful stop
        sup.request_kill()  # the "second Ctrl-C"
    assert trio.current_time() - began == pytest.approx(1.0)
    # b was cancelled in its hanging on_stop; a was cancelled before it could even begin.
    assert journal == ["start a", "start b", "stop b"]


async def test_outer_cancellation_still_stops_children_in_reverse_order() -> None:
    journal: list[str] = []
    sup = Supervisor("root", three(journal))
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run, Inbox("root"))
            scope.cancel()
    assert journal[3:] == ["stop c", "stop b", "stop a"]


async def test_statistics_through_the_supervisors_address() -> None:
    journal: list[str] = []
    inner = Supervisor("inner", [recorder_spec("x", journal, inbox_size=4)])
    outer = Supervisor("outer", [ChildSpec("inner", lambda: inner, shutdown=math.inf)])
    async with running(outer):
        await crash_and_settle(inner, "x")
        stats = await outer.child_address("inner").call(GetStatistics())
        (child,) = stats.children
        assert (stats.name, stats.strategy, stats.restarts_in_window) == ("inner", "one_for_one", 1)
        assert (child.id, child.running, child.incarnations) == ("x", True, 2)
        assert child.inbox.max_buffer_size == 4
        assert child.last_exit == "RuntimeError: x crashed"


async def test_one_log_line_per_exit_and_restart() -> None:
    journal: list[str] = []
    sup = Supervisor("root", [recorder_spec("a", journal)])
    with structlog.testing.capture_logs() as logs:
        async with running(sup):
            await crash_and_settle(sup, "a")
    events = [(e["event"], e.get("child"), e.get("decision")) for e in logs]
    assert events == [
        ("child exited", "a", "restart"),
        ("child restarted", "a", None),
        ("child stopped", "a", None),
    ]
    assert logs[0]["reason"] == "RuntimeError: a crashed"
    assert logs[0]["supervisor"] == "root"


async def test_addresses_are_stable_across_restarts() -> None:
    sup = Supervisor("root", [recorder_spec("a", [])])
    async with running(sup):
        a = sup.child_address("a")
        for _ in range(3):
            await crash_and_settle(sup, "a")
        assert await a.call(Slow(0)) == "a slept"
        assert await a.call(Incarnation()) == 4


def test_duplicate_child_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        Supervisor("root", [recorder_spec("a", []), recorder_spec("a", [])])
