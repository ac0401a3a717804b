"""Messages of the vm_lifecycle actor, and the views it answers with."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from actors.vpn_router import LeasesChanged
from golem_actor.adapters.backend import Endpoint, Observed
from golem_actor.domain.resources import Resources
from golem_actor.domain.tenancy import Caller
from golem_actor.domain.vm_machine import Event, VmStatus
from golem_actor.kernel import ActorError, Call

# -- what clients see -------------------------------------------------------------------


class VmView(msgspec.Struct, frozen=True, kw_only=True):
    vm_id: str
    name: str
    status: VmStatus
    resources: Resources
    image: str
    ip_address: str | None
    ssh_port: int
    stream_id: int | None
    job_id: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime


JobStatus = Literal["creating", "ready", "failed"]


class JobView(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    vm_id: str
    status: JobStatus
    error: str | None
    created_at: datetime
    updated_at: datetime


# -- requests ---------------------------------------------------------------------------


class CreateVm(Call[VmView], frozen=True, kw_only=True):
    caller: Caller
    name: str
    resources: Resources
    image: str  # a catalog name, already resolved for this node's backend
    authorized_keys: tuple[str, ...]
    stream_id: int | None = None
    with_job: bool = False


class GetVm(Call[VmView], frozen=True):
    caller: Caller
    vm_id: str


class ListVms(Call[list[VmView]], frozen=True):
    caller: Caller


class StopVm(Call[VmView], frozen=True):
    caller: Caller
    vm_id: str


class StartVm(Call[VmView], frozen=True):
    caller: Caller
    vm_id: str


class DeleteVm(Call[VmView], frozen=True):
    caller: Caller
    vm_id: str


class GetJob(Call[JobView], frozen=True):
    caller: Caller
    job_id: str


class WaitVm(Call[VmView], frozen=True):
    """Answer once the VM's status is one of `until` (at once if it already is).

    Refused with `VmNotFound` if the VM is deleted meanwhile (an empty `until` waits for
    exactly that). The wait is bounded by the caller's call deadline: use
    `address.with_call_timeout(seconds)` for more than the default 5 s.
    """

    caller: Caller
    vm_id: str
    until: frozenset[VmStatus]


# -- refusals ---------------------------------------------------------------------------


class VmNotFound(ActorError):
    pass


class JobNotFound(ActorError):
    pass


class NameTaken(ActorError):
    pass


class Conflict(ActorError):
    """The request makes no sense in the VM's current status."""


class NoFreePort(ActorError):
    pass


class StateNotSaved(ActorError):
    """The registry could not be written (a full or failing disk): nothing was changed."""


class StreamInUse(ActorError):
    """One payment stream backs at most one live VM."""


# -- the actor's own notifications ------------------------------------------------------


class OpOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """The end of a background operation on one VM (a superseded one never reports)."""

    vm_id: str
    event: Event | None  # None: the operation changes no status (e.g. reopening a proxy)
    observed: Observed | None = None
    error: str | None = None


class Observation(msgspec.Struct, frozen=True, kw_only=True):
    """A periodic look at the backend and the proxies, to notice drift; `began` is when
    the look started (trio's clock): what it saw may predate any change since."""

    machines: dict[str, Observed]
    proxies: frozenset[str]
    began: float


class ObservationFailed(msgspec.Struct, frozen=True):
    """The periodic look could not read the backend; the next tick tries again."""

    error: str


class Tick(msgspec.Struct, frozen=True):
    pass


# Everything the vm_lifecycle actor accepts: its address is an `Address[LifecycleMsg]`.
LifecycleMsg = (
    CreateVm
    | GetVm
    | ListVms
    | StopVm
    | StartVm
    | DeleteVm
    | GetJob
    | WaitVm
    | OpOutcome
    | Tick
    | Observation
    | ObservationFailed
    | LeasesChanged  # the vpn_router's: bounce these VMs' VPN links
)

__all__ = [
    "Conflict",
    "CreateVm",
    "DeleteVm",
    "Endpoint",
    "GetJob",
    "GetVm",
    "JobNotFound",
    "JobView",
    "LifecycleMsg",
    "ListVms",
    "NameTaken",
    "NoFreePort",
    "Observation",
    "ObservationFailed",
    "OpOutcome",
    "StartVm",
    "StopVm",
    "StreamInUse",
    "Tick",
    "VmNotFound",
    "VmView",
    "WaitVm",
]
