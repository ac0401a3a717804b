"""Messages of the resource_tracker actor."""

from __future__ import annotations

import msgspec

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
    """Told (a cast, never awaited) to whoever watches capacity, after a reservation or a
    release changed what the node can still sell (the advertiser, to update its advert)."""


class CapacityReport(msgspec.Struct, frozen=True, kw_only=True):
    total: Resources
    reserve: Resources
    sellable: Resources
    allocated: Resources
    free: Resources
    vms: int
    max_vms: int


class GetCapacity(Call[CapacityReport], frozen=True):
    pass


class InsufficientResources(ActorError):
    """The request does not fit; the message names every missing amount."""


# Everything the resource_tracker accepts: its address is an `Address[ResourceMsg]`.
ResourceMsg = Reserve | Release | GetCapacity
