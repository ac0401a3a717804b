"""The vpn_router actor: the node's Golem VPN networks (control plane; see actor.py)."""

from .actor import REGISTRY, VpnRegistry, VpnRouter
from .messages import (
    AddAddress,
    AddNode,
    CreateNetwork,
    GetMembership,
    GetNetwork,
    ListNetworks,
    Membership,
    NetRefused,
    NetworkNotFound,
    RemoveNetwork,
    RemoveNode,
    VpnMsg,
)

__all__ = [
    "REGISTRY",
    "AddAddress",
    "AddNode",
    "CreateNetwork",
    "GetMembership",
    "GetNetwork",
    "ListNetworks",
    "Membership",
    "NetRefused",
    "NetworkNotFound",
    "RemoveNetwork",
    "RemoveNode",
    "VpnMsg",
    "VpnRegistry",
    "VpnRouter",
]
