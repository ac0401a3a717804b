"""`KeptPorts`: the fd ports attached through `AttachPort`, kept across router restarts.

A gate's TAP or socketpair end exists once: when the router that read it stops, its
fd is closed, and a TAP whose last fd is closed is gone with its namespace. So the
composition root makes one `KeptPorts` per node and hands it to every incarnation of
the router. The keeper holds the fd `AttachPort` handed over; the router reads and
writes a duplicate of it (`reader`), which its stop closes. A new router attaches every
kept port again from a fresh duplicate (`VpnRouter.on_start`), so a router crash loses
the frames in flight and nothing else. A crashed incarnation never ran its stop, so the
keeper closes the duplicates it left open (`close_stale`) before the next one starts;
every duplicate is closed through the keeper, once. `DetachPort` closes both.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from .ports import FdPort

__all__ = ["KeptPort", "KeptPorts"]


@dataclass(frozen=True)
class KeptPort:
    endpoint: str
    fd: int  # the keeper's: the router's fabric reads a duplicate
    network_id: str
    ip: IPv4Address
    mac: bytes


class _Reader(FdPort):
    """The router's duplicate of a kept fd: closed through the keeper, at most once."""

    def __init__(self, fd: int, keeper: KeptPorts) -> None:
        super().__init__(fd)
        self._keeper = keeper

    def close(self) -> None:
        self._keeper.release(self.fileno())


@dataclass(eq=False)
class KeptPorts:
    ports: dict[str, KeptPort] = field(default_factory=dict)
    _readers: set[int] = field(default_factory=set)  # duplicates not closed yet

    def keep(self, port: KeptPort) -> None:
        self.drop(port.endpoint)
        self.ports[port.endpoint] = port

    def drop(self, endpoint: str) -> None:
        """Forget `endpoint` and close its fd (unknown endpoints are ignored)."""
        port = self.ports.pop(endpoint, None)
        if port is not None:
            _close(port.fd)

    def reader(self, fd: int) -> FdPort:
        """A duplicate of `fd` for the router to read and write (and close)."""
        dup = os.dup(fd)
        self._readers.add(dup)
        return _Reader(dup, self)

    def release(self, dup: int) -> None:
        if dup in self._readers:
            self._readers.discard(dup)
            _close(dup)

    def close_stale(self) -> None:
        """Close the duplicates a crashed router left open (call before a new one reads)."""
        for dup in list(self._readers):
            self.release(dup)


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
