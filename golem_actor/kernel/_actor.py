"""The `Actor` base: one task reading one inbox, one message at a time.

Life of an incarnation (`run`):
1. open the actor's own nursery (`self.nursery`): slow work and IO loops run there,
   linked to the actor, so a crash in any of them crashes the actor as a unit;
2. `on_start()`, then signal readiness (`task_status.started()`);
3. take messages one by one; only the *idle wait* for the next message can be
   interrupted by `request_stop()`, so the message in flight always finishes;
4. `on_stop()`, then the nursery is cancelled (background work ends with the actor).

A handler never awaits slow work: it starts it with `self.nursery.start_soon` and gets
the outcome back as a message (`self.address` is set by the supervisor for that).
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any, Generic, TypeVar

import trio

from ._errors import ActorError
from ._inbox import Address, Inbox
from ._messages import Answer, Call, CallEnvelope, Outcome, Refusal

__all__ = ["Actor"]

M = TypeVar("M")


class Actor(Generic[M]):
    """Subclass and override the hooks; dispatch messages with `match`."""

    def __init__(self) -> None:
        self.stop_requested = trio.Event()
        self._idle: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._address: Address[M] | None = None

    # -- hooks -------------------------------------------------------------------------

    async def on_start(self) -> None:
        """Open resources and start IO loops in `self.nursery`; runs before readiness."""

    async def handle_cast(self, message: M) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot handle {message!r}")

    async def handle_call(self, request: Call[Any]) -> Any:
        """Answer `request`; raise an `ActorError` to refuse it and keep running."""
        raise NotImplementedError(f"{type(self).__name__} cannot answer {request!r}")

    async def on_stop(self) -> None:
        """Graceful cleanup, bounded by the child's shutdown time."""

    # -- what the supervisor and the actor itself use ------------------------------------

    @property
    def nursery(self) -> trio.Nursery:
        if self._nursery is None:
            raise RuntimeError("the actor's nursery exists only while it runs")
        return self._nursery

    @property
    def address(self) -> Address[M]:
        """This actor's own address (to send itself the outcome of background work)."""
        if self._address is None:
            raise RuntimeError("the actor has no address until it runs under a supervisor")
        return self._address

    def request_stop(self) -> None:
        """Ask for a graceful stop: the message in flight finishes, then `on_stop` runs."""
        self.stop_requested.set()
        if self._idle is not None:
            self._idle.cancel(reason="graceful stop requested")

    def request_kill(self) -> None:
        """Called just before a brutal cancel; supervisors use it to skip grace periods."""
        self.request_stop()

    async def run(
        self, inbox: Inbox[M], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self._address = inbox.address()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self.on_start()
            task_status.started()
            await self._serve(inbox.receive_channel)
            await self.on_stop()
            nursery.cancel_scope.cancel(reason=f"{type(self).__name__} stopped")
        self._nursery = None

    async def _serve(self, receive: trio.MemoryReceiveChannel[object]) -> None:
        while not self.stop_requested.is_set():
            item: object = None
            with trio.CancelScope() as idle:
                self._idle = idle
                try:
                    item = await receive.receive()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    return  # the inbox was closed for good
            self._idle = None
            if idle.cancelled_caught:
                return
            await self.dispatch(item)

    async def dispatch(self, item: object) -> None:
        """Run the handler for one inbox item (a cast message or a call envelope)."""
        if not isinstance(item, CallEnvelope):
            await self.handle_cast(item)  # type: ignore[arg-type]
            return
        # Leaving the `with` closes the reply path, so a crash fails the caller at once.
        with item.reply:
            outcome: Outcome
            try:
                outcome = Answer(await self.handle_call(item.request))
            except ActorError as error:
                outcome = Refusal(error)
            with suppress(trio.BrokenResourceError):  # the caller gave up: drop it
                item.reply.send_nowait(outcome)
