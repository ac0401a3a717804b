"""`ProxyConfig`: what one VM's SSH proxy listens on and forwards to.

Why a module of its own: the lifecycle builds it (from the VM's port and backend
endpoint) without needing the actor, and it is what a restart starts again from.
"""

from __future__ import annotations

import msgspec

from golem_actor.adapters.backend import Endpoint

__all__ = ["ProxyConfig"]


class ProxyConfig(msgspec.Struct, frozen=True, kw_only=True):
    vm_id: str
    listen_host: str
    listen_port: int  # 0: any free port (tests, benchmarks); `GetProxyStats` tells which
    target: Endpoint
    idle_timeout: float = 7200.0  # seconds without a byte either way before a relay ends
    max_connections: int = 32  # live connections; more are refused at once
    connect_timeout: float = 10.0  # to reach the VM's sshd for each new connection
