"""`DynamicSupervisor`: children started and stopped at run time (OTP simple_one_for_one).

Children are added with the `StartChild` call and removed with `TerminateChild`; each gets
a fresh inbox, closed for good when the child is removed. Restarts are one_for_one with
the intensity window shared by all children. At shutdown the children are stopped
concurrently, each within its own bound (OTP leaves their order undefined). Dynamic
children do not survive a restart of the supervisor itself: whoever added them adds them
again.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import trio

from ._errors import ActorError
from ._inbox import Address
from ._messages import Call
from ._spec import ChildSpec
from ._supervision import (
    Child,
    ChildExited,
    CrashChild,
    GetStatistics,
    SupervisorBase,
    describe_exit,
    is_stale,
    log,
)

__all__ = [
    "ChildAddress",
    "ChildAlreadyStarted",
    "ChildStartFailed",
    "DynamicSupervisor",
    "DynamicSupervisorMsg",
    "NoSuchChild",
    "StartChild",
    "TerminateChild",
    "WhichChildren",
]


M = TypeVar("M")


class StartChild(Call[Address[M]], Generic[M], frozen=True):
    spec: ChildSpec[M]


class TerminateChild(Call[None], frozen=True):
    child_id: str


class WhichChildren(Call[tuple[str, ...]], frozen=True):
    pass


class ChildAddress(Call[Address[M]], Generic[M], frozen=True):
    """The address of a running child; say what it accepts: `ChildAddress[Msg](id)`."""

    child_id: str


class ChildAlreadyStarted(ActorError):
    pass


class NoSuchChild(ActorError):
    pass


class ChildStartFailed(ActorError):
    pass


DynamicSupervisorMsg = (
    StartChild[Any]
    | TerminateChild
    | WhichChildren
    | ChildAddress[Any]
    | GetStatistics
    | CrashChild
)


class DynamicSupervisor(SupervisorBase[DynamicSupervisorMsg]):
    def __init__(self, name: str, *, intensity: int = 3, period: float = 5.0) -> None:
        super().__init__(name, intensity=intensity, period=period)
        self._by_id: dict[str, Child] = {}

    def _children(self) -> list[Child]:
        return list(self._by_id.values())

    async def _start_initial(self) -> None:
        self._by_id.clear()  # dynamic children never outlive an incarnation

    async def handle_call(self, request: DynamicSupervisorMsg) -> Any:
        match request:
            case StartChild(spec=spec):
                return await self._add(spec)
            case TerminateChild(child_id=child_id):
                return await self._terminate(child_id)
            case WhichChildren():
                return tuple(self._by_id)
            case ChildAddress(child_id=child_id):
                child = self._by_id.get(child_id)
                if child is None:
                    raise NoSuchChild(f"no child {child_id!r}")
                return child.inbox.address()
        return await super().handle_call(request)

    async def _add(self, spec: ChildSpec[Any]) -> Address[Any]:
        if spec.id in self._by_id:
            raise ChildAlreadyStarted(f"child {spec.id!r} is already running")
        child = Child.for_spec(spec)
        self._by_id[spec.id] = child
        try:
            await self._start_child(child)
        except Exception as exc:
            self._remove(child)
            raise ChildStartFailed(
                f"child {spec.id!r} failed to start: {describe_exit(exc)}"
            ) from exc
        log.info("child started", supervisor=self.name, child=spec.id)
        return child.inbox.address()

    async def _terminate(self, child_id: str) -> None:
        child = self._by_id.get(child_id)
        if child is None:
            raise NoSuchChild(f"no child {child_id!r}")
        await self._stop_child(child, "terminated on request")
        self._remove(child)

    def _remove(self, child: Child) -> None:
        if self._by_id.get(child.spec.id) is child:
            del self._by_id[child.spec.id]
        child.inbox.close()

    async def _child_exited(self, event: ChildExited) -> None:
        if is_stale(event) or event.child.spec.id not in self._by_id:
            return
        if not self._may_restart(event):
            self._remove(event.child)
            return
        await self._restart(event.child)

    async def _shutdown(self) -> None:
        children = list(self._by_id.values())
        async with trio.open_nursery() as nursery:
            for child in children:
                nursery.start_soon(self._stop_child, child, f"supervisor {self.name} shutting down")
        for child in children:
            self._remove(child)
