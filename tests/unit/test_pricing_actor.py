"""The pricing actor on a scripted feed, in virtual time: the threshold, the staleness
bound, the cache across restarts, and never a price of zero."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import pytest
import structlog
import trio
from payments_fakes import hosted
from test_resource_monitor import drained

from actors.pricing import (
    GetMinimumRate,
    GetPrices,
    PricesChanged,
    PriceUnknown,
    Pricing,
    PricingMsg,
)
from golem_actor.adapters.price_feed import FeedError, Quote
from golem_actor.domain.pricing import UsdPrices, glm_prices, native_min_rate, requestor_rate
from golem_actor.domain.resources import Resources
from golem_actor.kernel import Address, Inbox
from golem_actor.state_store import StateStore

USD = UsdPrices(core=5.0, ram_gb=2.0, disk_gb=0.1)
MEDIUM = Resources.from_gb(cpus=2, memory_gb=4, storage_gb=20)
INTERVAL = 900.0
MAX_AGE = 3600.0
EPOCH = 1_700_000_000.0  # the wall clock when the virtual clock reads 0


def wall_clock() -> float:
    return EPOCH + trio.current_time()


class ScriptedFeed:
    """Answers what the test last set: a quote, or a failure."""

    def __init__(self, answer: Quote | FeedError | None) -> None:
        self.answer = answer
        self.fetches = 0

    def describe(self) -> str:
        return "scripted"

    async def fetch(self) -> Quote:
        self.fetches += 1
        await trio.sleep(0.5)  # a round trip
        if self.answer is None:
            await trio.sleep_forever()  # a feed that never answers
        if isinstance(self.answer, FeedError):
            raise self.answer
        return self.answer


def quote(glm: str | None = "0.25", eth: str | None = "2000") -> Quote:
    return Quote(
        glm_usd=None if glm is None else Decimal(glm),
        eth_usd=None if eth is None else Decimal(eth),
    )


@asynccontextmanager
async def pricing(
    tmp_path: Path, feed: ScriptedFeed | None, watcher: Address[PricesChanged] | None = None
) -> AsyncIterator[Address[PricingMsg]]:
    actor = Pricing(
        watcher=watcher,
        usd=USD,
        source=feed,
        store=StateStore(tmp_path / "state"),
        interval=INTERVAL,
        threshold_percent=1.0,
        max_age=MAX_AGE,
        clock=wall_clock,
    )
    async with hosted(actor, "pricing") as address:
        yield address


async def glm_rate(address: Address[PricingMsg]) -> Decimal | None:
    return (await address.call(GetPrices())).glm_usd.usd


async def test_no_price_until_a_feed_answers(tmp_path: Path, autojump_clock: object) -> None:
    feed = ScriptedFeed(FeedError("http://127.0.0.1:9/api/v3: ConnectError: refused"))
    async with pricing(tmp_path, feed) as address:
        await trio.sleep(1)
        info = await address.call(GetPrices())
        assert (info.state, info.glm, info.glm_usd.usd) == ("unknown", None, None)
        assert "ConnectError: refused" in info.why
        with pytest.raises(PriceUnknown, match=r"no GLM/USD rate known yet: .*refused"):
            await address.call(GetMinimumRate(resources=MEDIUM, native=False))
        with pytest.raises(PriceUnknown, match="no ETH/USD rate known yet"):
            await address.call(GetMinimumRate(resources=MEDIUM, native=True))
        feed.answer = quote()
        await trio.sleep(31)  # the first retry comes after 30 s, not after the interval
        info = await address.call(GetPrices())
        assert info.state == "known"
        assert info.glm == glm_prices(USD, Decimal("0.25"))
        expected = requestor_rate(glm_prices(USD, Decimal("0.25")), MEDIUM)
        assert await address.call(GetMinimumRate(resources=MEDIUM, native=False)) == expected
        native = native_min_rate(USD, Decimal(2000), MEDIUM)
        assert await address.call(GetMinimumRate(resources=MEDIUM, native=True)) == native


async def test_a_rate_is_applied_only_past_the_threshold(
    tmp_path: Path, autojump_clock: object
) -> None:
    feed = ScriptedFeed(quote("0.25"))
    async with pricing(tmp_path, feed) as address:
        await trio.sleep(1)
        assert await glm_rate(address) == Decimal("0.25")
        feed.answer = quote("0.2524")  # 0.96 %: confirmed, not applied
        await trio.sleep(INTERVAL)
        info = await address.call(GetPrices())
        assert info.glm_usd.usd == Decimal("0.25")
        assert info.glm_usd.confirmed_at == pytest.approx(wall_clock(), abs=1)
        feed.answer = quote("0.2525")  # 1 %: applied
        await trio.sleep(INTERVAL)
        assert await glm_rate(address) == Decimal("0.2525")
        assert feed.fetches == 3


async def test_the_last_rate_holds_until_the_staleness_bound(
    tmp_path: Path, autojump_clock: object
) -> None:
    feed = ScriptedFeed(quote("0.25"))
    async with pricing(tmp_path, feed) as address:
        await trio.sleep(1)
        confirmed = wall_clock()
        feed.answer = FeedError("http://127.0.0.1:9/api/v3: HTTP 500")
        await trio.sleep(MAX_AGE - 10)
        info = await address.call(GetPrices())
        assert (info.state, info.glm_usd.usd) == ("known", Decimal("0.25"))
        assert info.last_error == "http://127.0.0.1:9/api/v3: HTTP 500"
        assert await address.call(GetMinimumRate(resources=MEDIUM, native=False)) > 0
        await trio.sleep(20)  # past the bound
        assert wall_clock() - confirmed > MAX_AGE
        info = await address.call(GetPrices())
        assert (info.state, info.glm) == ("stale", None)
        assert "stale: last confirmed" in info.why
        assert "HTTP 500" in info.why
        with pytest.raises(PriceUnknown, match="GLM/USD rate is stale"):
            await address.call(GetMinimumRate(resources=MEDIUM, native=False))
        feed.answer = quote("0.25")
        await trio.sleep(INTERVAL)
        assert (await address.call(GetPrices())).state == "known"


@pytest.mark.parametrize(
    "bad", [FeedError("x: no usable GLM price"), FeedError("x: not JSON"), quote(None, None)]
)
async def test_a_useless_answer_changes_nothing(
    tmp_path: Path, autojump_clock: object, bad: Quote | FeedError
) -> None:
    feed = ScriptedFeed(quote("0.25", "2000"))
    async with pricing(tmp_path, feed) as address:
        await trio.sleep(1)
        before = await address.call(GetPrices())
        feed.answer = bad
        await trio.sleep(INTERVAL)
        after = await address.call(GetPrices())
        assert (after.glm_usd.usd, after.eth_usd.usd) == (Decimal("0.25"), Decimal(2000))
        assert after.glm_usd.confirmed_at == before.glm_usd.confirmed_at  # not confirmed


async def test_the_rates_survive_a_restart_within_the_bound(
    tmp_path: Path, autojump_clock: object
) -> None:
    feed = ScriptedFeed(quote("0.3", "2500"))
    async with pricing(tmp_path, feed) as address:
        await trio.sleep(1)
        assert await glm_rate(address) == Decimal("0.3")
    down = ScriptedFeed(FeedError("http://127.0.0.1:9/api/v3: ConnectError"))
    async with pricing(tmp_path, down) as address:
        await trio.sleep(0.1)  # the restarted actor's first fetch has not failed yet
        info = await address.call(GetPrices())
        assert (info.state, info.glm_usd.usd, info.eth_usd.usd) == (
            "known",
            Decimal("0.3"),
            Decimal(2500),
        )
        native = await address.call(GetMinimumRate(resources=MEDIUM, native=True))
        assert native == native_min_rate(USD, Decimal(2500), MEDIUM)
        await trio.sleep(MAX_AGE)
        assert (await address.call(GetPrices())).state == "stale"
    async with pricing(tmp_path, down) as address:  # a restart does not refresh the age
        assert (await address.call(GetPrices())).state == "stale"


async def test_without_a_feed_there_is_never_a_price(
    tmp_path: Path, autojump_clock: object
) -> None:
    async with pricing(tmp_path, None) as address:
        await trio.sleep(INTERVAL * 3)
        info = await address.call(GetPrices())
        assert (info.state, info.glm, info.source) == ("unknown", None, "none")
        assert "no price feed configured" in info.why


async def test_the_logs_say_when_the_price_goes_stale_even_if_nothing_happens(
    tmp_path: Path, autojump_clock: object
) -> None:
    feed = ScriptedFeed(quote("0.25"))
    with structlog.testing.capture_logs() as logs:
        async with pricing(tmp_path, feed) as address:
            await trio.sleep(1)
            feed.answer = None  # the next fetch never ends: no failure to react to
            await trio.sleep(MAX_AGE + 1)
            events = [(entry["event"], entry.get("state")) for entry in logs]
            assert events[0] == ("exchange rate applied", None)
            assert ("prices known", None) in events
            assert events[-1] == ("no price: not advertising, creates refused", "stale")
            assert (await address.call(GetPrices())).state == "stale"


async def test_the_watcher_hears_when_the_advertised_prices_change(
    tmp_path: Path, autojump_clock: object
) -> None:
    """The advertiser's first attempt may come before the first fetch's answer: it must
    hear of the price then, not at its next interval; and of each move, not of each fetch."""
    watcher = Inbox[PricesChanged]("advertiser")
    feed = ScriptedFeed(quote("0.25"))
    async with pricing(tmp_path, feed, watcher.address()) as address:
        assert (await address.call(GetPrices())).state == "unknown"
        assert drained(watcher) == 0  # nothing known yet, nothing changed
        await trio.sleep(1)  # the fetch (0.5 s) answered
        assert drained(watcher) == 1
        feed.answer = quote("0.2524")  # below the threshold: confirmed, not moved
        await trio.sleep(INTERVAL)
        assert drained(watcher) == 0
        feed.answer = quote("0.30")
        await trio.sleep(INTERVAL)
        assert await glm_rate(address) == Decimal("0.30")
        assert drained(watcher) == 1
        feed.answer = FeedError("http://127.0.0.1:9/api/v3: HTTP 500")
        await trio.sleep(MAX_AGE + 10)  # stale: the advert must go
        assert (await address.call(GetPrices())).state == "stale"
        assert drained(watcher) == 1
    async with pricing(tmp_path, feed, watcher.address()):
        await trio.sleep(INTERVAL)  # restarted on a stale cache, feed still failing
        assert drained(watcher) == 0
