"""The advertiser actor: the node's advert on a discovery server, true and withdrawn."""

from .actor import Advertiser, Poster
from .advert import Identity, Minimums, make_advert
from .discovery import DiscoveryPoster, PublishError
from .messages import (
    Advertise,
    AdvertiserMsg,
    AdvertState,
    CapacityChanged,
    GetAdvertState,
    Published,
    PublishFailed,
    Settle,
    Skipped,
)

__all__ = [
    "AdvertState",
    "Advertise",
    "Advertiser",
    "AdvertiserMsg",
    "CapacityChanged",
    "DiscoveryPoster",
    "GetAdvertState",
    "Identity",
    "Minimums",
    "Poster",
    "PublishError",
    "PublishFailed",
    "Published",
    "Settle",
    "Skipped",
    "make_advert",
]
