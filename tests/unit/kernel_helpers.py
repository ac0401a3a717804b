"""A small, scriptable actor for the kernel tests, and helpers to run a tree."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import msgspec
import trio

from golem_actor.kernel import Actor, ActorError, Call, ChildSpec, Inbox, Restart
from golem_actor.kernel._supervision import SupervisorBase

M = TypeVar("M")


class Ping(Call[str], frozen=True):
    text: str


class Crash(Call[None], frozen=True):
    pass


class Slow(Call[str], frozen=True):
    seconds: float


class Refuse(Call[None], frozen=True):
    pass


class Incarnation(Call[int], frozen=True):
    pass


class Note(msgspec.Struct, frozen=True):
    text: str


class Boom(msgspec.Struct, frozen=True):
    pass


class Quit(msgspec.Struct, frozen=True):
    """Makes the actor stop itself: a normal exit."""


class Refused(ActorError):
    pass


RecorderMsg = Ping | Crash | Slow | Refuse | Incarnation | Note | Boom | Quit


class Recorder(Actor[RecorderMsg]):
    """Writes what happens to it in a shared journal."""

    def __init__(
        self,
        name: str,
        journal: list[str],
        incarnation: int = 0,
        *,
        hang_on_stop: bool = False,
        fail_on_start: bool = False,
    ) -> None:
        super().__init__()
        self.name = name
        self.journal = journal
        self.incarnation = incarnation
        self.hang_on_stop = hang_on_stop
        self.fail_on_start = fail_on_start

    async def on_start(self) -> None:
        if self.fail_on_start:
            raise RuntimeError(f"{self.name} cannot start")
        self.journal.append(f"start {self.name}")

    async def handle_call(self, request: RecorderMsg) -> Any:
        match request:
            case Ping(text=text):
                return f"{self.name}:{text}"
            case Crash():
                raise RuntimeError(f"{self.name} crashed")
            case Slow(seconds=seconds):
                self.journal.append(f"{self.name} slow begin")
                await trio.sleep(seconds)
                self.journal.append(f"{self.name} slow end")
                return f"{self.name} slept"
            case Refuse():
                raise Refused(f"{self.name} refuses")
            case Incarnation():
                return self.incarnation
        return await super().handle_call(request)

    async def handle_cast(self, message: RecorderMsg) -> None:
        match message:
            case Note(text=text):
                self.journal.append(f"{self.name} got {text}")
            case Boom():
                raise RuntimeError(f"{self.name} boom")
            case Quit():
                self.request_stop()

    async def on_stop(self) -> None:
        self.journal.append(f"stop {self.name}")
        if self.hang_on_stop:
            await trio.sleep_forever()


def recorder_spec(
    name: str,
    journal: list[str],
    *,
    restart: Restart = Restart.PERMANENT,
    shutdown: float = 5.0,
    inbox_size: int = 16,
    call_timeout: float = 5.0,
    **options: bool,
) -> ChildSpec[RecorderMsg]:
    """A spec whose factory counts incarnations, so tests can tell them apart."""
    count = 0

    def start() -> Recorder:
        nonlocal count
        count += 1
        return Recorder(name, journal, count, **options)

    return ChildSpec(
        name,
        start,
        restart=restart,
        shutdown=shutdown,
        inbox_size=inbox_size,
        call_timeout=call_timeout,
    )


@asynccontextmanager
async def running(sup: SupervisorBase[Any]) -> AsyncIterator[trio.Nursery]:
    """Run `sup` in a nursery; stop it gracefully on exit of the block."""
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run, Inbox(sup.name))
        yield nursery
        sup.request_stop()


def only(journal: list[str], keep: Callable[[str], bool]) -> list[str]:
    return [line for line in journal if keep(line)]


def counted_spec(name: str, make: Callable[[int], Actor[M]], **options: Any) -> ChildSpec[M]:
    """A spec whose factory hands `make` the incarnation number: 1, 2, ..."""
    count = 0

    def start() -> Actor[M]:
        nonlocal count
        count += 1
        return make(count)

    return ChildSpec(name, start, **options)


def now() -> float:
    """The virtual time, rounded so tests can compare it with plain literals."""
    return round(trio.current_time(), 6)
