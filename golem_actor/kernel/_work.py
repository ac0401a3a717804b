"""Handles on an actor's background work and timers.

Both are *sources* of messages for the actor's own inbox: a work's result (or its failure,
when the actor asked for failures as messages) and a timer's tick arrive there as ordinary
cast messages, so actor state only ever changes inside handlers. A source that was
cancelled never delivers, not even a report already queued in the inbox: the actor drops
it at dispatch. The tasks themselves live in the actor's nursery (see `Actor.start_work`,
`Actor.every`, `Actor.after`), so they end with the actor.
"""

from __future__ import annotations

from collections.abc import Hashable

import trio

__all__ = ["Source", "Timer", "Work"]


class Source:
    """Something that reports to its actor: cancel it and it never reports again."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cancelled = False
        self.scope = trio.CancelScope()

    def cancel(self) -> None:
        self.cancelled = True
        self.scope.cancel(reason=f"{self.name} cancelled")

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else "live"
        return f"<{type(self).__name__} {self.name} {state}>"


class Work(Source):
    """One piece of slow work. With a `key`, a newer work of the same key supersedes it:
    the old one is cancelled, and the new one starts only once the old one has ended."""

    def __init__(self, name: str, key: Hashable | None) -> None:
        super().__init__(name)
        self.key = key
        self.done = trio.Event()

    @property
    def running(self) -> bool:
        return not self.done.is_set()


class Timer(Source):
    """A periodic or one-shot tick. A periodic timer skips a beat while its previous tick
    is still queued, so a busy actor never builds a backlog of ticks."""

    def __init__(self, name: str, *, periodic: bool) -> None:
        super().__init__(name)
        self.periodic = periodic
        self.pending = False
