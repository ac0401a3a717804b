"""The ssh_proxy actor's requests and replies.

Why: one VM's proxy is driven by the lifecycle (retarget when the VM's address changes)
and observed by the API/status (stats); both only through these calls.
"""

from __future__ import annotations

import msgspec

from golem_actor.adapters.backend import Endpoint
from golem_actor.kernel import Call

__all__ = ["GetProxyStats", "ProxyMessage", "ProxyStats", "Retarget"]


class Retarget(Call[None], frozen=True):
    """Send later connections to `target`; live connections keep their upstream."""

    target: Endpoint


class ProxyStats(msgspec.Struct, frozen=True, kw_only=True):
    vm_id: str
    listen_port: int  # the port actually bound
    target: Endpoint
    active_connections: int
    total_connections: int  # accepted and relayed (or tried to), since this incarnation
    refused_connections: int  # closed at once: over max_connections
    upstream_failures: int  # accepted, but the target could not be reached
    bytes_in: int  # client -> VM
    bytes_out: int  # VM -> client


class GetProxyStats(Call[ProxyStats], frozen=True):
    pass


ProxyMessage = Retarget | GetProxyStats
