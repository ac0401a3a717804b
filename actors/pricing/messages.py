"""Messages of the pricing actor, and its refusal when no price is known."""

from __future__ import annotations

import msgspec

from golem_actor.adapters.price_feed import Quote
from golem_actor.domain.pricing import PriceInfo
from golem_actor.domain.resources import Resources
from golem_actor.kernel import ActorError, Call

__all__ = [
    "Expire",
    "FeedFailed",
    "Fetched",
    "GetMinimumRate",
    "GetPrices",
    "PriceUnknown",
    "PricesChanged",
    "PricingMsg",
    "Refresh",
]


class PriceUnknown(ActorError):
    """No usable exchange rate for this token: nothing can be priced (the reason says why)."""

    def __init__(self, why: str) -> None:
        super().__init__(f"no price known: {why}")
        self.why = why


class Refresh(msgspec.Struct, frozen=True):
    """Time to ask the feeds again (the timer's, or after a failure)."""


class Fetched(msgspec.Struct, frozen=True):
    """A fetch's outcome: the rates the feeds gave (either may be missing)."""

    quote: Quote


class FeedFailed(msgspec.Struct, frozen=True):
    """No feed gave any usable rate."""

    error: str


class Expire(msgspec.Struct, frozen=True):
    """The staleness bound of the last confirmation has passed: say so now."""


class PricesChanged(msgspec.Struct, frozen=True):
    """Cast to the pricing actor's watcher (the advertiser) when the GLM prices it would
    advertise changed: known at last, moved, or gone stale."""


class GetPrices(Call[PriceInfo], frozen=True):
    """The prices and the rates' state (answered even when no price is known)."""


class GetMinimumRate(Call[int], frozen=True, kw_only=True):
    """The least wei per second a stream in the node's token must pay for `resources`;
    refused with `PriceUnknown` while the token's rate is unknown or stale."""

    resources: Resources
    native: bool  # the token is the chain's native one (ETH), not GLM


# Everything the pricing actor accepts: its address is an `Address[PricingMsg]`.
PricingMsg = Refresh | Fetched | FeedFailed | Expire | GetPrices | GetMinimumRate
