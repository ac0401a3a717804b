"""The ssh_proxy actor: one per VM, the VM's public SSH port relayed to its sshd."""

from .actor import SshProxy, TargetCell
from .config import ProxyConfig
from .messages import GetProxyStats, ProxyMessage, ProxyStats, Retarget
from .spec import PROXY_SHUTDOWN, proxy_child_id, proxy_child_spec

__all__ = [
    "PROXY_SHUTDOWN",
    "GetProxyStats",
    "ProxyConfig",
    "ProxyMessage",
    "ProxyStats",
    "Retarget",
    "SshProxy",
    "TargetCell",
    "proxy_child_id",
    "proxy_child_spec",
]
