"""Deferred replies (`Actor.defer`): answered or refused later, callers that give up,
and held replies closed at once when the actor crashes or stops."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import msgspec
import pytest
import trio
import trio.testing
from kernel_helpers import Incarnation, Refused, counted_spec, now, running

from golem_actor.kernel import (
    Actor,
    Call,
    CallFailed,
    CallTimeout,
    ChildSpec,
    Deferred,
    Inbox,
    Supervisor,
)


class Wait(Call[str], frozen=True):
    """Answered once a `Release` or `Reject` of the same key arrives."""

    key: str


class Release(msgspec.Struct, frozen=True):
    key: str
    value: str


class Reject(msgspec.Struct, frozen=True):
    key: str
    reason: str


class Abandoned(Call[tuple[bool, ...]], frozen=True):
    key: str


class DeferOther(Call[str], frozen=True):
    """Tries to defer the last `Wait` instead of itself."""


class DeferTwice(Call[str], frozen=True):
    pass


class DeferThenRefuse(Call[str], frozen=True):
    pass


class DeferInCast(msgspec.Struct, frozen=True):
    pass


class Boom(msgspec.Struct, frozen=True):
    pass


WaiterMsg = (
    Wait
    | Release
    | Reject
    | Abandoned
    | DeferOther
    | DeferTwice
    | DeferThenRefuse
    | DeferInCast
    | Boom
    | Incarnation
)


class Waiter(Actor[WaiterMsg]):
    def __init__(self, incarnation: int, journal: list[str]) -> None:
        super().__init__()
        self.incarnation = incarnation
        self.journal = journal
        self.waiting: defaultdict[str, list[Deferred[str]]] = defaultdict(list)
        self.last_wait: Wait | None = None

    def _try_defer_last_wait(self) -> str:
        assert self.last_wait is not None
        try:
            self.defer(self.last_wait)
        except RuntimeError as error:
            return str(error)
        return "deferred"

    async def handle_cast(self, message: WaiterMsg) -> None:
        match message:
            case Release(key=key, value=value):
                for handle in self.waiting.pop(key, []):
                    handle.reply(value)
            case Reject(key=key, reason=reason):
                for handle in self.waiting.pop(key, []):
                    handle.refuse(Refused(reason))
            case DeferInCast():
                self.journal.append(self._try_defer_last_wait())
            case Boom():
                raise RuntimeError("boom")

    async def handle_call(self, request: WaiterMsg) -> Any:
        match request:
            case Wait(key=key):
                self.last_wait = request
                self.waiting[key].append(self.defer(request))
                return "ignored: the reply was deferred"
            case Abandoned(key=key):
                return tuple(handle.abandoned for handle in self.waiting[key])
            case DeferOther():
                return self._try_defer_last_wait()
            case DeferTwice():
                handle = self.defer(request)
                try:
                    self.defer(request)
                except RuntimeError as error:
                    handle.reply(str(error))
                return None
            case DeferThenRefuse():
                self.defer(request)
                raise Refused("changed my mind")
            case Incarnation():
                return self.incarnation
        return await super().handle_call(request)


def waiter_spec(journal: list[str] | None = None, **options: Any) -> ChildSpec[WaiterMsg]:
    return counted_spec(
        "waiter", lambda n: Waiter(n, [] if journal is None else journal), **options
    )


async def test_deferred_call_is_answered_by_a_later_message(
    autojump_clock: trio.abc.Clock,
) -> None:
    spec = waiter_spec()
    sup = Supervisor("root", [spec])
    answers: list[tuple[float, str]] = []
    async with running(sup) as nursery:
        waiter = sup.address_of(spec)

        async def wait(key: str) -> None:
            answer = await waiter.call(Wait(key))
            answers.append((now(), answer))

        nursery.start_soon(wait, "k")
        nursery.start_soon(wait, "k")
        nursery.start_soon(wait, "other")
        await trio.testing.wait_all_tasks_blocked()
        assert await waiter.call(Incarnation()) == 1  # not blocked by the held calls
        await trio.sleep(2.0)
        await waiter.cast(Release("k", "v"))
        await trio.testing.wait_all_tasks_blocked()
        assert answers == [(2, "v"), (2, "v")]
        await waiter.cast(Release("other", "w"))
        await trio.testing.wait_all_tasks_blocked()
        assert answers[2:] == [(2, "w")]


async def test_deferred_call_refused_later_raises_in_the_caller(
    autojump_clock: trio.abc.Clock,
) -> None:
    spec = waiter_spec()
    sup = Supervisor("root", [spec])
    async with running(sup) as nursery:
        waiter = sup.address_of(spec)
        nursery.start_soon(waiter.cast, Reject("k", "not today"))  # queued behind the Wait
        with pytest.raises(Refused, match="not today"):
            await waiter.call(Wait("k"))
        assert await waiter.call(Incarnation()) == 1


async def test_caller_that_times_out_leaves_the_actor_healthy(
    autojump_clock: trio.abc.Clock,
) -> None:
    spec = waiter_spec()
    sup = Supervisor("root", [spec])
    async with running(sup):
        waiter = sup.address_of(spec)
        quick = waiter.with_call_timeout(1.0)
        with pytest.raises(CallTimeout):
            await quick.call(Wait("k"))
        assert now() == 1
        assert await waiter.call(Abandoned("k")) == (True,)
        await waiter.cast(Release("k", "too late"))  # dropped silently
        assert await waiter.call(Incarnation()) == 1
        assert sup.statistics().children[0].incarnations == 1
        # A live waiter is not abandoned, and still gets its answer.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter.call, Wait("k"))
            await trio.testing.wait_all_tasks_blocked()
            assert await waiter.call(Abandoned("k")) == (False,)
            await waiter.cast(Release("k", "v"))


async def test_crash_fails_every_held_call_at_once(autojump_clock: trio.abc.Clock) -> None:
    spec = waiter_spec(call_timeout=30.0)
    sup = Supervisor("root", [spec])
    failures: list[tuple[float, str]] = []
    async with running(sup) as nursery:
        waiter = sup.address_of(spec)

        async def wait(key: str) -> None:
            with pytest.raises(CallFailed):
                await waiter.call(Wait(key))
            failures.append((now(), key))

        for key in ("a", "b", "c"):
            nursery.start_soon(wait, key)
        await trio.sleep(1.0)
        await waiter.cast(Boom())
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(failures) == [(1, "a"), (1, "b"), (1, "c")]  # not at the 30 s deadline
        assert await waiter.call(Incarnation()) == 2


async def test_graceful_stop_fails_held_calls_at_once(autojump_clock: trio.abc.Clock) -> None:
    spec = waiter_spec(call_timeout=30.0, shutdown=10.0)
    sup = Supervisor("root", [spec])
    failures: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run, Inbox("root"))
        waiter = sup.address_of(spec)

        async def wait(key: str) -> None:
            with pytest.raises(CallFailed):
                await waiter.call(Wait(key))
            failures.append(now())

        nursery.start_soon(wait, "a")
        nursery.start_soon(wait, "b")
        await trio.sleep(1.0)
        sup.request_stop()
    assert failures == [1, 1]


async def test_defer_takes_only_the_request_being_handled(
    autojump_clock: trio.abc.Clock,
) -> None:
    journal: list[str] = []
    spec = waiter_spec(journal)
    sup = Supervisor("root", [spec])
    async with running(sup) as nursery:
        waiter = sup.address_of(spec)
        nursery.start_soon(waiter.call, Wait("k"))
        await trio.testing.wait_all_tasks_blocked()
        # Another request's handler, then a cast handler, try to defer that Wait.
        assert await waiter.call(DeferOther()) == (
            "defer() takes the request that is being handled right now"
        )
        await waiter.cast(DeferInCast())
        assert await waiter.call(DeferTwice()) == "this request is already deferred"
        assert journal == ["defer() takes the request that is being handled right now"]
        await waiter.cast(Release("k", "v"))
        assert await waiter.call(Incarnation()) == 1


async def test_a_handler_that_defers_then_refuses_answers_the_refusal(
    autojump_clock: trio.abc.Clock,
) -> None:
    spec = waiter_spec()
    sup = Supervisor("root", [spec])
    async with running(sup):
        waiter = sup.address_of(spec)
        with pytest.raises(Refused, match="changed my mind"):
            await waiter.call(DeferThenRefuse())
        assert now() == 0
        assert await waiter.call(Incarnation()) == 1
