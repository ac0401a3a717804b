"""The pricing actor: USD prices, GLM/ETH exchange rates from price feeds, cached."""

from .actor import CACHE_NAME, CACHE_SCHEMA, Pricing, PricingCache, RateSource, load_cache
from .messages import (
    Expire,
    FeedFailed,
    Fetched,
    GetMinimumRate,
    GetPrices,
    PricesChanged,
    PriceUnknown,
    PricingMsg,
    Refresh,
)

__all__ = [
    "CACHE_NAME",
    "CACHE_SCHEMA",
    "Expire",
    "FeedFailed",
    "Fetched",
    "GetMinimumRate",
    "GetPrices",
    "PriceUnknown",
    "PricesChanged",
    "Pricing",
    "PricingCache",
    "PricingMsg",
    "RateSource",
    "Refresh",
    "load_cache",
]
