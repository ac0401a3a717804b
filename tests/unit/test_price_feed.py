"""The price feed client against a real HTTP feed on 127.0.0.1."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import trio
from feed_server import HANG, dead_port, feed_server, prices

from golem_actor.adapters.price_feed import FeedError, PriceFeed

IDS = ("golem", "golem-network-tokens")


async def test_both_rates_from_one_request() -> None:
    async with feed_server(prices(glm=0.2512, eth=3120.5)) as feed:
        quote = await PriceFeed([feed.url], glm_ids=IDS).fetch()
    assert (quote.glm_usd, quote.eth_usd) == (Decimal("0.2512"), Decimal("3120.5"))
    (path,) = feed.requests
    parts = urlsplit(path)
    assert parts.path == "/api/v3/simple/price"
    assert parse_qs(parts.query) == {
        "ids": ["golem,golem-network-tokens,ethereum"],
        "vs_currencies": ["usd"],
    }


async def test_the_first_glm_id_with_a_positive_price_wins() -> None:
    answer = {"golem": {"usd": 0}, "golem-network-tokens": {"usd": 0.3}, "ethereum": {"usd": 1}}
    async with feed_server(answer) as feed:
        quote = await PriceFeed([feed.url], glm_ids=IDS).fetch()
    assert quote.glm_usd == Decimal("0.3")


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (prices(glm=0, eth=0), "no usable GLM price"),
        (prices(glm=-2.5, eth=-1), "no usable GLM price"),
        ({"golem": {"usd": "lots"}, "ethereum": {"usd": None}}, "no usable GLM price"),
        ((200, b"<html>garbage</html>"), "not JSON"),
        ((200, b"[1, 2]"), "not a JSON object"),
        ((500, b"{}"), "HTTP 500"),
        ((429, b'{"status": "rate limited"}'), "HTTP 429"),
        ((200, b"x" * 70_000), "answer too large"),
    ],
)
async def test_a_feed_without_a_usable_price_is_an_error(answer: object, problem: str) -> None:
    async with feed_server(answer) as feed:
        with pytest.raises(FeedError, match=problem) as failed:
            await PriceFeed([feed.url], glm_ids=IDS).fetch()
    assert feed.url in str(failed.value)


async def test_a_dead_feed_is_an_error_naming_it() -> None:
    async with dead_port() as url:
        with pytest.raises(FeedError, match="ConnectError") as failed:
            await PriceFeed([url], glm_ids=IDS).fetch()
    assert url in str(failed.value)
    assert isinstance(failed.value.__cause__, FeedError)  # the feed's own error, chained


async def test_a_malformed_feed_url_is_an_error_not_a_crash() -> None:
    with pytest.raises(FeedError, match="InvalidURL"):
        await PriceFeed(["http://[::1"], glm_ids=IDS).fetch()


async def test_a_silent_feed_times_out(autojump_clock: trio.testing.MockClock) -> None:
    async with feed_server(HANG) as feed:
        with pytest.raises(FeedError, match="no answer within 3 s"):
            await PriceFeed([feed.url], glm_ids=IDS, timeout=3).fetch()


async def test_later_feeds_fill_in_what_earlier_ones_lack() -> None:
    async with (
        dead_port() as dead,
        feed_server(prices(glm=0.25)) as first,
        feed_server(prices(glm=9.0, eth=2000)) as second,
        feed_server(prices(glm=1.0, eth=1.0)) as third,
    ):
        quote = await PriceFeed([dead, first.url, second.url, third.url], glm_ids=IDS).fetch()
    assert (quote.glm_usd, quote.eth_usd) == (Decimal("0.25"), Decimal(2000))
    assert third.requests == []  # both known: not asked
    assert any(dead in problem for problem in quote.problems)


async def test_a_glm_rate_alone_is_a_quote() -> None:
    async with feed_server(prices(glm=0.25)) as feed:
        quote = await PriceFeed([feed.url], glm_ids=IDS).fetch()
    assert (quote.glm_usd, quote.eth_usd) == (Decimal("0.25"), None)
