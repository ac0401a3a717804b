"""Work that reports back (`Actor.start_work`): results and failures arrive as messages,
cancelled or superseded work never reports, and nothing outlives its incarnation."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import msgspec
import pytest
import trio
import trio.testing
from kernel_helpers import Incarnation, counted_spec, now, running

from golem_actor.kernel import (
    Actor,
    Call,
    CallFailed,
    ChildSpec,
    Restart,
    Supervisor,
    Work,
)


class Launch(msgspec.Struct, frozen=True):
    """Start the job `label`: it sleeps `seconds`, then returns or raises."""

    label: str
    seconds: float
    fail: bool = False
    catch: bool = True  # ask for failures as messages (`failed=`)
    key: str | None = None
    cleanup: float = 0.0  # how long the job takes to end once cancelled


class Done(msgspec.Struct, frozen=True):
    label: str
    value: str


class Failed(msgspec.Struct, frozen=True):
    label: str
    error: str


class CancelWork(msgspec.Struct, frozen=True):
    label: str


class Boom(msgspec.Struct, frozen=True):
    pass


class Busy(Call[None], frozen=True):
    """Keep the actor busy (a handler that awaits, on purpose), then launch or cancel."""

    seconds: float
    then_launch: Launch | None = None
    then_cancel: str | None = None
    then_probe: str | None = None  # journal what `work_for` says of that key


class Outcomes(Call[tuple[str, ...]], frozen=True):
    pass


JobsMsg = Launch | Done | Failed | CancelWork | Boom | Busy | Outcomes | Incarnation


class JobFailed(Exception):
    pass


class Jobs(Actor[JobsMsg]):
    """Starts jobs on request; `outcomes` is its state, changed only by Done/Failed."""

    def __init__(self, incarnation: int, journal: list[str]) -> None:
        super().__init__()
        self.incarnation = incarnation
        self.journal = journal
        self.outcomes: list[str] = []
        self.works: dict[str, Work] = {}

    async def _job(self, launch: Launch) -> str:
        """The slow part; writes to the test's journal but never to the actor's state."""
        self.journal.append(f"{now():g} begin {launch.label}")
        try:
            await trio.sleep(launch.seconds)
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                await trio.sleep(launch.cleanup)
            self.journal.append(f"{now():g} cancelled {launch.label}")
            raise
        self.journal.append(f"{now():g} end {launch.label}")
        if launch.fail:
            raise JobFailed(f"{launch.label} failed")
        return f"{launch.label}-result"

    def _launch(self, launch: Launch) -> None:
        failed: Callable[[Exception], JobsMsg] | None = None
        if launch.catch:
            failed = partial(lambda label, error: Failed(label, str(error)), launch.label)
        self.works[launch.label] = self.start_work(
            partial(self._job, launch),
            then=partial(Done, launch.label),
            failed=failed,
            key=launch.key,
        )

    async def handle_cast(self, message: JobsMsg) -> None:
        match message:
            case Launch():
                self._launch(message)
            case Done(label=label, value=value):
                self.outcomes.append(f"done {label} {value}")
                self.journal.append(f"{now():g} #{self.incarnation} handled done {label}")
            case Failed(label=label, error=error):
                self.outcomes.append(f"failed {label}: {error}")
            case CancelWork(label=label):
                self.works[label].cancel()
            case Boom():
                raise RuntimeError("boom")

    async def handle_call(self, request: JobsMsg) -> Any:
        match request:
            case Busy(seconds=seconds, then_launch=launch, then_cancel=label, then_probe=key):
                await trio.sleep(seconds)
                if key is not None:
                    work = self.work_for(key)
                    running = work is not None and work.running
                    self.journal.append(f"{now():g} probe {key}: {work is not None} {running}")
                if launch is not None:
                    self._launch(launch)
                if label is not None:
                    self.works[label].cancel()
                return None
            case Outcomes():
                return tuple(self.outcomes)
            case Incarnation():
                return self.incarnation
        return await super().handle_call(request)


def jobs_spec(journal: list[str], **options: Any) -> ChildSpec[JobsMsg]:
    return counted_spec("jobs", lambda n: Jobs(n, journal), **options)


def jobs_actor(sup: Supervisor) -> Jobs:
    actor = sup.child_actor("jobs")
    assert isinstance(actor, Jobs)
    return actor


async def test_result_arrives_as_a_message_while_the_actor_stays_responsive(
    autojump_clock: trio.abc.Clock,
) -> None:
    journal: list[str] = []
    spec = jobs_spec(journal)
    sup = Supervisor("root", [spec])
    async with running(sup):
        jobs = sup.address_of(spec)
        await jobs.cast(Launch("a", 2.0))
        # The handler only started the work: the actor answers at once, state unchanged.
        assert await jobs.call(Outcomes()) == ()
        assert now() == 0
        assert journal == ["0 begin a"]
        await trio.sleep(3.0)
        assert await jobs.call(Outcomes()) == ("done a a-result",)
        assert journal == ["0 begin a", "2 end a", "2 #1 handled done a"]


async def test_failure_with_failed_comes_back_as_a_message(
    autojump_clock: trio.abc.Clock,
) -> None:
    journal: list[str] = []
    spec = jobs_spec(journal)
    sup = Supervisor("root", [spec])
    async with running(sup):
        jobs = sup.address_of(spec)
        await jobs.cast(Launch("a", 1.0, fail=True))
        await trio.sleep(2.0)
        assert await jobs.call(Outcomes()) == ("failed a: a failed",)
        assert await jobs.call(Incarnation()) == 1  # no crash
        assert sup.statistics().children[0].last_exit is None


async def test_failure_without_failed_crashes_the_actor_and_it_is_restarted(
    autojump_clock: trio.abc.Clock,
) -> None:
    journal: list[str] = []
    spec = jobs_spec(journal)
    sup = Supervisor("root", [spec])
    async with running(sup):
        jobs = sup.address_of(spec)
        await jobs.cast(Launch("a", 1.0, fail=True, catch=False))
        await trio.sleep(2.0)
        assert await jobs.call(Incarnation()) == 2
        assert await jobs.call(Outcomes()) == ()  # a fresh incarnation, nothing reported
        stats = sup.statistics().children[0]
        assert stats.incarnations == 2
        assert stats.last_exit == "JobFailed: a failed"


async def test_work_is_cancelled_when_the_actor_stops_and_never_reports(
    autojump_clock: trio.abc.Clock,
) -> None:
    journal: list[str] = []
    spec = jobs_spec(journal, restart=Restart.TRANSIENT)
    sup = Supervisor("root", [spec])
    with trio.fail_after(60):  # a leaked job would keep the tree from ever stopping
        async with running(sup):
            jobs = sup.address_of(spec)
            await jobs.cast(Launch("a", 30.0, key="k"))
            await jobs.cast(Launch("b", 30.0))
            await trio.sleep(1.0)
            actor = jobs_actor(sup)
            assert actor.works["a"].running
            assert actor.work_for("k") is actor.works["a"]
        assert now() == 1  # the stop did not wait for the jobs
    assert sorted(journal) == ["0 begin a", "0 begin b", "1 cancelled a", "1 cancelled b"]
    assert not actor.works["a"].running
    assert not actor.works["b"].running
    assert actor.work_for("k") is None
    assert actor.outcomes == []


async def test_newer_work_of_a_key_supersedes_the_older_one(
    autojump_clock: trio.abc.Clock,
) -> None:
    journal: list[str] = []
    spec = jobs_spec(journal)
    sup = Supervisor("root", [spec])
    async with running(sup):
        jobs = sup.address_of(spec)
        await jobs.cast(Launch("old", 5.0, key="k", cleanup=0.5))
        await trio.sleep(1.0)
        await jobs.cast(Launch("new", 1.0, key="k"))
        await trio.testing.wait_all_tasks_blocked()
        actor = jobs_actor(sup)
        assert actor.works["old"].cancelled
        assert actor.work_for("k") is actor.works["new"]
        await trio.sleep(10.0)
        # The new one began only once the old one had finished its cleanup.
        assert journal == [
            "0 begin old",
            "1.5 cancelled old",
            "1.5 begin new",
            "2.5 end new",
            "2.5 #1 handled done new",
        ]
        assert await jobs.call(Outcomes()) == ("done new new-result",)
        assert actor.work_for("k") is None


async def test_a_chain_of_supersessions_never_overlaps(autojump_clock: trio.abc.Clock) -> None:
    journal: list[str] = []
    spec = jobs_spec(journal)
    sup = Supervisor("root", [spec])
    async with running(sup):
        jobs = sup.address_of(spec)
        await jobs.cast(Launch("one", 5.0, key="k", cleanup=2.0))
        await trio.sleep(1.0)
        await jobs.cast(Launch("two", 5.0, key="k"))  # waits for one's cleanup ...
        await jobs.cast(Launch("three", 1.0, key="k"))  # ... and so does three
        await trio.sleep(10.0)
        assert journal == [
            "0 begin one",
            "3 cancelled one",
            "3 begin three",
            "4 end three",
            "4 #1 handled done three",
        ]
        assert await jobs.call(Outcomes()) == ("done three three-result",)


async def test_superseded_work_never_reports_even_when_its_report_is_queued(
    autojump_clock: trio.abc.Clock,
) -> None:
    journal: list[str] = []
    spec = jobs_spec(journal)
    sup = Supervisor("root", [spec])
    async with running(sup):
        jobs = sup.address_of(spec)
        await jobs.cast(Launch("old", 1.0, key="k"))
        # The actor is busy until 3; "old" ends at 1 and its report waits in the inbox.
        # At 3 the busy handler launches "new" of the same key, before the report is read.
        await jobs.call(Busy(3.0, then_launch=Launch("new", 1.0, key="k")))
        await trio.sleep(5.0)
        assert await jobs.call(Outcomes()) == ("done new new-result",)
        assert "1 end old" in journal
        assert [line for line in journal if "handled" in line] == ["4 #1 handled done new"]


async def test_cancelled_work_never_reports(autojump_clock: trio.abc.Clock) -> None:
    journal: list[str] = []
    spec = jobs_spec(journal)
    sup = Supervisor("root", [spec])
    async with running(sup):
        jobs = sup.address_of(spec)
        await jobs.cast(Launch("a", 5.0))
        await trio.sleep(1.0)
        await jobs.cast(CancelWork("a"))
        await trio.testing.wait_all_tasks_blocked()
        assert not jobs_actor(sup).works["a"].running
        await trio.sleep(10.0)
        assert journal == ["0 begin a", "1 cancelled a"]
        assert await jobs.call(Outcomes()) == ()


async def test_cancelled_work_whose_report_is_queued_never_reports(
    autojump_clock: trio.abc.Clock,
) -> None:
    journal: list[str] = []
    spec = jobs_spec(journal)
    sup = Supervisor("root", [spec])
    async with running(sup):
        jobs = sup.address_of(spec)
        await jobs.cast(Launch("a", 1.0))
        await jobs.call(Busy(3.0, then_cancel="a"))  # "a" reported at 1, cancelled at 3
        await trio.sleep(5.0)
        assert "1 end a" in journal
        assert await jobs.call(Outcomes()) == ()
        assert await jobs.call(Incarnation()) == 1


async def test_report_of_a_crashed_incarnation_never_reaches_the_next_one(
    autojump_clock: trio.abc.Clock,
) -> None:
    journal: list[str] = []
    spec = jobs_spec(journal)
    sup = Supervisor("root", [spec])
    async with running(sup) as nursery:
        jobs = sup.address_of(spec)
        await jobs.cast(Launch("a", 1.0))
        nursery.start_soon(jobs.call, Busy(3.0))  # busy from 0 to 3
        await trio.sleep(0.5)
        await jobs.cast(Boom())  # queued at 0.5, before the report of "a" (at 1)
        await trio.sleep(5.0)
        assert await jobs.call(Incarnation()) == 2
        assert await jobs.call(Outcomes()) == ()
        assert "1 end a" in journal
        assert not [line for line in journal if "handled" in line]


async def test_work_of_a_crashed_incarnation_is_cancelled(autojump_clock: trio.abc.Clock) -> None:
    journal: list[str] = []
    spec = jobs_spec(journal)
    sup = Supervisor("root", [spec])
    async with running(sup):
        jobs = sup.address_of(spec)
        await jobs.cast(Launch("a", 5.0))
        await trio.sleep(1.0)
        with pytest.raises(CallFailed):
            await jobs.call(Busy(0.0, then_cancel="no such work"))  # KeyError: a crash
        await trio.sleep(10.0)
        assert journal == ["0 begin a", "1 cancelled a"]
        assert await jobs.call(Incarnation()) == 2


async def test_work_for_holds_a_work_until_its_report_is_handled(
    autojump_clock: trio.abc.Clock,
) -> None:
    journal: list[str] = []
    spec = jobs_spec(journal)
    sup = Supervisor("root", [spec])
    async with running(sup):
        jobs = sup.address_of(spec)
        await jobs.cast(Launch("a", 1.0, key="k"))
        # At 2, "a" has ended and its report waits: `work_for` still gives it, so the
        # "one at a time" idiom (start only when `work_for` is None) loses no result.
        await jobs.call(Busy(2.0, then_probe="k"))
        await jobs.call(Busy(0.0, then_probe="k"))  # after the report was handled
        assert [line for line in journal if "probe" in line or "handled" in line] == [
            "2 probe k: True False",
            "2 #1 handled done a",
            "2 probe k: False False",
        ]
