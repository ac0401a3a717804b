"""The kernel's exceptions, in one flat module (httpcore's `_exceptions.py` style).

Two families: `ActorError` is a *domain* failure that a handler raises on purpose and that
travels back to the caller while the actor keeps running; the others describe what went
wrong with the messaging itself.
"""

from __future__ import annotations

import trio

__all__ = [
    "ActorError",
    "ActorGone",
    "CallFailed",
    "CallTimeout",
    "KernelError",
    "SupervisorGaveUp",
]


class ActorError(Exception):
    """An expected failure of a request (not found, conflict, ...).

    Raised inside `handle_call`, it is re-raised in the caller and the actor carries on.
    Anything that is not an `ActorError` crashes the actor and its supervisor decides.
    """


class KernelError(Exception):
    """Base of the messaging failures."""


class CallFailed(KernelError):
    """The actor crashed or stopped while it held the call: no answer will ever come."""

    def __init__(self, actor: str, request: object) -> None:
        super().__init__(f"call to {actor!r} failed: the actor stopped before answering")
        self.actor = actor
        self.request = request


class CallTimeout(KernelError, trio.TooSlowError):
    """No answer within the address's call deadline; the actor itself is left alone."""

    def __init__(self, actor: str, request: object, deadline: float) -> None:
        super().__init__(f"call to {actor!r} timed out after {deadline:g}s: {request!r}")
        self.actor = actor
        self.request = request
        self.deadline = deadline


class ActorGone(KernelError):
    """The address's inbox is closed for good: its actor will never run again."""

    def __init__(self, actor: str) -> None:
        super().__init__(f"actor {actor!r} is gone")
        self.actor = actor


class SupervisorGaveUp(Exception):
    """Raised out of a supervisor past its restart intensity; its parent counts it a crash."""

    def __init__(self, supervisor: str, child: str, restarts: int, period: float) -> None:
        super().__init__(
            f"supervisor {supervisor!r} gave up: more than {restarts} restart(s) in {period:g}s,"
            f" last exit from child {child!r}"
        )
        self.supervisor = supervisor
        self.child = child
