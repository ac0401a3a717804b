"""The `Actor` base: one task reading one inbox, one message at a time.

Life of an incarnation (`run`):
1. open the actor's own nursery (`self.nursery`): slow work and IO loops run there,
   linked to the actor, so a crash in any of them crashes the actor as a unit;
2. `on_start()`, then signal readiness (`task_status.started()`);
3. take messages one by one; only the *idle wait* for the next message can be
   interrupted by `request_stop()`, so the message in flight always finishes;
4. `on_stop()`, then the nursery is cancelled (background work ends with the actor) and
   every deferred reply still held is closed (its caller fails at once).

An actor is generic over the union of the messages it accepts, casts and calls alike:
`class VmLifecycle(Actor[LifecycleMsg])`, and its address is an `Address[LifecycleMsg]`.

The three tools that keep a handler from ever awaiting slow work, with one example each:

Work that reports back. The outcome arrives later as an ordinary message in the actor's
own inbox, so state changes only in handlers; a failure crashes the actor unless
`failed=` turns it into a message too::

    case Refresh():
        self.start_work(self._feed.fetch, then=Fetched, failed=FetchFailed, key="fetch")
    case Fetched(rates=rates):
        self._rates = rates

  With a `key`, a newer work of that key cancels the older one, starts once it has ended,
  and the older one's result is never delivered. A cancelled work never reports.

Timers. `every` and `after` deliver a message (or one made by a factory) to the actor::

    async def on_start(self) -> None:
        self.every(30.0, Tick())

  A periodic timer skips a beat while its previous tick is still queued.

Deferred replies. A handler keeps the caller waiting and answers when the world changes;
the caller's deadline and a crash behave as for any call::

    case WaitVm(vm_id=vm_id):
        self._waiters[vm_id].append(self.defer(request))
    ...
    for waiter in self._waiters.pop(vm_id, []):
        waiter.reply(view)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from contextlib import suppress
from typing import Any, Generic, TypeVar

import trio

from ._deferred import Deferred
from ._errors import ActorError
from ._inbox import Address, Inbox
from ._messages import Answer, Call, CallEnvelope, Outcome, Refusal, Report
from ._work import Source, Timer, Work

__all__ = ["Actor"]

M = TypeVar("M")
R = TypeVar("R")
T = TypeVar("T")


class Actor(Generic[M]):
    """Subclass and override the hooks; dispatch messages with `match`."""

    def __init__(self) -> None:
        self.stop_requested = trio.Event()
        self._idle: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._inbox: Inbox[M] | None = None
        self._incarnation = object()
        self._current: CallEnvelope | None = None
        self._deferred: Deferred[object] | None = None
        self._held: set[Deferred[object]] = set()
        self._works: dict[Hashable, Work] = {}

    # -- hooks -------------------------------------------------------------------------

    async def on_start(self) -> None:
        """Open resources, start timers and IO loops; runs before readiness."""

    async def handle_cast(self, message: M) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot handle {message!r}")

    async def handle_call(self, request: M) -> Any:
        """Answer `request`; raise an `ActorError` to refuse it and keep running, or
        `defer` it to answer later (the return value is then ignored)."""
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
        """This actor's own address."""
        if self._inbox is None:
            raise RuntimeError("the actor has no address until it runs under a supervisor")
        return self._inbox.address()

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
        self._inbox = inbox
        self._incarnation = object()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await self.on_start()
                task_status.started()
                await self._serve(inbox.receive_channel)
                await self.on_stop()
                nursery.cancel_scope.cancel(reason=f"{type(self).__name__} stopped")
        finally:
            self._nursery = None
            self._kernel_release_held()

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
        """Run the handler for one inbox item: a cast, a call envelope or a report."""
        if isinstance(item, Report):
            message = self._kernel_accept(item)
            if message is not None:
                await self.handle_cast(message)
            return
        if not isinstance(item, CallEnvelope):
            await self.handle_cast(item)  # type: ignore[arg-type]
            return
        self._current, self._deferred = item, None
        outcome: Outcome
        try:
            outcome = Answer(await self.handle_call(item.request))  # type: ignore[arg-type]
        except ActorError as error:
            outcome = Refusal(error)
        except BaseException:
            item.reply.close()  # a crash fails the caller at once
            raise
        finally:
            self._current = None
        deferred, self._deferred = self._deferred, None
        if deferred is not None and isinstance(outcome, Answer):
            return  # the `Deferred` holds the reply path now
        with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            item.reply.send_nowait(outcome)  # a caller that gave up: dropped
        item.reply.close()
        if deferred is not None:
            deferred.close()  # refused after all: the handle is spent

    # -- deferred replies ----------------------------------------------------------------

    def defer(self, request: Call[R]) -> Deferred[R]:
        """Answer the call being handled later, through the returned handle."""
        current = self._current
        if current is None or current.request is not request:
            raise RuntimeError("defer() takes the request that is being handled right now")
        if self._deferred is not None:
            raise RuntimeError("this request is already deferred")
        handle = Deferred(request, current.reply, self._held)
        self._held.add(handle)  # type: ignore[arg-type]
        self._deferred = handle  # type: ignore[assignment]
        return handle

    def _kernel_release_held(self) -> None:
        for handle in list(self._held):
            handle.close()

    # -- work that reports back, and timers ------------------------------------------------

    def start_work(
        self,
        work: Callable[[], Awaitable[T]],
        *,
        then: Callable[[T], M] | None = None,
        failed: Callable[[Exception], M] | None = None,
        key: Hashable | None = None,
        name: str | None = None,
    ) -> Work:
        """Run `work()` in the actor's nursery; its result comes back as `then(result)`.

        Without `failed`, an exception in the work crashes the actor (let it crash);
        with it, the failure comes back as `failed(error)`. Without `then`, the result is
        dropped. A `key` supersedes the running work of the same key (see the module doc).
        """
        label = name or getattr(work, "__qualname__", None) or repr(work)
        handle = Work(label, key)
        previous = self._works.get(key) if key is not None else None
        if previous is not None:
            previous.cancel()
        if key is not None:
            self._works[key] = handle
        self.nursery.start_soon(self._kernel_run_work, handle, work, then, failed, previous)
        return handle

    def work_for(self, key: Hashable) -> Work | None:
        """The work of `key` whose outcome is not handled yet, if any: running, or ended
        with its report still queued (`running` tells them apart)."""
        return self._works.get(key)

    async def _kernel_run_work(
        self,
        handle: Work,
        work: Callable[[], Awaitable[T]],
        then: Callable[[T], M] | None,
        failed: Callable[[Exception], M] | None,
        previous: Work | None,
    ) -> None:
        message: M | None = None
        try:
            with handle.scope:
                if previous is not None:
                    await previous.done.wait()
                try:
                    result = await work()
                except Exception as error:
                    if failed is None:
                        raise
                    message = failed(error)
                else:
                    message = then(result) if then is not None else None
        finally:
            try:
                if previous is not None:
                    # `done` means no older work of this key runs either, so a chain of
                    # supersessions never lets two works of one key overlap.
                    await previous.done.wait()
            finally:
                handle.done.set()
                if message is None or handle.cancelled:
                    self._kernel_forget(handle)
        # With a report on its way, the work stays its key's entry until the report is
        # read, so a newer work of that key still cancels it and the report is dropped.
        if message is not None and not handle.cancelled:
            await self._kernel_report(handle, message)

    def _kernel_forget(self, handle: Work) -> None:
        if handle.key is not None and self._works.get(handle.key) is handle:
            del self._works[handle.key]

    def every(
        self, seconds: float, message: M | Callable[[], M], *, first: float | None = None
    ) -> Timer:
        """Deliver `message` every `seconds` (the first one after `first`, default the
        same period); a callable is called for each tick."""
        return self._kernel_timer(
            seconds, message, first=seconds if first is None else first, periodic=True
        )

    def after(self, seconds: float, message: M | Callable[[], M]) -> Timer:
        """Deliver `message` once, `seconds` from now."""
        return self._kernel_timer(seconds, message, first=seconds, periodic=False)

    def _kernel_timer(
        self, seconds: float, message: M | Callable[[], M], *, first: float, periodic: bool
    ) -> Timer:
        if seconds <= 0 and periodic:
            raise ValueError("a periodic timer needs a period above 0 seconds")
        timer = Timer(f"{type(self).__name__} timer", periodic=periodic)
        self.nursery.start_soon(self._kernel_tick, timer, message, first, seconds)
        return timer

    async def _kernel_tick(
        self, timer: Timer, message: M | Callable[[], M], first: float, period: float
    ) -> None:
        with timer.scope:
            deadline = trio.current_time() + first
            while True:
                await trio.sleep_until(deadline)
                if not timer.pending:
                    timer.pending = True
                    made = message() if callable(message) else message
                    await self._kernel_report(timer, made)
                if not timer.periodic:
                    return
                # Fixed rate without drift; after a long stall, the next beat is one
                # period from now rather than a burst of missed beats.
                deadline = max(deadline + period, trio.current_time())

    async def _kernel_report(self, source: Source, message: M) -> None:
        assert self._inbox is not None
        with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._inbox.send_channel.send(Report(self._incarnation, source, message))

    def _kernel_accept(self, report: Report) -> M | None:
        """The report's message, or None when it is stale (another incarnation's, or
        from a source cancelled since it was queued)."""
        if report.owner is not self._incarnation or report.source.cancelled:
            return None
        if isinstance(report.source, Timer):
            report.source.pending = False
        elif isinstance(report.source, Work):
            self._kernel_forget(report.source)
        return report.message  # type: ignore[return-value]
