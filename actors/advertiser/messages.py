"""Messages of the advertiser actor, and the state it reports."""

from __future__ import annotations

import msgspec

from actors.pricing import PricesChanged
from actors.resource_tracker import CapacityChanged
from golem_actor.discovery.schemas import AdvertBody
from golem_actor.domain.advertising import AdvertPhase, AdvertState
from golem_actor.kernel import Call

__all__ = [
    "AdvertPhase",
    "AdvertState",
    "Advertise",
    "AdvertiserMsg",
    "CapacityChanged",
    "GetAdvertState",
    "PricesChanged",
    "PublishFailed",
    "Published",
    "Settle",
    "Skipped",
]


class Advertise(msgspec.Struct, frozen=True):
    """Time to post: at start and on the interval."""


class Settle(msgspec.Struct, frozen=True):
    """The debounce window after a capacity or price change has passed: post once now."""


class Published(msgspec.Struct, frozen=True):
    """An attempt's outcome: the server took this advert."""

    advert: AdvertBody


class Skipped(msgspec.Struct, frozen=True):
    """An attempt's outcome: nothing was posted, for this reason; an advert that was up
    has been taken down (`withdrawn`)."""

    why: str
    withdrawn: bool = False


class PublishFailed(msgspec.Struct, frozen=True):
    """An attempt's outcome: the server or the network failed (retried next interval)."""

    error: str


class GetAdvertState(Call[AdvertState], frozen=True):
    pass


# Everything the advertiser accepts: its address is an `Address[AdvertiserMsg]`.
AdvertiserMsg = (
    Advertise
    | CapacityChanged
    | PricesChanged
    | Settle
    | Published
    | Skipped
    | PublishFailed
    | GetAdvertState
)
