"""The resource_tracker actor: host capacity and the allocation of each VM."""

from .actor import ResourceTracker, host_totals
from .messages import (
    CapacityChanged,
    CapacityReport,
    GetCapacity,
    InsufficientResources,
    Release,
    Reserve,
    ResourceMsg,
)

__all__ = [
    "CapacityChanged",
    "CapacityReport",
    "GetCapacity",
    "InsufficientResources",
    "Release",
    "Reserve",
    "ResourceMsg",
    "ResourceTracker",
    "host_totals",
]
