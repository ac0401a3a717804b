"""Address and Actor semantics: call, cast, try_cast, deadlines, late replies, stops."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from kernel_helpers import (
    Crash,
    Incarnation,
    Note,
    Ping,
    Quit,
    Recorder,
    Refuse,
    Refused,
    Slow,
    recorder_spec,
    running,
)

from golem_actor.kernel import (
    ActorGone,
    CallFailed,
    CallTimeout,
    ChildSpec,
    Inbox,
    Restart,
    Supervisor,
)


async def test_call_returns_the_handlers_answer() -> None:
    sup = Supervisor("root", [recorder_spec("a", [])])
    async with running(sup):
        assert await sup.child_address("a").call(Ping("hi")) == "a:hi"


async def test_actor_error_reaches_the_caller_and_the_actor_keeps_running() -> None:
    sup = Supervisor("root", [recorder_spec("a", [])])
    async with running(sup):
        a = sup.child_address("a")
        with pytest.raises(Refused, match="a refuses"):
            await a.call(Refuse())
        assert await a.call(Incarnation()) == 1  # same incarnation: no crash


async def test_call_to_a_crashing_handler_fails_at_once(autojump_clock: trio.abc.Clock) -> None:
    sup = Supervisor("root", [recorder_spec("a", [])])
    async with running(sup):
        a = sup.child_address("a")
        before = trio.current_time()
        with pytest.raises(CallFailed):
            await a.call(Crash())
        assert trio.current_time() == before  # no waiting for the 5 s deadline
        assert await a.call(Incarnation()) == 2  # restarted under the same address


async def test_call_timeout_leaves_the_actor_healthy(autojump_clock: trio.abc.Clock) -> None:
    journal: list[str] = []
    sup = Supervisor("root", [recorder_spec("a", journal, call_timeout=1.0)])
    async with running(sup):
        a = sup.child_address("a")
        before = trio.current_time()
        with pytest.raises(CallTimeout) as caught:
            await a.call(Slow(1.5))
        assert isinstance(caught.value, trio.TooSlowError)
        assert trio.current_time() - before == pytest.approx(1.0)
        # The late answer is dropped; the next call gets its own answer, same incarnation.
        assert await a.call(Ping("next")) == "a:next"
        assert await a.call(Incarnation()) == 1
        assert journal.count("a slow end") == 1


async def test_late_reply_is_dropped_without_crashing_the_actor(
    autojump_clock: trio.abc.Clock,
) -> None:
    sup = Supervisor("root", [recorder_spec("a", [])])
    async with running(sup):
        a = sup.child_address("a")
        with trio.move_on_after(0.5):  # the caller's own tighter deadline
            await a.call(Slow(2.0))
        await trio.sleep(2.0)  # the handler finishes and answers into a closed channel
        assert await a.call(Incarnation()) == 1
        assert sup.statistics().children[0].incarnations == 1


async def test_per_address_deadline_can_be_changed(autojump_clock: trio.abc.Clock) -> None:
    sup = Supervisor("root", [recorder_spec("a", [])])
    async with running(sup):
        quick = sup.child_address("a").with_call_timeout(0.25)
        with pytest.raises(CallTimeout):
            await quick.call(Slow(1.0))
        assert quick.call_timeout == 0.25


async def test_full_inbox_applies_backpressure(autojump_clock: trio.abc.Clock) -> None:
    journal: list[str] = []
    sup = Supervisor("root", [recorder_spec("a", journal, inbox_size=2)])
    async with running(sup) as nursery:
        a = sup.child_address("a")
        nursery.start_soon(a.call, Slow(3.0))  # keeps the actor busy
        await trio.testing.wait_all_tasks_blocked()
        await a.cast(Note("1"))
        await a.cast(Note("2"))
        assert a.try_cast(Note("lost")) is False  # full: try_cast refuses
        third_sent = trio.Event()

        async def blocked_sender() -> None:
            await a.cast(Note("3"))
            third_sent.set()

        nursery.start_soon(blocked_sender)
        await trio.testing.wait_all_tasks_blocked()
        assert not third_sent.is_set()  # cast waits while the inbox is full
        assert sup.statistics().children[0].inbox.tasks_waiting_send == 1
        await third_sent.wait()  # once the slow call ends, the queue drains
        await a.call(Ping("sync"))
        assert [line for line in journal if "got" in line] == ["a got 1", "a got 2", "a got 3"]


async def test_closed_inbox_means_actor_gone() -> None:
    inbox: Inbox[object] = Inbox("x")
    address = inbox.address()
    inbox.close()
    with pytest.raises(ActorGone):
        await address.cast(Note("late"))
    with pytest.raises(ActorGone):
        address.try_cast(Note("late"))
    with pytest.raises(ActorGone):
        await address.call(Ping("late"))


async def test_queued_call_fails_at_once_when_the_inbox_closes(
    autojump_clock: trio.abc.Clock,
) -> None:
    inbox: Inbox[object] = Inbox("nobody-reads")
    address = inbox.address()
    failed = trio.Event()

    async def caller() -> None:
        with pytest.raises(CallFailed):
            await address.call(Ping("queued"))
        failed.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(caller)
        await trio.testing.wait_all_tasks_blocked()
        before = trio.current_time()
        assert inbox.close() == 1
        await failed.wait()
        assert trio.current_time() == before


async def test_call_in_flight_fails_at_once_when_the_actor_is_killed(
    autojump_clock: trio.abc.Clock,
) -> None:
    sup = Supervisor("root", [recorder_spec("a", [], shutdown=0.0)])
    outcome: list[str] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run, Inbox("root"))

        async def caller() -> None:
            with pytest.raises(CallFailed):
                await sup.child_address("a").call(Slow(60.0))
            outcome.append(f"failed at {trio.current_time():.0f}")

        nursery.start_soon(caller)
        await trio.sleep(1.0)
        sup.request_stop()  # shutdown=0: brutal kill while the call is handled
    assert outcome == ["failed at 1"]


async def test_graceful_stop_lets_the_message_in_flight_finish(
    autojump_clock: trio.abc.Clock,
) -> None:
    journal: list[str] = []
    sup = Supervisor("root", [recorder_spec("a", journal, shutdown=10.0)])
    answers: list[str] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run, Inbox("root"))

        async def caller() -> None:
            answers.append(await sup.child_address("a").call(Slow(2.0)))

        nursery.start_soon(caller)
        await trio.testing.wait_all_tasks_blocked()
        sup.request_stop()
    assert answers == ["a slept"]
    assert journal == ["start a", "a slow begin", "a slow end", "stop a"]


async def test_actor_address_lets_background_work_report_back() -> None:
    class Worker(Recorder):
        async def on_start(self) -> None:
            await super().on_start()
            self.nursery.start_soon(self.address.cast, Note("from my own nursery"))

    journal: list[str] = []
    sup = Supervisor("root", [ChildSpec("w", lambda: Worker("w", journal))])
    async with running(sup):
        await sup.child_address("w").call(Ping("sync"))
        assert "w got from my own nursery" in journal


async def test_transient_child_stopping_itself_is_a_normal_exit() -> None:
    journal: list[str] = []
    sup = Supervisor("root", [recorder_spec("t", journal, restart=Restart.TRANSIENT)])
    async with running(sup):
        await sup.child_address("t").cast(Quit())
        await trio.testing.wait_all_tasks_blocked()
        stats = sup.statistics().children[0]
        assert (stats.running, stats.incarnations, stats.last_exit) == (False, 1, "normal")
