"""The advertiser actor: the node's advert on a discovery server and Golem Base, true and
withdrawn."""

from .actor import Advertiser, Poster
from .advert import Identity, Minimums, make_advert
from .discovery import DiscoveryPoster, PublishError
from .fanout import FanoutPoster
from .golem_base import FaucetSettings, GolemBasePoster
from .messages import (
    Advertise,
    AdvertiserMsg,
    AdvertState,
    CapacityChanged,
    GetAdvertState,
    PricesChanged,
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
    "FanoutPoster",
    "FaucetSettings",
    "GetAdvertState",
    "GolemBasePoster",
    "Identity",
    "Minimums",
    "Poster",
    "PricesChanged",
    "PublishError",
    "PublishFailed",
    "Published",
    "Settle",
    "Skipped",
    "make_advert",
]
