"""Host load against the operator's thresholds: how much more the host can take.

Why: the seed promises resource protection (CPU 90 %, memory 85 %, storage 90 %): the
node must not sell what the host cannot give, whatever else runs on it. A sample of the
live usage gives, per resource, a *threshold bound*:
- memory and storage may grow until their threshold, so their bound is the room left
  below it (memory in use is total - available; storage counts the data directory's
  filesystem as used + free, the part an unprivileged user can fill);
- CPU has no such amount (a VM's cores are shares of time, not a fill level), so above
  its threshold the bound is zero cores, and at or below it there is none. A threshold
  of 100 % therefore never bounds CPU, and bounds memory and storage at full. CPU is
  all or nothing, so it has hysteresis: once above its threshold, it counts as above
  until a reading at or below the threshold less `CPU_HYSTERESIS` points, so a host
  hovering at the threshold does not withdraw and re-post its advert at every reading.
The capacity rules (capacity.py) offer the lesser of this bound and what allocations
leave free, and name which of the two refused a request.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "CPU_HYSTERESIS",
    "Bound",
    "HostLoad",
    "ThresholdBounds",
    "Thresholds",
    "above",
    "threshold_bounds",
]

MIB = 1024 * 1024
GIB = 1024 * MIB
CPU_HYSTERESIS = 5.0  # percentage points below the CPU threshold to sell cores again


class HostLoad(msgspec.Struct, frozen=True, kw_only=True):
    """One sample of the host's usage (bytes; CPU as the busy share of all cores)."""

    cpu_percent: float  # since the previous sample
    memory_total: int
    memory_used: int  # total - available
    storage_total: int  # used + free of the data directory's filesystem
    storage_used: int

    @property
    def memory_percent(self) -> float:
        return 100.0 * self.memory_used / self.memory_total if self.memory_total else 100.0

    @property
    def storage_percent(self) -> float:
        return 100.0 * self.storage_used / self.storage_total if self.storage_total else 100.0


class Thresholds(msgspec.Struct, frozen=True, kw_only=True):
    """Usage (percent) above which the node sells no more of a resource."""

    cpu: float = 90.0
    memory: float = 85.0
    storage: float = 90.0


class Bound(msgspec.Struct, frozen=True, kw_only=True):
    """At most `amount` more (cores, MiB or GiB) because of a threshold, and why."""

    amount: int
    why: str


class ThresholdBounds(msgspec.Struct, frozen=True, kw_only=True):
    cpus: Bound | None  # None: CPU at or below its threshold
    memory_mib: Bound
    storage_gib: Bound


def _room(total: int, used: int, threshold: float, unit: int) -> int:
    """Whole units left before `used` reaches `threshold` percent of `total`."""
    return max(0, int(total * threshold / 100.0) - used) // unit


def _cpu_above(load: HostLoad, thresholds: Thresholds, held: bool) -> bool:
    """Past the CPU threshold; `held`: it was at the last reading (hysteresis)."""
    if load.cpu_percent > thresholds.cpu:
        return True
    return held and load.cpu_percent > thresholds.cpu - CPU_HYSTERESIS


def threshold_bounds(
    load: HostLoad, thresholds: Thresholds, *, cpu_held: bool = False
) -> ThresholdBounds:
    """The bounds at `load`; `cpu_held`: CPU was above its threshold at the last reading."""
    cpus = None
    if _cpu_above(load, thresholds, cpu_held):
        why = f"host CPU at {load.cpu_percent:.0f} %, above the {thresholds.cpu:g} % threshold"
        if load.cpu_percent <= thresholds.cpu:
            why = (
                f"host CPU at {load.cpu_percent:.0f} %, was above the {thresholds.cpu:g} %"
                f" threshold: selling cores again at or below"
                f" {thresholds.cpu - CPU_HYSTERESIS:g} %"
            )
        cpus = Bound(amount=0, why=why)
    memory = Bound(
        amount=_room(load.memory_total, load.memory_used, thresholds.memory, MIB),
        why=(
            f"host memory at {load.memory_percent:.0f} % of {load.memory_total / GIB:.1f} GiB,"
            f" threshold {thresholds.memory:g} %"
        ),
    )
    storage = Bound(
        amount=_room(load.storage_total, load.storage_used, thresholds.storage, GIB),
        why=(
            f"host storage at {load.storage_percent:.0f} % of {load.storage_total / GIB:.0f} GiB,"
            f" threshold {thresholds.storage:g} %"
        ),
    )
    return ThresholdBounds(cpus=cpus, memory_mib=memory, storage_gib=storage)


def above(load: HostLoad, thresholds: Thresholds, *, cpu_held: bool = False) -> tuple[str, ...]:
    """The resources whose usage is past their threshold (nothing more is sold of them);
    `cpu_held` as for `threshold_bounds`."""
    cpu = ("cpu",) if _cpu_above(load, thresholds, cpu_held) else ()
    return cpu + tuple(
        name
        for name, usage, threshold in (
            ("memory", load.memory_percent, thresholds.memory),
            ("storage", load.storage_percent, thresholds.storage),
        )
        if usage > threshold
    )
