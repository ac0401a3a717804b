"""The resource_tracker actor: host capacity and the allocation of each VM."""

from .actor import ResourceTracker, host_totals
from .messages import (
    CapacityReport,
    GetCapacity,
    InsufficientResources,
    Release,
    Reserve,
    ResourceMsg,
)

__all__ = [
    "CapacityReport",
    "GetCapacity",
    "InsufficientResources",
    "Release",
    "Reserve",
    "ResourceMsg",
    "ResourceTracker",
    "host_totals",
]
