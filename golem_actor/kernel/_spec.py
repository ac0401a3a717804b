"""Child specifications: what to start, and how to treat its exits (OTP's child spec)."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ._actor import Actor

__all__ = ["ChildSpec", "Restart", "Strategy"]

M = TypeVar("M")


class Restart(enum.Enum):
    """When an exited child is started again (OTP meanings)."""

    PERMANENT = "permanent"  # always
    TRANSIENT = "transient"  # only after a crash, not after a normal return
    TEMPORARY = "temporary"  # never, not even when a sibling's restart stops it

    def wants_restart(self, crashed: bool) -> bool:
        return self is Restart.PERMANENT or (self is Restart.TRANSIENT and crashed)


class Strategy(enum.Enum):
    """Which children a supervisor restarts when one of them exits."""

    ONE_FOR_ONE = "one_for_one"  # only that child
    ONE_FOR_ALL = "one_for_all"  # all of them
    REST_FOR_ONE = "rest_for_one"  # that child and those started after it


@dataclass(frozen=True, slots=True)
class ChildSpec(Generic[M]):
    """How to run one child.

    `start` is called on every (re)start and must return a fresh actor. A nested
    supervisor is the exception: return the *same* `Supervisor` object each time, since
    it owns its children's inboxes and so keeps their addresses valid; it resets the rest
    of its state on every run.

    `shutdown` is the graceful-stop bound in seconds: 0 cancels at once (brutal kill),
    `math.inf` waits for ever (the usual choice for a nested supervisor).

    `M` is what the child accepts: `Supervisor.address_of(spec)` is an `Address[M]`.
    """

    id: str
    start: Callable[[], Actor[M]]
    restart: Restart = Restart.PERMANENT
    shutdown: float = 5.0
    inbox_size: int = 16
    call_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("a child needs an id")
        if self.shutdown < 0 or math.isnan(self.shutdown):
            raise ValueError(f"child {self.id!r}: shutdown must be >= 0 seconds")
        if self.inbox_size < 1:
            raise ValueError(f"child {self.id!r}: the inbox needs room for a message")
