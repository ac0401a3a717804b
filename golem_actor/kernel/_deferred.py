"""Deferred replies: OTP's `{noreply, State}` now and `gen_server:reply(From, Value)` later.

A handler that cannot answer yet calls `self.defer(request)` and keeps the returned
`Deferred`; the kernel then leaves the caller waiting instead of answering with the
handler's return value. The caller's own deadline still applies: when it passes, the
caller stops listening and a later `reply` is dropped (`abandoned` tells the actor it
may forget the handle). If the actor crashes or stops while it holds deferred replies,
they are all closed unanswered, so their callers fail at once with `CallFailed`, as for
a call whose handler crashed.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Generic, TypeVar

import trio

from ._errors import ActorError
from ._messages import Answer, Call, Outcome, Refusal

__all__ = ["Deferred"]

R = TypeVar("R")


class Deferred(Generic[R]):
    """The reply handle of one call whose answer comes later."""

    __slots__ = ("_done", "_held", "_reply", "request")

    def __init__(
        self,
        request: Call[R],
        reply: trio.MemorySendChannel[Outcome],
        held: set[Deferred[object]],
    ) -> None:
        self.request = request
        self._reply = reply
        self._held = held
        self._done = False

    @property
    def abandoned(self) -> bool:
        """The caller gave up (its deadline passed) or the reply was already sent."""
        return self._done or self._reply.statistics().open_receive_channels == 0

    def reply(self, value: R) -> None:
        """Answer the caller now; a no-op if it gave up."""
        self._finish(Answer(value))

    def refuse(self, error: ActorError) -> None:
        """Fail the call with a domain error, as if the handler had raised it."""
        self._finish(Refusal(error))

    def close(self) -> None:
        """Give up on answering: the caller fails at once with `CallFailed`."""
        self._done = True
        self._held.discard(self)
        self._reply.close()

    def _finish(self, outcome: Outcome) -> None:
        with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            self._reply.send_nowait(outcome)
        self.close()

    def __repr__(self) -> str:
        return f"<Deferred reply to {self.request!r}>"
