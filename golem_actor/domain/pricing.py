"""Prices: USD per unit-month, GLM per unit, and the least stream rate a VM must pay.

Why here: every pricing decision is a pure function of the operator's USD prices, the
exchange rates last read from a feed and the clock, so it is tested without any feed.

The numbers follow the market's existing parts (see the reference's market notes):
- the operator sets USD per core, per GB of RAM and per GB of disk, per month of 730 h;
- GLM per unit = USD / (USD per GLM), quantized to 1e-8 with ROUND_HALF_UP, in Decimal
  (this is what adverts carry);
- the requestor turns the advertised GLM prices into a stream rate with floats and a
  truncation: ``int((c*glm_core + m*glm_ram + s*glm_disk) / (730*3600) * 1e18)``. A GLM
  stream is accepted when it pays at least that very number (same floats, same order),
  so the requestor's truncation can never refuse its own stream;
- a native-token stream is worth the USD price at the ETH/USD rate (rounded down to whole
  wei per second, the same tolerance);
- the wei-per-month settings, when any is set, are an explicit override of all this.

Rates have a lifecycle: one is applied when it moved at least the threshold from the one
applied before (small wiggles do not churn adverts), and it is usable while a feed
confirmed it within the staleness bound. A rate of zero or below is never a price.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Literal

import msgspec

from golem_actor.domain.resources import MIB_PER_GIB, Resources
from golem_actor.domain.streams import HOURS_PER_MONTH, SECONDS_PER_MONTH

__all__ = [
    "EXAMPLES",
    "GLM_QUANTUM",
    "HOURS_PER_MONTH",
    "GlmPrices",
    "PriceInfo",
    "PriceState",
    "RateInfo",
    "RateReading",
    "UsdPrices",
    "WeiOverride",
    "apply_rate",
    "glm_per_unit",
    "glm_prices",
    "native_min_rate",
    "positive_rate",
    "price_info",
    "rate_moved",
    "rate_state",
    "requestor_rate",
    "usd_per_month",
    "why_unusable",
]

GLM_QUANTUM = Decimal("0.00000001")
WEI_PER_TOKEN = 10**18
PriceState = Literal["known", "stale", "unknown"]

# The example sizes `pricing show` prices: (label, cores, GB RAM, GB disk).
EXAMPLES: tuple[tuple[str, int, int, int], ...] = (
    ("Small (1C, 1GB RAM, 10GB Disk)", 1, 1, 10),
    ("Medium (2C, 4GB RAM, 20GB Disk)", 2, 4, 20),
    ("Example (2C, 2GB RAM, 10GB Disk)", 2, 2, 10),
)


class UsdPrices(msgspec.Struct, frozen=True, kw_only=True):
    """What the operator charges, in USD per unit and month."""

    core: float
    ram_gb: float
    disk_gb: float


class GlmPrices(msgspec.Struct, frozen=True, kw_only=True):
    """The same prices in GLM per unit and month, as adverts carry them."""

    core: Decimal
    ram_gb: Decimal
    disk_gb: Decimal


class WeiOverride(msgspec.Struct, frozen=True, kw_only=True):
    """The explicit wei-per-month prices of the settings (all zero: no override)."""

    core: int = 0
    ram_gb: int = 0
    disk_gb: int = 0

    @property
    def active(self) -> bool:
        return any((self.core, self.ram_gb, self.disk_gb))


class RateReading(msgspec.Struct, frozen=True, kw_only=True):
    """An applied exchange rate (USD per token) and when a feed last confirmed it (Unix s)."""

    usd: Decimal
    confirmed_at: float


def positive_rate(value: object) -> Decimal | None:
    """A feed's number as a usable rate, or None for 0, negatives, NaN, infinities, text."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        return None
    try:
        rate = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if not rate.is_finite() or rate <= 0:
        return None
    return rate


def glm_per_unit(usd: float, glm_usd: Decimal) -> Decimal:
    """USD per unit-month in GLM, quantized to 1e-8 half-up."""
    if glm_usd <= 0:
        raise ValueError("the GLM/USD rate must be above zero")
    return (Decimal(str(usd)) / glm_usd).quantize(GLM_QUANTUM, rounding=ROUND_HALF_UP)


def glm_prices(usd: UsdPrices, glm_usd: Decimal) -> GlmPrices:
    return GlmPrices(
        core=glm_per_unit(usd.core, glm_usd),
        ram_gb=glm_per_unit(usd.ram_gb, glm_usd),
        disk_gb=glm_per_unit(usd.disk_gb, glm_usd),
    )


def _memory_gb(resources: Resources) -> float:
    return resources.memory_mib / MIB_PER_GIB


def requestor_rate(glm: GlmPrices, resources: Resources) -> int:
    """The requestor's stream rate for `resources` at the advertised GLM prices, exactly as
    it computes it (floats, truncated): what a GLM stream must pay at least."""
    glm_month = (
        resources.cpus * float(glm.core)
        + _memory_gb(resources) * float(glm.ram_gb)
        + resources.storage_gib * float(glm.disk_gb)
    )
    return int(glm_month / (HOURS_PER_MONTH * 3600) * 1e18)


def usd_per_month(usd: UsdPrices, resources: Resources) -> Decimal:
    memory = Decimal(resources.memory_mib) / MIB_PER_GIB
    return (
        resources.cpus * Decimal(str(usd.core))
        + memory * Decimal(str(usd.ram_gb))
        + resources.storage_gib * Decimal(str(usd.disk_gb))
    )


def native_min_rate(usd: UsdPrices, eth_usd: Decimal, resources: Resources) -> int:
    """The least wei per second of native token worth the USD price (rounded down)."""
    if eth_usd <= 0:
        raise ValueError("the ETH/USD rate must be above zero")
    wei_per_month = usd_per_month(usd, resources) / eth_usd * WEI_PER_TOKEN
    return int(wei_per_month / SECONDS_PER_MONTH)


def rate_moved(applied: Decimal | None, fresh: Decimal, threshold_percent: float) -> bool:
    """Whether `fresh` replaces `applied`: none applied yet, or it moved by the threshold."""
    if applied is None or applied <= 0:
        return True
    change = abs(fresh - applied) / applied * 100
    return change >= Decimal(str(threshold_percent))


def apply_rate(
    applied: RateReading | None, fresh: Decimal | None, *, now: float, threshold_percent: float
) -> RateReading | None:
    """The applied rate after a feed said `fresh` (None: it said nothing usable): replaced
    when it moved by the threshold, else confirmed as of `now`."""
    if fresh is None:
        return applied
    if applied is None or rate_moved(applied.usd, fresh, threshold_percent):
        return RateReading(usd=fresh, confirmed_at=now)
    return RateReading(usd=applied.usd, confirmed_at=now)


def rate_state(reading: RateReading | None, *, now: float, max_age: float) -> PriceState:
    """`known` while confirmed within `max_age` seconds, then `stale`; `unknown` if never."""
    if reading is None:
        return "unknown"
    return "known" if now - reading.confirmed_at <= max_age else "stale"


class RateInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One exchange rate as `status` shows it."""

    state: PriceState
    usd: Decimal | None  # USD per token; None when never known
    confirmed_at: float | None  # Unix time a feed last confirmed it


class PriceInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The node's prices and where they stand (the pricing actor's answer, `status`).

    `state` is the GLM rate's: adverts and GLM streams need it. `glm` is None unless that
    rate is known: the node never advertises or gates with a price of zero.
    """

    state: PriceState
    why: str  # empty when known; else why there is no price
    usd: UsdPrices
    glm: GlmPrices | None
    glm_usd: RateInfo
    eth_usd: RateInfo
    last_error: str | None  # the last feed failure, if the last attempt failed
    source: str  # where the rates come from: the feeds' URLs, or "fixed"
    override: bool  # the wei-per-month settings replace the USD prices for gating


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def why_unusable(
    name: str, reading: RateReading | None, *, now: float, max_age: float, error: str | None
) -> str:
    """Why the `name` rate (e.g. "GLM/USD") cannot be used, or "" when it can."""
    state = rate_state(reading, now=now, max_age=max_age)
    feed = f": {error}" if error else ""
    if state == "unknown":
        return f"no {name} rate known yet{feed or ' (not fetched yet)'}"
    if state == "stale":
        assert reading is not None
        return (
            f"the {name} rate is stale: last confirmed {_age(now - reading.confirmed_at)} ago,"
            f" {_age(max_age)} allowed{feed}"
        )
    return ""


def price_info(
    usd: UsdPrices,
    *,
    glm: RateReading | None,
    eth: RateReading | None,
    now: float,
    max_age: float,
    last_error: str | None,
    source: str,
    override: bool = False,
) -> PriceInfo:
    def info(reading: RateReading | None) -> RateInfo:
        return RateInfo(
            state=rate_state(reading, now=now, max_age=max_age),
            usd=None if reading is None else reading.usd,
            confirmed_at=None if reading is None else reading.confirmed_at,
        )

    glm_info = info(glm)
    return PriceInfo(
        state=glm_info.state,
        why=why_unusable("GLM/USD", glm, now=now, max_age=max_age, error=last_error),
        usd=usd,
        glm=glm_prices(usd, glm.usd) if glm is not None and glm_info.state == "known" else None,
        glm_usd=glm_info,
        eth_usd=info(eth),
        last_error=last_error,
        source=source,
        override=override,
    )
