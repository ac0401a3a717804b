"""Capacity: what the host can still sell, and why a request does not fit.

Sellable = host totals - the operator's reserve; what allocations leave free is sellable
minus what the VMs hold. CPU may be overcommitted: a VM's cores are shares of the host's
time, so with a ratio r the books count floor(host cores x r) cores before the reserve
(the reserve is whole host cores, taken off after the ratio). Memory and storage never
are. When the host's live load is known, each axis is also bounded by its threshold
(host_load.py): the offer is the lesser of the two. A request fits when it
stays within the offer on every axis and the VM count stays within `max_vms`. The refusal
names each missing amount and which limit it met: the allocations or a threshold.
"""

from __future__ import annotations

import math

import msgspec

from .host_load import Bound, ThresholdBounds
from .resources import ZERO, Resources

__all__ = ["Capacity", "Shortfall", "limited_by", "offer", "shortfall"]


class Capacity(msgspec.Struct, frozen=True, kw_only=True):
    total: Resources  # the host's
    reserve: Resources  # kept for the host itself
    max_vms: int
    cpu_overcommit: float = 1.0  # VM cores per host core (>= 1, finite: the settings check)

    @property
    def cpu_books(self) -> int:
        """The cores the books count: floor(host cores x ratio), before the reserve."""
        # The epsilon keeps a product such as 100 x 1.15 = 114.99999999999999 at 115.
        return math.floor(self.total.cpus * self.cpu_overcommit + 1e-9)

    @property
    def sellable(self) -> Resources:
        left = self.total - self.reserve
        return Resources(
            cpus=max(self.cpu_books - self.reserve.cpus, 0),
            memory_mib=max(left.memory_mib, 0),
            storage_gib=max(left.storage_gib, 0),
        )


class Shortfall(msgspec.Struct, frozen=True):
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        return "; ".join(self.reasons)


# (name in messages, unit, Resources field, ThresholdBounds field)
_AXES = (
    ("CPU cores", "", "cpus"),
    ("memory", " MiB", "memory_mib"),
    ("storage", " GiB", "storage_gib"),
)


def _bound(bounds: ThresholdBounds | None, field: str) -> Bound | None:
    return None if bounds is None else getattr(bounds, field)


def _binding(unallocated: int, bound: Bound | None) -> Bound | None:
    """The threshold bound when it, not the allocations, limits this axis."""
    return bound if bound is not None and bound.amount < max(unallocated, 0) else None


def offer(capacity: Capacity, allocated: Resources, bounds: ThresholdBounds | None) -> Resources:
    """What the node can still sell on each axis (never negative)."""
    unallocated = capacity.sellable - allocated
    amounts = {}
    for _, _, field in _AXES:
        left = max(getattr(unallocated, field), 0)
        bound = _bound(bounds, field)
        amounts[field] = left if bound is None else min(left, bound.amount)
    return Resources(**amounts)


def limited_by(
    capacity: Capacity, allocated: Resources, bounds: ThresholdBounds | None
) -> tuple[str, ...]:
    """The axes a threshold currently holds below what allocations leave, and why."""
    unallocated = capacity.sellable - allocated
    found = []
    for name, _, field in _AXES:
        binding = _binding(getattr(unallocated, field), _bound(bounds, field))
        if binding is not None:
            found.append(f"{name}: {binding.why}")
    return tuple(found)


def shortfall(
    capacity: Capacity,
    allocated: list[Resources],
    request: Resources,
    bounds: ThresholdBounds | None = None,
) -> Shortfall | None:
    """None when `request` fits next to `allocated`; otherwise what is missing and why."""
    used = sum(allocated, ZERO)
    sellable = capacity.sellable
    unallocated = sellable - used
    reasons = []
    if len(allocated) + 1 > capacity.max_vms:
        reasons.append(f"this node runs at most {capacity.max_vms} VMs")
    for name, unit, field in _AXES:
        wanted = getattr(request, field)
        left = getattr(unallocated, field)
        bound = _bound(bounds, field)
        available = max(left, 0) if bound is None else min(max(left, 0), bound.amount)
        if wanted <= available:
            continue
        binding = _binding(left, bound)
        if binding is not None:
            why = f"threshold: {binding.why}"
        else:
            why = (
                f"allocation: {getattr(used, field)}{unit} of {getattr(sellable, field)}{unit}"
                " sellable are allocated to VMs"
            )
        reasons.append(
            f"not enough {name}: requested {wanted}{unit}, available {available}{unit} ({why})"
        )
    return Shortfall(tuple(reasons)) if reasons else None
