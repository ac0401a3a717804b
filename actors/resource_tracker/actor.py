"""`ResourceTracker`: the books of what the host can sell and what each VM holds.

The allocations are not persisted here: the VM registry of vm_lifecycle is the single
source of truth, and it re-reserves (with `adopt`) every live VM when it starts. After
each change of the books it casts `CapacityChanged` to its optional watcher (the
advertiser, started later: casts may flow from earlier actors to later ones). The host
totals are measured once at start (psutil, in a worker thread): CPUs, memory, and the
size of the filesystem that holds the data directory.
"""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

import psutil
import structlog
import trio

from golem_actor.domain.capacity import Capacity, shortfall
from golem_actor.domain.resources import ZERO, Resources
from golem_actor.kernel import Actor, ActorGone, Address

from .messages import (
    CapacityChanged,
    CapacityReport,
    GetCapacity,
    InsufficientResources,
    Release,
    Reserve,
    ResourceMsg,
)

log = structlog.get_logger("golem_actor.resource_tracker")

MIB = 1024 * 1024
GIB = 1024 * MIB


def host_totals(storage_path: Path) -> Resources:
    """What this host has (blocking: call it in a thread)."""
    storage_path.mkdir(parents=True, exist_ok=True)
    return Resources(
        cpus=psutil.cpu_count(logical=True) or 1,
        memory_mib=psutil.virtual_memory().total // MIB,
        storage_gib=psutil.disk_usage(str(storage_path)).total // GIB,
    )


class ResourceTracker(Actor[ResourceMsg]):
    def __init__(
        self,
        *,
        storage_path: Path,
        reserve: Resources,
        max_vms: int,
        total: Resources | None = None,
        watcher: Address[CapacityChanged] | None = None,
    ) -> None:
        super().__init__()
        self._storage_path = storage_path
        self._reserve = reserve
        self._max_vms = max_vms
        self._total = total
        self._allocations: dict[str, Resources] = {}
        self._watcher = watcher

    @property
    def capacity(self) -> Capacity:
        assert self._total is not None
        return Capacity(total=self._total, reserve=self._reserve, max_vms=self._max_vms)

    async def on_start(self) -> None:
        if self._total is None:
            self._total = await trio.to_thread.run_sync(host_totals, self._storage_path)
        log.info(
            "host capacity",
            total=self._total,
            reserve=self._reserve,
            sellable=self.capacity.sellable,
            max_vms=self._max_vms,
        )

    async def handle_call(self, request: ResourceMsg) -> object:
        match request:
            case Reserve(vm_id=vm_id, resources=resources, adopt=adopt):
                self._reserve_for(vm_id, resources, adopt=adopt)
                self._changed()
                return None
            case GetCapacity():
                return self._report()
        return await super().handle_call(request)

    async def handle_cast(self, message: ResourceMsg) -> None:
        match message:
            case Release(vm_id=vm_id):
                if self._allocations.pop(vm_id, None) is not None:
                    self._changed()
            case _:
                await super().handle_cast(message)

    def _changed(self) -> None:
        """Tell the watcher, without ever waiting: a full inbox already holds a change."""
        if self._watcher is not None:
            with suppress(ActorGone):
                self._watcher.try_cast(CapacityChanged())

    def _reserve_for(self, vm_id: str, resources: Resources, *, adopt: bool) -> None:
        others = [r for v, r in self._allocations.items() if v != vm_id]
        missing = shortfall(self.capacity, others, resources)
        if missing is not None and not adopt:
            raise InsufficientResources(str(missing))
        if missing is not None:
            log.warning("adopted a VM beyond capacity", vm_id=vm_id, missing=str(missing))
        self._allocations[vm_id] = resources

    def _report(self) -> CapacityReport:
        allocated = sum(self._allocations.values(), ZERO)
        sellable = self.capacity.sellable
        return CapacityReport(
            total=self.capacity.total,
            reserve=self._reserve,
            sellable=sellable,
            allocated=allocated,
            free=sellable - allocated,
            vms=len(self._allocations),
            max_vms=self._max_vms,
        )
