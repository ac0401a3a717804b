"""The vpn_router actor: the node's Golem VPN networks and their data plane (actor.py)."""

from .actor import REGISTRY, VpnRegistry, VpnRouter
from .fabric import Fabric
from .messages import (
    AddAddress,
    AddNode,
    AttachPort,
    CreateNetwork,
    DetachPort,
    GetMembership,
    GetNetwork,
    GetVpnStats,
    ListNetworks,
    Membership,
    NetRefused,
    NetworkNotFound,
    RemoveNetwork,
    RemoveNode,
    VmsGone,
    VmsKnown,
    VpnMsg,
    VpnStats,
)

__all__ = [
    "REGISTRY",
    "AddAddress",
    "AddNode",
    "AttachPort",
    "CreateNetwork",
    "DetachPort",
    "Fabric",
    "GetMembership",
    "GetNetwork",
    "GetVpnStats",
    "ListNetworks",
    "Membership",
    "NetRefused",
    "NetworkNotFound",
    "RemoveNetwork",
    "RemoveNode",
    "VmsGone",
    "VmsKnown",
    "VpnMsg",
    "VpnRegistry",
    "VpnRouter",
    "VpnStats",
]
