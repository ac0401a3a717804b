"""Resource amounts of a VM and the host, in the units the node accounts in."""

from __future__ import annotations

import msgspec

__all__ = ["Resources"]

MIB_PER_GIB = 1024


class Resources(msgspec.Struct, frozen=True, kw_only=True):
    cpus: int
    memory_mib: int
    storage_gib: int

    @classmethod
    def from_gb(cls, *, cpus: int, memory_gb: int, storage_gb: int) -> Resources:
        return cls(cpus=cpus, memory_mib=memory_gb * MIB_PER_GIB, storage_gib=storage_gb)

    @property
    def memory_gb(self) -> int:
        return self.memory_mib // MIB_PER_GIB

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            cpus=self.cpus + other.cpus,
            memory_mib=self.memory_mib + other.memory_mib,
            storage_gib=self.storage_gib + other.storage_gib,
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            cpus=self.cpus - other.cpus,
            memory_mib=self.memory_mib - other.memory_mib,
            storage_gib=self.storage_gib - other.storage_gib,
        )

    def fits_in(self, other: Resources) -> bool:
        return (
            self.cpus <= other.cpus
            and self.memory_mib <= other.memory_mib
            and self.storage_gib <= other.storage_gib
        )


ZERO = Resources(cpus=0, memory_mib=0, storage_gib=0)
