"""`KeptPorts`: the fd ports attached through `AttachPort`, kept across router restarts.

A gate's TAP or socketpair end exists once: when the router that read it stops, its
fd is closed, and a TAP whose last fd is closed is gone with its namespace. So the
composition root makes one `KeptPorts` per node and hands it to every incarnation of
the router. The keeper holds the fd `AttachPort` handed over; the router reads and
writes a duplicate of it (`os.dup`), which its stop closes. A new router attaches every
kept port again from a fresh duplicate (`VpnRouter.on_start`), so a router crash loses
the frames in flight and nothing else. `DetachPort` closes both.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from ipaddress import IPv4Address

__all__ = ["KeptPort", "KeptPorts"]


@dataclass(frozen=True)
class KeptPort:
    endpoint: str
    fd: int  # the keeper's: the router's fabric reads a duplicate
    network_id: str
    ip: IPv4Address
    mac: bytes


@dataclass(eq=False)
class KeptPorts:
    ports: dict[str, KeptPort] = field(default_factory=dict)

    def keep(self, port: KeptPort) -> None:
        self.drop(port.endpoint)
        self.ports[port.endpoint] = port

    def drop(self, endpoint: str) -> None:
        """Forget `endpoint` and close its fd (unknown endpoints are ignored)."""
        port = self.ports.pop(endpoint, None)
        if port is not None:
            with contextlib.suppress(OSError):
                os.close(port.fd)

    def close(self) -> None:
        for endpoint in list(self.ports):
            self.drop(endpoint)
