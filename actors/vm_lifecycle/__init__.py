"""The vm_lifecycle actor: the VM registry and one state machine per VM."""

from .actor import VmLifecycle
from .listing import VmListing
from .messages import (
    Conflict,
    CreateVm,
    DeleteVm,
    GetJob,
    GetVm,
    JobNotFound,
    JobView,
    LifecycleMsg,
    ListVms,
    NameTaken,
    NoFreePort,
    StartVm,
    StateNotSaved,
    StopVm,
    StreamInUse,
    VmNotFound,
    VmView,
    WaitVm,
)
from .operations import Operations

__all__ = [
    "Conflict",
    "CreateVm",
    "DeleteVm",
    "GetJob",
    "GetVm",
    "JobNotFound",
    "JobView",
    "LifecycleMsg",
    "ListVms",
    "NameTaken",
    "NoFreePort",
    "Operations",
    "StartVm",
    "StateNotSaved",
    "StopVm",
    "StreamInUse",
    "VmLifecycle",
    "VmListing",
    "VmNotFound",
    "VmView",
    "WaitVm",
]
