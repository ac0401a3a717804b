"""`ResourceTracker`: the books of what the host can sell and what each VM holds.

Theory of operation:
- The allocations are not persisted here: the VM registry of vm_lifecycle is the single
  source of truth, and it re-reserves (with `adopt`) every live VM when it starts; a VM
  reserved again under its id replaces its entry, so each VM is counted exactly once.
  The host totals are measured once at start (psutil, in a worker thread): CPUs, total
  memory and the size of the data directory's filesystem, never what is *available*
  (that would count the running VMs twice: once in use, once allocated). CPU may be
  overcommitted (`cpu_overcommit`, CPU_OVERCOMMIT): the books then count floor(cores x
  ratio) cores (domain/capacity.py); the CPU threshold below still stops the sale of cores
  while the host is busier than it, whatever the books leave.
- The resource monitor: with a `load` reader (psutil in a worker thread, see
  adapters/host_load.py), the host's live usage is read on a timer (`Sample` -> work ->
  `Sampled`), never on the loop, and turned into threshold
  bounds (domain/host_load.py). What the node offers and accepts on each axis is the
  lesser of those bounds and what the allocations leave (domain/capacity.py). A
  reservation made since the last reading has not shown in the host's usage yet, so it
  is taken off the bounds until the next reading: a burst of creates between two
  readings cannot run past a threshold. A reading that fails keeps the last one. The
  bounds see what the host uses now, each running VM once (in its real use); the part of
  a VM's allocation it has not touched yet is held by the allocations' bound instead.
- After each change of the offer (a reservation, a release, or a reading that moves it
  by a whole advertised unit), it casts
  `CapacityChanged` to its optional watcher (the advertiser, started later: casts may
  flow from earlier actors to later ones). `MAX_VMS`, the reserve and the minimums
  (the advertiser's) hold whatever the load says.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path

import psutil
import structlog
import trio

from golem_actor.adapters.host_load import HostLoadUnreadable
from golem_actor.domain.capacity import Capacity, limited_by, offer, shortfall
from golem_actor.domain.host_load import (
    Bound,
    HostLoad,
    ThresholdBounds,
    Thresholds,
    above,
    threshold_bounds,
)
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
    Sample,
    Sampled,
    SampleFailed,
)

log = structlog.get_logger("golem_actor.resource_tracker")

MIB = 1024 * 1024
GIB = 1024 * MIB
SAMPLE = "sample"


def host_totals(storage_path: Path) -> Resources:
    """What this host has (blocking: call it in a thread)."""
    storage_path.mkdir(parents=True, exist_ok=True)
    return Resources(
        cpus=psutil.cpu_count(logical=True) or 1,
        memory_mib=psutil.virtual_memory().total // MIB,
        storage_gib=psutil.disk_usage(str(storage_path)).total // GIB,
    )


def _less(bound: Bound, taken: int) -> Bound:
    return Bound(amount=max(bound.amount - taken, 0), why=bound.why)


class ResourceTracker(Actor[ResourceMsg]):
    def __init__(
        self,
        *,
        storage_path: Path,
        reserve: Resources,
        max_vms: int,
        total: Resources | None = None,
        watcher: Address[CapacityChanged] | None = None,
        load: Callable[[], Awaitable[HostLoad]] | None = None,
        thresholds: Thresholds | None = None,
        sample_interval: float = 10.0,
        cpu_overcommit: float = 1.0,
    ) -> None:
        super().__init__()
        self._storage_path = storage_path
        self._reserve = reserve
        self._max_vms = max_vms
        self._cpu_overcommit = cpu_overcommit
        self._total = total
        self._allocations: dict[str, Resources] = {}
        self._watcher = watcher
        self._load_reader = load
        self._thresholds = thresholds or Thresholds()
        self._sample_interval = sample_interval
        self._load: HostLoad | None = None
        self._cpu_held = False  # CPU past its threshold at the last reading (hysteresis)
        # Reserved after the last reading, by VM: a reservation released before the next
        # reading (a refused or failed create) no longer counts against the thresholds.
        self._since_sample: dict[str, Resources] = {}
        self._announced: tuple[int, int, int] | None = None

    @property
    def capacity(self) -> Capacity:
        assert self._total is not None
        return Capacity(
            total=self._total,
            reserve=self._reserve,
            max_vms=self._max_vms,
            cpu_overcommit=self._cpu_overcommit,
        )

    async def on_start(self) -> None:
        if self._total is None:
            self._total = await trio.to_thread.run_sync(host_totals, self._storage_path)
        if self._load_reader is not None:
            # Read once before serving, so the first offer is already honest.
            try:
                self._load = await self._load_reader()
                self._cpu_held = "cpu" in above(self._load, self._thresholds)
            except HostLoadUnreadable as error:
                log.warning("host load unreadable: keeping the last reading", error=str(error))
            self.every(self._sample_interval, Sample())
        log.info(
            "host capacity",
            total=self._total,
            reserve=self._reserve,
            sellable=self.capacity.sellable,
            max_vms=self._max_vms,
            cpu_overcommit=self._cpu_overcommit,
            thresholds=self._thresholds if self._load_reader is not None else None,
        )
        self._announced = self._offer_key()
        self._log_above(())

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
                self._since_sample.pop(vm_id, None)
                if self._allocations.pop(vm_id, None) is not None:
                    self._changed()
            case Sample():
                if self._load_reader is not None and self.work_for(SAMPLE) is None:
                    self.start_work(
                        self._load_reader,
                        then=Sampled,
                        failed=self._sample_failed,
                        key=SAMPLE,
                    )
            case Sampled(load=load):
                before = self._above()
                self._load = load
                self._cpu_held = "cpu" in above(load, self._thresholds, cpu_held=self._cpu_held)
                self._since_sample.clear()
                self._log_above(before)
                self._changed(only_if_moved=True)
            case SampleFailed(error=error):
                log.warning("host load unreadable: keeping the last reading", error=error)
            case _:
                await super().handle_cast(message)

    @staticmethod
    def _sample_failed(error: Exception) -> SampleFailed:
        if isinstance(error, HostLoadUnreadable):
            return SampleFailed(error=str(error))
        raise error  # anything else is a bug: let it crash

    # -- the books -------------------------------------------------------------------------

    def _bounds(self) -> ThresholdBounds | None:
        if self._load is None:
            return None
        bounds = threshold_bounds(self._load, self._thresholds, cpu_held=self._cpu_held)
        taken = sum(self._since_sample.values(), ZERO)
        return ThresholdBounds(
            cpus=bounds.cpus,
            memory_mib=_less(bounds.memory_mib, taken.memory_mib),
            storage_gib=_less(bounds.storage_gib, taken.storage_gib),
        )

    def _allocated(self) -> Resources:
        return sum(self._allocations.values(), ZERO)

    def _offer_key(self) -> tuple[int, int, int]:
        """What watchers care about: the offer in advertised units (whole GB)."""
        free = offer(self.capacity, self._allocated(), self._bounds())
        return free.cpus, free.memory_gb, free.storage_gib

    def _changed(self, *, only_if_moved: bool = False) -> None:
        """Tell the watcher, without ever waiting: a full inbox already holds a change."""
        key = self._offer_key()
        previous, self._announced = self._announced, key
        if only_if_moved and key == previous:
            return
        if self._watcher is not None:
            with suppress(ActorGone):
                self._watcher.try_cast(CapacityChanged())

    def _above(self) -> tuple[str, ...]:
        if self._load is None:
            return ()
        return above(self._load, self._thresholds, cpu_held=self._cpu_held)

    def _log_above(self, before: tuple[str, ...]) -> None:
        """Log each resource going past its threshold, and coming back, once."""
        now = self._above()
        bounds = self._bounds()
        for resource in now:
            if resource not in before and bounds is not None:
                why = {"cpu": bounds.cpus, "memory": bounds.memory_mib}.get(
                    resource, bounds.storage_gib
                )
                log.warning(
                    "host above a threshold: selling no more of it",
                    resource=resource,
                    why=why.why if why is not None else "",
                )
        for resource in before:
            if resource not in now:
                log.info("host back below a threshold", resource=resource)

    def _reserve_for(self, vm_id: str, resources: Resources, *, adopt: bool) -> None:
        others = [r for v, r in self._allocations.items() if v != vm_id]
        bounds = None if adopt else self._bounds()
        missing = shortfall(self.capacity, others, resources, bounds)
        if missing is not None and not adopt:
            raise InsufficientResources(str(missing))
        if missing is not None:
            log.warning("adopted a VM beyond capacity", vm_id=vm_id, missing=str(missing))
        if not adopt and vm_id not in self._allocations:
            self._since_sample[vm_id] = resources
        self._allocations[vm_id] = resources

    def _report(self) -> CapacityReport:
        allocated = self._allocated()
        bounds = self._bounds()
        return CapacityReport(
            total=self.capacity.total,
            reserve=self._reserve,
            sellable=self.capacity.sellable,
            allocated=allocated,
            free=offer(self.capacity, allocated, bounds),
            vms=len(self._allocations),
            max_vms=self._max_vms,
            cpu_overcommit=self._cpu_overcommit,
            load=self._load,
            thresholds=self._thresholds if self._load_reader is not None else None,
            limited=limited_by(self.capacity, allocated, bounds),
        )
