"""Callers waiting for a VM to get somewhere (`WaitVm`): deferred replies, kept per VM.

Why a module of its own: the rule for answering them is small but has three outcomes,
and the lifecycle applies it after every commit. `settle` answers each caller whose VM
is now in one of the statuses it waits for, refuses with `VmNotFound` each caller whose
VM was deleted, and forgets each caller that gave up (its call deadline passed, so a
reply would be dropped anyway); `prune` does only the last, so abandoned handles do not
pile up while nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from golem_actor.domain.vm_machine import VmStatus
from golem_actor.kernel import Deferred

from .messages import VmNotFound, VmView

__all__ = ["Waiters"]


@dataclass(frozen=True, slots=True)
class _Waiter:
    until: frozenset[VmStatus]
    reply: Deferred[VmView]


class Waiters:
    def __init__(self) -> None:
        self._by_vm: dict[str, list[_Waiter]] = {}

    def __len__(self) -> int:
        return sum(len(waiters) for waiters in self._by_vm.values())

    def hold(self, vm_id: str, until: frozenset[VmStatus], reply: Deferred[VmView]) -> None:
        self._by_vm.setdefault(vm_id, []).append(_Waiter(until, reply))

    def settle(self, view_of: Callable[[str], VmView | None]) -> None:
        """Answer whoever can be answered now; `view_of` gives a VM's view, None if gone."""
        for vm_id, waiters in list(self._by_vm.items()):
            view = view_of(vm_id)
            still: list[_Waiter] = []
            for waiter in waiters:
                if waiter.reply.abandoned:
                    continue
                if view is None:
                    waiter.reply.refuse(VmNotFound(f"Not Found: VM {vm_id} was deleted"))
                elif view.status in waiter.until:
                    waiter.reply.reply(view)
                else:
                    still.append(waiter)
            self._keep(vm_id, still)

    def prune(self) -> None:
        """Forget the callers that gave up."""
        for vm_id, waiters in list(self._by_vm.items()):
            self._keep(vm_id, [w for w in waiters if not w.reply.abandoned])

    def _keep(self, vm_id: str, waiters: list[_Waiter]) -> None:
        if waiters:
            self._by_vm[vm_id] = waiters
        else:
            self._by_vm.pop(vm_id, None)
