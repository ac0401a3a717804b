"""The actor kernel: addresses, actors, supervisors. Imports nothing from the rest of
the project; everything public is re-exported here (trio's layout)."""

from ._actor import Actor
from ._dynamic import (
    ChildAddress,
    ChildAlreadyStarted,
    ChildStartFailed,
    DynamicSupervisor,
    NoSuchChild,
    StartChild,
    TerminateChild,
    WhichChildren,
)
from ._errors import ActorError, ActorGone, CallFailed, CallTimeout, KernelError, SupervisorGaveUp
from ._inbox import Address, Inbox, InboxStatistics
from ._intensity import RestartIntensity
from ._messages import Call
from ._spec import ChildSpec, Restart, Strategy
from ._supervision import ChildStatistics, GetStatistics, SupervisorStatistics
from ._supervisor import Supervisor

__all__ = [
    "Actor",
    "ActorError",
    "ActorGone",
    "Address",
    "Call",
    "CallFailed",
    "CallTimeout",
    "ChildAddress",
    "ChildAlreadyStarted",
    "ChildSpec",
    "ChildStartFailed",
    "ChildStatistics",
    "DynamicSupervisor",
    "GetStatistics",
    "Inbox",
    "InboxStatistics",
    "KernelError",
    "NoSuchChild",
    "Restart",
    "RestartIntensity",
    "StartChild",
    "Strategy",
    "Supervisor",
    "SupervisorGaveUp",
    "SupervisorStatistics",
    "TerminateChild",
    "WhichChildren",
]
