"""`Pricing`: the node's GLM/USD and ETH/USD rates, kept fresh, cached, never zero.

Theory of operation:
- At start the last applied rates are read back from the state store (`pricing.json`,
  each with the time a feed last confirmed it), so a restart keeps the price it had.
- A `Refresh` (at once, then every `interval`) starts a fetch as work (one at a time);
  its outcome comes back as `Fetched` or `FeedFailed`, so the inbox keeps flowing and
  `GetPrices` answers at once whatever the feeds do.
- A fetched rate replaces the applied one only when it moved by at least `threshold`
  percent; a smaller move just confirms the applied rate (its timestamp moves on). The
  rates and their timestamps are saved after each fetch that gave any (as work, the
  newest save superseding), so a restart knows how old they are.
- A failure keeps the applied rates and retries sooner (backoff from `RETRY_FIRST` up to
  the interval). A rate no feed confirmed within `max_age` is stale: from then on it
  prices nothing, as if unknown, until a feed answers again.
- Nothing is priced without a usable rate: `GetMinimumRate` is refused with
  `PriceUnknown` (why: never fetched, feed error, stale since when), and `GetPrices`
  says `unknown`/`stale` with no GLM prices. Each change of that state is logged once,
  when it happens: a timer fires at the staleness bound of the last confirmation. Before
  the first fetch's outcome nothing is logged, unless there is no feed or a cached rate.
- The optional watcher (the advertiser, started later) gets a `PricesChanged` whenever
  the GLM prices an advert would carry change (known at last, moved, stale), by
  `try_cast`: it never waits, and an advertiser not started yet reads them at its start.
  Without it, a node whose first fetch outlasted start-up waited a whole advertising
  interval (4 min by default) before its first advert.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from decimal import Decimal
from typing import Protocol

import msgspec
import structlog

from golem_actor.adapters.price_feed import FeedError, Quote
from golem_actor.domain.pricing import (
    PriceInfo,
    PriceState,
    RateReading,
    UsdPrices,
    apply_rate,
    glm_prices,
    native_min_rate,
    price_info,
    rate_state,
    requestor_rate,
    why_unusable,
)
from golem_actor.domain.resources import Resources
from golem_actor.kernel import Actor, ActorGone, Address, Timer
from golem_actor.state_store import StateError, StateStore

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

__all__ = ["CACHE_NAME", "CACHE_SCHEMA", "Pricing", "PricingCache", "RateSource", "load_cache"]

log = structlog.get_logger("golem_actor.pricing")
CACHE_NAME = "pricing"
CACHE_SCHEMA = 1
FETCH = "fetch"
SAVE = "save"
RETRY_FIRST = 30.0  # s after a first failure; doubles up to the refresh interval


class RateSource(Protocol):
    def describe(self) -> str: ...

    async def fetch(self) -> Quote: ...


class PricingCache(msgspec.Struct, frozen=True, kw_only=True):
    """What survives a restart: the applied rates and when a feed last confirmed them."""

    glm_usd: RateReading | None = None
    eth_usd: RateReading | None = None


async def load_cache(store: StateStore) -> PricingCache:
    """The cached rates; an unreadable cache is reported and treated as empty."""
    try:
        return await store.load(CACHE_NAME, PricingCache, schema_version=CACHE_SCHEMA) or (
            PricingCache()
        )
    except StateError as error:
        log.warning("pricing cache unreadable: starting without rates", error=str(error))
        return PricingCache()


class Pricing(Actor[PricingMsg]):
    def __init__(
        self,
        *,
        usd: UsdPrices,
        source: RateSource | None,
        store: StateStore,
        interval: float,
        threshold_percent: float,
        max_age: float,
        override: bool = False,
        clock: Callable[[], float] = time.time,
        watcher: Address[PricesChanged] | None = None,
    ) -> None:
        super().__init__()
        self._usd = usd
        self._source = source
        self._store = store
        self._interval = interval
        self._threshold = threshold_percent
        self._max_age = max_age
        self._override = override
        self._clock = clock
        self._glm: RateReading | None = None
        self._eth: RateReading | None = None
        self._error: str | None = None if source is not None else "no price feed configured"
        self._retry: Timer | None = None
        self._backoff = min(RETRY_FIRST, interval)
        self._logged: PriceState | None = None
        self._expiry: Timer | None = None
        self._watcher = watcher
        self._announced: object = None  # the advertised prices the watcher last heard of

    async def on_start(self) -> None:
        cache = await load_cache(self._store)
        self._glm, self._eth = cache.glm_usd, cache.eth_usd
        self._announced = self._advertised()
        if self._source is None or self._glm is not None:
            self._report_state()
        self._watch_expiry()
        if self._source is not None:
            self.every(self._interval, Refresh(), first=0.0)

    async def handle_cast(self, message: PricingMsg) -> None:
        match message:
            case Refresh():
                if self._source is not None and self.work_for(FETCH) is None:
                    self.start_work(
                        self._source.fetch,
                        then=Fetched,
                        failed=self._fetch_failed,
                        key=FETCH,
                    )
            case Fetched(quote=quote):
                self._apply(quote)
            case FeedFailed(error=error):
                self._error = error
                log.warning(
                    "price feeds failed: keeping the last rates", error=error, **self._ages()
                )
                self._schedule_retry()
                self._report_state()
            case Expire():
                self._report_state()
            case _:
                await super().handle_cast(message)

    async def handle_call(self, request: PricingMsg) -> object:
        match request:
            case GetPrices():
                self._report_state()
                return self._info()
            case GetMinimumRate(resources=resources, native=native):
                return self._minimum(resources, native=native)
            case _:
                return await super().handle_call(request)

    # -- the rules -----------------------------------------------------------------------

    @staticmethod
    def _fetch_failed(error: Exception) -> FeedFailed:
        if isinstance(error, FeedError):
            return FeedFailed(error=str(error))
        raise error  # anything but a feed's failure is a bug: let it crash

    def _applied(
        self, name: str, applied: RateReading | None, fresh: Decimal | None, now: float
    ) -> RateReading | None:
        after = apply_rate(applied, fresh, now=now, threshold_percent=self._threshold)
        if after is not None and (applied is None or after.usd != applied.usd):
            old = None if applied is None else str(applied.usd)
            log.info("exchange rate applied", rate=name, usd=str(after.usd), previous=old)
        return after

    def _apply(self, quote: Quote) -> None:
        now = self._clock()
        self._glm = self._applied("GLM/USD", self._glm, quote.glm_usd, now)
        self._eth = self._applied("ETH/USD", self._eth, quote.eth_usd, now)
        self._error = "; ".join(quote.problems) or None
        if quote.glm_usd is None or quote.eth_usd is None:
            self._schedule_retry()
        else:
            self._backoff = min(RETRY_FIRST, self._interval)
            if self._retry is not None:
                self._retry.cancel()
                self._retry = None
        cache = PricingCache(glm_usd=self._glm, eth_usd=self._eth)
        self.start_work(
            lambda: self._store.save(CACHE_NAME, cache, schema_version=CACHE_SCHEMA), key=SAVE
        )
        self._watch_expiry()
        self._report_state()

    def _watch_expiry(self) -> None:
        """An `Expire` when the GLM rate's last confirmation passes the staleness bound."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self._glm is not None:
            left = self._glm.confirmed_at + self._max_age - self._clock()
            self._expiry = self.after(max(left, 0.0) + 0.001, Expire())

    def _schedule_retry(self) -> None:
        if self._retry is not None and not self._retry.cancelled:
            self._retry.cancel()
        self._retry = self.after(self._backoff, Refresh())
        self._backoff = min(self._backoff * 2, self._interval)

    def _ages(self) -> dict[str, object]:
        now = self._clock()
        return {
            f"{name}_age_seconds": None if reading is None else round(now - reading.confirmed_at)
            for name, reading in (("glm_usd", self._glm), ("eth_usd", self._eth))
        }

    def _info(self) -> PriceInfo:
        return price_info(
            self._usd,
            glm=self._glm,
            eth=self._eth,
            now=self._clock(),
            max_age=self._max_age,
            last_error=self._error,
            source="none" if self._source is None else self._source.describe(),
            override=self._override,
        )

    def _advertised(self) -> object:
        """What of the prices an advert shows: the watcher hears when this moves."""
        info = self._info()
        return info.state, info.glm

    def _report_state(self) -> None:
        """Log the GLM price's state once per change (adverts and GLM gating follow it),
        and tell the watcher when the advertised prices moved."""
        advertised = self._advertised()
        if advertised != self._announced:
            self._announced = advertised
            if self._watcher is not None:
                with suppress(ActorGone):
                    self._watcher.try_cast(PricesChanged())
        info = self._info()
        if info.state == self._logged:
            return
        self._logged = info.state
        if info.state == "known":
            assert info.glm is not None
            log.info(
                "prices known",
                glm_usd=str(info.glm_usd.usd),
                glm_per_core_month=str(info.glm.core),
                glm_per_gb_ram_month=str(info.glm.ram_gb),
                glm_per_gb_storage_month=str(info.glm.disk_gb),
            )
        else:
            log.warning(
                "no price: not advertising, creates refused", state=info.state, why=info.why
            )

    def _minimum(self, resources: Resources, *, native: bool) -> int:
        now = self._clock()
        name, reading = ("ETH/USD", self._eth) if native else ("GLM/USD", self._glm)
        if rate_state(reading, now=now, max_age=self._max_age) != "known":
            self._report_state()
            raise PriceUnknown(
                why_unusable(name, reading, now=now, max_age=self._max_age, error=self._error)
            )
        assert reading is not None
        if native:
            return native_min_rate(self._usd, reading.usd, resources)
        return requestor_rate(glm_prices(self._usd, reading.usd), resources)
