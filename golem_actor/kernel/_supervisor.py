"""`Supervisor`: a fixed list of children, started in order, stopped in reverse order.

Restart decisions follow OTP: the child's restart type says *whether*, the strategy says
*which* children go with it (one_for_one: that child; one_for_all: all; rest_for_one:
that child and the ones started after it). The siblings are stopped in reverse order,
then everyone affected starts again in order, except temporary children, which are never
restarted. One intensity window is shared by all children; past it the supervisor stops
its children and raises `SupervisorGaveUp` to its parent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from ._inbox import Address
from ._spec import ChildSpec, Restart, Strategy
from ._supervision import (
    Child,
    ChildExited,
    CrashChild,
    GetStatistics,
    SupervisorBase,
    is_stale,
)

__all__ = ["Supervisor", "SupervisorMsg"]

M = TypeVar("M")

SupervisorMsg = GetStatistics | CrashChild


class Supervisor(SupervisorBase[SupervisorMsg]):
    """Runs `children` under `strategy`, with at most `intensity` restarts per `period` s.

    The object can run many times (as the child of another supervisor it is restarted by
    running it again): it owns its children's inboxes, so their addresses stay valid
    across its own restarts too.
    """

    def __init__(
        self,
        name: str,
        children: Sequence[ChildSpec[Any]],
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: int = 3,
        period: float = 5.0,
    ) -> None:
        super().__init__(name, intensity=intensity, period=period)
        ids = [spec.id for spec in children]
        if len(set(ids)) != len(ids):
            raise ValueError(f"supervisor {name!r}: child ids must be unique, got {ids}")
        self.strategy = strategy
        self.strategy_name = strategy.value
        self._list = [Child.for_spec(spec) for spec in children]
        self._by_id = {child.spec.id: child for child in self._list}

    def address_of(self, spec: ChildSpec[M]) -> Address[M]:
        """The address of the child that `spec` describes, typed by what it accepts."""
        child = self._by_id.get(spec.id)
        if child is None or child.spec is not spec:
            raise KeyError(f"supervisor {self.name!r} has no child {spec.id!r} of that spec")
        return child.inbox.address()

    def child_address(self, child_id: str) -> Address[Any]:
        """The address of a child by id (untyped: tests and introspection)."""
        return self._by_id[child_id].inbox.address()

    def child_actor(self, child_id: str) -> Any:
        """The current incarnation of a child (for tests and introspection only)."""
        return self._by_id[child_id].actor

    def _children(self) -> list[Child]:
        return self._list

    async def _start_initial(self) -> None:
        for child in self._list:
            await self._start_child(child)

    async def _shutdown(self) -> None:
        for child in reversed(self._list):
            await self._stop_child(child, f"supervisor {self.name} shutting down")

    def _affected(self, child: Child) -> list[Child]:
        match self.strategy:
            case Strategy.ONE_FOR_ONE:
                return [child]
            case Strategy.ONE_FOR_ALL:
                return list(self._list)
            case Strategy.REST_FOR_ONE:
                return self._list[self._list.index(child) :]

    async def _child_exited(self, event: ChildExited) -> None:
        if is_stale(event) or not self._may_restart(event):
            return
        exited = event.child
        affected = self._affected(exited)
        reason = f"{self.strategy.value} restart after {exited.spec.id} exited"
        for sibling in reversed(affected):
            if sibling is not exited:
                await self._stop_child(sibling, reason)
        for child in affected:
            if child is not exited and child.spec.restart is Restart.TEMPORARY:
                continue
            if not await self._restart(child):
                return  # its failure is queued; the next round restarts the rest
