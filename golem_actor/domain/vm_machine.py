"""The VM state machine, written as data (h11's `_state.py` style).

Theory of operation
-------------------
Rule 1: everything that decides a VM's status lives in this file. The vm_lifecycle actor
feeds it events (a client's request, or the outcome of work it ran) and performs the
effects it returns; it never sets a status by hand.

States::

    creating --ready--> running --request_stop--> stopping --powered_off--> stopped
        |                  |  ^                                                |
        |                  |  '----------ready---- starting <--request_start---'
        |                  '--powered_off (the guest shut itself down) --> stopped
        '--failed--> error --request_start--> starting
    any live state --request_delete--> deleting --deleted--> deleted

`ready` means an SSH banner was read through the VM's public port: a VM is never
reported `running` before a client can log in (the existing provider said `running`
while its proxy did not exist yet).

Requests that are already satisfied are no-ops (stopping a stopped VM); requests that
make no sense in a state are refused with a reason (stopping a VM being created).
Entering a state has effects, also written as data (`ENTRY_EFFECTS`).
"""

from __future__ import annotations

import enum

__all__ = [
    "ENTRY_EFFECTS",
    "Effect",
    "Event",
    "InvalidTransition",
    "VmStatus",
    "next_status",
]


class VmStatus(enum.StrEnum):
    CREATING = "creating"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    STARTING = "starting"
    DELETING = "deleting"
    DELETED = "deleted"
    ERROR = "error"


class Event(enum.StrEnum):
    REQUEST_STOP = "request_stop"
    REQUEST_START = "request_start"
    REQUEST_DELETE = "request_delete"
    READY = "ready"  # SSH banner read through the public port
    POWERED_OFF = "powered_off"  # the backend reports the machine off
    DELETED = "deleted"  # the backend removed the machine and its disks
    FAILED = "failed"  # the operation of the current state failed
    VANISHED = "vanished"  # the backend no longer has the machine


class Effect(enum.StrEnum):
    LAUNCH = "launch"  # create + boot, then open the proxy and probe SSH
    POWER_ON = "power_on"  # boot an existing machine, then open the proxy and probe SSH
    POWER_OFF = "power_off"
    DESTROY = "destroy"
    CLOSE_PROXY = "close_proxy"
    OPEN_PROXY = "open_proxy"  # (re)open the proxy of a VM found running (adoption, drift)
    RELEASE = "release"  # free the port and the resources, forget the record


S, E = VmStatus, Event

TRANSITIONS: dict[tuple[VmStatus, Event], VmStatus] = {
    (S.CREATING, E.READY): S.RUNNING,
    (S.CREATING, E.FAILED): S.ERROR,
    (S.CREATING, E.VANISHED): S.ERROR,
    (S.CREATING, E.REQUEST_DELETE): S.DELETING,
    (S.RUNNING, E.REQUEST_STOP): S.STOPPING,
    (S.RUNNING, E.POWERED_OFF): S.STOPPED,
    (S.RUNNING, E.VANISHED): S.ERROR,
    (S.RUNNING, E.REQUEST_DELETE): S.DELETING,
    (S.STOPPING, E.POWERED_OFF): S.STOPPED,
    (S.STOPPING, E.FAILED): S.ERROR,
    (S.STOPPING, E.VANISHED): S.ERROR,
    (S.STOPPING, E.REQUEST_DELETE): S.DELETING,
    (S.STOPPED, E.REQUEST_START): S.STARTING,
    (S.STOPPED, E.VANISHED): S.ERROR,
    (S.STOPPED, E.FAILED): S.ERROR,  # ending what a machine found off left (its pasta)
    (S.STOPPED, E.REQUEST_DELETE): S.DELETING,
    (S.STARTING, E.READY): S.RUNNING,
    (S.STARTING, E.FAILED): S.ERROR,
    (S.STARTING, E.VANISHED): S.ERROR,
    (S.STARTING, E.REQUEST_DELETE): S.DELETING,
    (S.ERROR, E.REQUEST_START): S.STARTING,
    (S.ERROR, E.REQUEST_DELETE): S.DELETING,
    (S.DELETING, E.DELETED): S.DELETED,
    (S.DELETING, E.FAILED): S.ERROR,
}

# Requests that are already satisfied in that state: answered without a transition.
NO_OPS: frozenset[tuple[VmStatus, Event]] = frozenset(
    {
        (S.RUNNING, E.REQUEST_START),
        (S.STARTING, E.REQUEST_START),
        (S.STOPPED, E.REQUEST_STOP),
        (S.STOPPING, E.REQUEST_STOP),
        (S.DELETING, E.REQUEST_DELETE),
        (S.STOPPED, E.POWERED_OFF),
        (S.ERROR, E.VANISHED),
    }
)

ENTRY_EFFECTS: dict[VmStatus, tuple[Effect, ...]] = {
    S.CREATING: (Effect.LAUNCH,),
    S.RUNNING: (),
    S.STOPPING: (Effect.CLOSE_PROXY, Effect.POWER_OFF),
    S.STOPPED: (Effect.CLOSE_PROXY,),
    S.STARTING: (Effect.POWER_ON,),
    S.DELETING: (Effect.CLOSE_PROXY, Effect.DESTROY),
    S.DELETED: (Effect.RELEASE,),
    S.ERROR: (Effect.CLOSE_PROXY,),
}

# What a refusal says, per request, so a client learns why.
_VERBS = {
    E.REQUEST_STOP: "stop",
    E.REQUEST_START: "start",
    E.REQUEST_DELETE: "delete",
}


class InvalidTransition(Exception):
    """A request that makes no sense in the VM's current status."""

    def __init__(self, status: VmStatus, event: Event) -> None:
        verb = _VERBS.get(event, event.value)
        super().__init__(f"cannot {verb} a VM that is {status.value}")
        self.status = status
        self.event = event


def next_status(status: VmStatus, event: Event) -> VmStatus | None:
    """The status after `event`; None when it changes nothing; raises when refused."""
    if (status, event) in NO_OPS:
        return None
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise InvalidTransition(status, event) from None


def is_live(status: VmStatus) -> bool:
    """Whether the VM still holds a name, a port and resources."""
    return status is not VmStatus.DELETED
