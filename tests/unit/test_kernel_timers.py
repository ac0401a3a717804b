"""Timers (`Actor.every`, `Actor.after`): ticks at the period in virtual time, no backlog
behind a slow handler, cancellation (of a queued tick too), and no timer outliving its
incarnation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import trio
import trio.testing
from kernel_helpers import Incarnation, counted_spec, now, running

from golem_actor.kernel import Actor, Call, ChildSpec, Restart, Supervisor, Timer


class Tick(msgspec.Struct, frozen=True):
    label: str
    made: float = -1.0  # when the timer made it (factories only)


class StopTimer(msgspec.Struct, frozen=True):
    label: str


class Crash(msgspec.Struct, frozen=True):
    pass


class Leave(msgspec.Struct, frozen=True):
    pass


class Hold(Call[None], frozen=True):
    """Keep the actor busy (a handler that awaits, on purpose), then maybe cancel."""

    seconds: float
    then_cancel: tuple[str, ...] = ()


TickerMsg = Tick | StopTimer | Crash | Leave | Hold | Incarnation

Setup = Callable[["Ticker"], dict[str, Timer]]


class Ticker(Actor[TickerMsg]):
    """Starts the timers `setup` makes in `on_start`, and journals every tick it handles."""

    def __init__(
        self, incarnation: int, setup: Setup, ticks: list[tuple[Any, ...]], cost: float
    ) -> None:
        super().__init__()
        self.incarnation = incarnation
        self.setup = setup
        self.ticks = ticks
        self.cost = cost
        self.timers: dict[str, Timer] = {}

    async def on_start(self) -> None:
        self.timers = self.setup(self)

    async def handle_cast(self, message: TickerMsg) -> None:
        match message:
            case Tick(label=label, made=made):
                self.ticks.append((self.incarnation, label, now(), made))
                await trio.sleep(self.cost)  # a slow handler, when the test wants one
            case StopTimer(label=label):
                self.timers[label].cancel()
            case Crash():
                raise RuntimeError("crash")
            case Leave():
                self.request_stop()

    async def handle_call(self, request: TickerMsg) -> Any:
        match request:
            case Hold(seconds=seconds, then_cancel=labels):
                await trio.sleep(seconds)
                for label in labels:
                    self.timers[label].cancel()
                return None
            case Incarnation():
                return self.incarnation
        return await super().handle_call(request)


def ticker_spec(
    setup: Setup, ticks: list[tuple[Any, ...]], *, cost: float = 0.0, **options: Any
) -> ChildSpec[TickerMsg]:
    return counted_spec("ticker", lambda n: Ticker(n, setup, ticks, cost), **options)


def times(ticks: list[tuple[Any, ...]], label: str = "a") -> list[float]:
    return [at for _, name, at, _ in ticks if name == label]


async def test_every_ticks_once_per_period(autojump_clock: trio.abc.Clock) -> None:
    ticks: list[tuple[Any, ...]] = []
    sup = Supervisor("root", [ticker_spec(lambda t: {"a": t.every(1.0, Tick("a"))}, ticks)])
    async with running(sup):
        await trio.sleep(10.5)
        assert times(ticks) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
        await trio.sleep(100.0)
        assert len(ticks) == 110  # no drift over many periods


async def test_every_calls_a_factory_for_each_tick(autojump_clock: trio.abc.Clock) -> None:
    ticks: list[tuple[Any, ...]] = []

    def setup(t: Ticker) -> dict[str, Timer]:
        return {"a": t.every(2.0, lambda: Tick("a", made=now()))}

    sup = Supervisor("root", [ticker_spec(setup, ticks)])
    async with running(sup):
        await trio.sleep(7.0)
        assert [made for *_, made in ticks] == [2, 4, 6]


async def test_every_skips_beats_while_a_tick_is_still_queued(
    autojump_clock: trio.abc.Clock,
) -> None:
    ticks: list[tuple[Any, ...]] = []

    def setup(t: Ticker) -> dict[str, Timer]:
        return {"a": t.every(1.0, lambda: Tick("a", made=now()))}

    sup = Supervisor("root", [ticker_spec(setup, ticks, cost=2.25)])
    async with running(sup):
        await trio.sleep(9.5)
        # Handling a tick takes 2.25 s: the tick made at 2 waits until 3.25, and the
        # beat at 3 is skipped since a tick is still queued; no backlog builds up.
        assert [(at, made) for _, _, at, made in ticks] == [
            (1, 1),
            (3.25, 2),
            (5.5, 4),
            (7.75, 6),
        ]
        assert sup.statistics().children[0].inbox.peak_buffer_used == 1


async def test_first_sets_the_first_beat(autojump_clock: trio.abc.Clock) -> None:
    ticks: list[tuple[Any, ...]] = []

    def setup(t: Ticker) -> dict[str, Timer]:
        return {
            "a": t.every(10.0, Tick("a"), first=0.5),
            "b": t.every(10.0, Tick("b"), first=0.0),
        }

    sup = Supervisor("root", [ticker_spec(setup, ticks)])
    async with running(sup):
        await trio.sleep(25.0)
        assert times(ticks, "a") == [0.5, 10.5, 20.5]
        assert times(ticks, "b") == [0, 10, 20]


async def test_after_fires_once(autojump_clock: trio.abc.Clock) -> None:
    ticks: list[tuple[Any, ...]] = []
    sup = Supervisor("root", [ticker_spec(lambda t: {"a": t.after(3.0, Tick("a"))}, ticks)])
    async with running(sup):
        await trio.sleep(30.0)
        assert times(ticks) == [3]


async def test_cancel_stops_a_timer(autojump_clock: trio.abc.Clock) -> None:
    ticks: list[tuple[Any, ...]] = []

    def setup(t: Ticker) -> dict[str, Timer]:
        return {"a": t.every(1.0, Tick("a")), "b": t.after(5.0, Tick("b"))}

    spec = ticker_spec(setup, ticks)
    sup = Supervisor("root", [spec])
    async with running(sup):
        await trio.sleep(2.5)
        await sup.address_of(spec).cast(StopTimer("a"))
        await sup.address_of(spec).cast(StopTimer("b"))
        await trio.sleep(10.0)
        assert times(ticks, "a") == [1, 2]
        assert times(ticks, "b") == []


async def test_cancel_drops_a_tick_already_queued(autojump_clock: trio.abc.Clock) -> None:
    ticks: list[tuple[Any, ...]] = []
    spec = ticker_spec(
        lambda t: {"a": t.every(1.0, Tick("a")), "b": t.after(1.5, Tick("b"))}, ticks
    )
    sup = Supervisor("root", [spec])
    async with running(sup):
        ticker = sup.address_of(spec)
        # Busy from 0 to 2.5: the ticks made at 1 and 1.5 wait in the inbox, then the
        # handler cancels both timers before they are read.
        await ticker.call(Hold(2.5, then_cancel=("a", "b")))
        await trio.sleep(10.0)
        assert ticks == []
        assert await ticker.call(Incarnation()) == 1


async def test_timers_end_with_the_actor(autojump_clock: trio.abc.Clock) -> None:
    ticks: list[tuple[Any, ...]] = []
    spec = ticker_spec(lambda t: {"a": t.every(1.0, Tick("a"))}, ticks, restart=Restart.TRANSIENT)
    sup = Supervisor("root", [spec])
    with trio.fail_after(60):  # a leaked timer would keep the tree from ever stopping
        async with running(sup):
            await trio.sleep(3.5)
            await sup.address_of(spec).cast(Leave())
            await trio.testing.wait_all_tasks_blocked()
            assert not sup.statistics().children[0].running
            await trio.sleep(10.0)
            assert times(ticks) == [1, 2, 3]


async def test_timers_of_a_crashed_incarnation_end_with_it(
    autojump_clock: trio.abc.Clock,
) -> None:
    ticks: list[tuple[Any, ...]] = []
    spec = ticker_spec(lambda t: {"a": t.every(1.0, Tick("a"))}, ticks)
    sup = Supervisor("root", [spec])
    async with running(sup):
        await trio.sleep(2.5)
        await sup.address_of(spec).cast(Crash())
        await trio.sleep(3.0)
        # The restarted incarnation has its own timer, started in its on_start at 2.5.
        assert [(n, at) for n, _, at, _ in ticks] == [(1, 1), (1, 2), (2, 3.5), (2, 4.5)]


async def test_tick_queued_by_a_crashed_incarnation_never_reaches_the_next_one(
    autojump_clock: trio.abc.Clock,
) -> None:
    ticks: list[tuple[Any, ...]] = []
    spec = ticker_spec(lambda t: {"a": t.every(1.0, Tick("a"))}, ticks)
    sup = Supervisor("root", [spec])
    async with running(sup) as nursery:
        ticker = sup.address_of(spec)
        nursery.start_soon(ticker.call, Hold(2.5))  # busy from 0 to 2.5
        await trio.sleep(0.5)
        await ticker.cast(Crash())  # queued at 0.5, ahead of the tick made at 1
        await trio.sleep(4.75)
        # The tick of incarnation 1 waited behind the crash; incarnation 2 drops it.
        assert [(n, at) for n, _, at, _ in ticks] == [(2, 3.5), (2, 4.5)]
