"""The host's live usage, read with psutil in a worker thread (never on the event loop).

CPU is the busy share of all cores since the previous call in this process (psutil keeps
that reference; the very first call says 0 %). Memory in use is total - available, the
part the kernel cannot hand out without swapping. Storage is the filesystem of the data
directory, counted as used + free (what an unprivileged user can fill; the root-reserved
blocks are nobody's to sell). psutil's OSError leaves as `HostLoadUnreadable`.
"""

from __future__ import annotations

from pathlib import Path

import psutil
import trio

from golem_actor.domain.host_load import HostLoad

__all__ = ["HostLoadUnreadable", "PsutilHostLoad"]


class HostLoadUnreadable(Exception):
    """psutil could not read the host's usage."""


class PsutilHostLoad:
    """Reads `HostLoad` for a data directory; one instance per node (the CPU reference)."""

    def __init__(self, storage_path: Path) -> None:
        self._storage_path = storage_path

    async def __call__(self) -> HostLoad:
        return await trio.to_thread.run_sync(self.read)

    def read(self) -> HostLoad:
        """One reading (blocking)."""
        try:
            cpu = psutil.cpu_percent(interval=None)
            memory = psutil.virtual_memory()
            disk = psutil.disk_usage(str(self._storage_path))
        except OSError as exc:
            raise HostLoadUnreadable(f"host usage unreadable: {exc}") from exc
        return HostLoad(
            cpu_percent=cpu,
            memory_total=memory.total,
            memory_used=memory.total - memory.available,
            storage_total=disk.used + disk.free,
            storage_used=disk.used,
        )
