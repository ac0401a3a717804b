"""`proxy_child_spec`: how the `ssh_proxies` DynamicSupervisor runs one VM's proxy.

Why: PERMANENT, because a proxy that exits for any reason other than the lifecycle's
`TerminateChild` (on VM delete) leaves a tenant without SSH; the factory shares one
`TargetCell` between incarnations so a `Retarget` survives a crash of the proxy.
"""

from __future__ import annotations

from golem_actor.kernel import ChildSpec, Restart

from .actor import SshProxy, TargetCell
from .config import ProxyConfig
from .messages import ProxyMessage

__all__ = ["PROXY_SHUTDOWN", "proxy_child_id", "proxy_child_spec"]

PROXY_SHUTDOWN = 3.0  # seconds; a graceful stop closes sockets and takes milliseconds


def proxy_child_id(vm_id: str) -> str:
    return f"ssh_proxy:{vm_id}"


def proxy_child_spec(config: ProxyConfig) -> ChildSpec[ProxyMessage]:
    cell = TargetCell(config.target)

    def start() -> SshProxy:
        return SshProxy(config, cell)

    return ChildSpec(
        proxy_child_id(config.vm_id),
        start,
        restart=Restart.PERMANENT,
        shutdown=PROXY_SHUTDOWN,
    )
