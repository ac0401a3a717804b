"""The actor kernel: addresses, actors, supervisors. Imports nothing from the rest of
the project; everything public is re-exported here (trio's layout)."""

from ._actor import Actor
from ._deferred import Deferred
from ._dynamic import (
    ChildAddress,
    ChildAlreadyStarted,
    ChildStartFailed,
    DynamicSupervisor,
    DynamicSupervisorMsg,
    NoSuchChild,
    StartChild,
    TerminateChild,
    WhichChildren,
)
from ._errors import ActorError, ActorGone, CallFailed, CallTimeout, KernelError, SupervisorGaveUp
from ._inbox import Address, Inbox, InboxStatistics
from ._intensity import RestartIntensity
from ._messages import Call, Request
from ._spec import ChildSpec, Restart, Strategy
from ._supervision import (
    ChildStatistics,
    CrashChild,
    GetStatistics,
    InjectedCrash,
    NotRunning,
    SupervisorStatistics,
)
from ._supervisor import Supervisor, SupervisorMsg
from ._work import Timer, Work

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
    "CrashChild",
    "Deferred",
    "DynamicSupervisor",
    "DynamicSupervisorMsg",
    "GetStatistics",
    "Inbox",
    "InboxStatistics",
    "InjectedCrash",
    "KernelError",
    "NoSuchChild",
    "NotRunning",
    "Request",
    "Restart",
    "RestartIntensity",
    "StartChild",
    "Strategy",
    "Supervisor",
    "SupervisorGaveUp",
    "SupervisorMsg",
    "SupervisorStatistics",
    "TerminateChild",
    "Timer",
    "WhichChildren",
    "Work",
]
