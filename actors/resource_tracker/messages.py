"""Messages of the resource_tracker actor."""

from __future__ import annotations

import msgspec

from golem_actor.domain.host_load import HostLoad, Thresholds
from golem_actor.domain.resources import Resources
from golem_actor.kernel import ActorError, Call


class Reserve(Call[None], frozen=True):
    """Allocate `resources` to `vm_id`, or refuse with what is missing.

    `adopt` records an allocation that already exists (a VM found running at start) even
    when it no longer fits, so the books match the host.
    """

    vm_id: str
    resources: Resources
    adopt: bool = False


class Release(msgspec.Struct, frozen=True):
    """Forget `vm_id`'s allocation. A cast: the lifecycle never waits for it, and the
    inbox's order puts it before any later `Reserve` from the same sender."""

    vm_id: str


class CapacityChanged(msgspec.Struct, frozen=True):
    """Told (a cast, never awaited) to whoever watches capacity, after a reservation, a
    release or a change of the host's load changed what the node can still sell (the
    advertiser, to update its advert)."""


class CapacityReport(msgspec.Struct, frozen=True, kw_only=True):
    total: Resources
    reserve: Resources
    sellable: Resources
    allocated: Resources
    free: Resources
    vms: int
    max_vms: int
    cpu_overcommit: float = 1.0  # VM cores sold per host core (sellable follows it)
    # The host's load at the last sample and the thresholds (None: not monitored), and
    # each axis a threshold holds below what allocations leave, with why.
    load: HostLoad | None = None
    thresholds: Thresholds | None = None
    limited: tuple[str, ...] = ()


class GetCapacity(Call[CapacityReport], frozen=True):
    pass


class InsufficientResources(ActorError):
    """The request does not fit; the message names every missing amount."""


class Sample(msgspec.Struct, frozen=True):
    """Time to read the host's load (the monitor's timer)."""


class Sampled(msgspec.Struct, frozen=True):
    """A reading of the host's load (the outcome of a `Sample`)."""

    load: HostLoad


class SampleFailed(msgspec.Struct, frozen=True):
    """The host's load could not be read: the last reading stays."""

    error: str


# Everything the resource_tracker accepts: its address is an `Address[ResourceMsg]`.
ResourceMsg = Reserve | Release | GetCapacity | Sample | Sampled | SampleFailed
