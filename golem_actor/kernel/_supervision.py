"""Machinery shared by `Supervisor` and `DynamicSupervisor`.

Theory of operation
-------------------
A supervisor is an actor whose incarnation (`run`) owns a nursery with one wrapper task
per child. The wrapper runs the child's `Actor.run` inside a *shielded* cancel scope, so
nothing but the supervisor can stop it: an outer cancellation must not hit all children
at once, or the reverse stop order would be lost. The wrapper catches `Exception` (never
`BaseException`: cancellation and KeyboardInterrupt pass through), marks the child done
in a `finally` that sits outside the shield (so an outer cancel cannot skip it), and
posts `ChildExited` to the supervisor's event channel unless the supervisor itself was
stopping that child.

Everything that changes the set of children happens in one loop over that event channel
(`_loop`): child exits, messages from the supervisor's own inbox (forwarded by a small
task), and stop requests. One loop means no interleaving between, say, a restart and a
`StartChild` call. The event channel is unbounded on purpose: exit signals must never
block the wrapper that posts them (trio's documented exception for circular flows).

Stopping a child is two-phase, as OTP's `shutdown => N`: `request_stop()` and wait up to
the child's bound, then `request_kill()` and cancel its scope. `request_kill()` on a
supervisor makes all its own remaining stops brutal, so a second Ctrl-C reaches the
leaves of the tree at once.

`CrashChild` makes a running child fail as a crash would: its incarnation is cancelled at
once (no graceful stop, its work cut wherever it was) and its exit is posted as a crash
(`InjectedCrash`), so the restart decision, the intensity window and the logs are the
ones a real exception would get. Nothing in the product sends it: it is the mechanism of
the fault-injection tests, whose only entry point exists in development mode (the API's
`/admin/faults/crash`, see actors/api/faults.py).

Give-up and start failures are raised *after* the nursery block closes so they reach
the parent bare, not wrapped in an ExceptionGroup.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog
import trio

from ._actor import Actor
from ._errors import ActorError, SupervisorGaveUp
from ._inbox import Inbox, InboxStatistics
from ._intensity import RestartIntensity
from ._messages import Call, CallEnvelope
from ._spec import ChildSpec, Restart

__all__ = [
    "ChildStatistics",
    "CrashChild",
    "GetStatistics",
    "InjectedCrash",
    "NotRunning",
    "SupervisorStatistics",
]

M = TypeVar("M")

log = structlog.get_logger("golem_actor.kernel")


@dataclass(frozen=True, slots=True)
class ChildStatistics:
    id: str
    restart: str
    running: bool
    incarnations: int
    last_exit: str | None
    inbox: InboxStatistics


@dataclass(frozen=True, slots=True)
class SupervisorStatistics:
    name: str
    strategy: str
    max_restarts: int
    period: float
    restarts_in_window: int
    children: tuple[ChildStatistics, ...]


class GetStatistics(Call[SupervisorStatistics], frozen=True):
    """Ask a supervisor for its `statistics()` through its address."""


class CrashChild(Call[str], frozen=True):
    """Make the running child `child_id` crash (fault injection); answers its exit reason."""

    child_id: str


class InjectedCrash(Exception):
    """The error a `CrashChild` gives the child's exit."""


class NotRunning(ActorError):
    """No running child of that id (unknown, or between two incarnations)."""


@dataclass(eq=False)
class Child:
    """A supervisor's record of one child; it outlives the child's incarnations."""

    spec: ChildSpec[Any]
    inbox: Inbox[Any]
    actor: Actor[Any] | None = None
    scope: trio.CancelScope | None = None
    done: trio.Event = field(default_factory=trio.Event)
    running: bool = False
    stopping: bool = False
    incarnations: int = 0
    last_exit: str | None = None

    @classmethod
    def for_spec(cls, spec: ChildSpec[Any]) -> Child:
        return cls(spec, Inbox(spec.id, spec.inbox_size, call_timeout=spec.call_timeout))


@dataclass(frozen=True, slots=True)
class ChildExited:
    child: Child
    incarnation: int
    error: Exception | None


@dataclass(frozen=True, slots=True)
class _Deliver:
    item: object


@dataclass(frozen=True, slots=True)
class _StopNow:
    pass


class GiveUp(Exception):
    def __init__(self, child: Child, error: Exception | None) -> None:
        super().__init__(child.spec.id)
        self.child = child
        self.error = error


class _Readiness:
    """Wraps a task status to learn whether the child reached `started()`."""

    def __init__(self, inner: trio.TaskStatus[None], child: Child) -> None:
        self._inner = inner
        self._child = child
        self.fired = False

    def started(self, value: None = None) -> None:
        self.fired = True
        self._child.running = True  # before the supervisor resumes: the child may exit first
        self._inner.started(value)


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def describe_exit(error: BaseException | None) -> str:
    """`normal`, or the crash's exceptions: the actor's nursery wraps them in a group."""
    if error is None:
        return "normal"
    return "; ".join(f"{type(leaf).__name__}: {leaf}" for leaf in _leaves(error))


class SupervisorBase(Actor[M], Generic[M]):
    strategy_name = "one_for_one"

    def __init__(self, name: str, *, intensity: int, period: float) -> None:
        super().__init__()
        self.name = name
        self._intensity = RestartIntensity(intensity, period)
        self._events_send: trio.MemorySendChannel[object] | None = None
        self._events: trio.MemoryReceiveChannel[object] | None = None
        self._brutal = False
        self._graces: set[trio.CancelScope] = set()

    # -- subclass contract ---------------------------------------------------------------

    @abstractmethod
    def _children(self) -> list[Child]: ...

    @abstractmethod
    async def _start_initial(self) -> None: ...

    @abstractmethod
    async def _child_exited(self, event: ChildExited) -> None: ...

    @abstractmethod
    async def _shutdown(self) -> None: ...

    # -- stop requests -------------------------------------------------------------------

    def request_stop(self) -> None:
        self.stop_requested.set()
        if self._events_send is not None:
            with suppress(trio.ClosedResourceError):  # the incarnation already finished
                self._events_send.send_nowait(_StopNow())

    def request_kill(self) -> None:
        self._brutal = True
        for grace in self._graces:
            grace.cancel(reason=f"supervisor {self.name} killed")
        for child in self._children():
            if child.scope is not None and not child.running and not child.done.is_set():
                child.scope.cancel(reason=f"supervisor {self.name} killed while it started")
        self.request_stop()

    # -- the incarnation -----------------------------------------------------------------

    async def run(
        self, inbox: Inbox[M], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self.stop_requested = trio.Event()
        self._brutal = False
        self._intensity.reset()
        self._inbox = inbox
        self._incarnation = object()
        self._events_send, self._events = trio.open_memory_channel[object](math.inf)
        start_failure: Exception | None = None
        give_up: GiveUp | None = None
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                try:
                    await self._start_initial()
                except Exception as exc:
                    start_failure = exc
                else:
                    nursery.start_soon(self._forward, inbox.receive_channel)
                    task_status.started()
                    give_up = await self._loop(self._events)
            finally:
                with trio.CancelScope(shield=True):
                    await self._shutdown()
                nursery.cancel_scope.cancel(reason=f"supervisor {self.name} stopped")
        self._nursery = None
        self._close_events()
        if start_failure is not None:
            raise start_failure
        if give_up is not None:
            raise SupervisorGaveUp(
                self.name,
                give_up.child.spec.id,
                self._intensity.max_restarts,
                self._intensity.period,
            ) from give_up.error

    async def _loop(self, events: trio.MemoryReceiveChannel[object]) -> GiveUp | None:
        async for event in events:
            match event:
                case _StopNow():
                    return None
                case ChildExited():
                    try:
                        await self._child_exited(event)
                    except GiveUp as give_up:
                        return give_up
                case _Deliver(item):
                    await self.dispatch(item)
        return None  # pragma: no cover - we hold the send side, so the loop never ends

    async def _forward(self, receive: trio.MemoryReceiveChannel[object]) -> None:
        assert self._events_send is not None
        while True:
            try:
                item = await receive.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return
            self._events_send.send_nowait(_Deliver(item))

    def _close_events(self) -> None:
        """Fail calls that were forwarded but never handled, then close the channel."""
        assert self._events is not None
        assert self._events_send is not None
        self._events_send.close()
        while True:
            try:
                event = self._events.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            if isinstance(event, _Deliver) and isinstance(event.item, CallEnvelope):
                event.item.abandon()
        self._events.close()
        self._events_send = self._events = None

    async def handle_call(self, request: M) -> Any:
        match request:
            case GetStatistics():
                return self.statistics()
            case CrashChild(child_id=child_id):
                return await self._crash_child(child_id)
        return await super().handle_call(request)

    async def _crash_child(self, child_id: str) -> str:
        child = next((c for c in self._children() if c.spec.id == child_id), None)
        if child is None or not child.running or child.scope is None or child.actor is None:
            raise NotRunning(f"supervisor {self.name} has no running child {child_id!r}")
        incarnation = child.incarnations
        child.stopping = True  # its wrapper must not post an exit of its own
        child.actor.request_kill()
        child.scope.cancel(reason=f"{child_id}: crash injected")
        await child.done.wait()
        child.stopping = False
        error = InjectedCrash(f"crash injected into {child_id} (fault injection)")
        child.last_exit = describe_exit(error)
        assert self._events_send is not None
        self._events_send.send_nowait(ChildExited(child, incarnation, error))
        return child.last_exit

    # -- one child -----------------------------------------------------------------------

    async def _start_child(self, child: Child) -> None:
        """Start one incarnation and wait for its readiness; a start failure raises.

        Shielded: when the caller of `nursery.start` is cancelled before the child reports
        started, trio leaves the child in a temporary nursery and waits for it to end,
        which a shielded actor never does, so the supervisor would hang for ever. A kill
        still reaches a child that hangs in its start (`request_kill` cancels its scope).
        """
        with trio.CancelScope(shield=True):
            await self.nursery.start(self._run_child, child)

    async def _run_child(
        self, child: Child, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        structlog.contextvars.bind_contextvars(actor=child.spec.id)
        child.incarnations += 1
        incarnation = child.incarnations
        child.stopping = False
        child.done = done = trio.Event()
        readiness = _Readiness(task_status, child)
        error: Exception | None = None
        try:
            with trio.CancelScope(shield=True) as scope:
                child.scope = scope
                actor = child.actor = child.spec.start()
                try:
                    await actor.run(child.inbox, task_status=readiness)
                except Exception as exc:
                    error = exc
        finally:
            child.running = False
            done.set()
        if not readiness.fired:
            raise error or RuntimeError(f"child {child.spec.id!r} returned before it was ready")
        if child.stopping or self._events_send is None:
            return
        child.last_exit = describe_exit(error)
        self._events_send.send_nowait(ChildExited(child, incarnation, error))

    async def _stop_child(self, child: Child, reason: str) -> None:
        """Graceful stop within the child's bound, then cancel; returns once it is done."""
        if not child.running or child.scope is None or child.actor is None:
            return
        child.stopping = True
        bound = child.spec.shutdown
        if not self._brutal and bound > 0:
            child.actor.request_stop()
            with trio.move_on_after(bound) as grace:
                self._graces.add(grace)
                try:
                    await child.done.wait()
                finally:
                    self._graces.discard(grace)
        if not child.done.is_set():
            why = "killed" if self._brutal or bound == 0 else f"shutdown bound {bound:g}s exceeded"
            log.warning("child cancelled", supervisor=self.name, child=child.spec.id, why=why)
            child.actor.request_kill()
            child.scope.cancel(reason=f"{child.spec.id}: {why} ({reason})")
            await child.done.wait()
        child.last_exit = f"stopped: {reason}"
        log.info("child stopped", supervisor=self.name, child=child.spec.id, reason=reason)

    def _may_restart(self, event: ChildExited) -> bool:
        """Log the exit; True when the child's restart type and the intensity allow it."""
        child, error = event.child, event.error
        fields: dict[str, Any] = {
            "supervisor": self.name,
            "child": child.spec.id,
            "incarnation": event.incarnation,
            "reason": describe_exit(error),
            "restart_type": child.spec.restart.value,
        }
        if not child.spec.restart.wants_restart(crashed=error is not None):
            log.info("child exited", decision="not restarted", **fields)
            return False
        if not self._intensity.allow(trio.current_time()):
            log.error("child exited", decision="give up", exc_info=error, **fields)
            raise GiveUp(child, error)
        level = log.error if error is not None else log.info
        level("child exited", decision="restart", exc_info=error, **fields)
        return True

    async def _restart(self, child: Child) -> bool:
        """Start a new incarnation; a failure is queued as another exit of that child."""
        try:
            await self._start_child(child)
        except Exception as exc:
            child.last_exit = describe_exit(exc)
            assert self._events_send is not None
            self._events_send.send_nowait(ChildExited(child, child.incarnations, exc))
            return False
        log.info(
            "child restarted",
            supervisor=self.name,
            child=child.spec.id,
            incarnation=child.incarnations,
        )
        return True

    def statistics(self) -> SupervisorStatistics:
        return SupervisorStatistics(
            name=self.name,
            strategy=self.strategy_name,
            max_restarts=self._intensity.max_restarts,
            period=self._intensity.period,
            restarts_in_window=self._intensity.in_window(trio.current_time())
            if self._nursery is not None
            else 0,
            children=tuple(
                ChildStatistics(
                    id=c.spec.id,
                    restart=c.spec.restart.value,
                    running=c.running,
                    incarnations=c.incarnations,
                    last_exit=c.last_exit,
                    inbox=c.inbox.statistics(),
                )
                for c in self._children()
            ),
        )


def is_stale(event: ChildExited) -> bool:
    """An exit of an incarnation that has since been replaced or was being stopped."""
    return event.incarnation != event.child.incarnations or event.child.stopping


__all__ += ["Child", "ChildExited", "Restart", "SupervisorBase"]
