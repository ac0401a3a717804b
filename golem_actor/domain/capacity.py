"""Capacity: what the host can still sell, and why a request does not fit.

Sellable = host totals - the operator's reserve; a request fits when, added to what is
already allocated, it stays within sellable on every axis and the VM count stays within
`max_vms`. The refusal names each missing amount.
"""

from __future__ import annotations

import msgspec

from .resources import ZERO, Resources

__all__ = ["Capacity", "Shortfall", "shortfall"]


class Capacity(msgspec.Struct, frozen=True, kw_only=True):
    total: Resources  # the host's
    reserve: Resources  # kept for the host itself
    max_vms: int

    @property
    def sellable(self) -> Resources:
        left = self.total - self.reserve
        return Resources(
            cpus=max(left.cpus, 0),
            memory_mib=max(left.memory_mib, 0),
            storage_gib=max(left.storage_gib, 0),
        )


class Shortfall(msgspec.Struct, frozen=True):
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        return "; ".join(self.reasons)


def shortfall(
    capacity: Capacity, allocated: list[Resources], request: Resources
) -> Shortfall | None:
    """None when `request` fits next to `allocated`; otherwise what is missing."""
    used = sum(allocated, ZERO)
    free = capacity.sellable - used
    reasons = []
    if len(allocated) + 1 > capacity.max_vms:
        reasons.append(f"this node runs at most {capacity.max_vms} VMs")
    if request.cpus > free.cpus:
        reasons.append(
            f"not enough CPU cores: requested {request.cpus}, available {max(free.cpus, 0)}"
        )
    if request.memory_mib > free.memory_mib:
        reasons.append(
            f"not enough memory: requested {request.memory_mib} MiB,"
            f" available {max(free.memory_mib, 0)} MiB"
        )
    if request.storage_gib > free.storage_gib:
        reasons.append(
            f"not enough storage: requested {request.storage_gib} GiB,"
            f" available {max(free.storage_gib, 0)} GiB"
        )
    return Shortfall(tuple(reasons)) if reasons else None
